// Workspaces: size and versions; a persistent one's versions, each of which it can be rolled back to (the rollback
// becomes a new version); delete.
import type { WorkspaceList, WorkspaceRestored, WorkspaceVersions } from '@mags/api';
import { useState } from 'react';
import { api, seg } from '../api';
import { bytes, relative, when } from '../format';
import { ConfirmButton, ErrorText, Section, useAction, useResource } from '../ui';

function Versions({ name, onChange }: { name: string; onChange: () => void }) {
  const versions = useResource<WorkspaceVersions>(`/mags-workspaces/${seg(name)}/versions`);
  const action = useAction();
  const [done, setDone] = useState<string>();
  return (
    <div className="versions">
      <ErrorText error={versions.error} />
      {versions.data && versions.data.versions.length === 0 ? (
        <p className="muted small">No versions yet: a persistent workspace gets one at every sync.</p>
      ) : null}
      {versions.data && versions.data.versions.length > 0 ? (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Versions of {name}</caption>
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Made</th>
                <th scope="col">Files</th>
                <th scope="col">Size</th>
                <th scope="col">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {versions.data.versions.map((v) => (
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
                      <ConfirmButton
                        label="Restore"
                        confirm={`Roll back to version ${v.version}`}
                        disabled={action.busy}
                        onConfirm={() =>
                          action.run(async () => {
                            const r = await api<WorkspaceRestored>('POST', `/mags-workspaces/${seg(name)}/restore`, {
                              version: v.version,
                            });
                            setDone(`Restored version ${r.restored_from} as version ${r.version}.`);
                            versions.reload();
                            onChange();
                          })
                        }
                      />
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
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
        <ErrorText error={list.error} />
        <ErrorText error={action.error} />
        {list.data && list.data.workspaces.length === 0 ? (
          <p className="muted">No workspaces yet: a job or sandbox started with a workspace name makes one.</p>
        ) : null}
        {list.data?.workspaces.map((w) => (
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
              <ConfirmButton
                label="Delete"
                confirm={`Delete ${w.name} and all its versions`}
                disabled={action.busy || w.in_use_by !== null}
                onConfirm={() =>
                  action.run(async () => {
                    await api('DELETE', `/mags-workspaces/${seg(w.name)}`);
                    list.reload();
                  })
                }
              />
            </div>
            {open === w.name ? <Versions name={w.name} onChange={list.reload} /> : null}
          </article>
        ))}
      </Section>
    </>
  );
}
