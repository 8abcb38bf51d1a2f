// API tokens: create one (its secret is shown this once, with a copy button), see when each was used, revoke.
import type { TokenCreated, TokenList } from '@mags/api';
import { type FormEvent, useState } from 'react';
import { api, seg } from '../api';
import { relative, when } from '../format';
import { ConfirmButton, CopyButton, ErrorText, Section, useAction, useResource } from '../ui';

export function TokensPage() {
  const list = useResource<TokenList>('/tokens');
  const create = useAction();
  const revoke = useAction();
  const [name, setName] = useState('');
  const [days, setDays] = useState('');
  const [created, setCreated] = useState<TokenCreated>();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    void create.run(async () => {
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
    });
  };
  return (
    <>
      <h1>Tokens</h1>
      <Section title="Create a token">
        <form onSubmit={submit} className="stack">
          <label htmlFor="token-name">What it is for</label>
          <input id="token-name" required value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />
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
          <div>
            <button type="submit" id="token-create" disabled={create.busy}>
              Create token
            </button>
          </div>
          <ErrorText error={create.error} />
        </form>
        {created ? (
          <section className="secret" aria-label="The new token">
            <p>
              <strong>Copy the token now: it is shown only this once.</strong> Use it as{' '}
              <span className="mono">MAGS_API_TOKEN</span> or with <span className="mono">mags login --token</span>.
            </p>
            <div className="row">
              <input
                id="token-secret"
                className="mono grow"
                readOnly
                value={created.token}
                aria-label="Token secret"
                onFocus={(e) => e.currentTarget.select()}
              />
              <CopyButton text={created.token} />
            </div>
            <button type="button" onClick={() => setCreated(undefined)}>
              Done
            </button>
          </section>
        ) : null}
      </Section>
      <Section title="Your tokens">
        <ErrorText error={list.error} />
        <ErrorText error={revoke.error} />
        {list.data && list.data.tokens.length > 0 ? (
          <div className="table-wrap">
            <table id="tokens-table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Starts with</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Expires</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.tokens.map((t) => (
                  <tr key={t.id} data-token={t.name}>
                    <td>{t.name}</td>
                    <td className="mono">{t.prefix}…</td>
                    <td title={when(t.created_at)}>{relative(t.created_at)}</td>
                    <td>{t.last_used_at ? relative(t.last_used_at) : 'never'}</td>
                    <td>{t.expires_at ? when(t.expires_at) : 'never'}</td>
                    <td>
                      <ConfirmButton
                        label="Revoke"
                        confirm={`Revoke ${t.name}`}
                        disabled={revoke.busy}
                        onConfirm={() =>
                          revoke.run(async () => {
                            await api('DELETE', `/tokens/${seg(t.id)}`);
                            list.reload();
                          })
                        }
                      />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : list.data ? (
          <p className="muted">No tokens.</p>
        ) : null}
      </Section>
    </>
  );
}
