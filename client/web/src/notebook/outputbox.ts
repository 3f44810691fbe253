// The frame around a code cell's outputs: long outputs (2000 printed lines) scroll inside a
// box of bounded height instead of pushing the notebook down, with a button to expand them
// in full (and collapse them again); beside them, "Clear output" for editors. Clearing is
// the server's edit (POST /api/notebooks/{id}/outputs/clear): outputs are the runtime's, so
// a page cannot write them over its WebSocket.

import { h } from "../dom";
import type { OutputArea } from "./outputs";

/**
 * Every box's size is watched by one ResizeObserver, and measured in one batch per frame
 * (all reads, then all writes): a 500-cell notebook with outputs lays out once, not once per
 * cell. The size is enough to watch: an output that outgrows its box grows the box up to its
 * maximum height first, and a cleared one shrinks it.
 */
const boxes = new Map<Element, OutputBox>();
const pending = new Set<OutputBox>();
let frame = 0;
const sizes = new ResizeObserver((entries) => {
  for (const entry of entries) {
    const box = boxes.get(entry.target);
    if (box) schedule(box);
  }
});

function schedule(box: OutputBox) {
  pending.add(box);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const batch = [...pending];
    pending.clear();
    const facts = batch.map((b) => b.read());
    batch.forEach((b, i) => b.write(facts[i]));
  });
}

export class OutputBox {
  readonly el: HTMLElement;
  private expanded = false;
  private readonly toggleButton: HTMLButtonElement;
  private readonly clearButton: HTMLButtonElement;

  constructor(
    private readonly area: OutputArea,
    options: { canClear: () => boolean; clear: () => void },
  ) {
    this.area.el.classList.add("output-scroll");
    this.area.el.dataset.testid = "outputs";
    this.toggleButton = h(
      "button.icon.output-toggle",
      { tabindex: -1, "data-testid": "output-toggle", hidden: true, onclick: (e: Event) => (e.stopPropagation(), this.setExpanded(!this.expanded)) },
      "",
    );
    this.clearButton = h(
      "button.icon.output-clear",
      {
        tabindex: -1,
        title: "Clear output",
        "aria-label": "Clear output",
        "data-testid": "clear-output",
        onclick: (e: Event) => {
          e.stopPropagation();
          if (options.canClear()) options.clear();
        },
      },
      "✕",
    );
    this.el = h("div.output-box", {}, h("div.output-tools", {}, this.clearButton, this.toggleButton), this.area.el);
    this.clearButton.hidden = !options.canClear();
    // Whether the outputs overflow their box decides whether the toggle shows.
    boxes.set(this.area.el, this);
    sizes.observe(this.area.el);
    this.setExpanded(false);
  }

  /** Whether the outputs show in full (true) or in their scroll box. */
  get isExpanded(): boolean {
    return this.expanded;
  }

  setExpanded(expanded: boolean) {
    this.expanded = expanded;
    this.area.el.classList.toggle("expanded", expanded);
    this.toggleButton.textContent = expanded ? "⤒" : "⤓";
    this.toggleButton.title = expanded ? "Collapse output (scroll inside a box)" : "Expand output (show all of it)";
    this.toggleButton.setAttribute("aria-label", this.toggleButton.title);
    this.toggleButton.setAttribute("aria-expanded", String(expanded));
    schedule(this);
  }

  /** What the layout says (read phase of a batch). */
  read(): { empty: boolean; long: boolean } {
    const el = this.area.el;
    const empty = el.childElementCount === 0;
    // Only boxes with outputs need the layout read.
    const long = !empty && (this.expanded || el.scrollHeight > el.clientHeight + 1);
    return { empty, long };
  }

  /** Shows it (write phase of a batch); writes only what changed. */
  write({ empty, long }: { empty: boolean; long: boolean }) {
    const el = this.area.el;
    if (this.el.classList.contains("empty") !== empty) this.el.classList.toggle("empty", empty);
    if (this.toggleButton.hidden === long) this.toggleButton.hidden = !long;
    const overflowing = !this.expanded && long;
    if (el.classList.contains("overflowing") !== overflowing) el.classList.toggle("overflowing", overflowing);
  }

  /** Editors may clear; the page's role can change (sharing), so it is asked again. */
  refresh(canClear: boolean) {
    if (this.clearButton.hidden === canClear) this.clearButton.hidden = !canClear;
  }

  destroy() {
    sizes.unobserve(this.area.el);
    boxes.delete(this.area.el);
    pending.delete(this);
  }
}
