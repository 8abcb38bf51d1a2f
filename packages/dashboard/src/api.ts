// The dashboard's one way to the server: the public REST API (/api/v1), with the browser's session cookie, and the
// session's CSRF token as X-CSRF-Token on every request that changes something. A failure becomes an ApiError
// carrying the server's own sentence; 401 (signed out, session expired) goes to the sign-in page and back.
import type { Me } from '@mags/api';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;

/** The sign-in page, coming back to where the user is. */
export function signInHref(): string {
  return `/signin?next=${encodeURIComponent(location.pathname + location.search)}`;
}

export interface RequestOptions {
  /** A raw body (an upload), sent as application/octet-stream. */
  raw?: Blob;
  signal?: AbortSignal;
}

export async function api<T>(method: string, path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let payload: BodyInit | undefined;
  if (options.raw !== undefined) {
    payload = options.raw;
    headers['content-type'] = 'application/octet-stream';
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: payload,
      credentials: 'same-origin',
      signal: options.signal,
    });
  } catch (err) {
    if (options.signal?.aborted) throw err;
    throw new ApiError(0, 'unreachable', 'the server cannot be reached; check that it runs and try again');
  }
  if (res.status === 401) {
    location.assign(signInHref());
    throw new ApiError(401, 'unauthorized', 'you are signed out: sign in again');
  }
  const text = res.status === 204 ? '' : await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = json as { error?: unknown; code?: unknown } | undefined;
    throw new ApiError(
      res.status,
      typeof e?.code === 'string' ? e.code : 'error',
      typeof e?.error === 'string' ? e.error : `the server answered ${res.status} ${res.statusText}`,
    );
  }
  return json as T;
}

/** The signed-in user; keeps the session's CSRF token for the requests that follow. */
export async function loadMe(): Promise<Me> {
  const me = await api<Me>('GET', '/me');
  csrfToken = me.csrf_token;
  return me;
}

export async function signOut(): Promise<void> {
  await api<void>('DELETE', '/session');
  location.assign('/signin');
}

/** A path segment (a job id, a name) made safe for a URL. */
export const seg = (s: string) => encodeURIComponent(s);
