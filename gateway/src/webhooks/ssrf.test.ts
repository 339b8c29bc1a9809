import { describe, expect, it } from "vitest";
import { classifyAddress, DestinationRefused, vetDestination, type Resolver } from "./ssrf.ts";

const resolver =
  (table: Record<string, string[]>): Resolver =>
  async (host) =>
    (table[host] ?? []).map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

async function refusal(url: string, opts: Parameters<typeof vetDestination>[1]) {
  try {
    await vetDestination(url, opts);
  } catch (err) {
    if (err instanceof DestinationRefused) return err.reason;
    throw err;
  }
  return "allowed";
}

describe("SSRF guard", () => {
  it("classifies addresses", () => {
    const cases: Record<string, string> = {
      "127.0.0.1": "loopback",
      "127.9.9.9": "loopback",
      "::1": "loopback",
      "10.0.0.1": "private",
      "172.16.5.4": "private",
      "172.31.255.255": "private",
      "192.168.1.1": "private",
      "fc00::1": "private",
      "fd12:3456::1": "private",
      "169.254.169.254": "link-local",
      "fe80::1": "link-local",
      "0.0.0.0": "unspecified",
      "::": "unspecified",
      "100.64.0.1": "shared",
      "100.127.255.254": "shared",
      "::ffff:127.0.0.1": "loopback",
      "::ffff:a9fe:a9fe": "link-local",
      "64:ff9b::10.0.0.1": "private",
      "224.0.0.1": "multicast",
      "255.255.255.255": "reserved",
      "93.184.216.34": "public",
      "172.32.0.1": "public",
      "100.128.0.1": "public",
      "2606:4700::1111": "public",
    };
    for (const [ip, cls] of Object.entries(cases)) expect([ip, classifyAddress(ip)]).toEqual([ip, cls]);
  });

  it("refuses private, link-local, metadata and loopback targets, and plain http", async () => {
    const resolve = resolver({ "hooks.example.com": ["93.184.216.34"], "internal.example.com": ["10.1.2.3"], "mixed.example.com": ["93.184.216.34", "192.168.0.10"] });
    const strict = { allowLoopback: false, resolve };
    expect(await refusal("https://hooks.example.com/in", strict)).toBe("allowed");
    expect(await refusal("http://hooks.example.com/in", strict)).toBe("scheme-not-allowed");
    expect(await refusal("ftp://hooks.example.com/in", strict)).toBe("scheme-not-allowed");
    expect(await refusal("https://10.0.0.1/in", strict)).toBe("address-not-allowed");
    expect(await refusal("https://169.254.169.254/latest/meta-data", strict)).toBe("address-not-allowed");
    expect(await refusal("https://[::1]/in", strict)).toBe("address-not-allowed");
    expect(await refusal("https://[::ffff:127.0.0.1]/in", strict)).toBe("address-not-allowed");
    expect(await refusal("https://127.0.0.1/in", strict)).toBe("address-not-allowed");
    expect(await refusal("https://internal.example.com/in", strict)).toBe("address-not-allowed");
    expect(await refusal("https://mixed.example.com/in", strict)).toBe("address-not-allowed");
    expect(await refusal("https://nowhere.example.com/in", strict)).toBe("unresolvable");
    expect(await refusal("https://user:pw@hooks.example.com/in", strict)).toBe("credentials-in-url");
    expect(await refusal("not a url", strict)).toBe("invalid-url");
  });

  it("resolves names with the system resolver: localhost is loopback", async () => {
    expect(await refusal("https://localhost/in", { allowLoopback: false })).toBe("address-not-allowed");
  });

  it("allows loopback, and plain http, only when configured — never private networks", async () => {
    const open = { allowLoopback: true };
    expect(await refusal("http://127.0.0.1:8080/in", open)).toBe("allowed");
    expect(await refusal("http://localhost:8080/in", open)).toBe("allowed");
    expect(await refusal("http://10.0.0.1/in", open)).toBe("address-not-allowed");
    expect(await refusal("http://169.254.169.254/in", open)).toBe("address-not-allowed");
    const v = await vetDestination("http://127.0.0.1:8080/in", open);
    expect(v.address).toEqual({ address: "127.0.0.1", family: 4 });
  });
});
