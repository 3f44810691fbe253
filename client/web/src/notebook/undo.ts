// Undoing a cell deletion: "Cell deleted · Undo" (and Ctrl+M Z). A Yjs UndoManager on the
// cell list tracks only this person's deletions (their own transaction origin), so undo never
// brings back what someone else deleted, and merges with everyone's concurrent edits: the cell
// comes back where it was, with its source, type and metadata.
//
// Its outputs do not come back: outputs, execution counts and "run by" are the runtime's to
// write, and the server refuses a client's new cell that carries them (crdt guard.rs). So the
// restore resets those values to a fresh cell's, in the same transaction as the undo (one
// update, which the guard accepts); running the cell again brings its outputs back.

import * as Y from "yjs";
import { h } from "../dom";
import { cellId, NotebookDoc } from "./doc";

/** The origin of this person's cell deletions (what the undo manager tracks). */
const DELETE_ORIGIN = { tandem: "delete-cell" };
/** The origin of the restore: not tracked, so it is not itself undoable. */
const RESTORE_ORIGIN = { tandem: "undo-delete" };

export class DeleteUndo {
  private readonly manager: Y.UndoManager;

  constructor(private readonly nb: NotebookDoc) {
    this.manager = new Y.UndoManager(nb.cells, {
      trackedOrigins: new Set([DELETE_ORIGIN]),
      // Each deletion is its own step.
      captureTimeout: 0,
    });
  }

  /** Deletes a cell as an undoable step. */
  remove(cell: Y.Map<unknown>) {
    this.nb.doc.transact(() => this.nb.remove(cell), DELETE_ORIGIN);
  }

  canUndo(): boolean {
    return this.manager.undoStack.length > 0;
  }

  /** Brings the last deleted cell back; returns its id (or null when there was none). */
  undo(): string | null {
    if (!this.canUndo()) return null;
    const before = new Set(this.nb.visible().map(cellId));
    let restored: string | null = null;
    this.nb.doc.transact(() => {
      this.manager.undo();
      for (const cell of this.nb.visible()) {
        const id = cellId(cell);
        if (before.has(id)) continue;
        restored = id;
        if (cell.get("cell_type") !== "code") continue;
        const outputs = cell.get("outputs");
        if (outputs instanceof Y.Array && outputs.length) outputs.delete(0, outputs.length);
        else if (!(outputs instanceof Y.Array)) cell.set("outputs", new Y.Array());
        if (cell.get("execution_count") !== null) cell.set("execution_count", null);
        if (cell.get("execution_state") !== "idle") cell.set("execution_state", "idle");
        for (const key of ["execution_by", "tandem_stale"]) if (cell.has(key)) cell.delete(key);
      }
    }, RESTORE_ORIGIN);
    return restored;
  }
}

/** A toast with an action button ("Cell deleted · Undo"); gone after `ms` or once used. */
export function actionToast(message: string, action: string, run: () => void, ms = 10_000) {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.appendChild(box);
  }
  // One such toast at a time: a newer deletion's Undo replaces the older one's.
  dismissActionToasts();
  const item = h(
    "div.toast.info.with-action",
    { "data-testid": "action-toast" },
    h("span", {}, message),
    h(
      "button.link.toast-action",
      {
        "data-testid": "toast-action",
        onclick: () => {
          item.remove();
          run();
        },
      },
      action,
    ),
  );
  box.appendChild(item);
  setTimeout(() => item.remove(), ms);
}

/** Removes the action toasts (once their action happened some other way, e.g. Ctrl+M Z). */
export function dismissActionToasts() {
  document.querySelectorAll("#toasts .toast.with-action").forEach((el) => el.remove());
}
