// Unit tests of the notebook page's shell logic that needs no browser: headings and sections
// (src/notebook/toc.ts), the command list (commands.ts) and the shortcuts (commandkeys.ts).
// Run by `npm test`; the page itself is tested in Chromium by e2e/page.e2e.mjs.
import assert from "node:assert/strict";
import { test } from "node:test";
import { headingsOf, hiddenBy } from "../src/notebook/toc.ts";
import { Commands } from "../src/notebook/commands.ts";
import { CHORDS, keyName, shortcutOf } from "../src/notebook/commandkeys.ts";

test("headings: ATX headings outside code fences, inline marks dropped", () => {
  const source = [
    "# Title with *emphasis* and `code`",
    "text",
    "```python",
    "# not a heading (a comment in a fence)",
    "```",
    "## [Linked](https://example.com) part ##",
    "####### seven is not a heading",
    "#no space is not one either",
    "~~~",
    "# fenced too",
    "~~~",
    "### $x^2$ math",
  ].join("\n");
  assert.deepEqual(headingsOf(source), [
    { level: 1, text: "Title with emphasis and code" },
    { level: 2, text: "Linked part" },
    { level: 3, text: "x^2 math" },
  ]);
});

test("sections: a collapsed heading hides the cells down to the next heading of its level or higher", () => {
  const cells = [
    { id: "h1", level: 1 },
    { id: "a", level: null },
    { id: "h2", level: 2 },
    { id: "b", level: null },
    { id: "h1b", level: 1 },
    { id: "c", level: null },
  ];
  assert.deepEqual([...hiddenBy(cells, new Set(["h1"]))], [["a", "h1"], ["h2", "h1"], ["b", "h1"]]);
  assert.deepEqual([...hiddenBy(cells, new Set(["h2"]))], [["b", "h2"]]);
  // The outer fold wins over an inner one inside it.
  assert.deepEqual([...hiddenBy(cells, new Set(["h1", "h2"])).values()], ["h1", "h1", "h1"]);
  assert.equal(hiddenBy(cells, new Set(["a"])).size, 0, "a cell that is no heading folds nothing");
});

test("commands: order, insertion after a slot, enabled and hidden", () => {
  const commands = new Commands();
  let ran = [];
  let online = false;
  commands.add({ id: "file.new", label: "New", menu: "file", run: () => ran.push("new") });
  commands.add({ id: "file.upload", label: "Upload", menu: "file", run: () => ran.push("upload") });
  commands.add({ id: "file.download", label: "Download", menu: "file", run: () => ran.push("download") });
  commands.add({ id: "file.copy", label: "Make a copy", menu: "file", run: () => ran.push("copy") }, { after: "file.upload" });
  commands.add({ id: "runtime.run-all", label: "Run all", menu: "runtime", run: () => ran.push("run"), enabled: () => online });
  commands.add({ id: "edit.secret", label: "Hidden", menu: "edit", run: () => ran.push("hidden"), hidden: () => true });
  assert.deepEqual(commands.visible("file").map((c) => c.id), ["file.new", "file.upload", "file.copy", "file.download"]);
  assert.equal(commands.visible().length, 5, "hidden commands are not offered");
  assert.equal(commands.run("runtime.run-all"), false, "a disabled command does not run");
  online = true;
  assert.equal(commands.run("runtime.run-all"), true);
  assert.equal(commands.run("edit.secret"), false);
  assert.equal(commands.run("nope"), false);
  assert.deepEqual(ran, ["run"]);
});

test("shortcuts: Colab's Ctrl+M chords and the key names", () => {
  assert.equal(shortcutOf("insert.code-below"), "Ctrl+M B");
  assert.equal(shortcutOf("runtime.restart"), "Ctrl+M .");
  assert.equal(shortcutOf("help.palette"), "Ctrl+Shift+P");
  assert.equal(shortcutOf("file.history"), undefined);
  for (const key of ["a", "b", "d", "m", "y", "h", "l", "i", ".", "z"]) assert.ok(CHORDS[key], `Ctrl+M ${key}`);
  const event = (key, mods = {}) => ({ key, ctrlKey: false, metaKey: false, altKey: false, shiftKey: false, ...mods });
  assert.equal(keyName(event("m", { ctrlKey: true })), "Ctrl+M");
  assert.equal(keyName(event("P", { ctrlKey: true, shiftKey: true })), "Ctrl+Shift+P");
  assert.equal(keyName(event("m", { metaKey: true })), "Ctrl+M", "Cmd counts as Ctrl");
  assert.equal(keyName(event("F9", { ctrlKey: true })), "Ctrl+F9");
});
