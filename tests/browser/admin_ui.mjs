// admin_ui.mjs - drives sluice's /admin/ui in headless Chromium with
// puppeteer-core for tests/integration/test_admin_ui_browser.c. Steps:
//   1. load the page; a wrong token must give a clear message
//   2. the right token: right after the first refresh the charts already
//      hold the server's history (requests made before the page opened);
//      then wait for the keys table and a point from two scrapes
//   3. report the keys table as the page shows it (the C test compares it
//      with GET /admin/keys) and save a screenshot
//   4. when --reset: click "Reset failed keys", cancel once (nothing may
//      happen), then confirm, and wait until no row shows "failed"
//   5. "Reload pipeline" with confirmation: the generation shown goes up
// With --chats N, N chat requests are sent between steps 3 and 4 and the
// charts must show them (a request rate above 0, a p50/p99 latency).
// Prints one JSON object on stdout; exits 1 with a message on failure.
// Any console error or page error during steps 2-5 is a failure (step 1's
// 401 is expected and is the only console error allowed there).
//   node admin_ui.mjs --url URL --token T --shot FILE [--chromium PATH]
//                     [--reset] [--chats N] [--max-seconds 120]
import puppeteer from "puppeteer-core";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) =>
    a.startsWith("--") ? [...acc, [a.slice(2),
      all[i + 1] && !all[i + 1].startsWith("--") ? all[i + 1] : true]] : acc, []));
const maxMs = 1000 * Number(args["max-seconds"] ?? 120);
setTimeout(() => { console.error("admin_ui.mjs: timed out"); process.exit(2); },
           maxMs).unref();

const out = { console_errors: [], steps: [] };
let phase = "load";
const fail = (msg) => { throw new Error(msg); };

