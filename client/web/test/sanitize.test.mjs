// Unit tests of the markdown sanitizer (src/notebook/sanitize.ts, DOMPurify with Tandem's
// allow-list) against the classic XSS payloads: schemes split by entities, whitespace and
// control characters, SVG and MathML, mutation XSS (markup that changes meaning when the
// sanitized output is parsed again), event attributes such as `details ontoggle`. Run by
// `npm test` in a jsdom window.
import assert from "node:assert/strict";
import { test } from "node:test";
import { JSDOM } from "jsdom";

const { window } = new JSDOM("<!doctype html><html><head></head><body></body></html>");
for (const name of ["window", "document", "Node", "NodeFilter", "Element", "HTMLElement", "DocumentFragment", "DOMParser"]) {
  globalThis[name] = name === "window" ? window : window[name];
}
const { sanitize } = await import("../src/notebook/sanitize.ts");
const { renderMarkdown } = await import("../src/notebook/markdown.ts");

/** `html` sanitized, in a live element. */
function clean(html, resolveImage) {
  const div = document.createElement("div");
  div.appendChild(sanitize(html, resolveImage));
  return div;
}

/** A URL as a browser reads it: without the whitespace and control characters it ignores. */
const compact = (url) => url.replace(/[\u0000-\u0020\u00a0\u1680\u180e\u2000-\u2029\u205f\u3000]/g, "").toLowerCase();

const FORBIDDEN = ["script", "style", "iframe", "frame", "svg", "math", "object", "embed", "form", "base", "meta", "link", "template", "noscript", "textarea", "button", "select"];

