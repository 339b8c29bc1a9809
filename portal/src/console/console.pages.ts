import { Router } from "express";
import type { PortalContext } from "../context.ts";
import { html } from "../html.ts";
import { page } from "../layout.ts";
import { requireRole } from "../web/auth.ts";
import { badge, when } from "./common.ts";
import { partnersPages } from "./partners.pages.ts";
import { rulesPages } from "./rules.pages.ts";
import { settlementPages } from "./settlement.pages.ts";
import { analyticsPages } from "./analytics.pages.ts";
import { disputesPages } from "./disputes.pages.ts";

/**
 * The operator console. Every page here is for operator staff only (requireRole("operator") on the
 * whole router, before any section's routes); a section is a `xPages(ctx)` router in this folder
 * mounted below, with its entry in CONSOLE_NAV (layout.ts).
 */
export function consolePages(ctx: PortalContext): Router {
  const r = Router();
  r.use("/console", requireRole("operator"));

  r.get("/console", async (req, res) => {
    const applied = await ctx.services.partners.listPartners({ status: "applied" });
    const sectorName = new Map((await ctx.services.partners.listSectors()).map((s) => [s.code, s.name]));
    const open = await ctx.services.disputes.listForOperator({ status: "open", limit: 100 });
    res.send(
      page(req, {
        title: "Operator console",
        body: html`<div class="grid">
<section aria-labelledby="apps-h" class="card"><h2 id="apps-h">Partner applications</h2>
<p>${applied.length} application(s) waiting for a decision.</p>
${applied.length ? html`<ul class="plain">${applied.map((p) => html`<li><a href="/portal/console/partners/${p.id}">${p.name}</a> <span class="muted">(${p.kind}, ${sectorName.get(p.sector) ?? p.sector}, ${when(p.created_at)})</span> ${badge(p.status)}</li>`)}</ul>` : ""}
<p><a href="/portal/console/partners?status=applied">All applications</a> · <a href="/portal/console/sectors">Sectors</a></p>
</section>
<section aria-labelledby="disputes-h" class="card"><h2 id="disputes-h">Statement disputes</h2>
<p><span data-figure="open-disputes">${open.items.length}${open.next_cursor ? "+" : ""}</span> open dispute(s) waiting for a resolution.</p>
<p><a href="/portal/console/disputes">Disputes</a></p>
</section>
</div>`,
      }),
    );
  });

  r.use(partnersPages(ctx));
  r.use(rulesPages(ctx));
  r.use(settlementPages(ctx));
  r.use(disputesPages(ctx));
  r.use(analyticsPages(ctx));
  return r;
}
