import type { Db, DbOrTrx, Trx } from "../../../gateway/src/infra/db.ts";
import type { Clock } from "../../../gateway/src/infra/clock.ts";
import { newId } from "../../../gateway/src/infra/ids.ts";
import { DUMMY_HASH, hashPassword, verifyPassword } from "../password.ts";

export type PortalRole = "developer" | "operator";

export interface PortalUser {
  id: string;
  email: string;
  name: string;
  role: PortalRole;
  partner_id: string | null;
  sandbox_partner_id: string | null;
  phone: string | null;
  status: "active" | "disabled";
  last_login_at: Date | null;
  created_at: Date;
}

const COLUMNS = ["id", "email", "name", "role", "partner_id", "sandbox_partner_id", "phone", "status", "last_login_at", "created_at"];

export class EmailTakenError extends Error {
  constructor() {
    super("An account with this email exists. Log in instead.");
  }
}

export function normaliseEmail(email: string): string {
  return email.trim().toLowerCase();
}

/**
 * The portal's own users: partner developers (each tied to one partner and its sandbox partner)
 * and operator staff. They are people with passwords and browser sessions — never OAuth clients,
 * which are the machines.
 */
export function createPortalUsers(deps: { db: Db; clock: Clock }) {
  const { db, clock } = deps;

  async function get(id: string, trx: DbOrTrx = db): Promise<PortalUser | undefined> {
    return trx<PortalUser>("portal_users").where({ id }).first(COLUMNS);
  }

  return {
    get,

    async findByEmail(email: string): Promise<PortalUser | undefined> {
      return db<PortalUser>("portal_users").where({ email: normaliseEmail(email) }).first(COLUMNS);
    },

    async emailTaken(email: string): Promise<boolean> {
      return Boolean(await db("portal_users").where({ email: normaliseEmail(email) }).first("id"));
    },

    /**
     * A new user. With a transaction, written in it (the caller commits or rolls back); hash the
     * password first (`passwordHash`) so that no transaction is held open for scrypt's time.
     */
    async create(
      input: { id?: string; email: string; name: string; role: PortalRole; partnerId?: string | null; sandboxPartnerId?: string | null; phone?: string | null } & ({ password: string } | { passwordHash: string }),
      trx?: Trx,
    ): Promise<PortalUser> {
      const now = clock.now();
      const id = input.id ?? newId("usr", now.getTime());
      const password_hash = "passwordHash" in input ? input.passwordHash : await hashPassword(input.password);
      const conn = trx ?? db;
      try {
        await conn("portal_users").insert({
          id,
          email: normaliseEmail(input.email),
          name: input.name,
          role: input.role,
          password_hash,
          partner_id: input.partnerId ?? null,
          sandbox_partner_id: input.sandboxPartnerId ?? null,
          phone: input.phone ?? null,
          created_at: now,
          updated_at: now,
        });
      } catch (err) {
        if ((err as { code?: string }).code === "23505") throw new EmailTakenError();
        throw err;
      }
      return (await get(id, conn))!;
    },

    /** The user when the password is right and the account active; null otherwise, in equal time. */
    async authenticate(email: string, password: string): Promise<PortalUser | null> {
      const row = await db("portal_users").where({ email: normaliseEmail(email) }).first([...COLUMNS, "password_hash"]);
      const ok = await verifyPassword(password, (row?.password_hash as string | undefined) ?? DUMMY_HASH);
      if (!row || !ok || row.status !== "active") return null;
      await db("portal_users").where({ id: row.id }).update({ last_login_at: clock.now() });
      delete row.password_hash;
      return row as PortalUser;
    },

    async setSandboxPartner(userId: string, sandboxPartnerId: string): Promise<void> {
      await db("portal_users").where({ id: userId }).update({ sandbox_partner_id: sandboxPartnerId, updated_at: clock.now() });
    },

    async listDevelopers(partnerId: string): Promise<PortalUser[]> {
      return (await db("portal_users").where({ partner_id: partnerId }).select(COLUMNS).orderBy("created_at")) as PortalUser[];
    },
  };
}

export type PortalUsers = ReturnType<typeof createPortalUsers>;
