// Browser test of the notebook page's shell (issue 15) against a real `tandem serve`, driven
// by playwright-core on Debian's Chromium. Run by tests/tests/web.rs
// (`notebook_page_shell_in_chromium`), which starts the server:
//
//   TANDEM_URL=http://127.0.0.1:PORT TANDEM_SIGNIN_URL='http://127.0.0.1:PORT/signin?token=…' \
//   SCREENSHOT_DIR=target/screenshots CHROMIUM=/usr/bin/chromium node client/web/e2e/page.e2e.mjs
//
// At 1920×1080, 1366×768, 1024×768 and 800×700: no horizontal overflow, the header on one
// row (never over the sticky toolbar, even scrolled), a tall cell's controls below the toolbar
// when scrolled, no cell control over the code's first line (bounding boxes), and at 800 px
// editors at least 70% of the window's width. Then: Ctrl+M B inserts a cell and types nothing;
// the menus, the command palette (Ctrl+Shift+P) and the shortcut sheet (Ctrl+M H); a 2000-line
// output scrolls in its box, expands, and is cleared by Ada for Bob too (per cell and "Clear
// all outputs"); a deleted cell (with outputs) comes back with Undo, for Bob too, and stays;
// Bob offline reads "Offline" with Run disabled, and his offline edit reaches Ada once he is
// back; the table of contents scrolls to a heading and sections collapse; a bare `#@title`
// shows no form box; two remote carets at one spot keep their labels apart; find in the
// notebook; dark mode follows the system; a signed-out page logs no 401 for /api/me.
// Screenshots: SCREENSHOT_DIR/page15-*.png.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.TANDEM_URL ?? "http://127.0.0.1:8080";
const SIGNIN_URL = process.env.TANDEM_SIGNIN_URL;
if (!SIGNIN_URL) throw new Error("set TANDEM_SIGNIN_URL to the `Sign in at …` link the server printed");
const SHOTS = process.env.SCREENSHOT_DIR ?? "target/screenshots";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
/** The first run also starts a kernel (Python, IPython): generous on a small CI machine. */
const RUN_TIMEOUT = 90_000;
const VIEWPORTS = [
  { width: 1920, height: 1080 },
  { width: 1366, height: 768 },
  { width: 1024, height: 768 },
  { width: 800, height: 700 },
];

const started = Date.now();
const log = (...args) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args);
await mkdir(SHOTS, { recursive: true });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });

async function shot(page, name) {
  const file = path.join(SHOTS, `page15-${name}.png`);
  await page.screenshot({ path: file, fullPage: false });
  log("screenshot", file);
}

const pages = [];
async function signIn(name, email) {
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
  const page = await context.newPage();
  pages.push({ name, page });
  page.on("pageerror", (error) => console.error(`[${name}] page error:`, error));
  page.on("console", (msg) => {
    if (msg.type() === "error") console.error(`[${name}] console:`, msg.text());
  });
  await page.goto(`${SIGNIN_URL}&return_to=${encodeURIComponent("/home")}`);
  await page.fill('input[name="name"]', name);
  await page.fill('input[name="email"]', email);
  await Promise.all([page.waitForURL(`${BASE}/home`), page.click('button[type="submit"]')]);
  return { context, page, name, email };
}

/** A JSON API call from a signed-in page (its cookie, its CSRF token). */
function apiCall(page, method, url, body) {
  return page.evaluate(
    async ({ method, url, body }) => {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("tandem_csrf="))?.split("=")[1] ?? "";
      const response = await fetch(url, {
        method,
        headers: { "content-type": "application/json", "x-csrf-token": decodeURIComponent(csrf) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, body: await response.json().catch(() => null) };
    },
    { method, url, body },
  );
}

const cells = (page) => page.locator('[data-testid="cell"]');
const cellById = (page, id) => page.locator(`[data-testid="cell"][data-cell-id="${id}"]`);
const textOf = (page, id) => cellById(page, id).evaluate((el) => el.tandemCell.editorText() ?? el.tandemCell.source());
/** Two animation frames: layout and ResizeObservers have run. */
const settle = (page) => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));

