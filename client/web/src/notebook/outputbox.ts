// The frame around a code cell's outputs: long outputs (2000 printed lines) scroll inside a
// box of bounded height instead of pushing the notebook down, with a button to expand them
// in full (and collapse them again); beside them, "Clear output" for editors. Clearing is
// the server's edit (POST /api/notebooks/{id}/outputs/clear): outputs are the runtime's, so
// a page cannot write them over its WebSocket.

import { h } from "../dom";
import type { OutputArea } from "./outputs";

export class OutputBox {
  readonly el: HTMLElement;
  private expanded = false;
  private readonly toggleButton: HTMLButtonElement;
  private readonly clearButton: HTMLButtonElement;
  private readonly resize: ResizeObserver;

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
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.area.el);
    new MutationObserver(() => this.schedule()).observe(this.area.el, { childList: true, subtree: true, characterData: true });
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
    this.measure();
  }

  private scheduled = false;

  /** Measures once per frame, however fast a stream grows. */
  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.measure();
    });
  }

  private measure() {
    const el = this.area.el;
    const empty = el.classList.contains("empty") || el.childElementCount === 0;
    this.el.classList.toggle("empty", empty);
    const long = !empty && (this.expanded || el.scrollHeight > el.clientHeight + 1);
    this.toggleButton.hidden = !long;
    el.classList.toggle("overflowing", !this.expanded && long);
  }

  /** Editors may clear; the page's role can change (sharing), so it is asked again. */
  refresh(canClear: boolean) {
    this.clearButton.hidden = !canClear;
  }

  destroy() {
    this.resize.disconnect();
  }
}
