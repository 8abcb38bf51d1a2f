// One job: its status, its script, and its output following live over Server-Sent Events (GET …/logs?follow=true,
// which the browser resumes by itself after a dropped connection); stop it, or delete it once finished.
import type { JobStatus, LogEntry } from '@mags/api';
import { useEffect, useRef, useState } from 'react';
import { api, seg } from '../api';
import { duration, when } from '../format';
import { navigate } from '../navigation';
import { messageOf, useAction, useResource } from '../resource';
import { DeleteButton, ErrorText, Section, StatusBadge } from '../ui';
import { isFinished, StopButton } from './jobs';

/** Lines kept on the page; older ones are dropped from view (the API still has them). */
const MAX_LINES = 5000;

function useLogs(id: string, onEnd: (job: JobStatus) => void) {
  const [lines, setLines] = useState<LogEntry[]>([]);
  const [state, setState] = useState<'following' | 'ended' | 'failed'>('following');
  const [error, setError] = useState<string>();
  const onEndRef = useRef(onEnd);
  onEndRef.current = onEnd;
  useEffect(() => {
    let last = 0;
    const source = new EventSource(`/api/v1/mags-jobs/${seg(id)}/logs?follow=true`);
    source.addEventListener('log', (e) => {
      const entry = JSON.parse((e as MessageEvent<string>).data) as LogEntry;
      if (entry.seq <= last) return;
      last = entry.seq;
      setLines((prev) => {
        const next = prev.length >= MAX_LINES ? prev.slice(prev.length - MAX_LINES + 1) : prev.slice();
        next.push(entry);
        return next;
      });
    });
    source.addEventListener('end', (e) => {
      source.close();
      setState('ended');
      onEndRef.current(JSON.parse((e as MessageEvent<string>).data) as JobStatus);
    });
    source.addEventListener('error', () => {
      // The browser retries a dropped stream by itself; a refused one (404, 429) is closed: ask for the sentence.
      if (source.readyState !== EventSource.CLOSED) return;
      setState('failed');
      api('GET', `/mags-jobs/${seg(id)}/logs?limit=1`).then(
        () => setError('the output stream closed; reload the page to follow it again'),
        (err) => setError(messageOf(err)),
      );
    });
    return () => source.close();
  }, [id]);
  return { lines, state, error };
}

export function JobPage({ id }: { id: string }) {
  const status = useResource<JobStatus>(`/mags-jobs/${seg(id)}/status`);
  const [ended, setEnded] = useState<JobStatus>();
  const logs = useLogs(id, setEnded);
  const job = ended ?? status.data;
  const remove = useAction();
  const follow = useRef(true);
  const pre = useRef<HTMLPreElement>(null);
  // biome-ignore lint/correctness/useExhaustiveDependencies: scrolls when lines arrive
  useEffect(() => {
    const el = pre.current;
    if (el && follow.current) el.scrollTop = el.scrollHeight;
  }, [logs.lines]);
  // While it runs, the status is refreshed now and then (the stream's end event gives the final one).
  const { reload } = status;
  useEffect(() => {
    if (!job || isFinished(job)) return;
    const t = setInterval(reload, 3000);
    return () => clearInterval(t);
  }, [job, reload]);

  return (
    <>
      <h1>
        Job <span className="mono">{job?.name ?? id}</span>
      </h1>
      <ErrorText error={status.error} />
      {job ? (
        <Section title="Status">
          <dl className="facts">
            <dt>Status</dt>
            <dd>
              <span id="job-status">
                <StatusBadge status={job.status} />
              </span>
              {job.exit_code !== null ? <> exit code {job.exit_code}</> : null}
            </dd>
            <dt>Id</dt>
            <dd className="mono">{job.request_id}</dd>
            {job.workspace_id ? (
              <>
                <dt>Workspace</dt>
                <dd>{job.workspace_id}</dd>
              </>
            ) : null}
            <dt>Created</dt>
            <dd>{when(job.created_at)}</dd>
            {job.script_duration_ms !== null ? (
              <>
                <dt>Ran for</dt>
                <dd>{duration(job.script_duration_ms)}</dd>
              </>
            ) : null}
            {job.url ? (
              <>
                <dt>URL</dt>
                <dd>
                  <a href={job.url} target="_blank" rel="noreferrer">
                    {job.url}
                  </a>
                </dd>
              </>
            ) : null}
            {job.error_message ? (
              <>
                <dt>Error</dt>
                <dd>{job.error_message}</dd>
              </>
            ) : null}
          </dl>
          {job.script ? (
            <details>
              <summary>Script</summary>
              <pre className="code">{job.script}</pre>
            </details>
          ) : null}
          <div className="actions">
            <StopButton job={job} onDone={status.reload} />
            {isFinished(job) ? (
              <DeleteButton
                label="Delete job"
                confirm="Delete it and its output"
                action={remove}
                path={`/mags-jobs/${seg(job.request_id)}`}
                then={() => navigate('/jobs')}
              />
            ) : null}
          </div>
          <ErrorText error={remove.error} />
        </Section>
      ) : null}
      <Section title="Output">
        <p className="muted small" role="status">
          {logs.state === 'following' ? 'Following live…' : logs.state === 'ended' ? 'The job has ended.' : ''}
        </p>
        <ErrorText error={logs.error} />
        <pre
          id="logs"
          className="logs"
          ref={pre}
          role="log"
          // biome-ignore lint/a11y/noNoninteractiveTabindex: the output scrolls; the keyboard must reach it
          tabIndex={0}
          aria-label="Job output"
          onScroll={(e) => {
            const el = e.currentTarget;
            follow.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
          }}
        >
          {logs.lines.map((l) => (
            <span key={l.seq} className={`line ${l.stream}`} data-seq={l.seq}>
              {l.stream === 'system' ? `mags: ${l.message}` : l.message}
              {'\n'}
            </span>
          ))}
        </pre>
      </Section>
    </>
  );
}
