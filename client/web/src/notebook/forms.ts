// Colab's forms: `# @param` annotations in code cells, parsed into form fields. Pure
// functions only (no DOM, no Yjs), so node can test them (test/forms.test.mjs); the inputs are
// built by formview.ts.
//
//   x = 5  # @param {type:"slider", min:0, max:10, step:1}
//   name = "a"  # @param {type:"string"}
//   flag = True  # @param {type:"boolean"}
//   n = 3  # @param {type:"number"}          (also "integer", "date", "raw")
//   opt = "a"  # @param ["a", "b", "c"]      (a dropdown; `{allow-input: true}` after it
//                                            lets people type other values)
//   # @title Some title
//   # @markdown Some *markdown* text
//
// Offsets are UTF-16 code units, as JavaScript strings and Y.Text count them.

export type Control = "slider" | "string" | "number" | "integer" | "boolean" | "dropdown" | "date" | "raw";

export type Value = string | number | boolean;

export interface ParamField {
  kind: "param";
  /** The variable assigned on that line. */
  name: string;
  /** 0-based line number. */
  line: number;
  /** Where the value's literal is in the source: [from, to). */
  from: number;
  to: number;
  /** The literal as written (`"a"`, `5`, `True`). */
  literal: string;
  /** The literal's value; a string holding the literal itself when it is not a plain literal. */
  value: Value;
  control: Control;
  min?: number;
  max?: number;
  step?: number;
  /** A dropdown's choices. */
  options?: Value[];
  /** A dropdown that also takes typed values. */
  allowInput?: boolean;
}

export interface TextField {
  kind: "title" | "markdown";
  line: number;
  text: string;
}

export type FormField = ParamField | TextField;

