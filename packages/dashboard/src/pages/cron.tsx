// Cron jobs: add one (a 5-field schedule, a script, optionally a workspace and a time zone), see its next firing,
// enable, disable, remove.
import type { CronJob, CronList } from '@mags/api';
import { useState } from 'react';
import { api, seg } from '../api';
import { relative, when } from '../format';
import { Link } from '../navigation';
import { useAction, useResource } from '../resource';
import {
  ActionForm,
  DeleteButton,
  Errors,
  ErrorText,
  ItemList,
  ScriptField,
  Section,
  SubmitRow,
  TextField,
} from '../ui';

function AddCron({ onAdded }: { onAdded: () => void }) {
  const [name, setName] = useState('');
  const [schedule, setSchedule] = useState('*/5 * * * *');
  const [script, setScript] = useState('');
  const [workspace, setWorkspace] = useState('');
  const [timezone, setTimezone] = useState('');
  const action = useAction();
  const submit = async () => {
    await api<CronJob>('POST', '/mags-cron', {
      name: name.trim(),
      cron_expression: schedule.trim(),
      script,
      ...(workspace.trim() ? { workspace_id: workspace.trim() } : {}),
      ...(timezone.trim() ? { timezone: timezone.trim() } : {}),
    });
    setName('');
    setScript('');
    onAdded();
  };
  return (
    <ActionForm action={action} fn={submit}>
      <TextField id="cron-name" label="Name" required value={name} onChange={setName} />
      <TextField
        id="cron-schedule"
        label="Schedule (minute hour day-of-month month day-of-week)"
        className="mono"
        required
        value={schedule}
        onChange={setSchedule}
      />
      <ScriptField id="cron-script" label="Script" value={script} onChange={setScript} />
      <TextField id="cron-workspace" label="Workspace (optional)" value={workspace} onChange={setWorkspace} />
      <TextField
        id="cron-timezone"
        label="Time zone (optional, e.g. Europe/Berlin; default UTC)"
        value={timezone}
        onChange={setTimezone}
      />
      <SubmitRow id="cron-add" action={action}>
        Add cron job
      </SubmitRow>
    </ActionForm>
  );
}

/** A cron job's latest firings (run or skipped), loaded when opened. */
function Firings({ id }: { id: string }) {
  const cron = useResource<CronJob>(`/mags-cron/${seg(id)}`, 10_000);
  const runs = cron.data?.runs ?? [];
  return (
    <div>
      <ErrorText error={cron.error} />
      {cron.data && runs.length === 0 ? <p className="muted small">It has not fired yet.</p> : null}
      {runs.length > 0 ? (
        <ul className="small">
          {runs.map((r) => (
            <li key={r.scheduled_at}>
              {when(r.scheduled_at)}: {r.status}
              {r.job_id ? (
                <>
                  {' '}
                  (<Link href={`/jobs/${seg(r.job_id)}`}>job</Link>)
                </>
              ) : null}
              {r.reason ? ` (${r.reason})` : ''}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

/** Closed, it loads nothing. */
function FiringsToggle({ id }: { id: string }) {
  const [open, setOpen] = useState(false);
  return (
    <details onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Latest firings</summary>
      {open ? <Firings id={id} /> : null}
    </details>
  );
}

export function CronPage() {
  const list = useResource<CronList>('/mags-cron', 5000);
  const action = useAction();
  const update = (c: CronJob, enabled: boolean) =>
    action.run(async () => {
      await api<CronJob>('PATCH', `/mags-cron/${seg(c.id)}`, { enabled });
      list.reload();
    });
  return (
    <>
      <h1>Cron</h1>
      <Section title="Add a cron job">
        <AddCron onAdded={list.reload} />
      </Section>
      <Section title="Your cron jobs">
        <Errors errors={[list.error, action.error]} />
        <ItemList
          items={list.data?.cron_jobs}
          empty="No cron jobs."
          item={(c) => (
            <article key={c.id} className="item" data-cron={c.name}>
              <h3>
                {c.name} <span className="badge">{c.enabled ? 'enabled' : 'disabled'}</span>
              </h3>
              <p className="small">
                <span className="mono">{c.cron_expression}</span> ({c.timezone ?? 'UTC'})
                {c.workspace_id ? ` on ${c.workspace_id}${c.persistent ? ' (persistent)' : ''}` : ''}
              </p>
              <p className="small">
                Next run:{' '}
                <span className="next-run" title={c.next_run_at ?? ''}>
                  {c.next_run_at ? `${when(c.next_run_at)} (${relative(c.next_run_at)})` : 'none while disabled'}
                </span>
                {c.last_run_at ? (
                  <>
                    {' '}
                    · last {relative(c.last_run_at)} {c.last_status}
                    {c.last_job_id ? (
                      <>
                        {' '}
                        (<Link href={`/jobs/${seg(c.last_job_id)}`}>its job</Link>)
                      </>
                    ) : null}
                  </>
                ) : null}
              </p>
              <FiringsToggle id={c.id} />
              <div className="actions">
                <button type="button" disabled={action.busy} onClick={() => update(c, !c.enabled)}>
                  {c.enabled ? 'Disable' : 'Enable'}
                </button>
                <DeleteButton
                  label="Remove"
                  confirm={`Remove ${c.name}`}
                  action={action}
                  path={`/mags-cron/${seg(c.id)}`}
                  then={list.reload}
                />
              </div>
            </article>
          )}
        />
      </Section>
    </>
  );
}
