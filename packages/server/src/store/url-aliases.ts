// The url_aliases table: stable names (subdomains) a user gives a workspace; the router sends an alias's requests to
// whichever sandbox runs on that workspace of that user. A subdomain is unique across the server.
import type { UrlAliasRow } from './schema.js';
import type { Db } from './transaction.js';

export class UrlAliasStore {
  constructor(private readonly db: Db) {}

  /** Inserts an alias; false when the subdomain is taken already (by anyone). */
  async insert(alias: UrlAliasRow): Promise<boolean> {
    const inserted = await this.db
      .insertInto('url_aliases')
      .values(alias)
      .onConflict((oc) => oc.column('subdomain').doNothing())
      .returning('id')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /** The alias with this subdomain, whoever's it is (the router's lookup). */
  async bySubdomain(subdomain: string): Promise<UrlAliasRow | undefined> {
    return this.db.selectFrom('url_aliases').selectAll().where('subdomain', '=', subdomain).executeTakeFirst();
  }

  /** Every alias, whoever's (the router front's map of public URLs). */
  async all(): Promise<UrlAliasRow[]> {
    return this.db.selectFrom('url_aliases').selectAll().orderBy('created_at', 'asc').execute();
  }

  /** A user's aliases, oldest first. */
  async list(userId: string): Promise<UrlAliasRow[]> {
    return this.db
      .selectFrom('url_aliases')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('created_at', 'asc')
      .orderBy('id', 'asc')
      .execute();
  }

  /** Deletes one of a user's aliases by subdomain (or id); false if they have none such. */
  async delete(userId: string, ref: string): Promise<boolean> {
    const row = await this.db
      .deleteFrom('url_aliases')
      .where('user_id', '=', userId)
      .where((eb) => eb.or([eb('subdomain', '=', ref), eb('id', '=', ref)]))
      .returning('id')
      .executeTakeFirst();
    return row !== undefined;
  }
}
