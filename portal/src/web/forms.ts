import { html, type Html } from "../html.ts";

export interface FieldOptions {
  type?: string;
  value?: string;
  error?: string | undefined;
  hint?: string;
  required?: boolean;
  autocomplete?: string;
  /** For a select: [value, label] pairs. */
  options?: Array<[string, string]>;
  rows?: number;
  attrs?: Html;
  /** The element id when a page has the same field twice (defaults to f-<name>). */
  id?: string;
}

/**
 * One labelled form field. The label is a real <label for>, the hint and the error are tied to the
 * input with aria-describedby, and a field in error says so with aria-invalid.
 */
export function field(name: string, label: string, o: FieldOptions = {}): Html {
  const id = o.id ?? `f-${name}`;
  const described = [o.hint ? `${id}-hint` : "", o.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  const common = html`id="${id}" name="${name}"${o.required ? html` required` : ""}${described ? html` aria-describedby="${described}"` : ""}${o.error ? html` aria-invalid="true"` : ""}${o.autocomplete ? html` autocomplete="${o.autocomplete}"` : ""}${o.attrs ?? ""}`;
  let control: Html;
  if (o.options) {
    control = html`<select ${common}>${o.options.map(([v, l]) => html`<option value="${v}"${v === o.value ? html` selected` : ""}>${l}</option>`)}</select>`;
  } else if (o.type === "textarea") {
    control = html`<textarea ${common} rows="${o.rows ?? 6}">${o.value ?? ""}</textarea>`;
  } else {
    control = html`<input type="${o.type ?? "text"}" ${common} value="${o.type === "password" ? "" : (o.value ?? "")}">`;
  }
  return html`<div class="field${o.error ? " field-error" : ""}">
<label for="${id}">${label}${o.required ? html` <span class="req" aria-hidden="true">*</span>` : ""}</label>
${o.hint ? html`<p class="hint" id="${id}-hint">${o.hint}</p>` : ""}
${control}
${o.error ? html`<p class="error" id="${id}-error">${o.error}</p>` : ""}
</div>`;
}

/** A string field from a urlencoded body, trimmed; "" when absent. */
export function str(body: unknown, name: string, max = 500): string {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  return typeof v === "string" ? v.trim().slice(0, max) : "";
}

/** Every value of a repeated field (checkboxes). */
export function list(body: unknown, name: string): string[] {
  const v = (body as Record<string, unknown> | undefined)?.[name];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return typeof v === "string" ? [v] : [];
}
