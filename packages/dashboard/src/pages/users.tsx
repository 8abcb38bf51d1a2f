// Users (the owner only): add one (its one-time sign-in link and first token are shown once), list, remove.
import type { Me, UserCreated, UserList, UserRemoved } from '@mags/api';
import { type FormEvent, useState } from 'react';
import { api, seg } from '../api';
import { relative, when } from '../format';
import { ConfirmButton, CopyButton, ErrorText, Section, useAction, useResource } from '../ui';

export function UsersPage({ me }: { me: Me }) {
  const list = useResource<UserList>(me.owner ? '/users' : null);
  const add = useAction();
  const remove = useAction();
  const [name, setName] = useState('');
  const [added, setAdded] = useState<UserCreated>();
  const [removed, setRemoved] = useState<UserRemoved>();
  const [deleteData, setDeleteData] = useState(false);
  if (!me.owner) {
    return (
      <>
        <h1>Users</h1>
        <p>Only the server’s owner manages users.</p>
      </>
    );
  }
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void add.run(async () => {
      setAdded(await api<UserCreated>('POST', '/users', { name: name.trim() }));
      setName('');
      list.reload();
    });
  };
  return (
    <>
      <h1>Users</h1>
      <Section title="Add a user">
        <form onSubmit={submit} className="stack">
          <label htmlFor="user-name">Name</label>
          <input id="user-name" required value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
          <div>
            <button type="submit" id="user-add" disabled={add.busy}>
              Add user
            </button>
          </div>
          <ErrorText error={add.error} />
        </form>
        {added ? (
          <section className="secret" aria-label="The new user">
            <p>
              <strong>Send {added.name} this one-time sign-in link</strong> (valid 7 days; it lets them choose a
              password). It is shown only this once.
            </p>
            <div className="row">
              <input
                id="user-link"
                className="mono grow"
                readOnly
                value={added.signin_url}
                aria-label="One-time sign-in link"
              />
              <CopyButton text={added.signin_url} />
            </div>
            <p className="small">Their first API token (also shown once):</p>
            <div className="row">
              <input className="mono grow" readOnly value={added.token} aria-label="The user's first token" />
              <CopyButton text={added.token} />
            </div>
            <button type="button" onClick={() => setAdded(undefined)}>
              Done
            </button>
          </section>
        ) : null}
      </Section>
      <Section title="Users of this server">
        <ErrorText error={list.error} />
        <ErrorText error={remove.error} />
        {removed ? (
          <p role="status">
            Removed {removed.name}: {removed.jobs_stopped} sandboxes stopped,{' '}
            {removed.data_deleted ? 'their data deleted' : 'their data kept'}.
          </p>
        ) : null}
        <div>
          <input
            id="delete-data"
            type="checkbox"
            checked={deleteData}
            onChange={(e) => setDeleteData(e.target.checked)}
          />{' '}
          <label htmlFor="delete-data">Removing a user also deletes their jobs, workspaces and files</label>
        </div>
        {list.data ? (
          <div className="table-wrap">
            <table id="users-table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Added</th>
                  <th scope="col">Password</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.users.map((u) => (
                  <tr key={u.user_id} data-user={u.name}>
                    <td>
                      {u.name}
                      {u.owner ? <span className="badge">owner</span> : null}
                    </td>
                    <td title={when(u.created_at)}>{relative(u.created_at)}</td>
                    <td>{u.has_password ? 'set' : 'not yet'}</td>
                    <td>
                      {u.owner ? null : (
                        <ConfirmButton
                          label="Remove"
                          confirm={deleteData ? `Remove ${u.name} and delete their data` : `Remove ${u.name}`}
                          disabled={remove.busy}
                          onConfirm={() =>
                            remove.run(async () => {
                              setRemoved(
                                await api<UserRemoved>(
                                  'DELETE',
                                  `/users/${seg(u.name)}${deleteData ? '?delete_data=true' : ''}`,
                                ),
                              );
                              list.reload();
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
      </Section>
    </>
  );
}
