// Drives Hive's dashboard in Debian's Chromium, as a person would: the setup wizard from the
// link `hive serve` printed (with TOTP enrollment), signing out and in with password + TOTP,
// a passkey added (a virtual authenticator through the DevTools protocol) and used to sign in
// without the password and as the second factor after it,
// a secret and an llm agent (on a stand-in endpoint this script serves) started and chatted
// with, the reply seen while it streams, a hosted agent whose bundle is uploaded through the
// page (a bad one refused), started in the sandbox with its logs followed live and its
// measurements shown, a second version rolled back, paused, resumed, restarted and stopped,
// a workflow (a broken document's problems listed, then saved; its graph drawn) run until it
// waits for an approval, followed live, approved from its page, and another run cancelled,
// an API token created, used and revoked, a viewer invited who signs up and is refused the
// admin pages, a cross-origin form refused, and on every page an accessibility check (axe-core: no serious
// or critical violation), no Content-Security-Policy violation, the page's weight, and a
// screenshot at desktop and phone width.
//
// Usage: node dashboard.mjs SETUP_LINK SCREENSHOT_DIR
//   HIVE_BROWSER        the browser to drive (default /usr/bin/chromium)
//   HIVE_TEST_LLM_PORT  where this script serves its OpenAI-compatible stand-in, which Hive's
//                       egress allowlist must let it reach (127.0.0.1:PORT)
//   HIVE_TEST_BUNDLE, HIVE_TEST_BUNDLE_V2
//                       two versions of the example hosted agent's bundle (tar.gz files)
//   HIVE_TEST_SANDBOX   "1" when Hive can run hosted agents here (root and bubblewrap): the
//                       agent is then started, followed and stopped; else only its versions
// Exits 0 when every check passed; otherwise prints the failure and exits 1.

import { chromium } from "playwright-core";
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { createServer } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [setupLink, screenshots] = process.argv.slice(2);
const llmPort = Number(process.env.HIVE_TEST_LLM_PORT);
const bundles = [process.env.HIVE_TEST_BUNDLE, process.env.HIVE_TEST_BUNDLE_V2];
const sandbox = process.env.HIVE_TEST_SANDBOX === "1";
if (!setupLink || !screenshots) {
  console.error("usage: node dashboard.mjs SETUP_LINK SCREENSHOT_DIR");
  process.exit(2);
}
const base = new URL(setupLink).origin;
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const PAGE_WEIGHT_LIMIT = 150 * 1024;
const PASSWORD = "a long passphrase for the first admin";
const EMAIL = "ada@example.com";
rmSync(screenshots, { recursive: true, force: true }); // no picture of an earlier run stays
mkdirSync(screenshots, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// RFC 6238 (SHA-1, 30-second steps, six digits) from a base32 key: what an authenticator app
// computes.
function totp(base32, step) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of base32.replace(/=+$/, "").toUpperCase()) {
    bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  const value = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, "0");
}
const currentStep = () => Math.floor(Date.now() / 30_000);

