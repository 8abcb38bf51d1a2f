// API tokens: create one (its secret is shown this once, with a copy button), see when each was used, revoke.
import type { TokenCreated, TokenList } from '@mags/api';
import { useState } from 'react';
import { api, seg } from '../api';
import { relative, when } from '../format';
import { useAction, useResource } from '../resource';
import {
  ActionForm,
  DataTable,
  DeleteButton,
  Errors,
  SecretField,
  Section,
  ShownOnce,
  SubmitRow,
  TextField,
} from '../ui';

export function TokensPage() {
  const list = useResource<TokenList>('/tokens');
  const create = useAction();
  const revoke = useAction();
  const [name, setName] = useState('');
  const [days, setDays] = useState('');
  const [created, setCreated] = useState<TokenCreated>();
  const submit = async () => {
    const n = days.trim() === '' ? undefined : Number(days);
    setCreated(
      await api<TokenCreated>('POST', '/tokens', {
        name: name.trim(),
        ...(n === undefined ? {} : { expires_in_days: n }),
      }),
    );
    setName('');
    setDays('');
    list.reload();
  };
  return (
    <>
      <h1>Tokens</h1>
      <Section title="Create a token">
        <ActionForm action={create} fn={submit}>
          <TextField id="token-name" label="What it is for" required value={name} onChange={setName} />
          <label htmlFor="token-days">Expires after days (optional; default never)</label>
          <input
            id="token-days"
            type="number"
            min={1}
            max={3650}
            inputMode="numeric"
            value={days}
            onChange={(e) => setDays(e.target.value)}
          />
          <SubmitRow id="token-create" action={create}>
            Create token
          </SubmitRow>
        </ActionForm>
        {created ? (
          <ShownOnce label="The new token" onDone={() => setCreated(undefined)}>
            <p>
              <strong>Copy the token now: it is shown only this once.</strong> Use it as{' '}
              <span className="mono">MAGS_API_TOKEN</span> or with <span className="mono">mags login --token</span>.
            </p>
            <SecretField id="token-secret" label="Token secret" value={created.token} selectOnFocus />
          </ShownOnce>
        ) : null}
      </Section>
      <Section title="Your tokens">
        <Errors errors={[list.error, revoke.error]} />
        <DataTable
          id="tokens-table"
          columns={['Name', 'Starts with', 'Created', 'Last used', 'Expires']}
          rows={list.data?.tokens}
          empty="No tokens."
          row={(t) => (
            <tr key={t.id} data-token={t.name}>
              <td>{t.name}</td>
              <td className="mono">{t.prefix}…</td>
              <td title={when(t.created_at)}>{relative(t.created_at)}</td>
              <td>{t.last_used_at ? relative(t.last_used_at) : 'never'}</td>
              <td>{t.expires_at ? when(t.expires_at) : 'never'}</td>
              <td>
                <DeleteButton
                  label="Revoke"
                  confirm={`Revoke ${t.name}`}
                  action={revoke}
                  path={`/tokens/${seg(t.id)}`}
                  then={list.reload}
                />
              </td>
            </tr>
          )}
        />
      </Section>
    </>
  );
}
