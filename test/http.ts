/** Test helpers for talking to the hub over HTTP. */

// Tests read answers loosely and assert on them; the contract's validator already checked shapes.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export async function json(res: Response): Promise<Json> {
  return (await res.json()) as Json;
}
