// Following a job's output over a real listening socket: every line exactly once, in order, across the
// handover from stored to live lines, then the end event; and close() ends open streams and long-polls.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { JobStatus, LogEntry } from '@mags/api';
import type { TestServer } from './helpers.js';
import { freshPostgres, startTestServer, waitFor } from './helpers.js';

interface SseEvent {
  event: string;
  id?: string;
  data: string;
}

/** Reads an SSE response to its end, calling `onEvent` as each event arrives. */
async function readSse(res: Response, onEvent: (e: SseEvent) => void = () => undefined): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const decoder = new TextDecoder();
  let buffer = '';
  assert.ok(res.body);
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let cut: number;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (block.startsWith(':')) continue;
      const e: SseEvent = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        const i = line.indexOf(':');
        const [field, value] = [line.slice(0, i), line.slice(i + 1).replace(/^ /, '')];
        if (field === 'event') e.event = value;
        else if (field === 'id') e.id = value;
        else if (field === 'data') e.data += value;
      }
      events.push(e);
      onEvent(e);
    }
  }
  return events;
}

// On PostgreSQL reads are truly asynchronous, which widens the window between subscribing and reading the
// store: the handover is tested on both backends.
for (const backend of ['SQLite', 'PostgreSQL'] as const)
  describe(`following logs over HTTP (${backend})`, () => {
    let t: TestServer;
    let base: string;
    let dropDatabase = async (): Promise<void> => {};
    before(async () => {
      let database: string | undefined;
      if (backend === 'PostgreSQL') {
        const pg = await freshPostgres();
        database = pg.url;
        dropDatabase = pg.drop;
      }
      t = await startTestServer({ agent: { batch: 7 }, database });
      base = await t.server.listen();
    });
    after(async () => {
      const errors = t?.errors() ?? [];
      await t?.close();
      await dropDatabase();
      assert.deepEqual(errors, []);
    });

    async function submit(script: string): Promise<string> {
      const res = await fetch(`${base}/api/v1/mags-jobs`, {
        method: 'POST',
        headers: { ...t.auth, 'content-type': 'application/json' },
        body: JSON.stringify({ script }),
      });
      assert.equal(res.status, 202);
      return ((await res.json()) as { request_id: string }).request_id;
    }

    test('listen() answers with a base URL that serves the API', async () => {
      assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
      const res = await fetch(`${base}/api/v1/health`);
      assert.deepEqual(await res.json(), { ok: true, version: '0.1.0' });
    });

    test('a follower that joins mid-run gets every line once, in order, while lines keep coming, then the end', async () => {
      const agent = t.agent!;
      const id = await submit('manual');
      await agent.until(() => agent.running.has(id));

      // Lines flow continuously, a batch every millisecond, before, during and after the follower connects, so the
      // switch from stored to live lines happens while lines arrive. The pump stops only once the follower has
      // received lines live, so the handover is always exercised, whatever the machine's speed.
      let sent = 0;
      let received = 0;
      let stopPump = false;
      const pump = new Promise<void>((resolve) => {
        const tick = () => {
          if ((stopPump && sent >= 300) || sent >= 20_000) return resolve();
          agent.output(
            id,
            [1, 2, 3].map((i) => `line ${sent + i}`),
            sent % 2 ? 'stderr' : 'stdout',
          );
          sent += 3;
          setTimeout(tick, 1);
        };
        tick();
      });
      while (sent < 90) await new Promise((r) => setTimeout(r, 1));

      const res = await fetch(`${base}/api/v1/mags-jobs/${id}/logs?follow=true`, { headers: t.auth });
      assert.equal(res.status, 200);
      assert.match(String(res.headers.get('content-type')), /^text\/event-stream/);
      const connectedAt = sent;
      const reading = readSse(res, (e) => {
        if (e.event === 'log' && ++received >= connectedAt + 100) stopPump = true;
      });
      await pump;
      agent.exit(id, 0);
      const events = await reading;
      const total = sent;

      const logs = events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data) as LogEntry);
      assert.equal(logs.length, total, 'no line lost, none repeated');
      assert.deepEqual(
        logs.map((l) => l.seq),
        Array.from({ length: total }, (_, i) => i + 1),
      );
      assert.deepEqual(
        logs.map((l) => l.message),
        Array.from({ length: total }, (_, i) => `line ${i + 1}`),
      );
      assert.deepEqual(
        events.filter((e) => e.event === 'log').map((e) => Number(e.id)),
        logs.map((l) => l.seq),
      );
      assert.equal(events.at(-1)?.event, 'end');
      assert.equal(events.filter((e) => e.event === 'end').length, 1);
      const end = JSON.parse(events.at(-1)!.data) as JobStatus;
      assert.equal(end.status, 'completed');
      assert.equal(end.exit_code, 0);
    });

    test('a follower that connects before any output gets live lines as they are produced', async () => {
      const agent = t.agent!;
      const id = await submit('manual');
      await agent.until(() => agent.running.has(id));
      const res = await fetch(`${base}/api/v1/mags-jobs/${id}/logs`, {
        headers: { ...t.auth, accept: 'text/event-stream' },
      });
      const seen: string[] = [];
      let firstArrived!: () => void;
      const first = new Promise<void>((r) => (firstArrived = r));
      const reading = readSse(res, (e) => {
        if (e.event === 'log') {
          seen.push(JSON.parse(e.data).message);
          firstArrived();
        }
      });
      agent.output(id, ['hello']);
      await first; // the line was delivered live, while the job still runs
      assert.deepEqual(seen, ['hello']);
      agent.output(id, ['oops'], 'stderr');
      agent.exit(id, 2);
      const events = await reading;
      assert.deepEqual(
        events.map((e) => e.event),
        ['log', 'log', 'end'],
      );
      assert.deepEqual(JSON.parse(events[1].data), {
        ...JSON.parse(events[1].data),
        seq: 2,
        level: 'error',
        stream: 'stderr',
        message: 'oops',
      });
      assert.equal((JSON.parse(events[2].data) as JobStatus).status, 'failed');
    });

    test('resending output (as after a reconnect) never duplicates lines for followers or in the store', async () => {
      const other = await startTestServer({ agent: { resendOutput: true, batch: 2 } });
      try {
        const url = await other.server.listen();
        const res = await fetch(`${url}/api/v1/mags-jobs`, {
          method: 'POST',
          headers: { ...other.auth, 'content-type': 'application/json' },
          body: JSON.stringify({ script: 'manual' }),
        });
        const id = ((await res.json()) as { request_id: string }).request_id;
        await other.agent!.until(() => other.agent!.running.has(id));
        const follow = await fetch(`${url}/api/v1/mags-jobs/${id}/logs?follow=true`, { headers: other.auth });
        const reading = readSse(follow);
        for (let i = 1; i <= 10; i++) other.agent!.output(id, [`l${i}`]);
        other.agent!.exit(id, 0);
        const events = await reading;
        assert.deepEqual(
          events.filter((e) => e.event === 'log').map((e) => JSON.parse(e.data).message),
          Array.from({ length: 10 }, (_, i) => `l${i + 1}`),
        );
        const stored = await fetch(`${url}/api/v1/mags-jobs/${id}/logs`, { headers: other.auth });
        assert.equal(((await stored.json()) as { logs: unknown[] }).logs.length, 10);
      } finally {
        await other.close();
      }
    });

    test('close() ends open log streams and answers pending long-polls', async () => {
      const other = await startTestServer();
      const url = await other.server.listen();
      const res = await fetch(`${url}/api/v1/mags-jobs`, {
        method: 'POST',
        headers: { ...other.auth, 'content-type': 'application/json' },
        body: JSON.stringify({ script: 'hang' }),
      });
      const id = ((await res.json()) as { request_id: string }).request_id;
      await other.agent!.until(() => other.agent!.running.has(id));
      const follow = await fetch(`${url}/api/v1/mags-jobs/${id}/logs?follow=true`, { headers: other.auth });
      const reading = readSse(follow).catch(() => []);
      const poll = fetch(`${url}/api/v1/mags-jobs/${id}/status?wait=60`, { headers: other.auth });
      // Close only once both are waiting on the job (the follower and the long-poll each listen for its events).
      await waitFor(() => other.server.events.listenerCount(id) >= 2, 'the follower and the long-poll waiting');
      await other.close();
      const answered = await poll;
      assert.equal(answered.status, 200);
      assert.equal(((await answered.json()) as JobStatus).status, 'running');
      await reading; // resolves: the stream was ended by the server
    });
  });
