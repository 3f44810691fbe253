// Drag a cell by its handle (⠿, in the gutter) and drop it above or below another: the
// move is NotebookDoc.move (delete + re-insert under the same id, as Jupyter clients move
// cells), so everyone sees it at once and concurrent moves converge.

import type { CellView } from "./cell";

export interface DragHost {
  viewOf(el: HTMLElement): CellView | undefined;
  order(): CellView[];
  canEdit(): boolean;
  move(view: CellView, delta: number): void;
}

export function dragToReorder(cells: HTMLElement, host: DragHost) {
  let dragged: CellView | null = null;
  let marker: { view: CellView; below: boolean } | null = null;
  const clearMarker = () => {
    cells.querySelectorAll(".drop-above, .drop-below").forEach((el) => el.classList.remove("drop-above", "drop-below"));
    marker = null;
  };
  cells.addEventListener("dragstart", (e) => {
    const handle = (e.target as HTMLElement).closest?.(".drag-handle");
    const view = handle ? host.viewOf(handle as HTMLElement) : undefined;
    // Anything else dragged (text, an image of an output) is the browser's to drag.
    if (!view || !host.canEdit()) return;
    dragged = view;
    e.dataTransfer?.setData("text/plain", view.id);
    e.dataTransfer?.setDragImage(view.el, 20, 20);
    view.el.classList.add("dragging");
  });
  cells.addEventListener("dragover", (e) => {
    if (!dragged) return;
    const view = host.viewOf(e.target as HTMLElement);
    if (!view) return;
    e.preventDefault();
    const rect = view.el.getBoundingClientRect();
    const below = e.clientY > rect.top + rect.height / 2;
    if (marker?.view === view && marker.below === below) return;
    clearMarker();
    marker = { view, below };
    view.el.classList.add(below ? "drop-below" : "drop-above");
  });
  cells.addEventListener("drop", (e) => {
    if (!dragged || !marker) return;
    e.preventDefault();
    const from = host.order().indexOf(dragged);
    let to = host.order().indexOf(marker.view) + (marker.below ? 1 : 0);
    if (to > from) to -= 1;
    clearMarker();
    if (from >= 0 && to !== from) host.move(dragged, to - from);
  });
  cells.addEventListener("dragend", () => {
    dragged?.el.classList.remove("dragging");
    dragged = null;
    clearMarker();
  });
}
