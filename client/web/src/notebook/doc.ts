// The notebook document: Jupyter's YNotebook schema (document version 2.0.0) on Yjs, as
// docs/design.md and crdt/src/lib.rs lay it out. Every edit here is one transaction and leaves the
// document in the shape jupyter_ydoc, @jupyter/ydoc and tandem-crdt read.
//
//   cells: Y.Array<Y.Map>   id, cell_type, source: Y.Text, metadata: Y.Map,
//                           code: outputs: Y.Array<Y.Map>, execution_count, execution_state,
//                           execution_by {id, name} (who ran it; written by the runtime)
//   meta:  Y.Map            nbformat, nbformat_minor, metadata
//   state: Y.Map            kernel: Y.Map written by the runtime (status, queue, holder, …);
//                           title and comments_rev, written by the collab service

import * as Y from "yjs";
import { uuid } from "../dom";
import type { KernelState } from "../generated/kernel";

export type CellType = "code" | "markdown" | "raw";

/** `state.kernel`, written by the runtime: the types are generated from the Rust ones
 * (`crdt/src/kernel.rs` → `src/generated/kernel.ts`). */
export type { KernelState, KernelStatus, Person } from "../generated/kernel";

export class NotebookDoc {
  readonly cells: Y.Array<Y.Map<unknown>>;
  readonly state: Y.Map<unknown>;

  constructor(readonly doc: Y.Doc) {
    this.cells = doc.getArray("cells");
    this.state = doc.getMap("state");
  }

  /** The cells a reader sees: later copies of an id (left by concurrent moves) are skipped. */
  visible(): Y.Map<unknown>[] {
    const seen = new Set<string>();
    const out: Y.Map<unknown>[] = [];
    for (const cell of this.cells.toArray()) {
      if (!(cell instanceof Y.Map)) continue;
      const id = cellId(cell);
      if (seen.has(id)) continue;
      seen.add(id);
      out.push(cell);
    }
    return out;
  }

  /** Raw index in `cells` of a cell map (or -1). */
  rawIndex(cell: Y.Map<unknown>): number {
    return this.cells.toArray().indexOf(cell);
  }

  insert(rawIndex: number, type: CellType, source = ""): Y.Map<unknown> {
    const cell = newCell(uuid(), type, source, {});
    this.doc.transact(() => this.cells.insert(Math.min(rawIndex, this.cells.length), [cell]));
    return cell;
  }

  remove(cell: Y.Map<unknown>) {
    const id = cellId(cell);
    this.doc.transact(() => {
      const all = this.cells.toArray();
      for (let i = all.length - 1; i >= 0; i--) {
        if (all[i] instanceof Y.Map && cellId(all[i]) === id) this.cells.delete(i, 1);
      }
    });
  }

  /**
   * Moves a cell by `delta` visible positions. As in JupyterLab and tandem-crdt, a move
   * deletes the cell and inserts a deep copy with the same id (yjs 13 has no native move).
   */
  move(cell: Y.Map<unknown>, delta: number): Y.Map<unknown> | null {
    const visible = this.visible();
    const from = visible.indexOf(cell);
    const to = from + delta;
    if (from < 0 || to < 0 || to >= visible.length) return null;
    const copy = cloneCell(cell);
    this.doc.transact(() => {
      const target = visible[to];
      this.cells.delete(this.rawIndex(cell), 1);
      const at = this.rawIndex(target);
      this.cells.insert(delta > 0 ? at + 1 : at, [copy]);
    });
    return copy;
  }

  /** Changes a cell's type: replaces it with a cell of the new type, same id and source. */
  setType(cell: Y.Map<unknown>, type: CellType): Y.Map<unknown> | null {
    if (cell.get("cell_type") === type) return null;
    const source = (cell.get("source") as Y.Text | undefined)?.toString() ?? "";
    const metadata = toJSON(cell.get("metadata")) as Record<string, unknown>;
    const replacement = newCell(cellId(cell), type, source, metadata ?? {});
    this.doc.transact(() => {
      const at = this.rawIndex(cell);
      if (at < 0) return;
      this.cells.delete(at, 1);
      this.cells.insert(at, [replacement]);
    });
    return replacement;
  }

  /** `state.kernel`; before any runtime wrote it (or where a key is missing), what a
   * notebook without a kernel shows. */
  kernel(): KernelState {
    const kernel = this.state.get("kernel");
    const json = (kernel instanceof Y.Map ? kernel.toJSON() : kernel ?? {}) as Partial<KernelState>;
    return {
      ...json,
      status: json.status ?? "not_started",
      runtime: json.runtime ?? "cpu",
      execution_count: json.execution_count ?? null,
      queue: Array.isArray(json.queue) ? json.queue : [],
      running: json.running ?? null,
      variables: Array.isArray(json.variables) ? json.variables : [],
      stale: Array.isArray(json.stale) ? json.stale : [],
    };
  }
}

export function cellId(cell: Y.Map<unknown>): string {
  const id = cell.get("id");
  return typeof id === "string" ? id : "";
}

export function cellType(cell: Y.Map<unknown>): CellType {
  const type = cell.get("cell_type");
  return type === "markdown" || type === "raw" ? type : "code";
}

/** Who ran a code cell last, as the runtime records it (`execution_by`: `{id, name}`). */
export function executionBy(cell: Y.Map<unknown>): { id: string; name: string } | null {
  const by = toJSON(cell.get("execution_by")) as { id?: unknown; name?: unknown } | undefined;
  if (!by || typeof by.name !== "string" || !by.name) return null;
  return { id: typeof by.id === "string" ? by.id : by.name, name: by.name };
}

export function cellSource(cell: Y.Map<unknown>): Y.Text {
  const source = cell.get("source");
  if (source instanceof Y.Text) return source;
  // A document written by a foreign client with a plain string: edits need a Y.Text.
  const text = new Y.Text(typeof source === "string" ? source : "");
  cell.set("source", text);
  return text;
}

function newCell(id: string, type: CellType, source: string, metadata: Record<string, unknown>): Y.Map<unknown> {
  const cell = new Y.Map<unknown>();
  cell.set("id", id);
  cell.set("cell_type", type);
  cell.set("source", new Y.Text(source));
  const meta = new Y.Map<unknown>();
  for (const [k, v] of Object.entries(metadata)) meta.set(k, v);
  cell.set("metadata", meta);
  if (type === "code") {
    cell.set("outputs", new Y.Array());
    cell.set("execution_count", null);
    cell.set("execution_state", "idle");
  }
  return cell;
}

/** A deep copy of a cell map, with fresh shared types (a moved cell). */
function cloneCell(cell: Y.Map<unknown>): Y.Map<unknown> {
  return cloneValue(cell) as Y.Map<unknown>;
}

function cloneValue(value: unknown): unknown {
  if (value instanceof Y.Text) return new Y.Text(value.toString());
  if (value instanceof Y.Map) {
    const map = new Y.Map<unknown>();
    value.forEach((v, k) => map.set(k, cloneValue(v)));
    return map;
  }
  if (value instanceof Y.Array) {
    const array = new Y.Array<unknown>();
    array.push(value.toArray().map(cloneValue));
    return array;
  }
  return value;
}

export function toJSON(value: unknown): unknown {
  if (value instanceof Y.AbstractType) return value.toJSON();
  return value;
}
