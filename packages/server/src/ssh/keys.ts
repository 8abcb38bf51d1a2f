// SSH keys: a user's own public keys (registered, listed, removed), the key pair `access` makes for one sandbox, the
// gateway's host key, and the one decision of what a presented key opens.
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type AccessResult, isTerminal, MagsError, type SshKeyAdd, type SshKeyInfo } from '@mags/api';
import type { Logger } from 'pino';
import ssh2, { type ParsedKey } from 'ssh2';
import type { SshKeyRow, Store } from '../store/index.js';

const { utils } = ssh2;

/** Key types a user may register (what OpenSSH's ssh-keygen makes, minus DSA, which OpenSSH has dropped). */
const SUPPORTED_TYPES = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'ssh-rsa'];

/** Characters a name shown to people must not hold: controls (C0, DEL, C1) and text-direction marks. */
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u061c\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNPRINTABLE_G = new RegExp(UNPRINTABLE.source, 'g');

/** A user's own keys at most (a registered key is looked up by fingerprint; the list is only for people). */
export const MAX_KEYS_PER_USER = 100;

/** What a key presented to the gateway opens: this user's sandbox `ref` (a job id, or a name as `mags exec` takes). */
export interface KeyGrant {
  userId: string;
  /** The job the key belongs to (a sandbox's key), or undefined for a user's own key (the ssh user names the sandbox). */
  jobId?: string;
  /** The public key, to verify the client's signature with. */
  key: ParsedKey;
}

export interface SshKeysDeps {
  store: Store;
  logger: Logger;
}

