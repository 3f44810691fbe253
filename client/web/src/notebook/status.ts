// What the toolbar and the banners say about the kernel: its status line ("Idle · CPU · [3] ·
// 2 stale", or "Offline" when the page cannot know), whose runtime it is, and the banners
// (the server's refusal to run in someone else's runtime, a dead kernel, the idle shutdown
// and lifetime warnings). Read from `state.kernel`, which the runtime writes.

import { h } from "../dom";
import { KernelState } from "./doc";
import { holderLabel, holderOf, holderTitle } from "./runtime";

/** Warn this long before the runtime's idle shutdown (it is 90 minutes idle by default). */
const IDLE_WARNING_MS = 10 * 60 * 1000;
/** Warn this long before the kernel's maximum lifetime ends. */
const LIFETIME_WARNING_MS = 30 * 60 * 1000;

const LABELS: Record<string, string> = {
  not_started: "Not started",
  starting: "Starting…",
  idle: "Idle",
  busy: "Busy",
  dead: "Dead",
};

/** How the page is connected: only "online" means the kernel state is live. */
export type Link = "online" | "offline" | "connecting" | "reconnecting";

export class KernelStatus {
  readonly el = h("span.kernel-status", { "data-testid": "kernel-status", role: "status" });
  readonly holder = h("span.runtime-holder", { "data-testid": "runtime-holder" });

  render(kernel: KernelState, meId: string | null, link: Link) {
    if (link !== "online") {
      // What the document last said about the kernel may no longer hold: say what we know.
      this.el.dataset.status = "offline";
      const label = { offline: "Offline", connecting: "Connecting…", reconnecting: "Reconnecting…" }[link];
      this.el.replaceChildren(h("span.dot"), h("span", {}, label));
      this.el.title =
        link === "offline"
          ? "Offline: the kernel's state is unknown and nothing can run; your edits are kept and sent when the connection is back"
          : "Reconnecting to the server; your edits are kept";
      this.holder.hidden = true;
      return;
    }
    const runtime = (kernel.runtime ?? "cpu").toUpperCase();
    const queued = kernel.queue.length;
    this.el.dataset.status = kernel.status;
    this.el.replaceChildren(
      h("span.dot"),
      h("span", {}, `${LABELS[kernel.status] ?? kernel.status} · ${runtime}`),
      queued ? h("span.queue", { title: "Cells waiting to run" }, ` · ${queued} queued`) : "",
      kernel.execution_count ? h("span.muted", {}, ` · [${kernel.execution_count}]`) : "",
      kernel.stale?.length ? h("span.stale-count", { title: "Cells whose code or inputs changed since they ran", "data-testid": "stale-count" }, ` · ${kernel.stale.length} stale`) : "",
    );
    this.el.title = kernel.reason ? `Kernel ${kernel.status}: ${kernel.reason}` : `Kernel ${LABELS[kernel.status] ?? kernel.status}${kernel.gpu ? ` on ${kernel.gpu}` : ""}`;
    this.holder.textContent = holderLabel(kernel, meId);
    this.holder.title = holderTitle(kernel, meId);
    this.holder.hidden = !this.holder.textContent;
  }
}

export class Banners {
  readonly el = h("div.banners");
  /** The server's last refusal to run here (someone else's runtime, not shared), until the
   * runtime changes hands or the person dismisses it. */
  private refusal: { message: string; holder: string | null } | null = null;
  private lost = false;

  constructor(private readonly kernel: () => KernelState) {}

  /** The server refused a run: it holds until the runtime stops, so it stays in view. */
  refuse(message: string) {
    this.refusal = { message, holder: holderOf(this.kernel())?.id ?? null };
    this.render();
  }

  /** A run went through: an earlier refusal is out of date. */
  ran() {
    if (!this.refusal) return;
    this.refusal = null;
    this.render();
  }

  /** This person lost access: nothing else matters. */
  accessLost() {
    this.lost = true;
    this.el.replaceChildren(h("div.banner.error", {}, "You no longer have access to this notebook."));
  }

  render() {
    if (this.lost) return;
    const kernel = this.kernel();
    // A refusal named the runtime of the time: once it stops or changes hands, it no longer holds.
    if (this.refusal && this.refusal.holder !== (holderOf(kernel)?.id ?? null)) this.refusal = null;
    const now = Date.now();
    const banners: HTMLElement[] = [];
    if (this.refusal) {
      banners.push(
        h(
          "div.banner.error",
          { role: "alert", "data-testid": "runtime-refused" },
          this.refusal.message,
          " ",
          h("button.link", { onclick: () => ((this.refusal = null), this.render()) }, "Dismiss"),
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
    this.el.replaceChildren(...banners);
  }
}
