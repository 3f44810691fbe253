// Whose runtime it is. A kernel runs for the person who started it, its holder: `drive/` in
// it is their Drive, and what their cells read (secrets they granted to this notebook) stays
// in its memory. The runtime writes the holder to `state.kernel.holder` (`{id, name}`) while
// the kernel lives. The page shows it beside the kernel status ("Runtime: Ada", or "Runtime:
// you"), and the first time someone runs code in another person's runtime (per notebook and
// holder, in this browser) it says what that means and asks before running.
//
// The owner may turn "Editors may run code in my runtime" off in the share dialog; then the
// server refuses such runs with 403 `runtime_not_shared`, and the page shows its message
// (no notice first: the run would not happen).

import { api, Me } from "../api";
import { h } from "../dom";
import type { KernelState, Person } from "./doc";

/** `state.kernel.holder` (generated from the Rust type). */
export type Holder = Person;

/** The holder of the running kernel; none when no kernel runs (or the runtime wrote none). */
export function holderOf(kernel: KernelState): Holder | null {
  if (!["starting", "idle", "busy"].includes(kernel.status)) return null;
  const holder = kernel.holder;
  if (!holder || typeof holder.id !== "string" || !holder.id) return null;
  return { id: holder.id, name: typeof holder.name === "string" && holder.name ? holder.name : "someone" };
}

/** "Runtime: you" or "Runtime: Ada Lovelace"; empty when no kernel runs. */
export function holderLabel(kernel: KernelState, meId: string | null): string {
  const holder = holderOf(kernel);
  if (!holder) return "";
  return `Runtime: ${holder.id === meId ? "you" : holder.name}`;
}

/** The tooltip of the label: what running code here means. */
export function holderTitle(kernel: KernelState, meId: string | null): string {
  const holder = holderOf(kernel);
  if (!holder) return "";
  if (holder.id === meId) {
    return "The kernel runs as your runtime: code anyone runs here can read your Drive (drive/) and the secrets you granted to this notebook.";
  }
  return `The kernel runs as ${holder.name}'s runtime: code run here can read ${holder.name}'s Drive (drive/) and the secrets ${holder.name} granted to this notebook.`;
}

/** The localStorage key that remembers that `meId` was told about `holderId`'s runtime here. */
export function noticeKey(notebookId: string, holderId: string, meId: string): string {
  return `tandem.runtime-notice.${notebookId}.${holderId}.${meId}`;
}

/**
 * Whether running code now needs the notice first: a signed-in person about to run in a
 * runtime someone else holds, who has not been told about it in this notebook yet.
 */
export function needsNotice(notebookId: string, kernel: KernelState, meId: string | null, seen: (key: string) => boolean): Holder | null {
  const holder = holderOf(kernel);
  if (!meId || !holder || holder.id === meId) return null;
  return seen(noticeKey(notebookId, holder.id, meId)) ? null : holder;
}

function seenInStorage(key: string): boolean {
  try {
    return localStorage.getItem(key) !== null;
  } catch {
    return false; // Storage disabled: ask each time.
  }
}

function remember(key: string) {
  try {
    localStorage.setItem(key, String(Date.now()));
  } catch {
    // Storage disabled or full: the notice shows again next time, which is safe.
  }
}

/**
 * Before `me` runs code: when the kernel is someone else's and this is the first run in it,
 * says what that means (Continue / Cancel). Resolves whether to run.
 */
export async function confirmRun(notebookId: string, kernel: KernelState, me: Me | null): Promise<boolean> {
  const holder = needsNotice(notebookId, kernel, me?.id ?? null, seenInStorage);
  if (!holder || !me) return true;
  // When the owner keeps runtimes private, the server refuses the run and says why.
  try {
    const sharing = await api.sharing(notebookId);
    if (sharing.editors_may_run === false) return true;
  } catch {
    // Could not tell: tell the person, to be safe.
  }
  const go = await noticeDialog(holder);
  if (go) remember(noticeKey(notebookId, holder.id, me.id));
  return go;
}

/** The notice itself, a modal dialog; resolves true on Continue. */
function noticeDialog(holder: Holder): Promise<boolean> {
  return new Promise((resolve) => {
    const name = holder.name;
    const dialog = h("dialog.runtime-notice", { "aria-label": `${name}'s runtime`, "data-testid": "runtime-notice" });
    const finish = (go: boolean) => {
      dialog.close();
      dialog.remove();
      resolve(go);
    };
    const proceed = h("button.primary", { onclick: () => finish(true), "data-testid": "runtime-notice-continue" }, "Continue");
    dialog.append(
      h("h2", {}, `You are about to run code in ${name}'s runtime`),
      h("p", {}, `${name} started this notebook's runtime, so your code runs as ${name}'s runtime:`),
      h(
        "ul",
        {},
        h("li", {}, "it can read and change ", h("b", {}, `${name}'s Drive`), " (the ", h("code", {}, "drive/"), " folder);"),
        h("li", {}, "it can read ", h("b", {}, `the secrets ${name} granted to this notebook`), " (values ", name, "'s cells read stay in the kernel's memory);"),
        h("li", {}, "what it leaves in the kernel stays there for everyone who runs code in it."),
      ),
      h("p.muted", {}, "Run only code you would run with their files and keys. You will not be asked again for this runtime in this notebook."),
      h(
        "div.dialog-actions",
        {},
        h("button", { onclick: () => finish(false), "data-testid": "runtime-notice-cancel" }, "Cancel"),
        proceed,
      ),
    );
    dialog.addEventListener("cancel", (e) => {
      e.preventDefault();
      finish(false);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    proceed.focus();
  });
}
