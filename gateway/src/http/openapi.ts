import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";
import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule from "ajv-formats";

export const SPEC_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../openapi/openapi.yaml");

export type HttpMethod = "get" | "post" | "put" | "patch" | "delete";
export const METHODS: HttpMethod[] = ["get", "post", "put", "patch", "delete"];

/** One operation of the contract, with everything the router needs to enforce it. */
export interface Operation {
  operationId: string;
  method: HttpMethod;
  /** The spec's path, e.g. /v1/members/{memberId}. */
  path: string;
  /** Alternatives (OR) of scheme → scopes (AND). Empty: a public operation. */
  security: Array<Record<string, string[]>>;
  requestContentTypes: string[];
  bodyRequired: boolean;
  validateParams?: ValidateFunction;
  validateQuery?: ValidateFunction;
  validateHeaders?: ValidateFunction;
  validateBody?: Record<string, ValidateFunction>;
  responses: Map<string, Record<string, ValidateFunction | null>>;
  headerNames: string[];
}

// The contract is typed loosely here on purpose: the router reads it generically.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Spec = Record<string, any>;

export function loadSpec(file = SPEC_PATH): Spec {
  return parseYaml(fs.readFileSync(file, "utf8")) as Spec;
}

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void;

function rewriteRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (node && typeof node === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(node)) {
      out[k] = k === "$ref" && typeof v === "string" && v.startsWith("#/") ? `spec.json${v}` : rewriteRefs(v);
    }
    return out;
  }
  return node;
}

function resolveRef<T>(spec: Spec, node: T): T {
  let n = node as { $ref?: string };
  while (n && typeof n === "object" && typeof n.$ref === "string") {
    n = n.$ref
      .slice(2)
      .split("/")
      .reduce<Spec>((acc, part) => acc?.[part.replace(/~1/g, "/").replace(/~0/g, "~")], spec) as { $ref?: string };
  }
  return n as T;
}

/** Compiles every operation of the contract once, at boot. */
export function compileOperations(spec: Spec): Operation[] {
  const strict = new Ajv2020({ allErrors: true, strict: false, validateFormats: true });
  const coercing = new Ajv2020({ allErrors: true, strict: false, coerceTypes: "array", useDefaults: true });
  for (const ajv of [strict, coercing]) {
    addFormats(ajv);
    ajv.addSchema({ $id: "spec.json", components: rewriteRefs(spec.components ?? {}) });
  }

  const ops: Operation[] = [];
  for (const [p, item] of Object.entries<Spec>(spec.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      if (!op.operationId) throw new Error(`${method.toUpperCase()} ${p} has no operationId`);
      const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((x: Spec) => resolveRef(spec, x));
      const group = (where: string, ajv: Ajv2020, lower = false) => {
        const ps = params.filter((x) => x.in === where);
        if (ps.length === 0) return undefined;
        const name = (x: Spec) => (lower ? String(x.name).toLowerCase() : String(x.name));
        return ajv.compile({
          type: "object",
          properties: Object.fromEntries(ps.map((x) => [name(x), rewriteRefs(x.schema ?? {})])),
          required: ps.filter((x) => x.required).map(name),
        });
      };
      const body = op.requestBody ? resolveRef(spec, op.requestBody) : undefined;
      const content: Record<string, Spec> = body?.content ?? {};
      const responses = new Map<string, Record<string, ValidateFunction | null>>();
      for (const [status, r] of Object.entries<Spec>(op.responses ?? {})) {
        const resp = resolveRef(spec, r);
        const byType: Record<string, ValidateFunction | null> = {};
        for (const [type, media] of Object.entries<Spec>(resp.content ?? {})) {
          byType[type] = media.schema && type.includes("json") ? strict.compile(rewriteRefs(media.schema) as object) : null;
        }
        responses.set(status, byType);
      }
      ops.push({
        operationId: op.operationId,
        method,
        path: p,
        security: op.security ?? spec.security ?? [],
        requestContentTypes: Object.keys(content),
        bodyRequired: Boolean(body?.required),
        validateParams: group("path", coercing),
        validateQuery: group("query", coercing),
        validateHeaders: group("header", strict, true),
        validateBody: Object.fromEntries(
          Object.entries(content)
            .filter(([, m]) => m.schema)
            .map(([type, m]) => [type, strict.compile(rewriteRefs(m.schema) as object)]),
        ),
        responses,
        headerNames: params.filter((x) => x.in === "header").map((x) => String(x.name).toLowerCase()),
      });
    }
  }
  return ops;
}

/**
 * Where a `oneOf` failed (one event or an array of them), Ajv reports every branch: "must be
 * object", "must be array", "must match exactly one schema in oneOf" beside the real findings.
 * When there are real findings at or under that place, the branch-type noise goes.
 */
function withoutOneOfNoise(errors: ErrorObject[]): ErrorObject[] {
  let out = errors;
  for (const at of new Set(errors.filter((e) => e.keyword === "oneOf").map((e) => e.instancePath))) {
    const rest = out.filter((e) => !(e.instancePath === at && (e.keyword === "oneOf" || e.keyword === "type")));
    if (rest.some((e) => e.instancePath === at || e.instancePath.startsWith(`${at}/`))) out = rest;
  }
  return out;
}

/** Turns Ajv's findings into `{field, reason}` pairs a developer can act on. */
export function fieldErrors(where: string, errors: ErrorObject[] | null | undefined) {
  return withoutOneOfNoise(errors ?? []).map((e) => {
    let pointer = e.instancePath;
    let reason = e.message ?? "is not valid";
    if (e.keyword === "required") {
      pointer += `/${(e.params as { missingProperty: string }).missingProperty}`;
      reason = "is required";
    } else if (e.keyword === "additionalProperties") {
      pointer += `/${(e.params as { additionalProperty: string }).additionalProperty}`;
      reason = "is not a known field";
    } else if (e.keyword === "enum") {
      reason = `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
    }
    return { field: `${where}${pointer}`, reason };
  });
}

export function toExpressPath(p: string): string {
  return p.replace(/\{([A-Za-z0-9_]+)\}/g, ":$1");
}
