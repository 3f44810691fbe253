// The table of contents (a side panel listing the markdown cells' headings; a click scrolls
// to the cell) and collapsible sections (a heading cell's ▾ hides the cells under it, down to
// the next heading of the same or a higher level). What is collapsed is this person's view
// only: it is kept in this page, not in the shared document.

import { h } from "../dom";

export interface Heading {
  cellId: string;
  level: number;
  text: string;
}

/** The headings of a markdown source (ATX `#` headings outside code fences), in order. */
export function headingsOf(source: string): { level: number; text: string }[] {
  const out: { level: number; text: string }[] = [];
  let fence: string | null = null;
  for (const line of source.split("\n")) {
    const fenceMatch = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fenceMatch) {
      const marker = fenceMatch[1][0];
      if (fence === null) fence = marker;
      else if (fence === marker) fence = null;
      continue;
    }
    if (fence !== null) continue;
    const match = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (match) out.push({ level: match[1].length, text: plain(match[2]) });
  }
  return out;
}

/** Heading text without its inline markdown (links, emphasis, code marks, math dollars). */
function plain(text: string): string {
  return text
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/[*_`$]/g, "")
    .trim();
}

export interface SectionCell {
  id: string;
  el: HTMLElement;
  /** The cell's top heading level (1–6), or null when it is not a heading cell. */
  level: number | null;
}

/**
 * Which cells the collapsed headings hide: a collapsed heading of level L hides the cells
 * after it up to the next heading cell of level ≤ L.
 */
export function hiddenBy(cells: { id: string; level: number | null }[], collapsed: Set<string>): Map<string, string> {
  const hidden = new Map<string, string>();
  let hider: { id: string; level: number } | null = null;
  for (const cell of cells) {
    if (hider && cell.level !== null && cell.level <= hider.level) hider = null;
    if (hider) {
      hidden.set(cell.id, hider.id);
      continue;
    }
    if (cell.level !== null && collapsed.has(cell.id)) hider = { id: cell.id, level: cell.level };
  }
  return hidden;
}

/** Collapsible sections: the ▾/▸ toggles on heading cells and the hidden cells. */
export class Sections {
  private readonly collapsed = new Set<string>();
  private cells: SectionCell[] = [];

  constructor(private readonly changed: () => void) {}

  isCollapsed(id: string): boolean {
    return this.collapsed.has(id);
  }

  toggle(id: string, collapse = !this.collapsed.has(id)) {
    if (collapse) this.collapsed.add(id);
    else this.collapsed.delete(id);
    this.apply(this.cells);
    this.changed();
  }

  setAll(collapse: boolean) {
    this.collapsed.clear();
    if (collapse) for (const cell of this.cells) if (cell.level !== null) this.collapsed.add(cell.id);
    this.apply(this.cells);
    this.changed();
  }

  /** Opens whatever hides this cell (before scrolling to it). */
  expandTo(id: string) {
    let hider = hiddenBy(this.cells, this.collapsed).get(id);
    let changed = false;
    while (hider) {
      this.collapsed.delete(hider);
      changed = true;
      hider = hiddenBy(this.cells, this.collapsed).get(id);
    }
    if (changed) {
      this.apply(this.cells);
      this.changed();
    }
  }

  /** Shows, hides and decorates the cells (after any change of cells or headings). */
  apply(cells: SectionCell[]) {
    this.cells = cells;
    for (const id of [...this.collapsed]) if (!cells.some((c) => c.id === id && c.level !== null)) this.collapsed.delete(id);
    const hidden = hiddenBy(cells, this.collapsed);
    const counts = new Map<string, number>();
    for (const hider of hidden.values()) counts.set(hider, (counts.get(hider) ?? 0) + 1);
    for (const cell of cells) {
      cell.el.classList.toggle("section-hidden", hidden.has(cell.id));
      const gutter = cell.el.querySelector(".cell-gutter");
      let button = cell.el.querySelector<HTMLButtonElement>(".section-toggle");
      if (cell.level === null) {
        button?.remove();
        cell.el.querySelector(".section-count")?.remove();
        continue;
      }
      if (!button && gutter) {
        button = h("button.icon.section-toggle", {
          tabindex: -1,
          "data-testid": "section-toggle",
          onclick: (e: Event) => {
            e.stopPropagation();
            this.toggle(cell.id);
          },
        });
        gutter.prepend(button);
      }
      const collapsed = this.collapsed.has(cell.id);
      if (button) {
        button.textContent = collapsed ? "▸" : "▾";
        button.title = collapsed ? "Expand the section" : "Collapse the section";
        button.setAttribute("aria-label", button.title);
        button.setAttribute("aria-expanded", String(!collapsed));
      }
      const count = counts.get(cell.id) ?? 0;
      let note = cell.el.querySelector<HTMLElement>(".section-count");
      if (collapsed && count) {
        if (!note) {
          note = h("button.link.section-count", { onclick: (e: Event) => (e.stopPropagation(), this.toggle(cell.id, false)) });
          cell.el.querySelector(".cell-main")?.appendChild(note);
        }
        note.textContent = `${count} cell${count === 1 ? "" : "s"} hidden`;
      } else {
        note?.remove();
      }
    }
  }
}

/** The table of contents panel. */
export class TocPanel {
  readonly el = h("aside.toc-panel.side-panel", { "data-testid": "toc-panel", "aria-label": "Table of contents", hidden: true });
  readonly toggle = h(
    "button.toc-toggle",
    { "data-testid": "toc-toggle", title: "Table of contents (the markdown headings)", "aria-pressed": "false", onclick: () => this.setOpen(this.el.hidden) },
    "Contents",
  );
  private readonly list = h("ol.toc-list");

  constructor(private readonly go: (cellId: string) => void) {
    const close = h("button.icon", { "aria-label": "Close the table of contents", onclick: () => this.setOpen(false) }, "✕");
    this.el.append(h("div.panel-head", {}, h("h2", {}, "Contents"), close), this.list);
  }

  get open(): boolean {
    return !this.el.hidden;
  }

  setOpen(open: boolean) {
    this.el.hidden = !open;
    this.toggle.setAttribute("aria-pressed", String(open));
  }

  render(headings: Heading[]) {
    if (!headings.length) {
      this.list.replaceChildren(h("li.muted.toc-empty", {}, "No headings yet: start a text cell with # Title."));
      return;
    }
    const top = Math.min(...headings.map((x) => x.level));
    this.list.replaceChildren(
      ...headings.map((heading) =>
        h(
          "li.toc-item",
          { style: `padding-left:${(heading.level - top) * 14}px` },
          h(
            "button.link.toc-link",
            {
              "data-testid": "toc-link",
              "data-cell-id": heading.cellId,
              "data-level": heading.level,
              onclick: () => this.go(heading.cellId),
            },
            heading.text || "(untitled)",
          ),
        ),
      ),
    );
  }
}
