// One cell on the page. Cheap until it nears the viewport: until then its source shows as
// plain text kept in step with the Y.Text, and only `activate()` builds the CodeMirror editor
// (so a 500-cell notebook opens fast). Markdown cells show rendered HTML unless being edited.

import * as Y from "yjs";
import type { EditorView, KeyBinding } from "@codemirror/view";
import { commentIcon, h, initials } from "../dom";
import { cellId, cellSource, cellType, CellType, executionBy, KernelState } from "./doc";
import { CommentRange, createEditor, setCommentRanges } from "./editor";
import { renderMarkdown } from "./markdown";
import { FormView } from "./formview";
import { OutputArea } from "./outputs";
import { codeIntel, completing } from "./intel";
import { formatElapsed, runStatus, statusTitle } from "./runstatus";
import { StdinView } from "./stdin";
import { OutputBox } from "./outputbox";
import type { WebsocketProvider } from "y-websocket";

export interface Person {
  clientId: number;
  name: string;
  color: string;
}

/** What a cell asks of its page. */
export interface CellHost {
  readonly notebookId: string;
  readonly awareness: WebsocketProvider["awareness"];
  readOnly(): boolean;
  canRun(): boolean;
  /** Whether this person may open comment threads (commenters, editors, the owner). */
  canComment(): boolean;
  /** Opens a comment on the cell's selection (or on the whole cell). */
  comment(view: CellView): void;
  select(view: CellView, scroll?: boolean): void;
  run(view: CellView, then: "stay" | "next" | "insert"): void;
  leave(view: CellView): void;
  editorFocused(view: CellView, focused: boolean): void;
  moveFocus(view: CellView, delta: number): boolean;
  setType(view: CellView, type: CellType): void;
  move(view: CellView, delta: number): void;
  remove(view: CellView): void;
  insert(view: CellView, where: "above" | "below", type: CellType): void;
  /** The signed-in person's id (who may answer an `input()` they ran). */
  meId(): string | null;
  /** Every code cell's source (names to complete before the kernel knows them). */
  notebookSources(): string[];
  /** Whether this person may clear outputs now (an editor, online). */
  canClear(): boolean;
  /** Clears this cell's outputs (through the server). */
  clearOutputs(view: CellView): void;
}

const STALE_TITLE =
  "Stale: its code, or a name it uses from another cell, changed since it ran (or the kernel restarted). \"Run stale\" in the toolbar brings every stale cell up to date.";

export class CellView {
  readonly el: HTMLElement;
  readonly type: CellType;
  readonly id: string;
  private readonly source: Y.Text;
  private readonly input: HTMLElement;
  private readonly preview: HTMLElement;
  private readonly rendered: HTMLElement | null = null;
  private readonly marker: HTMLElement | null = null;
  private readonly presence: HTMLElement;
  private readonly ranBy: HTMLElement;
  private readonly commentButton: HTMLElement;
  private commentRanges: CommentRange[] = [];
  private readonly outputs: OutputArea | null = null;
  /** The outputs' scroll box, expand toggle and clear button (code cells). */
  readonly outputBox: OutputBox | null = null;
  private readonly runButton: HTMLButtonElement | null = null;
  /** The `# @param` form beside the code (code cells). */
  private readonly form: FormView | null = null;
  private readonly staleBadge: HTMLElement | null = null;
  /** ✓ or ✗ and the time the last run took (status.ts). */
  private readonly runStatusEl: HTMLElement | null = null;
  /** The answer field of a cell waiting in `input()` (stdin.ts). */
  private readonly stdin: StdinView | null = null;
  private editor: EditorView | null = null;
  private editing = false;
  private renderScheduled = false;
  private readonly onSource = () => this.sourceChanged();
  private readonly onCell = (event: Y.YMapEvent<unknown>) => this.cellChanged(event);

