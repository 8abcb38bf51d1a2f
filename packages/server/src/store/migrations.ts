// The one set of migrations, for SQLite and PostgreSQL alike. Only portable column types
// (text, integer, bigint); append new migrations, never edit one that has shipped.
import type { Kysely, Migration, MigrationProvider } from 'kysely';

const migrations: Record<string, Migration> = {
  '0001_initial': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('tokens')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('prefix', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('revoked_at', 'bigint')
        .execute();
      await db.schema.createIndex('tokens_user_idx').on('tokens').column('user_id').execute();

      await db.schema
        .createTable('jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text')
        .addColumn('script', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('exit_code', 'integer')
        .addColumn('error_message', 'text')
        .addColumn('agent_id', 'text')
        .addColumn('sandbox_id', 'text')
        .addColumn('workspace_id', 'text')
        .addColumn('spec', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('completed_at', 'bigint')
        .execute();
      // Listing a user's jobs newest first, and finding a user's newest job by name.
      await db.schema.createIndex('jobs_user_created_idx').on('jobs').columns(['user_id', 'created_at']).execute();
      await db.schema.createIndex('jobs_user_name_idx').on('jobs').columns(['user_id', 'name', 'created_at']).execute();
      // The queue and recovery scan unfinished jobs by status.
      await db.schema.createIndex('jobs_status_idx').on('jobs').columns(['status', 'agent_id']).execute();

      await db.schema
        .createTable('job_logs')
        .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
        .addColumn('seq', 'integer', (c) => c.notNull())
        .addColumn('ts', 'bigint', (c) => c.notNull())
        .addColumn('stream', 'text', (c) => c.notNull())
        .addColumn('message', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('job_logs_pk', ['job_id', 'seq'])
        .execute();

      await db.schema
        .createTable('agents')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('runtime', 'text', (c) => c.notNull())
        .addColumn('version', 'text', (c) => c.notNull())
        .addColumn('capacity', 'integer', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('first_seen_at', 'bigint', (c) => c.notNull())
        .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['job_logs', 'jobs', 'tokens', 'users', 'agents'])
        await db.schema.dropTable(t).ifExists().execute();
    },
  },

  '0002_workspaces_and_files': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('workspaces')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('persistent', 'integer', (c) => c.notNull())
        .addColumn('disk_gb', 'integer', (c) => c.notNull())
        .addColumn('base_label', 'text')
        .addColumn('base_key', 'text')
        .addColumn('agent_id', 'text')
        .addColumn('active_job_id', 'text')
        .addColumn('head_version', 'integer')
        .addColumn('versions', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('size_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
        .addColumn('file_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('last_used_at', 'bigint')
        .addColumn('expires_at', 'bigint')
        .addUniqueConstraint('workspaces_user_name_key', ['user_id', 'name'])
        .execute();
      // Every way a job ends releases its workspace by job id.
      await db.schema.createIndex('workspaces_active_job_idx').on('workspaces').column('active_job_id').execute();

      await db.schema
        .createTable('files')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('size', 'bigint', (c) => c.notNull())
        .addColumn('sha256', 'text', (c) => c.notNull())
        .addColumn('object_key', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('files_user_created_idx').on('files').columns(['user_id', 'created_at']).execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['files', 'workspaces']) await db.schema.dropTable(t).ifExists().execute();
    },
  },

  '0003_job_retention': {
    async up(db: Kysely<unknown>) {
      // The retention sweep finds finished jobs by when they ended.
      await db.schema.createIndex('jobs_completed_idx').on('jobs').column('completed_at').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropIndex('jobs_completed_idx').ifExists().execute();
    },
  },

  '0004_ssh_keys': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('ssh_keys')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('public_key', 'text', (c) => c.notNull())
        // The gateway finds a key by it; one key belongs to one user.
        .addColumn('fingerprint', 'text', (c) => c.notNull().unique())
        // A sandbox's key stops working with its job: deleted with it.
        .addColumn('job_id', 'text', (c) => c.references('jobs.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('ssh_keys_user_idx').on('ssh_keys').columns(['user_id', 'created_at']).execute();
      await db.schema.createIndex('ssh_keys_job_idx').on('ssh_keys').column('job_id').execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('ssh_keys').ifExists().execute();
    },
  },

  '0005_cron_and_usage': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('cron_jobs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('cron_expression', 'text', (c) => c.notNull())
        .addColumn('script', 'text', (c) => c.notNull())
        .addColumn('workspace_id', 'text')
        .addColumn('persistent', 'integer', (c) => c.notNull())
        .addColumn('timezone', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('next_run_at', 'bigint')
        .addColumn('last_run_at', 'bigint')
        .addColumn('last_job_id', 'text')
        .addColumn('last_status', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('cron_jobs_user_name_key', ['user_id', 'name'])
        .execute();
      // The scheduler's one query: enabled cron jobs due by now.
      await db.schema.createIndex('cron_jobs_due_idx').on('cron_jobs').columns(['enabled', 'next_run_at']).execute();

      await db.schema
        .createTable('cron_runs')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('cron_job_id', 'text', (c) => c.notNull().references('cron_jobs.id').onDelete('cascade'))
        .addColumn('scheduled_at', 'bigint', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('job_id', 'text')
        .addColumn('reason', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('cron_runs_firing_key', ['cron_job_id', 'scheduled_at'])
        .execute();

      await db.schema
        .createTable('usage_meters')
        .addColumn('job_id', 'text', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
        .addColumn('sandbox_id', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('sandbox_ms', 'bigint', (c) => c.notNull())
        .addColumn('cpu_ms', 'bigint', (c) => c.notNull())
        .addColumn('memory_mib_ms', 'bigint', (c) => c.notNull())
        .addColumn('egress_bytes', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('usage_meters_pk', ['job_id', 'sandbox_id'])
        .execute();

      await db.schema
        .createTable('usage_days')
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('day', 'text', (c) => c.notNull())
        .addColumn('jobs', 'integer', (c) => c.notNull())
        .addColumn('sandbox_ms', 'bigint', (c) => c.notNull())
        .addColumn('cpu_ms', 'bigint', (c) => c.notNull())
        .addColumn('memory_mib_ms', 'bigint', (c) => c.notNull())
        .addColumn('egress_bytes', 'bigint', (c) => c.notNull())
        .addColumn('storage_bytes', 'bigint')
        .addPrimaryKeyConstraint('usage_days_pk', ['user_id', 'day'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['usage_days', 'usage_meters', 'cron_runs', 'cron_jobs'])
        await db.schema.dropTable(t).ifExists().execute();
    },
  },
  '0006_router_urls': {
    async up(db: Kysely<unknown>) {
      // A job's URL: its subdomain (kept for the job's life), the port it reaches, whether it is private; and the
      // sandbox's address as its agent last reported it (where the router connects).
      await db.schema.alterTable('jobs').addColumn('subdomain', 'text').execute();
      await db.schema.alterTable('jobs').addColumn('url_port', 'integer').execute();
      await db.schema.alterTable('jobs').addColumn('url_private', 'integer').execute();
      await db.schema.alterTable('jobs').addColumn('sandbox_address', 'text').execute();
      await db.schema.createIndex('jobs_subdomain_key').unique().on('jobs').column('subdomain').execute();
      await db.schema
        .createTable('url_aliases')
        .addColumn('id', 'text', (c) => c.primaryKey())
        // Unique across the server (job subdomains are 12 hex characters; an alias cannot take one: see router/).
        .addColumn('subdomain', 'text', (c) => c.notNull().unique())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        // The workspace's name (the wire field), as jobs.workspace_id: the alias follows whatever job holds it.
        .addColumn('workspace_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('url_aliases_user_idx')
        .on('url_aliases')
        .columns(['user_id', 'created_at'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('url_aliases').ifExists().execute();
      await db.schema.dropIndex('jobs_subdomain_key').ifExists().execute();
      for (const c of ['subdomain', 'url_port', 'url_private', 'sandbox_address']) {
        await db.schema.alterTable('jobs').dropColumn(c).execute();
      }
    },
  },
  '0007_accounts': {
    async up(db: Kysely<unknown>) {
      // Accounts: a password for the browser pages, removal without losing data, token expiry.
      await db.schema.alterTable('users').addColumn('password_hash', 'text').execute();
      await db.schema.alterTable('users').addColumn('removed_at', 'bigint').execute();
      // "ISSUER SUBJECT" of the OpenID Connect account bound to the user at its first single sign-on.
      await db.schema.alterTable('users').addColumn('oidc_subject', 'text').execute();
      await db.schema.alterTable('tokens').addColumn('expires_at', 'bigint').execute();
      await db.schema.createIndex('users_name_idx').on('users').column('name').execute();

      await db.schema
        .createTable('sessions')
        .addColumn('id_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('csrf', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('sessions_user_idx').on('sessions').column('user_id').execute();

      await db.schema
        .createTable('device_logins')
        .addColumn('device_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_code', 'text', (c) => c.notNull().unique())
        .addColumn('client_name', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('user_id', 'text', (c) => c.references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('signin_links')
        .addColumn('code_hash', 'text', (c) => c.primaryKey())
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('expires_at', 'bigint', (c) => c.notNull())
        .execute();
    },
    async down(db: Kysely<unknown>) {
      for (const t of ['signin_links', 'device_logins', 'sessions']) await db.schema.dropTable(t).ifExists().execute();
      await db.schema.dropIndex('users_name_idx').ifExists().execute();
      await db.schema.alterTable('tokens').dropColumn('expires_at').execute();
      await db.schema.alterTable('users').dropColumn('oidc_subject').execute();
      await db.schema.alterTable('users').dropColumn('removed_at').execute();
      await db.schema.alterTable('users').dropColumn('password_hash').execute();
    },
  },
  '0008_e2b_sandboxes': {
    async up(db: Kysely<unknown>) {
      // E2B compatibility (e2b/): what the E2B API adds to a long-lived job.
      await db.schema
        .createTable('e2b_sandboxes')
        .addColumn('job_id', 'text', (c) => c.primaryKey().references('jobs.id').onDelete('cascade'))
        .addColumn('user_id', 'text', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('template_id', 'text', (c) => c.notNull())
        .addColumn('workspace', 'text', (c) => c.notNull())
        .addColumn('metadata', 'text', (c) => c.notNull())
        .addColumn('env_vars', 'text', (c) => c.notNull())
        .addColumn('envd_token', 'text', (c) => c.notNull())
        .addColumn('traffic_token', 'text')
        .addColumn('auto_pause', 'integer', (c) => c.notNull())
        .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('end_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('e2b_sandboxes_user_idx')
        .on('e2b_sandboxes')
        .columns(['user_id', 'created_at'])
        .execute();
    },
    async down(db: Kysely<unknown>) {
      await db.schema.dropTable('e2b_sandboxes').ifExists().execute();
    },
  },
};

export const migrationProvider: MigrationProvider = {
  async getMigrations() {
    return migrations;
  },
};
