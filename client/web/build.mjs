// Builds the web client into dist/: dist/assets/app-[hash].js and .css, the chunks the app
// loads on demand (KaTeX, version history, the share dialog) and KaTeX's stylesheet with its
// woff2 fonts, dist/index.html naming them, and dist/output-frame.html (the page HTML outputs
// run in). Hashed names let the server cache assets for a year and send the pages with
// no-cache. Every asset gets a brotli (.br) and a gzip (.gz) copy beside it, which the server
// sends to browsers that accept them.
//
//   node build.mjs            production build (minified, with source maps, compressed)
//   node build.mjs --watch    rebuild on change (unminified, not compressed)
import * as esbuild from "esbuild";
import { copyFile, mkdir, readFile, readdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import zlib from "node:zlib";

const root = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(root, "dist");
const assets = path.join(dist, "assets");
const watch = process.argv.includes("--watch");

/** Files worth compressing: text. Fonts (woff2 is brotli inside) and images are left as is. */
const COMPRESSIBLE = /\.(js|css|map|html|json|svg|ttf)$/;
const brotli = promisify(zlib.brotliCompress);
const gzip = promisify(zlib.gzip);

/**
 * KaTeX's stylesheet lists each font as woff2, woff and ttf. Every browser the build targets
 * reads woff2 (and takes the first format it can), so the other two are dropped from the
 * stylesheet, and esbuild emits only the woff2 files.
 * @type {esbuild.Plugin}
 */
const katexWoff2Only = {
  name: "katex-woff2-only",
  setup(build) {
    build.onLoad({ filter: /katex[\\/]dist[\\/]katex(\.min)?\.css$/ }, async (args) => {
      const css = await readFile(args.path, "utf8");
      const trimmed = css.replace(/,\s*url\([^)]*\.(?:woff|ttf)\)\s*format\("(?:woff|truetype)"\)/g, "");
      if (/\.(woff|ttf)\)/.test(trimmed)) throw new Error("KaTeX's stylesheet still names woff or ttf fonts");
      return { contents: trimmed, loader: "css", resolveDir: path.dirname(args.path) };
    });
  },
};

/** @type {esbuild.Plugin} */
const indexHtml = {
  name: "index-html",
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length || !result.metafile) return;
      const outputs = result.metafile.outputs;
      const relative = (p) => path.relative(dist, path.join(process.cwd(), p));
      const find = (pattern) => Object.keys(outputs).map(relative).find((p) => pattern.test(p));
      const js = find(/^assets\/app-[^/]+\.js$/);
      const css = find(/^assets\/app-[^/]+\.css$/);
      const katexCss = find(/^assets\/katex-[^/]+\.css$/);
      const entry = Object.keys(outputs).find((p) => relative(p) === js);
      // The chunks the entry imports statically, fetched at once instead of after it parses.
      const preloads = (entry ? outputs[entry].imports : [])
        .filter((i) => i.kind === "import-statement")
        .map((i) => `<link rel="modulepreload" href="/${relative(i.path)}">`);
      const template = await readFile(path.join(root, "src/index.html"), "utf8");
      const html = template
        .replace("<!--CSS-->", [css ? `<link rel="stylesheet" href="/${css}">` : "", ...preloads].join("\n    "))
        // KaTeX's stylesheet loads with KaTeX, the first time the page shows math.
        .replace("<!--KATEX-->", katexCss ? `<meta name="tandem-katex-css" content="/${katexCss}">` : "")
        // The server puts a fresh nonce here on every page load (its CSP lets <style>
        // elements in by it; CodeMirror reads it from this tag).
        .replace("<!--JS-->", `<script type="module" nonce="__CSP_NONCE__" src="/${js}"></script>`);
      await writeFile(path.join(dist, "index.html"), html);
      await copyFile(path.join(root, "src/output-frame.html"), path.join(dist, "output-frame.html"));
    });
  },
};

/** @type {esbuild.BuildOptions} */
const options = {
  entryPoints: {
    app: path.join(root, "src/main.ts"),
    katex: path.join(root, "node_modules/katex/dist/katex.min.css"),
  },
  outdir: assets,
  entryNames: "[name]-[hash]",
  chunkNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  bundle: true,
  splitting: true,
  format: "esm",
  target: ["chrome110", "firefox115", "safari16"],
  minify: !watch,
  sourcemap: true,
  metafile: true,
  loader: { ".woff2": "file" },
  logLevel: watch ? "info" : "warning",
  plugins: [katexWoff2Only, indexHtml],
};

/** Writes `name.br` and `name.gz` beside every compressible asset (when they are smaller). */
async function compressAssets() {
  let written = 0;
  for (const entry of await readdir(assets, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !COMPRESSIBLE.test(entry.name)) continue;
    const file = path.join(entry.parentPath, entry.name);
    const bytes = await readFile(file);
    const [br, gz] = await Promise.all([
      brotli(bytes, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length,
        },
      }),
      gzip(bytes, { level: zlib.constants.Z_BEST_COMPRESSION }),
    ]);
    if (br.length < bytes.length) await writeFile(`${file}.br`, br);
    if (gz.length < bytes.length) await writeFile(`${file}.gz`, gz);
    written += 1;
  }
  return written;
}

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });
if (watch) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  const result = await esbuild.build(options);
  const outputs = Object.entries(result.metafile.outputs).filter(([p]) => !p.endsWith(".map"));
  const kib = (n) => `${(n / 1024).toFixed(0)} KiB`;
  const total = outputs.reduce((n, [, o]) => n + o.bytes, 0);
  const app = outputs.find(([p]) => /app-[^/]+\.js$/.test(p));
  const compressed = await compressAssets();
  console.log(
    `built dist/ (${kib(total)} in assets without source maps; app entry ${kib(app?.[1].bytes ?? 0)}; ` +
      `${compressed} files precompressed as .br and .gz)`,
  );
}
