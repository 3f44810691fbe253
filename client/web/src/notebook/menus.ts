// Colab-like menus: a menu bar (File, Edit, View, Insert, Runtime, Help) built from the
// page's commands, and on narrow windows one "☰" button holding every menu, so nothing
// goes off-screen. A menu opens as a popup on the page's body (fixed, kept inside the
// window), closes on Escape, a click elsewhere or once an item ran, and is keyboard-driven:
// ↑ ↓ move between items, ← → between menus, Enter runs.

import { h } from "../dom";
import { Command, Commands, MenuName, MENUS } from "./commands";

let openPopup: { el: HTMLElement; anchor: HTMLElement; close: () => void } | null = null;

/** Closes the open menu, if any. */
export function closeMenus() {
  openPopup?.close();
}

document.addEventListener(
  "mousedown",
  (e) => {
    if (!openPopup) return;
    const target = e.target as Node;
    if (openPopup.el.contains(target) || openPopup.anchor.contains(target)) return;
    closeMenus();
  },
  true,
);
window.addEventListener("resize", () => closeMenus());
// Escape closes a menu wherever the focus is (a menu whose items are all disabled has none
// to focus).
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && openPopup) {
    const anchor = openPopup.anchor;
    closeMenus();
    anchor.focus();
    e.preventDefault();
  }
});

/** An item of a popup that is not a command (the account menu's). */
export interface PopupItem {
  label: string;
  run: () => void;
  testid?: string;
}

/** Opens a popup under `anchor` holding `content` (menu items); returns its element. */
export function openPopupAt(anchor: HTMLElement, content: HTMLElement[], label: string, onClose?: () => void): HTMLElement {
  closeMenus();
  const el = h("div.menu-popup", { role: "menu", "aria-label": label, "data-testid": "menu-popup" }, ...content);
  document.body.appendChild(el);
  const rect = anchor.getBoundingClientRect();
  const width = el.offsetWidth;
  const left = Math.max(4, Math.min(rect.left, window.innerWidth - width - 4));
  el.style.left = `${left}px`;
  el.style.top = `${rect.bottom + 2}px`;
  el.style.maxHeight = `${Math.max(120, window.innerHeight - rect.bottom - 8)}px`;
  anchor.setAttribute("aria-expanded", "true");
  const close = () => {
    if (openPopup?.el !== el) return;
    openPopup = null;
    el.remove();
    anchor.setAttribute("aria-expanded", "false");
    onClose?.();
  };
  openPopup = { el, anchor, close };
  el.addEventListener("keydown", (e) => popupKey(e, el, anchor));
  return el;
}

function items(el: HTMLElement): HTMLElement[] {
  return [...el.querySelectorAll<HTMLElement>(".menu-item:not([aria-disabled='true'])")];
}

function popupKey(e: KeyboardEvent, el: HTMLElement, anchor: HTMLElement) {
  const list = items(el);
  const index = list.indexOf(document.activeElement as HTMLElement);
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    const next = list[(index + (e.key === "ArrowDown" ? 1 : -1) + list.length) % list.length];
    next?.focus();
  } else if (e.key === "Escape") {
    closeMenus();
    anchor.focus();
  } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
    const bar = anchor.closest(".menubar");
    if (!bar) return;
    const buttons = [...bar.querySelectorAll<HTMLElement>(".menubar-item")];
    const at = buttons.indexOf(anchor);
    if (at < 0) return;
    buttons[(at + (e.key === "ArrowRight" ? 1 : -1) + buttons.length) % buttons.length]?.click();
  } else if (e.key === "Tab") {
    closeMenus();
  } else {
    return;
  }
  e.preventDefault();
  e.stopPropagation();
}

