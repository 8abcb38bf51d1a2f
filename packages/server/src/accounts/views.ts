// The server-rendered HTML of the sign-in, password and `mags login` approval pages: plain forms, no script, one
// small stylesheet, so that they work in any browser and a dashboard can link to them.

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1b1b}
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#a40000}.code{font:bold 1.6rem monospace;letter-spacing:.1em}
form.inline{display:inline-block;margin-right:.5rem}`;

export function page(title: string, body: string, error?: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} · Mags</title><style>${STYLE}</style></head>
<body><main><h1>${escapeHtml(title)}</h1>${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}${body}</main></body></html>`;
}

const hidden = (name: string, value: string) => `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;

export function signInPage(csrf: string, next: string, error?: string, name = '', sso = false): string {
  const ssoLink = sso
    ? `<p><a id="sso" href="/signin/oidc?next=${encodeURIComponent(next)}">Sign in with single sign-on</a></p>`
    : '';
  return page(
    'Sign in to Mags',
    `<form method="post" action="/signin">${hidden('csrf', csrf)}${hidden('next', next)}
<label for="name">Name</label><input id="name" name="name" autocomplete="username" required value="${escapeHtml(name)}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button id="signin" type="submit">Sign in</button></form>${ssoLink}`,
    error,
  );
}

export function choosePasswordPage(csrf: string, code: string, userName: string, error?: string): string {
  return page(
    'Choose a password',
    `<p>Welcome, ${escapeHtml(userName)}. Choose a password (at least 10 characters) to sign in with.</p>
<form method="post" action="/signin/link">${hidden('csrf', csrf)}${hidden('code', code)}
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="new-password" minlength="10" required>
<button id="set-password" type="submit">Set password and sign in</button></form>`,
    error,
  );
}

export function enterCodePage(error?: string): string {
  return page(
    'Approve a mags login',
    `<form method="get" action="/device"><label for="code">The code your terminal shows</label>
<input id="code" name="code" autocomplete="off" required><button type="submit">Continue</button></form>`,
    error,
  );
}

export function approvePage(csrf: string, code: string, clientName: string, userName: string): string {
  return page(
    'Approve a mags login',
    `<p>Signed in as <strong id="user">${escapeHtml(userName)}</strong>.</p>
<p>A terminal (<strong>${escapeHtml(clientName)}</strong>) asks for an API token in your name. Approve only if it shows this code:</p>
<p class="code" id="user-code">${escapeHtml(code)}</p>
<form class="inline" method="post" action="/device">${hidden('csrf', csrf)}${hidden('code', code)}${hidden('action', 'approve')}<button id="approve" type="submit">Approve</button></form>
<form class="inline" method="post" action="/device">${hidden('csrf', csrf)}${hidden('code', code)}${hidden('action', 'deny')}<button id="deny" type="submit">Deny</button></form>`,
  );
}

export function messagePage(title: string, message: string, error?: string): string {
  return page(title, `<p id="message">${escapeHtml(message)}</p>`, error);
}

export function accountPage(csrf: string, userName: string): string {
  return page(
    'Mags account',
    `<p>Signed in as <strong id="user">${escapeHtml(userName)}</strong>.</p>
<p><a id="dashboard" href="/">Open the dashboard</a>: jobs, sandboxes, workspaces, files, cron, tokens, usage.</p>
<p>Approve a terminal's <code>mags login</code> at <a href="/device">/device</a>.</p>
<form method="post" action="/signout">${hidden('csrf', csrf)}<button id="signout" type="submit">Sign out</button></form>`,
  );
}
