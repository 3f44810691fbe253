// Markdown cells: marked (GitHub-flavoured) with $…$ and $$…$$ math rendered by KaTeX. The
// HTML marked produces goes through the sanitizer; math is rendered by KaTeX (trust off)
// after sanitizing, into placeholders, so its markup needs no allow-list of its own.
//
// KaTeX (a quarter of the client, plus its stylesheet and fonts) loads the first time a page
// has math to show (./math, a chunk of its own); until then a formula reads as its TeX.

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

type MathModule = typeof import("./math");
let math: MathModule | null = null;
let loading: Promise<MathModule> | null = null;

/** KaTeX's code and stylesheet, fetched once; resolves when both are in. */
function loadMath(): Promise<MathModule> {
  loading ??= Promise.all([import("./math"), loadStylesheet()]).then(([module]) => {
    math = module;
    return module;
  });
  return loading;
}

/** KaTeX's stylesheet, as the build named it in index.html (none outside the app's page). */
function loadStylesheet(): Promise<void> {
  const href = document.querySelector<HTMLMetaElement>('meta[name="tandem-katex-css"]')?.content;
  if (!href) return Promise.resolve();
  return new Promise((resolve) => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    // A stylesheet that fails still leaves the formulas readable.
    link.onload = link.onerror = () => resolve();
    document.head.appendChild(link);
  });
}

/** Renders a markdown cell's source into `into` (replacing what was there). The returned
 * promise settles once its math is rendered (at once when KaTeX is already loaded). */
export function renderMarkdown(
  source: string,
  into: HTMLElement,
  attachments?: Record<string, Record<string, string>>,
): Promise<void> {
  formulas = [];
  let html: string;
  try {
    html = marked.parse(source, { async: false }) as string;
  } catch (error) {
    into.replaceChildren(document.createTextNode(source));
    return Promise.resolve();
  }
  const found = formulas;
  const fragment = sanitize(html, (name) => {
    const bundle = attachments?.[name];
    if (!bundle) return null;
    const [mime, data] = Object.entries(bundle).find(([m]) => m.startsWith("image/")) ?? [];
    if (!mime || typeof data !== "string" || mime === "image/svg+xml") return null;
    return `data:${mime};base64,${data.replace(/\s/g, "")}`;
  });
  const spans = Array.from(fragment.querySelectorAll<HTMLElement>("span[data-math]"));
  const fill = (module: MathModule) => {
    for (const span of spans) {
      const formula = found[Number(span.dataset.math)];
      if (!formula) continue;
      const rendered = module.renderTex(formula.tex, formula.display);
      if (rendered === null) span.textContent = tex(formula);
      else span.innerHTML = rendered;
    }
  };
  if (spans.length && math) fill(math);
  into.replaceChildren(fragment);
  if (!spans.length || math) return Promise.resolve();
  for (const span of spans) {
    const formula = found[Number(span.dataset.math)];
    if (formula) span.textContent = tex(formula);
  }
  return loadMath().then(fill, () => {
    // Offline or a failed chunk: the TeX stays, and the next render tries again.
    loading = null;
  });
}

function tex(formula: { tex: string; display: boolean }): string {
  return formula.display ? `$$${formula.tex}$$` : `$${formula.tex}$`;
}
