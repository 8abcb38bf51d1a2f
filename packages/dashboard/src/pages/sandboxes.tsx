// Sandboxes: the caller's unfinished jobs (each holds a sandbox, or sleeps without one). Start a long-lived one
// (as `mags new`), run commands in it (the exec box), open its URL, let it sleep or keep it up (PATCH no_sleep), stop.
import type { ExecResult, JobAccepted, JobList, JobStatus } from '@mags/api';
import { useId, useState } from 'react';
import { api, seg } from '../api';
import { relative } from '../format';
import { Link } from '../navigation';
import { useAction, useResource } from '../resource';
import { ActionForm, CheckboxField, ErrorText, Section, StatusBadge, SubmitRow, TextField } from '../ui';
import { StopButton } from './jobs';

function ExecBox({ job }: { job: JobStatus }) {
  const [command, setCommand] = useState('');
  const [result, setResult] = useState<ExecResult>();
  const action = useAction();
  const id = useId();
  const submit = async () => {
    setResult(undefined);
    setResult(await api<ExecResult>('POST', `/mags-jobs/${seg(job.request_id)}/exec`, { command }));
  };
  return (
    <ActionForm action={action} fn={submit} className="exec">
      <label htmlFor={`${id}-cmd`}>Run a command in it</label>
      <div className="row">
        <input
          id={`${id}-cmd`}
          className="mono grow exec-command"
          required
          value={command}
          onChange={(e) => setCommand(e.target.value)}
          placeholder="ls -la /root"
          autoComplete="off"
          spellCheck={false}
        />
        <button type="submit" className="exec-run" disabled={action.busy}>
          {action.busy ? 'Running…' : 'Run'}
        </button>
      </div>
      <ErrorText error={action.error} />
      {result ? (
        <div className="exec-result">
          <pre className="code exec-output">
            {result.stdout}
            {result.stderr ? <span className="stderr">{result.stderr}</span> : null}
          </pre>
          <p className="small muted exec-exit">
            exit code {result.exit_code}
            {result.reason !== 'exited' ? ` (${result.reason})` : ''}
            {result.truncated ? ', output truncated' : ''}
          </p>
        </div>
      ) : null}
    </ActionForm>
  );
}

function SleepToggle({ job, onChange }: { job: JobStatus; onChange: () => void }) {
  const action = useAction();
  const [noSleep, setNoSleep] = useState(job.no_sleep === true);
  const id = useId();
  if (!job.long_lived) return null;
  return (
    <div>
      <input
        type="checkbox"
        id={id}
        className="no-sleep"
        checked={noSleep}
        disabled={action.busy}
        onChange={(e) => {
          const want = e.target.checked;
          void action.run(async () => {
            const updated = await api<JobStatus>('PATCH', `/mags-jobs/${seg(job.request_id)}`, { no_sleep: want });
            setNoSleep(updated.no_sleep === true);
            onChange();
          });
        }}
      />{' '}
      <label htmlFor={id}>Never sleep (always on; needs a persistent workspace)</label>
      <ErrorText error={action.error} />
    </div>
  );
}

function NewSandbox({ onCreated }: { onCreated: () => void }) {
  const [workspace, setWorkspace] = useState('');
  const [persistent, setPersistent] = useState(false);
  const [url, setUrl] = useState(false);
  const action = useAction();
  const submit = async () => {
    await api<JobAccepted>('POST', '/mags-jobs', {
      long_lived: true,
      workspace_id: workspace.trim(),
      ...(persistent ? { persistent: true } : {}),
      ...(url ? { url: true } : {}),
    });
    setWorkspace('');
    onCreated();
  };
  return (
    <ActionForm action={action} fn={submit}>
      <TextField
        id="new-workspace"
        label="Workspace name"
        required
        value={workspace}
        onChange={setWorkspace}
        placeholder="dev"
      />
      <CheckboxField
        id="new-persistent"
        label="Persistent (kept in the object store)"
        checked={persistent}
        onChange={setPersistent}
      />
      <CheckboxField id="new-url" label="Open a URL to port 8080 (needs persistent)" checked={url} onChange={setUrl} />
      <SubmitRow id="new-sandbox" action={action}>
        Start sandbox
      </SubmitRow>
    </ActionForm>
  );
}

export function SandboxesPage() {
  const jobs = useResource<JobList>('/mags-jobs?page_size=100', 3000);
  const live = jobs.data?.jobs.filter((j) => ['accepted', 'running', 'sleeping'].includes(j.status)) ?? [];
  return (
    <>
      <h1>Sandboxes</h1>
      <Section title="Start a sandbox">
        <NewSandbox onCreated={jobs.reload} />
      </Section>
      <ErrorText error={jobs.error} />
      {jobs.data && live.length === 0 ? <p className="muted">No sandbox is up.</p> : null}
      {live.map((job) => {
        const label = job.name ?? job.workspace_id ?? job.request_id.slice(0, 8);
        return (
          <section key={job.request_id} className="card sandbox" data-sandbox={label} aria-label={`Sandbox ${label}`}>
            <h2>
              <Link href={`/jobs/${seg(job.request_id)}`}>{label}</Link> <StatusBadge status={job.status} />
            </h2>
            <p className="small muted">
              {job.workspace_id ? <>workspace {job.workspace_id} · </> : null}
              {job.long_lived ? 'long-lived' : 'running a script'} · started{' '}
              {relative(job.started_at ?? job.created_at)}
              {job.vm_id === null && job.status === 'sleeping' ? ' · stopped while asleep (wakes on use)' : ''}
            </p>
            {job.url ? (
              <p>
                URL:{' '}
                <a href={job.url} target="_blank" rel="noreferrer">
                  {job.url}
                </a>
              </p>
            ) : null}
            <SleepToggle key={`${job.request_id}-${job.no_sleep}`} job={job} onChange={jobs.reload} />
            {job.status === 'accepted' ? <p className="muted small">Starting…</p> : <ExecBox job={job} />}
            <div className="actions">
              <StopButton job={job} onDone={jobs.reload} />
            </div>
          </section>
        );
      })}
    </>
  );
}
