// The notebook page at /n/{id}: the header (title, who is here, connection, comments, share,
// download), the runtime toolbar (run all, interrupt, restart, CPU/GPU, kernel status and
// queue, whose runtime it is), the cells, kept in step with the shared document over
// y-websocket, and the comments panel.
//
// Keyboard (as in Jupyter): in a cell's editor, Shift+Enter runs and moves on, Ctrl+Enter runs,
// Alt+Enter runs and inserts a cell below, Esc leaves the editor. With a cell selected (not
// editing): Enter edits, ↑/↓ or K/J select, A/B insert above/below, D D deletes, M/Y make it
// markdown/code, Shift+Enter runs.

import * as Y from "yjs";
import { WebsocketProvider } from "y-websocket";
import { api, ApiError, ipynbUrl, Me, NotebookInfo, Role, signInUrl } from "../api";
import { colorFor, h, initials, toast } from "../dom";
import { header } from "../home";
import { makeCopyButton } from "../copy";
import { CellHost, CellView, Person } from "./cell";
import { CommentsPanel } from "./comments";
import { openHistory, openShareDialog } from "./lazy";
import { FilesPanel } from "./files";
import { SecretsPanel } from "./secrets";
import { CellType, NotebookDoc } from "./doc";
import { confirmRun, holderLabel, holderOf, holderTitle } from "./runtime";
import { ResourcesView } from "./resources";
import { TitleView } from "./title";

/** Warn this long before the runtime's idle shutdown (it is 90 minutes idle by default). */
const IDLE_WARNING_MS = 10 * 60 * 1000;
/** Warn this long before the kernel's maximum lifetime ends. */
const LIFETIME_WARNING_MS = 30 * 60 * 1000;
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

