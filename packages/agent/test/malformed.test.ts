// What the agent answers to a message from the server that breaks the protocol: a start it cannot read ends its
// job as an error, an order it cannot read is refused; otherwise the job would wait for ever and the order time out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseAgentMessage, parseServerMessage } from '@mags/api';
import { answerToMalformed } from '../src/malformed.js';

function answer(raw: unknown) {
  const parsed = parseServerMessage(raw);
  assert.ok(!parsed.ok, 'the message is malformed');
  return answerToMalformed(raw, parsed.type, parsed.reason);
}

test('a start it cannot read ends the job as an error that names the field; the server accepts the answer', () => {
  const reply = answer({ type: 'start', sandbox: { jobId: 'job-1', script: 'echo', memoryMb: 'lots' } });
  assert.ok(reply && reply.type === 'exited');
  assert.equal(reply.jobId, 'job-1');
  assert.equal(reply.exitCode, null);
  assert.equal(reply.reason, 'error');
  assert.match(
    reply.message ?? '',
    /^the agent could not read the server's start message \(start: sandbox .*\); the server and the agent may be different versions$/,
  );
  assert.ok(parseAgentMessage(reply).ok);
});

test('an order it cannot read is refused with a 500 the server accepts', () => {
  for (const raw of [
    { type: 'resize', requestId: 'r-1', workspace: { owner: 'u', name: '..' }, diskGb: 4 },
    { type: 'snapshot', requestId: 'r-1' }, // an order of a newer server
  ]) {
    const reply = answer(raw);
    assert.ok(reply && reply.type === 'reply' && !reply.ok, JSON.stringify(raw));
    assert.equal(reply.requestId, 'r-1');
    assert.equal(reply.status, 500);
    assert.equal(reply.code, 'internal');
    assert.ok(parseAgentMessage(reply).ok);
  }
});

test('an exec it cannot read ends as an error the server accepts, so its client is answered', () => {
  const reply = answer({ type: 'exec', execId: 'e-1', jobId: 'j', command: 'ls', environment: {}, stdin: 'yes' });
  assert.ok(reply && reply.type === 'execExited');
  assert.equal(reply.execId, 'e-1');
  assert.equal(reply.exitCode, null);
  assert.equal(reply.reason, 'error');
  assert.match(reply.message ?? '', /could not read the server's exec message/);
  assert.ok(parseAgentMessage(reply).ok);
});

test('a message that names nothing to answer is only dropped', () => {
  const nothingNamed = [
    null,
    'start',
    [],
    {},
    { type: 'stop' },
    { type: 'stop', jobId: 7 },
    { type: 'stop', requestId: 'r' },
    { type: 'start' },
    { type: 'start', sandbox: null },
    { type: 'start', sandbox: { jobId: 9 } },
    { type: 'sync', requestId: 5 },
    { type: 'exec', execId: 5 },
    { type: 'execInput', execId: 'e', data: '!' },
  ];
  for (const raw of nothingNamed) {
    assert.equal(answer(raw), undefined, JSON.stringify(raw));
  }
});
