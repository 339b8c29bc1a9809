import dns from "node:dns";
import net from "node:net";

/**
 * Where the hub may send a webhook. A partner names a URL; without these checks it could make the
 * hub call its own database, a cloud metadata service or a neighbour on the private network (SSRF).
 * The host is resolved at registration and again before every attempt, and the attempt connects to
 * the address vetted here — never to a second lookup an attacker's DNS could answer differently.
 */
export type AddressClass = "public" | "loopback" | "private" | "link-local" | "unspecified" | "shared" | "reserved" | "multicast";

const ranges: Array<[AddressClass, string, number, "ipv4" | "ipv6"]> = [
  ["unspecified", "0.0.0.0", 8, "ipv4"],
  ["private", "10.0.0.0", 8, "ipv4"],
  ["shared", "100.64.0.0", 10, "ipv4"], // carrier-grade NAT
  ["loopback", "127.0.0.0", 8, "ipv4"],
  ["link-local", "169.254.0.0", 16, "ipv4"], // includes the cloud metadata address 169.254.169.254
  ["private", "172.16.0.0", 12, "ipv4"],
  ["reserved", "192.0.0.0", 24, "ipv4"],
  ["reserved", "192.0.2.0", 24, "ipv4"],
  ["private", "192.168.0.0", 16, "ipv4"],
  ["reserved", "198.18.0.0", 15, "ipv4"],
  ["reserved", "198.51.100.0", 24, "ipv4"],
  ["reserved", "203.0.113.0", 24, "ipv4"],
  ["multicast", "224.0.0.0", 4, "ipv4"],
  ["reserved", "240.0.0.0", 4, "ipv4"], // includes 255.255.255.255
  ["unspecified", "::", 128, "ipv6"],
  ["loopback", "::1", 128, "ipv6"],
  ["reserved", "100::", 64, "ipv6"], // discard-only
  ["reserved", "2001:db8::", 32, "ipv6"],
  ["private", "fc00::", 7, "ipv6"], // unique local
  ["link-local", "fe80::", 10, "ipv6"],
  ["multicast", "ff00::", 8, "ipv6"],
];

const lists = new Map<AddressClass, net.BlockList>();
for (const [cls, addr, prefix, family] of ranges) {
  const list = lists.get(cls) ?? new net.BlockList();
  list.addSubnet(addr, prefix, family);
  lists.set(cls, list);
}

/** An IPv6 address that carries an IPv4 one (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96): the IPv4 one. */
function embeddedIpv4(ip: string): string | undefined {
  const lower = ip.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1]!, 16);
    const lo = parseInt(hex[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return undefined;
}

export function classifyAddress(ip: string): AddressClass {
  const family = net.isIP(ip);
  if (family === 0) throw new Error(`not an IP address: ${ip}`);
  if (family === 6) {
    const v4 = embeddedIpv4(ip);
    if (v4) return classifyAddress(v4);
  }
  const type = family === 4 ? "ipv4" : "ipv6";
  for (const [cls, list] of lists) if (list.check(ip, type)) return cls;
  return "public";
}

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has (injectable so tests can play a hostile DNS). */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

export const systemResolver: Resolver = async (hostname) => {
  const all = await dns.promises.lookup(hostname, { all: true, verbatim: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export type RefusalReason = "invalid-url" | "scheme-not-allowed" | "credentials-in-url" | "unresolvable" | "address-not-allowed";

export class DestinationRefused extends Error {
  constructor(
    readonly reason: RefusalReason,
    message: string,
  ) {
    super(message);
    this.name = "DestinationRefused";
  }
}

export interface VettedDestination {
  url: URL;
  /** The address to connect to: one the checks passed. */
  address: ResolvedAddress;
}

export interface VetOptions {
  /** Loopback (and plain http) for the embedded demo and tests only; never private networks. */
  allowLoopback: boolean;
  resolve?: Resolver;
}

/**
 * Checks a webhook URL and resolves it to an address the hub may connect to, or throws
 * DestinationRefused. Every address the name resolves to must pass: a name that answers with one
 * public and one private address is refused, as an attacker would rotate between them.
 */
export async function vetDestination(raw: string, opts: VetOptions): Promise<VettedDestination> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new DestinationRefused("invalid-url", "The URL is not valid.");
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && opts.allowLoopback)) {
    throw new DestinationRefused("scheme-not-allowed", "Webhook URLs must use https.");
  }
  if (url.username || url.password) throw new DestinationRefused("credentials-in-url", "Webhook URLs may not carry credentials.");
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  let addresses: ResolvedAddress[];
  if (net.isIP(host)) {
    addresses = [{ address: host, family: net.isIP(host) === 6 ? 6 : 4 }];
  } else {
    try {
      addresses = await (opts.resolve ?? systemResolver)(host);
    } catch {
      addresses = [];
    }
    if (addresses.length === 0) throw new DestinationRefused("unresolvable", `The host ${host} does not resolve.`);
  }
  for (const a of addresses) {
    const cls = classifyAddress(a.address);
    if (cls === "public" || (cls === "loopback" && opts.allowLoopback)) continue;
    throw new DestinationRefused("address-not-allowed", `The host ${host} resolves to a ${cls} address, which webhooks may not reach.`);
  }
  return { url, address: addresses[0]! };
}
