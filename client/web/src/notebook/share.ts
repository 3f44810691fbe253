// The share dialog, as in Google Docs: general access (restricted / anyone with the link), the
// link's role, people and their roles, and the link to copy. The owner changes it; editors see
// it; everyone can copy the link. The owner can also hand the notebook over to someone else
// (who must have signed in once); the previous owner stays on as an editor. "Editors may run
// code in my runtime" (on by default) says whether editors may run code in a runtime someone
// else started (see runtime.ts).

import { api, ApiError, Grant, Role, Sharing } from "../api";
import { copyText, h, toast } from "../dom";

const ROLES: Role[] = ["viewer", "commenter", "editor"];
const LABEL: Record<Role, string> = { viewer: "Viewer", commenter: "Commenter", editor: "Editor", owner: "Owner" };

function roleSelect(value: Role, disabled: boolean, label: string): HTMLSelectElement {
  const select = h("select", { "aria-label": label, disabled }, ...ROLES.map((r) => h("option", { value: r }, LABEL[r])));
  select.value = value;
  return select;
}

export async function openShareDialog(notebookId: string, title: string, role: Role) {
  const link = `${location.origin}/n/${notebookId}`;
  const dialog = h("dialog.share", { "aria-label": "Share", "data-testid": "share-dialog" });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  const copy = h(
    "button",
    {
      "data-testid": "copy-link",
      onclick: async () => {
        try {
          await copyText(link);
          copy.textContent = "Link copied";
          setTimeout(() => (copy.textContent = "Copy link"), 2000);
        } catch {
          toast("Could not copy; select the link and copy it by hand");
        }
      },
    },
    "Copy link",
  );
  const linkBox = h("input.share-link", { value: link, readonly: true, "aria-label": "Link to this notebook" });
  linkBox.addEventListener("focus", () => linkBox.select());
  const body = h("div.share-body", {}, h("p.muted", {}, "Loading…"));
  dialog.append(
    h("h2", {}, `Share “${title}”`),
    body,
    h("div.share-link-row", {}, linkBox, copy),
    h("div.dialog-actions", {}, h("button", { onclick: close, "data-testid": "share-close" }, "Done")),
  );
  document.body.appendChild(dialog);
  dialog.addEventListener("cancel", (e) => {
    e.preventDefault();
    close();
  });
  dialog.showModal();

  if (role !== "owner" && role !== "editor") {
    body.replaceChildren(h("p.muted", {}, "Only editors can see who this notebook is shared with. Anyone who has access can use the link."));
    return;
  }
  let sharing: Sharing;
  try {
    sharing = await api.sharing(notebookId);
  } catch (error) {
    body.replaceChildren(h("p.error", {}, `Could not load sharing: ${(error as Error).message}`));
    return;
  }
  const owner = role === "owner";
  const grants: Grant[] = sharing.grants.map((g) => ({ ...g }));
  const people = h("ul.people", { "aria-label": "People with access" });
  const general = h(
    "select",
    { "aria-label": "General access", disabled: !owner, "data-testid": "general-access" },
    h("option", { value: "restricted" }, "Restricted: only people added here"),
    h("option", { value: "anyone_with_link" }, "Anyone with the link"),
  );
  general.value = sharing.general_access;
  const linkRole = roleSelect(sharing.link_role, !owner, "Role of anyone with the link");
  linkRole.dataset.testid = "link-role";
  const linkRoleRow = h("span.link-role", {}, " as ", linkRole);
  const syncLinkRole = () => (linkRoleRow.hidden = general.value !== "anyone_with_link");
  general.addEventListener("change", syncLinkRole);
  syncLinkRole();

  const editorsMayRun = h("input", {
    type: "checkbox",
    checked: sharing.editors_may_run !== false,
    disabled: !owner,
    "data-testid": "editors-may-run",
  });
  const runtimeRow = h(
    "label.share-runtime",
    {},
    editorsMayRun,
    " Editors may run code in my runtime",
    h(
      "p.muted",
      {},
      "A runtime runs as the person who started it: code others run in it can read their Drive (drive/) and the secrets they granted to this notebook. When this is off, editors can run code only in a runtime of their own, started when none is running.",
    ),
  );

  const renderPeople = () => {
    people.replaceChildren(
      h("li", {}, h("span.person", {}, sharing.owner ?? "owner"), h("span.muted", {}, "Owner")),
      ...grants.map((grant, index) => {
        const select = roleSelect(grant.role, !owner, `Role of ${grant.email}`);
        select.addEventListener("change", () => (grant.role = select.value as Role));
        return h(
          "li",
          {},
          h("span.person", {}, grant.email),
          select,
          owner
            ? h(
                "button.icon",
                {
                  title: `Remove ${grant.email}`,
                  "aria-label": `Remove ${grant.email}`,
                  onclick: () => {
                    grants.splice(index, 1);
                    renderPeople();
                  },
                },
                "✕",
              )
            : null,
        );
      }),
    );
  };
  renderPeople();

  const email = h("input", { type: "email", placeholder: "Add people by email", "aria-label": "Email to share with", "data-testid": "share-email" });
  const newRole = roleSelect("editor", false, "Role for the new person");
  newRole.dataset.testid = "share-role";
  const add = h("form.share-add", {}, email, newRole, h("button", { type: "submit", "data-testid": "share-add" }, "Add"));
  add.addEventListener("submit", (e) => {
    e.preventDefault();
    const value = email.value.trim();
    if (!value) return;
    const existing = grants.find((g) => g.email.toLowerCase() === value.toLowerCase());
    if (existing) existing.role = newRole.value as Role;
    else grants.push({ email: value, role: newRole.value as Role });
    email.value = "";
    renderPeople();
  });

  const save = h(
    "button.primary",
    {
      "data-testid": "share-save",
      onclick: async () => {
        save.setAttribute("disabled", "");
        try {
          sharing = await api.setSharing(notebookId, {
            general_access: general.value as Sharing["general_access"],
            link_role: linkRole.value as Role,
            grants,
            editors_may_run: editorsMayRun.checked,
          });
          toast("Sharing saved", "info");
          close();
        } catch (error) {
          toast(error instanceof ApiError ? error.message : String(error));
        } finally {
          save.removeAttribute("disabled");
        }
      },
    },
    "Save",
  );

  body.replaceChildren(
    owner ? add : h("p.muted", {}, "Only the owner can change who has access."),
    h("h3", {}, "People with access"),
    people,
    h("h3", {}, "General access"),
    h("div.general", {}, general, linkRoleRow),
    h("h3", {}, "Runtime"),
    runtimeRow,
  );
  if (owner) body.append(transferForm(notebookId, close));
  if (owner) {
    // The owner's changes apply on Save; closing without it discards them.
    const done = dialog.querySelector<HTMLButtonElement>('[data-testid="share-close"]');
    if (done) done.textContent = "Cancel";
    dialog.querySelector(".dialog-actions")?.append(save);
  }
}

/** The owner hands the notebook over; they stay on as an editor. */
function transferForm(notebookId: string, close: () => void): HTMLElement {
  const email = h("input", {
    type: "email",
    placeholder: "New owner's email",
    "aria-label": "Email of the new owner",
    "data-testid": "owner-email",
    required: true,
  });
  const submit = h("button", { type: "submit", "data-testid": "transfer-owner" }, "Make owner");
  const form = h("form.share-add", {}, email, submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const value = email.value.trim();
    if (!value) return;
    if (!confirm(`Make ${value} the owner of this notebook? You will stay on as an editor.`)) return;
    submit.setAttribute("disabled", "");
    try {
      await api.transfer(notebookId, value);
      toast(`${value} now owns this notebook; you are an editor`, "info");
      close();
      setTimeout(() => location.reload(), 800);
    } catch (error) {
      submit.removeAttribute("disabled");
      toast(error instanceof ApiError ? error.message : String(error));
    }
  });
  return h("div.transfer", {}, h("h3", {}, "Transfer ownership"), form);
}
