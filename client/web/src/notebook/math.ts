// KaTeX, loaded on demand: this module is its own chunk (esbuild splitting), fetched with
// KaTeX's stylesheet the first time a page shows math (markdown.ts). Its stylesheet is a
// build entry of its own (woff2 fonts only); index.html names it in
// <meta name="tandem-katex-css">.

import katex from "katex";

/** A formula as HTML (and MathML), or null when KaTeX cannot render it. */
export function renderTex(tex: string, display: boolean): string | null {
  try {
    return katex.renderToString(tex, {
      displayMode: display,
      throwOnError: false,
      trust: false,
      output: "htmlAndMathml",
    });
  } catch {
    return null;
  }
}
