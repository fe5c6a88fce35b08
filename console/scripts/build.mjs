// Builds the console into dist/: hashed, minified assets under dist/assets/
// and dist/index.html naming them. Prints the gzipped size and fails above
// the budget (150 KB gzipped, every asset together).

import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const BUDGET = 150 * 1024;

await rm(dist, { recursive: true, force: true });
const result = await esbuild.build({
  absWorkingDir: root,
  entryPoints: ["src/main.tsx", "src/styles.css"],
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2022", "chrome110", "firefox115", "safari16"],
  jsx: "automatic",
  jsxImportSource: "preact",
  outdir: dist,
  entryNames: "assets/[name]-[hash]",
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});

const outputs = Object.keys(result.metafile.outputs).map((p) => relative(dist, join(root, p)));
const script = outputs.find((p) => p.endsWith(".js"));
const style = outputs.find((p) => p.endsWith(".css"));
if (!script || !style) throw new Error(`unexpected outputs: ${outputs.join(", ")}`);

const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Billing admin</title>
<link rel="stylesheet" href="/console/${style}">
<script type="module" src="/console/${script}"></script>
</head>
<body>
<div id="app"><noscript>The billing admin console needs JavaScript.</noscript></div>
</body>
</html>
`;
await mkdir(dist, { recursive: true });
await writeFile(join(dist, "index.html"), html);

let total = 0;
for (const file of [...outputs, "index.html"]) {
  const bytes = await readFile(join(dist, file));
  const gz = gzipSync(bytes, { level: 9 }).length;
  total += gz;
  console.log(`console: ${file.padEnd(36)} ${String(bytes.length).padStart(7)} B  ${String(gz).padStart(6)} B gzipped`);
}
console.log(`console: total ${total} B gzipped (budget ${BUDGET} B)`);
if (total > BUDGET) {
  console.error(`console: the assets exceed the ${BUDGET} B gzipped budget`);
  process.exit(1);
}
