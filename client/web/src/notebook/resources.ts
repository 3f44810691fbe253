// The runtime's RAM and disk, live, as Colab shows them in its header: read from
// `state.kernel.resources`, which the runtime samples every few seconds while a kernel runs
// (its cgroup's memory and `/content` in a sandbox; the process's resident memory and its
// scratch folder otherwise).

import { h } from "../dom";
import type { KernelState } from "./doc";

/** `state.kernel.resources`, in bytes. */
/** `state.kernel.resources` (generated from the Rust type). */
export type { Resources } from "../generated/kernel";

/** 1536 MiB → "1.5 GB"; binary units with the short names people read, as Colab does. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Math.max(0, bytes);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

function gauge(label: string, used: number, limit: number, testid: string): HTMLElement {
  const share = limit > 0 ? Math.min(1, used / limit) : 0;
  const level = share >= 0.9 ? "full" : share >= 0.7 ? "high" : "ok";
  const text = limit > 0 ? `${formatBytes(used)} / ${formatBytes(limit)}` : formatBytes(used);
  return h(
    "span.gauge",
    { "data-testid": testid, title: `${label}: ${text} (${Math.round(share * 100)}%)` },
    `${label} `,
    h("span.bar", { "data-level": level }, h("span", { style: `width:${(share * 100).toFixed(1)}%` })),
    h("span.value", {}, ` ${text}`),
  );
}

export class ResourcesView {
  readonly el = h("span.runtime-resources", { hidden: true, "data-testid": "resources", "aria-label": "Runtime resources" });
  private shown = "";

  update(kernel: KernelState) {
    const resources = kernel.resources;
    const key = resources ? JSON.stringify(resources) : "";
    if (key === this.shown) return;
    this.shown = key;
    this.el.hidden = !resources;
    if (!resources) {
      this.el.replaceChildren();
      return;
    }
    this.el.replaceChildren(
      gauge("RAM", resources.memory_bytes, resources.memory_limit_bytes, "resources-ram"),
      gauge("Disk", resources.disk_bytes, resources.disk_limit_bytes, "resources-disk"),
    );
  }
}