/** SHA256 fingerprint of a public key blob, as `ssh-keygen -l` prints it. */
export function fingerprintOf(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** One OpenSSH public key line, checked: its type supported, its blob well-formed; 400 with a sentence otherwise. */
export function parsePublicKey(line: string): { key: ParsedKey; normalised: string; comment: string } {
  const text = line.trim();
  if (text === '')
    throw MagsError.invalid(
      'public_key: give one OpenSSH public key line, such as the contents of ~/.ssh/id_ed25519.pub',
    );
  if (text.includes('PRIVATE KEY')) {
    throw MagsError.invalid(
      'public_key: this is a private key; give its public half (the .pub file) and keep the private key to yourself',
    );
  }
  if (/[\r\n]/.test(text)) throw MagsError.invalid('public_key: give one key, on one line (this has several lines)');
  const [type, data, ...rest] = text.split(/\s+/);
  if (!SUPPORTED_TYPES.includes(type ?? '')) {
    throw MagsError.invalid(
      `public_key: "${(type ?? '').slice(0, 40)}" is not a supported key type; use one of ${SUPPORTED_TYPES.join(', ')}`,
    );
  }
  if (!data || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) throw MagsError.invalid('public_key: the key data is not base64');
  const parsed = utils.parseKey(`${type} ${data}`);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (!key || key instanceof Error || key.isPrivateKey() || key.type !== type) {
    throw MagsError.invalid(`public_key: this is not a valid ${type} public key`);
  }
  return { key, normalised: `${type} ${data}`, comment: rest.join(' ') };
}

function keyView(row: SshKeyRow): SshKeyInfo {
  return {
    id: row.id,
    name: row.name,
    fingerprint: row.fingerprint,
    public_key: row.public_key,
    created_at: new Date(row.created_at).toISOString(),
  };
}

export class SshKeys {
  constructor(private readonly deps: SshKeysDeps) {}

  async list(userId: string): Promise<SshKeyInfo[]> {
    return (await this.deps.store.sshKeys.listOwn(userId)).map(keyView);
  }

  async add(userId: string, body: SshKeyAdd): Promise<SshKeyInfo> {
    const { key, normalised, comment } = parsePublicKey(body.public_key);
    const { sshKeys } = this.deps.store;
    if ((await sshKeys.listOwn(userId)).length >= MAX_KEYS_PER_USER) {
      throw new MagsError(422, 'too_many_keys', `you have ${MAX_KEYS_PER_USER} SSH keys already; remove one first`);
    }
    const row: SshKeyRow = {
      id: randomUUID(),
      user_id: userId,
      // A comment is whatever the key's maker wrote: shown to people, so without control or direction characters.
      name: body.name ?? (comment.replace(UNPRINTABLE_G, '').slice(0, 200) || key.type),
      public_key: normalised,
      fingerprint: fingerprintOf(key.getPublicSSH()),
      job_id: null,
      created_at: Date.now(),
    };
    if (UNPRINTABLE.test(row.name)) {
      throw new MagsError(422, 'invalid_name', 'name: must not contain control characters or text-direction marks');
    }
    if (!(await sshKeys.insert(row))) throw MagsError.conflict(`the key ${row.fingerprint} is registered already`);
    this.deps.logger.info({ userId, keyId: row.id, fingerprint: row.fingerprint }, 'ssh key added');
    return keyView(row);
  }

  async remove(userId: string, id: string): Promise<void> {
    if (!(await this.deps.store.sshKeys.deleteOwn(userId, id))) throw MagsError.notFound(`no SSH key with id "${id}"`);
    this.deps.logger.info({ userId, keyId: id }, 'ssh key removed');
  }

  /**
   * A fresh ed25519 key pair that opens the caller's job `ref` (by id or name, as exec finds it) and nothing else;
   * only its public half is stored. The private key is handed out once, in OpenSSH format.
   */
  async forSandbox(userId: string, ref: string): Promise<Omit<AccessResult, 'ssh_host' | 'ssh_port'>> {
    const job = await this.deps.store.jobs.findLive(userId, ref);
    if (!job) throw MagsError.notFound(`no job or sandbox named "${ref}"`);
    if (isTerminal(job.status)) {
      throw MagsError.conflict(`job ${job.id} has finished (${job.status}): there is no sandbox to open`);
    }
    const pair = ed25519Pair(`mags-${job.id}`);
    const parsed = utils.parseKey(pair.public);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) throw new Error('a generated key did not parse');
    const row: SshKeyRow = {
      id: randomUUID(),
      user_id: userId,
      name: `sandbox ${job.name ?? job.id}`,
      public_key: pair.public.split(' ').slice(0, 2).join(' '),
      fingerprint: fingerprintOf(key.getPublicSSH()),
      job_id: job.id,
      created_at: Date.now(),
    };
    await this.deps.store.sshKeys.insert(row);
    this.deps.logger.info({ userId, jobId: job.id, fingerprint: row.fingerprint }, 'ssh access key made');
    return { success: true, ssh_user: 'root', ssh_private_key: pair.private };
  }

  /**
   * What a public key blob opens for ssh user `username`; undefined for a key nobody registered, a sandbox's key
   * whose job is gone, or a user's own key when that user has no unfinished sandbox of that name (a read only: the
   * session's exec finds, and wakes, the sandbox).
   */
  async grant(blob: Buffer, username: string): Promise<KeyGrant | undefined> {
    const row = await this.deps.store.sshKeys.byFingerprint(fingerprintOf(blob));
    if (!row) return undefined;
    const parsed = utils.parseKey(row.public_key);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) return undefined;
    // The fingerprint matched; the blob must too (the stored key is what signatures are checked against).
    if (!key.getPublicSSH().equals(blob)) return undefined;
    if (row.job_id === null) {
      const job = await this.deps.store.jobs.findLive(row.user_id, username);
      return job && !isTerminal(job.status) ? { userId: row.user_id, key } : undefined;
    }
    const job = await this.deps.store.jobs.get(row.job_id);
    if (!job || job.user_id !== row.user_id) return undefined;
    return { userId: row.user_id, jobId: job.id, key };
  }
}

/**
 * The gateway's host key: an ed25519 key made on the first start in the data directory (0600) and reused after, so
 * clients' known_hosts stay valid across restarts.
 */
/**
 * A new ed25519 key pair in OpenSSH format. ssh2's generator writes, about once in 250 keys, a private key that
 * neither ssh2 nor OpenSSH (`ssh-keygen -y`: "error in libcrypto") can load, so each one (private and public half) is
 * parsed before use and a bad one is made again.
 */
export function ed25519Pair(comment: string): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    if (!(utils.parseKey(pair.private) instanceof Error) && !(utils.parseKey(pair.public) instanceof Error))
      return pair;
  }
  throw new Error('could not make an ed25519 key that parses');
}

export function loadHostKey(dataDir: string, logger: Logger): string {
  const file = path.join(dataDir, 'ssh_host_ed25519_key');
  if (existsSync(file)) return readFileSync(file, 'utf8');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const pair = ed25519Pair('mags-gateway');
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, pair.private, { mode: 0o600 });
  renameSync(tmp, file);
  logger.info({ file }, 'made the SSH gateway host key');
  return pair.private;
}
