// Where the SDK finds its server and token: explicit options, then MAGS_API_URL / MAGS_API_TOKEN, then the
// config file `mags login` or `mags server` wrote ($MAGS_HOME/config.json, default ~/.mags/config.json),
// then the local embedded server's default address.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';

export const DEFAULT_API_URL = 'http://127.0.0.1:7373';

/** The keys of config.json this SDK reads (other keys are kept by whoever writes the file). */
export interface ConfigFile {
  api_url?: string;
  api_token?: string;
  [key: string]: unknown;
}

export type Environment = Record<string, string | undefined>;

/** The directory holding config.json (and, for the local server, its data): $MAGS_HOME or ~/.mags. */
export function magsHome(env: Environment = process.env): string {
  const home = env.MAGS_HOME?.trim();
  if (home) return path.resolve(home === '~' || home.startsWith('~/') ? path.join(homedir(), home.slice(1)) : home);
  return path.join(env.HOME?.trim() || homedir(), '.mags');
}

export function configPath(env: Environment = process.env): string {
  return path.join(magsHome(env), 'config.json');
}

/** The config file's contents; an absent file is empty, an unreadable or malformed one is an error that says where. */
export function readConfigFile(file: string): ConfigFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON; fix or delete it`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${file} must hold a JSON object such as {"api_url": "…", "api_token": "…"}`);
  }
  return parsed as ConfigFile;
}

export interface Connection {
  apiUrl: string;
  apiToken: string | undefined;
  /** Where the URL came from; the CLI starts a local server only for `default`. */
  urlSource: 'option' | 'env' | 'config' | 'default';
}

/** Resolves the server address and token, in the documented order. */
export function resolveConnection(
  options: { apiUrl?: string; apiToken?: string } = {},
  env: Environment = process.env,
): Connection {
  const nonEmpty = (v: unknown) => (typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined);
  const file = readConfigFile(configPath(env));
  let apiUrl: string;
  let urlSource: Connection['urlSource'];
  const fromOption = nonEmpty(options.apiUrl);
  const fromEnv = nonEmpty(env.MAGS_API_URL);
  const fromFile = nonEmpty(file.api_url);
  if (fromOption) [apiUrl, urlSource] = [fromOption, 'option'];
  else if (fromEnv) [apiUrl, urlSource] = [fromEnv, 'env'];
  else if (fromFile) [apiUrl, urlSource] = [fromFile, 'config'];
  else [apiUrl, urlSource] = [DEFAULT_API_URL, 'default'];
  const apiToken = nonEmpty(options.apiToken) ?? nonEmpty(env.MAGS_API_TOKEN) ?? nonEmpty(file.api_token);
  return { apiUrl: normaliseUrl(apiUrl), apiToken, urlSource };
}

/** `http://host:port` without a trailing slash or a trailing `/api/v1`; a bad URL is an error naming it. */
export function normaliseUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a valid Mags server URL; expected something like ${DEFAULT_API_URL}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new Error(`"${url}" is not a valid Mags server URL: it must start with http:// or https://`);
  }
  return parsed
    .toString()
    .replace(/\/+$/, '')
    .replace(/\/api\/v1$/, '');
}

/** Whether a URL is the address a local embedded server listens on by default. */
export function isDefaultLocalUrl(url: string): boolean {
  try {
    const u = new URL(url);
    const port = u.port === '' ? (u.protocol === 'https:' ? '443' : '80') : u.port;
    return (
      u.protocol === 'http:' &&
      ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname) &&
      port === new URL(DEFAULT_API_URL).port
    );
  } catch {
    return false;
  }
}
