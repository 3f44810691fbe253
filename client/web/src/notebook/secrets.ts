// The Secrets side panel: the signed-in person's secrets (protocol/src/secrets.rs). List the
// names, add or replace a value (a password field: values are never shown or read back),
// delete, and switch each secret's access to this notebook on or off.
//
// Code reads a secret with `tandem.secrets.get("NAME")` or Colab's
// `userdata.get("NAME")`, and gets the value of whoever ran the cell, if they gave this
// notebook access: sharing the notebook shares no secret by itself. But a kernel is shared
// by everyone who runs code in it, so a secret granted to a notebook is readable by code
// that any runner of that notebook's kernel starts (a value read stays in memory; code left
// running can catch the next read); the panel says so where access is given.
//
// Everything goes through /api/secrets with the session cookie; changes carry the CSRF header
// (api.ts does that for every request but GET).

import { request } from "../api";
import { h, toast } from "../dom";

/** One secret as listed (`SecretInfo`): never its value. */
export interface SecretInfo {
  name: string;
  updated_at: string;
  notebooks: string[];
}

const path = (name: string) => `/api/secrets/${encodeURIComponent(name)}`;

/** The secrets routes as the page calls them. */
export const secrets = {
  list: () => request<SecretInfo[]>("GET", "/api/secrets"),
  put: (name: string, value: string) => request<SecretInfo>("PUT", path(name), { value }),
  remove: (name: string) => request<void>("DELETE", path(name)),
  grant: (name: string, notebook: string) =>
    request<void>("PUT", `${path(name)}/notebooks/${encodeURIComponent(notebook)}`),
  revoke: (name: string, notebook: string) =>
    request<void>("DELETE", `${path(name)}/notebooks/${encodeURIComponent(notebook)}`),
};

/** The server's rule for names: like an environment variable. */
export const NAME_PATTERN = /^[A-Z_][A-Z0-9_]{0,63}$/;

export class SecretsPanel {
  readonly el = h("aside.secrets-panel", { "data-testid": "secrets-panel", "aria-label": "Secrets", hidden: true });
  readonly toggle = h(
    "button.secrets-toggle",
    {
      "data-testid": "secrets-toggle",
      title: "Your secrets (API keys, tokens) and which this notebook may read",
      onclick: () => this.setOpen(this.el.hidden),
    },
    "Secrets",
  );
  private list: SecretInfo[] = [];
  private error: string | null = null;
  private readonly nameInput = h("input", {
    type: "text",
    placeholder: "NAME",
    "aria-label": "Secret name",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 64,
    "data-testid": "secret-name",
  });
  private readonly valueInput = h("input", {
    type: "password",
    placeholder: "Value",
    "aria-label": "Secret value",
    autocomplete: "new-password",
    "data-testid": "secret-value",
  });

  /** `canRun`: whether the person may run this notebook, so may give it access. */
  constructor(
    private readonly notebookId: string,
    private readonly canRun: boolean,
  ) {
    // Names are upper case: typing `api_key` gives `API_KEY`.
    this.nameInput.addEventListener("input", () => {
      this.nameInput.value = this.nameInput.value.toUpperCase();
    });
    this.render();
  }

  private setOpen(open: boolean) {
    this.el.hidden = !open;
    this.toggle.setAttribute("aria-pressed", String(open));
    if (open) void this.refresh();
  }

