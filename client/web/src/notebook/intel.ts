// Code intelligence in a code cell's editor, as in Colab and JupyterLab:
//
// - Tab after a name (or a dot) opens completions, and accepts the selected one while the list
//   is open; elsewhere Tab indents. Ctrl+Space opens them too.
// - Completions come from the notebook's running kernel (`POST …/complete`: IPython's
//   completer with jedi, which knows the variables, modules and attributes of this session).
//   Before the first run, or when the kernel cannot answer (busy in native code, someone
//   else's runtime, a viewer), they come from the page: names used anywhere in the notebook,
//   Python's keywords and builtins.
// - Hovering a name shows its signature and docstring (`POST …/inspect`); Shift+Tab shows
//   them for the name at the caret (inside a call's parentheses, the function called).
//
// Answers go to this person only; nothing is written into the shared document.

import {
  acceptCompletion,
  autocompletion,
  Completion,
  CompletionContext,
  CompletionResult,
  completionStatus,
  selectedCompletion,
  startCompletion,
} from "@codemirror/autocomplete";
import { globalCompletion } from "@codemirror/lang-python";
import { EditorState, Extension, Prec, StateEffect, StateField } from "@codemirror/state";
import { EditorView, hoverTooltip, keymap, showTooltip, Tooltip } from "@codemirror/view";
import { api, ApiError, Completions } from "../api";
import { h } from "../dom";
import "./intel.css";

/** What the editor asks of its page. */
export interface IntelHost {
  readonly notebookId: string;
  /** Whether this person may run code here (only they may ask the kernel). */
  canRun(): boolean;
  /** Every code cell's source, for names to complete before the kernel knows them. */
  notebookSources(): string[];
}

/** Longest docstring shown in a tooltip; the rest is cut with an ellipsis. */
const MAX_DOC_CHARS = 4000;

/** Characters of a Python identifier, as far as completion needs them. */
const NAME = /[\p{L}\p{N}_]/u;
const NAMES = /[\p{L}_][\p{L}\p{N}_]*/gu;

/** Jedi's kinds → CodeMirror's completion icons. */
const KINDS: Record<string, string> = {
  module: "namespace",
  class: "class",
  function: "function",
  instance: "variable",
  statement: "variable",
  param: "variable",
  keyword: "keyword",
  property: "property",
  path: "text",
  magic: "keyword",
};

function kernelOptions(answer: Completions): Completion[] {
  return answer.matches.map((match, index) => ({
    label: match.text,
    type: KINDS[match.type] ?? (match.type === "<unknown>" ? undefined : match.type || undefined),
    detail: match.signature ? match.signature.slice(0, 80) : undefined,
    // The kernel's order is its ranking.
    boost: -index / answer.matches.length,
  }));
}

/** Names used in the notebook's code, minus the one being typed. */
function notebookNames(host: IntelHost, typing: string): Completion[] {
  const names = new Set<string>();
  for (const source of host.notebookSources()) {
    for (const match of source.matchAll(NAMES)) names.add(match[0]);
  }
  names.delete(typing);
  return [...names].map((label) => ({ label, type: "variable" }));
}

/** Completions without a kernel: the notebook's names, Python's keywords and builtins. */
function staticCompletions(host: IntelHost, context: CompletionContext): CompletionResult | null {
  const word = context.matchBefore(/[\p{L}_][\p{L}\p{N}_]*/u);
  const before = context.state.sliceDoc(Math.max(0, (word?.from ?? context.pos) - 1), word?.from ?? context.pos);
  // Attributes need the kernel: a name after a dot is not one of these.
  if (before === ".") return null;
  if (!word && !context.explicit) return null;
  const from = word?.from ?? context.pos;
  const builtins = globalCompletion(context);
  const options = [...notebookNames(host, word?.text ?? ""), ...(builtins && "options" in builtins ? builtins.options : [])];
  const seen = new Set<string>();
  return {
    from,
    options: options.filter((option) => !seen.has(option.label) && (seen.add(option.label), true)),
    validFor: /^[\p{L}\p{N}_]*$/u,
  };
}

function completionSource(host: IntelHost) {
  return async (context: CompletionContext): Promise<CompletionResult | null> => {
    if (host.canRun()) {
      try {
        const answer = await api.complete(host.notebookId, context.state.doc.toString(), context.pos);
        if (context.aborted) return null;
        if (answer.matches.length) {
          return { from: answer.cursor_start, to: answer.cursor_end, options: kernelOptions(answer), validFor: /^[\p{L}\p{N}_]*$/u };
        }
      } catch (error) {
        // No kernel yet, a busy one, or not this person's to use: the page's names will do.
        if (!(error instanceof ApiError)) throw error;
      }
    }
    return staticCompletions(host, context);
  };
}

