import type { Db, DbOrTrx } from "../infra/db.ts";
import type { Clock } from "../infra/clock.ts";
import { writeAudit, toIso, type Actor } from "../partners/audit.service.ts";

/**
 * Network configuration of the programme. A closed programme admits a new member by any one of
 * the configured routes: enough purchases, a completed questionnaire, or a paid entry fee (the fee
 * itself is charged elsewhere; enrolment only checks the partner's attestation that it was paid).
 */
export interface Admission {
  min_purchases?: number;
  questionnaire?: boolean;
  entry_fee?: boolean;
}

export interface ProgrammeSettings {
  type: "open" | "closed";
  admission: Admission;
  /** How a second enrolment of the same person is recognised: `verified_email`, or `none`. */
  matching_rule: "none" | "verified_email";
  card_prefix: string;
  updated_at: string;
}

export async function readProgramme(db: DbOrTrx): Promise<ProgrammeSettings> {
  const r = await db("programme_settings").where({ id: 1 }).first();
  return { type: r.type, admission: r.admission ?? {}, matching_rule: r.matching_rule, card_prefix: r.card_prefix, updated_at: toIso(r.updated_at) };
}

/** What an enrolling partner attests about a candidate for a closed programme. */
export interface AdmissionEvidence {
  purchases?: number;
  questionnaire_completed?: boolean;
  entry_fee_paid?: boolean;
}

/** Null when admitted; otherwise the reason in words. */
export function admissionRefusal(p: ProgrammeSettings, e: AdmissionEvidence | undefined): string | null {
  if (p.type === "open") return null;
  const a = p.admission;
  const routes: string[] = [];
  if (a.min_purchases !== undefined) {
    if ((e?.purchases ?? 0) >= a.min_purchases) return null;
    routes.push(`at least ${a.min_purchases} purchases`);
  }
  if (a.questionnaire) {
    if (e?.questionnaire_completed === true) return null;
    routes.push("a completed questionnaire");
  }
  if (a.entry_fee) {
    if (e?.entry_fee_paid === true) return null;
    routes.push("a paid entry fee");
  }
  return routes.length === 0 ? "The programme is closed to new members." : `The programme is closed: a new member needs ${routes.join(" or ")}.`;
}

export function createProgrammeService(deps: { db: Db; clock: Clock }) {
  return {
    get: () => readProgramme(deps.db),
    async update(actor: Actor, input: { type: "open" | "closed"; admission?: Admission; matching_rule?: "none" | "verified_email"; card_prefix?: string }) {
      return deps.db.transaction(async (trx) => {
        await trx("programme_settings").where({ id: 1 }).forUpdate().first();
        const before = await readProgramme(trx);
        await trx("programme_settings")
          .where({ id: 1 })
          .update({
            type: input.type,
            admission: JSON.stringify(input.admission ?? {}),
            ...(input.matching_rule ? { matching_rule: input.matching_rule } : {}),
            ...(input.card_prefix ? { card_prefix: input.card_prefix } : {}),
            updated_at: deps.clock.now(),
          });
        const after = await readProgramme(trx);
        await writeAudit(trx, actor, { action: "programme.updated", objectType: "programme", objectId: null, before, after });
        return after;
      });
    },
  };
}
