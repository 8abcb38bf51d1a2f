// The store: every read and write of durable state, on SQLite or PostgreSQL alike, a module per table. Statements
// that must hold together run in one transaction (transaction.ts), inside the table module that owns the change.

import { MagsError } from '@mags/api';
import { Migrator } from 'kysely';
import type { Logger } from 'pino';
import { redactUrl, type StoreKind } from '../config.js';
import { AgentStore } from './agents.js';
import { CronStore } from './cron.js';
import { openDatabase } from './database.js';
import { DeviceLoginStore } from './device-logins.js';
import { E2bSandboxStore } from './e2b.js';
import { FileStore } from './files.js';
import { JobStore } from './jobs.js';
import { LogStore } from './logs.js';
import { migrationProvider } from './migrations.js';
import { SessionStore } from './sessions.js';
import { SigninLinkStore } from './signin-links.js';
import { SshKeyStore } from './ssh-keys.js';
import type { Db } from './transaction.js';
import { UrlAliasStore } from './url-aliases.js';
import { UsageStore } from './usage.js';
import { UserStore } from './users.js';
import { WorkspaceStore } from './workspaces.js';

export interface StoreOptions {
  /** How long a local workspace lives unused (sets its expires_at when a job on it ends). Default 600 s. */
  localWorkspaceTtlMs?: number;
}

export class Store {
  readonly users: UserStore;
  readonly jobs: JobStore;
  readonly logs: LogStore;
  readonly agents: AgentStore;
  readonly workspaces: WorkspaceStore;
  readonly files: FileStore;
  readonly sshKeys: SshKeyStore;
  readonly cron: CronStore;
  readonly usage: UsageStore;
  readonly urlAliases: UrlAliasStore;
  readonly e2b: E2bSandboxStore;
  readonly sessions: SessionStore;
  readonly deviceLogins: DeviceLoginStore;
  readonly signinLinks: SigninLinkStore;
  private closed = false;

  private constructor(
    readonly kind: StoreKind,
    readonly db: Db,
    options: StoreOptions,
  ) {
    this.users = new UserStore(db, kind);
    this.logs = new LogStore(db);
    this.jobs = new JobStore(db, this.logs, options.localWorkspaceTtlMs ?? 600_000);
    this.agents = new AgentStore(db);
    this.workspaces = new WorkspaceStore(db);
    this.files = new FileStore(db);
    this.sshKeys = new SshKeyStore(db);
    this.cron = new CronStore(db);
    this.usage = new UsageStore(db);
    this.urlAliases = new UrlAliasStore(db);
    this.e2b = new E2bSandboxStore(db);
    this.sessions = new SessionStore(db);
    this.deviceLogins = new DeviceLoginStore(db);
    this.signinLinks = new SigninLinkStore(db);
  }

  /** Opens the database and brings its schema up to date. */
  static async open(database: string, logger?: Logger, options: StoreOptions = {}): Promise<Store> {
    const { kind, db } = openDatabase(database, logger);
    const store = new Store(kind, db, options);
    try {
      await store.migrate();
    } catch (err) {
      await store.close().catch(() => undefined);
      if (err instanceof MagsError) throw err;
      throw new MagsError(
        503,
        'unavailable',
        `cannot open the database ${redactUrl(database)}: ${(err as Error).message || String(err)}`,
      );
    }
    return store;
  }

  /** Applies the migrations not yet applied; returns their names. Safe to run again, and from several servers at once. */
  async migrate(): Promise<string[]> {
    const migrator = new Migrator({ db: this.db, provider: migrationProvider });
    const { error, results } = await migrator.migrateToLatest();
    if (error) throw error instanceof Error ? error : new Error(`database migration failed: ${String(error)}`);
    return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.db.destroy();
  }
}
