// Browser end-to-end test of the notebook page's Colab habits (issue 15: code intelligence,
// input(), cell status, runtime resources), against a real `tandem serve`, driven by
// playwright-core on Debian's Chromium. Run by tests/tests/web_intel.rs, which starts the
// server:
//
//   TANDEM_URL=http://127.0.0.1:PORT TANDEM_SIGNIN_URL='http://127.0.0.1:PORT/signin?token=…' \
//   SCREENSHOT_DIR=target/screenshots CHROMIUM=/usr/bin/chromium node client/web/e2e/intel.e2e.mjs
//
// Scenario: Ada and Bob (an editor) sign in. Before any run, Tab after `my_v` completes
// `my_variable` from the notebook's own text (no kernel yet). Ada runs `import os`: the cell
// shows ✓ with its time, and on hover when and by whom; "run by" reads in a neutral colour.
// `os.pa` + Tab lists `path` from the kernel; Tab accepts it. Shift+Tab inside `print(` and
// hovering `os` show docstrings. `1/0` shows ✗. A cell calling input() shows Ada a prompt
// field and Bob that it waits for Ada; Ada's answer reaches the cell's output on both pages.
// The RAM and Disk gauges show numbers. After a reload ✓, ✗ and their times are still there.
// Screenshots go to SCREENSHOT_DIR as ci15-*.png.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.TANDEM_URL ?? "http://127.0.0.1:8080";
const SIGNIN_URL = process.env.TANDEM_SIGNIN_URL;
if (!SIGNIN_URL) throw new Error("set TANDEM_SIGNIN_URL to the `Sign in at …` link the server printed");
const SHOTS = process.env.SCREENSHOT_DIR ?? "target/screenshots";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The first run also starts a kernel: generous on a small CI machine. */
const RUN_TIMEOUT = 90_000;

const started = Date.now();
const log = (...args) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args);

await mkdir(SHOTS, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });

