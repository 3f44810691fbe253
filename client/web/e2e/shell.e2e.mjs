// Browser test of Tandem's shell (issue 15): the sign-in page, the home page and loading on
// demand, against a real `tandem serve`, on Debian's Chromium through playwright-core. Run by
// tests/tests/web_shell.rs, which starts the server:
//
//   TANDEM_URL=http://127.0.0.1:PORT TANDEM_SIGNIN_URL='http://127.0.0.1:PORT/signin?token=…' \
//   SCREENSHOT_DIR=target/screenshots CHROMIUM=/usr/bin/chromium node client/web/e2e/shell.e2e.mjs
//
// Scenario: the sign-in page is styled as the product (computed styles of its card, heading,
// button and error), with and without the printed link; Ada's home page searches by title,
// sorts by title, last edited and last opened, shows owner and last editor, renames in place
// and makes a copy; its icons are SVG, not emoji. Bob, signed in, opens Ada's notebook by its
// link as a viewer and makes his own copy from the notebook page; signed out, the button asks
// to sign in first. A notebook without math
// never fetches KaTeX (its chunk, stylesheet or fonts); one with math does, woff2 fonts only.
// Every page runs under the server's Content-Security-Policy, and any violation it reports
// fails the test. Screenshots go to SCREENSHOT_DIR as shell15-*.png.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE = process.env.TANDEM_URL ?? "http://127.0.0.1:8080";
const SIGNIN_URL = process.env.TANDEM_SIGNIN_URL;
if (!SIGNIN_URL) throw new Error("set TANDEM_SIGNIN_URL to the `Sign in at …` link the server printed");
const SHOTS = process.env.SCREENSHOT_DIR ?? "target/screenshots";
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

const started = Date.now();
const log = (...args) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s]`, ...args);
await mkdir(SHOTS, { recursive: true });

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });

/** Content-Security-Policy violations any page reported: the test fails on one. */
const cspViolations = [];
/** Every URL each context requested, by context name. */
const requested = new Map();

async function newContext(name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sample})`);
    });
  });
  requested.set(name, []);
  context.on("request", (request) => requested.get(name).push(request.url()));
  const page = await context.newPage();
  page.on("console", (msg) => {
    const text = msg.text();
    if (/Content.Security.Policy|CSP violation/i.test(text)) cspViolations.push(`[${name}] ${text}`);
  });
  page.on("pageerror", (error) => console.error(`[${name}] page error:`, error));
  return { context, page, name };
}

async function shot(page, name) {
  const file = path.join(SHOTS, `shell15-${name}.png`);
  await page.screenshot({ path: file });
  log("screenshot", file);
}

/** A computed style property of the first element matching `selector`. */
const style = (page, selector, property) =>
  page.locator(selector).first().evaluate((el, p) => getComputedStyle(el).getPropertyValue(p), property);

async function signIn(name, email) {
  const session = await newContext(name);
  const { page } = session;
  await page.goto(`${SIGNIN_URL}&return_to=${encodeURIComponent("/home")}`);
  await page.fill('input[name="name"]', name);
  await page.fill('input[name="email"]', email);
  await Promise.all([page.waitForURL(`${BASE}/home`), page.click('button[type="submit"]')]);
  await page.getByRole("heading", { name: "Your notebooks" }).waitFor();
  return session;
}

