// Runs the web client's unit tests: bundles each test/*.test.mjs (which import TypeScript
// from src/) with esbuild into a temporary folder, then runs them with `node --test`.
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const tests = (await readdir(path.join(root, "test"))).filter((f) => f.endsWith(".test.mjs"));
const out = await mkdtemp(path.join(os.tmpdir(), "tandem-web-test-"));
try {
  await esbuild.build({
    entryPoints: tests.map((f) => path.join(root, "test", f)),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    logLevel: "warning",
  });
  const run = spawnSync(process.execPath, ["--test", ...tests.map((f) => path.join(out, f))], { stdio: "inherit" });
  process.exitCode = run.status ?? 1;
} finally {
  await rm(out, { recursive: true, force: true });
}
