// Markdown cells: marked (GitHub-flavoured) with $…$ and $$…$$ math rendered by KaTeX. The
// HTML marked produces goes through the sanitizer; math is rendered by KaTeX (trust off)
// after sanitizing, into placeholders, so its markup needs no allow-list of its own.

import katex from "katex";
import "katex/dist/katex.min.css";
import { Marked, type TokenizerAndRendererExtension } from "marked";
import { sanitize } from "./sanitize";

let formulas: { tex: string; display: boolean }[] = [];

function placeholder(tex: string, display: boolean): string {
  formulas.push({ tex, display });
  return `<span data-math="${formulas.length - 1}"></span>`;
}

const blockMath: TokenizerAndRendererExtension = {
  name: "blockMath",
  level: "block",
  start: (src) => src.match(/\$\$/)?.index,
  tokenizer(src) {
    const m = /^\$\$([\s\S]+?)\$\$[^\S\n]*(?:\n|$)/.exec(src);
    if (m) return { type: "blockMath", raw: m[0], text: m[1].trim() };
    return undefined;
  },
  renderer: (token) => `<div class="math-block">${placeholder(token.text as string, true)}</div>`,
};

const inlineMath: TokenizerAndRendererExtension = {
  name: "inlineMath",
  level: "inline",
  start: (src) => src.match(/\$/)?.index,
  tokenizer(src) {
    const display = /^\$\$([\s\S]+?)\$\$/.exec(src);
    if (display) return { type: "inlineMath", raw: display[0], text: display[1].trim(), display: true };
    // $x$ but not "$5 and $6": no space just inside the dollars, no digit right after.
    const m = /^\$(?!\s)((?:\\\$|[^$\n])+?)(?<!\s)\$(?!\d)/.exec(src);
    if (m) return { type: "inlineMath", raw: m[0], text: m[1], display: false };
    return undefined;
  },
  renderer: (token) => placeholder(token.text as string, Boolean(token.display)),
};

const marked = new Marked({ gfm: true, breaks: false, extensions: [blockMath, inlineMath] });

/** Renders a markdown cell's source into `into` (replacing what was there). */
export function renderMarkdown(
  source: string,
  into: HTMLElement,
  attachments?: Record<string, Record<string, string>>,
) {
  formulas = [];
  let html: string;
  try {
    html = marked.parse(source, { async: false }) as string;
  } catch (error) {
    into.replaceChildren(document.createTextNode(source));
    return;
  }
  const found = formulas;
  const fragment = sanitize(html, (name) => {
    const bundle = attachments?.[name];
    if (!bundle) return null;
    const [mime, data] = Object.entries(bundle).find(([m]) => m.startsWith("image/")) ?? [];
    if (!mime || typeof data !== "string" || mime === "image/svg+xml") return null;
    return `data:${mime};base64,${data.replace(/\s/g, "")}`;
  });
  for (const span of Array.from(fragment.querySelectorAll<HTMLElement>("span[data-math]"))) {
    const formula = found[Number(span.dataset.math)];
    if (!formula) continue;
    try {
      span.innerHTML = katex.renderToString(formula.tex, {
        displayMode: formula.display,
        throwOnError: false,
        trust: false,
        output: "htmlAndMathml",
      });
    } catch {
      span.textContent = formula.display ? `$$${formula.tex}$$` : `$${formula.tex}$`;
    }
  }
  into.replaceChildren(fragment);
}
