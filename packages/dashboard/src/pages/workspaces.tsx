// Workspaces: size and versions; a persistent one's versions, each of which it can be rolled back to (the rollback
// becomes a new version); delete.
import type { WorkspaceList, WorkspaceRestored, WorkspaceVersions } from '@mags/api';
import { useState } from 'react';
import { api, seg } from '../api';
import { bytes, relative, when } from '../format';
import { useAction, useResource } from '../resource';
import { ConfirmAction, DataTable, DeleteButton, Errors, ErrorText, ItemList, Section } from '../ui';

function Versions({ name, onChange }: { name: string; onChange: () => void }) {
  const versions = useResource<WorkspaceVersions>(`/mags-workspaces/${seg(name)}/versions`);
  const action = useAction();
  const [done, setDone] = useState<string>();
  return (
    <div className="versions">
      <ErrorText error={versions.error} />
      <DataTable
        caption={`Versions of ${name}`}
        columns={['Version', 'Made', 'Files', 'Size']}
        rows={versions.data?.versions}
        empty={<p className="muted small">No versions yet: a persistent workspace gets one at every sync.</p>}
        row={(v) => (
          <tr key={v.version}>
            <td>
              {v.version}
              {v.current ? <span className="badge">current</span> : null}
            </td>
            <td title={when(v.created_at)}>{relative(v.created_at)}</td>
            <td>{v.files}</td>
            <td>{bytes(v.bytes)}</td>
            <td>
              {v.current ? null : (
                <ConfirmAction
                  label="Restore"
                  confirm={`Roll back to version ${v.version}`}
                  action={action}
                  fn={async () => {
                    const r = await api<WorkspaceRestored>('POST', `/mags-workspaces/${seg(name)}/restore`, {
                      version: v.version,
                    });
                    setDone(`Restored version ${r.restored_from} as version ${r.version}.`);
                    versions.reload();
                    onChange();
                  }}
                />
              )}
            </td>
          </tr>
        )}
      />
      <ErrorText error={action.error} />
      {done ? <p role="status">{done}</p> : null}
    </div>
  );
}

export function WorkspacesPage() {
  const list = useResource<WorkspaceList>('/mags-workspaces', 5000);
  const [open, setOpen] = useState<string>();
  const action = useAction();
  return (
    <>
      <h1>Workspaces</h1>
      <Section title="Your workspaces">
        <Errors errors={[list.error, action.error]} />
        <ItemList
          items={list.data?.workspaces}
          empty="No workspaces yet: a job or sandbox started with a workspace name makes one."
          item={(w) => (
            <article key={w.name} className="item" data-workspace={w.name}>
              <h3>
                {w.name} <span className="badge">{w.mode}</span>
                {w.in_use_by ? <span className="badge status-running">in use</span> : null}
              </h3>
              <p className="small">
                {bytes(w.size_bytes)} in {w.files} files · disk {w.disk_gb} GB
                {w.mode === 'persistent' ? ` · ${w.versions} versions (current ${w.current_version ?? 'none'})` : ''}
                {w.base ? ` · forked from ${w.base}` : ''}
                {w.last_used_at ? ` · used ${relative(w.last_used_at)}` : ''}
                {w.expires_at ? ` · deleted ${relative(w.expires_at)} unless used` : ''}
              </p>
              <div className="actions">
                {w.mode === 'persistent' ? (
                  <button
                    type="button"
                    aria-expanded={open === w.name}
                    onClick={() => setOpen(open === w.name ? undefined : w.name)}
                  >
                    Versions
                  </button>
                ) : null}
                <DeleteButton
                  confirm={`Delete ${w.name} and all its versions`}
                  action={action}
                  disabled={w.in_use_by !== null}
                  path={`/mags-workspaces/${seg(w.name)}`}
                  then={list.reload}
                />
              </div>
              {open === w.name ? <Versions name={w.name} onChange={list.reload} /> : null}
            </article>
          )}
        />
      </Section>
    </>
  );
}
