/** A browser-less portal user for route tests: a cookie jar, the CSRF token from the last page, forms. */
export class PortalClient {
  cookies = new Map<string, string>();
  csrf = "";
  constructor(readonly base: string) {}

  get sid(): string | undefined {
    return this.cookies.get("hub_portal_sid");
  }

  private keep(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair!.indexOf("=");
      const name = pair!.slice(0, i);
      const value = pair!.slice(i + 1);
      if (/expires=Thu, 01 Jan 1970/i.test(c) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  private header(): Record<string, string> {
    return this.cookies.size ? { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ") } : {};
  }

  async request(method: string, path: string, init: { form?: Record<string, string | string[]>; headers?: Record<string, string>; csrf?: boolean } = {}) {
    let body: string | undefined;
    const headers: Record<string, string> = { ...this.header(), ...(init.headers ?? {}) };
    if (init.form) {
      const p = new URLSearchParams();
      const form = { ...(init.csrf === false ? {} : { _csrf: this.csrf }), ...init.form };
      for (const [k, v] of Object.entries(form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x);
      body = p.toString();
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
    const res = await fetch(this.base + path, { method, headers, body, redirect: "manual" });
    this.keep(res);
    const text = await res.text();
    const m = /<meta name="csrf-token" content="([^"]*)">/.exec(text);
    if (m?.[1]) this.csrf = m[1];
    return { status: res.status, text, location: res.headers.get("location"), headers: res.headers };
  }

  get(path: string) {
    return this.request("GET", path);
  }

  /** GET the page first (for its CSRF token), then POST the form. */
  async submit(pagePath: string, action: string, form: Record<string, string | string[]>) {
    await this.get(pagePath);
    return this.request("POST", action, { form });
  }
}

let seq = 0;
export function applicant(over: Record<string, string> = {}) {
  seq++;
  return {
    company: `Test Company ${seq} ${Date.now()}`,
    kind: "merchant",
    sector: "grocery",
    name: "Dana Developer",
    email: `dev${seq}.${Date.now()}@example.com`,
    phone: "",
    password: "correct horse battery staple",
    ...over,
  };
}
