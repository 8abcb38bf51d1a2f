// Opens a Kysely instance on SQLite (better-sqlite3) or PostgreSQL (pg), chosen by the database setting.
import { chmodSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { MagsError } from '@mags/api';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, PostgresDialect, type SqliteDatabase, SqliteDialect } from 'kysely';
import pg from 'pg';
import type { Logger } from 'pino';
import { redactUrl, type StoreKind, storeKindOf } from '../config.js';
import type { Database } from './schema.js';

// int8 (bigint: our epoch-ms timestamps, count(*)) comes back from pg as a string; make both backends give numbers.
// Epoch milliseconds fit a double exactly until the year 287396.
pg.types.setTypeParser(20, Number);

export interface OpenedDatabase {
  kind: StoreKind;
  db: Kysely<Database>;
}

export function openDatabase(database: string, logger?: Logger): OpenedDatabase {
  if (storeKindOf(database) === 'postgres') {
    const pool = new pg.Pool({ connectionString: database, max: 10, idleTimeoutMillis: 30_000 });
    // An idle client losing its connection (PostgreSQL restarted) emits 'error' on the pool; unhandled, that
    // would end the process. The next query reconnects.
    pool.on('error', (err) => logger?.error({ err, database: redactUrl(database) }, 'PostgreSQL connection lost'));
    return { kind: 'postgres', db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }) }) };
  }

  if (database !== ':memory:') {
    try {
      // Jobs hold scripts and their environment (often secrets): only the server's user may read them.
      mkdirSync(dirname(database), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new MagsError(
        500,
        'internal',
        `cannot create the directory for the database ${database}: ${(err as Error).message}`,
      );
    }
  }
  let sqlite: BetterSqlite3.Database;
  try {
    sqlite = new BetterSqlite3(database);
  } catch (err) {
    throw new MagsError(500, 'internal', `cannot open the SQLite database ${database}: ${(err as Error).message}`);
  }
  if (database !== ':memory:') {
    try {
      chmodSync(database, 0o600); // SQLite gives its -wal and -shm files the same mode
    } catch (err) {
      logger?.warn({ err, database }, 'could not restrict the database file to its owner');
    }
  }
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('busy_timeout = 5000');
  sqlite.pragma('foreign_keys = ON');
  return {
    kind: 'sqlite',
    db: new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) }),
  };
}

/** Statements kept prepared: the server runs a few dozen distinct ones, over and over. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * The database as Kysely uses it, with its prepared statements kept (least recently used out): Kysely prepares
 * every query anew, which was a fair share of the server's CPU per job. The server never streams a query
 * (`iterate`), so a statement is never in use when it is handed out again.
 */
function withStatementCache(sqlite: BetterSqlite3.Database): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text) {
      let statement = cache.get(text);
      if (statement) {
        cache.delete(text); // re-inserted below: most recently used last
      } else {
        statement = sqlite.prepare(text);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      cache.set(text, statement);
      return statement;
    },
  };
}
