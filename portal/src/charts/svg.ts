import { html, type Html } from "../html.ts";

export interface Series {
  label: string;
  values: number[];
}

/**
 * A grouped bar chart as inline SVG, drawn on the server: no script, no external file, readable
 * without colour (a table with the same figures follows it, for screen readers and for copying).
 * Colours come from portal.css (.s0, .s1, .s2).
 */
export function barChart(opts: { title: string; labels: string[]; series: Series[]; id: string }): Html {
  const W = 720;
  const H = 240;
  const pad = { l: 48, r: 8, t: 12, b: 36 };
  const max = Math.max(1, ...opts.series.flatMap((s) => s.values));
  const niceMax = niceCeil(max);
  const n = Math.max(1, opts.labels.length);
  const band = (W - pad.l - pad.r) / n;
  const barW = Math.max(1, (band * 0.8) / Math.max(1, opts.series.length));
  const y = (v: number) => pad.t + (H - pad.t - pad.b) * (1 - v / niceMax);
  const ticks = [0, niceMax / 2, niceMax];
  const every = Math.ceil(n / 10);
  const bars = opts.series.flatMap((s, si) =>
    s.values.map((v, i) => {
      const x = pad.l + i * band + band * 0.1 + si * barW;
      return html`<rect class="s${si}" x="${x.toFixed(1)}" y="${y(v).toFixed(1)}" width="${barW.toFixed(1)}" height="${(H - pad.b - y(v)).toFixed(1)}"><title>${opts.labels[i] ?? ""}: ${s.label} ${v}</title></rect>`;
    }),
  );
  return html`<figure class="chart-figure">
<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${opts.id}-t ${opts.id}-d" xmlns="http://www.w3.org/2000/svg">
<title id="${opts.id}-t">${opts.title}</title>
<desc id="${opts.id}-d">${opts.series.map((s) => `${s.label}: ${s.values.reduce((a, b) => a + b, 0)} in total`).join("; ")}. The table below has every figure.</desc>
${ticks.map((t) => html`<line class="axis" x1="${pad.l}" x2="${W - pad.r}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}"/><text x="${pad.l - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`)}
${bars}
${opts.labels.map((l, i) => (i % every === 0 ? html`<text x="${(pad.l + i * band + band / 2).toFixed(1)}" y="${H - pad.b + 16}" text-anchor="middle">${l.slice(5)}</text>` : ""))}
</svg>
<figcaption><ul class="legend">${opts.series.map((s, i) => html`<li><span class="swatch s${i}" aria-hidden="true"></span>${s.label}</li>`)}</ul></figcaption>
</figure>`;
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  return v >= 1_000_000 ? `${(v / 1_000_000).toFixed(1)}M` : v >= 1_000 ? `${(v / 1_000).toFixed(1)}k` : String(Math.round(v));
}

/** The last `days` UTC days, oldest first, as YYYY-MM-DD. */
export function lastDays(now: Date, days: number): string[] {
  const out: string[] = [];
  for (let i = days - 1; i >= 0; i--) out.push(new Date(now.getTime() - i * 86_400_000).toISOString().slice(0, 10));
  return out;
}
