// Uploaded files: received into the object store (`files/<owner>/<id>`), listed, deleted, and resolved for a job
// that names them (they appear at /uploads/<name>). Every lookup is for the caller only.
import type { Readable } from 'node:stream';
import { MagsError } from '@mags/api';
import type { ObjectStore } from '@mags/objects';
import type { Logger } from 'pino';
import type { FileRow, JobSpec, Store } from '../store/index.js';
import { receiveUpload } from './upload.js';

export interface FilesDeps {
  store: Store;
  objects: ObjectStore;
  logger: Logger;
  /** Largest file accepted, in bytes. */
  maxUploadBytes: number;
}

export class Files {
  constructor(private readonly deps: FilesDeps) {}

  /** Stores `body` (the request stream; `length` its Content-Length when sent) as the caller's file `name`. */
  async upload(userId: string, name: string, body: Readable, length: number | undefined): Promise<FileRow> {
    const { store, objects, logger, maxUploadBytes } = this.deps;
    const row = await receiveUpload(
      { files: store.files, objects, logger, maxBytes: maxUploadBytes },
      userId,
      name,
      body,
      length,
    );
    logger.info({ fileId: row.id, size: row.size }, 'file uploaded');
    return row;
  }

  list(userId: string): Promise<FileRow[]> {
    return this.deps.store.files.list(userId);
  }

  async delete(userId: string, id: string): Promise<void> {
    const { store, objects, logger } = this.deps;
    const file = await store.files.get(userId, id);
    if (!file) throw MagsError.notFound(`file "${id}" not found`);
    // The bytes first: a failure leaves the row, so the delete can be repeated.
    await objects.delete([file.object_key]);
    await store.files.delete(userId, file.id);
    logger.info({ fileId: file.id }, 'file deleted');
  }

  /** The files a job names, each the caller's; two with the same name would collide under /uploads/. */
  async forJob(userId: string, fileIds: readonly string[]): Promise<NonNullable<JobSpec['uploads']>> {
    const files: FileRow[] = [];
    for (const id of fileIds) {
      const file = await this.deps.store.files.get(userId, id);
      if (!file) throw MagsError.notFound(`file "${id}" not found; upload it first (mags run -f PATH does)`);
      const same = files.find((f) => f.name === file.name);
      if (same) {
        throw MagsError.invalid(
          `files "${same.id}" and "${file.id}" are both named "${file.name}"; each must have its own name under /uploads/`,
        );
      }
      files.push(file);
    }
    return files.map((f) => ({ key: f.object_key, name: f.name, size: f.size }));
  }
}