/** Nothing in `root` can run script, load a document, or restyle the page. */
function assertInert(root, payload) {
  for (const el of root.querySelectorAll("*")) {
    const tag = el.tagName.toLowerCase();
    assert.ok(!FORBIDDEN.includes(tag), `${payload}: <${tag}> survived`);
    for (const { name, value } of Array.from(el.attributes)) {
      assert.ok(!name.startsWith("on"), `${payload}: ${name} survived`);
      assert.ok(!["style", "srcdoc", "formaction", "xlink:href", "action", "id", "name"].includes(name), `${payload}: ${name} survived`);
      if (name === "href" || name === "src") {
        const url = compact(value);
        const ok =
          /^(https?:|mailto:|#|\/|\.)/.test(url) ||
          !/^[a-z][a-z0-9+.-]*:/.test(url) ||
          (name === "src" && tag === "img" && /^data:image\/(png|jpeg|gif|webp)[;,]/.test(url));
        assert.ok(ok, `${payload}: ${name}=${JSON.stringify(value)} survived`);
      }
    }
  }
}

/** Safe as sanitized, and still safe once the output is parsed again (mutation XSS). */
function assertSafe(payload) {
  const first = clean(payload);
  assertInert(first, payload);
  const again = document.createElement("div");
  again.innerHTML = first.innerHTML;
  assertInert(again, `${payload} (parsed again)`);
  return first;
}

/** Script schemes split by whitespace, control characters and entities: browsers ignore
 * those and read `javascript:`. */
const SPLIT_SCHEMES = [
  '<a href="java\tscript:alert(1)">x</a>',
  '<a href="java&#x09;script:alert(1)">x</a>',
  '<a href="java&#x0A;script:alert(1)">x</a>',
  '<a href="java&#x0D;script:alert(1)">x</a>',
  '<a href="java&#9;script:alert(1)">x</a>',
  '<a href="&#x01;javascript:alert(1)">x</a>',
  '<a href=" &#14; javascript:alert(1)">x</a>',
  '<a href="JaVaScRiPt:alert(1)">x</a>',
  '<a href="&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)">x</a>',
  '<a href="&#x6A;avascript&colon;alert(1)">x</a>',
  '<a href="javascript&colon;alert(1)">x</a>',
  '<a href="jav&#x41;script:alert(1)">x</a>',
  '<a href="vbscript:msgbox(1)">x</a>',
  '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
];

const PAYLOADS = [
  ...SPLIT_SCHEMES,
  // The parser turns NUL into U+FFFD: no scheme at all then, a relative link.
  '<a href="\u0000javascript:alert(1)">x</a>',
  '<img src="javascript:alert(1)">',
  '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
  '<img src="data:text/html,<script>alert(1)</script>">',
  // Event attributes.
  "<img src=x onerror=alert(1)>",
  "<details open ontoggle=alert(1)>x</details>",
  '<a href="#" onclick="alert(1)">x</a>',
  "<p onmouseover=alert(1)>x</p>",
  "<input onfocus=alert(1) autofocus>",
  '<input type="image" src=x onerror=alert(1)>',
  '<body onload="alert(1)">',
  // SVG and MathML.
  "<svg><script>alert(1)</script></svg>",
  "<svg onload=alert(1)>",
  '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">x</text></a></svg>',
  '<svg><animate attributeName="href" values="javascript:alert(1)"/></svg>',
  '<math><maction actiontype="statusline" xlink:href="javascript:alert(1)">x</maction></math>',
  // Mutation XSS: parser differentials between the sanitized tree and its serialization.
  "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)></style></mglyph></table></mtext></math>",
  '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
  "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
  '<math><mi><table><mglyph><svg><mtext><textarea><path id="</textarea><img onerror=alert(1) src=1>"></path></textarea></mtext></svg></mglyph></table></mi></math>',
  '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
  '<svg><p><style><g title="</style><img src=x onerror=alert(1)>">',
  "<xmp><p title=\"</xmp><img src=x onerror=alert(1)>\">",
  '<textarea><img title="</textarea><img src=x onerror=alert(1)>"></textarea>',
  "<!--><img src=x onerror=alert(1)>-->",
  "<scr<script>ipt>alert(1)</scr</script>ipt>",
  "<template><img src=x onerror=alert(1)></template>",
  // Documents, frames, plugins, forms, styles, clobbering.
  '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
  '<object data="javascript:alert(1)"></object>',
  '<embed src="javascript:alert(1)">',
  '<button formaction="javascript:alert(1)">x</button>',
  '<form action="javascript:alert(1)"><input type="submit"></form>',
  '<base href="javascript:/">',
  '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
  '<link rel="stylesheet" href="https://evil.example/x.css">',
  "<style>body{display:none}</style>",
  '<div style="background:url(javascript:alert(1))">x</div>',
  '<p id="cookie" name="location">clobber</p>',
];

test("classic XSS payloads come out inert, also when parsed again", () => {
  for (const payload of PAYLOADS) assertSafe(payload);
});

test("the java\\tscript: family loses its href but keeps its text", () => {
  for (const payload of SPLIT_SCHEMES) {
    const out = assertSafe(payload);
    const a = out.querySelector("a");
    if (!a) continue;
    assert.equal(a.getAttribute("href"), null, payload);
    assert.equal(a.textContent, "x", payload);
  }
});

test("scripts, styles and frames go with their content; unknown tags keep theirs", () => {
  assert.equal(clean("<script>alert(1)</script>after").innerHTML, "after");
  assert.equal(clean("<style>p{}</style>after").innerHTML, "after");
  assert.equal(clean("<form>inside</form>after").innerHTML, "after");
  assert.equal(clean("<custom-el><b>bold</b></custom-el>").innerHTML, "<b>bold</b>");
  assert.equal(clean("<font color=red>t</font>").innerHTML, "t");
});

test("what markdown needs survives", () => {
  const out = assertSafe(
    '<h2 class="x">T</h2><p><a href="https://example.com/a?b=1">web</a> <a href="#sec">here</a> ' +
      '<a href="mailto:ada@example.com">mail</a> <a href="/n/abc">rel</a> <a href="docs/x.md">doc</a></p>' +
      '<table><thead><tr><th align="right">h</th></tr></thead><tbody><tr><td colspan="2">d</td></tr></tbody></table>' +
      '<ol start="3"><li><input type="checkbox" checked> done</li></ol><details open><summary>s</summary>b</details>' +
      '<span data-math="0"></span><span data-other="1">o</span><img src="https://example.com/p.png" alt="p" width="10">' +
      '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">',
  );
  const links = Array.from(out.querySelectorAll("a"));
  assert.deepEqual(
    links.map((a) => [a.getAttribute("href"), a.getAttribute("target"), a.getAttribute("rel")]),
    [
      ["https://example.com/a?b=1", "_blank", "noopener noreferrer"],
      ["#sec", null, null],
      ["mailto:ada@example.com", "_blank", "noopener noreferrer"],
      ["/n/abc", "_blank", "noopener noreferrer"],
      ["docs/x.md", "_blank", "noopener noreferrer"],
    ],
  );
  assert.equal(out.querySelector("h2").className, "x");
  assert.equal(out.querySelector("th").getAttribute("align"), "right");
  assert.equal(out.querySelector("td").getAttribute("colspan"), "2");
  assert.equal(out.querySelector("ol").getAttribute("start"), "3");
  const box = out.querySelector("input");
  assert.equal(box.getAttribute("type"), "checkbox");
  assert.ok(box.hasAttribute("checked") && box.hasAttribute("disabled"));
  assert.ok(out.querySelector("details").hasAttribute("open"));
  assert.equal(out.querySelector("span[data-math]").getAttribute("data-math"), "0");
  assert.equal(out.querySelectorAll("span")[1].getAttribute("data-other"), null);
  const images = Array.from(out.querySelectorAll("img"));
  assert.deepEqual(
    images.map((img) => [img.getAttribute("src"), img.getAttribute("loading")]),
    [
      ["https://example.com/p.png", "lazy"],
      ["data:image/png;base64,iVBORw0KGgo=", "lazy"],
    ],
  );
});

test("only checkboxes stay of inputs, read-only", () => {
  assert.equal(clean('<input type="text" value="x">t').innerHTML, "t");
  assert.equal(clean("<input>t").innerHTML, "t");
  assert.equal(clean('<input type="checkbox">').innerHTML, '<input type="checkbox" disabled="">');
});

test("attachments resolve to raster images only, and only when the resolver knows them", () => {
  const resolve = (name) => ({ "a.png": "data:image/png;base64,AAAA", "s.svg": "data:image/svg+xml;base64,AAAA" })[name] ?? null;
  assert.equal(clean('<img src="attachment:a.png">', resolve).querySelector("img").getAttribute("src"), "data:image/png;base64,AAAA");
  assert.equal(clean('<img src="attachment:s.svg">', resolve).querySelector("img").getAttribute("src"), null);
  assert.equal(clean('<img src="attachment:none.png">', resolve).querySelector("img").getAttribute("src"), null);
  assert.equal(clean('<img src="attachment:a.png">').querySelector("img").getAttribute("src"), null);
  // src is for images only.
  assert.equal(clean('<p src="https://example.com/x">p</p>').querySelector("p").getAttribute("src"), null);
});

test("markdown links and raw HTML in a markdown cell render inert", async () => {
  const into = document.createElement("div");
  // Math renders once KaTeX (its own chunk in the app) has loaded.
  await renderMarkdown(
    [
      "[tab](java&#x09;script:alert(1)) [entity](&#106;avascript:alert(1)) [ok](https://example.com)",
      "",
      "<details open ontoggle=alert(1)><summary>s</summary></details>",
      "",
      '<a href="java&#x09;script:alert(1)">raw</a> <img src=x onerror=alert(1)> $x^2$',
    ].join("\n"),
    into,
  );
  // KaTeX renders after sanitizing, with its own trusted markup (MathML, inline styles).
  assert.ok(into.querySelector(".katex"), "math still renders");
  for (const math of into.querySelectorAll(".katex")) math.remove();
  assertInert(into, "markdown");
  const hrefs = Array.from(into.querySelectorAll("a")).map((a) => a.getAttribute("href"));
  assert.deepEqual(hrefs.filter(Boolean), ["https://example.com"]);
});