/** The kernel's description of the name at `pos`, or null when it has none to give. */
async function describe(host: IntelHost, state: EditorState, pos: number): Promise<string | null> {
  if (!host.canRun()) return null;
  try {
    const answer = await api.inspect(host.notebookId, state.doc.toString(), pos);
    if (!answer.found || !answer.text.trim()) return null;
    const text = answer.text.trim();
    return text.length > MAX_DOC_CHARS ? `${text.slice(0, MAX_DOC_CHARS)}…` : text;
  } catch (error) {
    if (error instanceof ApiError) return null;
    throw error;
  }
}

function docTooltip(text: string): HTMLElement {
  return h("div.doc-tooltip", { "data-testid": "doc-tooltip" }, h("pre", {}, text));
}

/** The Shift+Tab tooltip: shown at a position until the caret moves or the text changes. */
const showDoc = StateEffect.define<Tooltip | null>();
const docField = StateField.define<Tooltip | null>({
  create: () => null,
  update(tip, tr) {
    for (const effect of tr.effects) if (effect.is(showDoc)) return effect.value;
    return tr.docChanged || tr.selection ? null : tip;
  },
  provide: (field) => showTooltip.from(field),
});

function signatureHelp(host: IntelHost) {
  return (view: EditorView): boolean => {
    const pos = view.state.selection.main.head;
    const doc = view.state.doc;
    void describe(host, view.state, pos).then((text) => {
      // The person moved on meanwhile.
      if (view.state.doc !== doc || view.state.selection.main.head !== pos) return;
      const tip: Tooltip | null = text ? { pos, above: true, create: () => ({ dom: docTooltip(text) }) } : null;
      view.dispatch({ effects: showDoc.of(tip) });
    });
    return true;
  };
}

/** Whether the completion list is open (its keys then win over the notebook's). */
export function completing(view: EditorView): boolean {
  return completionStatus(view.state) === "active";
}

/** How long after a refused accept Tab tries again: longer than CodeMirror's `interactionDelay`
 * (75 ms), the time after the list opens or changes during which it takes no accept. */
const ACCEPT_RETRY_MS = 100;

/** Tab: accept the open completion, open completions after a name or dot, else indent. */
function tab(view: EditorView): boolean {
  if (completionStatus(view.state) === "active") {
    if (acceptCompletion(view)) return true;
    // The list changed a moment ago (the kernel's answer came in): accept the option chosen
    // once it may, unless the list moved under it meanwhile; never indent under an open list.
    const doc = view.state.doc;
    const chosen = selectedCompletion(view.state)?.label;
    setTimeout(() => {
      if (
        view.state.doc === doc &&
        completionStatus(view.state) === "active" &&
        selectedCompletion(view.state)?.label === chosen
      )
        acceptCompletion(view);
    }, ACCEPT_RETRY_MS);
    return true;
  }
  const range = view.state.selection.main;
  if (!range.empty) return false;
  const before = view.state.sliceDoc(Math.max(0, range.head - 1), range.head);
  if (before === "." || NAME.test(before)) return startCompletion(view);
  return false;
}

/** The editor extensions of code intelligence for one code cell. */
export function codeIntel(host: IntelHost): Extension[] {
  return [
    autocompletion({ override: [completionSource(host)], activateOnTyping: false, icons: true }),
    docField,
    // The Shift+Tab tooltip goes when the editor does (Esc, a click elsewhere).
    EditorView.domEventHandlers({
      blur: (_event, view) => {
        if (view.state.field(docField, false)) view.dispatch({ effects: showDoc.of(null) });
      },
    }),
    Prec.high(
      keymap.of([
        { key: "Tab", run: tab },
        { key: "Shift-Tab", run: signatureHelp(host) },
      ]),
    ),
    hoverTooltip(
      async (view, pos, side) => {
        const line = view.state.doc.lineAt(pos);
        const offset = pos - line.from;
        const at = line.text[offset - (side < 0 ? 1 : 0)] ?? "";
        if (!NAME.test(at)) return null;
        // The end of the name under the mouse: the kernel describes the name before the caret.
        let end = pos;
        while (end < line.to && NAME.test(view.state.sliceDoc(end, end + 1))) end++;
        const text = await describe(host, view.state, end);
        return text ? { pos, above: true, create: () => ({ dom: docTooltip(text) }) } : null;
      },
      { hoverTime: 500 },
    ),
  ];
}
