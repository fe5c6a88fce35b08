// Fails when src/generated/api.ts is not what openapi-typescript makes of
// ../openapi.yaml today: the API's types follow the contract, and a contract
// change shows up as a type error in the console's build (`npm run generate`
// refreshes the file).

import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const generated = join(root, "src/generated/api.ts");
const ast = await openapiTS(pathToFileURL(join(root, "../openapi.yaml")));
const want = astToString(ast);
const have = await readFile(generated, "utf8");
const strip = (text) => text.replace(/^\/\*\*[\s\S]*?\*\/\s*/, "").trim();
if (strip(want) !== strip(have)) {
  console.error("console: src/generated/api.ts is out of date with openapi.yaml: run `npm run generate` in console/");
  process.exit(1);
}
console.log("console: src/generated/api.ts matches openapi.yaml");