  constructor(
    readonly cell: Y.Map<unknown>,
    private readonly host: CellHost,
  ) {
    this.type = cellType(cell);
    this.id = cellId(cell);
    this.source = cellSource(cell);
    this.preview = h("pre.cell-preview", {}, this.source.toString());
    this.input = h("div.cell-input", {}, this.preview);
    this.presence = h("div.cell-presence");
    this.ranBy = h("div.cell-ran-by");
    this.commentButton = h(
      "button.icon.comment-cell",
      {
        title: "Comment on the selected text (or on the whole cell)",
        "aria-label": "Comment",
        "data-testid": "comment-button",
        tabindex: -1,
        hidden: !host.canComment(),
        // Keep the editor's selection: the comment is about it.
        onmousedown: (e: Event) => e.preventDefault(),
        onclick: (e: Event) => {
          e.stopPropagation();
          this.host.comment(this);
        },
      },
      commentIcon(),
    );
    const tools = this.tools();
    const gutter = h("div.cell-gutter");
    if (!host.readOnly()) {
      // Drag to reorder (the page handles the drop).
      gutter.appendChild(h("span.drag-handle", { draggable: "true", title: "Drag to move the cell", "aria-hidden": "true", "data-testid": "drag-handle" }, "⠿"));
    }
    const main = h("div.cell-main", {}, this.input);
    if (this.type === "code") {
      this.marker = h("span.marker", { "data-testid": "marker" }, "[ ]");
      const runButton = (this.runButton = h(
        "button.run-cell",
        {
          title: "Run cell (Ctrl+Enter)",
          "aria-label": "Run cell",
          tabindex: -1,
          onclick: (e: Event) => {
            e.stopPropagation();
            this.host.run(this, "stay");
          },
        },
        "▶",
      ));
      this.staleBadge = h(
        "span.stale-badge",
        { "data-testid": "stale", hidden: true, title: STALE_TITLE },
        "stale",
      );
      this.runStatusEl = h("span.cell-status", { "data-testid": "run-status", hidden: true });
      gutter.append(runButton, this.marker, this.runStatusEl, this.staleBadge);
      this.form = new FormView(this.source, host.readOnly());
      const body = h("div.cell-body");
      this.input.replaceWith(body);
      body.append(this.input, this.form.el);
      body.classList.toggle("title-only", this.form.el.classList.contains("title-only") && !this.form.el.hidden);
      this.outputs = new OutputArea(cell, host.notebookId);
      this.stdin = new StdinView(host.notebookId, this.id);
      this.outputBox = new OutputBox(this.outputs, { canClear: () => host.canClear(), clear: () => host.clearOutputs(this) });
      main.append(this.ranBy, this.outputBox.el, this.stdin.el);
    } else if (this.type === "markdown") {
      this.rendered = h("div.markdown.cell-rendered", { "data-testid": "rendered" });
      this.rendered.addEventListener("dblclick", () => this.startEditing());
      main.insertBefore(this.rendered, this.input);
    }
    this.el = h(
      `div.cell.${this.type}`,
      { tabindex: 0, "data-cell-id": this.id, "data-testid": "cell", role: "group", "aria-label": `${this.type} cell` },
      gutter,
      main,
      h("div.cell-side", {}, this.presence, h("div.cell-side-row", {}, this.commentButton, tools)),
    );
    if (this.form) this.el.classList.toggle("has-form", !this.form.el.hidden);
    // A click selects without scrolling: what was clicked is in view, and a scroll between
    // mousedown and mouseup would move the button away from under the pointer.
    this.el.addEventListener("mousedown", () => this.host.select(this, false));
    // For tests and debugging: what this page holds for the cell, in the document and editor.
    Object.assign(this.el, {
      tandemCell: { source: () => this.source.toString(), editorText: () => this.editor?.state.doc.toString() ?? null },
    });
    this.source.observe(this.onSource);
    this.cell.observe(this.onCell);
    this.updateMarker();
    this.updateRanBy();
    // Rendered until this person edits it (a cell someone else is typing renders live).
    if (this.type === "markdown") this.showRendered(true);
  }

  private tools(): HTMLElement {
    const select = h(
      "select.cell-type",
      { "aria-label": "Cell type", title: "Cell type (M: markdown, Y: code)", tabindex: -1 },
      h("option", { value: "code" }, "Code"),
      h("option", { value: "markdown" }, "Markdown"),
      h("option", { value: "raw" }, "Raw"),
    );
    select.value = this.type;
    select.addEventListener("change", () => this.host.setType(this, select.value as CellType));
    const button = (label: string, title: string, action: () => void) =>
      h("button.icon", { title, "aria-label": title, tabindex: -1, onclick: (e: Event) => { e.stopPropagation(); action(); } }, label);
    return h(
      "div.cell-tools",
      {},
      select,
      button("↑", "Move up", () => this.host.move(this, -1)),
      button("↓", "Move down", () => this.host.move(this, 1)),
      button("✕", "Delete cell (D D)", () => this.host.remove(this)),
    );
  }

