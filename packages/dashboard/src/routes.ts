// The dashboard's pages: the navigation, and the paths the server answers with index.html (the build writes them to
// dist/routes.json). A page's component is chosen in app.tsx by `id`.

export type PageId = 'jobs' | 'job' | 'sandboxes' | 'workspaces' | 'files' | 'cron' | 'tokens' | 'usage' | 'users';

export interface Page {
  id: PageId;
  /** A Fastify-style path: `:name` is one segment. */
  path: string;
  /** In the navigation bar (absent: reached from another page). */
  label?: string;
  /** Shown to the server's owner only. */
  ownerOnly?: boolean;
}

export const PAGES: readonly Page[] = [
  { id: 'jobs', path: '/jobs', label: 'Jobs' },
  { id: 'job', path: '/jobs/:id' },
  { id: 'sandboxes', path: '/sandboxes', label: 'Sandboxes' },
  { id: 'workspaces', path: '/workspaces', label: 'Workspaces' },
  { id: 'files', path: '/files', label: 'Files' },
  { id: 'cron', path: '/cron', label: 'Cron' },
  { id: 'tokens', path: '/tokens', label: 'Tokens' },
  { id: 'usage', path: '/usage', label: 'Usage' },
  { id: 'users', path: '/users', label: 'Users', ownerOnly: true },
];

/** The page a path shows (`/` is the jobs page) and its parameters, or undefined. */
export function match(pathname: string): { page: Page; params: Record<string, string> } | undefined {
  const path = pathname === '/' ? '/jobs' : pathname.replace(/\/+$/, '');
  const parts = path.split('/');
  for (const page of PAGES) {
    const want = page.path.split('/');
    if (want.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < want.length; i++) {
      if (want[i].startsWith(':')) {
        if (parts[i] === '') ok = false;
        else params[want[i].slice(1)] = safeDecode(parts[i]);
      } else if (want[i] !== parts[i]) ok = false;
    }
    if (ok) return { page, params };
  }
  return undefined;
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
