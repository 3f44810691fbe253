// First notebook page load, measured in Chromium: how long until the first cell's editor is
// ready, and how many bytes went over the wire, for a visitor with a fresh browser (no cache,
// no cookies) opening a notebook by its link. Starts its own `tandem serve` on a scratch data
// dir with the web client of --web-dir, so two builds compare on one machine:
//
//   node client/web/bench/page-load.mjs --bin target/debug/tandem \
//     --web-dir BEFORE_DIST --label before --web-dir client/web/dist --label after [--runs 15]
//
// Each --web-dir is paired with the --label after it; each gets a server of its own, all
// running at once. For every network profile (loopback as is, and Chromium's throttling to a
// 20 Mbit/s link and a "fast 3G"-like one) it loads each build's page --runs times in fresh
// contexts, alternating between builds, and prints a markdown table (medians, and the min–max
// of the load time) for docs/benchmarks.md. The notebook has twelve code cells and a markdown cell
// without math, as most notebooks start.

import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const BIN = path.resolve(option("--bin", "target/debug/tandem"));
const RUNS = Number(option("--runs", "15"));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const builds = [];
args.forEach((arg, i) => {
  if (arg === "--web-dir") builds.push({ dir: path.resolve(args[i + 1]), label: args[i + 1] });
  if (arg === "--label" && builds.length) builds[builds.length - 1].label = args[i + 1];
});
if (!builds.length) builds.push({ dir: path.resolve("client/web/dist"), label: "client/web/dist" });

/** Chromium's network throttling (CDP Network.emulateNetworkConditions); bytes per second. */
const PROFILES = [
  { name: "loopback", conditions: null },
  { name: "20 Mbit/s, 20 ms RTT", conditions: { latency: 20, downloadThroughput: 2_500_000, uploadThroughput: 1_250_000 } },
  { name: "fast 3G (1.6 Mbit/s, 150 ms RTT)", conditions: { latency: 150, downloadThroughput: 200_000, uploadThroughput: 96_000 } },
];

/** `tandem serve` on a scratch dir, with its address once it listens. */
async function serve(webDir) {
  const data = await mkdtemp(path.join(os.tmpdir(), "tandem-bench-web-"));
  const child = spawn(BIN, ["serve", "--data", data, "--drive-dir", path.join(data, "drive"), "--kernel-dir", path.join(data, "kernels"), "--listen", "127.0.0.1:0", "--web-dir", webDir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, RUST_LOG: "warn" },
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`tandem serve did not start:\n${out}`)), 60_000);
    const read = (chunk) => {
      out += chunk;
      const match = /listening on (http:\/\/[0-9.:]+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => reject(new Error(`tandem serve exited (${code}):\n${out}`)));
  });
  const token = spawnSync(BIN, ["token", "create", "--data", data, "--email", "bench@example.com"], { encoding: "utf8" })
    .stdout.trim()
    .split("\n")
    .pop();
  return {
    url,
    token,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((resolve) => child.once("exit", resolve));
      await rm(data, { recursive: true, force: true });
    },
  };
}

/** A notebook anyone with the link may view, so a fresh browser opens it signed out. */
async function notebook({ url, token }) {
  const cells = [
    { cell_type: "markdown", source: "# Analysis\nA notebook as most start: text and code, no math.", metadata: {} },
    ...Array.from({ length: 12 }, (_, i) => ({
      cell_type: "code",
      source: `import math\nvalues = [math.sqrt(n) for n in range(${i * 10}, ${i * 10 + 10})]\nprint(sum(values))`,
      metadata: {},
      outputs: [],
      execution_count: null,
    })),
  ];
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const created = await fetch(`${url}/api/notebooks`, {
    method: "POST",
    headers,
    body: JSON.stringify({ title: "Bench", ipynb: { nbformat: 4, nbformat_minor: 5, metadata: {}, cells } }),
  });
  const { id } = await created.json();
  const shared = await fetch(`${url}/api/notebooks/${id}/sharing`, {
    method: "PUT",
    headers,
    body: JSON.stringify({ general_access: "anyone_with_link", link_role: "viewer", grants: [] }),
  });
  if (!shared.ok) throw new Error(`sharing failed: ${shared.status}`);
  return id;
}

/** One load in a fresh context: ms until the first editor is ready, bytes on the wire. */
async function load(browser, pageUrl, conditions) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  if (conditions) await cdp.send("Network.emulateNetworkConditions", { offline: false, ...conditions });
  // Bytes as received, headers included (what the network carried), HTTP only.
  let bytes = 0;
  let requests = 0;
  const http = new Set();
  cdp.on("Network.requestWillBeSent", (e) => {
    if (/^https?:/.test(e.request.url)) http.add(e.requestId);
  });
  cdp.on("Network.loadingFinished", (e) => {
    if (!http.has(e.requestId)) return;
    bytes += e.encodedDataLength;
    requests += 1;
  });
  await page.goto(pageUrl, { waitUntil: "commit" });
  await page.locator('[data-testid="cell"] .cm-content >> visible=true').first().waitFor({ timeout: 120_000 });
  // Time from the navigation's start, by the page's own clock.
  const ms = await page.evaluate(() => performance.now());
  // Let the requests the page made before it was ready finish being counted.
  await page.waitForLoadState("load");
  await context.close();
  return { ms, bytes, requests };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
const rows = [];
const servers = [];
try {
  // Every build's server runs at once, and loads alternate between them, so that whatever
  // else the machine is doing weighs on each build alike.
  for (const build of builds) {
    const server = await serve(build.dir);
    servers.push(server);
    build.pageUrl = `${server.url}/n/${await notebook(server)}`;
    await load(browser, build.pageUrl, null); // warm the server's file cache
  }
  for (const profile of PROFILES) {
    const results = new Map(builds.map((b) => [b, []]));
    for (let i = 0; i < RUNS; i++) {
      for (const build of builds) results.get(build).push(await load(browser, build.pageUrl, profile.conditions));
    }
    for (const build of builds) {
      const runs = results.get(build);
      const ms = runs.map((r) => r.ms);
      const row = {
        build: build.label,
        profile: profile.name,
        median: median(ms),
        min: Math.min(...ms),
        max: Math.max(...ms),
        kib: median(runs.map((r) => r.bytes)) / 1024,
        requests: median(runs.map((r) => r.requests)),
      };
      rows.push(row);
      console.error(`${row.build} / ${row.profile}: ${row.median.toFixed(0)} ms, ${row.kib.toFixed(0)} KiB`);
    }
  }
} finally {
  await browser.close();
  for (const server of servers) await server.stop();
}

console.log(`${RUNS} fresh-context loads per row; time until the first cell's editor is ready.\n`);
console.log("| build | network | editor ready, median ms | min–max ms | transferred KiB | requests |");
console.log("|---|---|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(`| ${r.build} | ${r.profile} | ${r.median.toFixed(0)} | ${r.min.toFixed(0)}–${r.max.toFixed(0)} | ${r.kib.toFixed(1)} | ${r.requests} |`);
}
