import type { RulesService } from "../../../gateway/src/rules/rules.service.ts";
import type { TiersService } from "../../../gateway/src/rules/tiers.service.ts";
import type { ClearingService } from "../../../settlement/src/clearing.service.ts";
import type { StatementsService } from "../../../settlement/src/statements.service.ts";
import type { CreditTransfers } from "../../../settlement/src/credit-transfers.service.ts";
import type { RunsReader } from "../../../settlement/src/runs.service.ts";
import type { Actor, AuditEntry, listAudit } from "../../../gateway/src/partners/audit.service.ts";
import type { AnalyticsService } from "../../../gateway/src/analytics/analytics.service.ts";

/** One payment obligation of a closed month, as the payments service shows it (feat/settlement-payments). */
export interface ObligationLike {
  id: string;
  statement_id: string;
  partner_id: string;
  currency: string;
  direction: string;
  amount_due_minor: number;
  amount_paid_minor: number;
  amount_outstanding_minor?: number;
  status: string;
  rail: string | null;
  due_date: string | null;
  reference?: string | null;
  failure?: string | null;
}

/** A bank or Stripe entry the reconciliation matched (or could not match) to a statement. */
export interface ReconItemLike {
  id: string;
  direction?: string;
  amount_minor: number;
  currency: string;
  booking_date: string | null;
  reference?: string | null;
  counterparty?: string | null;
  outcome: string;
  statement_id?: string | null;
  partner_id?: string | null;
}

/**
 * The console's seams to settlement payments and reconciliation, which other branches build
 * (payments/Stripe rails and camt.053 reconciliation). The console shows them when hub.ts passes
 * them in, and says they are not configured otherwise. The shapes are the services' own answers.
 */
export interface ConsolePaymentsPort {
  listForRun(runId: string): Promise<{ items: ObligationLike[] }>;
}
export interface ConsoleReconciliationPort {
  report(runId: string): Promise<{
    matched: ReconItemLike[];
    short: ReconItemLike[];
    over: ReconItemLike[];
    missing: ObligationLike[];
    unexpected: ReconItemLike[];
    totals: Array<{ currency: string; receivable_due_minor: number; receivable_received_minor: number; payable_due_minor: number; payable_paid_minor: number }>;
  }>;
}

/** What the operator console needs beyond the portal's shared services (hub.ts builds it). */
export interface ConsoleServices {
  rules: RulesService;
  tiers: TiersService;
  clearing: ClearingService;
  statements: StatementsService;
  creditTransfers: CreditTransfers;
  runs: RunsReader;
  analytics: AnalyticsService;
  /** The network's append-only admin audit log (partners/audit.service.ts), for console actions the other services do not audit themselves. */
  audit: {
    record(actor: Actor, entry: AuditEntry): Promise<void>;
    list: (q: Parameters<typeof listAudit>[1]) => ReturnType<typeof listAudit>;
  };
  payments?: ConsolePaymentsPort;
  reconciliation?: ConsoleReconciliationPort;
}
