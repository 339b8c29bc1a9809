/** fontkit (pdfkit's font engine) ships no types; the statement PDF only parses a font once with it. */
declare module "fontkit" {
  /** A parsed font; pdfkit's registerFont accepts it in place of the font file. */
  export interface Font {
    layout(text: string): unknown;
  }
  export function create(buffer: Uint8Array, postscriptName?: string): Font;
}
