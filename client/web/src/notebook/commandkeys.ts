// Colab's keyboard habits: `Ctrl+M` then a letter (Ctrl+M B inserts a code cell below, …),
// anywhere on the page, in an editor or not; plus Ctrl+Shift+P (command palette), Ctrl+H
// (find and replace in the notebook) and Ctrl+F8/F9/F10 (run before / all / after).
//
// The keys are caught on the window in the capture phase, before CodeMirror sees them, and
// the chord's second key is swallowed, so `Ctrl+M B` never types a "b" into the code.

import { Commands } from "./commands";

/** `Ctrl+M` followed by this key runs this command. */
export const CHORDS: Record<string, string> = {
  a: "insert.code-above",
  b: "insert.code-below",
  d: "edit.delete-cell",
  m: "edit.to-markdown",
  y: "edit.to-code",
  r: "edit.to-raw",
  k: "edit.move-up",
  j: "edit.move-down",
  n: "view.next-cell",
  p: "view.previous-cell",
  h: "help.shortcuts",
  l: "view.line-numbers",
  o: "view.toggle-output",
  i: "runtime.interrupt",
  ".": "runtime.restart",
  z: "edit.undo-delete",
};

/** Other shortcuts: a key (with its modifiers, as `keyName`) and its command. */
export const SHORTCUTS: Record<string, string> = {
  "Ctrl+Shift+P": "help.palette",
  "Ctrl+H": "edit.find",
  "Ctrl+F9": "runtime.run-all",
  "Ctrl+F8": "runtime.run-before",
  "Ctrl+F10": "runtime.run-after",
};

/** "Ctrl+Shift+P" for a key event (Cmd counts as Ctrl, as on a Mac in Colab). */
export function keyName(e: KeyboardEvent): string {
  const parts: string[] = [];
  if (e.ctrlKey || e.metaKey) parts.push("Ctrl");
  if (e.altKey) parts.push("Alt");
  if (e.shiftKey) parts.push("Shift");
  const key = e.key.length === 1 ? e.key.toUpperCase() : e.key;
  parts.push(key);
  return parts.join("+");
}

/** Listens for the page's shortcuts until the page goes. */
export function installCommandKeys(commands: Commands) {
  let chord = false;
  window.addEventListener(
    "keydown",
    (e) => {
      if (e.isComposing || e.key === "Control" || e.key === "Shift" || e.key === "Alt" || e.key === "Meta") return;
      if (chord) {
        chord = false;
        document.body.classList.remove("chord-pending");
        const id = CHORDS[e.key.toLowerCase()];
        // Whatever follows Ctrl+M is the chord's, never text in a cell.
        e.preventDefault();
        e.stopPropagation();
        if (id) commands.run(id);
        return;
      }
      // Inside a dialog (share, history, palette) only its own keys count.
      if ((e.target as HTMLElement | null)?.closest?.("dialog")) return;
      const name = keyName(e);
      if (name === "Ctrl+M") {
        chord = true;
        document.body.classList.add("chord-pending");
        e.preventDefault();
        e.stopPropagation();
        return;
      }
      const id = SHORTCUTS[name];
      if (!id) return;
      e.preventDefault();
      e.stopPropagation();
      commands.run(id);
    },
    true,
  );
}

/** The shortcut shown for a command ("Ctrl+M B"), from the tables above. */
export function shortcutOf(id: string): string | undefined {
  const chord = Object.entries(CHORDS).find(([, command]) => command === id);
  if (chord) return `Ctrl+M ${chord[0].toUpperCase()}`;
  return Object.entries(SHORTCUTS).find(([, command]) => command === id)?.[0];
}