  /** Builds the editor (once). */
  activate() {
    if (this.editor) return;
    const keys: KeyBinding[] = [
      { key: "Shift-Enter", run: () => (this.host.run(this, "next"), true) },
      { key: "Mod-Enter", run: () => (this.host.run(this, "stay"), true) },
      { key: "Alt-Enter", run: () => (this.host.run(this, "insert"), true) },
      // While the completion list is open, Escape and the arrows are the list's.
      { key: "Escape", run: (view) => !completing(view) && (this.host.leave(this), true) },
      {
        key: "ArrowUp",
        run: (view) => !completing(view) && view.state.selection.main.head === 0 && this.host.moveFocus(this, -1),
      },
      {
        key: "ArrowDown",
        run: (view) =>
          !completing(view) && view.state.selection.main.head === view.state.doc.length && this.host.moveFocus(this, 1),
      },
    ];
    this.editor = createEditor(this.input, {
      ytext: this.source,
      awareness: this.host.awareness,
      language: this.type === "code" ? "python" : this.type === "markdown" ? "markdown" : "plain",
      readOnly: this.host.readOnly(),
      keys,
      onFocus: () => this.host.editorFocused(this, true),
      onBlur: () => this.host.editorFocused(this, false),
      onSelection: () => this.el.classList.toggle("has-selection", this.selection() !== null),
      // Read-only editors get none: accepting a completion would be an edit.
      extensions:
        this.type === "code" && !this.host.readOnly()
          ? codeIntel({ notebookId: this.host.notebookId, canRun: () => this.host.canRun(), notebookSources: () => this.host.notebookSources() })
          : [],
    });
    if (this.commentRanges.length) this.editor.dispatch({ effects: setCommentRanges.of(this.commentRanges) });
    this.preview.remove();
  }

  get active(): boolean {
    return this.editor !== null;
  }

  /** Puts the caret in this cell's editor (a markdown cell leaves its rendered view). */
  focusEditor(at: "start" | "end" | "keep" = "keep") {
    if (this.type === "markdown") this.startEditing();
    this.activate();
    const editor = this.editor;
    if (!editor) return;
    if (at !== "keep") {
      const pos = at === "start" ? 0 : editor.state.doc.length;
      editor.dispatch({ selection: { anchor: pos } });
    }
    editor.focus();
  }

  /** Selects a range of the source in the editor and scrolls to it (find). */
  selectRange(from: number, to: number) {
    this.focusEditor();
    const editor = this.editor;
    if (!editor) return;
    const length = editor.state.doc.length;
    editor.dispatch({ selection: { anchor: Math.min(from, length), head: Math.min(to, length) }, scrollIntoView: true });
  }

  /** Run buttons work only while the page is connected (and for people who may run). */
  setRunnable(runnable: boolean) {
    if (this.runButton && this.runButton.disabled === runnable) this.runButton.disabled = !runnable;
    this.outputBox?.refresh(this.host.canClear());
  }

  hasEditorFocus(): boolean {
    return this.editor?.hasFocus ?? false;
  }

  startEditing() {
    if (this.type !== "markdown" || this.editing || this.host.readOnly()) return;
    this.showRendered(false);
  }

  /** A markdown cell goes back to its rendered view (on run). */
  finishEditing() {
    if (this.type === "markdown") this.showRendered(true);
  }

  private showRendered(show: boolean) {
    if (!this.rendered) return;
    this.editing = !show;
    this.el.classList.toggle("editing", !show);
    this.rendered.hidden = !show;
    this.input.hidden = show;
    if (show) this.renderMarkdown();
    else this.activate();
  }

  private renderMarkdown() {
    if (!this.rendered) return;
    const text = this.source.toString();
    if (!text.trim()) {
      this.rendered.replaceChildren(h("p.muted", {}, this.host.readOnly() ? "(empty)" : "Empty markdown cell. Double-click or press Enter to edit."));
      return;
    }
    const attachments = this.cell.get("attachments") as Record<string, Record<string, string>> | undefined;
    renderMarkdown(text, this.rendered, attachments);
  }

  private sourceChanged() {
    if (!this.editor) this.preview.textContent = this.source.toString();
    this.form?.update();
    if (this.rendered && !this.editing && !this.renderScheduled) {
      this.renderScheduled = true;
      requestAnimationFrame(() => {
        this.renderScheduled = false;
        if (!this.editing) this.renderMarkdown();
      });
    }
  }

