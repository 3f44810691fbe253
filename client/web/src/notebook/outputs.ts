// A code cell's outputs, rendered live from its `outputs` Y.Array. Each output Y.Map keeps its
// element until that output changes (a stream's Y.Text grows, a display is updated), so a
// streaming cell re-renders only its last output. HTML goes into a sandboxed iframe (scripts
// run, on an opaque origin: no cookies, no access to this page; popups they open stay
// sandboxed); images and SVG as <img>; errors and streams with their ANSI colours.

import * as Y from "yjs";
import { fullOutputUrl } from "../api";
import { h } from "../dom";
import { renderAnsi } from "./ansi";
import { renderMarkdown } from "./markdown";

type Json = Record<string, unknown>;

/**
 * The page HTML outputs are written into (client/web/src/output-frame.html). The server
 * sends it with a policy of its own (sandboxed, free inside), where a `srcdoc` frame would
 * inherit this page's Content-Security-Policy and could run none of the output's scripts.
 */
const FRAME_URL = "/output-frame";

let frameCounter = 0;
const frames = new Map<string, { frame: HTMLIFrameElement; html: string }>();

// A frame asks for its document once it has loaded (again, if it was moved and reloaded),
// and then reports its content height so it never needs a scrollbar.
window.addEventListener("message", (event) => {
  const data = event.data as { tandemFrame?: unknown; ready?: unknown; height?: unknown } | null;
  if (!data || typeof data.tandemFrame !== "string") return;
  const entry = frames.get(data.tandemFrame);
  if (!entry || event.source !== entry.frame.contentWindow) return;
  if (data.ready === true) {
    // The frame's origin is opaque, so "*" is the only target that reaches it.
    entry.frame.contentWindow?.postMessage({ tandemHtml: entry.html }, "*");
  } else if (typeof data.height === "number") {
    entry.frame.style.height = `${Math.min(Math.max(data.height, 20), 4000)}px`;
  }
});

function htmlFrame(html: string): HTMLElement {
  const id = `f${++frameCounter}`;
  const frame = h("iframe.html-output", {
    // No allow-popups-to-escape-sandbox: a window an output opens is as sandboxed as the
    // output itself, so it cannot act on Tandem's origin with the user's session.
    sandbox: "allow-scripts allow-popups",
    loading: "lazy",
    title: "HTML output",
    referrerpolicy: "no-referrer",
    src: `${FRAME_URL}#${id}`,
  });
  const document =
    `<!doctype html><html><head><meta charset="utf-8"><base target="_blank">` +
    `<style>body{margin:0;padding:2px;font:13px/1.4 system-ui,sans-serif;color:#202124}` +
    `table{border-collapse:collapse;font-size:12px}th,td{padding:4px 8px;text-align:right;border:none}` +
    `thead th{border-bottom:1px solid #bbb}tbody tr:nth-child(odd){background:#f5f5f5}` +
    `tbody tr:hover{background:#e8f0fe}</style></head><body>${html}` +
    `<script>(function(){var post=function(){parent.postMessage({tandemFrame:${JSON.stringify(id)},` +
    `height:document.documentElement.scrollHeight},"*")};` +
    `if(window.ResizeObserver)new ResizeObserver(post).observe(document.documentElement);` +
    `addEventListener("load",post);post();})()</script></body></html>`;
  frames.set(id, { frame, html: document });
  return frame;
}

// Frames that leave the page are forgotten (checked lazily, when the map grows).
function sweepFrames() {
  if (frames.size < 64) return;
  for (const [id, { frame }] of frames) if (!frame.isConnected) frames.delete(id);
}

function joinText(value: unknown): string {
  if (value instanceof Y.Text) return value.toString();
  if (Array.isArray(value)) return value.join("");
  if (typeof value === "string") return value;
  return value === undefined || value === null ? "" : String(value);
}

function dataUrl(mime: string, value: unknown): string {
  return `data:${mime};base64,${joinText(value).replace(/\s/g, "")}`;
}

