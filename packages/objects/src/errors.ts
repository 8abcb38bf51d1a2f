// The object store's failures, as the project's one error type (MagsError) with stable codes.
import { MagsError } from '@mags/api';

/** The key does not exist in the store. */
export class ObjectNotFoundError extends MagsError {
  constructor(
    readonly key: string,
    where: string,
  ) {
    super(404, 'not_found', `object "${key}" not found in ${where}`);
    this.name = 'ObjectNotFoundError';
  }
}

/** A put with `ifNoneMatch: '*'` found the key already there. */
export class ObjectExistsError extends MagsError {
  constructor(
    readonly key: string,
    where: string,
  ) {
    super(412, 'precondition_failed', `object "${key}" already exists in ${where}`);
    this.name = 'ObjectExistsError';
  }
}

/** The store could not be reached or failed; the operation may succeed if retried. */
export class ObjectStoreError extends MagsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(503, 'unavailable', message);
    this.name = 'ObjectStoreError';
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause;
  }
}

export function invalidKey(key: string, why: string): MagsError {
  return MagsError.invalid(`invalid object key "${key}": ${why}`);
}
