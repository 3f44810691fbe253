// The notebook page at /n/{id}: the header (title, who is here, connection, comments, share,
// download), the runtime toolbar (run all, interrupt, restart, CPU/GPU, kernel status and
// queue, whose runtime it is), the cells, kept in step with the shared document over
// y-websocket, and the comments panel.
//
// Keyboard (as in Jupyter): in a cell's editor, Shift+Enter runs and moves on, Ctrl+Enter runs,
// Alt+Enter runs and inserts a cell below, Esc leaves the editor. With a cell selected (not
// editing): Enter edits, ↑/↓ or K/J select, A/B insert above/below, D D deletes, M/Y make it
// markdown/code, Shift+Enter runs. Colab's Ctrl+M chords, the command palette and the menus
// are in commandkeys.ts, palette.ts and menus.ts, all built from pagecommands.ts.
//
// Offline (the WebSocket is down), the page says so where the kernel status was (an old
// "Idle" would be a lie), disables what needs the server (run, interrupt, clear), and keeps
// every edit in the local document: y-websocket sends them once it is back.

import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { api, ApiError, ipynbUrl, Me, NotebookInfo, Role, signInUrl } from "../api";
import { colorFor, h, initials, toast } from "../dom";
import { header } from "../home";
import "./page.css";
import { makeCopy } from "../copy";
import { CellHost, CellView, Person } from "./cell";
import { CommentsPanel } from "./comments";
import { openHistory, openShareDialog } from "./lazy";
import { FilesPanel } from "./files";
import { SecretsPanel } from "./secrets";
import { CellType, NotebookDoc } from "./doc";
import { confirmRun } from "./runtime";
import { ResourcesView } from "./resources";
import { Banners, KernelStatus } from "./status";
import { TitleView } from "./title";
import { Commands } from "./commands";
import { installCommandKeys } from "./commandkeys";
import { FindBar } from "./find";
import { closeMenus, MenuBar } from "./menus";
import { openPalette, openShortcutSheet } from "./palette";
import { PageActions, pageCommands } from "./pagecommands";
import { blobUrl, notebookHeader, pythonScript, runtimeTypeDialog, uploadNotebook } from "./shell";
import { headingsOf, Heading, Sections, TocPanel } from "./toc";
import { actionToast, DeleteUndo, dismissActionToasts } from "./undo";
import { dragToReorder } from "./dragcells";

/** Cells this close to the viewport get their editor built. */
const ACTIVATE_MARGIN = "800px 0px";

export async function showNotebook(root: HTMLElement, id: string) {
  root.replaceChildren(h("main.page", {}, h("p.muted", {}, "Opening notebook…")));
  let me: Me | null = null;
  try {
    me = await api.me();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) {
      root.replaceChildren(h("main.page", {}, h("p.error", {}, `Cannot reach Tandem: ${String(error)}`)));
      return;
    }
  }
  let info: NotebookInfo;
  try {
    info = await api.get(id);
  } catch (error) {
    const status = error instanceof ApiError ? error.status : 0;
    if (!me && (status === 401 || status === 404 || status === 403)) {
      location.href = signInUrl();
      return;
    }
    root.replaceChildren(
      h("div.home", {}, header(me), h("main.page", {}, h("h1", {}, "Notebook not found"), h("p", {}, status === 404 || status === 403 ? "This notebook does not exist, or it has not been shared with you." : `Could not open it: ${(error as Error).message}`), h("p", {}, h("a", { href: "/home" }, "Back to your notebooks")))),
    );
    return;
  }
  new NotebookPage(root, info, me);
}

class NotebookPage implements CellHost, PageActions {
  readonly notebookId: string;
  readonly doc = new Y.Doc();
  readonly nb = new NotebookDoc(this.doc);
  readonly provider: WebsocketProvider;
  readonly awareness: WebsocketProvider["awareness"];
  private role: Role;
  private views = new Map<Y.Map<unknown>, CellView>();
  private order: CellView[] = [];
  private selected: CellView | null = null;
  private readonly cellsEl = h("div.cells", { "data-testid": "cells" });
  private readonly status = new KernelStatus();
  private readonly resources = new ResourcesView();
  private readonly connectionEl = h("span.connection", { "data-testid": "connection", role: "status" });
  private readonly peopleEl = h("div.people-here", { "data-testid": "presence", "aria-label": "Who is here" });
  private readonly banners = new Banners(() => this.nb.kernel());
  private readonly runtimeSelect: HTMLSelectElement;
  private readonly observer: IntersectionObserver;
  private readonly comments: CommentsPanel;
  private pendingD = 0;
  private synced = false;
  private failures = 0;
  /** Connected and synced: the server can be asked to run, and the kernel state is live. */
  private connected = false;
  private readonly deletes: DeleteUndo;
  private readonly commands: Commands;
  private readonly findBar: FindBar;
  private readonly toc: TocPanel;
  private readonly sections: Sections;
  private readonly files = new FilesPanel();
  private secrets: SecretsPanel | null = null;
  /** Toolbar buttons that need the server (disabled offline). */
  private readonly serverButtons: HTMLButtonElement[] = [];
  private tocScheduled = false;