function renderBundle(data: Json, metadata: Json): HTMLElement {
  const box = h("div.output-data");
  if (data["text/html"] !== undefined) {
    box.appendChild(htmlFrame(joinText(data["text/html"])));
  } else if (data["image/svg+xml"] !== undefined) {
    const svg = joinText(data["image/svg+xml"]);
    box.appendChild(h("img.output-image", { src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`, alt: "SVG output" }));
  } else if (data["image/png"] !== undefined || data["image/jpeg"] !== undefined || data["image/gif"] !== undefined) {
    const mime = ["image/png", "image/jpeg", "image/gif"].find((m) => data[m] !== undefined) ?? "image/png";
    const meta = (metadata?.[mime] ?? {}) as Json;
    const img = h("img.output-image", { src: dataUrl(mime, data[mime]), alt: "Image output" });
    if (typeof meta.width === "number") img.width = meta.width;
    if (typeof meta.height === "number") img.height = meta.height;
    box.appendChild(img);
  } else if (data["text/markdown"] !== undefined) {
    const md = h("div.markdown");
    renderMarkdown(joinText(data["text/markdown"]), md);
    box.appendChild(md);
  } else if (data["text/latex"] !== undefined) {
    const md = h("div.markdown");
    renderMarkdown(joinText(data["text/latex"]), md);
    box.appendChild(md);
  } else if (data["application/json"] !== undefined) {
    box.appendChild(h("pre.output-text", {}, JSON.stringify(data["application/json"], null, 2)));
  } else if (data["text/plain"] !== undefined) {
    const pre = h("pre.output-text");
    renderAnsi(joinText(data["text/plain"]), pre);
    box.appendChild(pre);
  } else {
    box.appendChild(h("pre.output-text.muted", {}, `[output of type ${Object.keys(data).join(", ") || "unknown"}]`));
  }
  return box;
}

/** One output as an element. */
export function renderOutput(output: Y.Map<unknown>, notebookId: string): HTMLElement {
  const type = output.get("output_type");
  if (type === "stream") {
    const name = output.get("name") === "stderr" ? "stderr" : "stdout";
    const pre = h(`pre.output-text.stream.${name}`);
    renderAnsi(joinText(output.get("text")), pre);
    return pre;
  }
  if (type === "error") {
    const pre = h("pre.output-text.error", { role: "alert" });
    const traceback = output.get("traceback");
    const text =
      Array.isArray(traceback) && traceback.length
        ? traceback.join("\n")
        : `${String(output.get("ename") ?? "Error")}: ${String(output.get("evalue") ?? "")}`;
    renderAnsi(text, pre);
    return pre;
  }
  const data = (output.get("data") ?? {}) as Json;
  const metadata = (output.get("metadata") ?? {}) as Json;
  const truncated = ((metadata.tandem ?? {}) as Json).truncated as Json | undefined;
  if (truncated) {
    const file = typeof truncated.full_output === "string" ? truncated.full_output : null;
    return h(
      "div.output-notice",
      { role: "note" },
      h("span", {}, "⚠ ", joinText(data["text/plain"])),
      file ? h("a", { href: fullOutputUrl(notebookId, file), download: file }, " Download the full output") : null,
    );
  }
  sweepFrames();
  return renderBundle(data, metadata);
}

/** The output area of one code cell: keeps its DOM in step with the cell's `outputs`. */
export class OutputArea {
  readonly el = h("div.outputs", { "aria-live": "polite" });
  private cache = new Map<Y.Map<unknown>, HTMLElement>();
  private array: Y.Array<Y.Map<unknown>> | null = null;
  private scheduled = false;
  private readonly onDeep = (events: Y.YEvent<any>[]) => {
    for (const event of events) {
      // The output map whose content changed (its stream text, its data) renders again.
      let target: Y.AbstractType<any> | null = event.target;
      while (target && target.parent !== this.array) target = target.parent as Y.AbstractType<any> | null;
      if (target instanceof Y.Map && target !== (this.array as unknown)) this.cache.delete(target);
    }
    this.schedule();
  };

  constructor(
    private readonly cell: Y.Map<unknown>,
    private readonly notebookId: string,
  ) {
    this.attach();
  }

  private attach() {
    const array = this.cell.get("outputs");
    const next = array instanceof Y.Array ? (array as Y.Array<Y.Map<unknown>>) : null;
    if (next === this.array) return;
    this.array?.unobserveDeep(this.onDeep);
    this.array = next;
    this.array?.observeDeep(this.onDeep);
    this.cache.clear();
    this.schedule();
  }

  /** The cell map changed (a new `outputs` array may have been set). */
  cellChanged() {
    this.attach();
  }

  /** While a re-run clears and refills the outputs, hold the old height: no layout jump. */
  holdHeight(hold: boolean) {
    if (hold) {
      const height = this.el.offsetHeight;
      if (height > 0) this.el.style.minHeight = `${height}px`;
    } else {
      this.el.style.minHeight = "";
    }
  }

  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  render() {
    const outputs = this.array ? this.array.toArray() : [];
    const children: HTMLElement[] = [];
    const keep = new Map<Y.Map<unknown>, HTMLElement>();
    for (const output of outputs) {
      if (!(output instanceof Y.Map)) continue;
      let el = this.cache.get(output);
      if (!el) el = renderOutput(output, this.notebookId);
      keep.set(output, el);
      children.push(el);
    }
    this.cache = keep;
    // Reorder/replace only what differs, so iframes that stay are not reloaded.
    let i = 0;
    for (; i < children.length; i++) {
      const current = this.el.children[i];
      if (current !== children[i]) this.el.insertBefore(children[i], current ?? null);
    }
    while (this.el.children.length > children.length) this.el.lastElementChild?.remove();
    this.el.classList.toggle("empty", children.length === 0);
  }

  destroy() {
    this.array?.unobserveDeep(this.onDeep);
    this.array = null;
  }
}
