// Uploaded files: a request body streamed to the object store (`files/<owner>/<id>`) while it is hashed and
// counted, never held in memory. Too big, interrupted, or not stored: nothing is kept (no row, no object).
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { checkUploadName, MagsError, unprintableIn } from '@mags/api';
import type { ObjectStore } from '@mags/objects';
import type { Logger } from 'pino';
import { uuidv7 } from '../ids.js';
import type { FileRow, FileStore } from '../store/index.js';

export function tooLarge(limit: number): MagsError {
  return new MagsError(
    413,
    'payload_too_large',
    `the file is larger than the ${formatBytes(limit)} upload limit of this server`,
  );
}

/**
 * Throws 400 with a sentence when `name` cannot be /uploads/<name>, and 422 `invalid_name` when it is a valid path
 * but holds a control or text-direction character (it would forge what listings show).
 */
export function checkName(name: string): void {
  const bad = checkUploadName(name);
  if (!bad) return;
  if (bad === unprintableIn(name)) throw new MagsError(422, 'invalid_name', `name: ${bad}`);
  throw MagsError.invalid(`name: ${bad}`);
}

export interface UploadDeps {
  files: FileStore;
  objects: ObjectStore;
  logger: Logger;
  maxBytes: number;
}

/** `body` is the request stream; `length` its Content-Length when the client sent one. */
export async function receiveUpload(
  deps: UploadDeps,
  userId: string,
  name: string,
  body: Readable,
  length?: number,
): Promise<FileRow> {
  checkName(name);
  if (length !== undefined && length > deps.maxBytes) throw tooLarge(deps.maxBytes);
  const id = uuidv7();
  const key = `files/${userId}/${id}`;
  const hash = createHash('sha256');
  let size = 0;
  let overLimit = false;
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      size += chunk.length;
      if (size > deps.maxBytes) {
        overLimit = true;
        return done(tooLarge(deps.maxBytes));
      }
      hash.update(chunk);
      done(null, chunk);
    },
  });
  // Piped by hand, not with pipeline(): a failure on the store side must not destroy the request (that would
  // reset the connection before the client is told why); the route answers and closes the connection instead.
  let clientGone = false;
  const gone = () => {
    if (clientGone) return;
    clientGone = true;
    meter.destroy(new Error('the client went away before the whole file arrived'));
  };
  body.once('aborted', gone);
  body.once('error', gone);
  body.once('close', () => {
    if ((body as { complete?: boolean }).complete === false) gone();
  });
  // The store reports the meter's failure (through put); this listener only keeps an error raised before the
  // store started reading from being thrown as uncaught.
  meter.on('error', () => undefined);
  body.pipe(meter);
  let failure: unknown;
  try {
    await deps.objects.put(key, meter, length !== undefined ? { contentLength: length } : {});
  } catch (err) {
    failure = err;
  } finally {
    body.unpipe(meter);
  }
  if (failure === undefined && length !== undefined && size !== length) clientGone = true;
  if (failure !== undefined || clientGone) {
    await deps.objects
      .delete([key])
      .catch((err: unknown) => deps.logger.warn({ err, key }, 'could not delete a failed upload'));
    if (overLimit) throw tooLarge(deps.maxBytes);
    if (clientGone)
      throw MagsError.invalid(
        'the upload was interrupted before the whole file arrived; nothing was kept, send it again',
      );
    if (failure instanceof MagsError) throw failure;
    throw new MagsError(503, 'unavailable', `the file could not be stored: ${(failure as Error).message}`);
  }
  const row: FileRow = {
    id,
    user_id: userId,
    name,
    size,
    sha256: hash.digest('hex'),
    object_key: key,
    created_at: Date.now(),
  };
  try {
    return await deps.files.insert(row);
  } catch (err) {
    await deps.objects.delete([key]).catch(() => undefined);
    throw err;
  }
}

function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1 && v % 1024 === 0) {
    v /= 1024;
    i++;
  }
  return `${v} ${units[i]}`;
}
