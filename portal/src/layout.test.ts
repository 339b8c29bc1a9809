import { describe, expect, it } from "vitest";
import { CONSOLE_NAV, DEVELOPER_NAV, currentSection } from "./layout.ts";

const label = (nav: typeof CONSOLE_NAV, url: string) => currentSection(nav, url)?.label;

describe("currentSection: the nav item marked aria-current", () => {
  it("marks a section on its own page and on every page under it", () => {
    expect(label(CONSOLE_NAV, "/portal/console/partners")).toBe("Partners");
    expect(label(CONSOLE_NAV, "/portal/console/partners/ptn_x")).toBe("Partners");
    expect(label(CONSOLE_NAV, "/portal/console/partners/ptn_x/contracts?x=1")).toBe("Partners");
    expect(label(CONSOLE_NAV, "/portal/console/settlement/runs/run_2026-04/statements/stm_1")).toBe("Settlement");
    expect(label(CONSOLE_NAV, "/portal/console/rules/new")).toBe("Rules");
    expect(label(DEVELOPER_NAV, "/portal/dev/statements/stm_1?env=live")).toBe("Statements");
    expect(label(DEVELOPER_NAV, "/portal/dev/reference/")).toBe("API reference");
    expect(label(DEVELOPER_NAV, "/portal/dev/reference")).toBe("API reference");
  });

  it("marks the overview only on its own path, and nothing for a path outside every section", () => {
    expect(label(CONSOLE_NAV, "/portal/console")).toBe("Overview");
    expect(label(CONSOLE_NAV, "/portal/console/")).toBe("Overview");
    expect(label(CONSOLE_NAV, "/portal/console/nowhere")).toBeUndefined();
    // A prefix that is not a path segment is not the section.
    expect(label(CONSOLE_NAV, "/portal/console/partnership")).toBeUndefined();
    expect(label(DEVELOPER_NAV, "/portal/login")).toBeUndefined();
  });
});
