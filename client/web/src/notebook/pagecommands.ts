// The notebook page's commands (menus, palette, shortcuts), each calling the page through
// `PageActions`. Which can run now: editing ones need an editor, running ones a signed-in
// editor and a live connection (offline, the server cannot be asked to run anything).

import { Command, Commands } from "./commands";
import { shortcutOf } from "./commandkeys";
import { lineNumbersShown, setLineNumbers } from "./editorprefs";

export interface PageActions {
  canEdit(): boolean;
  canRun(): boolean;
  signedIn(): boolean;
  online(): boolean;
  hasSelection(): boolean;
  selectionIsCode(): boolean;
  insertCell(where: "above" | "below", type: "code" | "markdown", source?: string): void;
  deleteSelected(): void;
  undoDelete(): void;
  canUndoDelete(): boolean;
  setSelectedType(type: "code" | "markdown" | "raw"): void;
  moveSelected(delta: number): void;
  selectNext(delta: number): void;
  runCells(which: "all" | "before" | "selected" | "after" | "stale"): void;
  interrupt(): void;
  restart(): void;
  changeRuntimeType(): void;
  clearOutputs(which: "selected" | "all"): void;
  toggleSelectedOutput(): void;
  setAllSections(collapse: boolean): void;
  openFind(): void;
  openPalette(): void;
  openShortcuts(): void;
  newNotebook(): void;
  openNotebook(): void;
  uploadNotebook(): void;
  /** A copy of this notebook owned by the person (signed out: sign in first). */
  makeCopy(): void;
  history(): void;
  ipynbDownload(): { href: string; filename: string };
  pyDownload(): { href: string; filename: string };
  /** The side panels this person has (comments for everyone; files and secrets signed in). */
  panels(): { id: string; label: string; open: () => boolean; toggle: () => void }[];
}


