/**
 * Group commit for concurrent calls: callers submit one item each and get their own answer back;
 * items are handed to `flush` together. A batch leaves when `maxItems` are waiting, or `maxWaitMs`
 * after its first item arrived (0: at once when a slot is free), and at most `maxInFlight` batches
 * run at a time — while they run, the next batch fills up, so batches grow with the load and an
 * idle caller waits for nobody. A batch takes its share of the items in the system — those waiting
 * and those in flight, over `maxInFlight` — so that the batches in flight stay about the same size.
 *
 * When a batch returns, the next one leaves first and its callers are answered in the next turn of
 * the event loop: the work behind `flush` starts on the next batch while this process writes the
 * answers, not after. Pipelined (`pipeline`), the next batch may leave before that, to queue behind
 * the one in flight.
 *
 * `flush` answers item by item: one item's failure is that caller's alone. If `flush` itself throws,
 * every caller of that batch gets the error.
 */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

export interface BatcherOptions {
  maxItems: number;
  maxWaitMs: number;
  maxInFlight: number;
  /**
   * Pipelined batches (0: off): `flush` queues its batches behind one another on one connection,
   * so the next may leave while one is in flight — once the calls waiting reach this share of the
   * callers in the system (an average, taken as each batch returns, of the calls waiting and in
   * flight), and it takes all that wait. With a closed loop of N callers and two batches, 0.45
   * sends the next one when ~0.9 of the other half is back: as large as it would have been, and
   * queued before the one in flight commits.
   */
  pipeline?: number;
}

export interface Batcher<I, O> {
  submit(item: I): Promise<O>;
  /** Batches sent so far and the items they held (for the bench and the logs). */
  stats(): { batches: number; items: number };
}

export function createBatcher<I, O>(opts: BatcherOptions, flush: (items: I[]) => Promise<Array<Settled<O>>>): Batcher<I, O> {
  const maxItems = Math.max(1, opts.maxItems);
  const maxInFlight = Math.max(1, opts.maxInFlight);
  const pipeline = Math.max(0, Math.min(1, opts.pipeline ?? 0));
  // The callers in the system (waiting and in flight), averaged as batches return.
  let population = 1;
  let waiting: Array<{ item: I; resolve: (v: O) => void; reject: (e: unknown) => void }> = [];
  let timer: NodeJS.Timeout | undefined;
  let inFlight = 0;
  let inFlightItems = 0;
  let batches = 0;
  let items = 0;

  function schedule(): void {
    if (waiting.length === 0 || inFlight >= maxInFlight) return;
    if (pipeline > 0 && inFlight > 0) {
      // Behind a batch in flight: once its share of the callers waits (the rest leave when it returns).
      if (waiting.length >= Math.min(maxItems, Math.max(1, Math.ceil(pipeline * population)))) dispatch();
      return;
    }
    if (waiting.length >= maxItems || opts.maxWaitMs <= 0) {
      send();
      return;
    }
    timer ??= setTimeout(send, opts.maxWaitMs);
  }

  function send(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    // Everything waiting now has waited long enough: it leaves in as many batches as slots are free
    // (pipelined: in one batch; the next queues behind it when its share waits).
    if (pipeline > 0) {
      if (waiting.length > 0 && inFlight < maxInFlight) dispatch();
      return;
    }
    while (waiting.length > 0 && inFlight < maxInFlight) dispatch();
  }

  function dispatch(): void {
    // Each batch takes its share of the items in the system (waiting and in flight), not all that
    // wait: a batch leaving beside one in flight would otherwise take everything, and the two would
    // settle into one large slow batch and one small quick one that pays a batch's fixed cost for a
    // few items — the large one's callers waiting twice as long as they need to.
    const share = pipeline > 0 ? maxItems : Math.ceil((waiting.length + inFlightItems) / maxInFlight);
    const batch = waiting.slice(0, Math.min(maxItems, Math.max(1, share)));
    waiting = waiting.slice(batch.length);
    inFlight++;
    inFlightItems += batch.length;
    batches++;
    items += batch.length;
    const done = (answer: (b: (typeof batch)[number], i: number) => void) => {
      population = 0.8 * population + 0.2 * (waiting.length + inFlightItems);
      inFlight--;
      inFlightItems -= batch.length;
      // The next batch leaves first, then this one's callers are answered, in the next turn of the
      // event loop: what queued up meanwhile has waited long enough, and the database starts on it
      // while this process writes the answers instead of after them.
      if (waiting.length > 0) {
        if (pipeline > 0 && inFlight > 0) schedule();
        else send();
      }
      setImmediate(() => batch.forEach(answer));
    };
    flush(batch.map((b) => b.item)).then(
      (results) =>
        done((b, i) => {
          const r = results[i];
          if (!r) b.reject(new Error("batch flush returned no answer for an item"));
          else if (r.ok) b.resolve(r.value);
          else b.reject(r.error);
        }),
      (err: unknown) => done((b) => b.reject(err)),
    );
  }

  return {
    submit(item: I): Promise<O> {
      return new Promise<O>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        schedule();
      });
    },
    stats: () => ({ batches, items }),
  };
}
