// The frame of every page: who is signed in, the navigation, sign-out, and the page the address names.
import type { Me } from '@mags/api';
import { useEffect, useState } from 'react';
import { loadMe, signOut } from './api';
import { Link, usePathname } from './navigation';
import { CronPage } from './pages/cron';
import { FilesPage } from './pages/files';
import { JobPage } from './pages/job';
import { JobsPage } from './pages/jobs';
import { SandboxesPage } from './pages/sandboxes';
import { TokensPage } from './pages/tokens';
import { UsagePage } from './pages/usage';
import { UsersPage } from './pages/users';
import { WorkspacesPage } from './pages/workspaces';
import { messageOf, useAction } from './resource';
import { match, PAGES, type PageId } from './routes';
import { ErrorText } from './ui';

function Content({ id, params, me }: { id: PageId; params: Record<string, string>; me: Me }) {
  switch (id) {
    case 'jobs':
      return <JobsPage />;
    case 'job':
      return <JobPage id={params.id} />;
    case 'sandboxes':
      return <SandboxesPage />;
    case 'workspaces':
      return <WorkspacesPage />;
    case 'files':
      return <FilesPage />;
    case 'cron':
      return <CronPage />;
    case 'tokens':
      return <TokensPage />;
    case 'usage':
      return <UsagePage />;
    case 'users':
      return <UsersPage me={me} />;
  }
}

export function App() {
  const [me, setMe] = useState<Me>();
  const [error, setError] = useState<string>();
  const pathname = usePathname();
  const out = useAction();
  useEffect(() => {
    loadMe().then(setMe, (err) => setError(messageOf(err)));
  }, []);
  const found = match(pathname);
  const current = found?.page.id === 'job' ? 'jobs' : found?.page.id;
  useEffect(() => {
    const label = PAGES.find((p) => p.id === current)?.label;
    document.title = label ? `${label} · Mags` : 'Mags';
  }, [current]);

  if (!me) {
    return <main className="page">{error ? <ErrorText error={error} /> : <p className="muted">Loading…</p>}</main>;
  }
  return (
    <>
      <a className="skip" href="#main">
        Skip to the page
      </a>
      <header className="top">
        <div className="brand">
          <Link href="/">Mags</Link>
        </div>
        <nav aria-label="Pages">
          <ul>
            {PAGES.filter((p) => p.label && (!p.ownerOnly || me.owner)).map((p) => (
              <li key={p.id}>
                <Link href={p.path} aria-current={current === p.id ? 'page' : undefined}>
                  {p.label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span id="signed-in-user">{me.name}</span>
          {me.owner ? <span className="muted"> (owner)</span> : null}{' '}
          <button type="button" id="signout" disabled={out.busy} onClick={() => out.run(signOut)}>
            Sign out
          </button>
          <ErrorText error={out.error} />
        </div>
      </header>
      <main className="page" id="main">
        {found ? (
          <Content key={pathname} id={found.page.id} params={found.params} me={me} />
        ) : (
          <>
            <h1>Not found</h1>
            <p>
              There is no page at {pathname}. <Link href="/jobs">Go to the jobs</Link>.
            </p>
          </>
        )}
      </main>
    </>
  );
}
