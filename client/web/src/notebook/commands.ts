// The notebook page's commands: every action of the menus (File, Edit, View, Insert,
// Runtime, Help), with its label, its keyboard shortcut and whether it can run now. The menu
// bar, the command palette (Ctrl+Shift+P), the shortcut sheet (Ctrl+M H) and the keyboard
// (commandkeys.ts) all read this one list, so a command shows the same name and shortcut
// everywhere and is disabled everywhere at once (e.g. Run while offline).

export type MenuName = "file" | "edit" | "view" | "insert" | "runtime" | "help";

export const MENUS: { name: MenuName; label: string }[] = [
  { name: "file", label: "File" },
  { name: "edit", label: "Edit" },
  { name: "view", label: "View" },
  { name: "insert", label: "Insert" },
  { name: "runtime", label: "Runtime" },
  { name: "help", label: "Help" },
];

export interface Command {
  /** Stable id, also the menu item's `data-command`. */
  id: string;
  label: string;
  menu: MenuName;
  /** Items of a menu are grouped; a separator goes between groups. */
  group?: string;
  /** The shortcut as people read it ("Ctrl+M B"), shown in menus, palette and sheet. */
  keys?: string;
  /** More shortcuts, listed on the shortcut sheet only. */
  moreKeys?: string[];
  /** A `data-testid` for the menu item (tests, and the ids older pages had on buttons). */
  testid?: string;
  run: () => void;
  /** Whether it can run now (false: shown disabled). */
  enabled?: () => boolean;
  /** Not offered at all (e.g. editing commands for a viewer). */
  hidden?: () => boolean;
  /** A download: the menu item is a link to this URL with this file name. */
  download?: () => { href: string; filename: string };
  /** A toggle's current state (a check mark in the menu). */
  checked?: () => boolean;
}

/** The page's commands, in menu order. Other modules add theirs with `add`. */
export class Commands {
  private list: Command[] = [];
  private listeners = new Set<() => void>();

  add(command: Command, options: { after?: string } = {}) {
    const existing = this.list.findIndex((c) => c.id === command.id);
    if (existing >= 0) this.list.splice(existing, 1);
    const at = options.after ? this.list.findIndex((c) => c.id === options.after) : -1;
    if (at >= 0) this.list.splice(at + 1, 0, command);
    else this.list.push(command);
    this.changed();
  }

  get(id: string): Command | undefined {
    return this.list.find((c) => c.id === id);
  }

  /** The commands offered to this person (not hidden), in menu order. */
  visible(menu?: MenuName): Command[] {
    return this.list.filter((c) => (!menu || c.menu === menu) && !c.hidden?.());
  }

  isEnabled(command: Command): boolean {
    return command.enabled ? command.enabled() : true;
  }

  /** Runs a command if it is offered and enabled; says whether it ran. */
  run(id: string): boolean {
    const command = this.get(id);
    if (!command || command.hidden?.() || !this.isEnabled(command)) return false;
    command.run();
    return true;
  }

  /** Something a command's `enabled` or `checked` reads changed: menus re-render. */
  changed() {
    for (const listener of this.listeners) listener();
  }

  onChange(listener: () => void) {
    this.listeners.add(listener);
  }
}