  /** Lists the secrets again. */
  async refresh(): Promise<void> {
    try {
      this.list = await secrets.list();
      this.error = null;
    } catch (error) {
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

  private save(event: Event) {
    event.preventDefault();
    const name = this.nameInput.value.trim();
    const value = this.valueInput.value;
    if (!NAME_PATTERN.test(name)) {
      toast("A name is 1 to 64 of A–Z, 0–9 and _, not starting with a digit.");
      return;
    }
    // The value leaves the field as soon as it is sent: nothing keeps it in the page.
    this.valueInput.value = "";
    void this.act(`Saving ${name}`, async () => {
      await secrets.put(name, value);
      this.nameInput.value = "";
    });
  }

  private edit(secret: SecretInfo) {
    this.nameInput.value = secret.name;
    this.valueInput.value = "";
    this.valueInput.focus();
  }

  private remove(secret: SecretInfo) {
    if (confirm(`Delete the secret ${secret.name}? Notebooks that read it will get an error.`)) {
      void this.act("Delete", () => secrets.remove(secret.name));
    }
  }

  private setAccess(secret: SecretInfo, on: boolean) {
    void this.act(on ? "Giving access" : "Removing access", () =>
      on ? secrets.grant(secret.name, this.notebookId) : secrets.revoke(secret.name, this.notebookId),
    );
  }

  private row(secret: SecretInfo): HTMLElement {
    const granted = secret.notebooks.includes(this.notebookId);
    const access = h("input", {
      type: "checkbox",
      checked: granted,
      disabled: !this.canRun,
      "aria-label": `Notebook access to ${secret.name}`,
      "data-testid": "secret-access",
    });
    access.addEventListener("change", () => this.setAccess(secret, access.checked));
    const others = secret.notebooks.length - (granted ? 1 : 0);
    return h(
      "li.secrets-entry",
      { "data-testid": "secret-entry", "data-name": secret.name },
      h(
        "label.secrets-access",
        {
          title: this.canRun
            ? "Let this notebook read it when you run it; code anyone runs in this notebook's kernel can then read it too"
            : "Only people who can run this notebook can give it access",
        },
        access,
      ),
      h(
        "span.secrets-name",
        { title: `Updated ${new Date(secret.updated_at).toLocaleString()}${others ? `; also in ${others} other notebook(s)` : ""}` },
        secret.name,
      ),
      h("span.muted.secrets-value", { "aria-hidden": "true" }, "••••••"),
      h("button.icon", { title: `Replace the value of ${secret.name}`, "aria-label": `Replace ${secret.name}`, onclick: () => this.edit(secret) }, "✎"),
      h("button.icon", { title: `Delete ${secret.name}`, "aria-label": `Delete ${secret.name}`, onclick: () => this.remove(secret), "data-testid": "secret-delete" }, "🗑"),
    );
  }

  /** Where the list goes; the rest of the panel is built once, so a refresh never takes
   * focus or half-typed text away from the form. */
  private readonly listBox = h("div.secrets-list-box", {});

  private render() {
    const list = this.list.length
      ? h("ul.secrets-list", {}, this.list.map((secret) => this.row(secret)))
      : h("p.muted", {}, "No secrets yet.");
    this.listBox.replaceChildren(this.error ? h("p.error", {}, this.error) : list);
    if (this.listBox.parentNode === this.el) return;
    const form = h(
      "form.secrets-form",
      { "data-testid": "secret-form" },
      this.nameInput,
      this.valueInput,
      h("button.primary", { type: "submit", "data-testid": "secret-save" }, "Save"),
    );
    form.addEventListener("submit", (event) => this.save(event));
    this.el.replaceChildren(
      h(
        "div.secrets-head",
        {},
        h("h2", {}, "Secrets"),
        h("button", { onclick: () => this.setOpen(false), "aria-label": "Close secrets", title: "Close" }, "×"),
      ),
      h(
        "p.muted.secrets-hint",
        {},
        "Stored encrypted, never shown again. Tick ",
        h("b", {}, "access"),
        " to let this notebook read one with ",
        h("code", {}, 'tandem.secrets.get("NAME")'),
        " or ",
        h("code", {}, 'userdata.get("NAME")'),
        " when you run it; people you share it with use their own secrets.",
      ),
      h(
        "p.secrets-warning",
        { "data-testid": "secrets-warning" },
        "A secret granted to this notebook is readable by code that anyone who runs this notebook's kernel starts: whoever runs cells in the same runtime as you can read it.",
      ),
      form,
      this.listBox,
    );
  }
}