/** One command as a menu item (a link for downloads), disabled when it cannot run now. */
function commandItem(commands: Commands, command: Command): HTMLElement {
  const enabled = commands.isEnabled(command);
  const checked = command.checked?.();
  const content = [
    h("span.menu-check", { "aria-hidden": "true" }, checked ? "✓" : ""),
    h("span.menu-label", {}, command.label),
    command.keys ? h("span.menu-keys", {}, command.keys) : null,
  ];
  const attrs = {
    role: checked === undefined ? "menuitem" : "menuitemcheckbox",
    "aria-checked": checked === undefined ? null : String(checked),
    "aria-disabled": enabled ? null : "true",
    tabindex: -1,
    "data-command": command.id,
    "data-testid": command.testid ?? null,
  };
  if (command.download && enabled) {
    const { href, filename } = command.download();
    return h("a.menu-item", { ...attrs, href, download: filename, onclick: () => setTimeout(closeMenus) }, ...content);
  }
  return h(
    "button.menu-item",
    {
      ...attrs,
      onclick: () => {
        if (!commands.isEnabled(command)) return;
        closeMenus();
        command.run();
      },
    },
    ...content,
  );
}

/** A menu's items, grouped with separators. */
function menuContent(commands: Commands, menu: MenuName): HTMLElement[] {
  const out: HTMLElement[] = [];
  let group: string | undefined;
  for (const command of commands.visible(menu)) {
    if (out.length && command.group !== group) out.push(h("div.menu-sep", { role: "separator" }));
    group = command.group;
    out.push(commandItem(commands, command));
  }
  return out;
}

/** The menu bar and its compact form; CSS shows one or the other by the window's width. */
export class MenuBar {
  readonly el: HTMLElement;
  private readonly buttons = new Map<MenuName, HTMLButtonElement>();

  constructor(private readonly commands: Commands) {
    const bar = h("nav.menubar", { "aria-label": "Notebook menus", role: "menubar" });
    for (const { name, label } of MENUS) {
      const button = h(
        "button.menubar-item",
        {
          role: "menuitem",
          "aria-haspopup": "menu",
          "aria-expanded": "false",
          "data-testid": `menu-${name}`,
          onclick: () => this.open(name),
          onmouseenter: () => {
            // As in desktop menus: once one is open, hovering another opens it.
            if (openPopup && openPopup.anchor.classList.contains("menubar-item") && openPopup.anchor !== button) this.open(name);
          },
        },
        label,
      );
      this.buttons.set(name, button);
      bar.appendChild(button);
    }
    const compact = h(
      "button.menu-compact",
      { "aria-haspopup": "menu", "aria-expanded": "false", "aria-label": "Menu", title: "Menu", "data-testid": "menu-compact", onclick: () => this.openCompact(compact) },
      h("span.hamburger", { "aria-hidden": "true" }, "☰"),
    );
    this.el = h("div.menus", {}, bar, compact);
  }

  /** Opens one menu (or closes it when it is the open one). */
  open(name: MenuName) {
    const button = this.buttons.get(name);
    if (!button) return;
    if (openPopup?.anchor === button) {
      closeMenus();
      return;
    }
    const popup = openPopupAt(button, menuContent(this.commands, name), MENUS.find((m) => m.name === name)?.label ?? name);
    popup.dataset.menu = name;
    items(popup)[0]?.focus();
  }

  private openCompact(anchor: HTMLElement) {
    if (openPopup?.anchor === anchor) {
      closeMenus();
      return;
    }
    const content: HTMLElement[] = [];
    for (const { name, label } of MENUS) {
      const part = menuContent(this.commands, name);
      if (!part.length) continue;
      content.push(h("div.menu-heading", { role: "presentation" }, label), ...part);
    }
    const popup = openPopupAt(anchor, content, "Menu");
    popup.classList.add("compact");
    items(popup)[0]?.focus();
  }
}

/** A popup of plain items (the account menu). */
export function popupItems(entries: (PopupItem | HTMLElement)[]): HTMLElement[] {
  return entries.map((entry) =>
    entry instanceof HTMLElement
      ? entry
      : h(
          "button.menu-item",
          {
            role: "menuitem",
            tabindex: -1,
            "data-testid": entry.testid ?? null,
            onclick: () => {
              closeMenus();
              entry.run();
            },
          },
          h("span.menu-check"),
          h("span.menu-label", {}, entry.label),
        ),
  );
}