  private cellChanged(event: Y.YMapEvent<unknown>) {
    if (event.keysChanged.has("outputs")) this.outputs?.cellChanged();
    if (event.keysChanged.has("execution_by")) this.updateRanBy();
    if (event.keysChanged.has("execution_state")) {
      const running = this.cell.get("execution_state") === "running";
      this.outputs?.holdHeight(running);
    }
    this.updateMarker();
  }

  private queuePosition: number | null = null;

  /** The kernel state changed: queue positions may have moved. */
  kernelChanged(kernel: KernelState) {
    if (this.type !== "code") return;
    this.stdin?.update(kernel, this.host.meId());
    const index = kernel.queue.indexOf(this.id);
    const position = index < 0 ? null : index + 1;
    if (position !== this.queuePosition) {
      this.queuePosition = position;
      this.updateMarker();
    }
  }

  updateMarker() {
    if (!this.marker) return;
    const state = this.cell.get("execution_state");
    const count = this.cell.get("execution_count");
    let text = "[ ]";
    let title = "Not run yet";
    this.el.classList.toggle("running", state === "running");
    this.el.classList.toggle("queued", state === "queued");
    if (state === "running") {
      text = "[*]";
      title = "Running";
    } else if (state === "queued") {
      text = this.queuePosition ? `[…${this.queuePosition}]` : "[…]";
      title = this.queuePosition ? `Queued (position ${this.queuePosition})` : "Queued";
    } else if (typeof count === "number") {
      text = `[${count}]`;
      title = `Run as execution ${count}`;
    }
    // Stale (written by the runtime): its code or a name it used changed since it ran.
    const stale = this.cell.get("tandem_stale") === true && state !== "running" && state !== "queued";
    this.el.classList.toggle("stale", stale);
    if (this.staleBadge) this.staleBadge.hidden = !stale;
    if (stale) title = `${title}. ${STALE_TITLE}`;
    this.marker.textContent = text;
    this.marker.title = title;
    this.marker.dataset.state = typeof state === "string" ? state : "idle";
    this.updateRunStatus();
  }

  /** ✓ or ✗ with the elapsed time of the last finished run; when and by whom on hover. */
  private updateRunStatus() {
    if (!this.runStatusEl) return;
    const status = runStatus(this.cell);
    this.runStatusEl.hidden = !status;
    if (!status) return;
    this.runStatusEl.dataset.status = status.outcome;
    this.runStatusEl.title = statusTitle(status);
    this.runStatusEl.replaceChildren(h("span.mark", {}, status.outcome === "ok" ? "✓" : "✗"), ` ${formatElapsed(status.elapsedMs)}`);
  }

  setPresence(people: Person[]) {
    this.presence.replaceChildren(
      ...people.map((p) => h("span.avatar.small", { style: `background:${p.color}`, title: `${p.name} is here` }, initials(p.name))),
    );
    this.el.style.setProperty("--presence", people.length ? people[0].color : "transparent");
    this.el.classList.toggle("has-presence", people.length > 0);
  }

  /** Who ran this cell last: the runtime records it in the cell (`execution_by`). */
  private updateRanBy() {
    const by = executionBy(this.cell);
    // A neutral note: a person's colour here read like an error.
    this.ranBy.textContent = by ? `run by ${by.name}` : "";
  }

  /** The selected range of the source (UTF-16 code units), or null when nothing is selected. */
  selection(): { from: number; to: number } | null {
    const range = this.editor?.state.selection.main;
    return range && !range.empty ? { from: range.from, to: range.to } : null;
  }

  /** Marks the ranges that open comment threads are about (and counts the threads). */
  setComments(ranges: CommentRange[], threads: number) {
    this.commentRanges = ranges;
    this.editor?.dispatch({ effects: setCommentRanges.of(ranges) });
    this.commentButton.replaceChildren(commentIcon(), threads ? ` ${threads}` : "");
    this.commentButton.classList.toggle("has-comments", threads > 0);
    if (threads && this.commentButton.hidden) this.commentButton.hidden = false;
  }

  destroy() {
    this.source.unobserve(this.onSource);
    this.cell.unobserve(this.onCell);
    this.outputs?.destroy();
    this.outputBox?.destroy();
    this.editor?.destroy();
    this.editor = null;
  }
}
