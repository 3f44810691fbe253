// An allow-list HTML sanitizer for rendered markdown. Collaborators write markdown that every
// other collaborator's browser renders on Tandem's origin, so anything that could run script
// (tags, event attributes, javascript: URLs, styles) is dropped. Parsing uses DOMParser, whose
// documents are inert: nothing loads or runs while we look.

const TAGS = new Set([
  "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
  "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
  "h6", "hr", "i", "img", "input", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
  "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
  "thead", "tr", "u", "ul",
]);
/** Elements dropped with everything inside them. */
const DROP = new Set(["script", "style", "iframe", "object", "embed", "template", "noscript", "frame", "frameset", "svg", "math", "link", "meta", "base", "form", "textarea", "select", "button"]);
const ATTRS = new Set([
  "href", "src", "alt", "title", "width", "height", "align", "colspan", "rowspan", "start",
  "class", "type", "checked", "disabled", "data-math", "open", "lang",
]);

function safeUrl(value: string, forImage: boolean): boolean {
  const v = value.trim().toLowerCase();
  if (forImage && /^data:image\/(png|jpeg|gif|webp);/.test(v)) return true;
  if (/^(https?:|mailto:)/.test(v)) return true;
  // Relative URLs and fragments; but no other scheme (javascript:, data:, vbscript:, …).
  return !/^[a-z][a-z0-9+.-]*:/.test(v);
}

/**
 * Sanitizes `html` into a fragment. `resolveImage` may rewrite an image's src (notebook
 * attachments: `attachment:name.png`).
 */
export function sanitize(html: string, resolveImage?: (src: string) => string | null): DocumentFragment {
  const parsed = new DOMParser().parseFromString(`<body>${html}</body>`, "text/html");
  const out = document.createDocumentFragment();
  copyChildren(parsed.body, out, resolveImage);
  return out;
}

function copyChildren(from: Node, to: Node, resolveImage?: (src: string) => string | null) {
  for (const node of Array.from(from.childNodes)) {
    if (node.nodeType === Node.TEXT_NODE) {
      to.appendChild(document.createTextNode(node.textContent ?? ""));
      continue;
    }
    if (node.nodeType !== Node.ELEMENT_NODE) continue;
    const el = node as Element;
    const tag = el.tagName.toLowerCase();
    if (DROP.has(tag)) continue;
    if (!TAGS.has(tag)) {
      // Unknown element: keep its content, drop the element.
      copyChildren(el, to, resolveImage);
      continue;
    }
    const clean = document.createElement(tag);
    for (const attr of Array.from(el.attributes)) {
      const name = attr.name.toLowerCase();
      if (!ATTRS.has(name)) continue;
      let value = attr.value;
      if (name === "href" && !safeUrl(value, false)) continue;
      if (name === "src") {
        if (tag !== "img") continue;
        if (value.startsWith("attachment:") && resolveImage) {
          const resolved = resolveImage(value.slice("attachment:".length));
          if (!resolved) continue;
          value = resolved;
        } else if (!safeUrl(value, true)) continue;
      }
      if (tag === "input" && name === "type" && value !== "checkbox") continue;
      clean.setAttribute(name, value);
    }
    if (tag === "input") {
      if (clean.getAttribute("type") !== "checkbox") continue;
      clean.setAttribute("disabled", "");
    }
    if (tag === "a") {
      const href = clean.getAttribute("href") ?? "";
      if (!href.startsWith("#")) {
        clean.setAttribute("target", "_blank");
        clean.setAttribute("rel", "noopener noreferrer");
      }
    }
    if (tag === "img") clean.setAttribute("loading", "lazy");
    copyChildren(el, clean, resolveImage);
    to.appendChild(clean);
  }
}
