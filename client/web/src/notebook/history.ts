// Version history: a dialog listing the notebook's versions (automatic ones, taken when edits
// settle, and named ones), each with who changed the notebook since the version before it.
// Pick one to preview it read-only or to see what changed between it and now; editors name
// the current state and restore a version. A restore is an ordinary edit of the shared
// document (REST: POST /api/notebooks/{id}/versions/{vid}/restore), so this page and everyone
// else's receive it over the WebSocket like anyone's typing; the state it replaced is saved
// first as a named version, which restores like any other (undo).

import * as Y from "yjs";
import { ApiError, request, Role } from "../api";
import { h, relativeTime, toast } from "../dom";
import { renderMarkdown } from "./markdown";
import { renderOutput } from "./outputs";

type Json = Record<string, unknown>;

export interface VersionAuthor {
  id: string;
  name: string;
}

/** One version (protocol/src/versions.rs). */
export interface Version {
  id: string;
  created_at: string;
  kind: "auto" | "named";
  name: string | null;
  authors: VersionAuthor[];
}

interface CellChange {
  id: string;
  change: "added" | "removed" | "changed" | "moved" | "unchanged";
  cell_type: string;
  fields: string[];
  old_source: string | null;
  new_source: string | null;
}

interface VersionDiff {
  from: Version;
  to: Version | null;
  cells: CellChange[];
}

interface IpynbCell {
  id?: string;
  cell_type: string;
  source: string | string[];
  outputs?: Json[];
  execution_count?: number | null;
  attachments?: Record<string, Record<string, string>>;
}

const versionsPath = (id: string, rest = "") => `/api/notebooks/${encodeURIComponent(id)}/versions${rest}`;

export const versionsApi = {
  list: (id: string) => request<Version[]>("GET", versionsPath(id)),
  name: (id: string, name: string) => request<Version>("POST", versionsPath(id), { name }),
  view: (id: string, vid: string) => request<{ cells: IpynbCell[] }>("GET", versionsPath(id, `/${encodeURIComponent(vid)}`)),
  diff: (id: string, vid: string) => request<VersionDiff>("GET", versionsPath(id, `/${encodeURIComponent(vid)}/diff`)),
  restore: (id: string, vid: string) =>
    request<{ before_restore: Version }>("POST", versionsPath(id, `/${encodeURIComponent(vid)}/restore`)),
};

/** A version's label: its name, or "Automatic version". */
function label(version: Version): string {
  return version.name ?? "Automatic version";
}

function when(version: Version): string {
  const date = new Date(version.created_at);
  return Number.isNaN(date.getTime()) ? version.created_at : date.toLocaleString();
}

function authorsLine(version: Version): string {
  const names = version.authors.map((a) => a.name || "someone");
  return names.length ? `Changes by ${names.join(", ")}` : "No edits by people since the version before";
}