const cspViolations = [];
async function shot(page, name) {
  const file = path.join(SHOTS, `ci15-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log("screenshot", file);
}

async function signIn(name, email) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (/Content.Security.Policy|CSP violation/i.test(msg.text())) cspViolations.push(`[${name}] ${msg.text()}`);
  });
  page.on("pageerror", (error) => {
    console.error(`[${name}] page error:`, error);
    cspViolations.push(`[${name}] page error: ${error}`);
  });
  await page.goto(`${SIGNIN_URL}&return_to=${encodeURIComponent("/home")}`);
  await page.fill('input[name="name"]', name);
  await page.fill('input[name="email"]', email);
  await Promise.all([page.waitForURL(`${BASE}/home`), page.click('button[type="submit"]')]);
  return { context, page, name };
}

/** A REST call from the page, as the app makes it (session cookie, CSRF header). */
function apiCall(page, method, url, body) {
  return page.evaluate(
    async ({ method, url, body }) => {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("tandem_csrf="))?.slice("tandem_csrf=".length);
      const headers = { "content-type": "application/json" };
      if (csrf) headers["x-csrf-token"] = decodeURIComponent(csrf);
      const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    { method, url, body },
  );
}

const cellOf = (page, index) => page.locator('[data-testid="cell"]').nth(index);
const editorOf = (page, index) => cellOf(page, index).locator(".cm-content");
const cellText = (page, index) => cellOf(page, index).evaluate((el) => el.tandemCell.editorText() ?? el.tandemCell.source());
const completionList = (page) => page.locator(".cm-tooltip-autocomplete");

/** Asserts that cell `index` comes to hold `expected` within two seconds (a Tab that lands
 * while the list is changing is accepted a moment later). */
async function textBecomes(page, index, expected, message) {
  const until = Date.now() + 2000;
  let text = await cellText(page, index);
  while (text !== expected && Date.now() < until) {
    await page.waitForTimeout(25);
    text = await cellText(page, index);
  }
  assert.equal(text, expected, message);
}

async function typeInto(page, index, text) {
  await editorOf(page, index).click();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(text);
}

const code = (id, source) => ({ id, cell_type: "code", source, metadata: {}, outputs: [], execution_count: null });

try {
  const ada = await signIn("Ada Lovelace", "ada@intel.example");
  const bob = await signIn("Bob Babbage", "bob@intel.example");
  const created = await apiCall(ada.page, "POST", "/api/notebooks", {
    title: "Colab habits",
    ipynb: {
      nbformat: 4,
      nbformat_minor: 5,
      metadata: {},
      cells: [
        code("fresh", ""),
        code("imp", "import os"),
        code("complete", ""),
        code("doc", ""),
        code("boom", "1/0"),
        code("ask", 'name = input("Your name? ")\nprint("hello", name)'),
      ],
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created));
  const id = created.body.id;
  const shared = await apiCall(ada.page, "PUT", `/api/notebooks/${id}/sharing`, {
    general_access: "restricted",
    link_role: "viewer",
    grants: [{ email: "bob@intel.example", role: "editor" }],
  });
  assert.equal(shared.status, 200, JSON.stringify(shared));
  for (const { page } of [ada, bob]) {
    await page.goto(`${BASE}/n/${id}`);
    await editorOf(page, 5).waitFor();
    await page.locator('[data-testid="connection"][data-state="online"]').waitFor();
  }
  log("both in the notebook");

  // --- Before any run: Tab completes from the notebook's own text --------------------------
  await typeInto(ada.page, 0, "my_variable = 1\nmy_v");
  await ada.page.keyboard.press("Tab");
  await completionList(ada.page).locator("li", { hasText: "my_variable" }).first().waitFor();
  await shot(ada.page, "static-completion");
  await ada.page.keyboard.press("Tab");
  await textBecomes(ada.page, 0, "my_variable = 1\nmy_variable", "Tab accepts the completion");
  // Tab at the start of a line still indents.
  await ada.page.keyboard.press("Enter");
  await ada.page.keyboard.press("Tab");
  assert.equal(await cellText(ada.page, 0), "my_variable = 1\nmy_variable\n    ", "Tab indents where no name precedes it");
  log("static completion before any run; Tab indents elsewhere");

  // --- Ada runs `import os`: ✓ and its time, on hover when and by whom ---------------------
  await editorOf(ada.page, 1).click();
  await ada.page.keyboard.press("Control+Enter");
  for (const { page } of [ada, bob]) {
    await cellOf(page, 1).locator('[data-testid="run-status"][data-status="ok"]').waitFor({ timeout: RUN_TIMEOUT });
  }
  const okStatus = cellOf(bob.page, 1).locator('[data-testid="run-status"]');
  assert.match(await okStatus.innerText(), /^✓\s*\d+(\.\d+)?s$/);
  const title = await okStatus.getAttribute("title");
  assert.match(title, /^Completed at .+ by Ada Lovelace \(took \d+\.\d\d s\)$/, title);
  const ranBy = cellOf(bob.page, 1).locator(".cell-ran-by");
  await ranBy.filter({ hasText: "run by Ada Lovelace" }).waitFor();
  const colour = await ranBy.evaluate((el) => getComputedStyle(el).color);
  assert.equal(colour, "rgb(95, 99, 104)", "run by NAME in the neutral muted colour");
  log("✓ with elapsed time and who ran it");

  // --- The kernel completes `os.pa` ----------------------------------------------------------
  await typeInto(ada.page, 2, "os.pa");
  await ada.page.keyboard.press("Tab");
  const isPath = (label) => /^path(\s|$)/.test(label.trim());
  await completionList(ada.page).locator("li", { hasText: /^path/ }).first().waitFor({ timeout: 20_000 });
  const offered = await completionList(ada.page).locator("li").allInnerTexts();
  assert.ok(offered.some(isPath), `completions: ${offered}`);
  await shot(ada.page, "completions");
  // Pick `path` and accept it with Tab, as a person does: arrow to it, check it is the one
  // selected, Tab. A list that refreshed meanwhile (the kernel's fuller answer) moves the
  // selection, and Tab then accepts nothing: look again and pick again.
  const list = completionList(ada.page);
  for (let attempt = 0; ; attempt++) {
    const labels = await list.locator("li").allInnerTexts();
    const selected = await list.locator("li").evaluateAll((items) => items.findIndex((li) => li.getAttribute("aria-selected") === "true"));
    const wanted = labels.findIndex(isPath);
    for (let i = Math.max(selected, 0); i < wanted; i++) await ada.page.keyboard.press("ArrowDown");
    const now = (await list.locator('li[aria-selected="true"]').allInnerTexts())[0] ?? "";
    if (!isPath(now)) {
      assert.ok(attempt < 5, `path never stayed selected: ${labels}`);
      await ada.page.waitForTimeout(100);
      continue;
    }
    await ada.page.keyboard.press("Tab");
    const until = Date.now() + 1000;
    while ((await cellText(ada.page, 2)) === "os.pa" && Date.now() < until) await ada.page.waitForTimeout(25);
    if ((await cellText(ada.page, 2)) !== "os.pa" || attempt >= 5) break;
  }
  assert.equal(await cellText(ada.page, 2), "os.path", "Tab accepts the kernel's completion");
  log("kernel completions:", offered.slice(0, 6).join(", "));

  // --- Shift+Tab inside a call, and hovering a name, show the docstring ---------------------
  await typeInto(ada.page, 3, "print(");
  await ada.page.keyboard.press("Shift+Tab");
  const tip = ada.page.locator('[data-testid="doc-tooltip"]');
  await tip.filter({ hasText: "Prints the values" }).waitFor({ timeout: 20_000 });
  assert.match(await tip.innerText(), /Signature:\s*print\(/);
  await shot(ada.page, "signature-help");
  await ada.page.keyboard.type("1");
  await tip.waitFor({ state: "detached" });
  const osBox = await cellOf(ada.page, 1)
    .locator(".cm-line")
    .first()
    .evaluate((line) => {
      const walker = document.createTreeWalker(line, NodeFilter.SHOW_TEXT);
      for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        const at = node.textContent.indexOf("os");
        if (at < 0) continue;
        const range = document.createRange();
        range.setStart(node, at);
        range.setEnd(node, at + 1);
        const rect = range.getBoundingClientRect();
        return { x: rect.x + rect.width / 2, y: rect.y + rect.height / 2 };
      }
      return null;
    });
  assert.ok(osBox, "found `os` in the cell");
  await ada.page.mouse.move(osBox.x, osBox.y);
  await tip.filter({ hasText: "OS routines" }).waitFor({ timeout: 20_000 });
  await shot(ada.page, "hover-docstring");
  await ada.page.mouse.move(5, 5);
  log("docstrings on Shift+Tab and on hover");

  // --- ✗ for an error ----------------------------------------------------------------------
  await cellOf(ada.page, 4).locator(".run-cell").click();
  await cellOf(ada.page, 4).locator('[data-testid="run-status"][data-status="error"]').waitFor({ timeout: RUN_TIMEOUT });
  assert.match(await cellOf(ada.page, 4).locator('[data-testid="run-status"]').innerText(), /^✗/);
  assert.match(await cellOf(ada.page, 4).locator('[data-testid="run-status"]').getAttribute("title"), /^Failed at /);

  // --- input(): Ada answers under the cell, Bob sees that it waits for her -------------------
  await cellOf(ada.page, 5).locator(".run-cell").click();
  const field = cellOf(ada.page, 5).locator('[data-testid="stdin-input"]');
  await field.waitFor({ timeout: RUN_TIMEOUT });
  await cellOf(ada.page, 5).locator('[data-testid="stdin"]', { hasText: "Your name?" }).waitFor();
  await cellOf(bob.page, 5).locator('[data-testid="stdin"]', { hasText: "Waiting for input from Ada Lovelace" }).waitFor();
  assert.equal(await cellOf(bob.page, 5).locator('[data-testid="stdin-input"]').count(), 0, "Bob gets no field");
  await shot(ada.page, "input-prompt");
  await shot(bob.page, "input-waiting");
  await field.fill("Ada");
  await field.press("Enter");
  for (const { page } of [ada, bob]) {
    await cellOf(page, 5).locator(".outputs pre", { hasText: "hello Ada" }).waitFor({ timeout: 20_000 });
    await cellOf(page, 5).locator('[data-testid="stdin"]').waitFor({ state: "hidden" });
  }
  assert.match(await cellOf(bob.page, 5).locator(".outputs").innerText(), /Your name\? Ada\s+hello Ada/);
  log("input() answered by Ada, seen by Bob");

  // --- RAM and Disk ------------------------------------------------------------------------
  for (const gauge of ["resources-ram", "resources-disk"]) {
    const el = ada.page.locator(`[data-testid="${gauge}"]`);
    await el.waitFor({ timeout: 30_000 });
    assert.match(await el.innerText(), /^(RAM|Disk)\s+\d+(\.\d+)? (B|KB|MB|GB|TB) \/ \d+(\.\d+)? (KB|MB|GB|TB)$/, await el.innerText());
  }
  await shot(ada.page, "resources");
  log("RAM:", await ada.page.locator('[data-testid="resources-ram"]').innerText());

  // --- After a reload, ✓ and ✗ with their times are still there ------------------------------
  const before = await cellOf(ada.page, 1).locator('[data-testid="run-status"]').innerText();
  await ada.page.reload();
  await cellOf(ada.page, 1).locator('[data-testid="run-status"][data-status="ok"]').waitFor();
  await cellOf(ada.page, 4).locator('[data-testid="run-status"][data-status="error"]').waitFor();
  assert.equal(await cellOf(ada.page, 1).locator('[data-testid="run-status"]').innerText(), before);
  await shot(ada.page, "status-after-reload");
  log("status survives a reload:", before);

  assert.deepEqual(cspViolations, [], "no CSP violation or page error");
  log("all passed");
} finally {
  await browser.close();
}
