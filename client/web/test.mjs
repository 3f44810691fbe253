// Runs the web client's unit tests: bundles each test/*.test.mjs (which import TypeScript
// from src/) with esbuild into a temporary folder, then runs them with `node --test`.
// jsdom (the DOM that DOMPurify and the markdown renderer need outside a browser) stays a
// package of its own, so the bundles go under node_modules/ where `import "jsdom"` finds it.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const tests = (await readdir(path.join(root, "test"))).filter((f) => f.endsWith(".test.mjs"));
const cache = path.join(root, "node_modules", ".cache");
await mkdir(cache, { recursive: true });
const out = await mkdtemp(path.join(cache, "tandem-web-test-"));
try {
  await esbuild.build({
    entryPoints: tests.map((f) => path.join(root, "test", f)),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    external: ["jsdom"],
    // KaTeX's stylesheet comes along with the markdown renderer; its fonts are just files.
    loader: { ".woff2": "file", ".woff": "file", ".ttf": "file" },
    logLevel: "warning",
  });
  const run = spawnSync(process.execPath, ["--test", ...tests.map((f) => path.join(out, f))], { stdio: "inherit" });
  process.exitCode = run.status ?? 1;
} finally {
  await rm(out, { recursive: true, force: true });
}
