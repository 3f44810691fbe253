// The notebook page's shell: its one-row header (logo, title, menus, who is here, panel
// toggles, Share, the account menu), the account menu itself, and the small dialogs and
// files the menus open (change runtime type, upload a notebook, the .py download).
//
// Widths (page.css): from 1200 px everything shows; below, the panel toggles move into the
// View menu and the word "Tandem" goes; below 720 px the menu bar folds into one ☰ button.
// The header never wraps, so it never grows over the sticky toolbar.

import { api, Me, signInUrl } from "../api";
import { colorFor, h, initials, toast } from "../dom";
import { cellSource, cellType, NotebookDoc } from "./doc";
import { openPopupAt, popupItems } from "./menus";

export interface HeaderParts {
  me: Me | null;
  title: HTMLElement;
  role: HTMLElement;
  menus: HTMLElement;
  connection: HTMLElement;
  people: HTMLElement;
  toggles: HTMLElement[];
  share: HTMLElement;
}

export function notebookHeader(parts: HeaderParts): HTMLElement {
  return h(
    "header.topbar.nb-topbar",
    { "data-testid": "header" },
    h("a.brand", { href: "/home", title: "Home" }, h("span.logo", { "aria-hidden": "true" }, "T"), h("span.brand-name", {}, "Tandem")),
    h("div.nb-titlebox", {}, parts.title, parts.role),
    parts.menus,
    h("div.spacer"),
    parts.connection,
    parts.people,
    h("div.panel-toggles", {}, ...parts.toggles),
    parts.share,
    account(parts.me),
  );
}

function account(me: Me | null): HTMLElement {
  if (!me) return h("a.button.sign-in", { href: signInUrl(), "data-testid": "sign-in" }, "Sign in");
  const button = h(
    "button.avatar-button",
    { "aria-haspopup": "menu", "aria-label": `Account: ${me.name}`, title: `${me.name} <${me.email}>`, "data-testid": "account" },
    h("span.avatar", { style: `background:${colorFor(me.id)}` }, initials(me.name)),
  );
  button.addEventListener("click", () => {
    const popup = openPopupAt(
      button,
      popupItems([
        h("div.menu-account", {}, h("strong", {}, me.name), h("div.muted", {}, me.email)),
        h("div.menu-sep", { role: "separator" }),
        { label: "Your notebooks", run: () => (location.href = "/home") },
        {
          label: "Sign out",
          testid: "sign-out",
          run: async () => {
            try {
              await api.signOut();
            } finally {
              location.href = "/";
            }
          },
        },
      ]),
      "Account",
    );
    popup.classList.add("align-right");
    const rect = button.getBoundingClientRect();
    popup.style.left = `${Math.max(4, rect.right - popup.offsetWidth)}px`;
    popup.querySelector<HTMLElement>(".menu-item")?.focus();
  });
  return button;
}

/** The notebook as a Python script in the "percent" format (`# %%` before each cell). */
export function pythonScript(nb: NotebookDoc): string {
  const parts: string[] = [];
  for (const cell of nb.visible()) {
    const source = cellSource(cell).toString();
    const type = cellType(cell);
    if (type === "code") {
      parts.push(`# %%\n${source}`);
    } else {
      const commented = source
        .split("\n")
        .map((line) => (line ? `# ${line}` : "#"))
        .join("\n");
      parts.push(`# %% [${type}]\n${commented}`);
    }
  }
  return parts.join("\n\n") + "\n";
}

/** An object URL for a download, revoked once the download had time to start. */
export function blobUrl(text: string, type: string): string {
  const url = URL.createObjectURL(new Blob([text], { type }));
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return url;
}

/** File ▸ Upload notebook: pick an .ipynb, import it as a new notebook, open it. */
export function uploadNotebook() {
  const input = h("input", { type: "file", accept: ".ipynb,application/x-ipynb+json,application/json", hidden: true });
  input.addEventListener("change", async () => {
    const file = input.files?.[0];
    input.remove();
    if (!file) return;
    let ipynb: unknown;
    try {
      ipynb = JSON.parse(await file.text());
    } catch {
      toast(`${file.name} is not a notebook (not JSON)`);
      return;
    }
    try {
      const nb = await api.create(file.name.replace(/\.ipynb$/i, "") || "Untitled", ipynb);
      location.href = `/n/${nb.id}`;
    } catch (error) {
      toast(`Could not import ${file.name}: ${(error as Error).message}`);
    }
  });
  document.body.appendChild(input);
  input.click();
}

/** Runtime ▸ Change runtime type: CPU or GPU (the same choice as the toolbar's select). */
export function runtimeTypeDialog(current: "cpu" | "gpu", choose: (type: "cpu" | "gpu") => void) {
  const dialog = h("dialog.runtime-type", { "aria-label": "Change runtime type", "data-testid": "runtime-type-dialog" });
  const option = (value: "cpu" | "gpu", label: string, hint: string) =>
    h(
      "label.runtime-option",
      {},
      h("input", { type: "radio", name: "runtime-type", value, checked: current === value, "data-testid": `runtime-type-${value}` }),
      h("span", {}, h("strong", {}, label), h("span.muted", {}, ` ${hint}`)),
    );
  const save = h("button.primary", { "data-testid": "runtime-type-save" }, "Save");
  const cancel = h("button", { onclick: () => dialog.close() }, "Cancel");
  save.addEventListener("click", () => {
    const picked = dialog.querySelector<HTMLInputElement>("input[name=runtime-type]:checked")?.value;
    dialog.close();
    if ((picked === "cpu" || picked === "gpu") && picked !== current) choose(picked);
  });
  dialog.append(
    h("h2", {}, "Change runtime type"),
    h("p.muted", {}, "Changing it restarts the kernel: its variables are lost for everyone."),
    option("cpu", "CPU", "the default"),
    option("gpu", "GPU", "when this server has one"),
    h("div.dialog-actions", {}, cancel, save),
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
}
