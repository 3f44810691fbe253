// Builds the web client into dist/: dist/assets/app-[hash].js and .css (with KaTeX's fonts
// beside them), dist/index.html naming them, and dist/output-frame.html (the page HTML
// outputs run in). Hashed names let the server cache assets for a year and send the pages
// with no-cache.
//
//   node build.mjs            production build (minified, with source maps)
//   node build.mjs --watch    rebuild on change (unminified)
import * as esbuild from "esbuild";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, "dist");
const watch = process.argv.includes("--watch");

/** @type {esbuild.BuildOptions} */
const options = {
  entryPoints: { app: path.join(root, "src/main.ts") },
  outdir: path.join(dist, "assets"),
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  bundle: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  minify: !watch,
  sourcemap: true,
  metafile: true,
  loader: { ".woff2": "file", ".woff": "file", ".ttf": "file" },
  logLevel: watch ? "info" : "warning",
  plugins: [
    {
      name: "index-html",
      setup(build) {
        build.onEnd(async (result) => {
          if (result.errors.length || !result.metafile) return;
          const outputs = Object.keys(result.metafile.outputs).map((p) => path.relative(dist, path.join(process.cwd(), p)));
          const js = outputs.find((p) => /app-[^/]+\.js$/.test(p));
          const css = outputs.find((p) => /app-[^/]+\.css$/.test(p));
          const template = await readFile(path.join(root, "src/index.html"), "utf8");
          const html = template
            .replace("<!--CSS-->", css ? `<link rel="stylesheet" href="/${css}">` : "")
            // The server puts a fresh nonce here on every page load (its CSP lets <style>
            // elements in by it; CodeMirror reads it from this tag).
            .replace("<!--JS-->", `<script type="module" nonce="__CSP_NONCE__" src="/${js}"></script>`);
          await writeFile(path.join(dist, "index.html"), html);
          await copyFile(path.join(root, "src/output-frame.html"), path.join(dist, "output-frame.html"));
        });
      },
    },
  ],
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  const result = await esbuild.build(options);
  const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
  console.log(`built dist/ (${(bytes / 1024).toFixed(0)} KiB in assets)`);
}