const PARAM = /^([ \t]*)([A-Za-z_][A-Za-z0-9_]*)([ \t]*(?::[^=#]*)?=[ \t]*)(.*?)[ \t]*#[ \t]*@param\b[ \t]*(.*)$/;
const TITLE = /^[ \t]*#[ \t]*@title\b[ \t]?(.*)$/;
const MARKDOWN = /^[ \t]*#[ \t]*@markdown\b[ \t]?(.*)$/;

/** The form fields of a cell's source, in line order. */
export function parseForm(source: string): FormField[] {
  const fields: FormField[] = [];
  let offset = 0;
  source.split("\n").forEach((text, line) => {
    const start = offset;
    offset += text.length + 1;
    let match = TITLE.exec(text);
    if (match) return void fields.push({ kind: "title", line, text: stripSpec(match[1]) });
    match = MARKDOWN.exec(text);
    if (match) return void fields.push({ kind: "markdown", line, text: match[1] });
    match = PARAM.exec(text);
    if (!match) return;
    const [, indent, name, assign, literal, spec] = match;
    const from = start + indent.length + name.length + assign.length;
    const field = paramField(name, line, from, literal, spec);
    if (field) fields.push(field);
  });
  return fields;
}

/** Colab titles may carry display options (`# @title T { display-mode: "form" }`). */
function stripSpec(text: string): string {
  return text.replace(/\s*\{[^}]*\}\s*$/, "").trim();
}

function paramField(name: string, line: number, from: number, literal: string, spec: string): ParamField | null {
  const value = parseLiteral(literal);
  const base = { kind: "param" as const, name, line, from, to: from + literal.length, literal, value };
  spec = spec.trim();
  if (spec.startsWith("[")) {
    const end = closingBracket(spec);
    const options = end < 0 ? null : parseLoose(spec.slice(0, end + 1));
    if (!Array.isArray(options)) return null;
    const rest = parseLoose(spec.slice(end + 1).trim() || "{}");
    const allowInput = isObject(rest) && rest["allow-input"] === true;
    return { ...base, control: "dropdown", options: options.filter(isValue), allowInput };
  }
  const options = spec ? parseLoose(spec) : {};
  if (!isObject(options)) return null;
  const type = typeof options.type === "string" ? options.type : inferType(value, literal);
  const number = (key: string) => (typeof options[key] === "number" ? (options[key] as number) : undefined);
  switch (type) {
    case "slider":
      return { ...base, control: "slider", min: number("min") ?? 0, max: number("max") ?? 100, step: number("step") ?? 1 };
    case "string":
    case "number":
    case "integer":
    case "boolean":
    case "date":
    case "raw":
      return { ...base, control: type };
    default:
      return { ...base, control: "raw" };
  }
}

function inferType(value: Value, literal: string): Control {
  if (typeof value === "boolean") return "boolean";
  if (typeof value === "number") return "number";
  return isStringLiteral(literal) ? "string" : "raw";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isValue(value: unknown): value is Value {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean";
}

function closingBracket(text: string): number {
  let depth = 0;
  let quote = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[") depth++;
    else if (c === "]" && --depth === 0) return i;
  }
  return -1;
}

/**
 * Colab's option syntax is JavaScript-like: unquoted keys (`allow-input` too), single or
 * double quotes, Python's True/False. Returns undefined when it does not parse.
 */
export function parseLoose(text: string): unknown {
  let out = "";
  for (let i = 0; i < text.length; ) {
    const c = text[i];
    if (c === '"' || c === "'") {
      const [value, end] = readString(text, i);
      if (end < 0) return undefined;
      out += JSON.stringify(value);
      i = end;
      continue;
    }
    const word = /^[A-Za-z_][\w-]*/.exec(text.slice(i));
    if (word) {
      const after = text.slice(i + word[0].length).trimStart();
      if (after.startsWith(":")) out += JSON.stringify(word[0]);
      else if (word[0] === "True" || word[0] === "true") out += "true";
      else if (word[0] === "False" || word[0] === "false") out += "false";
      else if (word[0] === "None" || word[0] === "null") out += "null";
      else return undefined;
      i += word[0].length;
      continue;
    }
    out += c;
    i++;
  }
  try {
    return JSON.parse(out);
  } catch {
    return undefined;
  }
}

/** Reads a quoted string starting at `start`: its value and the index after it (-1: unclosed). */
function readString(text: string, start: number): [string, number] {
  const quote = text[start];
  let value = "";
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i];
    if (c === quote) return [value, i + 1];
    if (c === "\\" && i + 1 < text.length) {
      const next = text[++i];
      value += next === "n" ? "\n" : next === "t" ? "\t" : next;
    } else value += c;
  }
  return ["", -1];
}

function isStringLiteral(literal: string): boolean {
  const match = /^([rRbBuU]?)(["'])/.exec(literal);
  if (!match) return false;
  const [value, end] = readString(literal, match[1].length);
  return end === literal.length && value !== undefined;
}

/** The value of a Python literal; the literal itself when it is something else. */
export function parseLiteral(literal: string): Value {
  const text = literal.trim();
  if (text === "True") return true;
  if (text === "False") return false;
  if (/^[-+]?(\d[\d_]*\.?\d*([eE][-+]?\d+)?|\.\d+([eE][-+]?\d+)?)$/.test(text)) {
    const number = Number(text.replace(/_/g, ""));
    if (Number.isFinite(number)) return number;
  }
  if (isStringLiteral(text)) {
    const prefix = /^[rRbBuU]?/.exec(text)?.[0] ?? "";
    return prefix.toLowerCase() === "r" ? text.slice(2, -1) : readString(text, prefix.length)[0];
  }
  return text;
}

/** The literal to write for `value` in `field` (keeping the quote style it had). */
export function formatLiteral(field: ParamField, value: Value): string {
  if (field.control === "raw") return String(value);
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "number") {
    if (field.control === "integer") return String(Math.trunc(value));
    return String(value);
  }
  if (field.control === "number" || field.control === "slider") {
    const number = Number(value);
    return value.trim() !== "" && Number.isFinite(number) ? String(number) : field.literal;
  }
  const quote = field.literal.trim().startsWith("'") ? "'" : '"';
  const escaped = value
    .replace(/\\/g, "\\\\")
    .replace(/\n/g, "\\n")
    .replace(new RegExp(quote, "g"), `\\${quote}`);
  return `${quote}${escaped}${quote}`;
}

/** A minimal text edit: replace `[from, from + remove)` with `insert`. */
export interface TextEdit {
  from: number;
  remove: number;
  insert: string;
}

/**
 * The edit that sets the param `name` (its `occurrence`-th field of that name) to `value` in
 * `source`, touching only the characters of its literal that change, so that concurrent
 * edits elsewhere in the cell (even on the same line) survive. Null when nothing changes or
 * the field is gone.
 */
export function editFor(source: string, name: string, value: Value, occurrence = 0): TextEdit | null {
  const field = parseForm(source).filter((f): f is ParamField => f.kind === "param" && f.name === name)[occurrence];
  if (!field) return null;
  const next = formatLiteral(field, value);
  const old = field.literal;
  if (next === old) return null;
  let prefix = 0;
  while (prefix < old.length && prefix < next.length && old[prefix] === next[prefix]) prefix++;
  let suffix = 0;
  while (
    suffix < old.length - prefix &&
    suffix < next.length - prefix &&
    old[old.length - 1 - suffix] === next[next.length - 1 - suffix]
  )
    suffix++;
  return {
    from: field.from + prefix,
    remove: old.length - prefix - suffix,
    insert: next.slice(prefix, next.length - suffix),
  };
}

/** Applies an edit to a string (what the Y.Text edit does to the document). */
export function applyEdit(source: string, edit: TextEdit): string {
  return source.slice(0, edit.from) + edit.insert + source.slice(edit.from + edit.remove);
}

/** A key that changes when the form's fields (not their values) change. */
export function formShape(fields: FormField[]): string {
  return JSON.stringify(
    fields.map((f) =>
      f.kind === "param"
        ? [f.kind, f.name, f.control, f.min, f.max, f.step, f.options, f.allowInput]
        : [f.kind, f.text],
    ),
  );
}