/** Calls the API from the page, as the app does (session cookie and CSRF header). */
async function call(page, method, url, body) {
  return page.evaluate(
    async ({ method, url, body }) => {
      const csrf = document.cookie.split("; ").find((c) => c.startsWith("tandem_csrf="))?.split("=")[1];
      const response = await fetch(url, {
        method,
        headers: { "content-type": "application/json", "x-csrf-token": csrf ?? "" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: response.status, json: await response.json().catch(() => null) };
    },
    { method, url, body },
  );
}

async function create(page, title, cells) {
  const ipynb = { nbformat: 4, nbformat_minor: 5, metadata: {}, cells };
  const { status, json } = await call(page, "POST", "/api/notebooks", { title, ipynb });
  assert.equal(status, 201, `create ${title}`);
  return json.id;
}

const code = (source) => ({ cell_type: "code", source, metadata: {}, outputs: [], execution_count: null });
const markdown = (source) => ({ cell_type: "markdown", source, metadata: {} });
/** The titles listed under "Your notebooks", in order. */
const ownedTitles = (page) => page.locator('[data-testid="owned"] [data-testid="nb-title"]').allTextContents();
/** A notebook page whose first cell's editor is ready. */
/** Opens the notebook page's File menu (where "Make a copy" is). */
async function openFileMenu(page) {
  await page.click('[data-testid="menu-file"]');
  await page.locator('[data-testid="make-copy"]').waitFor();
}

async function openNotebook(page, id) {
  await page.goto(`${BASE}/n/${id}`);
  await page.locator('[data-testid="cell"] .cm-content >> visible=true').first().waitFor();
}

try {
  // --- The sign-in page, styled as the product -----------------------------------------------
  {
    const { context, page } = await newContext("visitor");
    const response = await page.goto(`${BASE}/signin?return_to=/home`);
    assert.equal(response.status(), 200);
    await page.locator("code", { hasText: "local-signin-token" }).waitFor();
    // A button per configured provider (when the server has some), each with its mark.
    const providers = await page.locator("a.provider").evaluateAll((links) =>
      links.map((a) => ({ kind: a.dataset.kind, text: a.textContent.trim(), svg: a.querySelectorAll("svg").length, href: new URL(a.href).pathname })),
    );
    if (process.env.EXPECT_PROVIDERS) {
      assert.deepEqual(providers, [
        { kind: "google", text: "Sign in with Google", svg: 1, href: "/auth/oauth/google/start" },
        { kind: "github", text: "Sign in with GitHub", svg: 1, href: "/auth/oauth/github/start" },
        { kind: "oidc", text: "Sign in with Acme SSO", svg: 1, href: "/auth/oauth/acme/start" },
      ]);
      assert.equal(await style(page, "a.provider", "border-top-left-radius"), "6px");
      assert.equal(await style(page, "a.provider", "display"), "flex");
      await page.locator(".divider", { hasText: "or" }).waitFor();
    }
    // The app's tokens: its background, accent and font; a card with rounded corners.
    assert.equal(await style(page, "body", "background-color"), "rgb(248, 249, 250)");
    assert.match(await style(page, "body", "font-family"), /system-ui/);
    assert.equal(await style(page, ".card", "background-color"), "rgb(255, 255, 255)");
    assert.equal(await style(page, ".card", "border-top-left-radius"), "12px");
    assert.equal(await style(page, ".logo", "background-color"), "rgb(26, 115, 232)");
    assert.equal(await style(page, "h1", "font-size"), "22px");
    assert.equal(await style(page, "pre", "white-space"), "pre-wrap");
    await shot(page, "signin-without-link");
    // A wrong link: the error reads in the product's error style.
    const wrong = await page.goto(`${BASE}/signin?token=not-the-token&return_to=/home`);
    assert.equal(wrong.status(), 403);
    assert.equal(await style(page, ".error", "color"), "rgb(217, 48, 37)");
    assert.equal(await style(page, ".error", "background-color"), "rgb(252, 232, 230)");
    await shot(page, "signin-error");
    // With the printed link: the form, and a primary button in the app's accent colour.
    await page.goto(`${SIGNIN_URL}&return_to=${encodeURIComponent("/home")}`);
    await page.locator('form[action="/auth/local"]').waitFor();
    assert.equal(await style(page, 'button[type="submit"]', "background-color"), "rgb(26, 115, 232)");
    assert.equal(await style(page, 'input[name="email"]', "border-top-left-radius"), "6px");
    await shot(page, "signin-form");
    await page.setViewportSize({ width: 800, height: 700 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways scroll at 800px");
    await page.setViewportSize({ width: 360, height: 700 });
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), "no sideways scroll on a phone");
    await shot(page, "signin-phone");
    assert.deepEqual(cspViolations, [], "the sign-in page runs under its CSP");
    await context.close();
    log("sign-in page styled");
  }

  // --- Home: search, sort, owner and last editor, rename, make a copy -------------------------
  const ada = await signIn("Ada Lovelace", "ada@shell.test");
  const alpha = await create(ada.page, "Alpha plots", [code("x = 1")]);
  const beta = await create(ada.page, "Beta data", [code("y = 2")]);
  const gamma = await create(ada.page, "Gamma notes", [code("z = 3"), markdown("Plain text, no math.")]);
  const math = await create(ada.page, "Delta math", [markdown("Euler: $e^{i\\pi} + 1 = 0$"), code("w = 4")]);
  await ada.page.reload();
  await ada.page.locator('[data-testid="notebook"]').first().waitFor();
  // Owner and last editor, with an SVG delete icon (no emoji).
  const row = ada.page.locator('[data-testid="owned"] [data-testid="notebook"]', { hasText: "Alpha plots" });
  assert.equal(await row.locator('[data-testid="nb-owner"]').textContent(), "Owner: me");
  const del = row.locator('[data-testid="delete"]');
  assert.equal(await del.locator("svg").count(), 1, "the delete icon is an inline SVG");
  assert.equal((await del.textContent()).trim(), "", "no emoji in the delete button");
  const box = await del.locator("svg").boundingBox();
  assert.ok(box && box.width >= 14 && box.height >= 14, `the icon has a size: ${JSON.stringify(box)}`);

  // Search by title, case-insensitive.
  await ada.page.fill('[data-testid="search"]', "BETA");
  assert.deepEqual(await ownedTitles(ada.page), ["Beta data"]);
  await ada.page.fill('[data-testid="search"]', "zzz");
  await ada.page.getByText("No notebook titles match.").first().waitFor();
  await ada.page.fill('[data-testid="search"]', "");

  // Sort by title, then by last edited (newest first).
  await ada.page.selectOption('[data-testid="sort"]', "title");
  assert.deepEqual(await ownedTitles(ada.page), ["Alpha plots", "Beta data", "Delta math", "Gamma notes"]);
  await ada.page.selectOption('[data-testid="sort"]', "edited");
  assert.deepEqual(await ownedTitles(ada.page), ["Delta math", "Gamma notes", "Beta data", "Alpha plots"]);

  // Open Alpha: sorted by last opened, it comes first.
  await openNotebook(ada.page, alpha);
  await ada.page.goto(`${BASE}/home`);
  await ada.page.locator('[data-testid="notebook"]').first().waitFor();
  await ada.page.selectOption('[data-testid="sort"]', "opened");
  assert.equal((await ownedTitles(ada.page))[0], "Alpha plots");
  await ada.page.locator('[data-testid="owned"] [data-testid="notebook"]', { hasText: "Alpha plots" }).locator('[data-testid="nb-opened"]').waitFor();

  // Rename Beta in place.
  const betaRow = ada.page.locator('[data-testid="owned"] [data-testid="notebook"]', { hasText: "Beta data" });
  await betaRow.locator('[data-testid="rename"]').click();
  const input = ada.page.locator('[data-testid="rename-input"]');
  await input.fill("Beta, renamed");
  await shot(ada.page, "home-rename");
  await input.press("Enter");
  await ada.page.locator('[data-testid="nb-title"]', { hasText: "Beta, renamed" }).waitFor();
  assert.equal((await call(ada.page, "GET", `/api/notebooks/${beta}`)).json.title, "Beta, renamed");

  // Make a copy from the home page.
  await ada.page.locator('[data-testid="owned"] [data-testid="notebook"]', { hasText: "Gamma notes" }).locator('[data-testid="copy"]').click();
  await ada.page.locator('[data-testid="nb-title"]', { hasText: "Copy of Gamma notes" }).waitFor();
  await ada.page.fill('[data-testid="search"]', "gamma");
  assert.deepEqual((await ownedTitles(ada.page)).sort(), ["Copy of Gamma notes", "Gamma notes"]);
  await ada.page.fill('[data-testid="search"]', "");
  await shot(ada.page, "home");
  // At common widths the page never scrolls sideways, and each row keeps its actions.
  for (const [width, height] of [[1366, 768], [1024, 768], [800, 700]]) {
    await ada.page.setViewportSize({ width, height });
    const overflow = await ada.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the home page overflows by ${overflow}px at ${width}px`);
    const actions = await ada.page.locator('[data-testid="owned"] [data-testid="delete"]').first().boundingBox();
    assert.ok(actions && actions.x + actions.width <= width, `the delete button is on screen at ${width}px`);
  }
  await shot(ada.page, "home-800");
  await ada.page.setViewportSize({ width: 1280, height: 860 });
  log("home: search, sort, rename, copy");

  // --- Bob, a link viewer, makes his own copy from the notebook page ---------------------------
  const sharing = await call(ada.page, "PUT", `/api/notebooks/${gamma}/sharing`, {
    general_access: "anyone_with_link",
    link_role: "viewer",
    grants: [{ email: "bob@shell.test", role: "editor" }],
  });
  assert.equal(sharing.status, 200);
  // Bob edits it once (so he is its last editor), through the API.
  const bob = await signIn("Bob Babbage", "bob@shell.test");
  assert.equal((await call(bob.page, "PATCH", `/api/notebooks/${gamma}`, { title: "Gamma notes" })).status, 200);
  await ada.page.reload();
  const gammaRow = ada.page.locator('[data-testid="owned"] [data-testid="notebook"]', { hasText: /^Gamma notes/ }).first();
  await gammaRow.locator('[data-testid="nb-edited"]', { hasText: "Edited by Bob Babbage" }).waitFor();
  // Now a link viewer only.
  await call(ada.page, "PUT", `/api/notebooks/${gamma}/sharing`, { general_access: "anyone_with_link", link_role: "viewer", grants: [] });
  await openNotebook(bob.page, gamma);
  await bob.page.locator('[data-testid="role"]', { hasText: "Viewer" }).waitFor();
  await shot(bob.page, "viewer-make-copy");
  await Promise.all([bob.page.waitForURL((url) => url.pathname.startsWith("/n/") && !url.pathname.endsWith(gamma)), openFileMenu(bob.page).then(() => bob.page.click('[data-testid="make-copy"]'))]);
  await bob.page.locator('[data-testid="cell"] .cm-content').first().waitFor();
  await bob.page.locator('[data-testid="role"]', { hasText: "Owner" }).waitFor();
  const copyId = new URL(bob.page.url()).pathname.split("/").pop();
  const copied = await call(bob.page, "GET", `/api/notebooks/${copyId}/ipynb`);
  assert.deepEqual(copied.json.cells.map((c) => [].concat(c.source).join("")), ["z = 3", "Plain text, no math."]);
  await shot(bob.page, "viewer-copy-opened");
  log("a link viewer made his own copy");

  // Signed out, "Make a copy" asks to sign in first, and comes back to the notebook.
  {
    const visitor = await newContext("anonymous");
    await openNotebook(visitor.page, gamma);
    await Promise.all([visitor.page.waitForURL((url) => url.pathname === "/signin"), openFileMenu(visitor.page).then(() => visitor.page.click('[data-testid="make-copy"]'))]);
    assert.equal(new URL(visitor.page.url()).searchParams.get("return_to"), `/n/${gamma}`);
    await visitor.context.close();
    log("signed out, making a copy asks to sign in");
  }

  // --- KaTeX loads only with math --------------------------------------------------------------
  {
    const fresh = await signIn("Carol", "carol@shell.test");
    await call(ada.page, "PUT", `/api/notebooks/${math}/sharing`, { general_access: "anyone_with_link", link_role: "viewer", grants: [] });
    const urls = requested.get("Carol");
    urls.length = 0;
    await openNotebook(fresh.page, gamma);
    await fresh.page.getByText("Plain text, no math.").first().waitFor();
    await fresh.page.waitForTimeout(300);
    const katex = (list) => list.filter((u) => /\/assets\/(math-|katex-|KaTeX_)/.test(u));
    assert.deepEqual(katex(urls), [], "no KaTeX before math is shown");
    assert.equal(await fresh.page.locator('link[href*="/assets/katex-"]').count(), 0);
    await openNotebook(fresh.page, math);
    await fresh.page.locator(".katex").first().waitFor();
    const loaded = katex(urls);
    assert.ok(loaded.some((u) => /\/assets\/math-[^/]+\.js$/.test(u)), `the KaTeX chunk loads: ${loaded}`);
    assert.ok(loaded.some((u) => /\/assets\/katex-[^/]+\.css$/.test(u)), `its stylesheet loads: ${loaded}`);
    assert.ok(loaded.some((u) => /KaTeX_[^/]+\.woff2$/.test(u)), `its fonts load: ${loaded}`);
    assert.deepEqual(urls.filter((u) => /\.(woff|ttf)$/.test(u)), [], "woff2 fonts only");
    // KaTeX's stylesheet applies: its font on the formula.
    assert.match(await style(fresh.page, ".katex", "font-family"), /KaTeX_Main/);
    await shot(fresh.page, "math-on-demand");
    log("KaTeX loads on demand");
  }

  assert.deepEqual(cspViolations, [], "no Content-Security-Policy violation on any page");
  log("shell e2e passed");
} finally {
  await browser.close();
}
