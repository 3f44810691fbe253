// The Files side panel: the signed-in person's Drive, the persistent files their kernels see
// as `drive/` (protocol/src/drive.rs). Browse folders, upload (file picker or drag and drop),
// download, rename, delete, make folders, and see how full the drive is.
//
// Everything goes through /api/drive with the session cookie; changes carry the CSRF header.
// Downloads are plain links: a GET with the cookie needs nothing more.

import { ApiError, cookie, request } from "../api";
import { h, toast } from "../dom";

/** One file or folder (`DriveEntry`). */
export interface DriveEntry {
  name: string;
  path: string;
  size: number;
  modified: string;
  is_dir: boolean;
}

interface DriveListing {
  path: string;
  entries: DriveEntry[];
}

interface DriveUsage {
  used: number;
  quota: number;
}

const query = (path: string) => `?path=${encodeURIComponent(path)}`;

/** The Drive routes as the page calls them. */
export const drive = {
  list: (path: string) => request<DriveListing>("GET", `/api/drive${query(path)}`),
  usage: () => request<DriveUsage>("GET", "/api/drive/usage"),
  folder: (path: string) => request<DriveEntry>("POST", `/api/drive/folder${query(path)}`),
  rename: (from: string, to: string) => request<DriveEntry>("POST", "/api/drive/rename", { from, to }),
  remove: (path: string) => request<void>("DELETE", `/api/drive/file${query(path)}`),
  downloadUrl: (path: string) => `/api/drive/file${query(path)}`,
  /** PUTs the file's bytes as they are (not JSON), streamed by the browser. */
  async upload(path: string, file: Blob): Promise<DriveEntry> {
    const headers: Record<string, string> = { "content-type": "application/octet-stream" };
    const csrf = cookie("tandem_csrf");
    if (csrf) headers["x-csrf-token"] = csrf;
    const response = await fetch(`/api/drive/file${query(path)}`, {
      method: "PUT",
      headers,
      body: file,
      credentials: "same-origin",
    });
    if (!response.ok) {
      const json = await response.json().catch(() => null);
      throw new ApiError(
        response.status,
        json?.error?.code ?? `http_${response.status}`,
        json?.error?.message ?? response.statusText,
      );
    }
    return (await response.json()) as DriveEntry;
  },
};

/** `1536` → `1.5 KiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const join = (folder: string, name: string) => (folder ? `${folder}/${name}` : name);

/** A name typed by the person: one path component. */
function plainName(name: string | null): string | null {
  const trimmed = name?.trim();
  if (!trimmed) return null;
  if (trimmed.includes("/") || trimmed === "." || trimmed === "..") {
    toast("A name cannot contain “/” or be “.” or “..”.");
    return null;
  }
  return trimmed;
}

export class FilesPanel {
  readonly el = h("aside.files-panel", { "data-testid": "files-panel", "aria-label": "Files", hidden: true });
  readonly toggle = h(
    "button.files-toggle",
    { "data-testid": "files-toggle", title: "Your files (the drive/ folder of your kernels)", onclick: () => this.setOpen(this.el.hidden) },
    "Files",
  );
  private folder = "";
  private entries: DriveEntry[] = [];
  private usage: DriveUsage | null = null;
  private error: string | null = null;
  private uploading = 0;
  private readonly picker = h("input", { type: "file", multiple: true, hidden: true, "data-testid": "files-input" });

  constructor() {
    this.picker.addEventListener("change", () => {
      const files = [...(this.picker.files ?? [])];
      this.picker.value = "";
      void this.upload(files);
    });
    this.el.addEventListener("dragover", (event) => {
      if (!event.dataTransfer?.types.includes("Files")) return;
      event.preventDefault();
      this.el.classList.add("dropping");
    });
    this.el.addEventListener("dragleave", (event) => {
      if (event.target === this.el) this.el.classList.remove("dropping");
    });
    this.el.addEventListener("drop", (event) => {
      event.preventDefault();
      this.el.classList.remove("dropping");
      void this.upload([...(event.dataTransfer?.files ?? [])]);
    });
    this.render();
  }

  private setOpen(open: boolean) {
    this.el.hidden = !open;
    this.toggle.setAttribute("aria-pressed", String(open));
    if (open) void this.refresh();
  }

  /** Lists the current folder and the usage again. */
  async refresh(): Promise<void> {
    try {
      const [listing, usage] = await Promise.all([drive.list(this.folder), drive.usage()]);
      this.entries = listing.entries;
      this.usage = usage;
      this.error = null;
    } catch (error) {
      if (error instanceof ApiError && error.code === "not_found" && this.folder) {
        // The folder went away (deleted from a kernel or another tab): back to the root.
        this.folder = "";
        return this.refresh();
      }
      this.error = error instanceof Error ? error.message : String(error);
    }
    this.render();
  }

