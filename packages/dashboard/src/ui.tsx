// The pieces every page is built of: an error shown as the server's sentence, a two-step confirmation (alone, or
// running an action or a DELETE), a copy button, a table and a list with their empty states, form fields with their
// labels, a form that runs an action and its submit row with the error. The data hooks are in resource.ts.
import { type ChangeEvent, type ReactNode, useEffect, useRef, useState } from 'react';
import { api } from './api';
import type { Action } from './resource';

export function ErrorText({ error }: { error: string | undefined }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {error}
    </p>
  );
}

/** Each error in its own alert, in order (a list's load error, then its actions'). */
export function Errors({ errors }: { errors: (string | undefined)[] }) {
  return errors.map((error, i) => (
    // biome-ignore lint/suspicious/noArrayIndexKey: the list is fixed by the caller; position is the identity
    <ErrorText key={i} error={error} />
  ));
}

/** A button that asks "sure?" in place before doing something that cannot be undone. */
export function ConfirmButton({
  label,
  confirm,
  onConfirm,
  disabled,
}: {
  label: string;
  confirm: string;
  onConfirm: () => void;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const yes = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) yes.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className="danger" disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="confirm">
      <button
        type="button"
        ref={yes}
        className="danger"
        onClick={() => {
          setAsking(false);
          onConfirm();
        }}
      >
        {confirm}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** A ConfirmButton that runs `fn` through `action` (disabled while it runs), e.g. a DELETE then a reload. */
export function ConfirmAction({
  label,
  confirm,
  action,
  fn,
  disabled,
}: {
  label: string;
  confirm: string;
  action: Action;
  fn: () => Promise<unknown>;
  disabled?: boolean;
}) {
  return (
    <ConfirmButton
      label={label}
      confirm={confirm}
      disabled={action.busy || disabled}
      onConfirm={() => action.run(fn)}
    />
  );
}

/** Asks in place, then DELETEs `path` and calls `then` (a reload, a navigation). */
export function DeleteButton({
  label = 'Delete',
  confirm,
  action,
  path,
  then,
  disabled,
}: {
  label?: string;
  confirm: string;
  action: Action;
  path: string;
  then: () => void;
  disabled?: boolean;
}) {
  return (
    <ConfirmAction
      label={label}
      confirm={confirm}
      action={action}
      disabled={disabled}
      fn={async () => {
        await api('DELETE', path);
        then();
      }}
    />
  );
}

export function CopyButton({ text, label = 'Copy' }: { text: string; label?: string }) {
  const [done, setDone] = useState<string>();
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone('Copied');
    } catch {
      setDone('Copy it by hand: the browser refused the clipboard');
    }
  };
  return (
    <>
      <button type="button" onClick={copy}>
        {label}
      </button>
      <span role="status" className="muted">
        {done}
      </span>
    </>
  );
}

/** A secret shown this once: read-only, with a copy button. */
export function SecretField({
  id,
  label,
  value,
  selectOnFocus,
}: {
  id?: string;
  label: string;
  value: string;
  selectOnFocus?: boolean;
}) {
  return (
    <div className="row">
      <input
        id={id}
        className="mono grow"
        readOnly
        value={value}
        aria-label={label}
        onFocus={selectOnFocus ? (e) => e.currentTarget.select() : undefined}
      />
      <CopyButton text={value} />
    </div>
  );
}

/** What a create answered once (a secret, a link), until the user says Done. */
export function ShownOnce({ label, onDone, children }: { label: string; onDone: () => void; children: ReactNode }) {
  return (
    <section className="secret" aria-label={label}>
      {children}
      <button type="button" onClick={onDone}>
        Done
      </button>
    </section>
  );
}

