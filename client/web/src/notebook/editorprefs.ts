// What every cell editor shares beyond editing.ts's basics: find and replace in the cell
// (@codemirror/search, Ctrl+F), line numbers that Ctrl+M L turns on and off for all editors
// at once, syntax colours from CSS variables (so dark mode, which follows the system, needs
// no reconfiguration), and name labels of remote carets that share one spot laid side by side
// instead of stacked on each other.

import { HighlightStyle } from "@codemirror/language";
import { highlightSelectionMatches, search, searchKeymap } from "@codemirror/search";
import { Compartment, Extension } from "@codemirror/state";
import { EditorView, keymap, lineNumbers, ViewPlugin, ViewUpdate } from "@codemirror/view";
import { tags as t } from "@lezer/highlight";

/** Token colours; the values are CSS variables set in page.css (light and dark). */
export const tandemHighlight = HighlightStyle.define([
  { tag: t.meta, color: "var(--cm-meta)" },
  { tag: t.link, textDecoration: "underline" },
  { tag: t.heading, textDecoration: "underline", fontWeight: "bold" },
  { tag: t.emphasis, fontStyle: "italic" },
  { tag: t.strong, fontWeight: "bold" },
  { tag: t.strikethrough, textDecoration: "line-through" },
  { tag: t.keyword, color: "var(--cm-keyword)" },
  { tag: [t.atom, t.bool, t.url, t.contentSeparator, t.labelName], color: "var(--cm-atom)" },
  { tag: [t.literal, t.inserted], color: "var(--cm-number)" },
  { tag: [t.string, t.deleted], color: "var(--cm-string)" },
  { tag: [t.regexp, t.escape, t.special(t.string)], color: "var(--cm-string2)" },
  { tag: t.definition(t.variableName), color: "var(--cm-def)" },
  { tag: t.local(t.variableName), color: "var(--cm-local)" },
  { tag: [t.typeName, t.namespace], color: "var(--cm-type)" },
  { tag: t.className, color: "var(--cm-class)" },
  { tag: [t.special(t.variableName), t.macroName], color: "var(--cm-special)" },
  { tag: t.definition(t.propertyName), color: "var(--cm-property)" },
  { tag: t.comment, color: "var(--cm-comment)" },
  { tag: t.invalid, color: "var(--cm-invalid)" },
]);

const numbers = new Compartment();
let showNumbers = false;
const editors = new Set<EditorView>();

/** Line numbers in every cell editor, on or off (Ctrl+M L). */
export function setLineNumbers(on: boolean) {
  showNumbers = on;
  for (const view of editors) view.dispatch({ effects: numbers.reconfigure(on ? lineNumbers() : []) });
}

export function lineNumbersShown(): boolean {
  return showNumbers;
}

/** Keeps the set of live editors (for line numbers) in step. */
const registry = ViewPlugin.fromClass(
  class {
    constructor(readonly view: EditorView) {
      editors.add(view);
    }
    destroy() {
      editors.delete(this.view);
    }
  },
);

/**
 * Remote carets at the same spot would draw their name labels on top of each other: the
 * second moves right past the first, and so on.
 */
const caretLabels = ViewPlugin.fromClass(
  class {
    constructor(readonly view: EditorView) {
      this.schedule();
    }
    update(update: ViewUpdate) {
      if (update.docChanged || update.transactions.length || update.viewportChanged) this.schedule();
    }
    schedule() {
      this.view.requestMeasure({
        key: this,
        read: (view) => {
          const spots = new Map<string, HTMLElement[]>();
          for (const caret of view.contentDOM.querySelectorAll<HTMLElement>(".cm-ySelectionCaret")) {
            const label = caret.querySelector<HTMLElement>(".cm-ySelectionInfo");
            if (!label) continue;
            const rect = caret.getBoundingClientRect();
            const key = `${Math.round(rect.left)}:${Math.round(rect.top)}`;
            spots.set(key, [...(spots.get(key) ?? []), label]);
          }
          const shifts: [HTMLElement, number][] = [];
          for (const labels of spots.values()) {
            let x = 0;
            for (const label of labels) {
              shifts.push([label, x]);
              x += label.offsetWidth + 2;
            }
          }
          return shifts;
        },
        write: (shifts) => {
          for (const [label, x] of shifts) label.style.transform = x ? `translateX(${x}px)` : "";
        },
      });
    }
  },
);

/** The extensions every cell editor gets from here. */
export function editorExtras(): Extension[] {
  return [
    search({ top: true }),
    highlightSelectionMatches(),
    keymap.of(searchKeymap),
    numbers.of(showNumbers ? lineNumbers() : []),
    registry,
    caretLabels,
  ];
}
