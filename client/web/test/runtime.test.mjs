// Unit tests of "whose runtime it is" (src/notebook/runtime.ts): the label beside the kernel
// status and when the first-run notice is due. Run by `npm test`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { holderLabel, holderOf, needsNotice, noticeKey } from "../src/notebook/runtime.ts";

const ada = { id: "u-ada", name: "Ada Lovelace" };
const kernel = (status, holder) => ({ status, queue: [], ...(holder ? { holder } : {}) });

test("the label names the holder of a running kernel, or you", () => {
  assert.equal(holderLabel(kernel("idle", ada), "u-bob"), "Runtime: Ada Lovelace");
  assert.equal(holderLabel(kernel("busy", ada), "u-ada"), "Runtime: you");
  assert.equal(holderLabel(kernel("starting", ada), null), "Runtime: Ada Lovelace");
  // No kernel, no holder: nothing to show, whatever a stale key says.
  assert.equal(holderLabel(kernel("dead", ada), "u-bob"), "");
  assert.equal(holderLabel(kernel("not_started", ada), "u-bob"), "");
  assert.equal(holderLabel(kernel("idle"), "u-bob"), "");
  assert.equal(holderOf(kernel("idle", { id: "u-x", name: "" }))?.name, "someone");
});

test("the notice is due once per notebook and holder, only in someone else's runtime", () => {
  const seen = new Set();
  const has = (key) => seen.has(key);
  assert.deepEqual(needsNotice("nb", kernel("idle", ada), "u-bob", has), ada);
  seen.add(noticeKey("nb", ada.id, "u-bob"));
  assert.equal(needsNotice("nb", kernel("idle", ada), "u-bob", has), null);
  // Another notebook, or another person's runtime here, is new again.
  assert.deepEqual(needsNotice("nb2", kernel("idle", ada), "u-bob", has), ada);
  const cy = { id: "u-cy", name: "Cy" };
  assert.deepEqual(needsNotice("nb", kernel("idle", cy), "u-bob", has), cy);
  // Your own runtime, no runtime, or not signed in: nothing to tell.
  assert.equal(needsNotice("nb", kernel("idle", ada), "u-ada", has), null);
  assert.equal(needsNotice("nb", kernel("not_started"), "u-bob", has), null);
  assert.equal(needsNotice("nb", kernel("idle", ada), null, has), null);
});
