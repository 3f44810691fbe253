// Find and replace across the whole notebook (Edit ▸ Find and replace, Ctrl+H): a bar under
// the toolbar that counts the matches in every cell's source, steps through them (selecting
// each in its cell's editor) and, for editors, replaces one or all. Replacements are ordinary
// edits of the cells' Y.Text, merged with everyone's typing. Inside one cell, CodeMirror's own
// search panel (Ctrl+F) does the same for that cell.

import * as Y from "yjs";
import { h } from "../dom";

export interface FindHost {
  /** The cells in notebook order: id and source. */
  sources(): { id: string; source: Y.Text }[];
  /** Shows a match: selects that range in the cell's editor. */
  show(cellId: string, from: number, to: number): void;
  canEdit(): boolean;
}

interface Match {
  cellId: string;
  from: number;
  to: number;
}

function findAll(text: string, needle: string, caseSensitive: boolean): number[] {
  if (!needle) return [];
  const hay = caseSensitive ? text : text.toLowerCase();
  const want = caseSensitive ? needle : needle.toLowerCase();
  const out: number[] = [];
  for (let at = hay.indexOf(want); at >= 0; at = hay.indexOf(want, at + Math.max(1, want.length))) out.push(at);
  return out;
}

export class FindBar {
  readonly el: HTMLElement;
  private readonly query = h("input.find-query", { type: "search", placeholder: "Find in notebook", "aria-label": "Find in notebook", "data-testid": "find-query" });
  private readonly replacement = h("input.find-replacement", { type: "text", placeholder: "Replace with", "aria-label": "Replace with", "data-testid": "find-replacement" });
  private readonly caseBox = h("input", { type: "checkbox", "aria-label": "Match case" });
  private readonly count = h("span.find-count.muted", { "data-testid": "find-count", "aria-live": "polite" });
  private readonly replaceRow: HTMLElement;
  private matches: Match[] = [];
  private current = -1;

  constructor(private readonly host: FindHost) {
    const button = (label: string, title: string, action: () => void, testid?: string) =>
      h("button", { title, "aria-label": title, onclick: action, "data-testid": testid ?? null }, label);
    this.replaceRow = h(
      "span.find-replace-row",
      {},
      this.replacement,
      button("Replace", "Replace this match", () => this.replaceOne(), "find-replace-one"),
      button("All", "Replace every match", () => this.replaceAll(), "find-replace-all"),
    );
    this.el = h(
      "div.find-bar",
      { role: "search", "data-testid": "find-bar", hidden: true },
      this.query,
      button("↑", "Previous match (Shift+Enter)", () => this.step(-1)),
      button("↓", "Next match (Enter)", () => this.step(1), "find-next"),
      h("label.find-case", {}, this.caseBox, "Aa"),
      this.count,
      this.replaceRow,
      h("span.spacer"),
      button("✕", "Close find", () => this.close()),
    );
    this.query.addEventListener("input", () => this.search(true));
    this.caseBox.addEventListener("change", () => this.search(true));
    this.query.addEventListener("keydown", (e) => {
      if (e.key === "Enter") {
        e.preventDefault();
        this.step(e.shiftKey ? -1 : 1);
      } else if (e.key === "Escape") {
        e.preventDefault();
        this.close();
      }
    });
    this.replacement.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.close();
      }
    });
  }

  open(initial?: string) {
    this.el.hidden = false;
    this.replaceRow.hidden = !this.host.canEdit();
    if (initial) this.query.value = initial;
    this.query.focus();
    this.query.select();
    this.search(true);
  }

  close() {
    this.el.hidden = true;
  }

  private search(reset: boolean) {
    const needle = this.query.value;
    const caseSensitive = this.caseBox.checked;
    this.matches = [];
    for (const { id, source } of this.host.sources()) {
      for (const from of findAll(source.toString(), needle, caseSensitive)) this.matches.push({ cellId: id, from, to: from + needle.length });
    }
    if (reset || this.current >= this.matches.length) this.current = this.matches.length ? 0 : -1;
    this.renderCount();
  }

  private renderCount() {
    this.count.textContent = !this.query.value ? "" : this.matches.length ? `${this.current + 1} of ${this.matches.length}` : "No matches";
  }

  private step(delta: number) {
    this.search(false);
    if (!this.matches.length) return;
    this.current = (this.current + delta + this.matches.length) % this.matches.length;
    if (this.current < 0) this.current = 0;
    const match = this.matches[this.current];
    this.renderCount();
    this.host.show(match.cellId, match.from, match.to);
    // Keep typing in the bar.
    this.query.focus();
  }

  private replaceOne() {
    if (!this.host.canEdit()) return;
    this.search(false);
    const match = this.matches[Math.max(0, this.current)];
    if (!match) return;
    const cell = this.host.sources().find((c) => c.id === match.cellId);
    if (!cell) return;
    const text = this.replacement.value;
    const apply = () => {
      cell.source.delete(match.from, match.to - match.from);
      cell.source.insert(match.from, text);
    };
    if (cell.source.doc) cell.source.doc.transact(apply);
    else apply();
    this.search(false);
    if (this.matches.length) this.step(0);
  }

  private replaceAll() {
    if (!this.host.canEdit()) return;
    this.search(false);
    const text = this.replacement.value;
    const cells = this.host.sources();
    const doc = cells[0]?.source.doc;
    const apply = () => {
      // Last match first, so earlier offsets stay true.
      for (const match of [...this.matches].reverse()) {
        const cell = cells.find((c) => c.id === match.cellId);
        if (!cell) continue;
        cell.source.delete(match.from, match.to - match.from);
        cell.source.insert(match.from, text);
      }
    };
    if (doc) doc.transact(apply);
    else apply();
    this.search(true);
  }
}