  constructor(
    private readonly root: HTMLElement,
    private readonly info: NotebookInfo,
    private readonly me: Me | null,
  ) {
    this.notebookId = info.id;
    this.role = info.role;
    document.title = `${info.title} · Tandem`;
    const wsBase = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    this.provider = new WebsocketProvider(wsBase, info.id, this.doc, { disableBc: true });
    this.awareness = this.provider.awareness;
    const name = me?.name ?? `Anonymous ${["otter", "lynx", "heron", "ibex", "orca", "wren"][this.doc.clientID % 6]}`;
    const color = colorFor(me?.id ?? String(this.doc.clientID));
    this.awareness.setLocalStateField("user", { name, color, colorLight: `${color}33`, id: me?.id ?? null });

    this.runtimeSelect = h(
      "select",
      { "aria-label": "Runtime type", title: "Runtime type (restarts the kernel)", "data-testid": "runtime" },
      h("option", { value: "cpu" }, "CPU"),
      h("option", { value: "gpu" }, "GPU"),
    );
    this.runtimeSelect.addEventListener("change", () => void this.setRuntime(this.runtimeSelect.value as "cpu" | "gpu"));
    this.comments = new CommentsPanel(this, me, this.role, this.nb.state);
    this.deletes = new DeleteUndo(this.nb);
    if (me) this.secrets = new SecretsPanel(info.id, this.canEdit());
    this.toc = new TocPanel((cellId) => this.goTo(cellId));
    this.sections = new Sections(() => this.scheduleToc());
    this.findBar = new FindBar({
      sources: () => this.order.map((v) => ({ id: v.id, source: v.cell.get("source") as Y.Text })).filter((c) => c.source instanceof Y.Text),
      show: (cellId, from, to) => {
        this.sections.expandTo(cellId);
        const view = this.order.find((v) => v.id === cellId);
        if (!view) return;
        this.select(view, false);
        view.selectRange(from, to);
      },
      canEdit: () => this.canEdit(),
    });
    this.commands = pageCommands(this);
    installCommandKeys(this.commands);

    this.observer = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) continue;
          const view = this.viewOf(entry.target as HTMLElement);
          view?.activate();
          this.observer.unobserve(entry.target);
        }
      },
      { rootMargin: ACTIVATE_MARGIN },
    );

    this.layout();
    this.listen();
  }

  // --- Layout -----------------------------------------------------------------------------

  private layout() {
    const editable = this.canEdit();
    const title = new TitleView(this.notebookId, this.info.title, editable, this.nb.state, (title) => {
      this.info.title = title;
      document.title = `${title} · Tandem`;
    });
    const roleBadge = h("span.role-badge", { "data-testid": "role" }, this.roleLabel());
    const share = h(
      "button.primary.share-button",
      { onclick: () => void openShareDialog(this.notebookId, this.info.title, this.role), "data-testid": "share", title: "Share" },
      h("span.share-icon", { "aria-hidden": "true" }, "⇪"),
      h("span.share-label", {}, "Share"),
    );
    const toggles: HTMLElement[] = [this.toc.toggle, this.comments.toggle];
    if (this.me) toggles.push(this.files.toggle);
    if (this.secrets) toggles.push(this.secrets.toggle);
    const menus = new MenuBar(this.commands);
    const top = notebookHeader({
      me: this.me,
      title: title.el,
      role: roleBadge,
      menus: menus.el,
      connection: this.connectionEl,
      people: this.peopleEl,
      toggles,
      share,
    });

    const button = (icon: string, label: string, title: string, action: () => void, testid: string, needsServer = false) => {
      const el = h(
        "button.tb-button",
        { title, "aria-label": title, onclick: action, "data-testid": testid },
        h("span.tb-icon", { "aria-hidden": "true" }, icon),
        h("span.tb-label", {}, label),
      );
      if (needsServer) this.serverButtons.push(el);
      return el;
    };
    const toolbar = h(
      "div.toolbar",
      { role: "toolbar", "aria-label": "Notebook", "data-testid": "toolbar" },
      editable ? button("+", "Code", "Insert a code cell below (Ctrl+M B)", () => this.insertAfterSelection("code"), "add-code") : null,
      editable ? button("+", "Text", "Insert a markdown cell below", () => this.insertAfterSelection("markdown"), "add-markdown") : null,
      editable ? h("span.sep") : null,
      editable ? button("▶▶", "Run all", "Run all cells (Ctrl+F9)", () => void this.runAll(), "run-all", true) : null,
      editable ? button("⟳", "Run stale", "Run the stale cells (and what depends on them), in order, so that no cell is stale", () => void this.runStale(), "run-stale", true) : null,
      editable ? button("■", "Interrupt", "Interrupt the running cell and clear the queue (Ctrl+M I)", () => void this.control("interrupt"), "interrupt", true) : null,
      editable ? button("↻", "Restart", "Restart the kernel (clears variables)", () => void this.control("restart"), "restart", true) : null,
      editable ? this.runtimeSelect : null,
      h("div.spacer"),
      this.status.el,
      this.resources.el,
      this.status.holder,
    );
    const readOnly = editable
      ? null
      : h(
          "div.banner.info",
          { "data-testid": "read-only" },
          this.role === "commenter"
            ? "You are a commenter of this notebook: you see every change live and can comment (select text, then the comment button beside the cell), but cannot edit or run it."
            : `You are a ${this.role} of this notebook: you see every change live but cannot edit or run it.`,
          this.me ? null : h("a", { href: signInUrl() }, " Sign in"),
        );
    const body = h("div.notebook-body", {}, this.toc.el, h("main.notebook", {}, this.cellsEl), this.comments.el);
    this.root.replaceChildren(
      h(`div.notebook-page${editable ? "" : ".read-only"}`, {}, top, toolbar, this.findBar.el, readOnly, this.banners.el, body),
    );
    // The side panels: the person's drive and secrets, beside the comments.
    if (this.me) this.comments.el.before(this.files.el);
    if (this.secrets) this.comments.el.before(this.secrets.el);
    // Sticky parts below the header (cells' controls, scrolling to a cell) sit below the
    // toolbar, whatever its height.
    const chrome = () => {
      const height = top.offsetHeight + toolbar.offsetHeight + (this.findBar.el.hidden ? 0 : this.findBar.el.offsetHeight);
      document.documentElement.style.setProperty("--chrome-h", `${height}px`);
      document.documentElement.style.setProperty("--header-h", `${top.offsetHeight}px`);
    };
    new ResizeObserver(chrome).observe(toolbar);
    new ResizeObserver(chrome).observe(top);
    new ResizeObserver(chrome).observe(this.findBar.el);
    chrome();
    this.cellsEl.appendChild(h("p.muted.loading", {}, "Connecting…"));
    this.cellsEl.addEventListener("keydown", (e) => this.commandKey(e));
    dragToReorder(this.cellsEl, {
      viewOf: (el) => this.viewOf(el),
      order: () => this.order,
      canEdit: () => this.canEdit(),
      move: (view, delta) => this.move(view, delta),
    });
    this.renderConnection("connecting");
  }

  private roleLabel(): string {
    return { owner: "Owner", editor: "Editor", commenter: "Commenter", viewer: "Viewer" }[this.role] ?? this.role;
  }

  // --- Document and connection events -------------------------------------------------------

  private listen() {
    let connectedBefore = false;
    this.provider.on("status", ({ status }) => {
      if (status === "connected") {
        this.failures = 0;
        // While this page was away, the server dropped its presence and told the others so
        // with a newer clock than this page's state, which they would now ignore: announce it
        // again past that clock (each set counts one up).
        if (connectedBefore) {
          const state = this.awareness.getLocalState();
          if (state) for (let i = 0; i < 2; i++) this.awareness.setLocalState({ ...state });
        }
        connectedBefore = true;
      }
      this.renderConnection(status);
    });
    this.provider.on("sync", (synced: boolean) => {
      if (synced && !this.synced) {
        this.synced = true;
        this.cellsEl.querySelector(".loading")?.remove();
        this.reconcile();
        if (this.order.length && !this.selected) this.select(this.order[0]);
        void this.comments.refresh();
      }
      this.renderConnection(this.provider.wsconnected ? "connected" : "connecting");
    });
    this.provider.on("connection-close", () => {
      this.failures++;
      // Refused before the upgrade, or cut after a sharing change: find out what changed.
      if (this.failures === 2 || this.failures % 10 === 0) void this.recheckAccess();
    });
    this.nb.cells.observe(() => {
      if (this.synced) this.reconcile();
    });
    // Headings may change with any markdown edit: the contents and sections follow.
    this.nb.cells.observeDeep(() => {
      if (this.synced) this.scheduleToc();
    });
    this.nb.state.observeDeep(() => this.renderKernel());
    this.awareness.on("change", () => this.renderPresence());
    // The browser knows first: the socket may take a while to notice that it is gone. The
    // local document keeps every edit meanwhile; reconnecting syncs them both ways.
    window.addEventListener("online", () => {
      this.provider.connect();
      this.renderConnection(this.provider.wsconnected ? "connected" : "connecting");
    });
    window.addEventListener("offline", () => {
      this.provider.disconnect();
      this.renderConnection("disconnected");
    });
    // The lifecycle warnings count down.
    setInterval(() => this.banners.render(), 15_000);
    this.renderKernel();
  }

  private async recheckAccess() {
    try {
      const info = await api.get(this.notebookId);
      if (info.role !== this.role) {
        toast(`Your access changed to ${info.role}; reloading`, "info");
        setTimeout(() => location.reload(), 1200);
      }
    } catch (error) {
      if (error instanceof ApiError && (error.status === 403 || error.status === 404 || error.status === 401)) {
        this.provider.disconnect();
        this.renderConnection("disconnected");
        this.banners.accessLost();
      }
    }
  }

  private renderConnection(status: string) {
    const offline = !navigator.onLine || status === "disconnected";
    const state = status === "connected" && this.synced ? "online" : offline ? "offline" : "connecting";
    const label =
      state === "online"
        ? "Connected"
        : state === "offline"
          ? "Offline: your edits are kept and sent when the connection is back"
          : this.synced
            ? "Reconnecting… your edits are kept"
            : "Connecting…";
    this.connectionEl.dataset.state = state;
    const connected = state === "online";
    if (connected !== this.connected) {
      this.connected = connected;
      this.root.querySelector(".notebook-page")?.classList.toggle("offline", !connected);
      this.renderKernel();
    }
    this.connectionEl.title = label;
    this.connectionEl.replaceChildren(h("span.dot"), h("span.connection-label", {}, state === "online" ? "Connected" : state === "offline" ? "Offline" : "Connecting…"));
  }

  /** Brings the cell views in line with the document's cells (after any structural change). */
  private reconcile() {
    const visible = this.nb.visible();
    const next: CellView[] = [];
    const keep = new Set<Y.Map<unknown>>();
    for (const cell of visible) {
      keep.add(cell);
      let view = this.views.get(cell);
      if (!view) {
        view = new CellView(cell, this);
        this.views.set(cell, view);
        this.observer.observe(view.el);
        this.comments.decorate(view);
      }
      next.push(view);
    }
    let reselect: CellView | null = null;
    for (const [cell, view] of this.views) {
      if (keep.has(cell)) continue;
      // A moved or retyped cell comes back as a new map with the same id: keep the selection
      // (and the caret, if it was editing) on it.
      if (view === this.selected) {
        reselect = next.find((v) => v.id === view.id) ?? null;
        if (!reselect) {
          const oldIndex = this.order.indexOf(view);
          reselect = next[Math.min(oldIndex, next.length - 1)] ?? null;
        }
      }
      this.observer.unobserve(view.el);
      view.el.remove();
      view.destroy();
      this.views.delete(cell);
    }
    // Reorder the DOM with as few moves as possible.
    let cursor: Element | null = this.cellsEl.firstElementChild;
    for (const view of next) {
      if (cursor === view.el) {
        cursor = cursor.nextElementSibling;
      } else {
        this.cellsEl.insertBefore(view.el, cursor);
      }
    }
    this.order = next;
    if (reselect) this.select(reselect, false);
    this.scheduleToc();
    if (!next.length) {
      this.cellsEl.replaceChildren(h("p.muted.empty-notebook", {}, this.canEdit() ? "This notebook is empty. Add a cell with + Code or + Text." : "This notebook is empty."));
    } else {
      this.cellsEl.querySelector(".empty-notebook")?.remove();
    }
    this.renderKernel();
    this.renderPresence();
  }

  private renderKernel() {
    const kernel = this.nb.kernel();
    for (const button of this.serverButtons) button.disabled = !this.connected;
    this.runtimeSelect.disabled = !this.connected;
    for (const view of this.order) view.setRunnable(this.connected && this.canRun());
    this.commands?.changed();
    const state = this.connectionEl.dataset.state;
    const link = this.connected ? "online" : state === "offline" ? "offline" : this.synced ? "reconnecting" : "connecting";
    this.status.render(kernel, this.me?.id ?? null, link);
    if (this.connected && document.activeElement !== this.runtimeSelect) this.runtimeSelect.value = kernel.runtime === "gpu" ? "gpu" : "cpu";
    this.resources.update(kernel);
    for (const view of this.order) view.kernelChanged(kernel);
    this.banners.render();
  }

  private renderPresence() {
    const people = new Map<string, Person & { cells: Set<string> }>();
    const perCell = new Map<string, Person[]>();
    this.awareness.getStates().forEach((state, clientId) => {
      const user = state.user as { name?: string; color?: string; id?: string | null } | undefined;
      if (!user?.name) return;
      const person: Person = { clientId, name: user.name, color: user.color ?? "#888" };
      if (clientId !== this.doc.clientID) {
        const key = user.id ?? `client-${clientId}`;
        if (!people.has(key) && user.id !== this.me?.id) people.set(key, { ...person, cells: new Set() });
        const cell = state.cell as string | undefined;
        if (cell) perCell.set(cell, [...(perCell.get(cell) ?? []), person]);
      }
    });
    this.peopleEl.replaceChildren(
      ...[...people.values()].map((p) =>
        h("span.avatar", { style: `background:${p.color}`, title: `${p.name} is here`, "data-name": p.name }, initials(p.name)),
      ),
    );
    for (const view of this.order) view.setPresence(perCell.get(view.id) ?? []);
  }

  // --- CellHost -----------------------------------------------------------------------------

  canEdit(): boolean {
    return this.role === "editor" || this.role === "owner";
  }

  readOnly(): boolean {
    return !this.canEdit();
  }

  canRun(): boolean {
    return this.canEdit();
  }

  canComment(): boolean {
    return this.me !== null && this.role !== "viewer";
  }

  meId(): string | null {
    return this.me?.id ?? null;
  }

  notebookSources(): string[] {
    return this.order.filter((view) => view.type === "code").map((view) => view.cell.get("source")?.toString() ?? "");
  }

  comment(view: CellView) {
    this.select(view, false);
    this.comments.compose(view);
  }

  // --- CommentsHost -------------------------------------------------------------------------

  cellViews(): CellView[] {
    return this.order;
  }

  reveal(cellId: string) {
    const view = this.order.find((v) => v.id === cellId);
    if (view) this.focusCell(view);
  }

  select(view: CellView, scroll = true) {
    if (this.selected !== view) {
      this.selected?.el.classList.remove("selected");
      this.selected = view;
      view.el.classList.add("selected");
    }
    if (scroll) view.el.scrollIntoView({ block: "nearest" });
  }

  editorFocused(view: CellView, focused: boolean) {
    if (focused) {
      this.select(view, false);
      view.el.classList.add("editing");
      this.awareness.setLocalStateField("cell", view.id);
    } else {
      if (view.type !== "markdown") view.el.classList.remove("editing");
    }
  }

  leave(view: CellView) {
    if (view.type === "markdown") view.finishEditing();
    view.el.classList.remove("editing");
    view.el.focus();
  }

  moveFocus(view: CellView, delta: number): boolean {
    const index = this.order.indexOf(view);
    const next = this.order[index + delta];
    if (!next) return false;
    this.select(next);
    if (next.type === "markdown" && !next.el.classList.contains("editing")) next.el.focus();
    else next.focusEditor(delta < 0 ? "end" : "start");
    return true;
  }

  run(view: CellView, then: "stay" | "next" | "insert") {
    if (view.type === "markdown") view.finishEditing();
    if (view.type === "code" && this.canRun()) void this.execute([view.id]);
    const index = this.order.indexOf(view);
    if (then === "stay") {
      if (view.type === "markdown") view.el.focus();
      return;
    }
    if (then === "insert" || (then === "next" && index === this.order.length - 1 && this.canEdit())) {
      const inserted = this.insertAt(view, "below", "code");
      if (inserted) this.focusWhenReady(inserted);
      return;
    }
    const next = this.order[index + 1];
    if (!next) return;
    this.select(next);
    if (next.type === "code" && this.canEdit()) next.focusEditor("start");
    else next.el.focus();
  }

  setType(view: CellView, type: CellType) {
    if (!this.canEdit()) return;
    const replacement = this.nb.setType(view.cell, type);
    if (replacement) this.focusWhenReady(replacement, type === "markdown" ? "cell" : "editor");
  }

  move(view: CellView, delta: number) {
    if (!this.canEdit()) return;
    const copy = this.nb.move(view.cell, delta);
    if (copy) this.focusWhenReady(copy, "cell");
  }

  remove(view: CellView) {
    if (!this.canEdit()) return;
    const index = this.order.indexOf(view);
    this.deletes.remove(view.cell);
    actionToast("Cell deleted", "Undo", () => this.undoDelete());
    const next = this.order[Math.min(index, this.order.length - 1)];
    if (next) {
      this.select(next);
      next.el.focus();
    }
  }

  insert(view: CellView, where: "above" | "below", type: CellType) {
    const cell = this.insertAt(view, where, type);
    if (cell) this.focusWhenReady(cell);
  }

  canClear(): boolean {
    return this.canEdit() && this.connected;
  }

  clearOutputs(which: CellView | "selected" | "all") {
    const view = which === "selected" ? this.selected : which;
    if (view !== "all" && (!view || view.type !== "code")) return;
    void this.clear(view === "all" ? undefined : [view.id]);
  }

  private async clear(cellIds?: string[]) {
    try {
      await api.clearOutputs(this.notebookId, cellIds);
    } catch (error) {
      this.actionFailed("clear outputs", error);
    }
  }

  // --- PageActions (the menus' commands) ----------------------------------------------------

  signedIn(): boolean {
    return this.me !== null;
  }

  online(): boolean {
    return this.connected;
  }

  hasSelection(): boolean {
    return this.selected !== null && this.order.includes(this.selected);
  }

  selectionIsCode(): boolean {
    return this.hasSelection() && this.selected?.type === "code";
  }

  insertCell(where: "above" | "below", type: "code" | "markdown", source?: string) {
    const cell = this.insertAt(this.hasSelection() ? this.selected : null, where, type);
    if (!cell) return;
    if (source) (cell.get("source") as Y.Text).insert(0, source);
    this.focusWhenReady(cell, type === "markdown" && source ? "cell" : "editor");
  }

  deleteSelected() {
    if (this.selected && this.hasSelection()) this.remove(this.selected);
  }

  canUndoDelete(): boolean {
    return this.deletes.canUndo();
  }

  undoDelete() {
    if (!this.canEdit()) return;
    dismissActionToasts();
    const id = this.deletes.undo();
    const view = id ? this.order.find((v) => v.id === id) : undefined;
    if (view) this.focusCell(view);
  }

  setSelectedType(type: CellType) {
    if (this.selected && this.hasSelection()) this.setType(this.selected, type);
  }

  moveSelected(delta: number) {
    if (this.selected && this.hasSelection()) this.move(this.selected, delta);
  }

  selectNext(delta: number) {
    const index = this.selected ? this.order.indexOf(this.selected) : -1;
    this.focusCell(this.order[Math.max(0, index + delta)]);
  }

  runCells(which: "all" | "before" | "selected" | "after" | "stale") {
    if (which === "all") return void this.runAll();
    if (which === "stale") return void this.runStale();
    const index = this.selected ? this.order.indexOf(this.selected) : -1;
    if (index < 0) return;
    const range = which === "before" ? this.order.slice(0, index) : which === "after" ? this.order.slice(index) : [this.order[index]];
    const ids = range.filter((v) => v.type === "code").map((v) => v.id);
    if (ids.length) void this.execute(ids);
    else toast("No code cell to run there", "info");
  }

  interrupt() {
    void this.control("interrupt");
  }

  restart() {
    void this.control("restart");
  }

  changeRuntimeType() {
    const current = this.nb.kernel().runtime === "gpu" ? "gpu" : "cpu";
    runtimeTypeDialog(current, (type) => {
      this.runtimeSelect.value = type;
      void this.setRuntime(type);
    });
  }

  toggleSelectedOutput() {
    const box = this.selected?.outputBox;
    if (box) box.setExpanded(!box.isExpanded);
  }

  setAllSections(collapse: boolean) {
    this.sections.setAll(collapse);
  }

  openFind() {
    closeMenus();
    const selection = window.getSelection()?.toString() ?? "";
    this.findBar.open(selection.includes("\n") ? undefined : selection);
  }

  openPalette() {
    const focus = document.activeElement as HTMLElement | null;
    openPalette(this.commands, () => focus?.focus());
  }

  openShortcuts() {
    const focus = document.activeElement as HTMLElement | null;
    openShortcutSheet(this.commands, () => focus?.focus());
  }

  newNotebook() {
    void (async () => {
      try {
        const nb = await api.create("Untitled");
        location.href = `/n/${nb.id}`;
      } catch (error) {
        this.actionFailed("create a notebook", error);
      }
    })();
  }

  openNotebook() {
    location.href = "/home";
  }

  uploadNotebook() {
    uploadNotebook();
  }

  history() {
    openHistory(this.notebookId, this.role);
  }

  makeCopy() {
    void makeCopy(this.notebookId);
  }

  ipynbDownload() {
    return { href: ipynbUrl(this.notebookId), filename: `${this.info.title || "notebook"}.ipynb` };
  }

  pyDownload() {
    return { href: blobUrl(pythonScript(this.nb), "text/x-python"), filename: `${this.info.title || "notebook"}.py` };
  }

  panels() {
    const panel = (id: string, label: string, el: HTMLElement, toggle: HTMLElement) => ({ id, label, open: () => !el.hidden, toggle: () => toggle.click() });
    const list = [panel("toc", "Table of contents", this.toc.el, this.toc.toggle), panel("comments", "Comments", this.comments.el, this.comments.toggle)];
    if (this.me) list.push(panel("files", "Files", this.files.el, this.files.toggle));
    if (this.secrets) list.push(panel("secrets", "Secrets", this.secrets.el, this.secrets.toggle));
    return list;
  }

  // --- Table of contents and sections -------------------------------------------------------

  private scheduleToc() {
    if (this.tocScheduled) return;
    this.tocScheduled = true;
    requestAnimationFrame(() => {
      this.tocScheduled = false;
      this.renderToc();
    });
  }

  private renderToc() {
    const headings: Heading[] = [];
    const cells = this.order.map((view) => {
      if (view.type !== "markdown") return { id: view.id, el: view.el, level: null };
      const found = headingsOf((view.cell.get("source") as Y.Text | undefined)?.toString() ?? "");
      for (const heading of found) headings.push({ cellId: view.id, ...heading });
      return { id: view.id, el: view.el, level: found.length ? Math.min(...found.map((f) => f.level)) : null };
    });
    this.sections.apply(cells);
    this.toc.render(headings);
  }

  /** Scrolls to a cell (opening the sections that hide it) and selects it. */
  private goTo(cellId: string) {
    this.sections.expandTo(cellId);
    const view = this.order.find((v) => v.id === cellId);
    if (!view) return;
    this.select(view, false);
    view.el.scrollIntoView({ block: "start" });
    view.el.focus({ preventScroll: true });
  }

  // --- Actions ------------------------------------------------------------------------------

  private insertAt(view: CellView | null, where: "above" | "below", type: CellType): Y.Map<unknown> | null {
    if (!this.canEdit()) return null;
    let at = this.nb.cells.length;
    if (view) {
      const raw = this.nb.rawIndex(view.cell);
      if (raw >= 0) at = where === "above" ? raw : raw + 1;
    }
    return this.nb.insert(at, type);
  }

  private insertAfterSelection(type: CellType) {
    const cell = this.insertAt(this.selected, "below", type);
    if (cell) this.focusWhenReady(cell);
  }

  /** Selects (and edits) a cell map once its view exists (the array observer runs first). */
  private focusWhenReady(cell: Y.Map<unknown>, mode: "editor" | "cell" = "editor") {
    const view = this.views.get(cell);
    if (!view) return;
    this.select(view);
    if (mode === "editor") view.focusEditor("start");
    else view.el.focus();
  }

  /**
   * This page's Yjs state vector, base64: sent with each run, so the server and the runtime
   * wait for the keystrokes still on their way over the WebSocket before reading the code.
   */
  private stateVector(): string {
    let binary = "";
    for (const byte of Y.encodeStateVector(this.doc)) binary += String.fromCharCode(byte);
    return btoa(binary);
  }

  /** Before running code: the first time in someone else's runtime, what that means. */
  private async mayRun(): Promise<boolean> {
    return confirmRun(this.notebookId, this.nb.kernel(), this.me);
  }

  /** Running needs the server: offline, say so rather than fail. */
  private offlineRefusal(): boolean {
    if (this.connected) return false;
    toast("Offline: running needs the connection (your edits are kept)", "info");
    return true;
  }

  private async execute(cellIds: string[]) {
    if (this.offlineRefusal() || !(await this.mayRun())) return;
    try {
      await api.execute(this.notebookId, cellIds, this.stateVector());
      this.ran();
    } catch (error) {
      this.actionFailed("run", error);
    }
  }

  private async runAll() {
    if (this.offlineRefusal() || !(await this.mayRun())) return;
    try {
      await api.executeAll(this.notebookId, this.stateVector());
      this.ran();
    } catch (error) {
      this.actionFailed("run all", error);
    }
  }

  /** A run went through: an earlier refusal is out of date. */
  private ran() {
    this.banners.ran();
  }

  private async runStale() {
    if (this.offlineRefusal() || !(await this.mayRun())) return;
    try {
      const { queued } = await api.executeStale(this.notebookId, this.stateVector());
      this.ran();
      if (!queued.length) toast("No cell is stale", "info");
    } catch (error) {
      this.actionFailed("run stale cells", error);
    }
  }

  private async control(action: "interrupt" | "restart") {
    if (this.offlineRefusal()) return;
    if (action === "restart" && !confirm("Restart the kernel? Its variables are lost for everyone.")) return;
    try {
      await (action === "interrupt" ? api.interrupt(this.notebookId) : api.restart(this.notebookId));
    } catch (error) {
      this.actionFailed(action, error);
    }
  }

  private async setRuntime(type: "cpu" | "gpu") {
    try {
      await api.setRuntime(this.notebookId, type);
      toast(`Runtime switched to ${type.toUpperCase()}`, "info");
    } catch (error) {
      this.runtimeSelect.value = this.nb.kernel().runtime === "gpu" ? "gpu" : "cpu";
      this.actionFailed(`switch to ${type.toUpperCase()}`, error);
    }
  }

  private actionFailed(what: string, error: unknown) {
    if (error instanceof ApiError && error.status === 401) {
      toast(`Sign in to ${what}`);
      return;
    }
    if (error instanceof ApiError && error.code === "runtime_not_shared") {
      // Not a passing failure: it holds until the runtime stops, so it stays in view.
      this.banners.refuse(error.message);
      return;
    }
    toast(`Could not ${what}: ${error instanceof Error ? error.message : String(error)}`);
  }

  // --- Command mode keys --------------------------------------------------------------------

  private viewOf(el: HTMLElement | null): CellView | undefined {
    const cellEl = el?.closest<HTMLElement>(".cell");
    return this.order.find((v) => v.el === cellEl);
  }

  private commandKey(e: KeyboardEvent) {
    const target = e.target as HTMLElement;
    if (!target.classList.contains("cell")) return; // Keys in an editor or a control are theirs.
    const view = this.viewOf(target);
    if (!view) return;
    const editable = this.canEdit();
    const index = this.order.indexOf(view);
    const key = e.key;
    let handled = true;
    if (key === "Enter" && e.shiftKey) this.run(view, "next");
    else if (key === "Enter" && (e.ctrlKey || e.metaKey)) this.run(view, "stay");
    else if (key === "Enter" && e.altKey) this.run(view, "insert");
    else if (key === "Enter") {
      if (editable || view.type !== "markdown") view.focusEditor("keep");
    } else if (key === "ArrowUp" || key === "k") this.focusCell(this.order[index - 1]);
    else if (key === "ArrowDown" || key === "j") this.focusCell(this.order[index + 1]);
    else if (!editable || e.ctrlKey || e.metaKey || e.altKey) handled = false;
    else if (key === "a") this.insert(view, "above", "code");
    else if (key === "b") this.insert(view, "below", "code");
    else if (key === "m") this.setType(view, "markdown");
    else if (key === "y") this.setType(view, "code");
    else if (key === "r") this.setType(view, "raw");
    else if (key === "d") {
      const now = performance.now();
      if (now - this.pendingD < 600) {
        this.pendingD = 0;
        this.remove(view);
      } else {
        this.pendingD = now;
      }
    } else handled = false;
    if (handled) e.preventDefault();
  }

  private focusCell(view: CellView | undefined) {
    if (!view) return;
    this.select(view);
    view.el.focus();
  }
}