class NotebookPage implements CellHost {
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
  private readonly statusEl = h("span.kernel-status", { "data-testid": "kernel-status", role: "status" });
  private readonly holderEl = h("span.runtime-holder", { "data-testid": "runtime-holder" });
  private readonly resources = new ResourcesView();
  /** The server's last refusal to run here (someone else's runtime, not shared), until the
   * runtime changes hands or the person dismisses it. */
  private refusal: { message: string; holder: string | null } | null = null;
  private readonly connectionEl = h("span.connection", { "data-testid": "connection", role: "status" });
  private readonly peopleEl = h("div.people-here", { "data-testid": "presence", "aria-label": "Who is here" });
  private readonly bannerEl = h("div.banners");
  private readonly runtimeSelect: HTMLSelectElement;
  private readonly observer: IntersectionObserver;
  private readonly comments: CommentsPanel;
  private readonly files = new FilesPanel();
  private readonly download: HTMLAnchorElement;
  private pendingD = 0;
  private synced = false;
  private failures = 0;

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
    this.download = h("a.button", { href: ipynbUrl(this.notebookId), "data-testid": "download" }, "Download .ipynb");
    this.comments = new CommentsPanel(this, me, this.role, this.nb.state);

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
      this.download.setAttribute("download", `${title || "notebook"}.ipynb`);
    });
    const roleBadge = h("span.role-badge", { "data-testid": "role" }, this.roleLabel());
    const share = h(
      "button.primary",
      { onclick: () => void openShareDialog(this.notebookId, this.info.title, this.role), "data-testid": "share" },
      "Share",
    );
    const history = h(
      "button",
      { onclick: () => openHistory(this.notebookId, this.role), "data-testid": "history-toggle", title: "Version history" },
      "History",
    );
    const top = header(this.me, title.el, roleBadge, this.connectionEl, this.peopleEl, this.comments.toggle, history, this.download, makeCopyButton(this.notebookId), share);

    const button = (label: string, title: string, action: () => void, testid: string) =>
      h("button", { title, "aria-label": title, onclick: action, "data-testid": testid }, label);
    const toolbar = h(
      "div.toolbar",
      { role: "toolbar", "aria-label": "Notebook" },
      editable ? button("+ Code", "Insert a code cell below", () => this.insertAfterSelection("code"), "add-code") : null,
      editable ? button("+ Text", "Insert a markdown cell below", () => this.insertAfterSelection("markdown"), "add-markdown") : null,
      editable ? h("span.sep") : null,
      editable ? button("▶▶ Run all", "Run all cells", () => void this.runAll(), "run-all") : null,
      editable ? button("⟳ Run stale", "Run the stale cells (and what depends on them), in order, so that no cell is stale", () => void this.runStale(), "run-stale") : null,
      editable ? button("■ Interrupt", "Interrupt the running cell and clear the queue", () => void this.control("interrupt"), "interrupt") : null,
      editable ? button("↻ Restart", "Restart the kernel (clears variables)", () => void this.control("restart"), "restart") : null,
      editable ? this.runtimeSelect : null,
      h("div.spacer"),
      this.statusEl,
      this.resources.el,
      this.holderEl,
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
    this.root.replaceChildren(
      h(
        `div.notebook-page${editable ? "" : ".read-only"}`,
        {},
        top,
        toolbar,
        readOnly,
        this.bannerEl,
        h("div.notebook-body", {}, h("main.notebook", {}, this.cellsEl), this.comments.el),
      ),
    );
    // The Files panel (the person's drive): its toggle beside Comments, the panel beside them.
    if (this.me) {
      this.comments.toggle.after(this.files.toggle);
      this.comments.el.before(this.files.el);
      // The Secrets panel: the person's secrets and this notebook's access to them.
      const secrets = new SecretsPanel(this.notebookId, editable);
      this.comments.toggle.after(secrets.toggle);
      this.comments.el.before(secrets.el);
    }
    this.cellsEl.appendChild(h("p.muted.loading", {}, "Connecting…"));
    this.cellsEl.addEventListener("keydown", (e) => this.commandKey(e));
    this.renderConnection("connecting");
  }

  private roleLabel(): string {
    return { owner: "Owner", editor: "Editor", commenter: "Commenter", viewer: "Viewer" }[this.role] ?? this.role;
  }

  // --- Document and connection events -------------------------------------------------------

  private listen() {
    this.provider.on("status", ({ status }) => {
      if (status === "connected") this.failures = 0;
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
    this.nb.state.observeDeep(() => this.renderKernel());
    this.awareness.on("change", () => this.renderPresence());
    window.addEventListener("online", () => this.renderConnection(this.provider.wsconnected ? "connected" : "connecting"));
    window.addEventListener("offline", () => this.renderConnection("disconnected"));
    // The lifecycle warnings count down.
    setInterval(() => this.renderBanners(), 15_000);
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
        this.bannerEl.replaceChildren(h("div.banner.error", {}, "You no longer have access to this notebook."));
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
    const labels: Record<string, string> = {
      not_started: "Not started",
      starting: "Starting…",
      idle: "Idle",
      busy: "Busy",
      dead: "Dead",
    };
    const runtime = (kernel.runtime ?? "cpu").toUpperCase();
    const queued = kernel.queue.length;
    this.statusEl.dataset.status = kernel.status;
    this.statusEl.replaceChildren(
      h("span.dot"),
      h("span", {}, `${labels[kernel.status] ?? kernel.status} · ${runtime}`),
      queued ? h("span.queue", { title: "Cells waiting to run" }, ` · ${queued} queued`) : "",
      kernel.execution_count ? h("span.muted", {}, ` · [${kernel.execution_count}]`) : "",
      kernel.stale?.length ? h("span.stale-count", { title: "Cells whose code or inputs changed since they ran", "data-testid": "stale-count" }, ` · ${kernel.stale.length} stale`) : "",
    );
    this.statusEl.title = kernel.reason ? `Kernel ${kernel.status}: ${kernel.reason}` : `Kernel ${labels[kernel.status] ?? kernel.status}${kernel.gpu ? ` on ${kernel.gpu}` : ""}`;
    if (document.activeElement !== this.runtimeSelect) this.runtimeSelect.value = kernel.runtime === "gpu" ? "gpu" : "cpu";
    const meId = this.me?.id ?? null;
    this.holderEl.textContent = holderLabel(kernel, meId);
    this.holderEl.title = holderTitle(kernel, meId);
    this.holderEl.hidden = !this.holderEl.textContent;
    // A refusal named the runtime of the time: once it stops or changes hands, it no longer holds.
    if (this.refusal && this.refusal.holder !== (holderOf(kernel)?.id ?? null)) this.refusal = null;
    this.resources.update(kernel);
    for (const view of this.order) view.kernelChanged(kernel);
    this.renderBanners();
  }

  private renderBanners() {
    const kernel = this.nb.kernel();
    const now = Date.now();
    const banners: HTMLElement[] = [];
    if (this.refusal) {
      banners.push(
        h(
          "div.banner.error",
          { role: "alert", "data-testid": "runtime-refused" },
          this.refusal.message,
          " ",
          h(
            "button.link",
            {
              onclick: () => {
                this.refusal = null;
                this.renderBanners();
              },
            },
            "Dismiss",
          ),
        ),
      );
    }
    if (kernel.status === "dead" && kernel.reason) {
      banners.push(h("div.banner.error", { role: "alert" }, `The kernel died: ${kernel.reason}. The next run starts a fresh one.`));
    }
    if (kernel.idle_shutdown_at && kernel.status === "idle" && kernel.idle_shutdown_at - now < IDLE_WARNING_MS) {
      const minutes = Math.max(0, Math.ceil((kernel.idle_shutdown_at - now) / 60000));
      banners.push(
        h(
          "div.banner.warning",
          { role: "alert", "data-testid": "idle-warning" },
          `The runtime shuts down in ${minutes} min for inactivity; its variables will be lost. Run a cell to keep it.`,
        ),
      );
    }
    if (kernel.lifetime_ends_at && kernel.status !== "not_started" && kernel.lifetime_ends_at - now < LIFETIME_WARNING_MS) {
      const minutes = Math.max(0, Math.ceil((kernel.lifetime_ends_at - now) / 60000));
      banners.push(h("div.banner.warning", { role: "alert" }, `The runtime reaches its maximum lifetime in ${minutes} min and will be stopped.`));
    }
    this.bannerEl.replaceChildren(...banners);
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
    this.nb.remove(view.cell);
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

  private async execute(cellIds: string[]) {
    if (!(await this.mayRun())) return;
    try {
      await api.execute(this.notebookId, cellIds, this.stateVector());
      this.ran();
    } catch (error) {
      this.actionFailed("run", error);
    }
  }

  private async runAll() {
    if (!(await this.mayRun())) return;
    try {
      await api.executeAll(this.notebookId, this.stateVector());
      this.ran();
    } catch (error) {
      this.actionFailed("run all", error);
    }
  }

  /** A run went through: an earlier refusal is out of date. */
  private ran() {
    if (!this.refusal) return;
    this.refusal = null;
    this.renderBanners();
  }

  private async runStale() {
    if (!(await this.mayRun())) return;
    try {
      const { queued } = await api.executeStale(this.notebookId, this.stateVector());
      this.ran();
      if (!queued.length) toast("No cell is stale", "info");
    } catch (error) {
      this.actionFailed("run stale cells", error);
    }
  }

  private async control(action: "interrupt" | "restart") {
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
      this.refusal = { message: error.message, holder: holderOf(this.nb.kernel())?.id ?? null };
      this.renderBanners();
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
