// The home page's notebook lists: yours and shared with you, searchable by title and sorted
// by last opened, last edited or title, each with its owner and last editor, and actions by
// role: rename (editors and the owner), make a copy (anyone), delete (the owner).

import { api, Me, NotebookInfo } from "./api";
import type { Person } from "./generated/api";
import { copyNotebook } from "./copy";
import { h, relativeTime, toast } from "./dom";
import { icon } from "./icons";
import "./library.css";

/** A listed notebook: GET /api/notebooks answers NotebookInfo with its owner, last editor
 * and when the caller last opened it (generated from protocol's types). */
export type Listed = NotebookInfo;


export type SortKey = "opened" | "edited" | "title";

const SORTS: Record<SortKey, string> = {
  opened: "Last opened by me",
  edited: "Last edited",
  title: "Title",
};

/** `list` filtered by a title search (case-insensitive, every word) and sorted by `key`. */
export function arrange(list: Listed[], query: string, key: SortKey): Listed[] {
  const words = query.toLocaleLowerCase().split(/\s+/).filter(Boolean);
  const matches = list.filter((nb) => {
    const title = (nb.title || "Untitled").toLocaleLowerCase();
    return words.every((w) => title.includes(w));
  });
  const time = (iso?: string) => (iso ? Date.parse(iso) || 0 : 0);
  const byTitle = (a: Listed, b: Listed) => a.title.localeCompare(b.title, undefined, { sensitivity: "base", numeric: true });
  const compare: Record<SortKey, (a: Listed, b: Listed) => number> = {
    // Never opened sorts after opened, then by last edit.
    opened: (a, b) => time(b.last_opened_at) - time(a.last_opened_at) || time(b.updated_at) - time(a.updated_at),
    edited: (a, b) => time(b.updated_at) - time(a.updated_at) || byTitle(a, b),
    title: (a, b) => byTitle(a, b) || time(b.updated_at) - time(a.updated_at),
  };
  return matches.sort(compare[key]);
}

export class Library {
  readonly el: HTMLElement;
  private readonly owned = h("ul.nb-list", { "aria-label": "Your notebooks", "data-testid": "owned" });
  private readonly shared = h("ul.nb-list", { "aria-label": "Shared with you", "data-testid": "shared" });
  private readonly search = h("input.nb-search", {
    type: "search",
    placeholder: "Search by title",
    "aria-label": "Search notebooks by title",
    "data-testid": "search",
  });
  private readonly sort = h(
    "select.nb-sort",
    { "aria-label": "Sort notebooks", "data-testid": "sort" },
    ...Object.entries(SORTS).map(([value, label]) => h("option", { value }, label)),
  );
  private list: Listed[] = [];

  constructor(private readonly me: Me) {
    this.search.addEventListener("input", () => this.render());
    this.sort.addEventListener("change", () => this.render());
    this.el = h(
      "div.library",
      {},
      h(
        "div.library-tools",
        {},
        h("label.nb-search-box", {}, icon("search", 14), this.search),
        h("label.nb-sort-label", {}, "Sort by ", this.sort),
      ),
      h("section", {}, h("h2", {}, "Your notebooks"), this.owned),
      h("section", {}, h("h2", {}, "Shared with you"), this.shared),
    );
  }

  async refresh(): Promise<void> {
    try {
      this.list = (await api.list()) as Listed[];
    } catch (error) {
      toast(`Could not list notebooks: ${(error as Error).message}`);
      return;
    }
    this.render();
  }

  private render() {
    const shown = arrange(this.list, this.search.value, this.sort.value as SortKey);
    const mine = shown.filter((n) => n.role === "owner");
    const theirs = shown.filter((n) => n.role !== "owner");
    const searching = this.search.value.trim() !== "";
    const none = (text: string) => [h("li.empty", {}, searching ? "No notebook titles match." : text)];
    this.owned.replaceChildren(...(mine.length ? mine.map((nb) => this.item(nb)) : none("No notebooks yet. Create one or upload an .ipynb.")));
    this.shared.replaceChildren(...(theirs.length ? theirs.map((nb) => this.item(nb)) : none("Nothing shared with you yet.")));
  }

  private item(nb: Listed): HTMLElement {
    const title = h("span.nb-title", { "data-testid": "nb-title" }, nb.title || "Untitled");
    const link = h("a.nb-link", { href: `/n/${nb.id}` }, title);
    const row = h("li", { "data-id": nb.id, "data-testid": "notebook" });
    const person = (p?: Person) => (p ? (p.id === this.me.id ? "me" : p.name) : "");
    const edited = nb.last_editor ? `Edited by ${person(nb.last_editor)}` : "Edited";
    const details = h(
      "span.nb-details",
      {},
      h("span.nb-owner", { "data-testid": "nb-owner", title: nb.owner?.email ?? "" }, `Owner: ${person(nb.owner) || "unknown"}`),
      h("span.nb-edited", { "data-testid": "nb-edited", title: nb.updated_at ? new Date(nb.updated_at).toLocaleString() : "" }, `${edited} ${relativeTime(nb.updated_at)}`),
      nb.last_opened_at
        ? h("span.nb-opened", { "data-testid": "nb-opened", title: new Date(nb.last_opened_at).toLocaleString() }, `Opened ${relativeTime(nb.last_opened_at)}`)
        : null,
    );
    const action = (name: "pencil" | "copy" | "trash", label: string, testid: string, run: () => void) =>
      h("button.icon", { title: label, "aria-label": `${label}: ${nb.title}`, "data-testid": testid, onclick: run }, icon(name));
    const canRename = nb.role === "owner" || nb.role === "editor";
    row.append(
      h("span.nb-main", {}, link, details),
      h("span.nb-role", {}, nb.role),
      h(
        "span.nb-actions",
        {},
        canRename ? action("pencil", "Rename", "rename", () => this.rename(nb, row, link)) : null,
        action("copy", "Make a copy", "copy", () => void this.copy(nb)),
        nb.role === "owner" ? action("trash", "Delete notebook", "delete", () => void this.remove(nb)) : null,
      ),
    );
    return row;
  }

  /** Edits the title in place: Enter saves, Escape or leaving the field cancels. */
  private rename(nb: Listed, row: HTMLElement, link: HTMLElement) {
    const input = h("input.nb-rename", {
      type: "text",
      value: nb.title,
      maxlength: 500,
      "aria-label": `New title for ${nb.title}`,
      "data-testid": "rename-input",
    });
    let done = false;
    const finish = async (save: boolean) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      if (save && title !== nb.title) {
        try {
          await api.rename(nb.id, title);
        } catch (error) {
          toast(`Could not rename: ${(error as Error).message}`);
        }
        await this.refresh();
      } else {
        input.replaceWith(link);
      }
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") void finish(true);
      if (e.key === "Escape") void finish(false);
    });
    input.addEventListener("blur", () => void finish(false));
    link.replaceWith(input);
    input.focus();
    input.select();
    row.classList.add("renaming");
  }

  private async copy(nb: Listed) {
    try {
      const copy = await copyNotebook(nb.id);
      toast(`Made “${copy.title}”`, "info");
      await this.refresh();
    } catch (error) {
      toast(`Could not make a copy: ${(error as Error).message}`);
    }
  }

  private async remove(nb: Listed) {
    if (!confirm(`Delete “${nb.title}” for everyone? This cannot be undone.`)) return;
    try {
      await api.remove(nb.id);
      await this.refresh();
    } catch (error) {
      toast(`Could not delete: ${(error as Error).message}`);
    }
  }
}
