// How a command gets its client: the configured server, or the local one, started in the background when
// no server is configured and nothing answers at the default address.
import { configPath, type Environment, isDefaultLocalUrl, Mags, resolveConnection } from '@mags/sdk';
import { startLocalServer } from './local-server.js';

export async function connect(env: Environment = process.env): Promise<Mags> {
  const conn = resolveConnection({}, env);
  const client = new Mags({ env });
  const local = conn.urlSource === 'default' || (conn.urlSource === 'config' && isDefaultLocalUrl(conn.apiUrl));
  if (!local || (await client.health()).ok) return client;

  await startLocalServer(env, conn.apiUrl);
  // The first start of the local server stored a token in the config file: read it.
  const started = new Mags({ env });
  if (!started.hasToken) {
    throw new Error(
      `the local Mags server is running at ${started.apiUrl}, but no API token is stored in ${configPath(env)}; set MAGS_API_TOKEN`,
    );
  }
  return started;
}
