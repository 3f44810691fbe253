// Comments on the notebook page: a side panel of threads (reply, resolve or reopen, delete
// your own), a composer for a new thread on the selected text of a cell (or the whole cell),
// and the commented ranges marked in the editors.
//
// Threads live outside the document (REST: /api/notebooks/{id}/comments). The collab service
// writes a fresh `state.comments_rev` into the document after every change, so each page
// fetches the threads again the moment anyone comments, replies, resolves or deletes.

import * as Y from "yjs";
import { api, ApiError, Me, Role, Thread } from "../api";
import { commentIcon, h, relativeTime, toast } from "../dom";
import type { CellView } from "./cell";

/** What the panel asks of its page. */
export interface CommentsHost {
  readonly notebookId: string;
  /** The cell views on the page now. */
  cellViews(): CellView[];
  /** Scrolls to a cell and selects it. */
  reveal(cellId: string): void;
}

interface Draft {
  cellId: string;
  from?: number;
  to?: number;
  quote: string | null;
  /** What has been typed so far (kept across re-renders). */
  text: string;
}

export class CommentsPanel {
  readonly el = h("aside.comments-panel", { "data-testid": "comments-panel", "aria-label": "Comments" });
  readonly toggle: HTMLButtonElement;
  private threads: Thread[] = [];
  private draft: Draft | null = null;
  /** Replies being typed, by thread: a refresh re-renders the panel without losing them. */
  private replies = new Map<string, string>();
  /** Shown when there is something to show ("auto"), or as the person last chose. */
  private visibility: "auto" | "open" | "closed" = "auto";
  private fetching: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly host: CommentsHost,
    private readonly me: Me | null,
    private readonly role: Role,
    state: Y.Map<unknown>,
  ) {
    this.toggle = h(
      "button.comments-toggle",
      { "data-testid": "comments-toggle", title: "Show or hide comments", onclick: () => this.show(this.el.hidden ? "open" : "closed") },
      commentIcon(),
      " Comments",
    );
    state.observe((event) => {
      if (event.keysChanged.has("comments_rev")) void this.refresh();
    });
    this.render();
  }

  private canComment(): boolean {
    return this.me !== null && this.role !== "viewer";
  }

  private canModerate(): boolean {
    return this.role === "editor" || this.role === "owner";
  }

  private show(visibility: "open" | "closed") {
    this.visibility = visibility;
    this.render();
  }

  /** Fetches the threads; calls made while a fetch runs coalesce into one more fetch. */
  refresh(): Promise<void> {
    if (this.fetching) {
      this.again = true;
      return this.fetching;
    }
    this.fetching = (async () => {
      do {
        this.again = false;
        try {
          this.threads = await api.threads(this.host.notebookId);
        } catch (error) {
          // Not fatal: the next change fetches again.
          console.warn("cannot load comments", error);
        }
      } while (this.again);
      this.fetching = null;
      this.render();
      this.decorateAll();
    })();
    return this.fetching;
  }

  /** Starts a comment on the view's selection, or on the whole cell. */
  compose(view: CellView) {
    if (!this.canComment()) return;
    const range = view.selection();
    const source = view.cell.get("source");
    const text = source instanceof Y.Text ? source.toString() : "";
    this.draft = range
      ? { cellId: view.id, from: range.from, to: range.to, quote: text.slice(range.from, range.to), text: "" }
      : { cellId: view.id, quote: null, text: "" };
    this.visibility = "open";
    this.render();
    this.el.querySelector<HTMLTextAreaElement>('[data-testid="comment-text"]')?.focus();
  }

  /** Marks a cell view's commented ranges (also for views made after the last fetch). */
  decorate(view: CellView) {
    const open = this.threads.filter((t) => t.cell_id === view.id && !t.resolved);
    const ranges = open
      .filter((t) => t.from !== null && t.to !== null && t.to > t.from)
      .map((t) => ({ from: t.from as number, to: t.to as number, thread: t.id }));
    view.setComments(ranges, open.length);
  }

  private decorateAll() {
    for (const view of this.host.cellViews()) this.decorate(view);
  }

  private render() {
    const open = this.threads.filter((t) => !t.resolved);
    const resolved = this.threads.filter((t) => t.resolved);
    this.toggle.replaceChildren(commentIcon(), open.length ? ` ${open.length}` : " Comments");
    this.el.hidden =
      this.visibility === "closed" || (this.visibility === "auto" && !this.draft && !this.threads.length);
    this.toggle.setAttribute("aria-pressed", String(!this.el.hidden));
    if (this.el.hidden) {
      this.el.replaceChildren();
      return;
    }
    // Keep the caret where it was when the panel is rebuilt under someone's typing.
    const active = document.activeElement;
    const focused = active instanceof HTMLTextAreaElement && this.el.contains(active) ? active : null;
    const focusKey = focused?.dataset.key;
    const caret = focused ? [focused.selectionStart, focused.selectionEnd] : null;
    const order = new Map(this.host.cellViews().map((v, i) => [v.id, i]));
    const byPlace = (a: Thread, b: Thread) =>
      (order.get(a.cell_id) ?? 1e9) - (order.get(b.cell_id) ?? 1e9) || (a.from ?? 0) - (b.from ?? 0);
    const parts: (HTMLElement | null)[] = [
      h(
        "div.comments-head",
        {},
        h("h2", {}, "Comments"),
        h("button.icon", { title: "Hide comments", "aria-label": "Hide comments", onclick: () => this.show("closed") }, "✕"),
      ),
      this.draft ? this.composer(this.draft) : null,
      ...open.sort(byPlace).map((t) => this.thread(t)),
      resolved.length ? h("h3", {}, `Resolved (${resolved.length})`) : null,
      ...resolved.map((t) => this.thread(t)),
      !this.draft && !open.length && !resolved.length ? h("p.muted", {}, "No comments yet.") : null,
    ];
    this.el.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
    if (focusKey && caret) {
      const again = this.el.querySelector<HTMLTextAreaElement>(`textarea[data-key="${CSS.escape(focusKey)}"]`);
      again?.focus();
      again?.setSelectionRange(caret[0], caret[1]);
    }
  }

  private composer(draft: Draft): HTMLElement {
    const text = h("textarea", { "data-testid": "comment-text", "data-key": "new", placeholder: "Add a comment…", rows: 3, "aria-label": "Comment" });
    text.value = draft.text;
    text.addEventListener("input", () => (draft.text = text.value));
    const send = h("button.primary", { type: "submit", "data-testid": "comment-send" }, "Comment");
    const form = h(
      "form.thread.composer",
      { "data-testid": "comment-composer" },
      h("div.thread-quote", {}, draft.quote ? `“${draft.quote}”` : "On the whole cell"),
      text,
      h(
        "div.thread-actions",
        {},
        h("button", { type: "button", onclick: () => ((this.draft = null), this.render()) }, "Cancel"),
        send,
      ),
    );
    submitOnCtrlEnter(text, form);
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      if (!text.value.trim()) return;
      send.setAttribute("disabled", "");
      try {
        const range = draft.from !== undefined && draft.to !== undefined ? { from: draft.from, to: draft.to } : undefined;
        await api.openThread(this.host.notebookId, draft.cellId, text.value, range);
        this.draft = null;
        await this.refresh();
      } catch (error) {
        send.removeAttribute("disabled");
        failed("comment", error);
      }
    });
    return form;
  }

  private thread(thread: Thread): HTMLElement {
    const mine = (authorId: string) => this.me !== null && authorId === this.me.id;
    const quote = thread.orphaned
      ? "On a deleted cell"
      : thread.quote !== null
        ? `“${thread.quote}”`
        : thread.original_quote !== null
          ? `“${thread.original_quote}” (the text changed)`
          : "On the whole cell";
    const el = h(
      `div.thread${thread.resolved ? ".resolved" : ""}`,
      { "data-testid": "thread", "data-thread-id": thread.id },
      h("button.thread-quote.link", { onclick: () => this.host.reveal(thread.cell_id), title: "Show the cell" }, quote),
      ...thread.comments.map((comment, index) =>
        h(
          "div.comment",
          { "data-testid": "comment" },
          h("div.comment-head", {}, h("b", {}, comment.author.name), h("span.muted", {}, ` ${relativeTime(comment.created_at)}`)),
          h("div.comment-text", {}, comment.text),
          index > 0 && (mine(comment.author.id) || this.canModerate())
            ? h("button.link.small", { onclick: () => this.act("delete the reply", () => api.deleteReply(this.host.notebookId, thread.id, comment.id)) }, "Delete")
            : null,
        ),
      ),
      thread.resolved && thread.resolved_by ? h("div.muted.small", {}, `Resolved by ${thread.resolved_by.name}`) : null,
    );
    if (!this.canComment()) return el;
    const actions = h(
      "div.thread-actions",
      {},
      h(
        "button",
        {
          "data-testid": "resolve",
          onclick: () => this.act(thread.resolved ? "reopen" : "resolve", () => api.resolve(this.host.notebookId, thread.id, !thread.resolved)),
        },
        thread.resolved ? "Reopen" : "Resolve",
      ),
      mine(thread.author.id) || this.canModerate()
        ? h(
            "button",
            {
              "data-testid": "delete-thread",
              onclick: () => {
                if (confirm("Delete this thread and its replies?")) {
                  void this.act("delete the thread", () => api.deleteThread(this.host.notebookId, thread.id));
                }
              },
            },
            "Delete",
          )
        : null,
    );
    if (!thread.resolved) {
      const text = h("textarea", { "data-testid": "reply-text", "data-key": `reply-${thread.id}`, placeholder: "Reply…", rows: 1, "aria-label": "Reply" });
      text.value = this.replies.get(thread.id) ?? "";
      text.addEventListener("input", () => this.replies.set(thread.id, text.value));
      const form = h("form.reply", {}, text, h("button", { type: "submit", "data-testid": "reply-send" }, "Reply"));
      submitOnCtrlEnter(text, form);
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        if (!text.value.trim()) return;
        void this.act("reply", async () => {
          await api.reply(this.host.notebookId, thread.id, text.value);
          this.replies.delete(thread.id);
        });
      });
      el.append(form);
    }
    el.append(actions);
    return el;
  }

  private async act(what: string, action: () => Promise<unknown>) {
    try {
      await action();
      await this.refresh();
    } catch (error) {
      failed(what, error);
    }
  }
}

function submitOnCtrlEnter(text: HTMLTextAreaElement, form: HTMLFormElement) {
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
}

function failed(what: string, error: unknown) {
  if (error instanceof ApiError && error.status === 401) toast(`Sign in to ${what}`);
  else toast(`Could not ${what}: ${error instanceof Error ? error.message : String(error)}`);
}