  private async act(what: string, action: () => Promise<unknown>) {
    try {
      await action();
    } catch (error) {
      toast(`${what}: ${error instanceof Error ? error.message : String(error)}`);
    }
    await this.refresh();
  }

  private async upload(files: File[]) {
    if (!files.length) return;
    this.uploading += files.length;
    this.render();
    for (const file of files) {
      await this.act(`Uploading ${file.name}`, () => drive.upload(join(this.folder, file.name), file));
      this.uploading--;
    }
    this.render();
  }

  private open(folder: string) {
    this.folder = folder;
    void this.refresh();
  }

  private newFolder() {
    const name = plainName(prompt("New folder name"));
    if (name) void this.act("New folder", () => drive.folder(join(this.folder, name)));
  }

  private rename(entry: DriveEntry) {
    const name = plainName(prompt(`Rename “${entry.name}” to`, entry.name));
    if (name && name !== entry.name) {
      void this.act("Rename", () => drive.rename(entry.path, join(this.folder, name)));
    }
  }

  private remove(entry: DriveEntry) {
    const what = entry.is_dir ? `the folder “${entry.name}” and everything in it` : `“${entry.name}”`;
    if (confirm(`Delete ${what}? This cannot be undone.`)) {
      void this.act("Delete", () => drive.remove(entry.path));
    }
  }

  private breadcrumbs(): HTMLElement {
    const parts = this.folder ? this.folder.split("/") : [];
    const crumbs: (Node | string)[] = [h("button.link", { onclick: () => this.open(""), "data-testid": "files-root" }, "drive")];
    parts.forEach((part, i) => {
      const target = parts.slice(0, i + 1).join("/");
      crumbs.push(" / ", h("button.link", { onclick: () => this.open(target) }, part));
    });
    return h("div.files-path", {}, crumbs);
  }

  private usageBar(): HTMLElement | null {
    if (!this.usage) return null;
    const { used, quota } = this.usage;
    const share = quota > 0 ? Math.min(1, used / quota) : 1;
    const over = used > quota;
    return h(
      "div.files-usage",
      { "data-testid": "files-usage", title: `${used} of ${quota} bytes` },
      h(`div.usage-bar${over ? ".over" : ""}`, {}, h("div.usage-fill", { style: `width: ${(share * 100).toFixed(1)}%` })),
      h("span.muted", {}, `${formatBytes(used)} of ${formatBytes(quota)}${over ? " — over quota" : ""}`),
    );
  }

  private row(entry: DriveEntry): HTMLElement {
    const name = entry.is_dir
      ? h("button.link.files-name", { onclick: () => this.open(entry.path), title: entry.path }, `📁 ${entry.name}`)
      : h("a.files-name", { href: drive.downloadUrl(entry.path), download: entry.name, title: `Download ${entry.path}` }, entry.name);
    const modified = new Date(entry.modified);
    return h(
      "li.files-entry",
      { "data-testid": "files-entry", "data-path": entry.path },
      name,
      h("span.muted.files-size", { title: modified.toLocaleString() }, entry.is_dir ? "" : formatBytes(entry.size)),
      h("button.icon", { title: `Rename ${entry.name}`, "aria-label": `Rename ${entry.name}`, onclick: () => this.rename(entry) }, "✎"),
      h("button.icon", { title: `Delete ${entry.name}`, "aria-label": `Delete ${entry.name}`, onclick: () => this.remove(entry) }, "🗑"),
    );
  }

  private render() {
    const list = this.entries.length
      ? h("ul.files-list", {}, this.entries.map((entry) => this.row(entry)))
      : h("p.muted", {}, this.folder ? "This folder is empty." : "No files yet. Drop files here or upload them.");
    const parts: (Node | null)[] = [
      h(
        "div.files-head",
        {},
        h("h2", {}, "Files"),
        h("button", { onclick: () => this.setOpen(false), "aria-label": "Close files", title: "Close" }, "×"),
      ),
      h("p.muted.files-hint", {}, "Kept across kernels: your code sees them in ", h("code", {}, "drive/"), "."),
      this.usageBar(),
      h(
        "div.files-actions",
        {},
        h("button", { onclick: () => this.picker.click(), "data-testid": "files-upload" }, "Upload"),
        h("button", { onclick: () => this.newFolder(), "data-testid": "files-new-folder" }, "New folder"),
        h("button", { onclick: () => void this.refresh(), title: "Refresh" }, "↻"),
        this.picker,
      ),
      this.breadcrumbs(),
      this.uploading ? h("p.muted", {}, `Uploading ${this.uploading} file(s)…`) : null,
      this.error ? h("p.error", {}, this.error) : list,
    ];
    this.el.replaceChildren(...parts.filter((part): part is Node => part !== null));
  }
}