export function Section({ title, children, id }: { title: string; children: ReactNode; id?: string }) {
  return (
    <section className="card" aria-labelledby={id ? `${id}-title` : undefined}>
      <h2 id={id ? `${id}-title` : undefined}>{title}</h2>
      {children}
    </section>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge status-${status}`}>{status}</span>;
}

/**
 * A list's table: nothing until `rows` has loaded; `empty` (a string becomes a muted paragraph) when it has none,
 * or the table anyway when no `empty` is given; the last column is the row's actions, named for screen readers.
 * `row` returns the whole `<tr>` so each page keeps its own key and data attributes.
 */
export function DataTable<T>({
  id,
  caption,
  columns,
  actions = true,
  rows,
  empty,
  row,
}: {
  id?: string;
  caption?: string;
  columns: string[];
  actions?: boolean;
  rows: T[] | undefined;
  empty?: ReactNode;
  row: (item: T) => ReactNode;
}) {
  if (rows === undefined) return null;
  if (rows.length === 0 && empty !== undefined) return <EmptyText>{empty}</EmptyText>;
  return (
    <div className="table-wrap">
      <table id={id}>
        {caption ? <caption className="visually-hidden">{caption}</caption> : null}
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c} scope="col">
                {c}
              </th>
            ))}
            {actions ? (
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            ) : null}
          </tr>
        </thead>
        <tbody>{rows.map(row)}</tbody>
      </table>
    </div>
  );
}

/** A list of cards: nothing until loaded, `empty` when it has none. */
export function ItemList<T>({
  items,
  empty,
  item,
}: {
  items: T[] | undefined;
  empty: ReactNode;
  item: (it: T) => ReactNode;
}) {
  if (items === undefined) return null;
  if (items.length === 0) return <EmptyText>{empty}</EmptyText>;
  return items.map(item);
}

function EmptyText({ children }: { children: ReactNode }) {
  return typeof children === 'string' ? <p className="muted">{children}</p> : children;
}

/** A label and its text input (autocomplete off: these are names, not a person's details). */
export function TextField({
  id,
  label,
  value,
  onChange,
  required,
  className,
  placeholder,
}: {
  id: string;
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  required?: boolean;
  className?: string;
  placeholder?: string;
}) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <input
        id={id}
        className={className}
        required={required}
        value={value}
        onChange={(e: ChangeEvent<HTMLInputElement>) => onChange(e.target.value)}
        autoComplete="off"
        placeholder={placeholder}
      />
    </>
  );
}

/** A label and its script box. */
export function ScriptField({
  id,
  label,
  value,
  onChange,
  placeholder,
}: {
  id: string;
  label: ReactNode;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
}) {
  return (
    <>
      <label htmlFor={id}>{label}</label>
      <textarea
        id={id}
        required
        rows={3}
        value={value}
        onChange={(e) => onChange(e.target.value)}
        placeholder={placeholder}
        spellCheck={false}
      />
    </>
  );
}

/** A checkbox with its label after it, on a line of its own. */
export function CheckboxField({
  id,
  label,
  checked,
  onChange,
}: {
  id: string;
  label: ReactNode;
  checked: boolean;
  onChange: (checked: boolean) => void;
}) {
  return (
    <div>
      <input id={id} type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} />{' '}
      <label htmlFor={id}>{label}</label>
    </div>
  );
}

/** A form that runs `fn` through `action` when submitted (SubmitRow shows the action's error). */
export function ActionForm({
  action,
  fn,
  className = 'stack',
  children,
}: {
  action: Action;
  fn: () => Promise<unknown>;
  className?: string;
  children: ReactNode;
}) {
  return (
    <form
      className={className}
      onSubmit={(e) => {
        e.preventDefault();
        void action.run(fn);
      }}
    >
      {children}
    </form>
  );
}

/** A form's submit button on its own line, then the action's error. */
export function SubmitRow({ id, action, children }: { id: string; action: Action; children: ReactNode }) {
  return (
    <>
      <div>
        <button type="submit" id={id} disabled={action.busy}>
          {children}
        </button>
      </div>
      <ErrorText error={action.error} />
    </>
  );
}
