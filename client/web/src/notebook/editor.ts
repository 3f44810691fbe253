// A CodeMirror 6 editor bound to one cell's `source` Y.Text with y-codemirror.next: edits
// merge with everyone else's, remote carets and selections show in each person's colour
// (from awareness `user`), and undo covers only this person's own edits. Commented ranges
// are marked (`setCommentRanges`) and follow every edit, local or remote, until the threads
// are fetched again.

import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, indentWithTab } from "@codemirror/commands";
import { python } from "@codemirror/lang-python";
import { bracketMatching, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { EditorState, Extension, Prec, StateEffect, StateField } from "@codemirror/state";
import {
  Decoration,
  DecorationSet,
  drawSelection,
  EditorView,
  highlightSpecialChars,
  keymap,
  KeyBinding,
  placeholder,
} from "@codemirror/view";
import { yCollab, yUndoManagerKeymap } from "y-codemirror.next";
import * as Y from "yjs";
import type { WebsocketProvider } from "y-websocket";
import { editorExtras, tandemHighlight } from "./editorprefs";

type Awareness = WebsocketProvider["awareness"];

export interface EditorOptions {
  ytext: Y.Text;
  awareness: Awareness;
  language: "python" | "markdown" | "plain";
  readOnly: boolean;
  /** Notebook-level keys (Shift+Enter, …); they win over CodeMirror's defaults. */
  keys: KeyBinding[];
  onFocus: () => void;
  onBlur: () => void;
  /** The selection changed (to offer a comment on it). */
  onSelection?: () => void;
  /** More extensions for this editor (code intelligence: intel.ts). */
  extensions?: Extension[];
}

/** A commented range of the source, in UTF-16 code units (CodeMirror's and Yjs's unit). */
export interface CommentRange {
  from: number;
  to: number;
  thread: string;
}

/** Replaces the editor's commented ranges. */
export const setCommentRanges = StateEffect.define<CommentRange[]>();

const commentRanges = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    // Text typed inside a range grows it; text typed at its edges does not (as on the server).
    marks = marks.map(tr.changes);
    for (const effect of tr.effects) {
      if (!effect.is(setCommentRanges)) continue;
      const length = tr.state.doc.length;
      const ranges = effect.value
        .map((r) => ({ ...r, from: Math.min(r.from, length), to: Math.min(r.to, length) }))
        .filter((r) => r.to > r.from);
      marks = Decoration.set(
        ranges.map((r) =>
          Decoration.mark({ class: "cm-comment-range", attributes: { "data-thread": r.thread } }).range(r.from, r.to),
        ),
        true,
      );
    }
    return marks;
  },
  provide: (field) => EditorView.decorations.from(field),
});

const theme = EditorView.theme({
  "&": { fontSize: "13.5px", backgroundColor: "transparent" },
  ".cm-content": { fontFamily: "var(--mono)", padding: "6px 0" },
  ".cm-line": { padding: "0 8px" },
  "&.cm-focused": { outline: "none" },
  // Lines wrap, so the scroller never scrolls sideways; letting it overflow keeps the name
  // label of a remote caret on the first line visible above the editor.
  ".cm-scroller": { lineHeight: "1.45", overflow: "visible" },
  ".cm-comment-range": { backgroundColor: "rgba(251, 188, 4, .35)", borderBottom: "2px solid #f9ab00" },
  ".cm-ySelectionInfo": { fontFamily: "system-ui, sans-serif", fontSize: "11px", padding: "1px 4px", opacity: "1", top: "-1.35em" },
});

/**
 * The page's Content-Security-Policy lets `<style>` elements in only with the nonce the
 * server gave this page load (on the app's script tag; browsers show it only through the
 * `nonce` property). CodeMirror writes its styles into such an element.
 */
const styleNonce = document.querySelector<HTMLScriptElement>("script[nonce]")?.nonce ?? "";

export function createEditor(parent: HTMLElement, options: EditorOptions): EditorView {
  const undoManager = new Y.UndoManager(options.ytext);
  const extensions: Extension[] = [
    Prec.highest(keymap.of(options.keys)),
    highlightSpecialChars(),
    drawSelection(),
    bracketMatching(),
    closeBrackets(),
    indentUnit.of("    "),
    syntaxHighlighting(tandemHighlight, { fallback: true }),
    keymap.of([...closeBracketsKeymap, ...yUndoManagerKeymap, ...defaultKeymap, indentWithTab]),
    EditorView.lineWrapping,
    theme,
    yCollab(options.ytext, options.awareness, { undoManager }),
    EditorView.domEventHandlers({
      focus: () => options.onFocus(),
      blur: () => options.onBlur(),
    }),
    commentRanges,
    EditorView.updateListener.of((update) => {
      if (update.selectionSet) options.onSelection?.();
    }),
    EditorView.contentAttributes.of({ "aria-label": options.language === "python" ? "Code cell" : "Text cell" }),
    EditorView.cspNonce.of(styleNonce),
    ...editorExtras(),
  ];
  if (options.language === "python") extensions.push(python());
  if (options.extensions) extensions.push(...options.extensions);
  // Markdown is edited as plain text: @codemirror/lang-markdown would bring HTML, CSS and
  // JavaScript parsers along (a sixth of the bundle) for highlighting code fences.
  if (options.language === "markdown") extensions.push(placeholder("Type markdown; Shift+Enter to render"));
  if (options.readOnly) extensions.push(EditorState.readOnly.of(true), EditorView.editable.of(false));
  return new EditorView({
    parent,
    state: EditorState.create({ doc: options.ytext.toString(), extensions }),
  });
}