// An OpenAI-compatible endpoint standing in for a model: it lists one model and streams its
// answer in four pieces, a moment apart, so that the page can be seen showing it as it comes.
const LLM_KEY = "sk-stand-in-key-for-the-browser-test";
const REPLY = ["Hello", " from", " the", " stand-in."];
const llmSeen = { keys: new Set(), prompts: [] };
const llm = createServer((req, res) => {
  llmSeen.keys.add(req.headers.authorization || "");
  if (req.method === "GET" && req.url === "/v1/models") {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ object: "list", data: [{ id: "stand-in", object: "model" }] }));
    return;
  }
  let body = "";
  req.on("data", (chunk) => { body += chunk; });
  req.on("end", async () => {
    const request = JSON.parse(body || "{}");
    llmSeen.prompts.push(request.messages?.at(-1)?.content);
    // A message asking for it gets the answer of a provider that refuses the key.
    if (request.messages?.at(-1)?.content === "Refuse me") {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: "invalid api key" } }));
      return;
    }
    if (!request.stream) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: "c", object: "chat.completion", model: "stand-in",
        choices: [{ index: 0, message: { role: "assistant", content: REPLY.join("") }, finish_reason: "stop" }],
        usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } }));
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    const chunk = (delta, finish) => `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk",
      model: "stand-in", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
    for (const piece of REPLY) {
      res.write(chunk({ content: piece }, null));
      await new Promise((resolve) => setTimeout(resolve, 400));
    }
    res.write(chunk({}, "stop"));
    res.write(`data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", model: "stand-in",
      choices: [], usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 } })}\n\n`);
    res.end("data: [DONE]\n\n");
  });
});
await new Promise((resolve) => llm.listen(llmPort, "127.0.0.1", resolve));

const cspViolations = [];
const visited = [];

// The checks every page gets: accessibility, weight, the policy, and screenshots.
async function inspect(page, name) {
  await page.waitForLoadState("load");
  await page.evaluate(axeSource); // DevTools evaluation: the page's CSP rightly forbids injecting it
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  const grave = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(grave.length === 0, `${name}: accessibility violations: ${grave
    .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`)
    .join("; ")}`);
  const weight = await page.evaluate(() =>
    performance.getEntriesByType("navigation").concat(performance.getEntriesByType("resource"))
      .reduce((sum, entry) => sum + (entry.decodedBodySize || 0), 0));
  check(weight <= PAGE_WEIGHT_LIMIT, `${name}: ${weight} bytes, over ${PAGE_WEIGHT_LIMIT}`);
  check(cspViolations.length === 0, `${name}: CSP violations: ${cspViolations.join("; ")}`);
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  const desktop = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${name}: wider than a phone by ${overflow} px`);
  await page.screenshot({ path: join(screenshots, `${name}-phone.png`), fullPage: true });
  await page.setViewportSize(desktop);
  visited.push(`${name} (${weight} bytes)`);
}

// A hosted agent's bundle through the page's file input: the script uploads it and reloads
// the page.
async function uploadBundle(page, file) {
  await page.getByLabel("Bundle (.tar.gz)").setInputFiles(file);
  await Promise.all([
    page.waitForNavigation(),
    page.getByRole("button", { name: "Upload the bundle", exact: true }).click(),
  ]);
}

// The agent's status, as its page's State section shows it.
async function agentStatus(page) {
  return (await page.locator("section[aria-labelledby=state-heading] .state").textContent()).trim();
}

// The cells of the versions table, a row per version, newest first.
async function versions(page) {
  const rows = await page.locator("#versions tbody tr").all();
  return Promise.all(rows.map((row) => row.locator("td").allTextContents()));
}

async function submit(page, button) {
  const [response] = await Promise.all([
    page.waitForNavigation(),
    page.getByRole("button", { name: button, exact: true }).click(),
  ]);
  return response;
}

// A passkey button: its script runs the ceremony and moves on, or says on the page what
// went wrong (which the check then quotes).
async function passkey(page, button) {
  const moved = page.waitForNavigation().then(() => "moved");
  await page.getByRole("button", { name: button, exact: true }).click();
  const refused = page.locator("#passkey-error:not([hidden])").waitFor().then(() => "refused", () => "moved");
  const outcome = await Promise.race([moved, refused]);
  check(outcome === "moved", `${button}: ${outcome === "refused" ? await page.locator("#passkey-error").textContent() : ""}`);
}

// A page on another origin (another port of the same host: same site, so the session cookie
// goes along) whose form posts to Hive: the origin check must refuse it. Hive is reached as
// localhost (passkeys need a domain name), so the other page is too.
async function crossOriginPost(page, action, fields) {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`).join("");
  const server = createServer((_, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<!doctype html><title>elsewhere</title><form method="post" action="${base}${action}">${inputs}<button>go</button></form>`);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await page.goto(`http://localhost:${server.address().port}/`);
    const response = await submit(page, "go");
    return response.status();
  } finally {
    server.close();
  }
}

