/**
 * Every error a client sees is an RFC 9457 problem: a stable `type` (a URI reference under
 * /problems/ that the docs explain), the HTTP status, a title, a detail for this occurrence, and
 * the request id. Features declare their errors as a table of codes; nothing else invents one.
 */
export interface FieldError {
  /** A JSON pointer into the request part, e.g. `body/amount/value` or `query/limit`. */
  field: string;
  reason: string;
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  instance?: string;
  code: string;
  request_id?: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail?: string,
    readonly extensions: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(detail ?? title);
    this.name = "AppError";
  }

  toProblem(requestId?: string): ProblemBody {
    return {
      type: `/problems/${this.code}`,
      title: this.title,
      status: this.status,
      ...(this.detail ? { detail: this.detail } : {}),
      code: this.code,
      ...(requestId ? { request_id: requestId } : {}),
      ...this.extensions,
    };
  }
}

export interface ErrorSpec {
  status: number;
  title: string;
}

/**
 * A feature's typed errors: `const errors = defineErrors({ "card-blocked": { status: 422, title: … } })`
 * then `throw errors.make("card-blocked", "Card … is blocked")`.
 */
export function defineErrors<const T extends Record<string, ErrorSpec>>(table: T) {
  return {
    table,
    make(code: keyof T & string, detail?: string, extensions?: Record<string, unknown>, headers?: Record<string, string>): AppError {
      const spec = table[code]!;
      return new AppError(spec.status, code, spec.title, detail, extensions, headers);
    },
  };
}

/** Errors of the HTTP layer itself, shared by every route. */
export const httpErrors = defineErrors({
  "not-found": { status: 404, title: "Not found" },
  "method-not-allowed": { status: 405, title: "Method not allowed" },
  "malformed-json": { status: 400, title: "The body is not valid JSON" },
  "malformed-body": { status: 400, title: "The body could not be read" },
  "payload-too-large": { status: 413, title: "The body is too large" },
  "unsupported-media-type": { status: 415, title: "Unsupported media type" },
  "validation-error": { status: 422, title: "The request is not valid" },
  "unauthorized": { status: 401, title: "Authentication required" },
  "insufficient-scope": { status: 403, title: "The token lacks a required scope" },
  "forbidden": { status: 403, title: "Forbidden" },
  "rate-limited": { status: 429, title: "Too many requests" },
  "conflict": { status: 409, title: "Conflict with the current state" },
  "concurrency-conflict": { status: 409, title: "A concurrent change won; retry the request" },
  "not-ready": { status: 503, title: "Not ready" },
  "overloaded": { status: 503, title: "The hub is at capacity; retry shortly" },
  "internal": { status: 500, title: "Internal error" },
  "response-validation-failed": { status: 500, title: "The response broke the API contract" },
});

export function validationError(errors: FieldError[], detail?: string): AppError {
  return httpErrors.make("validation-error", detail ?? errors.map((e) => `${e.field}: ${e.reason}`).join("; "), { errors });
}
