// Bounded concurrency: run an async function over many items with at most `limit` in flight.

/** Calls fn for every item, at most `limit` at once; rejects with the first error after in-flight calls settle. */
export async function forEachLimit<T>(
  items: Iterable<T>,
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const it = items[Symbol.iterator]();
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failed) return;
      const next = it.next();
      if (next.done) return;
      try {
        await fn(next.value);
      } catch (e) {
        if (!failed) {
          failed = true;
          firstError = e;
        }
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, limit) }, worker));
  if (failed) throw firstError;
}

/**
 * Calls a synchronous fn for every item, giving the event loop a turn every `sliceMs`. For many tiny file-system
 * calls a thread-pool round trip costs more than the call itself (see walk.ts), and the slices keep I/O flowing.
 */
export async function forEachYielding<T>(items: Iterable<T>, fn: (item: T) => void, sliceMs = 10): Promise<void> {
  let last = Date.now();
  for (const item of items) {
    fn(item);
    if (Date.now() - last >= sliceMs) {
      await new Promise((r) => setImmediate(r));
      last = Date.now();
    }
  }
}