/** Opens the history dialog of a notebook. */
export function openHistory(notebookId: string, role: Role) {
  const canEdit = role === "editor" || role === "owner";
  const dialog = h("dialog.history", { "aria-label": "Version history", "data-testid": "history-dialog" });
  const list = h("ul.history-list", { "data-testid": "history-list", "aria-label": "Versions" });
  const view = h("section.history-view", { "data-testid": "history-view" }, h("p.muted", {}, "Pick a version to preview it."));
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  let versions: Version[] = [];
  let selected: string | null = null;

  const nameInput = h("input.history-name-input", {
    placeholder: "Name the current version",
    "aria-label": "Name the current version",
    maxlength: 200,
    "data-testid": "history-name-input",
  });
  const nameCurrent = async () => {
    const name = nameInput.value.trim();
    if (!name) {
      nameInput.focus();
      return;
    }
    try {
      const version = await versionsApi.name(notebookId, name);
      nameInput.value = "";
      toast(`Saved “${label(version)}”`, "info");
      await refresh(version.id);
    } catch (error) {
      toast(error instanceof ApiError ? error.message : String(error));
    }
  };
  nameInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") void nameCurrent();
  });
  const nameRow = canEdit
    ? h(
        "div.history-name",
        {},
        nameInput,
        h("button.primary", { onclick: () => void nameCurrent(), "data-testid": "history-name" }, "Save version"),
      )
    : null;

  const renderList = () => {
    list.replaceChildren(
      ...(versions.length
        ? versions.map((v) =>
            h(
              `li.history-item.${v.kind}${v.id === selected ? ".selected" : ""}`,
              {
                "data-testid": "history-item",
                "data-version": v.id,
                tabindex: 0,
                role: "button",
                onclick: () => void select(v.id),
                onkeydown: (e: Event) => {
                  if ((e as KeyboardEvent).key === "Enter") void select(v.id);
                },
              },
              h("div.history-item-title", {}, label(v)),
              h("div.history-item-time.muted", { title: when(v) }, `${relativeTime(v.created_at)} · ${when(v)}`),
              h("div.history-item-authors.muted", {}, authorsLine(v)),
            ),
          )
        : [h("li.muted", {}, "No versions yet: one is saved a couple of minutes after someone edits.")]),
    );
  };

  const refresh = async (select_?: string) => {
    try {
      versions = await versionsApi.list(notebookId);
    } catch (error) {
      list.replaceChildren(h("li.muted", {}, `Could not load the history: ${error instanceof Error ? error.message : error}`));
      return;
    }
    renderList();
    if (select_) await select(select_);
  };

  const select = async (vid: string, tab: "preview" | "diff" = "preview") => {
    selected = vid;
    renderList();
    const version = versions.find((v) => v.id === vid);
    if (!version) return;
    const content = h("div.history-content", {}, h("p.muted", {}, "Loading…"));
    const tabButton = (name: "preview" | "diff", text: string) =>
      h(
        `button.tab${tab === name ? ".active" : ""}`,
        { onclick: () => void select(vid, name), "data-testid": `history-tab-${name}`, "aria-pressed": tab === name },
        text,
      );
    const restore = canEdit
      ? h(
          "button.primary",
          {
            "data-testid": "history-restore",
            onclick: () => void restoreVersion(version),
          },
          "Restore this version",
        )
      : null;
    view.replaceChildren(
      h(
        "div.history-view-head",
        {},
        h("div", {}, h("h3", {}, label(version)), h("div.muted", {}, `${when(version)} · ${authorsLine(version)}`)),
        h("div.history-tabs", {}, tabButton("preview", "Preview"), tabButton("diff", "Changes since")),
        restore,
      ),
      content,
    );
    try {
      if (tab === "preview") {
        const ipynb = await versionsApi.view(notebookId, vid);
        if (selected !== vid) return;
        content.replaceChildren(...renderCells(ipynb.cells, notebookId));
      } else {
        const diff = await versionsApi.diff(notebookId, vid);
        if (selected !== vid) return;
        content.replaceChildren(...renderDiff(diff));
      }
    } catch (error) {
      content.replaceChildren(h("p.muted", {}, error instanceof Error ? error.message : String(error)));
    }
  };

  const restoreVersion = async (version: Version) => {
    const ok = confirm(
      `Restore “${label(version)}” (${when(version)})?\n\nEveryone in the notebook sees the restore at once. ` +
        "The current state is saved first as a named version, so you can undo it.",
    );
    if (!ok) return;
    try {
      const answer = await versionsApi.restore(notebookId, version.id);
      toast(`Restored “${label(version)}”. Saved the state before as “${label(answer.before_restore)}”.`, "info");
      await refresh(answer.before_restore.id);
    } catch (error) {
      toast(error instanceof ApiError ? error.message : String(error));
    }
  };

  dialog.append(
    h(
      "div.history-head",
      {},
      h("h2", {}, "Version history"),
      nameRow,
      h("button", { onclick: close, "data-testid": "history-close", "aria-label": "Close" }, "Close"),
    ),
    h("div.history-body", {}, list, view),
  );
  document.body.appendChild(dialog);
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    close();
  });
  dialog.showModal();
  void refresh();
}

