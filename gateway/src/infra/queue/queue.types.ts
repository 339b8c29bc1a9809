/**
 * One typed map from queue name to job payload, so enqueueing is type-checked. A feature that adds
 * a queue adds its line here; the outbox and both queue implementations take it from this map.
 */
export interface QueueJobs {
  /** Proves the outbox → queue → worker path end to end (used by the readiness drill and tests). */
  "system.echo": { message: string };
  /** Deletes idempotency keys older than their retention. */
  "system.idempotency-sweep": Record<string, never>;
  /** An event was committed: fan it out to the partner's webhook endpoints. */
  "events.dispatch": { eventId: string };
  // --- queues: auth ---

  // --- queues: network ---

  // --- queues: ledger ---
  /** A two-phase redemption's hold reached its expiry: release it unless captured or voided. */
  "ledger.redemption-expire": { redemptionId: string };
  /** The daily expiry run: lots past their date to breakage, expiring-soon notices, stale holds. */
  "ledger.points-expiry": { day: string };

  // --- queues: webhooks ---
  /** Try delivery `deliveryId` for the `attempt`-th time; the delivery row decides whether it still should. */
  "webhooks.deliver": { deliveryId: string; attempt: number };

  // --- queues: settlement ---
  /** Move a month's settlement run on (create statements, check the network, close). */
  "settlement.run": { runId: string };
  /** Clear one partner's statement of a run (job id `clear:{partnerId}:{period}`). */
  "settlement.clear": { statementId: string };
  /** Pay or invoice one obligation on Stripe, for its `instruction`-th instruction (job id `stp:{obligationId}:{instruction}`). */
  "settlement.stripe-pay": { obligationId: string; instruction: number };

  // --- queues: rules ---
  /** The daily rules run: referral bonuses that cleared, tier grace periods and downgrades. */
  "rules.daily": { day: string };

  // --- queues: banking ---
  /** The banks' daily run: expire stale auths, release cashback and instruct payouts, instruct round-up sweeps. */
  "banking.daily": { day: string };
}

export type QueueName = keyof QueueJobs;

export interface AddOptions {
  /** Deterministic: adding a job whose id is already known does nothing (BullMQ semantics). */
  jobId: string;
  delayMs?: number;
  attempts?: number;
  /** Exponential backoff base; the n-th retry waits base × 2^(n-1), with jitter. */
  backoffMs?: number;
}

export interface Job<N extends QueueName = QueueName> {
  id: string;
  name: N;
  data: QueueJobs[N];
  attemptsMade: number;
}

export type Processor<N extends QueueName> = (job: Job<N>) => Promise<void>;

export interface JobQueue {
  readonly kind: "bullmq" | "in-process";
  add<N extends QueueName>(name: N, data: QueueJobs[N], opts: AddOptions): Promise<void>;
  /** Starts consuming a queue in this process. */
  process<N extends QueueName>(name: N, processor: Processor<N>, opts?: { concurrency?: number }): void;
  /** True when the queue's backend answers now. */
  ping(): Promise<boolean>;
  /** Stops taking jobs, waits for the running ones, then closes connections. */
  close(): Promise<void>;
}
