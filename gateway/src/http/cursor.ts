import { validationError } from "./problem.ts";

/** A list's cursor: the position it hands out (an id, a period), base64url so it reads as opaque. */
export const encodeCursor = (position: string): string => Buffer.from(position, "utf8").toString("base64url");

/**
 * The position in a cursor this API handed out, checked against the shape of what it encodes (an
 * id with its prefix, a period). Anything else is the caller's mistake, named on `query/cursor` —
 * never sent to the database (where, say, "AAAA" would arrive as NUL bytes and answer 500).
 */
export function decodeCursor(cursor: string, shape: RegExp): string {
  const position = Buffer.from(cursor, "base64url").toString("utf8");
  if (!shape.test(position)) throw validationError([{ field: "query/cursor", reason: "is not a cursor this API handed out" }]);
  return position;
}