const browser = await puppeteer.launch({
  executablePath: args.chromium || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 1400 });
  page.on("console", (m) => {
    if (m.type() === "error") out.console_errors.push({ phase, text: m.text() });
  });
  page.on("pageerror", (e) => out.console_errors.push({ phase, text: String(e) }));
  page.on("dialog", (d) => { out.console_errors.push({ phase, text: "native dialog: " + d.message() }); d.dismiss(); });

  const resp = await page.goto(args.url, { waitUntil: "networkidle0" });
  out.csp = resp.headers()["content-security-policy"] || null;
  out.status = resp.status();
  if (!(await page.$("#login:not([hidden])"))) fail("no token form on load");

  // 1. wrong token
  phase = "wrong-token";
  await page.type("#token", "not-the-admin-token-0000");
  await page.click("#login-submit");
  await page.waitForFunction(() =>
    document.getElementById("login-error").textContent.includes("refused"),
    { timeout: 10000 });
  out.wrong_token_message = await page.$eval("#login-error", (e) => e.textContent);
  out.token_kept_after_wrong = await page.evaluate(() =>
    sessionStorage.getItem("sluice.adminToken"));
  out.steps.push("wrong-token");

  // 2. right token
  phase = "dashboard";
  await page.type("#token", args.token);
  await page.click("#login-submit");
  await page.waitForSelector("#keys tbody tr", { timeout: 10000 });
  // the first refresh is done: no two scrapes yet, so every point is the
  // server's (GET /admin/ui/history)
  await page.waitForFunction(() =>
    document.getElementById("updated").textContent.startsWith("updated"),
    { timeout: 10000 });
  out.first_refresh = await page.evaluate(() => {
    const h = JSON.parse(sessionStorage.getItem("sluice.history") || "[]");
    return { points: h.length, busy_points: h.filter((p) => p.rate > 0).length,
             requests_per_s: h.reduce((a, p) => a + p.rate, 0),
             circles: document.querySelectorAll("#chart-rate circle").length };
  });
  // two scrapes make the first chart point
  await page.waitForSelector("#chart-rate polyline", { timeout: 15000 });
  out.url_after_login = page.url();
  out.token_in_storage = await page.evaluate(() =>
    sessionStorage.getItem("sluice.adminToken") !== null);
  out.stages = await page.$$eval("#pipeline tbody tr", (rs) =>
    rs.map((r) => r.dataset.stage));
  out.usage_text = await page.$eval("#usage", (e) => e.textContent);
  out.usage = await page.$$eval("#usage tbody tr", (rs) => rs.map((r) => {
    const td = [...r.querySelectorAll("td")].map((c) => c.textContent.trim());
    const m = r.querySelector("meter");
    return { client: r.dataset.client, requests_today: Number(td[1].replace(/,/g, "")),
             tokens_today: Number(td[2].replace(/,/g, "")),
             day_budget: td[5], meter: m ? Number(m.value) : null };
  }));
  const readKeys = () => page.$$eval("#keys tbody tr", (rs) => rs.map((r) => {
    const td = [...r.querySelectorAll("td")].map((c) => c.textContent.trim());
    return { name: td[0], state: td[1], cooldown: td[2], last_error: td[3],
             requests: Number(td[4].replace(/,/g, "")),
             failures: Number(td[5].replace(/,/g, "")) };
  }));
  out.keys = await readKeys();
  out.health = await page.$eval("#health", (e) => e.textContent);
  out.steps.push("dashboard");

  // live traffic: the charts' latest point comes from the /metrics deltas
  if (args.chats) {
    phase = "traffic";
    const origin = new URL(args.url).origin;
    for (let i = 0; i < Number(args.chats); i++) {
      const r = await fetch(origin + "/v1/chat/completions", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini",
                               messages: [{ role: "user", content: "hi" }] }) });
      await r.text();
    }
    await page.waitForFunction(() =>
      Number(document.getElementById("now-rate").textContent) > 0 &&
      /^[0-9]/.test(document.getElementById("now-latency").textContent),
      { timeout: 15000 });
    out.now_rate = Number(await page.$eval("#now-rate", (e) => e.textContent));
    out.now_latency = await page.$eval("#now-latency", (e) => e.textContent);
    out.rate_points = await page.$eval("#chart-rate polyline",
      (e) => e.getAttribute("points").split(" ").length);
    out.steps.push("traffic");
  }
  await page.screenshot({ path: args.shot, fullPage: true });

  // 4. reset failed keys, with a cancelled confirmation first
  if (args.reset) {
    phase = "reset";
    await page.click('button[data-action="reset-failed-keys"]');
    await page.waitForSelector("#confirm[open]");
    out.confirm_text = await page.$eval("#confirm-text", (e) => e.textContent);
    await page.click("#confirm-cancel");
    await page.waitForSelector("#confirm:not([open])");
    out.after_cancel = await page.$eval("#action-result", (e) => e.textContent);
    await page.click('button[data-action="reset-failed-keys"]');
    await page.waitForSelector("#confirm[open]");
    await page.click("#confirm-ok");
    await page.waitForFunction(() =>
      document.getElementById("action-result").textContent.includes("HTTP"),
      { timeout: 10000 });
    out.reset_result = await page.$eval("#action-result", (e) => e.textContent);
    await page.waitForFunction(() =>
      !document.querySelector('#keys tr[data-state="failed"]'), { timeout: 10000 });
    out.keys_after_reset = await readKeys();
    out.steps.push("reset");
  }

  // 5. reload the pipeline
  phase = "reload";
  const gen0 = Number(await page.$eval("#generation", (e) => e.textContent));
  await page.click('button[data-action="reload"]');
  await page.waitForSelector("#confirm[open]");
  await page.click("#confirm-ok");
  await page.waitForFunction((g) =>
    Number(document.getElementById("generation")?.textContent) > g,
    { timeout: 15000 }, gen0);
  out.reload_result = await page.$eval("#action-result", (e) => e.textContent);
  out.generation_before = gen0;
  out.generation_after = Number(await page.$eval("#generation", (e) => e.textContent));
  out.steps.push("reload");
  await page.screenshot({ path: args.shot, fullPage: true });
} catch (e) {
  out.error = String(e && e.message || e);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(out.error ? 1 : 0);
