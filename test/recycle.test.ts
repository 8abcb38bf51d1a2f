// The agent hands an emptied writable layer from one sandbox to the next (packages/agent/src/layers.ts). A user would
// notice if a job could see anything an earlier job (maybe another user's) left: files anywhere, processes, shared
// memory, temporary files, its environment, listening sockets or connection state.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Mags } from '@mags/sdk';
import { startServer, type TestServer } from './harness.js';

let server: TestServer;
let mags: Mags;

before(async () => {
  server = await startServer(['--instance', `r${randomBytes(2).toString('hex')}`]);
  mags = new Mags({ apiUrl: server.url, apiToken: server.token });
});

after(async () => {
  await server?.stop();
});

const output = (r: { logs: Array<{ stream: string; message: string }> }) =>
  r.logs
    .filter((l) => l.stream === 'stdout')
    .map((l) => l.message)
    .join('\n');

test('a job finds nothing that an earlier job on this host left behind', async () => {
  const mark = `left${randomBytes(6).toString('hex')}`;
  // Job A leaves everything it can: files everywhere it may write, a setuid copy, a fifo, shared memory, processes
  // that ignore hangups in sessions of their own, listening TCP and UDP sockets, connections, an exported variable.
  const a = await mags.runAndWait(
    `
    set -e
    for d in / /root /tmp /var/tmp /dev/shm /run /etc /usr/local/bin /home; do echo ${mark} > $d/${mark} || true; done
    mkfifo /tmp/${mark}.fifo; cp /bin/sh /tmp/${mark}.suid; chmod 4755 /tmp/${mark}.suid
    export ${mark}=1; echo "export ${mark}=1" >> /root/.profile
    setsid nohup sleep 600 >/dev/null 2>&1 &
    setsid nohup perl -e 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 40123, Listen => 5, ReuseAddr => 1) or die; $0 = "${mark}"; sleep 600' >/dev/null 2>&1 &
    setsid nohup perl -e 'use IO::Socket::INET; my $s = IO::Socket::INET->new(LocalPort => 40124, Proto => "udp") or die; sleep 600' >/dev/null 2>&1 &
    python3 -c 'import socket; s = socket.socket(); s.settimeout(1)
try: s.connect(("1.1.1.1", 80))
except Exception: pass' || true
    sleep 0.3
    ss -ltnu | grep -c 4012 || true
    echo done
    `,
    { timeout: 60_000 },
  );
  assert.equal(a.status, 'completed', JSON.stringify(a.logs));
  assert.match(output(a), /done/);

  // Several jobs after it, so that the layers in circulation (A's among them) are all handed on.
  for (let i = 0; i < 6; i++) {
    const b = await mags.runAndWait(
      `
      grep -rls ${mark} /root /tmp /var /dev/shm /run /etc /home /usr/local 2>/dev/null | head -5
      ls -A / /root /tmp /var/tmp /dev/shm /run /home 2>/dev/null | grep ${mark} || true
      env | grep ${mark} || true
      ps -eo comm --no-headers
      ss -ltnuH | grep -e 40123 -e 40124 || true
      cat /proc/net/nf_conntrack 2>/dev/null | head -3
      echo checked
      `,
      { timeout: 60_000 },
    );
    assert.equal(b.status, 'completed', JSON.stringify(b.logs));
    const out = output(b);
    assert.match(out, /checked/);
    assert.doesNotMatch(out, new RegExp(mark), `job ${i + 1} after it saw what it left: ${out}`);
    assert.doesNotMatch(out, /sleep|perl|python|4012[34]/, `job ${i + 1} after it saw its processes: ${out}`);
  }
});
