// The inputs of a code cell's `# @param` form (parsed by forms.ts), shown beside its code.
// Changing an input edits the cell's Y.Text for everyone: only the characters of the value's
// literal that change are deleted and inserted, so concurrent edits elsewhere in the cell
// survive. Anyone's edit to those lines updates the inputs live (the source is re-parsed on
// every change); viewers see the inputs disabled.

import * as Y from "yjs";
import { h } from "../dom";
import { editFor, FormField, formShape, parseForm, ParamField, Value } from "./forms";
import { renderMarkdown } from "./markdown";

export class FormView {
  readonly el: HTMLElement;
  private shape = "";
  /** The input of each param field, by its index among the form's params. */
  private inputs: { field: ParamField; set: (value: Value) => void; focused: () => boolean }[] = [];

  constructor(
    private readonly source: Y.Text,
    private readonly readOnly: boolean,
  ) {
    this.el = h("div.cell-form", { "data-testid": "cell-form", hidden: true });
    this.update();
  }

  /** The source changed (anyone's edit): rebuild when the fields changed, else refresh values. */
  update() {
    const fields = parseForm(this.source.toString());
    const shape = formShape(fields);
    if (shape !== this.shape) {
      this.shape = shape;
      this.build(fields);
    }
    const params = fields.filter((f): f is ParamField => f.kind === "param");
    params.forEach((field, index) => {
      const input = this.inputs[index];
      if (!input) return;
      input.field = field;
      // Leave what someone is typing alone; their own edit produced this source anyway.
      if (!input.focused() || field.control === "slider" || field.control === "boolean") input.set(field.value);
    });
    this.el.closest(".cell")?.classList.toggle("has-form", !this.el.hidden);
  }

  private build(fields: FormField[]) {
    this.inputs = [];
    // A bare `# @title` (no text) shows nothing; a title without params shows as a title
    // above the code, not as an empty form box beside it.
    fields = fields.filter((f) => !(f.kind === "title" && !f.text));
    const titleOnly = fields.length > 0 && !fields.some((f) => f.kind === "param");
    this.el.classList.toggle("title-only", titleOnly);
    this.el.parentElement?.classList.toggle("title-only", titleOnly && !this.el.hidden);
    this.el.hidden = fields.length === 0;
    const counts = new Map<string, number>();
    this.el.replaceChildren(
      ...fields.map((field) => {
        if (field.kind !== "param") {
          if (field.kind === "title") return h("div.form-title", {}, field.text);
          const box = h("div.form-markdown.markdown");
          renderMarkdown(field.text, box, undefined);
          return box;
        }
        const occurrence = counts.get(field.name) ?? 0;
        counts.set(field.name, occurrence + 1);
        return this.param(field, occurrence);
      }),
    );
  }

  private param(field: ParamField, occurrence: number): HTMLElement {
    const commit = (value: Value) => this.write(field.name, value, occurrence);
    const attrs = { "data-testid": "form-input", "data-param": field.name, disabled: this.readOnly };
    let control: HTMLElement;
    let set: (value: Value) => void;
    let input: HTMLInputElement | HTMLSelectElement;
    switch (field.control) {
      case "slider": {
        const range = h("input", { ...attrs, type: "range", min: field.min ?? 0, max: field.max ?? 100, step: field.step ?? 1 });
        const shown = h("span.form-value", { "data-testid": "form-value" });
        range.addEventListener("input", () => {
          shown.textContent = range.value;
          commit(Number(range.value));
        });
        set = (value) => {
          range.value = String(value);
          shown.textContent = String(value);
        };
        input = range;
        control = h("span.form-slider", {}, range, shown);
        break;
      }
      case "boolean": {
        const box = h("input", { ...attrs, type: "checkbox" });
        box.addEventListener("change", () => commit(box.checked));
        set = (value) => (box.checked = value === true);
        input = control = box;
        break;
      }
      case "dropdown": {
        const options = (field.options ?? []).map((o) => h("option", { value: String(o) }, String(o)));
        if (field.allowInput) {
          const listId = `form-options-${Math.random().toString(36).slice(2)}`;
          const text = h("input", { ...attrs, type: "text", list: listId });
          text.addEventListener("input", () => commit(this.option(field, text.value)));
          set = (value) => (text.value = String(value));
          input = text;
          control = h("span", {}, text, h("datalist", { id: listId }, options));
        } else {
          const select = h("select", attrs, options);
          select.addEventListener("change", () => commit(this.option(field, select.value)));
          set = (value) => (select.value = String(value));
          input = control = select;
        }
        break;
      }
      default: {
        const numeric = field.control === "number" || field.control === "integer";
        const type = numeric ? "number" : field.control === "date" ? "date" : "text";
        const text = h("input", { ...attrs, type, step: field.control === "integer" ? 1 : numeric ? "any" : null });
        // Numbers on change (a half-typed "1." is not one yet); text as it is typed.
        text.addEventListener(numeric ? "change" : "input", () => {
          if (numeric && (text.value === "" || !Number.isFinite(Number(text.value)))) return;
          commit(numeric ? Number(text.value) : text.value);
        });
        set = (value) => (text.value = String(value));
        input = text;
        control = text;
      }
    }
    set(field.value);
    this.inputs.push({ field, set, focused: () => document.activeElement === input });
    return h("label.form-field", {}, h("span.form-name", {}, field.name), control);
  }

  /** A dropdown choice back as the type it was declared with (numbers stay numbers). */
  private option(field: ParamField, chosen: string): Value {
    const match = (field.options ?? []).find((o) => String(o) === chosen);
    return match ?? chosen;
  }

  /** Replaces the literal of param `name` in the Y.Text, changing as few characters as possible. */
  private write(name: string, value: Value, occurrence: number) {
    if (this.readOnly) return;
    const edit = editFor(this.source.toString(), name, value, occurrence);
    if (!edit) return;
    const doc = this.source.doc;
    const apply = () => {
      if (edit.remove) this.source.delete(edit.from, edit.remove);
      if (edit.insert) this.source.insert(edit.from, edit.insert);
    };
    if (doc) doc.transact(apply);
    else apply();
  }
}
