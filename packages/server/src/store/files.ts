// The files table: uploaded files (their bytes are objects in the object store, under `object_key`).
import type { FileRow } from './schema.js';
import type { Db } from './transaction.js';

export class FileStore {
  constructor(private readonly db: Db) {}

  async insert(file: FileRow): Promise<FileRow> {
    await this.db.insertInto('files').values(file).execute();
    return file;
  }

  /** A user's file by id; another user's is not found. */
  async get(userId: string, id: string): Promise<FileRow | undefined> {
    return this.db
      .selectFrom('files')
      .selectAll()
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .executeTakeFirst();
  }

  /** A user's files, newest first. */
  async list(userId: string): Promise<FileRow[]> {
    return this.db
      .selectFrom('files')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
  }

  /** Deletes a user's file row; returns it (its object is the caller's to delete), or undefined if there was none. */
  async delete(userId: string, id: string): Promise<FileRow | undefined> {
    return this.db
      .deleteFrom('files')
      .where('id', '=', id)
      .where('user_id', '=', userId)
      .returningAll()
      .executeTakeFirst();
  }
}
