// Request validation with the TypeBox schemas of @mags/api, and turning a schema violation into one sentence
// that names the field (`script: must be a non-empty string`).

import { PATTERN_RULES } from '@mags/api';
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { Compile } from 'typebox/compile';

/** The shape of a validation error from TypeBox (and AJV): enough to describe it. */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/**
 * Validates with TypeBox. Bodies are checked as sent (no type coercion, so `"script": 5` is refused);
 * query strings and path parameters arrive as text and are converted to the schema's types first.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = Compile(schema);
  const convert = httpPart !== 'body';
  return (value: unknown) => {
    const converted = convert ? convertText(schema, value) : value;
    if (check.Check(converted)) return { value: converted };
    return { error: Array.from(check.Errors(converted)) as unknown as Error };
  };
};

const INTEGER_TEXT = /^-?\d{1,15}$/;
const NUMBER_TEXT = /^-?(\d{1,15}(\.\d{1,15})?|\.\d{1,15})$/;

/**
 * Converts the text values of a flat object (query string, path parameters) to the types its schema declares,
 * strictly: "1.5" is not an integer, "1e3" and "NaN" are not numbers, and a repeated parameter stays an array,
 * so the check that follows refuses them with a sentence instead of guessing.
 */
function convertText(schema: TSchema, value: unknown): unknown {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties;
  if (!properties || typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [key, text] of Object.entries(out)) {
    if (typeof text !== 'string') continue;
    const type = properties[key]?.type;
    const t = text.trim();
    if (type === 'integer' && INTEGER_TEXT.test(t)) out[key] = Number(t);
    else if (type === 'number' && NUMBER_TEXT.test(t)) out[key] = Number(t);
    else if (type === 'boolean' && /^(true|false|1|0)$/.test(t)) out[key] = t === 'true' || t === '1';
  }
  return out;
}

const PART_NAMES: Record<string, string> = {
  body: 'the request body',
  querystring: 'the query string',
  params: 'the URL',
  headers: 'the request headers',
};

function fieldOf(path: string): string {
  return path
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

/** A pattern's rule in words ("is not valid: names are …"), never the regular expression itself. */
function ruleOf(pattern: string): string {
  const rule = PATTERN_RULES[pattern];
  if (!rule) return 'is not in the expected form';
  return rule.startsWith('must') ? rule : `is not valid: ${rule}`;
}

const article = (type: string) => (/^[aeiou]/.test(type) ? 'an' : 'a');
const quote = (v: unknown) => JSON.stringify(v);

function describeOne(e: SchemaError, all: readonly SchemaError[]): { field: string; problem: string } {
  const field = fieldOf(e.instancePath);
  const p = e.params ?? {};
  switch (e.keyword) {
    case 'required': {
      const missing =
        (p.requiredProperties as string[] | undefined)?.[0] ?? (p.missingProperty as string | undefined) ?? '?';
      return { field: field ? `${field}.${missing}` : missing, problem: 'is required' };
    }
    case 'additionalProperties': {
      const extra =
        (p.additionalProperties as string[] | undefined)?.[0] ?? (p.additionalProperty as string | undefined) ?? '?';
      return { field: field ? `${field}.${extra}` : extra, problem: 'is not a known field' };
    }
    case 'boolean':
      // `additionalProperties: false` reports the unknown property itself with a "schema is false" error.
      return { field, problem: 'is not a known field' };
    case 'type': {
      const type = String(p.type ?? 'value');
      const sibling = all.find((o) => o.instancePath === e.instancePath && o.keyword === 'minLength');
      if (type === 'string' && sibling) return { field, problem: 'must be a non-empty string' };
      return { field, problem: `must be ${article(type)} ${type}` };
    }
    case 'minLength':
      return {
        field,
        problem: p.limit === 1 ? 'must be a non-empty string' : `must be at least ${p.limit} characters long`,
      };
    case 'maxLength':
      return { field, problem: `must be at most ${p.limit} characters long` };
    case 'minimum':
    case 'exclusiveMinimum':
    case 'maximum':
    case 'exclusiveMaximum': {
      const cmp = String(p.comparison ?? (e.keyword.includes('inimum') ? '>=' : '<='));
      const words: Record<string, string> = { '>=': 'at least', '>': 'more than', '<=': 'at most', '<': 'less than' };
      return { field, problem: `must be ${words[cmp] ?? cmp} ${p.limit}` };
    }
    case 'minItems':
      return { field, problem: `must have at least ${p.limit} items` };
    case 'maxItems':
      return { field, problem: `must have at most ${p.limit} items` };
    case 'pattern':
      return { field, problem: ruleOf(String(p.pattern)) };
    case 'const':
    case 'enum':
    case 'anyOf': {
      const allowed = all
        .filter((o) => o.instancePath === e.instancePath && o.keyword === 'const')
        .map((o) => o.params.allowedValue ?? o.params.const);
      if (allowed.length === 1) return { field, problem: `must be ${quote(allowed[0])}` };
      if (allowed.length > 1) return { field, problem: `must be one of ${allowed.map(quote).join(', ')}` };
      if (Array.isArray(p.allowedValues))
        return { field, problem: `must be one of ${p.allowedValues.map(quote).join(', ')}` };
      return { field, problem: 'has a value that is not allowed' };
    }
    default:
      return { field, problem: e.message ?? 'is not valid' };
  }
}

/** One sentence for a list of schema errors from `part` (body, querystring, params). */
export function describeValidation(errors: readonly SchemaError[], part: string | undefined): string {
  const where = PART_NAMES[part ?? ''] ?? 'the request';
  if (errors.length === 0) return `${where} is not valid`;
  // Prefer the error about the unknown field itself over the summary the object reports.
  const first = errors.find((e) => e.keyword === 'boolean') ?? errors[0];
  const { field, problem } = describeOne(first, errors);
  if (field === '') {
    if (first.keyword === 'type') return `${where} must be ${part === 'body' ? 'a JSON object' : 'an object'}`;
    return `${where} ${problem}`;
  }
  return `${field}: ${problem}`;
}
