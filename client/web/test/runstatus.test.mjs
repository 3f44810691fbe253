// Unit tests of a cell's run status (src/notebook/runstatus.ts) and the resource gauges' sizes
// (src/notebook/resources.ts). Run by `npm test`.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as Y from "yjs";
import { formatElapsed, runStatus, statusTitle } from "../src/notebook/runstatus.ts";
import { formatBytes } from "../src/notebook/resources.ts";

/** A code cell as the runtime leaves it, in a document (as the page reads it). */
function cell({ execution, outputs = [], state = "idle", by = { id: "u1", name: "Ada" } }) {
  const doc = new Y.Doc();
  const map = new Y.Map();
  doc.getArray("cells").push([map]);
  const metadata = new Y.Map();
  map.set("metadata", metadata);
  if (execution) metadata.set("execution", execution);
  map.set("outputs", Y.Array.from(outputs));
  map.set("execution_state", state);
  if (by) map.set("execution_by", by);
  return map;
}

const timing = (start, end) => ({
  "iopub.status.busy": start,
  "iopub.execute_input": start,
  "shell.execute_reply.started": start,
  "shell.execute_reply": end,
  "iopub.status.idle": end,
});

test("a finished run shows ✓ or ✗ with its time, when and by whom", () => {
  const ok = runStatus(cell({ execution: timing("2026-01-02T03:04:05.000000Z", "2026-01-02T03:04:06.250000Z") }));
  assert.equal(ok.outcome, "ok");
  assert.equal(ok.elapsedMs, 1250);
  assert.equal(ok.by, "Ada");
  assert.match(statusTitle(ok), /^Completed at .+ by Ada \(took 1\.25 s\)$/);
  const failed = runStatus(
    cell({
      execution: timing("2026-01-02T03:04:05Z", "2026-01-02T03:04:05.300Z"),
      outputs: [{ output_type: "stream", name: "stdout", text: "x" }, { output_type: "error", ename: "E", evalue: "", traceback: [] }],
      by: null,
    }),
  );
  assert.equal(failed.outcome, "error");
  assert.match(statusTitle(failed), /^Failed at .+ \(took 0\.30 s\)$/);
});

test("no status while running, without timing, or with only a start", () => {
  const start = "2026-01-02T03:04:05Z";
  assert.equal(runStatus(cell({ execution: timing(start, "2026-01-02T03:04:06Z"), state: "running" })), null);
  assert.equal(runStatus(cell({})), null);
  assert.equal(runStatus(cell({ execution: { "iopub.execute_input": start } })), null);
  assert.equal(runStatus(cell({ execution: timing(start, "2026-01-02T03:04:04Z") })), null, "an end before the start");
});

test("elapsed times and sizes read short", () => {
  assert.equal(formatElapsed(0), "0s");
  assert.equal(formatElapsed(300), "0.3s");
  assert.equal(formatElapsed(1000), "1s");
  assert.equal(formatElapsed(1520), "1.5s");
  assert.equal(formatElapsed(42_000), "42s");
  assert.equal(formatElapsed(125_000), "2m 5s");
  assert.equal(formatElapsed(3_720_000), "1h 2m");
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536 * 1024 * 1024), "1.5 GB");
  assert.equal(formatBytes(250 * 1024 * 1024), "250 MB");
});
