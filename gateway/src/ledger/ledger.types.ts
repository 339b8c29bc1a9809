/** The ledger's vocabulary. Amounts are bigint: points, or money in minor units. */

export const POINTS = "PTS";

export type AccountKind =
  | "member_points"
  | "member_points_held"
  | "member_points_debt"
  | "member_cashback"
  | "member_roundup"
  | "partner_issuance"
  | "partner_redemption"
  | "partner_recovery"
  | "partner_payable"
  | "partner_receivable"
  | "operator_revenue"
  | "breakage"
  | "funding";

export type EntryKind = "earn" | "burn" | "hold" | "capture" | "release" | "refund" | "expire" | "adjust";

export interface Posting {
  accountId: string;
  asset: string;
  /** Added to the account's balance; an entry's postings sum to zero per asset. */
  amount: bigint;
}

export interface EntryRef {
  /** The business object this entry belongs to, e.g. { type: "transaction", id: "txn_…" }. */
  type: string;
  id: string;
}

export interface NewEntry {
  kind: EntryKind;
  partnerId?: string | null;
  memberId?: string | null;
  ref?: EntryRef;
  contractVersionId?: string | null;
  occurredAt: Date;
  memo?: Record<string, unknown>;
  postings: Posting[];
}

export interface MemberBalances {
  /** Spendable points (never below 0). */
  points: bigint;
  /** Points held by open redemptions. */
  held: bigint;
  /** Points owed after a refund clawed back points already spent (0 or negative). */
  debt: bigint;
  /** The floor of the debt account (the contract's negative floor last applied). */
  debtFloor: bigint;
}

export interface Lot {
  id: string;
  memberId: string;
  issuingPartnerId: string;
  contractVersionId: string | null;
  entryId: string;
  earnedAt: Date;
  expiresAt: Date;
  amount: bigint;
  remaining: bigint;
  /** Who pays for these points: `operator` or `partner:<id>`. */
  fundedBy: "operator" | `partner:${string}`;
}

/** How many points an entry took from (positive) or gave back to (negative) one lot. */
export interface LotMovement {
  lotId: string;
  amount: bigint;
}
