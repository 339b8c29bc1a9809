import net from "node:net";
import type { AddressInfo } from "node:net";

/**
 * A TCP proxy on loopback in front of a real service, so a test can cut the service off and bring
 * it back (fault injection) without stopping the service other tests use.
 */
export async function startTcpProxy(target: { host: string; port: number }) {
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;
  let accepted = 0;
  let refusing = false;

  async function open() {
    refusing = false;
    if (server) return;
    server = net.createServer((client) => {
      accepted++;
      if (refusing) {
        client.destroy();
        return;
      }
      const upstream = net.connect(target.port, target.host);
      sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
    await new Promise<void>((r) => server!.listen(port, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  }

  await open();
  return {
    get port() {
      return port;
    },
    /** Connections accepted so far (refused ones included). */
    get accepted() {
      return accepted;
    },
    /** The service is gone: connections are cut and new ones refused. */
    async cut() {
      await new Promise<void>((r) => {
        server?.close(() => r());
        for (const s of sockets) s.destroy();
        sockets.clear();
      });
      server = undefined;
    },
    /** The service is up but turns every connection away (as a server that is starting or full): open ones are cut, new ones accepted and closed at once. */
    refuse() {
      refusing = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    /** The service is back on the same port. */
    restore: open,
    close: async () => {
      if (server) await new Promise<void>((r) => server!.close(() => r()));
      for (const s of sockets) s.destroy();
    },
  };
}
