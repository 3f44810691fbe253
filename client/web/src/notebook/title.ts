// The notebook's title in the page header: editable in place by editors (Enter or leaving the
// field saves it with PATCH /api/notebooks/{id}; Esc undoes), plain text for everyone else.
// The collab service mirrors every rename into the document's `state.title`, so a rename by
// anyone shows on every open page at once.

import * as Y from "yjs";
import { api, ApiError } from "../api";
import { h, toast } from "../dom";

/** Longest title the server takes (characters). */
const MAX_TITLE = 500;

export class TitleView {
  readonly el: HTMLElement;
  private title: string;
  private readonly input: HTMLInputElement | null = null;

  constructor(
    private readonly notebookId: string,
    initial: string,
    editable: boolean,
    private readonly state: Y.Map<unknown>,
    /** Told of every title change, local or remote. */
    private readonly changed: (title: string) => void,
  ) {
    this.title = initial;
    if (editable) {
      const input = h("input.nb-title.nb-title-input", {
        "data-testid": "title",
        "aria-label": "Notebook title",
        title: "Rename the notebook (Enter to save)",
        maxlength: MAX_TITLE,
        spellcheck: "false",
      });
      input.value = initial;
      input.addEventListener("keydown", (e) => {
        if (e.key === "Enter") {
          e.preventDefault();
          input.blur();
        } else if (e.key === "Escape") {
          input.value = this.title;
          input.blur();
        }
      });
      input.addEventListener("blur", () => void this.save());
      this.input = input;
      this.el = input;
    } else {
      this.el = h("h1.nb-title", { "data-testid": "title" }, initial);
    }
    state.observe((event) => {
      if (event.keysChanged.has("title")) this.show();
    });
    this.show();
  }

  /** The document's title, when the server has written one. */
  private fromDoc(): string | null {
    const title = this.state.get("title");
    return typeof title === "string" ? title : null;
  }

  private show() {
    const title = this.fromDoc() ?? this.title;
    this.title = title;
    if (this.input) {
      if (document.activeElement !== this.input) this.input.value = title;
    } else {
      this.el.textContent = title;
    }
    this.el.title = this.input ? `${title} (click to rename)` : title;
    this.changed(title);
  }

  private async save() {
    const input = this.input;
    if (!input) return;
    const wanted = input.value.trim() || "Untitled";
    if (wanted === this.title) {
      input.value = this.title;
      return;
    }
    try {
      const info = await api.rename(this.notebookId, wanted);
      // The document brings the same title to every page; this one need not wait for it.
      this.title = info.title;
      if (document.activeElement !== input) input.value = info.title;
      this.changed(info.title);
    } catch (error) {
      input.value = this.title;
      toast(`Could not rename: ${error instanceof ApiError || error instanceof Error ? error.message : String(error)}`);
    }
  }
}
