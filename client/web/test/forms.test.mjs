// Unit tests of the `# @param` parser and its edits (src/notebook/forms.ts), run by
// `npm test` (test.mjs bundles them with esbuild, then runs `node --test`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyEdit, editFor, formatLiteral, parseForm, parseLiteral, parseLoose } from "../src/notebook/forms.ts";

const CELL = [
  "# @title Settings { display-mode: \"form\" }",
  "# @markdown Pick *carefully*",
  'x = 5  # @param {type:"slider", min:0, max:10, step:1}',
  'name = "a"  # @param {type:"string"}',
  "flag = True  # @param {type:\"boolean\"}",
  'n = 3  # @param {type:"number"}',
  "opt = 'b'  #@param [\"a\", 'b', \"c\"]",
  'free = "z"  # @param ["x", "y"] {allow-input: true}',
  "k: int = 7  # @param {type:'integer'}",
  "plain = 1.5  # @param",
  "print(x, name)  # not a form",
].join("\n");

test("every field kind parses, in line order", () => {
  const fields = parseForm(CELL);
  assert.deepEqual(
    fields.map((f) => [f.kind, f.kind === "param" ? f.name : f.text, f.kind === "param" ? f.control : null]),
    [
      ["title", "Settings", null],
      ["markdown", "Pick *carefully*", null],
      ["param", "x", "slider"],
      ["param", "name", "string"],
      ["param", "flag", "boolean"],
      ["param", "n", "number"],
      ["param", "opt", "dropdown"],
      ["param", "free", "dropdown"],
      ["param", "k", "integer"],
      ["param", "plain", "number"],
    ],
  );
  const byName = Object.fromEntries(fields.filter((f) => f.kind === "param").map((f) => [f.name, f]));
  assert.deepEqual([byName.x.min, byName.x.max, byName.x.step, byName.x.value], [0, 10, 1, 5]);
  assert.equal(byName.name.value, "a");
  assert.equal(byName.flag.value, true);
  assert.deepEqual(byName.opt.options, ["a", "b", "c"]);
  assert.equal(byName.opt.value, "b");
  assert.equal(byName.opt.allowInput, false);
  assert.equal(byName.free.allowInput, true);
  assert.equal(byName.k.value, 7);
  // The literal's span is exactly the literal.
  for (const f of Object.values(byName)) assert.equal(CELL.slice(f.from, f.to), f.literal);
});

test("literals and loose option syntax", () => {
  assert.equal(parseLiteral("'it\\'s'"), "it's");
  assert.equal(parseLiteral("-2.5e3"), -2500);
  assert.equal(parseLiteral("False"), false);
  assert.equal(parseLiteral("foo(1)"), "foo(1)");
  assert.deepEqual(parseLoose("{type:'slider', min:-1, allow-input: True}"), { type: "slider", min: -1, "allow-input": true });
  assert.equal(parseLoose("{type: slider}"), undefined);
  assert.deepEqual(parseForm("x = 1  # @param {oops"), []);
});

test("an edit replaces only the changed characters of the literal", () => {
  let source = CELL;
  const slider = editFor(source, "x", 7);
  assert.deepEqual(slider, { from: CELL.indexOf("5  # @param"), remove: 1, insert: "7" });
  source = applyEdit(source, slider);
  assert.match(source, /^x = 7  # @param/m);
  // Strings keep their quotes, and are escaped.
  source = applyEdit(source, editFor(source, "name", 'say "hi"'));
  assert.match(source, /^name = "say \\"hi\\""  # @param/m);
  source = applyEdit(source, editFor(source, "opt", "c"));
  assert.match(source, /^opt = 'c'  #@param/m);
  source = applyEdit(source, editFor(source, "flag", false));
  assert.match(source, /^flag = False  # @param/m);
  source = applyEdit(source, editFor(source, "k", 3.9));
  assert.match(source, /^k: int = 3  # @param/m);
  // No change, no edit; unknown names, no edit.
  assert.equal(editFor(source, "k", 3), null);
  assert.equal(editFor(source, "missing", 1), null);
  // Everything but the literals is untouched.
  const strip = (s) => s.replace(/=.*#/g, "=#");
  assert.equal(strip(source), strip(CELL));
});

test("a number field ignores text that is not a number", () => {
  const [field] = parseForm("n = 3  # @param {type:\"number\"}");
  assert.equal(formatLiteral(field, "abc"), "3");
  assert.equal(formatLiteral(field, "4.5"), "4.5");
});