function joinSource(source: string | string[]): string {
  return Array.isArray(source) ? source.join("") : source;
}

/** A version's cells, read-only: markdown rendered, code as text with its outputs. */
function renderCells(cells: IpynbCell[], notebookId: string): HTMLElement[] {
  if (!cells.length) return [h("p.muted", {}, "This version has no cells.")];
  // Outputs render from Y.Maps, as on the live page: give them a scratch document.
  const scratch = new Y.Doc();
  const outputs = scratch.getArray<Y.Map<unknown>>("outputs");
  return cells.map((cell) => {
    const source = joinSource(cell.source);
    const box = h(`div.history-cell.${cell.cell_type}`, { "data-testid": "history-cell", "data-cell": cell.id ?? "" });
    if (cell.cell_type === "markdown") {
      const md = h("div.markdown");
      renderMarkdown(source, md, cell.attachments);
      box.appendChild(md);
      return box;
    }
    const count = cell.cell_type === "code" ? `[${cell.execution_count ?? " "}]` : "";
    box.append(h("div.history-cell-source", {}, h("span.marker.muted", {}, count), h("pre", {}, source)));
    for (const output of cell.outputs ?? []) {
      const map = new Y.Map<unknown>();
      outputs.push([map]);
      for (const [key, value] of Object.entries(output)) map.set(key, value);
      box.appendChild(renderOutput(map, notebookId));
    }
    return box;
  });
}

const CHANGE_LABEL: Record<CellChange["change"], string> = {
  added: "Added since",
  removed: "Removed since",
  changed: "Changed since",
  moved: "Moved since",
  unchanged: "Unchanged",
};

/** What changed from the version to now, cell by cell, sources as line diffs. */
function renderDiff(diff: VersionDiff): HTMLElement[] {
  const changed = diff.cells.filter((c) => c.change !== "unchanged");
  const summary = h(
    "p.muted",
    { "data-testid": "history-diff-summary" },
    changed.length ? `${changed.length} of ${diff.cells.length} cells differ from now.` : "Same cells as now.",
  );
  return [
    summary,
    ...diff.cells.map((cell) => {
      const extra = cell.change === "changed" ? ` (${cell.fields.join(", ")})` : "";
      return h(
        `div.history-diff-cell.${cell.change}`,
        { "data-testid": "history-diff-cell", "data-change": cell.change, "data-cell": cell.id },
        h("div.history-diff-label", {}, `${CHANGE_LABEL[cell.change]}${extra} · ${cell.cell_type}`),
        cell.change === "unchanged" || cell.change === "moved"
          ? h("pre.history-diff-lines", {}, cell.new_source ?? "")
          : lineDiff(cell.old_source ?? "", cell.new_source ?? ""),
      );
    }),
  ];
}

/** A line diff of two sources (longest common subsequence; sources of cells are short). */
function lineDiff(before: string, after: string): HTMLElement {
  const a = before ? before.split("\n") : [];
  const b = after ? after.split("\n") : [];
  const pre = h("pre.history-diff-lines");
  if (a.length * b.length > 1_000_000) {
    pre.append(...a.map((l) => h("div.del", {}, `- ${l}`)), ...b.map((l) => h("div.ins", {}, `+ ${l}`)));
    return pre;
  }
  // lcs[i][j]: common lines of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      pre.appendChild(h("div.same", {}, `  ${a[i]}`));
      i++;
      j++;
    } else if (j < b.length && (i === a.length || lcs[i][j + 1] >= lcs[i + 1][j])) {
      pre.appendChild(h("div.ins", {}, `+ ${b[j]}`));
      j++;
    } else {
      pre.appendChild(h("div.del", {}, `- ${a[i]}`));
      i++;
    }
  }
  return pre;
}