const browser = await chromium.launch({
  executablePath: process.env.HIVE_BROWSER || "/usr/bin/chromium",
  // Chromium's own sandbox needs user namespaces that a root CI container does not give.
  args: ["--no-sandbox"],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
// Every page is watched for what the browser refused under the policy.
async function watchedPage(browserContext) {
  const opened = await browserContext.newPage();
  opened.on("console", (message) => {
    if (message.type() === "error" && /Content Security Policy/i.test(message.text())) {
      cspViolations.push(message.text());
    }
  });
  return opened;
}
const page = await watchedPage(context);

try {
  // The setup wizard, from the printed link: the script takes the token from the fragment
  // and drops the fragment from the address bar.
  await page.goto(setupLink);
  await page.waitForLoadState("load");
  check(!page.url().includes("#"), `the setup token stayed in the address bar: ${page.url()}`);
  const token = await page.getByLabel("Setup token").inputValue();
  check(token.length === 64, "the setup token was not filled in from the link");
  await inspect(page, "setup");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Name").fill("Ada Admin");
  await page.getByLabel("Password").fill(PASSWORD);
  await submit(page, "Create the administrator");

  // Admins must have a second factor (HIVE_MFA_REQUIRED=admins): enrollment comes next.
  check(new URL(page.url()).pathname === "/account/second-factor", `after setup: ${page.url()}`);
  await inspect(page, "second-factor-required");
  await submit(page, "Set up an authenticator app");
  const secret = (await page.locator("#totp-secret").textContent()).trim();
  check(/^[A-Z2-7]{32}$/.test(secret), "no TOTP key shown");
  check(await page.locator("img.qr").evaluate((img) => img.complete && img.naturalWidth > 0),
    "the QR code did not load");
  await inspect(page, "totp-enrollment");
  const enrolledStep = currentStep();
  await page.getByLabel("Code from the app").fill(totp(secret, enrolledStep));
  await submit(page, "Confirm");
  const codes = await page.locator("#recovery-codes li").allTextContents();
  check(codes.length === 10, `${codes.length} recovery codes shown`);
  await inspect(page, "recovery-codes");
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Continue to Hive" }).click()]);
  check(new URL(page.url()).pathname === "/", `after enrollment: ${page.url()}`);
  check(await page.getByRole("heading", { name: "Home" }).isVisible(), "no home page");
  check(await page.getByText(/^answers \(\d+ ms\)$/).isVisible(), "the home page does not show the database's health");
  check(await page.getByRole("heading", { name: /^System health: (ok|degraded)$/ }).isVisible(), "no system health panel");
  const activity = await page.locator("section[aria-labelledby=activity-heading] tbody td:nth-child(3)").allTextContents();
  check(activity.includes("auth.mfa.totp_enable") && activity.includes("setup.create_admin"),
    `the recent activity does not show the setup and the enrollment: ${activity}`);
  await inspect(page, "home");

  // Forms from another origin are refused, signed in or not, and change nothing.
  check(await crossOriginPost(page, "/logout", {}) === 403, "a cross-origin sign-out was not refused");
  check(await crossOriginPost(page, "/login", { email: EMAIL, password: PASSWORD }) === 403,
    "a cross-origin sign-in was not refused");
  await page.goto(`${base}/`);
  check(new URL(page.url()).pathname === "/", "the cross-origin post signed the admin out");

  // Out, then in again with password + TOTP.
  await submit(page, "Sign out");
  check(new URL(page.url()).pathname === "/login", `after signing out: ${page.url()}`);
  await inspect(page, "sign-in");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await submit(page, "Sign in");
  check(new URL(page.url()).pathname === "/login/verify", `after the password: ${page.url()}`);
  await inspect(page, "second-factor");
  // A step's code is accepted once: the app shows the next one when its step begins.
  while (currentStep() <= enrolledStep) {
    await page.waitForTimeout(250);
  }
  await page.getByLabel("Code").fill(totp(secret, currentStep()));
  await submit(page, "Verify");
  check(new URL(page.url()).pathname === "/", `after the second factor: ${page.url()}`);

  // A passkey, on an authenticator the browser emulates (one with a screen lock that holds
  // the credential itself, as a phone or laptop does), then used to sign in both ways.
  const devtools = await context.newCDPSession(page);
  await devtools.send("WebAuthn.enable");
  await devtools.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.getByRole("link", { name: "Passkeys & second factor" }).click();
  await page.waitForLoadState("load");
  await page.getByLabel("Name of the new passkey").fill("work laptop");
  await passkey(page, "Add a passkey");
  check(await page.getByRole("cell", { name: "work laptop", exact: true }).isVisible(), "the passkey is not listed");
  await inspect(page, "passkeys");
  await submit(page, "Sign out");
  await passkey(page, "Sign in with a passkey");
  check(new URL(page.url()).pathname === "/", `after a passkey sign-in: ${page.url()}`);
  check(await page.locator("header").getByText("Ada Admin").isVisible(), "the passkey signed in nobody");
  await submit(page, "Sign out");
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill(PASSWORD);
  await submit(page, "Sign in");
  check(new URL(page.url()).pathname === "/login/verify", `after the password: ${page.url()}`);
  await passkey(page, "Use a passkey");
  check(new URL(page.url()).pathname === "/", `after the passkey as second factor: ${page.url()}`);
  await page.getByRole("link", { name: "Passkeys & second factor" }).click();
  await page.waitForLoadState("load");
  check(!(await page.getByRole("cell", { name: "never" }).count()), "the passkey's last use is not shown");
  await submit(page, "Delete the passkey work laptop");
  check(await page.getByRole("cell", { name: "work laptop", exact: true }).count() === 0, "the passkey is still listed");

  // A secret, an llm agent that uses it as its key, started, and a chat with a streamed reply.
  await page.getByRole("link", { name: "Secrets" }).click();
  await page.waitForLoadState("load");
  await page.getByLabel("Name").fill("llm-key");
  await page.getByLabel("Value").fill(LLM_KEY);
  await submit(page, "Add the secret");
  check(await page.getByRole("cell", { name: "llm-key", exact: true }).isVisible(), "the secret is not listed");
  check(!(await page.content()).includes(LLM_KEY), "the secret's value is on the page");
  await inspect(page, "secrets");
  await page.getByRole("link", { name: "Agents" }).click();
  await page.waitForLoadState("load");
  await inspect(page, "agents");
  await page.getByLabel("Name").fill("helper");
  await page.getByLabel("Kind").selectOption("llm");
  await page.getByLabel("Endpoint URL").fill(`http://127.0.0.1:${llmPort}/v1`);
  await page.getByLabel("Model").fill("stand-in");
  await page.getByLabel("API key").selectOption({ label: "llm-key" });
  await submit(page, "Create the agent");
  check(/^\/agents\/[0-9a-f-]{36}$/.test(new URL(page.url()).pathname), `after creating: ${page.url()}`);
  const agentPage = page.url();
  await submit(page, "Start");
  check(await page.getByText("ready", { exact: true }).isVisible(), "the agent did not become ready");
  check(llmSeen.keys.has(`Bearer ${LLM_KEY}`), "the endpoint never saw the key from the vault");
  await inspect(page, "agent");
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Chat" }).click()]);
  await inspect(page, "chat");
  await page.getByLabel("Message", { exact: true }).fill("Say hello");
  await page.getByRole("button", { name: "Send" }).click();
  const reply = page.locator("#messages li.from-agent .text").last();
  // Part of the reply on the page before the rest has been sent: it is shown as it streams.
  await reply.filter({ hasText: "Hello" }).waitFor();
  const partial = await reply.textContent();
  check(partial.startsWith("Hello") && !partial.includes("stand-in."), `not streamed: "${partial}"`);
  await reply.filter({ hasText: "Hello from the stand-in." }).waitFor();
  check(llmSeen.prompts.includes("Say hello"), "the endpoint did not get the message");
  check(new URL(page.url()).searchParams.has("conversation"), "the page does not name the conversation");
  await page.reload();
  const history = await page.locator("#messages li").allTextContents();
  check(history.length === 2 && history[1].includes("Hello from the stand-in."),
    `the conversation's history: ${JSON.stringify(history)}`);
  await inspect(page, "chat-history");
  // A call whose key the endpoint refuses: the chat marks the reply failed and says why, and
  // the agent is in error until its key is replaced.
  await page.getByLabel("Message", { exact: true }).fill("Refuse me");
  await page.getByRole("button", { name: "Send" }).click();
  const refusal = page.locator("#messages li.from-agent").last();
  await refusal.filter({ hasText: "(failed)" }).waitFor();
  check((await refusal.textContent()).includes("the model endpoint refused the key (HTTP 401)"), "the chat does not say why");

  // The agent's page: today's tokens, and the calls with their outcome and what went wrong.
  await page.goto(agentPage);
  const today = page.locator("table.usage tbody tr").last();
  const usage = await today.locator("td").allTextContents();
  check(usage[0] === new Date().toISOString().slice(0, 10) && usage[1] === "1" && usage[4].trim() === "9",
    `today's usage: ${usage}`);
  const calls = page.locator("section[aria-labelledby=calls-heading] tbody tr");
  const refusedCall = await calls.first().locator("td").allTextContents();
  check(refusedCall[3] === "failed" && refusedCall[5].includes("HTTP 401"), `the failed call: ${refusedCall}`);
  const answeredCall = await calls.nth(1).locator("td").allTextContents();
  check(answeredCall[3] === "completed", `the answered call: ${answeredCall}`);
  await inspect(page, "agent-activity");

  // The agent's settings and limits edited from its page; a bad value refused in words.
  await page.getByLabel("System prompt (optional)").fill("Answer briefly.");
  await submit(page, "Save the settings");
  check(await page.getByRole("status").filter({ hasText: "Saved" }).isVisible(), "the settings were not saved");
  check(await page.getByLabel("System prompt (optional)").inputValue() === "Answer briefly.", "the prompt was not kept");
  check(await page.getByLabel("API key (a secret of yours)").inputValue() !== "", "saving dropped the API key");
  await page.getByLabel("Requests per minute (1 to 100,000)").fill("120");
  await submit(page, "Save the limits");
  check(await page.getByLabel("Requests per minute (1 to 100,000)").inputValue() === "120", "the limit was not kept");
  await page.getByLabel("Name", { exact: true }).fill("Not A Valid Name");
  const badName = await submit(page, "Save the settings");
  check(badName.status() === 400 && await page.getByRole("alert").isVisible(), `a bad name was not refused: ${badName.status()}`);
  await inspect(page, "agent-edit-refused");

  // A hosted agent: created from the list with no settings, its page asks for a bundle.
  if (bundles.every(Boolean)) {
    await page.getByRole("link", { name: "Secrets" }).click();
    await page.waitForLoadState("load");
    // The example's manifest names this secret of its owner's.
    await page.getByLabel("Name").fill("example-upstream-token");
    await page.getByLabel("Value", { exact: true }).fill("token-for-the-hosted-example");
    await submit(page, "Add the secret");
    await page.getByRole("link", { name: "Agents" }).click();
    await page.waitForLoadState("load");
    await page.getByLabel("Name").fill("echo");
    await page.getByLabel("Kind").selectOption("hosted");
    await submit(page, "Create the agent");
    const hostedPage = page.url();
    const hostedId = new URL(hostedPage).pathname.split("/").pop();
    check(await page.getByText("No bundle yet: upload one").isVisible(), "a new hosted agent's page does not ask for a bundle");
    check(!(await page.locator("#bundle-needs-script").isVisible()), "the page says uploading needs a script it runs");
    check(await agentStatus(page) === "created", `a new hosted agent: ${await agentStatus(page)}`);

    // A file that is not a bundle: the API's refusal, said on the page.
    const scratch = mkdtempSync(join(tmpdir(), "hive-dashboard-"));
    const notBundle = join(scratch, "not-a-bundle.tar.gz");
    writeFileSync(notBundle, "not a bundle at all");
    await page.getByLabel("Bundle (.tar.gz)").setInputFiles(notBundle);
    await page.getByRole("button", { name: "Upload the bundle", exact: true }).click();
    const uploadError = page.getByRole("alert").filter({ hasText: "The bundle was not taken: " });
    await uploadError.waitFor();
    check((await uploadError.textContent()).length > "The bundle was not taken: ".length, "the refusal does not say why");
    await inspect(page, "hosted-upload-refused");
    rmSync(scratch, { recursive: true, force: true });

    // The example agent: the page comes back with version 1, the active one; the agent's
    // description is its manifest's.
    await uploadBundle(page, bundles[0]);
    const first = await versions(page);
    check(first.length === 1 && first[0][0] === "1" && first[0][4] === "you" && first[0][5].startsWith("active"),
      `after the first upload: ${JSON.stringify(first)}`);
    check(await page.getByText("Says back what it is sent").first().isVisible(), "the description is not the manifest's");

    if (sandbox) {
      // Started in the sandbox: ready, its first line on the page, marked as its stderr.
      await submit(page, "Start");
      check(await agentStatus(page) === "ready", `after the start: ${await agentStatus(page)}: ${await page.locator("section[aria-labelledby=state-heading] p").first().textContent()}`);
      const lines = page.locator("#log-lines li");
      const serving = lines.filter({ hasText: "serving A2A on" }).first();
      await serving.waitFor();
      check((await serving.locator(".log-stream").textContent()) === "stderr", "the stderr line is not marked");
      const stats = await page.locator("#hosted-stats").textContent();
      const memory = Number(/Memory\s*([\d.]+) MiB \(peak [\d.]+ MiB\)/.exec(stats)?.[1]);
      check(/Bundle version\s*1/.test(stats) && memory > 0 && /Processes\s*[1-9]/.test(stats)
        && /CPU time\s*[\d.]+ s/.test(stats) && /Through the proxy\s*0 requests, 0 refused/.test(stats),
        `the measurements: ${stats}`);
      // Followed live: a message sent through the API after the page opened, whose request
      // line the agent prints, appears without a reload.
      await page.locator("#log-follow").filter({ hasText: "Following its output" }).waitFor();
      await page.evaluate(() => { window.stillTheSamePage = true; });
      const requestLines = () => page.evaluate(() => Array.from(document.querySelectorAll("#log-lines li"))
        .filter((li) => li.textContent.includes('"POST ')).length);
      const before = await requestLines();
      const answer = await page.evaluate(async (id) => {
        const response = await fetch(`/api/a2a/agents/${id}/jsonrpc`, {
          method: "POST",
          headers: { "content-type": "application/json", "A2A-Version": "1.0" },
          credentials: "same-origin",
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "SendMessage", params: { message: {
            messageId: crypto.randomUUID(), role: "ROLE_USER", parts: [{ text: "hello from the test" }] } } }),
        });
        return response.json();
      }, hostedId);
      check(answer.result?.task?.artifacts?.[0]?.parts?.[0]?.text === "echo: hello from the test",
        `the agent's answer: ${JSON.stringify(answer)}`);
      await page.waitForFunction((count) => Array.from(document.querySelectorAll("#log-lines li"))
        .filter((li) => li.textContent.includes('"POST ')).length > count, before, { timeout: 20_000 });
      check(await page.evaluate(() => window.stillTheSamePage === true), "the page reloaded to show the line");
      await inspect(page, "hosted-agent");
    } else {
      console.log("dashboard: no sandbox here (root and bubblewrap): the hosted agent is not started");
    }

    // A second version: active from the next start; the first can be rolled back to.
    await uploadBundle(page, bundles[1]);
    const both = await versions(page);
    check(both.map((row) => row[0]).join() === "2,1" && both[0][5].startsWith("active") && !both[1][5].startsWith("active"),
      `after the second upload: ${JSON.stringify(both)}`);
    if (sandbox) check(both[1][5] === "running now", `the running version: ${JSON.stringify(both)}`);
    await submit(page, "Roll back to this version (1)");
    check(await page.getByRole("status").filter({ hasText: "Version 1 is the active one" }).isVisible(), "no word of the rollback");
    const rolled = await versions(page);
    check(rolled[1][5].startsWith("active") && !rolled[0][5].startsWith("active"), `after the rollback: ${JSON.stringify(rolled)}`);
    await inspect(page, "hosted-versions");

    if (sandbox) {
      await page.goto(hostedPage);
      await submit(page, "Pause");
      check(await agentStatus(page) === "paused", `after the pause: ${await agentStatus(page)}`);
      check(await page.getByRole("button", { name: "Resume", exact: true }).isVisible(), "no way to resume");
      await submit(page, "Resume");
      check(await agentStatus(page) === "ready", `after resuming: ${await agentStatus(page)}`);
      await submit(page, "Restart");
      check(await agentStatus(page) === "ready", `after the restart: ${await agentStatus(page)}`);
      await submit(page, "Stop");
      check(await agentStatus(page) === "stopped", `after the stop: ${await agentStatus(page)}`);
      check(await page.getByRole("button", { name: "Start", exact: true }).isVisible(), "a stopped agent offers no start");
      check(await page.locator("#log-follow").isHidden(), "a stopped agent's logs are followed");
    }
  }

  // Workflows: a broken document refused with every problem and nothing saved, then a good
  // one saved; its graph drawn; a run that waits for an approval followed live, approved from
  // its page and seen succeeding live; another run cancelled.
  await page.getByRole("link", { name: "Workflows", exact: true }).click();
  await page.waitForLoadState("load");
  const editor = page.getByLabel("Document (JSON)");
  check((await editor.inputValue()).includes('"type": "input"'), "the new-workflow form has no example");
  await inspect(page, "workflows");
  const broken = JSON.stringify({
    name: "refunds",
    nodes: [{ id: "start", type: "input" }, { id: "ask", type: "approval" }],
    edges: [{ from: "start", to: "nowhere" }],
  }, null, 2);
  await editor.fill(broken);
  const refusedSave = await submit(page, "Save the workflow");
  check(refusedSave.status() === 400, `a broken document answered ${refusedSave.status()}`);
  const problems = await page.locator("#problems li").allTextContents();
  check(problems.length >= 2 && problems.some((p) => p.includes("unknown_node"))
    && problems.some((p) => p.includes("'ask'") && p.includes("missing_field")),
    `the problems listed: ${JSON.stringify(problems)}`);
  check(await page.getByLabel("Document (JSON)").inputValue() === broken, "the document sent was not kept in the form");
  check(await page.getByRole("link", { name: "refunds" }).count() === 0, "a broken document was saved");
  await inspect(page, "workflow-problems");
  const refunds = {
    name: "refunds",
    description: "A large refund waits for a person",
    nodes: [
      { id: "start", type: "input", required: ["amount"] },
      { id: "large", type: "condition", expression: "input.amount > 100" },
      { id: "settle", type: "delay", seconds: 3 },
      { id: "sign-off", type: "approval", message: "Refund {{ input.amount }} EUR?", approvers: { users: [EMAIL] } },
      { id: "cool-off", type: "delay", seconds: 3 },
      { id: "small", type: "transform", value: "refunded at once" },
      { id: "done", type: "output", value: { amount: "{{ input.amount }}" } },
    ],
    edges: [
      { from: "start", to: "large" },
      { from: "large", to: "settle", when: "true" },
      { from: "large", to: "small", when: "false" },
      { from: "settle", to: "sign-off" },
      { from: "sign-off", to: "cool-off" },
      { from: "cool-off", to: "done" },
      { from: "small", to: "done" },
    ],
  };
  await page.getByLabel("Document (JSON)").fill(JSON.stringify(refunds, null, 2));
  await submit(page, "Save the workflow");
  check(/^\/workflows\/[0-9a-f-]{36}$/.test(new URL(page.url()).pathname), `after saving: ${page.url()}`);
  const workflowPage = page.url();
  check(await page.getByRole("heading", { name: "refunds", level: 1 }).isVisible(), "the workflow's page is not its");
  // The graph: one box per node, labelled with id and type; the condition's edges labelled.
  const drawn = await page.locator("svg.graph g.node").evaluateAll((nodes) =>
    nodes.map((node) => `${node.querySelector(".node-id").textContent} ${node.querySelector(".node-kind").textContent}`));
  check(drawn.length === refunds.nodes.length
    && refunds.nodes.every((node) => drawn.includes(`${node.id} ${node.type}`)), `the boxes drawn: ${drawn}`);
  const edgeLabels = await page.locator("svg.graph .edge-label text").allTextContents();
  check(edgeLabels.sort().join() === "false,true", `the edges' labels: ${edgeLabels}`);
  check(await page.locator("svg.graph path.edge").count() === refunds.edges.length, "not one arrow per edge");
  await inspect(page, "workflow");

  // A run that waits: its page follows it, the approval's step appears and the run waits
  // for the decision, all without a reload.
  await page.getByLabel("Input (a JSON object)").fill('{"amount": 250}');
  await submit(page, "Start a run");
  check(/^\/workflows\/runs\/[0-9a-f-]{36}$/.test(new URL(page.url()).pathname), `after starting: ${page.url()}`);
  const runPage = page.url();
  check(await page.locator('tr[data-step="sign-off"]').count() === 0, "the approval had started before the page opened");
  await page.evaluate(() => { window.stillTheSamePage = true; });
  await page.locator("#run-follow").filter({ hasText: "Following the run" }).waitFor();
  await page.locator('tr[data-step="sign-off"] .step-status').filter({ hasText: /^waiting$/ }).waitFor({ timeout: 20_000 });
  await page.locator("#run-status").filter({ hasText: /^waiting$/ }).waitFor();
  check(await page.getByRole("heading", { name: "Waiting for a decision: sign-off" }).isVisible(), "no decision asked for");
  check(await page.locator("[data-approval=sign-off] .approval-message").textContent() === "Refund 250 EUR?", "the approval's message");
  check(await page.evaluate(() => window.stillTheSamePage === true), "the page reloaded to show the step");
  const skipped = await page.locator('tr[data-step="small"] .step-status').textContent().catch(() => "");
  check(["", "skipped"].includes(skipped), `the branch not taken: ${skipped}`);
  await inspect(page, "workflow-run-waiting");
  // Approved from the page; the run goes on (a delay after the approval) and succeeds live.
  await page.getByLabel("Comment (optional)").fill("fine by me");
  await submit(page, "Approve");
  check(page.url() === runPage, `after approving: ${page.url()}`);
  await page.evaluate(() => { window.stillTheSamePage = true; });
  await page.locator("#run-status").filter({ hasText: /^succeeded$/ }).waitFor({ timeout: 20_000 });
  check(await page.evaluate(() => window.stillTheSamePage === true), "the page reloaded to show the end");
  check((await page.locator("#run-output").textContent()).includes("250"), "the run's output is not shown");
  check((await page.locator('tr[data-step="sign-off"] .step-output').textContent()).includes("fine by me"),
    "the decision's comment is not in the step's output");
  check(await page.locator("[data-run-action=cancel]").isHidden(), "an ended run offers to cancel");
  await inspect(page, "workflow-run-succeeded");

  // Another run, cancelled from its page while it waits.
  await page.goto(workflowPage);
  await page.getByLabel("Input (a JSON object)").fill('{"amount": 900}');
  await submit(page, "Start a run");
  await page.locator("#run-status").filter({ hasText: /^(queued|running|waiting)$/ }).waitFor();
  await submit(page, "Cancel the run");
  check((await page.locator("#run-status").textContent()) === "cancelled", "the run was not cancelled");
  check(await page.getByRole("button", { name: "Retry from the failed steps" }).isVisible(), "a cancelled run offers no retry");
  check(await page.locator("[data-run-action=cancel]").isHidden(), "a cancelled run offers to cancel");
  // The runs: both, newest first; the filter keeps the cancelled one.
  await page.goto(`${base}/workflows/runs`);
  const statuses = await page.locator("#runs tbody tr td:nth-child(4)").allTextContents();
  check(statuses.join() === "cancelled,succeeded", `the runs: ${statuses}`);
  await page.getByLabel("Status").selectOption("cancelled");
  await submit(page, "Show");
  check(await page.locator("#runs tbody tr").count() === 1, "the status filter");
  await inspect(page, "workflow-runs");

  // Billing: the wallet, the chat's usage above drawn as one bar for today, a budget set.
  await page.getByRole("link", { name: "Billing", exact: true }).click();
  await page.waitForLoadState("load");
  check((await page.locator("#balance").textContent()) === "0.00 USD", "the wallet's balance is not shown");
  await inspect(page, "billing");
  await page.getByRole("link", { name: "Usage", exact: true }).click();
  await page.waitForLoadState("load");
  check(await page.locator("svg#usage-chart rect.bar").count() === 1, "today's usage is not drawn");
  check(await page.locator("#usage-table tbody tr").count() === 1, "the chart's numbers are not listed");
  await inspect(page, "billing-usage");
  await page.getByRole("link", { name: "Budgets", exact: true }).click();
  await page.waitForLoadState("load");
  await page.getByLabel("On", { exact: true }).selectOption({ label: "helper" });
  await page.getByLabel("Max tokens (empty: no limit on tokens)").fill("1000000");
  await submit(page, "Set the budget");
  check(await page.getByRole("status").filter({ hasText: "The budget is set" }).isVisible(), "no budget set");
  check(await page.locator("#budgets tbody tr").filter({ hasText: "agent helper" }).count() === 1,
    "the budget is not listed");
  await inspect(page, "billing-budgets");

  // An API token: created (shown once), used, revoked.
  await page.getByRole("link", { name: "API tokens" }).click();
  await page.waitForLoadState("load");
  await inspect(page, "tokens");
  await page.getByLabel("Name").fill("ci token");
  await page.getByLabel("read", { exact: true }).check();
  await page.getByLabel("execute (call agents)").check();
  await submit(page, "Create the token");
  const apiToken = (await page.locator("#new-token").textContent()).trim();
  check(apiToken.startsWith("hive_"), "no token shown after creating one");
  await inspect(page, "token-created");
  const me = (token) => fetch(`${base}/api/v1/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  check((await me(apiToken)).status === 200, "the new token does not authenticate");
  await submit(page, "Revoke the token ci token");
  check((await me(apiToken)).status === 401, "the revoked token still authenticates");
  check(await page.getByRole("cell", { name: "revoked" }).isVisible(), "the list does not say revoked");

  // An invitation: the admin makes it, the invited viewer opens it in their own browser.
  await page.getByRole("link", { name: "Users" }).click();
  await page.waitForLoadState("load");
  await inspect(page, "users");
  await page.getByLabel("Email").fill("vic@example.com");
  await page.getByLabel("Role").selectOption("viewer");
  await submit(page, "Create the invitation");
  const invitation = (await page.locator("#invitation-link").textContent()).trim();
  check(invitation.includes("/invite#token="), `no invitation link: ${invitation}`);
  await inspect(page, "invitation-created");
  const other = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const guest = await watchedPage(other);
  await guest.goto(invitation);
  await guest.waitForLoadState("load");
  check(!guest.url().includes("#"), "the invitation token stayed in the address bar");
  await inspect(guest, "invitation");
  await guest.getByLabel("Name").fill("Vic Viewer");
  await guest.getByLabel("Password").fill("the viewer's own long passphrase");
  await submit(guest, "Create my account");
  check(new URL(guest.url()).pathname === "/", `after accepting: ${guest.url()}`);
  check(await guest.locator("header").getByText("Vic Viewer").isVisible(), "the viewer is not signed in");
  check(await guest.getByRole("link", { name: "Users" }).count() === 0, "a viewer's menu shows Users");
  await inspect(guest, "home-viewer");
  const forbidden = await guest.goto(`${base}/admin/users`);
  check(forbidden.status() === 403, `a viewer opened /admin/users: ${forbidden.status()}`);
  check(await guest.getByRole("heading", { name: "You cannot open this page" }).isVisible(),
    "the refusal is not a page");
  await other.close();

  // The admin's view of the new account: deactivated, activated again, a reset link made.
  await page.goto(`${base}/admin/users`);
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Vic Viewer" }).click()]);
  await inspect(page, "user");
  await submit(page, "Deactivate");
  check(await page.getByRole("status").filter({ hasText: "deactivated" }).isVisible(), "not deactivated");
  check(await page.getByRole("definition").filter({ hasText: /^deactivated$/ }).isVisible(),
    "the account does not show as deactivated");
  await submit(page, "Activate");
  await submit(page, "Make a reset link");
  check((await page.locator("#reset-link").textContent()).includes("/reset-password#token="),
    "no reset link shown");

  // The audit log: what happened above is there, filtered; the chain verifies.
  await page.getByRole("link", { name: "Audit log" }).click();
  await page.waitForLoadState("load");
  await inspect(page, "audit");
  await page.getByLabel("Action (exact, or a prefix ending in . or *)").fill("token.");
  await submit(page, "Show");
  const actions = await page.locator("tbody tr td:nth-child(3)").allTextContents();
  check(actions.includes("token.create") && actions.includes("token.revoke") &&
    actions.every((action) => action.startsWith("token.")), `filtered records: ${actions}`);
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "Verify the hash chain" }).click()]);
  check(await page.getByText("The chain is intact").isVisible(), "the chain does not verify");
  await inspect(page, "audit-verified");

  // Federation: off here, and the page says so, with the public tier's state.
  await page.getByRole("link", { name: "Federation" }).click();
  await page.waitForLoadState("load");
  check(await page.getByText("off (MESH_FEDERATION_ENABLED)").isVisible(), "federation's state is not shown");
  await inspect(page, "federation");

  // Security settings: the allowlist saved (and a bad entry refused), the vault key rotated.
  await page.getByRole("link", { name: "Security" }).click();
  await page.waitForLoadState("load");
  await inspect(page, "security");
  await page.getByLabel("The admins' entries").fill("models.internal:8080");
  await submit(page, "Save the allowlist");
  check(await page.getByRole("status").filter({ hasText: "allowlist is saved" }).isVisible(), "not saved");
  check(await page.getByLabel("The admins' entries").inputValue() === "models.internal:8080", "not kept");
  await page.getByLabel("The admins' entries").fill("http://not an entry/");
  const badEntry = await submit(page, "Save the allowlist");
  check(badEntry.status() === 400 && await page.getByRole("alert").isVisible(), "a bad entry was not refused");
  await submit(page, "Rotate the key");
  check(await page.getByRole("status").filter({ hasText: /Key 2 now seals/ }).isVisible(), "no rotation");

  // The account: this browser's session listed, the password changed.
  await page.getByRole("link", { name: "Account" }).click();
  await page.waitForLoadState("load");
  check(await page.getByRole("cell", { name: "this browser" }).isVisible(), "the session is not listed");
  await inspect(page, "account");
  await page.getByLabel("Current password").fill(PASSWORD);
  await page.getByLabel("New password").fill(`${PASSWORD} and more`);
  await submit(page, "Change the password");
  check(await page.getByRole("status").filter({ hasText: "Your password is changed" }).isVisible(),
    "no word that the password changed");
  const unknown = await page.goto(`${base}/no-such-page`);
  check(unknown.status() === 404 && await page.getByRole("heading", { name: "Nothing here" }).isVisible(),
    "an unknown page is not the 404 page");
  await inspect(page, "not-found");

  // A page that needs a session sends a browser without one to sign in, and back.
  await context.clearCookies();
  await page.goto(`${base}/account/second-factor`);
  check(new URL(page.url()).pathname === "/login", `without a session: ${page.url()}`);
  check(new URL(page.url()).searchParams.get("next") === "/account/second-factor", "no way back");

  // A wrong password is told, in words (last: a failure delays the account's next attempt).
  await page.getByLabel("Email").fill(EMAIL);
  await page.getByLabel("Password").fill("not the password at all");
  const refused = await submit(page, "Sign in");
  check(refused.status() === 401, `a wrong password answered ${refused.status()}`);
  check(await page.getByRole("alert").isVisible(), "a wrong password showed no message");
  await inspect(page, "sign-in-refused");

  console.log(`dashboard: every check passed on ${visited.length} pages: ${visited.join(", ")}`);
} catch (error) {
  await page.screenshot({ path: join(screenshots, "failure.png"), fullPage: true }).catch(() => {});
  console.error(`dashboard: ${error.message}\n  at ${page.url()}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  llm.close();
}
