// A code cell's last run as Colab shows it: ✓ or ✗ with how long it took under the run
// button, and on hover when it ran and by whom. Read from the cell alone, so every page (and
// a reload, or an .ipynb export opened elsewhere) shows the same: the timing is the runtime's
// `metadata.execution` (JupyterLab's "record timing" keys), the outcome is whether an error
// output is among the outputs, the person is `execution_by`.

import * as Y from "yjs";
import { executionBy } from "./doc";

/** What a cell's status line shows. */
export interface RunStatus {
  outcome: "ok" | "error";
  /** How long the run took, in milliseconds. */
  elapsedMs: number;
  /** When it ended. */
  endedAt: Date;
  by: string | null;
}

/** `metadata.execution` as the runtime (or JupyterLab) writes it. */
interface Timing {
  "iopub.execute_input"?: string;
  "shell.execute_reply.started"?: string;
  "shell.execute_reply"?: string;
}

function plain(value: unknown): unknown {
  return value instanceof Y.Map || value instanceof Y.Array ? value.toJSON() : value;
}

/** The cell's last finished run, or null (never run, running, or no timing recorded). */
export function runStatus(cell: Y.Map<unknown>): RunStatus | null {
  const state = cell.get("execution_state");
  if (state === "running" || state === "queued") return null;
  const metadata = plain(cell.get("metadata")) as Record<string, unknown> | undefined;
  const timing = plain(metadata?.execution) as Timing | undefined;
  const start = Date.parse(timing?.["iopub.execute_input"] ?? timing?.["shell.execute_reply.started"] ?? "");
  const end = Date.parse(timing?.["shell.execute_reply"] ?? "");
  if (Number.isNaN(start) || Number.isNaN(end) || end < start) return null;
  const outputs = plain(cell.get("outputs")) as { output_type?: string }[] | undefined;
  const failed = (outputs ?? []).some((output) => output?.output_type === "error");
  return { outcome: failed ? "error" : "ok", elapsedMs: end - start, endedAt: new Date(end), by: executionBy(cell)?.name ?? null };
}

/** "0.3s", "12s", "2m 5s", "1h 2m": short enough for the gutter. */
export function formatElapsed(ms: number): string {
  // parseFloat drops trailing zeros: 0.30 → 0.3, 1.0 → 1.
  if (ms < 10_000) return `${parseFloat((Math.max(0, ms) / 1000).toFixed(ms < 1000 ? 2 : 1))}s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m ${seconds % 60}s`;
  return `${Math.floor(minutes / 60)}h ${minutes % 60}m`;
}

/** The hover text: when it ran, by whom, how long, how it ended. */
export function statusTitle(status: RunStatus): string {
  const when = status.endedAt.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  const outcome = status.outcome === "ok" ? "Completed" : "Failed";
  const by = status.by ? ` by ${status.by}` : "";
  return `${outcome} at ${when}${by} (took ${(status.elapsedMs / 1000).toFixed(2)} s)`;
}
