import { html, raw, type Html } from "../html.ts";

/**
 * Charts as inline SVG rendered on the server: no script, no library, no CDN. Each chart is an
 * <svg role="img"> named by its <title> and <desc>, followed by a legend and the same figures in a
 * table (inside <details>, for screen readers and for anyone who wants the numbers). Colours come
 * from the stylesheet's .s0/.s1/.s2 classes. Values may be bigints: they are turned into numbers
 * only to place marks on the canvas; the table prints them exactly with `format`.
 */

export type Value = bigint | number;

export interface Series {
  name: string;
  values: Value[];
}

export interface ChartOptions {
  /** Unique on the page; ids of the title and description derive from it. */
  id: string;
  title: string;
  desc: string;
  labels: string[];
  series: Series[];
  /** How a value reads in the axis and the table (exact). Defaults to the integer with separators. */
  format?: (v: Value) => string;
  /** Header of the label column in the table. */
  labelHeader?: string;
}

const W = 640;
const H = 240;
const PAD = { left: 56, right: 12, top: 12, bottom: 32 };
const PLOT_W = W - PAD.left - PAD.right;
const PLOT_H = H - PAD.top - PAD.bottom;

const groupDigits = (v: Value) => {
  const s = String(v);
  const neg = s.startsWith("-");
  const body = (neg ? s.slice(1) : s).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return neg ? `−${body}` : body;
};

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
const n = (v: Value) => Number(v);
const fix = (x: number) => (Math.round(x * 10) / 10).toString();

/** A whole "nice" tick step (1, 2 or 5 times a power of ten) that covers `max` in at most 4 steps. */
function niceStep(max: number): number {
  if (max <= 4) return 1;
  const raw = max / 4;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Axis bounds on whole tick steps: [lo, hi] with zero included, and the step. */
function axis(values: number[]): { lo: number; hi: number; step: number } {
  const max = Math.max(0, ...values);
  const min = Math.min(0, ...values);
  const step = niceStep(Math.max(max - min, 1));
  return { lo: Math.floor(min / step) * step, hi: Math.max(Math.ceil(max / step) * step, step), step };
}

function frame(o: ChartOptions, yMin: number, yMax: number, step: number, body: string): Html {
  const fmt = o.format ?? groupDigits;
  const y = (v: number) => PAD.top + PLOT_H - ((v - yMin) / (yMax - yMin)) * PLOT_H;
  let grid = "";
  for (let v = yMin; v <= yMax; v += step) {
    const yy = fix(y(v));
    const label = fmt(BigInt(Math.round(v)));
    grid += `<line class="axis" x1="${PAD.left}" x2="${W - PAD.right}" y1="${yy}" y2="${yy}"/><text x="${PAD.left - 6}" y="${yy}" text-anchor="end" dominant-baseline="middle">${esc(label)}</text>`;
  }
  const every = Math.max(1, Math.ceil(o.labels.length / 8));
  const slot = PLOT_W / Math.max(1, o.labels.length);
  let xl = "";
  o.labels.forEach((l, i) => {
    if (i % every !== 0) return;
    xl += `<text x="${fix(PAD.left + slot * (i + 0.5))}" y="${H - 10}" text-anchor="middle">${esc(l)}</text>`;
  });
  const svg = `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${esc(o.id)}-t ${esc(o.id)}-d" preserveAspectRatio="xMidYMid meet"><title id="${esc(o.id)}-t">${esc(o.title)}</title><desc id="${esc(o.id)}-d">${esc(o.desc)}</desc>${grid}${body}${xl}</svg>`;
  return html`<figure class="chart-figure" id="${o.id}">
<figcaption>${o.title}</figcaption>
${raw(svg)}
${o.series.length > 1 ? html`<ul class="legend">${o.series.map((s, i) => html`<li><span class="swatch s${i % 3}" aria-hidden="true"></span>${s.name}</li>`)}</ul>` : ""}
<details><summary>The figures</summary><div class="table-wrap"><table>
<caption>${o.title}</caption>
<thead><tr><th scope="col">${o.labelHeader ?? "Day"}</th>${o.series.map((s) => html`<th scope="col" class="num">${s.name}</th>`)}</tr></thead>
<tbody>${o.labels.map((l, i) => html`<tr><th scope="row">${l}</th>${o.series.map((s) => html`<td class="num">${s.values[i] === undefined ? "—" : fmt(s.values[i])}</td>`)}</tr>`)}</tbody>
</table></div></details>
</figure>`;
}

/** Bars, grouped by label, one colour per series. Negative values go below the zero line. */
export function barChart(o: ChartOptions): Html {
  const { lo: yMin, hi: yMax, step } = axis(o.series.flatMap((s) => s.values.map(n)));
  const y = (v: number) => PAD.top + PLOT_H - ((v - yMin) / (yMax - yMin)) * PLOT_H;
  const slot = PLOT_W / Math.max(1, o.labels.length);
  const barW = Math.max(1, (slot * 0.8) / Math.max(1, o.series.length));
  let body = "";
  o.labels.forEach((label, i) => {
    o.series.forEach((s, k) => {
      const v = n(s.values[i] ?? 0);
      const top = y(Math.max(v, 0));
      const h = Math.abs(y(v) - y(0));
      const x = PAD.left + slot * i + slot * 0.1 + barW * k;
      body += `<rect class="s${k % 3}" x="${fix(x)}" y="${fix(top)}" width="${fix(barW)}" height="${fix(Math.max(h, v === 0 ? 0 : 0.5))}"><title>${esc(`${label} · ${s.name}: ${(o.format ?? groupDigits)(s.values[i] ?? 0)}`)}</title></rect>`;
    });
  });
  body += `<line class="axis" x1="${PAD.left}" x2="${W - PAD.right}" y1="${fix(y(0))}" y2="${fix(y(0))}"/>`;
  return frame(o, yMin, yMax, step, body);
}

/** Lines, one per series, with a dot on each point. */
export function lineChart(o: ChartOptions): Html {
  const { lo: yMin, hi: yMax, step } = axis(o.series.flatMap((s) => s.values.map(n)));
  const y = (v: number) => PAD.top + PLOT_H - ((v - yMin) / (yMax - yMin)) * PLOT_H;
  const slot = PLOT_W / Math.max(1, o.labels.length);
  let body = "";
  o.series.forEach((s, k) => {
    const pts = s.values.map((v, i) => `${fix(PAD.left + slot * (i + 0.5))},${fix(y(n(v)))}`);
    body += `<polyline class="line s${k % 3}" points="${pts.join(" ")}"/>`;
    if (s.values.length <= 62) {
      s.values.forEach((v, i) => {
        body += `<circle class="dot s${k % 3}" cx="${fix(PAD.left + slot * (i + 0.5))}" cy="${fix(y(n(v)))}" r="2.5"><title>${esc(`${o.labels[i] ?? ""} · ${s.name}: ${(o.format ?? groupDigits)(v)}`)}</title></circle>`;
      });
    }
  });
  return frame(o, yMin, yMax, step, body);
}
