// `input()` under a cell, as in Colab: while the runtime says the cell waits for input
// (`state.kernel.input`), the person who ran it gets a field with the prompt; Enter sends the
// line (`POST …/input`, which the server accepts only from them). Everyone else sees that it
// waits, and for whom. The field goes when the runtime clears the request (answered,
// interrupted, or the cell ended).

import { api } from "../api";
import { h, toast } from "../dom";
import type { InputPrompt } from "../generated/kernel";
import type { KernelState } from "./doc";

/** `state.kernel.input`, as the runtime writes it. */
/** `state.kernel.input` (generated from the Rust type). */
export type InputRequest = InputPrompt;

export function inputRequest(kernel: KernelState): InputRequest | null {
  const input = kernel.input;
  return input && typeof input.cell === "string" ? input : null;
}

export class StdinView {
  readonly el = h("div.cell-stdin", { hidden: true, "data-testid": "stdin" });
  /** The request shown (a new one, even with the same prompt, gets a fresh field). */
  private shown: string | null = null;

  constructor(
    private readonly notebookId: string,
    private readonly cellId: string,
  ) {}

  update(kernel: KernelState, meId: string | null) {
    const request = inputRequest(kernel);
    const mine = request?.cell === this.cellId ? request : null;
    const key = mine ? JSON.stringify(mine) : null;
    if (key === this.shown) return;
    this.shown = key;
    this.el.hidden = !mine;
    this.el.classList.remove("waiting");
    if (!mine) {
      this.el.replaceChildren();
      return;
    }
    const answerable = !mine.by || mine.by.id === meId;
    if (!answerable) {
      this.el.classList.add("waiting");
      this.el.replaceChildren(`Waiting for input from ${mine.by?.name || "whoever ran it"}: ${mine.prompt}`);
      return;
    }
    const field = h("input", {
      type: mine.password ? "password" : "text",
      "aria-label": mine.prompt || "Input",
      autocomplete: "off",
      spellcheck: "false",
      "data-testid": "stdin-input",
    });
    field.addEventListener("keydown", (event) => {
      // Keys typed here belong to the field, not to the notebook's command mode.
      event.stopPropagation();
      if (event.key !== "Enter") return;
      event.preventDefault();
      field.disabled = true;
      api.input(this.notebookId, field.value).catch((error: Error) => {
        field.disabled = false;
        toast(`Could not send the input: ${error.message}`);
      });
    });
    this.el.replaceChildren(h("span.prompt", {}, mine.prompt), field);
    // The person who ran it types next, as in a terminal.
    requestAnimationFrame(() => {
      if (field.isConnected) field.focus();
    });
  }
}
