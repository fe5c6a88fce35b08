// Browser tests of the console: Debian's chromium (playwright-core, no
// browser download) against a `make dev` stack (infra/dev.sh) started here on
// free loopback ports and stopped by its PID. Every screen is checked with
// axe-core (WCAG 2.1 A and AA) and photographed into target/console-screenshots/.

import { spawn, execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";
import { startOidcStub } from "./oidc-stub.mjs";

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const shots = join(root, "target/console-screenshots");
const cli = join(process.env.CARGO_TARGET_DIR ?? join(root, "target"), "debug/billing-dev");
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// Demo data (shared/src/seed.rs): customer n has id c…n, its members a…(n<<16|j), j = 0 the owner.
const customerId = (n) => `c0000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`;
const userId = (n, j) => `a0000000-0000-4000-8000-${((n << 16) | j).toString(16).padStart(12, "0")}`;
const ACME = { id: customerId(0), name: "Acme Corp", owner: userId(0, 0) };
const INITECH = { id: customerId(2), name: "Initech" };

mkdirSync(shots, { recursive: true });

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---- the stack ------------------------------------------------------------------

/**
 * `make dev` (infra/dev.sh) on free loopback ports, with `extraEnv`; resolves
 * once it printed its console URL. `stop()` ends it by its PID.
 */
async function startStack(name, extraEnv = {}) {
  const [port, ddbPort, stripePort] = [await freePort(), await freePort(), await freePort()];
  const env = { ...process.env, PORT: String(port), DYNAMODB_PORT: String(ddbPort), STRIPE_PORT: String(stripePort) };
  for (const v of ["JWT_JWKS_URL", "JWT_ISSUER", "JWT_AUDIENCE", "CONSOLE_OIDC_CLIENT_ID", "CONSOLE_OIDC_ISSUER", "AWS_ENDPOINT_URL_DYNAMODB", "STRIPE_API_BASE"]) {
    delete env[v];
  }
  Object.assign(env, extraEnv);
  mkdirSync(join(root, "target/test-logs"), { recursive: true });
  const log = join(root, `target/test-logs/console-${name}.log`);
  let output = "";
  let exited = false;
  const child = spawn(join(root, "infra/dev.sh"), [], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  child.on("exit", () => (exited = true));
  const stack = {
    origin: `http://127.0.0.1:${port}`,
    cliEnv: { ...process.env, AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${ddbPort}`, STRIPE_API_BASE: `http://127.0.0.1:${stripePort}` },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        for (let i = 0; i < 300 && !exited; i++) await sleep(100);
        if (!exited) child.kill("SIGKILL");
      }
      writeFileSync(log, output);
    },
  };
  stacks.push(stack);
  for (let i = 0; i < 3000; i++) {
    const match = /Console \(signs in[^\n]*\n\s+(http:\/\/\S+)/.exec(output);
    if (match) return { ...stack, consoleUrl: match[1] };
    if (exited) break;
    await sleep(100);
  }
  throw new Error(`make dev did not get ready (see ${log})`);
}
const stacks = [];

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- a tiny runner ---------------------------------------------------------------

const failures = [];
const axeResults = {};
async function test(name, body) {
  const started = Date.now();
  try {
    await body();
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failures.push(name);
    console.log(`FAIL ${name}\n${error?.stack ?? error}`);
  }
}
function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}
function equal(actual, expected, message) {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** axe-core on the page as it is: no WCAG 2.1 A/AA violation. */
async function axe(page, screen) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const violations = result.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")) }));
  axeResults[screen] = { passes: result.passes.length, violations };
  equal(violations, [], `axe violations on ${screen}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

let origin = "";
let billingDev = () => "";

async function api(token, path, init = {}) {
  const response = await fetch(`${origin}/api/billing/v1/admin${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

// ---- the tests ---------------------------------------------------------------------

let browser;
try {
  const stack = await startStack("stack");
  origin = stack.origin;
  const consoleUrl = stack.consoleUrl;
  billingDev = (...args) =>
    execFileSync(cli, args, { env: stack.cliEnv, encoding: "utf8", timeout: 60_000, stdio: ["ignore", "pipe", "pipe"] }).trim();
  const adminToken = new URL(consoleUrl).hash.replace(/^#token=/, "");
  assert(adminToken.split(".").length === 3, "make dev prints a console URL with a token");
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: ["--no-sandbox"] });

  /** A fresh browser context (its own sessionStorage) and page, watching for errors. */
  async function open() {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.errors = [];
    page.on("pageerror", (e) => page.errors.push(String(e)));
    page.on("console", (m) => {
      // The browser logs every 4xx it fetched; the page's own errors are what count.
      if (m.type() === "error" && !/Failed to load resource/.test(m.text())) page.errors.push(m.text());
    });
    return { context, page };
  }
  const h1 = (page, name) => page.getByRole("heading", { level: 1, name, exact: true });

  await test("the console's responses carry the security and cache headers", async () => {
    const index = await fetch(`${origin}/console/`);
    equal(index.status, 200, "index status");
    const csp = index.headers.get("content-security-policy");
    assert(csp.includes("frame-ancestors 'none'") && csp.includes("script-src 'self'") && !csp.includes("unsafe"), csp);
    equal(index.headers.get("x-content-type-options"), "nosniff", "nosniff");
    equal(index.headers.get("referrer-policy"), "no-referrer", "referrer policy");
    equal(index.headers.get("cache-control"), "no-cache", "index.html is revalidated");
    const html = await index.text();
    assert(!/<script>|<script(?![^>]*\bsrc=)[^>]*>/.test(html), "no inline script");
    const script = /src="([^"]+\.js)"/.exec(html)[1];
    const asset = await fetch(origin + script);
    equal(asset.status, 200, "script status");
    equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable", "hashed assets are immutable");
    equal((await fetch(`${origin}/console`, { redirect: "manual" })).status, 308, "/console redirects");
    equal((await fetch(`${origin}/console/`, { method: "POST" })).status, 405, "POST is 405");
  });

  await test("sign-in page: fields, a bad token is 401 with its error id", async () => {
    const { context, page } = await open();
    await page.goto(`${origin}/console/`);
    await h1(page, "Sign in").waitFor();
    await page.getByRole("textbox", { name: "API key", exact: true }).waitFor();
    await page.getByLabel("API secret", { exact: true }).waitFor();
    await axe(page, "sign-in");
    await shot(page, "01-sign-in");
    await page.getByRole("textbox", { name: "Token", exact: true }).fill("not-a-token");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    const text = await alert.innerText();
    assert(/Error ID [0-9a-f-]{36}/.test(text) && /unauthorized/.test(text), text);
    await h1(page, "Sign in").waitFor();
    equal(page.errors, [], "page errors");
    await context.close();
  });

  await test("a token without billing_admin: the console says the role is missing (403)", async () => {
    const userToken = billingDev("token", "--sub", "0d3c8f6e-0000-4000-8000-000000000001", "--role", "user");
    const { context, page } = await open();
    await page.goto(`${origin}/console/`);
    await page.getByRole("textbox", { name: "Token", exact: true }).fill(userToken);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    const text = await alert.innerText();
    assert(text.includes("billing_admin role is missing") && /forbidden/.test(text) && /Error ID/.test(text), text);
    await axe(page, "sign-in-forbidden");
    await shot(page, "02-sign-in-forbidden");
    await context.close();
  });

  const { context, page } = await open();

  await test("make dev's console URL signs in and leaves no credential in the URL or localStorage", async () => {
    await page.goto(consoleUrl);
    await h1(page, "Customers").waitFor();
    equal(new URL(page.url()).hash, "", "the fragment is gone");
    assert(!page.url().includes(adminToken), "no token in the URL");
    const storage = await page.evaluate(() => ({ local: localStorage.length, session: Object.keys(sessionStorage) }));
    equal(storage.local, 0, "nothing in localStorage");
    equal(storage.session, ["billing-console.credentials"], "sessionStorage holds the credentials");
    const back = await page.evaluate(() => history.length);
    assert(back >= 1, "history");
  });

  await test("customers: table, total, pages by number and cursor", async () => {
    const status = page.getByRole("status").filter({ hasText: "customers" });
    await status.filter({ hasText: "24 customers" }).waitFor();
    for (const name of ["Name", "Tier", "Status", "Members"]) {
      await page.getByRole("columnheader", { name, exact: true }).waitFor();
    }
    equal(await page.getByRole("link", { name: "Acme Corp", exact: true }).count(), 1, "names link to details");
    equal(await page.locator("tbody tr").count(), 10, "page 1 has 10 rows");
    await axe(page, "customers");
    await shot(page, "03-customers");
    const first = await page.locator("tbody tr").first().innerText();
    await page.getByRole("button", { name: "Next page", exact: true }).click();
    await page.getByText("Page 2 of 3").waitFor();
    assert(new URL(page.url()).searchParams.get("cursor"), "the next page follows the cursor");
    assert((await page.locator("tbody tr").first().innerText()) !== first, "page 2 differs");
    await page.getByRole("button", { name: "Next page", exact: true }).click();
    await page.getByText("Page 3 of 3").waitFor();
    equal(await page.locator("tbody tr").count(), 4, "page 3 has the last 4");
    assert(await page.getByRole("button", { name: "Next page", exact: true }).isDisabled(), "no page after the last");
    await page.getByRole("button", { name: "Previous page", exact: true }).click();
    await page.getByText("Page 2 of 3").waitFor();
    await page.getByLabel("Go to page").fill("1");
    await page.getByRole("button", { name: "Go", exact: true }).click();
    await page.getByText("Page 1 of 3").waitFor();
    assert(await page.getByRole("button", { name: "Previous page", exact: true }).isDisabled(), "no page before the first");
  });

  await test("customers: the Tier and Status filters give the API's totals", async () => {
    const want = await api(adminToken, "/customers?tierName=pro&status=active&limit=1");
    await page.getByRole("combobox", { name: "Tier", exact: true }).selectOption("pro");
    await page.getByRole("status").filter({ hasText: "8 customers" }).waitFor();
    await page.getByRole("combobox", { name: "Status", exact: true }).selectOption("active");
    const total = `${want.json.items} ${want.json.items === 1 ? "customer" : "customers"}`;
    await page.getByRole("status").filter({ hasText: total }).waitFor();
    for (const cell of await page.locator("tbody tr td:nth-child(2)").allInnerTexts()) equal(cell, "pro", "tier column");
    await axe(page, "customers-filtered");
    await shot(page, "04-customers-filtered");
    await page.getByRole("combobox", { name: "Tier", exact: true }).selectOption("");
    await page.getByRole("combobox", { name: "Status", exact: true }).selectOption("");
    await page.getByRole("status").filter({ hasText: "24 customers" }).waitFor();
  });

  await test("keyboard: Tab reaches a customer and Enter opens it", async () => {
    await page.locator("body").focus();
    let found = false;
    for (let i = 0; i < 40 && !found; i++) {
      await page.keyboard.press("Tab");
      found = await page.evaluate(() => document.activeElement?.textContent === "Acme Corp");
    }
    assert(found, "Acme Corp is reachable with Tab");
    await page.keyboard.press("Enter");
    await h1(page, ACME.name).waitFor();
    assert(await page.evaluate(() => document.activeElement?.tagName === "H1"), "the heading takes focus");
  });

  await test("customer detail: members with roles, the owner protected, members page", async () => {
    const members = page.getByRole("table", { name: "Members", exact: true });
    await members.getByRole("columnheader", { name: "User ID", exact: true }).waitFor();
    await members.getByRole("columnheader", { name: "Role", exact: true }).waitFor();
    const owner = members.getByRole("row").filter({ hasText: ACME.owner });
    await owner.getByText("owner", { exact: true }).waitFor();
    equal(await owner.getByRole("combobox", { name: "Role" }).count(), 0, "no Role select for the owner");
    equal(await owner.getByRole("button", { name: "Remove" }).count(), 0, "no Remove for the owner");
    const admin = members.getByRole("row").filter({ hasText: userId(0, 1) });
    equal(await admin.getByRole("combobox", { name: "Role", exact: true }).inputValue(), "admin", "an admin's select");
    equal(await admin.getByRole("button", { name: "Remove", exact: true }).count(), 1, "others can be removed");
    await page.getByText("121 members").waitFor();
    await page.getByRole("navigation", { name: "Member pages" }).getByText("Page 1 of 13").waitFor();
    await page.getByRole("table", { name: "Audit", exact: true }).waitFor();
    await page.getByRole("button", { name: "Delete customer", exact: true }).waitFor();
    await axe(page, "customer");
    await shot(page, "05-customer");
    await page.getByRole("navigation", { name: "Member pages" }).getByRole("button", { name: "Next page" }).click();
    await page.getByRole("navigation", { name: "Member pages" }).getByText("Page 2 of 13").waitFor();
  });

  const newMember = crypto.randomUUID();
  await test("add member: a double click adds once, with one Idempotency-Key", async () => {
    const posts = [];
    page.on("request", (r) => {
      if (r.method() === "POST" && r.url().endsWith(`/customer/${ACME.id}/member`)) posts.push(r.headers()["idempotency-key"]);
    });
    const form = page.getByRole("form", { name: "Add member" });
    await form.getByRole("textbox", { name: "User ID", exact: true }).fill(newMember);
    await form.getByRole("combobox", { name: "Role", exact: true }).selectOption("admin");
    await form.getByRole("button", { name: "Add member", exact: true }).dblclick();
    await page.getByText(`Added ${newMember} as admin.`).waitFor();
    await sleep(300);
    equal(posts.length, 1, "one POST for a double click");
    assert(UUID.test(posts[0]), `Idempotency-Key ${posts[0]}`);
    const found = await api(adminToken, `/user/${newMember}/customer`);
    equal([found.status, found.json.customerID, found.json.role], [200, ACME.id, "admin"], "the API has the member");
    const audit = await api(adminToken, `/customer/${ACME.id}/audit?limit=20`);
    equal(audit.json.events.filter((e) => e.action === "member.added" && e.userID === newMember).length, 1, "one member.added");
  });

  await test("change a role, then remove the member, each through its row", async () => {
    const patches = [];
    page.on("request", (r) => r.method() === "PATCH" && patches.push(r.headers()["idempotency-key"]));
    await page.getByRole("navigation", { name: "Member pages" }).getByRole("button", { name: "Previous page" }).click();
    const row = page.getByRole("table", { name: "Members" }).getByRole("row").filter({ hasText: newMember });
    await row.getByRole("combobox", { name: "Role", exact: true }).selectOption("user");
    await page.getByText(`Changed the role of ${newMember} to user.`).waitFor();
    assert(patches.length === 1 && UUID.test(patches[0]), "the PATCH carries an Idempotency-Key");
    equal((await api(adminToken, `/user/${newMember}/customer`)).json.role, "user", "the API has the new role");
    // The changed member sorts among the users now (by join time: the last
    // page); remove it from the page that holds it.
    const pages = (await api(adminToken, `/customer/${ACME.id}/members?limit=10`)).json.pages;
    let removed = false;
    for (let n = 1; n <= pages && !removed; n++) {
      await page.getByRole("navigation", { name: "Member pages" }).getByLabel("Go to page").fill(String(n));
      await page.getByRole("navigation", { name: "Member pages" }).getByRole("button", { name: "Go" }).click();
      await page.getByRole("navigation", { name: "Member pages" }).getByText(`Page ${n} of`).waitFor();
      const target = page.getByRole("table", { name: "Members" }).getByRole("row").filter({ hasText: newMember });
      if ((await target.count()) === 1) {
        // With the keyboard: focus the row's button, Enter.
        await target.getByRole("button", { name: "Remove", exact: true }).focus();
        await page.keyboard.press("Enter");
        await page.getByText(`Removed ${newMember}.`).waitFor();
        removed = true;
      }
    }
    assert(removed, "the member was on a page");
    equal((await api(adminToken, `/user/${newMember}/customer`)).status, 404, "the API no longer has it");
  });

  await test("audit: the trail shows the added, changed and removed member", async () => {
    const audit = page.getByRole("table", { name: "Audit", exact: true });
    for (const action of ["member.added", "member.role_changed", "member.removed"]) {
      await audit.getByRole("row").filter({ hasText: action }).filter({ hasText: newMember }).first().waitFor();
    }
    await page.getByRole("heading", { level: 2, name: "Audit" }).scrollIntoViewIfNeeded();
    await axe(page, "customer-after-changes");
    await shot(page, "06-customer-audit");
  });

  await test("delete: confirmed by typing the name, deletion_in_progress retried after Retry-After", async () => {
    await page.goto(`${origin}/console/customers/${INITECH.id}`);
    await h1(page, INITECH.name).waitFor();
    const deletes = [];
    let answered503 = false;
    await page.route(`**/api/billing/v1/admin/customer/${INITECH.id}`, async (route) => {
      if (route.request().method() !== "DELETE") return route.continue();
      deletes.push(route.request().headers()["idempotency-key"]);
      if (answered503) return route.continue();
      answered503 = true;
      // The API's answer when a cascade outlives its request (shared/src/error.rs).
      const errorId = crypto.randomUUID();
      return route.fulfill({
        status: 503,
        headers: { "content-type": "application/json", "retry-after": "1", "x-error": "the deletion is still running", "x-error-id": errorId },
        body: JSON.stringify({ error: { message: "the deletion is still running", type: "CRITICAL", code: "deletion_in_progress", error_id: errorId } }),
      });
    });
    // With the keyboard: Enter opens the dialog, focus lands in it, Escape
    // closes it and gives focus back.
    const opener = page.getByRole("button", { name: "Delete customer", exact: true });
    await opener.focus();
    await page.keyboard.press("Enter");
    const dialog = page.getByRole("dialog", { name: `Delete ${INITECH.name}?` });
    await dialog.waitFor();
    const name = dialog.getByRole("textbox", { name: "Customer name", exact: true });
    assert(await name.evaluate((el) => el === document.activeElement), "the name field takes focus");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
    assert(await opener.evaluate((el) => el === document.activeElement), "focus returns to Delete customer");
    await page.keyboard.press("Enter");
    await dialog.waitFor();
    const del = dialog.getByRole("button", { name: "Delete", exact: true });
    assert(await del.isDisabled(), "Delete waits for the name");
    await page.keyboard.type("Initech Inc");
    assert(await del.isDisabled(), "a wrong name does not enable Delete");
    await name.fill("");
    await page.keyboard.type(INITECH.name);
    assert(await del.isEnabled(), "the name enables Delete");
    await axe(page, "delete-dialog");
    await shot(page, "07-delete-dialog");
    await page.keyboard.press("Enter");
    await dialog.getByText(/deletion_in_progress.*retrying in 1 s/).waitFor();
    await shot(page, "08-delete-in-progress");
    await page.getByText(`Deleted ${INITECH.name}.`).waitFor({ timeout: 15_000 });
    await h1(page, "Customers").waitFor();
    equal(deletes.length, 2, "one retry");
    assert(UUID.test(deletes[0]) && deletes[0] === deletes[1], "the retry repeats the Idempotency-Key");
    await page.getByRole("status").filter({ hasText: "23 customers" }).waitFor();
    equal((await api(adminToken, `/customer/${INITECH.id}`)).status, 404, "gone from the API");
  });

  await test("users: find a user's customer, an unknown user, a bad id", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Users" }).click();
    await h1(page, "Users").waitFor();
    const field = page.getByRole("textbox", { name: "User ID", exact: true });
    await field.fill(ACME.owner);
    await field.press("Enter");
    const result = page.getByRole("status").filter({ hasText: "owner" });
    await result.waitFor();
    await axe(page, "users");
    await shot(page, "09-users");
    await field.fill(crypto.randomUUID());
    await page.getByRole("button", { name: "Find", exact: true }).click();
    await page.getByText("belongs to no customer").waitFor();
    await field.fill("nope");
    await page.getByRole("button", { name: "Find", exact: true }).click();
    const alert = page.getByRole("alert");
    await alert.waitFor();
    assert(/invalid_user_id/.test(await alert.innerText()) && /Error ID/.test(await alert.innerText()), "the API's error");
    await axe(page, "users-error");
    await shot(page, "10-users-error");
    await field.fill(ACME.owner);
    await page.getByRole("button", { name: "Find", exact: true }).click();
    await page.getByRole("status").getByRole("link", { name: ACME.name, exact: true }).click();
    await h1(page, ACME.name).waitFor();
  });

  await test("sign-out forgets the credentials", async () => {
    await page.getByRole("button", { name: "Sign out", exact: true }).click();
    await h1(page, "Sign in").waitFor();
    equal(await page.evaluate(() => sessionStorage.length + localStorage.length), 0, "nothing kept");
    await page.reload();
    await h1(page, "Sign in").waitFor();
    equal(page.errors, [], "page errors");
  });
  await context.close();

  await test("an API key signs in; once revoked, the next call (401) returns to sign-in", async () => {
    const key = JSON.parse(billingDev("api-key", "--user", "0d3c8f6e-0000-4000-8000-000000000002", "--role", "billing_admin"));
    const { context, page } = await open();
    await page.goto(`${origin}/console/`);
    await page.getByRole("textbox", { name: "API key", exact: true }).fill(key.apiKey);
    await page.getByLabel("API secret", { exact: true }).fill(key.apiSecret);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await h1(page, "Customers").waitFor();
    billingDev("revoke-api-key", key.apiKey);
    await page.getByRole("button", { name: "Next page", exact: true }).click();
    await h1(page, "Sign in").waitFor();
    const alert = await page.getByRole("alert").innerText();
    assert(/Signed out/.test(alert) && /Error ID/.test(alert), alert);
    equal(await page.evaluate(() => sessionStorage.length), 0, "the credentials are forgotten");
    await axe(page, "sign-in-after-401");
    await shot(page, "11-sign-in-after-401");
    equal(page.errors, [], "page errors");
    await context.close();
  });
  await stack.stop();

  await test("OpenID Connect: authorization code with PKCE against the issuer's discovery document", async () => {
    const clientId = "billing-console";
    const audience = "billing-admin-api";
    const stub = await startOidcStub({ clientId, audience, subject: "5f35d2c4-5633-4b16-bbf0-5ca22ef8ea2e", roles: ["billing_admin"] });
    try {
      const oidcStack = await startStack("oidc-stack", {
        JWT_JWKS_URL: `${stub.issuer}/jwks`,
        JWT_ISSUER: stub.issuer,
        JWT_AUDIENCE: audience,
        CONSOLE_OIDC_CLIENT_ID: clientId,
      });
      const csp = (await fetch(`${oidcStack.origin}/console/`)).headers.get("content-security-policy");
      assert(csp.includes(`connect-src 'self' ${stub.issuer};`), csp);
      const { context, page } = await open();
      await page.goto(`${oidcStack.origin}/console/`);
      await h1(page, "Sign in").waitFor();
      await axe(page, "sign-in-oidc");
      await shot(page, "12-sign-in-oidc");
      await page.getByRole("button", { name: "Sign in with your identity provider", exact: true }).click();
      await h1(page, "Customers").waitFor();
      await page.getByRole("status").filter({ hasText: "24 customers" }).waitFor();
      equal(stub.authorizations.length, 1, "one authorization request");
      const auth = stub.authorizations[0];
      equal([auth.code_challenge_method, auth.redirect_uri, auth.scope], ["S256", `${oidcStack.origin}/console/`, "openid"], "the request");
      assert(auth.state && auth.nonce && auth.code_challenge.length >= 43, "state, nonce and challenge");
      equal(stub.exchanges, [{ verified: true, clientId }], "one code exchange, the verifier matching the challenge");
      const url = new URL(page.url());
      equal([url.pathname, url.search, url.hash], ["/console/", "", ""], "no code or state left in the URL");
      equal(await page.evaluate(() => [localStorage.length, Object.keys(sessionStorage)]), [0, ["billing-console.credentials"]], "storage");
      equal(page.errors, [], "page errors");
      await context.close();
      await oidcStack.stop();
    } finally {
      await stub.close();
    }
  });
} catch (error) {
  failures.push("setup");
  console.log(`FAIL setup\n${error?.stack ?? error}`);
} finally {
  await browser?.close().catch(() => {});
  for (const stack of stacks) await stack.stop();
}

writeFileSync(join(shots, "axe.json"), `${JSON.stringify(axeResults, null, 2)}\n`);
console.log("\naxe-core (WCAG 2.1 A/AA) per screen:");
for (const [screen, r] of Object.entries(axeResults)) {
  console.log(`  ${screen.padEnd(24)} ${r.violations.length} violations, ${r.passes} rules passed`);
}
console.log(`screenshots: ${shots}`);
if (failures.length) {
  console.log(`\n${failures.length} failed: ${failures.join(", ")}`);
  process.exit(1);
}
console.log("\nevery browser test passed");