export function pageCommands(p: PageActions): Commands {
  const commands = new Commands();
  const add = (command: Omit<Command, "keys"> & { keys?: string }) =>
    commands.add({ ...command, keys: command.keys ?? shortcutOf(command.id) });
  const edit = () => p.canEdit();
  const editSelected = () => p.canEdit() && p.hasSelection();
  const runnable = () => p.canRun() && p.online();

  // File
  add({ id: "file.new", menu: "file", group: "files", label: "New notebook", run: () => p.newNotebook(), hidden: () => !p.signedIn() });
  add({ id: "file.open", menu: "file", group: "files", label: "Open notebook…", run: () => p.openNotebook(), hidden: () => !p.signedIn() });
  add({ id: "file.upload", menu: "file", group: "files", label: "Upload notebook…", run: () => p.uploadNotebook(), hidden: () => !p.signedIn(), testid: "menu-upload" });
  add({ id: "file.copy", menu: "file", group: "files", label: "Make a copy", run: () => p.makeCopy(), testid: "make-copy" });
  add({ id: "file.download-ipynb", menu: "file", group: "download", label: "Download .ipynb", run: () => undefined, download: () => p.ipynbDownload(), testid: "download" });
  add({ id: "file.download-py", menu: "file", group: "download", label: "Download .py", run: () => undefined, download: () => p.pyDownload(), testid: "download-py" });
  add({ id: "file.history", menu: "file", group: "history", label: "Version history", run: () => p.history(), testid: "history-toggle" });

  // Edit
  add({ id: "edit.undo-delete", menu: "edit", group: "undo", label: "Undo cell deletion", run: () => p.undoDelete(), enabled: () => p.canEdit() && p.canUndoDelete(), hidden: () => !edit(), testid: "undo-delete" });
  add({ id: "edit.delete-cell", menu: "edit", group: "cell", label: "Delete cell", run: () => p.deleteSelected(), enabled: editSelected, hidden: () => !edit() });
  add({ id: "edit.move-up", menu: "edit", group: "cell", label: "Move cell up", run: () => p.moveSelected(-1), enabled: editSelected, hidden: () => !edit() });
  add({ id: "edit.move-down", menu: "edit", group: "cell", label: "Move cell down", run: () => p.moveSelected(1), enabled: editSelected, hidden: () => !edit() });
  add({ id: "edit.to-code", menu: "edit", group: "type", label: "Convert to code", run: () => p.setSelectedType("code"), enabled: editSelected, hidden: () => !edit() });
  add({ id: "edit.to-markdown", menu: "edit", group: "type", label: "Convert to text", run: () => p.setSelectedType("markdown"), enabled: editSelected, hidden: () => !edit() });
  add({ id: "edit.to-raw", menu: "edit", group: "type", label: "Convert to raw", run: () => p.setSelectedType("raw"), enabled: editSelected, hidden: () => !edit() });
  add({ id: "edit.find", menu: "edit", group: "find", label: "Find and replace", run: () => p.openFind(), testid: "menu-find" });
  add({ id: "edit.clear-output", menu: "edit", group: "outputs", label: "Clear output", run: () => p.clearOutputs("selected"), enabled: () => edit() && p.selectionIsCode() && p.online(), hidden: () => !edit() });
  add({ id: "edit.clear-all-outputs", menu: "edit", group: "outputs", label: "Clear all outputs", run: () => p.clearOutputs("all"), enabled: () => edit() && p.online(), hidden: () => !edit(), testid: "clear-all-outputs" });

  // View
  for (const panel of p.panels()) {
    add({ id: `view.${panel.id}`, menu: "view", group: "panels", label: panel.label, run: () => panel.toggle(), checked: () => panel.open(), testid: `view-${panel.id}` });
  }
  add({ id: "view.line-numbers", menu: "view", group: "editor", label: "Line numbers", run: () => setLineNumbers(!lineNumbersShown()), checked: () => lineNumbersShown() });
  add({ id: "view.toggle-output", menu: "view", group: "editor", label: "Expand or collapse output", run: () => p.toggleSelectedOutput(), enabled: () => p.selectionIsCode() });
  add({ id: "view.collapse-sections", menu: "view", group: "sections", label: "Collapse all sections", run: () => p.setAllSections(true) });
  add({ id: "view.expand-sections", menu: "view", group: "sections", label: "Expand all sections", run: () => p.setAllSections(false) });
  add({ id: "view.next-cell", menu: "view", group: "move", label: "Next cell", run: () => p.selectNext(1) });
  add({ id: "view.previous-cell", menu: "view", group: "move", label: "Previous cell", run: () => p.selectNext(-1) });

  // Insert
  add({ id: "insert.code-above", menu: "insert", group: "cells", label: "Code cell above", run: () => p.insertCell("above", "code"), enabled: edit, hidden: () => !edit() });
  add({ id: "insert.code-below", menu: "insert", group: "cells", label: "Code cell below", run: () => p.insertCell("below", "code"), enabled: edit, hidden: () => !edit() });
  add({ id: "insert.text-below", menu: "insert", group: "cells", label: "Text cell below", run: () => p.insertCell("below", "markdown"), enabled: edit, hidden: () => !edit() });
  add({ id: "insert.section", menu: "insert", group: "cells", label: "Section header cell", run: () => p.insertCell("below", "markdown", "# Section"), enabled: edit, hidden: () => !edit() });

  // Runtime
  add({ id: "runtime.run-all", menu: "runtime", group: "run", label: "Run all", run: () => p.runCells("all"), enabled: runnable, hidden: () => !p.canRun(), testid: "menu-run-all" });
  add({ id: "runtime.run-before", menu: "runtime", group: "run", label: "Run before", run: () => p.runCells("before"), enabled: () => runnable() && p.hasSelection(), hidden: () => !p.canRun() });
  add({ id: "runtime.run-selected", menu: "runtime", group: "run", label: "Run the selected cell", keys: "Ctrl+Enter", run: () => p.runCells("selected"), enabled: () => runnable() && p.selectionIsCode(), hidden: () => !p.canRun() });
  add({ id: "runtime.run-after", menu: "runtime", group: "run", label: "Run selection and after", run: () => p.runCells("after"), enabled: () => runnable() && p.hasSelection(), hidden: () => !p.canRun() });
  add({ id: "runtime.run-stale", menu: "runtime", group: "run", label: "Run stale cells", run: () => p.runCells("stale"), enabled: runnable, hidden: () => !p.canRun(), testid: "menu-run-stale" });
  add({ id: "runtime.interrupt", menu: "runtime", group: "control", label: "Interrupt execution", run: () => p.interrupt(), enabled: runnable, hidden: () => !p.canRun(), testid: "menu-interrupt" });
  add({ id: "runtime.restart", menu: "runtime", group: "control", label: "Restart runtime", run: () => p.restart(), enabled: runnable, hidden: () => !p.canRun(), testid: "menu-restart" });
  add({ id: "runtime.change-type", menu: "runtime", group: "type", label: "Change runtime type…", run: () => p.changeRuntimeType(), enabled: runnable, hidden: () => !p.canRun(), testid: "menu-runtime-type" });

  // Help
  add({ id: "help.shortcuts", menu: "help", group: "help", label: "Keyboard shortcuts", run: () => p.openShortcuts(), testid: "menu-shortcuts" });
  add({ id: "help.palette", menu: "help", group: "help", label: "Command palette", run: () => p.openPalette(), testid: "menu-palette" });
  return commands;
}
