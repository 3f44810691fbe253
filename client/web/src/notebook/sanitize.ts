// The HTML sanitizer for rendered markdown: DOMPurify with Tandem's allow-list. Collaborators
// write markdown that every other collaborator's browser renders on Tandem's origin, so
// anything that could run script (tags, event attributes, javascript: URLs, styles) is
// dropped. DOMPurify parses in an inert document, compares URLs with whitespace and control
// characters removed (`java\tscript:` is `javascript:` to a browser), and knows the parser
// quirks behind mutation XSS; the hooks below add what is Tandem's own: notebook attachments,
// raster-only data: images, read-only task-list checkboxes, links that open in a new tab.

import createDOMPurify, { type Config, type DOMPurify } from "dompurify";

const TAGS = [
  "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del",
  "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5",
  "h6", "hr", "i", "img", "input", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp",
  "small", "span", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th",
  "thead", "tr", "u", "ul",
];
/** Elements dropped with everything inside them (DOMPurify already drops script, style,
 * iframe, svg, math, template, noscript and the like with their content). */
const DROP = ["object", "embed", "frame", "frameset", "link", "meta", "base", "form", "textarea", "select", "button"];
const ATTRS = [
  "href", "src", "alt", "title", "width", "height", "align", "colspan", "rowspan", "start",
  "class", "type", "checked", "disabled", "data-math", "open", "lang",
];
/** Links and images: http(s), mailto, and relative URLs and fragments; no other scheme. */
const URLS = /^(?:(?:https?|mailto):|[^a-z]|[a-z+.-]+(?:[^a-z+.\-:]|$))/i;
/** data: URLs only for raster images (an SVG can carry script when opened on its own). */
const DATA_IMAGE = /^data:image\/(?:png|jpeg|gif|webp)[;,]/i;

const CONFIG: Config = {
  ALLOWED_TAGS: TAGS,
  ALLOWED_ATTR: ATTRS,
  ALLOW_DATA_ATTR: false,
  ALLOW_ARIA_ATTR: false,
  ALLOWED_URI_REGEXP: URLS,
  ADD_FORBID_CONTENTS: DROP,
};

/** Rewrites `attachment:NAME` image sources during the call that set it. */
let resolving: ((name: string) => string | null) | undefined;
let instance: DOMPurify | undefined;

/** The DOMPurify of this window, with Tandem's hooks (made on first use, so tests can
 * provide a window first). */
function purifier(): DOMPurify {
  if (instance) return instance;
  const purify = createDOMPurify(window);
  purify.addHook("uponSanitizeAttribute", (node, event) => {
    if (event.attrName !== "src") return;
    if (node.nodeName !== "IMG") {
      event.keepAttr = false;
      return;
    }
    let value = event.attrValue;
    if (value.startsWith("attachment:")) {
      const resolved = resolving?.(value.slice("attachment:".length)) ?? null;
      if (!resolved) {
        event.keepAttr = false;
        return;
      }
      value = event.attrValue = resolved;
    }
    if (/^\s*data:/i.test(value) && !DATA_IMAGE.test(value)) event.keepAttr = false;
  });
  purify.addHook("afterSanitizeAttributes", (node) => {
    if (node.nodeName === "INPUT") {
      // Task lists only: a checkbox nobody can tick.
      if ((node.getAttribute("type") ?? "").toLowerCase() !== "checkbox") {
        node.remove();
        return;
      }
      node.setAttribute("disabled", "");
    } else if (node.nodeName === "A" && node.hasAttribute("href")) {
      if (!(node.getAttribute("href") ?? "").startsWith("#")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    } else if (node.nodeName === "IMG") {
      node.setAttribute("loading", "lazy");
    }
  });
  instance = purify;
  return purify;
}

/**
 * Sanitizes `html` into a fragment. `resolveImage` may rewrite an image's src (notebook
 * attachments: `attachment:name.png`).
 */
export function sanitize(html: string, resolveImage?: (src: string) => string | null): DocumentFragment {
  resolving = resolveImage;
  try {
    return purifier().sanitize(html, { ...CONFIG, RETURN_DOM_FRAGMENT: true });
  } finally {
    resolving = undefined;
  }
}