async function waitFor(what, check, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last === true) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: ${JSON.stringify(last)}`);
}

const code = (id, source, outputs = [], count = null) => ({ id, cell_type: "code", source, metadata: {}, outputs, execution_count: count });
const markdown = (id, source) => ({ id, cell_type: "markdown", source, metadata: {} });
const TALL = Array.from({ length: 40 }, (_, i) => `# line ${i + 1} of a tall cell`).join("\n");
const IPYNB = {
  nbformat: 4,
  nbformat_minor: 5,
  metadata: {},
  cells: [
    markdown("md1", "# Intro\nWhat this notebook is about."),
    code("c1", "x = 1"),
    code("c2", TALL),
    markdown("md2", "## Details"),
    code("c3", "#@title\ny = 5"),
    code("c4", "#@title Settings\nz = 3"),
    code("c5", "print('hello')", [{ output_type: "stream", name: "stdout", text: "hello\n" }], 1),
    markdown("md3", "# Appendix"),
    code("c6", "w = 2"),
  ],
};

/** Layout facts of a page, measured in it. */
function measure(page) {
  return page.evaluate(() => {
    const rect = (el) => {
      const r = el.getBoundingClientRect();
      return { top: r.top, bottom: r.bottom, left: r.left, right: r.right, width: r.width, height: r.height };
    };
    const visible = (el) => {
      const s = getComputedStyle(el);
      const r = el.getBoundingClientRect();
      return s.display !== "none" && s.visibility !== "hidden" && r.width > 0 && r.height > 0;
    };
    const header = document.querySelector('[data-testid="header"]');
    const toolbar = document.querySelector('[data-testid="toolbar"]');
    const headerChildren = [...header.querySelectorAll(":scope > *, .nb-titlebox > *, .menubar > *, .panel-toggles > *")].filter(visible);
    const overlaps = [];
    for (const cell of document.querySelectorAll('[data-testid="cell"]')) {
      const line = cell.querySelector(".cm-content .cm-line") ?? cell.querySelector(".cell-preview");
      if (!line || !visible(line)) continue;
      const l = line.getBoundingClientRect();
      for (const control of cell.querySelectorAll(".cell-side button, .cell-side select, .cell-side .avatar")) {
        const c = control.getBoundingClientRect();
        if (!c.width || !c.height) continue;
        const apart = c.right <= l.left || c.left >= l.right || c.bottom <= l.top || c.top >= l.bottom;
        if (!apart) overlaps.push(`${cell.dataset.cellId}: ${control.className || control.tagName} over the first line`);
      }
    }
    return {
      scrollWidth: document.documentElement.scrollWidth,
      innerWidth: window.innerWidth,
      header: rect(header),
      toolbar: rect(toolbar),
      headerChildren: headerChildren.map((el) => ({ what: el.className || el.tagName, ...rect(el) })),
      overlaps,
      editorWidths: [...document.querySelectorAll('[data-testid="cell"].code .cm-editor')].map((el) => el.getBoundingClientRect().width),
    };
  });
}

