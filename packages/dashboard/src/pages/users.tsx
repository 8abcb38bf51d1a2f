// Users (the owner only): add one (its one-time sign-in link and first token are shown once), list, remove.
import type { Me, UserCreated, UserList, UserRemoved } from '@mags/api';
import { useState } from 'react';
import { api, seg } from '../api';
import { relative, when } from '../format';
import { useAction, useResource } from '../resource';
import {
  ActionForm,
  CheckboxField,
  ConfirmAction,
  DataTable,
  Errors,
  SecretField,
  Section,
  ShownOnce,
  SubmitRow,
  TextField,
} from '../ui';

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
  const submit = async () => {
    setAdded(await api<UserCreated>('POST', '/users', { name: name.trim() }));
    setName('');
    list.reload();
  };
  return (
    <>
      <h1>Users</h1>
      <Section title="Add a user">
        <ActionForm action={add} fn={submit}>
          <TextField id="user-name" label="Name" required value={name} onChange={setName} />
          <SubmitRow id="user-add" action={add}>
            Add user
          </SubmitRow>
        </ActionForm>
        {added ? (
          <ShownOnce label="The new user" onDone={() => setAdded(undefined)}>
            <p>
              <strong>Send {added.name} this one-time sign-in link</strong> (valid 7 days; it lets them choose a
              password). It is shown only this once.
            </p>
            <SecretField id="user-link" label="One-time sign-in link" value={added.signin_url} />
            <p className="small">Their first API token (also shown once):</p>
            <SecretField label="The user's first token" value={added.token} />
          </ShownOnce>
        ) : null}
      </Section>
      <Section title="Users of this server">
        <Errors errors={[list.error, remove.error]} />
        {removed ? (
          <p role="status">
            Removed {removed.name}: {removed.jobs_stopped} sandboxes stopped,{' '}
            {removed.data_deleted ? 'their data deleted' : 'their data kept'}.
          </p>
        ) : null}
        <CheckboxField
          id="delete-data"
          label="Removing a user also deletes their jobs, workspaces and files"
          checked={deleteData}
          onChange={setDeleteData}
        />
        <DataTable
          id="users-table"
          columns={['Name', 'Added', 'Password']}
          rows={list.data?.users}
          row={(u) => (
            <tr key={u.user_id} data-user={u.name}>
              <td>
                {u.name}
                {u.owner ? <span className="badge">owner</span> : null}
              </td>
              <td title={when(u.created_at)}>{relative(u.created_at)}</td>
              <td>{u.has_password ? 'set' : 'not yet'}</td>
              <td>
                {u.owner ? null : (
                  <ConfirmAction
                    label="Remove"
                    confirm={deleteData ? `Remove ${u.name} and delete their data` : `Remove ${u.name}`}
                    action={remove}
                    fn={async () => {
                      setRemoved(
                        await api<UserRemoved>(
                          'DELETE',
                          `/users/${seg(u.name)}${deleteData ? '?delete_data=true' : ''}`,
                        ),
                      );
                      list.reload();
                    }}
                  />
                )}
              </td>
            </tr>
          )}
        />
      </Section>
    </>
  );
}
