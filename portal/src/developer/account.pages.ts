import { Router, type Request, type Response, type NextFunction } from "express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { csrfField, flash, page } from "../layout.ts";
import { field, str } from "../web/forms.ts";
import { FormError } from "../web/errors.ts";
import { LOGIN_WINDOW_SECONDS, loginRateLimit, requireRole, safeNext } from "../web/auth.ts";
import type { PortalPassport } from "../web/auth.ts";
import { signUp, type SignupInput } from "./signup.service.ts";
import type { PortalUser } from "../users/users.service.ts";

/** Sign up, log in, log out, and the developer's overview (with the pending state). */
export function accountPages(ctx: PortalContext, passport: PortalPassport, hooks: { afterSignup?: (user: PortalUser) => Promise<void> } = {}): Router {
  const r = Router();

  r.get("/", (req, res) => {
    if (!req.user) return res.redirect(303, "/portal/login");
    res.redirect(303, req.user.role === "operator" ? "/portal/console" : "/portal/dev");
  });

  async function signupForm(req: Request, values: Partial<SignupInput> = {}, errors: Record<string, string> = {}) {
    const sectors = (await ctx.services.partners.listSectors()).filter((s) => s.active);
    return page(req, {
      title: "Apply to join the network",
      nav: [],
      body: html`<p class="lead">Apply as a merchant or a bank. You get sandbox credentials at once; live credentials follow when the operator approves your application.</p>
<form method="post" action="/portal/signup" class="form" novalidate>
${csrfField(req)}
<fieldset><legend>Your company</legend>
${field("company", "Company name", { value: values.company, error: errors.company, required: true, autocomplete: "organization" })}
${field("kind", "Kind of partner", { value: values.kind ?? "merchant", error: errors.kind, required: true, options: [["merchant", "Merchant"], ["bank", "Bank"]] })}
${field("sector", "Sector", { value: values.sector, error: errors.sector, required: true, hint: "The network admits one partner per sector (non-compete).", options: [["", "Choose…"], ...sectors.map((s): [string, string] => [s.code, s.name])] })}
</fieldset>
<fieldset><legend>You, the contact</legend>
${field("name", "Your name", { value: values.name, error: errors.name, required: true, autocomplete: "name" })}
${field("email", "Work email", { type: "email", value: values.email, error: errors.email, required: true, autocomplete: "email" })}
${field("phone", "Phone (optional)", { type: "tel", value: values.phone, autocomplete: "tel" })}
${field("password", "Password", { type: "password", error: errors.password, required: true, autocomplete: "new-password", hint: "At least 12 characters." })}
</fieldset>
<button type="submit" class="btn btn-primary">Apply</button>
<p>Already applied? <a href="/portal/login">Log in</a>.</p>
</form>`,
    });
  }

  r.get("/signup", async (req, res) => {
    res.send(await signupForm(req));
  });

  r.post("/signup", async (req, res, next) => {
    const b = req.body as unknown;
    const input: SignupInput = { company: str(b, "company", 200), sector: str(b, "sector", 64), kind: str(b, "kind", 16), name: str(b, "name", 200), email: str(b, "email", 254), phone: str(b, "phone", 40), password: str(b, "password", 1000) };
    try {
      const user = await signUp(ctx, input, hooks.afterSignup);
      req.login(user, (err) => {
        if (err) return next(err);
        flash(req, "ok", "Application received. Your sandbox is ready; live credentials come with the operator's approval.");
        res.redirect(303, "/portal/dev");
      });
    } catch (err) {
      if (!(err instanceof FormError)) throw err;
      res.status(422).send(await signupForm(req, { ...input, password: "" }, err.fields));
    }
  });

  function loginForm(req: Request, opts: { email?: string; error?: string; next?: string } = {}) {
    return page(req, {
      title: "Log in",
      nav: [],
      body: html`${opts.error ? html`<div class="flash flash-error" role="alert">${opts.error}</div>` : ""}
<form method="post" action="/portal/login" class="form">
${csrfField(req)}
<input type="hidden" name="next" value="${opts.next ?? ""}">
${field("email", "Email", { type: "email", value: opts.email, required: true, autocomplete: "username" })}
${field("password", "Password", { type: "password", required: true, autocomplete: "current-password" })}
<button type="submit" class="btn btn-primary">Log in</button>
<p>New here? <a href="/portal/signup">Apply to join</a>.</p>
</form>`,
    });
  }

  r.get("/login", (req, res) => {
    if (req.user) return res.redirect(303, "/portal");
    res.send(loginForm(req, { next: typeof req.query.next === "string" ? req.query.next : "" }));
  });

  r.post("/login", loginRateLimit(ctx.services.limiter, { perEmail: ctx.config.PORTAL_LOGIN_LIMIT_PER_EMAIL, perAddress: ctx.config.PORTAL_LOGIN_LIMIT_PER_ADDRESS, windowSeconds: LOGIN_WINDOW_SECONDS }), (req: Request, res: Response, next: NextFunction) => {
    const email = str(req.body, "email", 254);
    const nextUrl = str(req.body, "next", 500);
    passport.authenticate("portal-local", (err: unknown, user: PortalUser | false) => {
      if (err) return next(err);
      if (!user) {
        res.status(401).send(loginForm(req, { email, error: "That email and password do not match an active account.", next: nextUrl }));
        return;
      }
      // passport's logIn regenerates the session: a session id planted before login is worthless after.
      req.logIn(user, (e) => {
        if (e) return next(e);
        res.redirect(303, safeNext(nextUrl, user.role === "operator" ? "/portal/console" : "/portal/dev"));
      });
    })(req, res, next);
  });

  r.post("/logout", (req, res, next) => {
    req.logout((err) => {
      if (err) return next(err);
      req.session.destroy(() => {
        res.clearCookie("hub_portal_sid", { path: "/portal" });
        res.redirect(303, "/portal/login");
      });
    });
  });

  r.get("/dev", requireRole("developer"), async (req, res) => {
    const user = req.user!;
    const partner = await ctx.services.partners.getPartner(user.partner_id!);
    const pending = partner.status === "applied";
    // Words, not codes: the sector's name as the sign-up form listed it.
    const sector = (await ctx.services.partners.listSectors()).find((s) => s.code === partner.sector);
    const kindText: Record<string, string> = { merchant: "Merchant", bank: "Bank" };
    const statusText: Record<string, string> = {
      applied: "Your application is waiting for the operator's approval. Meanwhile, build against the sandbox.",
      approved: "Approved. The operator activates your account when your contract is in force; you can create live credentials now.",
      active: "Active in the live network.",
      suspended: "Suspended by the operator: live calls are refused. Contact the operator.",
      terminated: "Terminated.",
    };
    res.send(
      page(req, {
        title: `Welcome, ${user.name}`,
        body: html`<section aria-labelledby="status-h" class="card${pending ? " card-pending" : ""}">
<h2 id="status-h">${partner.name as string} · <span class="badge badge-${partner.status as string}">${partner.status as string}</span></h2>
<p>${statusText[partner.status as string] ?? ""}</p>
<dl class="facts"><dt>Partner id</dt><dd><code>${partner.id as string}</code></dd><dt>Kind</dt><dd>${kindText[partner.kind as string] ?? (partner.kind as string)}</dd><dt>Sector</dt><dd>${sector?.name ?? (partner.sector as string)}</dd></dl>
</section>
<section aria-labelledby="next-h"><h2 id="next-h">Next steps</h2>
<ol class="steps">
<li><a href="/portal/dev/credentials">Create a sandbox client</a> and keep its secret.</li>
<li>Follow the <a href="/portal/dev/quickstart">quick start</a>: a token, then your first earn call.</li>
<li>Explore the <a href="/portal/dev/reference">API reference</a> and try calls with your sandbox token.</li>
<li>Send card transactions from the sandbox's <a href="/portal/dev/test-bank">test bank feed</a> and watch them earn points.</li>
<li>Subscribe to events with <a href="/portal/dev/webhooks">webhooks</a>.</li>
</ol></section>`,
      }),
    );
  });

  return r;
}
