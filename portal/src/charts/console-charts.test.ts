import { describe, expect, it } from "vitest";
import { barChart, lineChart } from "./console-charts.ts";

describe("server-rendered SVG charts", () => {
  it("names the chart, escapes every label, and repeats the exact figures in a table", () => {
    const out = barChart({ id: "c1", title: "Issued <b>", desc: "d & e", labels: ["04-01", "<x>"], series: [{ name: "Issued", values: [12_345_678_901_234_567n, 0n] }, { name: "Redeemed", values: [3, 4] }] }).value;
    expect(out).toContain('role="img" aria-labelledby="c1-t c1-d"');
    expect(out).toContain('<title id="c1-t">Issued &lt;b&gt;</title>');
    expect(out).toContain("d &amp; e");
    expect(out).not.toContain("<x>");
    // The table keeps bigints exact (no float rounding).
    expect(out).toContain("12,345,678,901,234,567");
    expect(out).toContain('<span class="swatch s1" aria-hidden="true"></span>Redeemed');
    expect((out.match(/<rect /g) ?? []).length).toBe(4);
  });

  it("draws a line per series with negative values below zero, and an empty chart without failing", () => {
    const out = lineChart({ id: "c2", title: "t", desc: "d", labels: ["a", "b", "c"], series: [{ name: "s", values: [5, -3, 10] }] }).value;
    expect(out).toContain('<polyline class="line s0"');
    expect((out.match(/<circle /g) ?? []).length).toBe(3);
    expect(lineChart({ id: "c3", title: "t", desc: "d", labels: [], series: [{ name: "s", values: [] }] }).value).toContain("<svg");
    // The axis ticks are whole steps: 5, 0, −5, 10 for −3 … 10; 0 and 1 for a chart of ones and zeros.
    expect([...out.matchAll(/dominant-baseline="middle">([^<]+)</g)].map((m) => m[1])).toEqual(["−5", "0", "5", "10"]);
    const small = barChart({ id: "c4", title: "t", desc: "d", labels: ["a"], series: [{ name: "s", values: [1] }] }).value;
    expect([...small.matchAll(/dominant-baseline="middle">([^<]+)</g)].map((m) => m[1])).toEqual(["0", "1"]);
  });
});
