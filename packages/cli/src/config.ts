// The CLI's files under $MAGS_HOME (default ~/.mags): config.json (api_url, api_token; mode 0600),
// and the background server's server.log and server.pid. Reading the config is the SDK's job; writing is here.
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type ConfigFile, configPath, type Environment, magsHome, readConfigFile } from '@mags/sdk';

export { configPath, magsHome };

/** $MAGS_HOME, created (mode 0700) if missing. */
export function ensureHome(env: Environment): string {
  const home = magsHome(env);
  mkdirSync(home, { recursive: true, mode: 0o700 });
  return home;
}

/** Merges `patch` into config.json, keeping the other keys; the file is replaced atomically and readable only by its owner. */
export function updateConfig(env: Environment, patch: ConfigFile): string {
  ensureHome(env);
  const file = configPath(env);
  let current: ConfigFile;
  try {
    current = readConfigFile(file);
  } catch (err) {
    // Never lose what is being written (a new token exists only here): set the broken file aside.
    renameSync(file, `${file}.broken`);
    process.stderr.write(`mags: ${(err as Error).message}; kept it as ${file}.broken and wrote a new one\n`);
    current = {};
  }
  const merged = { ...current, ...patch };
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

/** Removes keys from config.json (e.g. the token on logout), keeping the others; a missing file stays missing. */
export function removeConfigKeys(env: Environment, keys: string[]): void {
  const file = configPath(env);
  const current = readConfigFile(file);
  if (!keys.some((k) => k in current)) return;
  for (const k of keys) delete current[k];
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(current, null, 2)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

export function serverLogPath(env: Environment): string {
  return path.join(magsHome(env), 'server.log');
}

export function serverPidPath(env: Environment): string {
  return path.join(magsHome(env), 'server.pid');
}

/** Whether a URL names this machine (a local server), e.g. http://127.0.0.1:7373 or http://localhost:8000. */
export function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname;
    return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}
