// The command palette (Ctrl+Shift+P: type to filter every menu command, Enter runs it) and
// the keyboard shortcut sheet (Ctrl+M H), both built from the page's commands.

import { h } from "../dom";
import { Command, Commands, MENUS } from "./commands";

function dialog(cls: string, label: string, testid: string): HTMLDialogElement {
  const el = h(`dialog.${cls}`, { "aria-label": label, "data-testid": testid });
  el.addEventListener("close", () => el.remove());
  el.addEventListener("mousedown", (e) => {
    // A click on the backdrop (the dialog element itself, outside its box) closes it.
    if (e.target === el) el.close();
  });
  document.body.appendChild(el);
  return el;
}

const menuLabel = (command: Command) => MENUS.find((m) => m.name === command.menu)?.label ?? command.menu;

export function openPalette(commands: Commands, restoreFocus: () => void) {
  document.querySelector<HTMLDialogElement>("dialog.palette")?.close();
  const el = dialog("palette", "Command palette", "palette");
  const input = h("input.palette-input", { type: "text", placeholder: "Search commands", "aria-label": "Search commands", "data-testid": "palette-input", autocomplete: "off" });
  const list = h("ul.palette-list", { role: "listbox", "aria-label": "Commands" });
  let shown: Command[] = [];
  let active = 0;
  const render = () => {
    const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
    shown = commands.visible().filter((c) => {
      const text = `${menuLabel(c)} ${c.label} ${c.keys ?? ""}`.toLowerCase();
      return words.every((w) => text.includes(w));
    });
    active = Math.min(active, Math.max(0, shown.length - 1));
    list.replaceChildren(
      ...shown.map((c, i) =>
        h(
          "li.palette-item",
          {
            role: "option",
            "aria-selected": String(i === active),
            "aria-disabled": commands.isEnabled(c) ? null : "true",
            "data-command": c.id,
            onmousedown: (e: Event) => {
              e.preventDefault();
              choose(c);
            },
          },
          h("span.palette-menu", {}, menuLabel(c)),
          h("span.palette-label", {}, c.label),
          c.keys ? h("kbd.palette-keys", {}, c.keys) : null,
        ),
      ),
      ...(shown.length ? [] : [h("li.muted.palette-empty", {}, "No command matches")]),
    );
    list.querySelector("[aria-selected='true']")?.scrollIntoView({ block: "nearest" });
  };
  const choose = (command: Command) => {
    if (!commands.isEnabled(command)) return;
    el.close();
    restoreFocus();
    if (command.download) {
      const { href, filename } = command.download();
      const link = h("a", { href, download: filename });
      document.body.appendChild(link);
      link.click();
      link.remove();
    } else {
      command.run();
    }
  };
  input.addEventListener("input", () => {
    active = 0;
    render();
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      active = (active + (e.key === "ArrowDown" ? 1 : -1) + shown.length) % Math.max(1, shown.length);
      render();
    } else if (e.key === "Enter") {
      const command = shown[active];
      if (command) choose(command);
    } else {
      return;
    }
    e.preventDefault();
  });
  el.append(input, list);
  render();
  el.showModal();
  input.focus();
}

/** Shortcuts that are not menu commands (editing and command mode), for the sheet. */
const OTHER_KEYS: [string, string][] = [
  ["Shift+Enter", "Run the cell and select the next one"],
  ["Ctrl+Enter", "Run the cell"],
  ["Alt+Enter", "Run the cell and insert a cell below"],
  ["Esc", "Leave the editor (command mode)"],
  ["Enter", "Edit the selected cell"],
  ["↑ ↓ / K J", "Select the cell above / below (command mode)"],
  ["A / B", "Insert a code cell above / below (command mode)"],
  ["D D", "Delete the selected cell (command mode)"],
  ["M / Y", "Make the cell markdown / code (command mode)"],
  ["Ctrl+F", "Find and replace in the cell being edited"],
  ["Ctrl+Z / Ctrl+Shift+Z", "Undo / redo your own typing in the cell"],
];

export function openShortcutSheet(commands: Commands, restoreFocus: () => void) {
  document.querySelector<HTMLDialogElement>("dialog.shortcut-sheet")?.close();
  const el = dialog("shortcut-sheet", "Keyboard shortcuts", "shortcut-sheet");
  const row = (keys: string, what: string) => h("tr", {}, h("td", {}, h("kbd", {}, keys)), h("td", {}, what));
  const commandRows = commands
    .visible()
    .filter((c) => c.keys)
    .flatMap((c) => [row(c.keys ?? "", c.label), ...(c.moreKeys ?? []).map((k) => row(k, c.label))]);
  const close = h("button", { onclick: () => el.close(), "data-testid": "shortcut-sheet-close" }, "Close");
  el.append(
    h("div.sheet-head", {}, h("h2", {}, "Keyboard shortcuts"), close),
    h(
      "div.sheet-body",
      {},
      h("table.sheet-table", {}, h("caption", {}, "Commands"), h("tbody", {}, ...commandRows)),
      h("table.sheet-table", {}, h("caption", {}, "Editing"), h("tbody", {}, ...OTHER_KEYS.map(([k, w]) => row(k, w)))),
    ),
  );
  el.addEventListener("close", restoreFocus);
  el.showModal();
  close.focus();
}
