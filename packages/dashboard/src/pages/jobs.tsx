// The caller's jobs, refreshed every two seconds; run a new script; stop an unfinished job.
import type { JobAccepted, JobList, JobStatus, StopResult } from '@mags/api';
import { useState } from 'react';
import { api, seg } from '../api';
import { duration, relative } from '../format';
import { Link, navigate } from '../navigation';
import { useAction, useResource } from '../resource';
import { ActionForm, DataTable, ErrorText, ScriptField, Section, StatusBadge, SubmitRow, TextField } from '../ui';

const FINISHED = new Set(['completed', 'failed', 'error', 'stopped']);
export const isFinished = (job: JobStatus) => FINISHED.has(job.status);

export function StopButton({ job, onDone }: { job: JobStatus; onDone?: () => void }) {
  const action = useAction();
  if (isFinished(job)) return null;
  return (
    <>
      <button
        type="button"
        className="danger"
        disabled={action.busy}
        onClick={() =>
          action.run(async () => {
            await api<StopResult>('POST', `/mags-jobs/${seg(job.request_id)}/stop`);
            onDone?.();
          })
        }
      >
        {action.busy ? 'Stopping…' : 'Stop'}
      </button>
      <ErrorText error={action.error} />
    </>
  );
}

function RunForm() {
  const [script, setScript] = useState('');
  const [name, setName] = useState('');
  const action = useAction();
  const submit = async () => {
    const accepted = await api<JobAccepted>('POST', '/mags-jobs', {
      script,
      ...(name.trim() ? { name: name.trim() } : {}),
    });
    navigate(`/jobs/${seg(accepted.request_id)}`);
  };
  return (
    <ActionForm action={action} fn={submit}>
      <ScriptField
        id="run-script"
        label="Script (run with /bin/sh -c in a new sandbox)"
        value={script}
        onChange={setScript}
        placeholder="echo hello"
      />
      <TextField id="run-name" label="Name (optional)" value={name} onChange={setName} />
      <SubmitRow id="run-submit" action={action}>
        Run
      </SubmitRow>
    </ActionForm>
  );
}

export function JobsPage() {
  const jobs = useResource<JobList>('/mags-jobs?page_size=50', 2000);
  return (
    <>
      <h1>Jobs</h1>
      <Section title="Run a script">
        <RunForm />
      </Section>
      <Section title="Your jobs">
        <ErrorText error={jobs.error} />
        <DataTable
          id="jobs-table"
          columns={['Job', 'Status', 'Created', 'Ran']}
          rows={jobs.data?.jobs}
          empty="No jobs yet."
          row={(job) => (
            <tr key={job.request_id} data-job={job.request_id}>
              <td>
                <Link href={`/jobs/${seg(job.request_id)}`}>{job.name ?? job.request_id.slice(0, 8)}</Link>
                {job.workspace_id ? <div className="muted small">on {job.workspace_id}</div> : null}
              </td>
              <td>
                <StatusBadge status={job.status} />
                {job.exit_code !== null ? <span className="muted small"> exit {job.exit_code}</span> : null}
              </td>
              <td title={job.created_at}>{relative(job.created_at)}</td>
              <td>{duration(job.script_duration_ms)}</td>
              <td>
                <StopButton job={job} onDone={jobs.reload} />
              </td>
            </tr>
          )}
        />
        {jobs.data && jobs.data.total > jobs.data.jobs.length ? (
          <p className="muted small">
            The newest {jobs.data.jobs.length} of {jobs.data.total}.
          </p>
        ) : null}
      </Section>
    </>
  );
}
