import { Router } from "express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";

/**
 * The operator console. Every page here is for operator staff only (requireRole("operator") on the
 * whole router); add a page by adding a route below and an entry to CONSOLE_NAV in layout.ts.
 */
export function consolePages(ctx: PortalContext): Router {
  const r = Router();
  r.use("/console", requireRole("operator"));

  r.get("/console", async (req, res) => {
    const applied = await ctx.services.partners.listPartners({ status: "applied" });
    res.send(
      page(req, {
        title: "Operator console",
        body: html`<section aria-labelledby="apps-h" class="card"><h2 id="apps-h">Partner applications</h2>
<p>${applied.length} application(s) waiting for a decision.</p>
${applied.length ? html`<ul>${applied.map((p) => html`<li>${p.name} <span class="muted">(${p.kind}, ${p.sector})</span> <code>${p.id}</code></li>`)}</ul>` : ""}
</section>`,
      }),
    );
  });
  return r;
}
