#!/usr/bin/env node
// `npm audit --omit=dev` for one package folder, with written-down exceptions.
//
// Usage: node scripts/npm-audit.mjs <package dir>
//
// Fails (exit 1) on any advisory against a runtime (non-dev) dependency that the folder's
// `audit-exceptions.json` does not list. Each exception names the advisory (its GitHub id,
// `GHSA-…`, or its URL) and says why it is accepted:
//   [{"advisory": "GHSA-xxxx-xxxx-xxxx", "package": "name", "reason": "why it does not apply"}]
// Exits 0 with a line saying so when the registry's audit endpoint cannot be reached (some
// mirrors and proxies do not serve it), so a machine without it can still run the tests;
// exits 2 on any other npm failure. NPM_AUDIT_REPORT=<file> judges a saved report instead.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const dir = resolve(process.argv[2] ?? ".");
const exceptionsFile = join(dir, "audit-exceptions.json");
const exceptions = existsSync(exceptionsFile) ? JSON.parse(readFileSync(exceptionsFile, "utf8")) : [];
for (const e of exceptions) {
  if (!e.advisory || !e.reason) {
    console.error(`${exceptionsFile}: every exception needs "advisory" and "reason": ${JSON.stringify(e)}`);
    process.exit(2);
  }
}

let out;
if (process.env.NPM_AUDIT_REPORT) {
  // A saved `npm audit --json` report, to check this script's judgement of one.
  out = readFileSync(process.env.NPM_AUDIT_REPORT, "utf8");
} else {
  try {
    out = execFileSync("npm", ["audit", "--omit=dev", "--json"], { cwd: dir, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (err) {
    // npm audit exits 1 when it found something; the report is on stdout either way.
    out = err.stdout ?? "";
  }
}
let report;
try {
  report = JSON.parse(out);
} catch {
  console.error(`npm audit in ${dir} printed no report:\n${out}`);
  process.exit(2);
}
if (report.error) {
  const summary = report.message || report.error.summary || report.error.code || "unknown error";
  const unreachable = [400, 404, 405, 501, 502, 503].includes(report.statusCode) ||
    /audit endpoint|ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN/.test(JSON.stringify(report));
  if (unreachable) {
    console.log(`npm audit ${dir}: NOT CHECKED, the registry's audit endpoint is unreachable (${summary})`);
    process.exit(0);
  }
  console.error(`npm audit in ${dir} failed: ${summary}`);
  process.exit(2);
}

const accepted = new Set(exceptions.map((e) => e.advisory));
const found = [];
for (const [name, vuln] of Object.entries(report.vulnerabilities ?? {})) {
  for (const via of vuln.via ?? []) {
    if (typeof via !== "object") continue; // a dependency of a vulnerable package: reported there
    const id = (via.url ?? "").split("/").pop();
    if (accepted.has(id) || accepted.has(via.url)) continue;
    found.push(`${name}: ${via.title} (${via.severity}, ${via.url})`);
  }
}
const total = report.metadata?.dependencies?.prod ?? report.metadata?.dependencies?.total ?? "?";
if (found.length > 0) {
  console.error(`npm audit ${dir}: ${found.length} advisories against runtime dependencies:`);
  for (const line of found) console.error(`  ${line}`);
  console.error(`Update the dependency, or write the exception and its reason in ${exceptionsFile}.`);
  process.exit(1);
}
console.log(`npm audit ${dir}: no advisories against ${total} runtime dependencies (${exceptions.length} written-down exceptions)`);
