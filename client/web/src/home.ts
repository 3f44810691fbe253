// The home page: your notebooks and those shared with you (./library: search, sort, rename,
// make a copy, delete); new notebook; upload an .ipynb.

import { api, ApiError, Me, signInUrl } from "./api";
import { colorFor, h, initials, toast } from "./dom";
import { Library } from "./library";

export async function showHome(root: HTMLElement) {
  document.title = "Tandem";
  let me: Me;
  try {
    me = await api.me();
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      root.replaceChildren(landing());
      return;
    }
    root.replaceChildren(h("main.page", {}, h("p.error", {}, `Cannot reach Tandem: ${String(error)}`)));
    return;
  }
  const library = new Library(me);
  const fileInput = h("input", {
    type: "file",
    accept: ".ipynb,application/x-ipynb+json,application/json",
    hidden: true,
    "data-testid": "upload-input",
  });
  fileInput.addEventListener("change", () => {
    const file = fileInput.files?.[0];
    if (file) void upload(file);
    fileInput.value = "";
  });

  const titleInput = h("input", {
    type: "text",
    placeholder: "Untitled",
    "aria-label": "Title of a new notebook",
    maxlength: 500,
    "data-testid": "new-title",
  });
  const newForm = h(
    "form.new-form",
    {
      onsubmit: (e: Event) => {
        e.preventDefault();
        void createNotebook(titleInput.value);
      },
    },
    titleInput,
    h("button.primary", { type: "submit", "data-testid": "new-notebook" }, "+ New notebook"),
  );

  const page = h(
    "div.home",
    {},
    header(me),
    h(
      "main.page",
      {},
      h(
        "div.home-actions",
        {},
        newForm,
        h("button", { onclick: () => fileInput.click(), "data-testid": "upload" }, "Upload .ipynb"),
        fileInput,
      ),
      library.el,
    ),
  );
  root.replaceChildren(page);

  // Dropping a file anywhere on the page uploads it.
  page.addEventListener("dragover", (e) => e.preventDefault());
  page.addEventListener("drop", (e) => {
    e.preventDefault();
    const file = e.dataTransfer?.files?.[0];
    if (file) void upload(file);
  });

  async function createNotebook(title: string) {
    try {
      const nb = await api.create(title.trim() || "Untitled");
      location.href = `/n/${nb.id}`;
    } catch (error) {
      toast(`Could not create the notebook: ${(error as Error).message}`);
    }
  }

  async function upload(file: File) {
    let ipynb: unknown;
    try {
      ipynb = JSON.parse(await file.text());
    } catch {
      toast(`${file.name} is not a notebook (not JSON)`);
      return;
    }
    const title = file.name.replace(/\.ipynb$/i, "") || "Untitled";
    try {
      const nb = await api.create(title, ipynb);
      location.href = `/n/${nb.id}`;
    } catch (error) {
      toast(`Could not import ${file.name}: ${(error as Error).message}`);
    }
  }

  await library.refresh();
}

export function header(me: Me | null, ...middle: Node[]) {
  return h(
    "header.topbar",
    {},
    h("a.brand", { href: "/home", title: "Home" }, h("span.logo", { "aria-hidden": "true" }, "T"), "Tandem"),
    ...middle,
    h("div.spacer"),
    me
      ? h(
          "div.account",
          {},
          h("span.avatar", { style: `background:${colorFor(me.id)}`, title: `${me.name} <${me.email}>` }, initials(me.name)),
          h(
            "button.link",
            {
              onclick: async () => {
                try {
                  await api.signOut();
                } finally {
                  location.href = "/";
                }
              },
            },
            "Sign out",
          ),
        )
      : h("a.button", { href: signInUrl(), "data-testid": "sign-in" }, "Sign in"),
  );
}

function landing() {
  return h(
    "div.home",
    {},
    header(null),
    h(
      "main.page.landing",
      {},
      h("h1", {}, "Notebooks, together."),
      h(
        "p",
        {},
        "Tandem is a collaborative Python notebook: several people edit the same cells at once, run them on the server, and everyone sees the same outputs live.",
      ),
      h("p", {}, h("a.button.primary", { href: signInUrl("/home") }, "Sign in to start")),
    ),
  );
}
