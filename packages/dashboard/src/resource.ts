// What every page does with the server: load a resource (optionally polled) and run an action, keeping its error
// as the server's sentence.
import { useCallback, useEffect, useState } from 'react';
import { ApiError, api } from './api';

export interface Resource<T> {
  data: T | undefined;
  error: string | undefined;
  reload: () => void;
}

/** GET `path` (null: nothing yet), again every `intervalMs` if given, and whenever reload() is called. */
export function useResource<T>(path: string | null, intervalMs?: number): Resource<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: tick asks for a reload on purpose
  useEffect(() => {
    if (path === null) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        setData(await api<T>('GET', path, undefined, { signal: abort.signal }));
        setError(undefined);
      } catch (err) {
        if (abort.signal.aborted) return;
        setError(messageOf(err));
      }
      if (intervalMs !== undefined && !abort.signal.aborted) timer = setTimeout(load, intervalMs);
    };
    void load();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [path, intervalMs, tick]);
  return { data, error, reload };
}

export function messageOf(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export interface Action {
  busy: boolean;
  error: string | undefined;
  run: (fn: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
}

/** Runs one action at a time; its error (the server's sentence) is kept until the next run. */
export function useAction(): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await fn();
      return true;
    } catch (err) {
      setError(messageOf(err));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, clear: () => setError(undefined) };
}