try {
  const ada = await signIn("Ada Lovelace", "ada@example.com");
  const bob = await signIn("Bob Babbage", "bob@example.com");
  const carol = await signIn("Carol Shaw", "carol@example.com");
  const created = await apiCall(ada.page, "POST", "/api/notebooks", { title: "Layout and habits", ipynb: IPYNB });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const shared = await apiCall(ada.page, "PUT", `/api/notebooks/${id}/sharing`, {
    general_access: "restricted",
    link_role: "viewer",
    grants: [
      { email: "bob@example.com", role: "editor" },
      { email: "carol@example.com", role: "editor" },
    ],
  });
  assert.equal(shared.status, 200, JSON.stringify(shared.body));
  for (const person of [ada, bob, carol]) {
    await person.page.goto(`${BASE}/n/${id}`);
    await person.page.locator('[data-testid="connection"][data-state="online"]').waitFor();
    await cellById(person.page, "c6").locator(".cm-content").waitFor();
  }
  const page = ada.page;

  // --- Layout at four widths ------------------------------------------------------------------
  for (const viewport of VIEWPORTS) {
    const label = `${viewport.width}x${viewport.height}`;
    await page.setViewportSize(viewport);
    await page.evaluate(() => window.scrollTo(0, 0));
    await settle(page);
    let m = await measure(page);
    assert.ok(m.scrollWidth <= m.innerWidth, `${label}: no horizontal overflow (scrollWidth ${m.scrollWidth} > ${m.innerWidth})`);
    // One row: a header no taller than one line of controls, every part inside it.
    assert.ok(m.header.height <= 56, `${label}: header is one row (${m.header.height}px)`);
    for (const part of m.headerChildren) {
      assert.ok(part.top >= m.header.top - 1 && part.bottom <= m.header.bottom + 1, `${label}: ${part.what} stays in the header row`);
      assert.ok(part.right <= m.innerWidth + 0.5 && part.left >= -0.5, `${label}: ${part.what} is on screen`);
    }
    assert.ok(m.header.bottom <= m.toolbar.top + 0.5, `${label}: the header ends where the toolbar starts`);
    assert.deepEqual(m.overlaps, [], `${label}: cell controls keep off the code's first line`);
    if (viewport.width <= 800) {
      const narrowest = Math.min(...m.editorWidths);
      assert.ok(narrowest >= 0.7 * m.innerWidth, `${label}: editors are ≥ 70% of the width (${narrowest}px of ${m.innerWidth})`);
    }
    // The cell "x = 1" selected shows its tools, still clear of its code.
    await cellById(page, "c1").locator(".marker").click();
    m = await measure(page);
    assert.deepEqual(m.overlaps, [], `${label}: a selected cell's controls keep off its code`);
    await shot(page, `viewport-${label}`);

    // Scrolled into a tall cell: the toolbar is not covered, the cell's controls stay below it.
    await cellById(page, "c2").locator(".marker").click();
    await page.evaluate(() => {
      const cell = document.querySelector('[data-cell-id="c2"]');
      const toolbar = document.querySelector('[data-testid="toolbar"]').getBoundingClientRect();
      window.scrollBy(0, cell.getBoundingClientRect().top - toolbar.bottom + 200);
    });
    await settle(page);
    const scrolled = await page.evaluate(() => {
      const header = document.querySelector('[data-testid="header"]').getBoundingClientRect();
      const toolbar = document.querySelector('[data-testid="toolbar"]');
      const t = toolbar.getBoundingClientRect();
      const covered = [...toolbar.querySelectorAll("button, select, .kernel-status")]
        .filter((el) => getComputedStyle(el).display !== "none" && el.getBoundingClientRect().width > 0)
        .filter((el) => {
          const r = el.getBoundingClientRect();
          const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          return !(hit && toolbar.contains(hit));
        })
        .map((el) => el.dataset.testid ?? el.className);
      const cell = document.querySelector('[data-cell-id="c2"]');
      const select = cell.querySelector(".cell-tools select").getBoundingClientRect();
      const hit = document.elementFromPoint(select.left + select.width / 2, select.top + select.height / 2);
      return {
        headerBottom: header.bottom,
        toolbarTop: t.top,
        toolbarBottom: t.bottom,
        cellTop: cell.getBoundingClientRect().top,
        covered,
        selectTop: select.top,
        selectShown: Boolean(hit && cell.querySelector(".cell-tools").contains(hit)),
      };
    });
    assert.ok(scrolled.cellTop < scrolled.toolbarBottom, `${label}: the tall cell's top is scrolled under the toolbar`);
    assert.ok(scrolled.headerBottom <= scrolled.toolbarTop + 0.5, `${label}: scrolled, the header stays above the toolbar`);
    assert.deepEqual(scrolled.covered, [], `${label}: nothing covers the toolbar's controls`);
    assert.ok(scrolled.selectTop >= scrolled.toolbarBottom - 0.5 && scrolled.selectShown, `${label}: the tall cell's controls show below the toolbar (${JSON.stringify(scrolled)})`);
    await shot(page, `scrolled-${label}`);
    log(`layout holds at ${label}`);
  }

  // At 800 px the panel toggles live in the View menu; narrower still (a phone), the menu
  // bar folds into one ☰ button holding every menu, and nothing leaves the screen.
  assert.ok(!(await page.locator('[data-testid="toc-toggle"]').isVisible()), "the panel toggles fold into View at 800 px");
  await page.setViewportSize({ width: 600, height: 700 });
  await settle(page);
  const phone = await measure(page);
  assert.ok(phone.scrollWidth <= phone.innerWidth, `600 px: no horizontal overflow (${phone.scrollWidth})`);
  assert.ok(phone.header.height <= 56, "600 px: the header is one row");
  assert.ok(await page.locator('[data-testid="menu-compact"]').isVisible(), "the ☰ menu shows at 600 px");
  assert.ok(!(await page.locator('[data-testid="menu-file"]').isVisible()), "the menu bar folds at 600 px");
  await page.click('[data-testid="menu-compact"]');
  await page.locator('[data-testid="menu-popup"] .menu-heading', { hasText: "Runtime" }).waitFor();
  const popup = await page.locator('[data-testid="menu-popup"]').boundingBox();
  assert.ok(popup.x >= 0 && popup.x + popup.width <= 600, "the ☰ menu is on screen");
  await shot(page, "menu-compact-600");
  await page.keyboard.press("Escape");
  await page.setViewportSize({ width: 1366, height: 768 });
  await page.evaluate(() => window.scrollTo(0, 0));

  // --- Menus, palette, shortcut sheet -------------------------------------------------------------
  await page.click('[data-testid="menu-file"]');
  for (const item of ["New notebook", "Upload notebook…", "Download .ipynb", "Download .py", "Version history"]) {
    await page.locator('[data-testid="menu-popup"] .menu-item', { hasText: item }).waitFor();
  }
  await shot(page, "menu-file");
  const [pyDownload] = await Promise.all([page.waitForEvent("download"), page.click('[data-testid="download-py"]')]);
  assert.equal(pyDownload.suggestedFilename(), "Layout and habits.py");
  await page.click('[data-testid="menu-runtime"]');
  for (const item of ["Run all", "Run before", "Run selection and after", "Run stale cells", "Interrupt execution", "Restart runtime", "Change runtime type…"]) {
    await page.locator('[data-testid="menu-popup"] .menu-item', { hasText: item }).waitFor();
  }
  await shot(page, "menu-runtime");
  await page.keyboard.press("Escape");

  await cellById(page, "c1").locator(".cm-content").click();
  await page.keyboard.press("Control+Shift+P");
  await page.locator('[data-testid="palette"]').waitFor();
  await page.fill('[data-testid="palette-input"]', "clear all");
  const first = page.locator('[data-testid="palette"] .palette-item').first();
  assert.equal(await first.locator(".palette-label").textContent(), "Clear all outputs");
  await page.fill('[data-testid="palette-input"]', "");
  const listed = await page.locator('[data-testid="palette"] .palette-item').count();
  assert.ok(listed >= 30, `the palette lists every menu command (${listed})`);
  await page.fill('[data-testid="palette-input"]', "insert code below");
  assert.equal(await first.locator(".palette-keys").textContent(), "Ctrl+M B", "the palette shows shortcuts");
  await shot(page, "palette");
  await page.keyboard.press("Escape");
  await page.locator('[data-testid="palette"]').waitFor({ state: "detached" });

  // --- Ctrl+M B inserts a cell below and types nothing --------------------------------------------
  const before = await cells(page).count();
  await cellById(page, "c1").locator(".cm-content").click();
  await page.keyboard.press("End");
  await page.keyboard.press("Control+m");
  await page.keyboard.press("b");
  await waitFor("Ctrl+M B inserts a cell", async () => (await cells(page).count()) === before + 1);
  assert.equal(await textOf(page, "c1"), "x = 1", "Ctrl+M B typed nothing into the code");
  const insertedId = await cells(page).nth(2).getAttribute("data-cell-id");
  assert.equal(await textOf(page, insertedId), "", "the new cell is empty");
  await waitFor("Bob sees the inserted cell", async () => (await cells(bob.page).count()) === before + 1);
  // Ctrl+M D deletes it, Ctrl+M Z brings it back.
  await page.keyboard.press("Control+m");
  await page.keyboard.press("d");
  await waitFor("Ctrl+M D deletes the cell", async () => (await cells(page).count()) === before);
  await page.keyboard.press("Control+m");
  await page.keyboard.press("z");
  await waitFor("Ctrl+M Z restores it", async () => (await cellById(page, insertedId).count()) === 1);
  log("Ctrl+M B, D and Z");

  // Ctrl+M H: the shortcut sheet.
  await page.keyboard.press("Control+m");
  await page.keyboard.press("h");
  const sheet = page.locator('[data-testid="shortcut-sheet"]');
  await sheet.waitFor();
  for (const keys of ["Ctrl+M B", "Ctrl+M A", "Ctrl+M D", "Ctrl+M H", "Ctrl+Shift+P"]) await sheet.locator("kbd", { hasText: keys }).first().waitFor();
  await shot(page, "shortcut-sheet");
  await page.click('[data-testid="shortcut-sheet-close"]');

  // --- Undo a cell deletion (a cell with outputs): back for everyone, and it stays ---------------
  await cellById(page, "c5").locator(".marker").click();
  await cellById(page, "c5").getByRole("button", { name: "Delete cell (D D)" }).click();
  await cellById(bob.page, "c5").waitFor({ state: "detached" });
  await page.locator('[data-testid="action-toast"]', { hasText: "Cell deleted" }).waitFor();
  await shot(page, "undo-toast");
  await page.locator('[data-testid="toast-action"]', { hasText: "Undo" }).click();
  await cellById(page, "c5").waitFor();
  await cellById(bob.page, "c5").waitFor();
  assert.equal(await textOf(bob.page, "c5"), "print('hello')");
  // The server kept it (its guard did not refuse the restore): a fresh page has it, in place.
  await bob.page.reload();
  await cellById(bob.page, "c5").waitFor();
  await bob.page.locator('[data-testid="connection"][data-state="online"]').waitFor();
  const order = await cells(bob.page).evaluateAll((els) => els.map((el) => el.dataset.cellId));
  assert.ok(order.indexOf("c5") === order.indexOf("c4") + 1, `the cell is back where it was: ${order}`);
  log("undo delete restores the cell for everyone");

  // --- A 2000-line output: a scroll box, expandable, cleared for both -----------------------------
  await cellById(page, "c6").locator(".cm-content").click();
  await page.keyboard.press("Control+a");
  await page.keyboard.type("for i in range(2000): print(i)");
  await page.keyboard.press("Control+Enter");
  for (const p of [page, bob.page]) {
    await cellById(p, "c6").locator(".outputs pre", { hasText: "1999" }).waitFor({ timeout: RUN_TIMEOUT });
  }
  await settle(page);
  const box = cellById(page, "c6").locator('[data-testid="outputs"]');
  const sizes = await box.evaluate((el) => ({ scroll: el.scrollHeight, client: el.clientHeight, overflow: getComputedStyle(el).overflowY }));
  assert.ok(sizes.scroll > sizes.client * 3 && sizes.overflow === "auto", `a long output scrolls in a box: ${JSON.stringify(sizes)}`);
  const pageHeight = await page.evaluate(() => document.documentElement.scrollHeight);
  assert.ok(pageHeight < sizes.scroll, "the output does not push the notebook down by its full length");
  await box.evaluate((el) => (el.scrollTop = el.scrollHeight));
  await shot(page, "long-output");
  await cellById(page, "c6").locator('[data-testid="output-toggle"]').click();
  await settle(page);
  const expanded = await box.evaluate((el) => ({ scroll: el.scrollHeight, client: el.clientHeight, cls: el.className, toggle: el.parentElement.querySelector(".output-toggle").outerHTML, max: getComputedStyle(el).maxHeight }));
  assert.ok(expanded.client >= expanded.scroll - 4, `expanded, the whole output shows: ${JSON.stringify(expanded)}`);
  await cellById(page, "c6").locator('[data-testid="output-toggle"]').click();
  await cellById(page, "c6").locator('[data-testid="clear-output"]').click();
  for (const p of [page, bob.page]) {
    await waitFor("the cleared output is gone", async () => (await cellById(p, "c6").locator(".outputs > *").count()) === 0);
    await cellById(p, "c6").locator('[data-testid="marker"]', { hasText: "[ ]" }).waitFor();
  }
  assert.ok(await cellById(bob.page, "c1").isVisible());
  log("a 2000-line output scrolls, expands, and is cleared for both");

  // Edit ▸ Clear all outputs.
  await cellById(page, "c5").getByRole("button", { name: "Run cell" }).click();
  await cellById(bob.page, "c5").locator(".outputs pre", { hasText: "hello" }).waitFor({ timeout: RUN_TIMEOUT });
  await page.click('[data-testid="menu-edit"]');
  await page.click('[data-testid="clear-all-outputs"]');
  await waitFor("Bob sees every output cleared", async () => (await bob.page.locator(".outputs > *").count()) === 0);
  log("clear all outputs");

  // --- Two remote carets at one spot: their labels side by side --------------------------------
  for (const p of [bob.page, carol.page]) {
    await cellById(p, "c4").locator(".cm-content").click();
    await p.keyboard.press("Control+End");
  }
  const labels = cellById(page, "c4").locator(".cm-ySelectionInfo");
  await waitFor("Ada sees both carets", async () => (await labels.count()) === 2 || (await page.evaluate(() => [...document.querySelectorAll(".cm-ySelectionInfo")].map((el) => `${el.closest("[data-cell-id]")?.dataset.cellId}:${el.textContent}`))));
  await waitFor("the labels do not overlap", async () => {
    const [a, b] = await labels.evaluateAll((els) => els.map((el) => el.getBoundingClientRect()).map((r) => ({ left: r.left, right: r.right, top: r.top, bottom: r.bottom })));
    return a.right <= b.left + 0.5 || b.right <= a.left + 0.5 || a.bottom <= b.top || b.bottom <= a.top ? true : { a, b };
  });
  await shot(page, "caret-labels");
  log("caret labels apart");

  // --- Offline: the truth in the status, Run disabled, edits kept and sent on reconnect ---------
  await bob.context.setOffline(true);
  const status = bob.page.locator('[data-testid="kernel-status"]');
  await bob.page.locator('[data-testid="kernel-status"][data-status="offline"]').waitFor();
  assert.match(await status.textContent(), /Offline/);
  assert.ok(await bob.page.locator('[data-testid="run-all"]').isDisabled(), "Run all is disabled offline");
  assert.ok(await cellById(bob.page, "c1").getByRole("button", { name: "Run cell" }).isDisabled(), "a cell's Run is disabled offline");
  await bob.page.click('[data-testid="menu-runtime"]');
  assert.equal(await bob.page.locator('[data-command="runtime.run-all"]').getAttribute("aria-disabled"), "true");
  await bob.page.keyboard.press("Escape");
  await cellById(bob.page, "c1").locator(".cm-content").click();
  await bob.page.keyboard.press("End");
  await bob.page.keyboard.type("  # typed offline");
  await shot(bob.page, "offline");
  await bob.context.setOffline(false);
  await bob.page.locator('[data-testid="connection"][data-state="online"]').waitFor();
  await waitFor("Bob's offline edit reaches Ada", async () => (await textOf(page, "c1")) === "x = 1  # typed offline");
  await bob.page.locator('[data-testid="kernel-status"]:not([data-status="offline"])').waitFor();
  assert.ok(!(await bob.page.locator('[data-testid="run-all"]').isDisabled()), "Run all is back");
  // Bob's presence is back too: his caret shows for Ada again.
  await cellById(bob.page, "c6").locator(".cm-content").click();
  await cellById(page, "c6").locator(".cm-ySelectionInfo", { hasText: "Bob Babbage" }).waitFor({ timeout: 10_000 });
  log("offline: status, disabled Run, edits kept and sent");

  // --- Table of contents and collapsible sections ---------------------------------------------
  await page.click('[data-testid="menu-view"]');
  await page.click('[data-testid="view-toc"]');
  const toc = page.locator('[data-testid="toc-panel"]');
  await toc.locator('[data-testid="toc-link"]', { hasText: "Details" }).waitFor();
  assert.deepEqual(await toc.locator('[data-testid="toc-link"]').allTextContents(), ["Intro", "Details", "Appendix"]);
  await toc.locator('[data-testid="toc-link"]', { hasText: "Appendix" }).click();
  await waitFor("the heading cell is in view", () =>
    page.evaluate(() => {
      const r = document.querySelector('[data-cell-id="md3"]').getBoundingClientRect();
      const t = document.querySelector('[data-testid="toolbar"]').getBoundingClientRect();
      return r.top >= t.bottom - 1 && r.top < window.innerHeight;
    }),
  );
  await shot(page, "toc");
  await cellById(page, "md1").locator('[data-testid="section-toggle"]').click();
  for (const hidden of ["c1", "c2", "md2", "c6"].slice(0, 3)) assert.ok(!(await cellById(page, hidden).isVisible()), `${hidden} is folded under Intro`);
  assert.ok(await cellById(page, "md3").isVisible(), "the next top-level section stays");
  await cellById(page, "md1").locator(".section-count").waitFor();
  await shot(page, "section-collapsed");
  await cellById(page, "md1").locator('[data-testid="section-toggle"]').click();
  assert.ok(await cellById(page, "c1").isVisible());
  await page.click('[data-testid="menu-view"]');
  await page.click('[data-testid="view-toc"]');
  log("table of contents and sections");

  // --- Forms: a bare #@title shows no box; a title alone shows as a title above the code ----------
  assert.ok(!(await cellById(page, "c3").locator('[data-testid="cell-form"]').isVisible()), "a bare #@title has no form box");
  const titled = cellById(page, "c4").locator('[data-testid="cell-form"]');
  assert.equal((await titled.textContent()).trim(), "Settings");
  const formBox = await titled.boundingBox();
  const codeBox = await cellById(page, "c4").locator(".cm-editor").boundingBox();
  assert.ok(formBox.y + formBox.height <= codeBox.y + 1, "the title sits above the code");

  // --- Find in the notebook ---------------------------------------------------------------------
  await page.locator('[data-testid="header"]').click({ position: { x: 400, y: 5 } });
  await page.keyboard.press("Control+h");
  await page.fill('[data-testid="find-query"]', "line 3");
  await page.locator('[data-testid="find-count"]', { hasText: "of" }).waitFor();
  assert.equal(await page.locator('[data-testid="find-count"]').textContent(), "1 of 11", "line 3, 30…39 in the tall cell");
  await page.click('[data-testid="find-next"]');
  await shot(page, "find");
  await page.keyboard.press("Escape");

  // --- Dark mode follows the system -----------------------------------------------------------
  await page.emulateMedia({ colorScheme: "dark" });
  await settle(page);
  const dark = await page.evaluate(() => {
    const rgb = (s) => s.match(/\d+/g).slice(0, 3).map(Number);
    const sum = (c) => c.reduce((a, b) => a + b, 0);
    const keyword = document.querySelector('[data-cell-id="c6"] .cm-content span');
    return {
      body: sum(rgb(getComputedStyle(document.body).backgroundColor)),
      text: sum(rgb(getComputedStyle(document.querySelector('[data-cell-id="c1"] .cm-content')).color)),
      keyword: keyword ? getComputedStyle(keyword).color : null,
    };
  });
  assert.ok(dark.body < 150 && dark.text > 500, `dark mode: dark page, light code (${JSON.stringify(dark)})`);
  await shot(page, "dark");
  await page.emulateMedia({ colorScheme: "light" });

  // --- Drag a cell by its handle ------------------------------------------------------------------
  await cellById(page, "c6").locator(".marker").click();
  await cellById(page, "c6").locator('[data-testid="drag-handle"]').dragTo(cellById(page, "md3"), { targetPosition: { x: 200, y: 2 } });
  await waitFor("the dragged cell moved above Appendix for Bob", async () => {
    const ids = await cells(bob.page).evaluateAll((els) => els.map((el) => el.dataset.cellId));
    return ids.indexOf("c6") === ids.indexOf("md3") - 1 ? true : ids;
  });
  log("drag to reorder");

  // --- Signed out: no failed /api/me in the console --------------------------------------------
  {
    const context = await browser.newContext();
    const anon = await context.newPage();
    const failed = [];
    anon.on("response", (r) => {
      if (r.status() >= 400 && /\/api\/(me|session)/.test(r.url())) failed.push(`${r.status()} ${r.url()}`);
    });
    const errors = [];
    anon.on("console", (msg) => msg.type() === "error" && errors.push(msg.text()));
    await anon.goto(`${BASE}/`);
    await anon.getByRole("heading", { name: "Notebooks, together." }).waitFor();
    assert.deepEqual(failed, [], "a signed-out home page asks no failing /api/me");
    assert.deepEqual(errors, [], "and logs no error");
    await context.close();
  }
  log("all page-shell checks passed");
} catch (error) {
  for (const { name, page } of pages) await shot(page, `failure-${name.split(" ")[0].toLowerCase()}`).catch(() => {});
  throw error;
} finally {
  await browser.close();
}
