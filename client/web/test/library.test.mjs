// Unit tests of the home page's search and sort (src/library.ts). Run by `npm test`.
import assert from "node:assert/strict";
import { test } from "node:test";
import { arrange } from "../src/library.ts";

const nb = (title, updated, opened) => ({
  id: title,
  title,
  role: "owner",
  updated_at: `2026-12-0${updated}T10:00:00Z`,
  ...(opened ? { last_opened_at: `2026-12-0${opened}T12:00:00Z` } : {}),
});
const list = [nb("beta data", 3), nb("Alpha plots", 1, 4), nb("gamma", 2, 2), nb("Alpha 10", 5), nb("Alpha 9", 4)];
const titles = (xs) => xs.map((x) => x.title);

test("search matches every word of the title, ignoring case", () => {
  assert.deepEqual(titles(arrange(list, "ALPHA", "title")), ["Alpha 9", "Alpha 10", "Alpha plots"]);
  assert.deepEqual(titles(arrange(list, " plots  alpha ", "title")), ["Alpha plots"]);
  assert.deepEqual(arrange(list, "delta", "title"), []);
  assert.equal(arrange(list, "", "title").length, list.length);
});

test("sorts by title (numbers in order), last edited, last opened", () => {
  assert.deepEqual(titles(arrange(list, "", "title")), ["Alpha 9", "Alpha 10", "Alpha plots", "beta data", "gamma"]);
  assert.deepEqual(titles(arrange(list, "", "edited")), ["Alpha 10", "Alpha 9", "beta data", "gamma", "Alpha plots"]);
  // Opened ones first (latest first), then the never-opened by last edit.
  assert.deepEqual(titles(arrange(list, "", "opened")), ["Alpha plots", "gamma", "Alpha 10", "Alpha 9", "beta data"]);
});

test("arranging leaves the list it was given alone", () => {
  const copy = [...list];
  arrange(list, "a", "title");
  assert.deepEqual(list, copy);
});
