import type { Request } from "express";
import { html, type Html } from "./html.ts";
import { csrfToken } from "./web/csrf.ts";

export interface NavItem {
  href: string;
  label: string;
}

/** The developer portal's sections, in the order a new partner walks through them. */
export const DEVELOPER_NAV: NavItem[] = [
  { href: "/portal/dev", label: "Overview" },
  { href: "/portal/dev/credentials", label: "Credentials" },
  { href: "/portal/dev/quickstart", label: "Quick start" },
  { href: "/portal/dev/reference/", label: "API reference" },
  { href: "/portal/dev/test-bank", label: "Test bank" },
  { href: "/portal/dev/webhooks", label: "Webhooks" },
  { href: "/portal/dev/requests", label: "Requests" },
  { href: "/portal/dev/usage", label: "Usage" },
  { href: "/portal/dev/statements", label: "Statements" },
];

/** The operator console's sections (the console adds its pages here). */
export const CONSOLE_NAV: NavItem[] = [
  { href: "/portal/console", label: "Overview" },
  { href: "/portal/console/partners", label: "Partners" },
  { href: "/portal/console/sectors", label: "Sectors" },
  { href: "/portal/console/rules", label: "Rules" },
  { href: "/portal/console/tiers", label: "Tiers" },
  { href: "/portal/console/settlement", label: "Settlement" },
  { href: "/portal/console/disputes", label: "Disputes" },
  { href: "/portal/console/analytics", label: "Analytics" },
];

export interface PageOptions {
  title: string;
  body: Html;
  /** Shown above the title, e.g. a secret block. */
  notice?: Html;
  /** Defaults from the signed-in user's role; none for anonymous pages. */
  nav?: NavItem[];
}

/**
 * The section a path belongs to: the item whose href is the path, or the longest href the path
 * lies under (`/portal/console/partners/ptn_1` → Partners), so a sub-page marks its section. The
 * first item is the area's overview: it is current only on its own path, never for every page
 * under it. Query strings and a trailing slash do not matter.
 */
export function currentSection(nav: NavItem[], url: string): NavItem | undefined {
  const trim = (p: string) => (p.length > 1 ? p.replace(/\/+$/, "") : p);
  const here = trim(url.split(/[?#]/)[0] ?? "");
  let best: NavItem | undefined;
  nav.forEach((n, i) => {
    const href = trim(n.href);
    const hit = here === href || (i > 0 && here.startsWith(`${href}/`));
    if (hit && (!best || trim(best.href).length < href.length)) best = n;
  });
  return best;
}

/** The hidden CSRF field every state-changing form carries. */
export function csrfField(req: Request): Html {
  return html`<input type="hidden" name="_csrf" value="${csrfToken(req)}">`;
}

function flashes(req: Request): Html {
  const list = req.session?.flash ?? [];
  if (req.session && list.length) req.session.flash = [];
  return html`${list.map((f) => html`<div class="flash flash-${f.kind}" role="${f.kind === "error" ? "alert" : "status"}">${f.text}</div>`)}`;
}

/** A whole page: skip link, header with navigation, one main landmark, the flash messages. */
export function page(req: Request, opts: PageOptions): string {
  const user = req.user;
  const nav = opts.nav ?? (user?.role === "operator" ? CONSOLE_NAV : user?.role === "developer" ? DEVELOPER_NAV : []);
  const current = currentSection(nav, req.originalUrl);
  const navHtml = nav.length
    ? html`<nav aria-label="Sections" class="site-nav"><ul>${nav.map((n) => html`<li><a href="${n.href}"${n === current ? html` aria-current="page"` : ""}>${n.label}</a></li>`)}</ul></nav>`
    : "";
  const userHtml = user
    ? html`<div class="user-menu"><span class="user-name">${user.name}</span>
        <form method="post" action="/portal/logout" class="inline">${csrfField(req)}<button type="submit" class="btn btn-link">Log out</button></form></div>`
    : html`<div class="user-menu"><a href="/portal/login">Log in</a> <a class="btn btn-small" href="/portal/signup">Sign up</a></div>`;
  const doc = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${req.session ? csrfToken(req) : ""}">
<title>${opts.title} · Loyalty Hub</title>
<link rel="stylesheet" href="/portal/static/portal.css">
<script src="/portal/static/portal.js" defer></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header">
  <a class="brand" href="/portal">Loyalty Hub <span class="brand-sub">${user?.role === "operator" ? "Console" : "Developers"}</span></a>
  ${userHtml}
  ${navHtml}
</header>
<main id="main" tabindex="-1">
${flashes(req)}
${opts.notice ?? ""}
<h1>${opts.title}</h1>
${opts.body}
</main>
<footer class="site-footer"><p><a href="/docs">Public API docs</a> · <a href="/openapi.json">Contract</a> · <a href="/readyz">Status</a></p></footer>
</body>
</html>`;
  return doc.value;
}

export function flash(req: Request, kind: "ok" | "error", text: string): void {
  (req.session.flash ??= []).push({ kind, text });
}

/**
 * A secret shown once: rendered straight into the answer to the POST that made it (with
 * Cache-Control: no-store), never put in the session, a redirect or a log.
 */
export function secretBlock(text: string, secret: string): Html {
  return html`<div class="flash flash-secret" role="status"><p>${text}</p>
<p class="secret-line"><code class="secret" id="shown-secret">${secret}</code> <button type="button" class="btn btn-small" data-copy="#shown-secret">Copy</button></p>
<p class="hint">It is shown this once: store it now in your secret manager.</p></div>`;
}
