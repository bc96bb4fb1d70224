// app.js - the dashboard's script: asks for the admin token, then every
// REFRESH_MS reads /admin/keys, /admin/pipeline, /health, /metrics (and the
// usage stage's /admin/usage/clients when the pipeline has one) and renders
// tables and small SVG charts. No library, no inline code (strict CSP).
// The traffic charts start from the server's last 15 minutes
// (GET /admin/ui/history, 10-second slots), then go on with points computed
// here from consecutive /metrics scrapes; they are kept in sessionStorage.
"use strict";

const REFRESH_MS = 2000;
const WINDOW_MS = 15 * 60 * 1000;
const TOKEN_KEY = "sluice.adminToken";
const HISTORY_KEY = "sluice.history";
// routes that are not client API traffic
const NON_API = new Set(["admin", "health", "metrics", "openapi", "docs",
                         "redoc", "not_found", "bad_method"]);
const ERROR_OUTCOMES = new Set(["error", "upstream_error", "stream_interrupted"]);

const $ = (id) => document.getElementById(id);
let timer = null;
let lastScrape = null; // {t, total, errors, buckets: Map(le -> count)}
let history = loadHistory();
let serverHistory = false; // fetched once per login

// ---- token ---------------------------------------------------------------

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class AuthError extends Error {}

async function api(path, opts = {}) {
  const headers = { Authorization: "Bearer " + token() };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method: opts.method || "GET", headers,
                                body: opts.body, cache: "no-store",
                                credentials: "omit" });
  if (r.status === 401) throw new AuthError("refused");
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json, text };
}

function showLogin(message) {
  stop();
  $("dash").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

async function login(ev) {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  $("login-error").textContent = "Checking…";
  try {
    const r = await api("/admin/pipeline");
    if (r.status !== 200) throw new Error("HTTP " + r.status);
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e instanceof AuthError
      ? "The admin token was refused (HTTP 401). Check the token in admin.token_file."
      : "Cannot reach the admin API: " + e.message);
    return;
  }
  start();
}

function start() {
  serverHistory = false;
  $("login").hidden = true;
  $("dash").hidden = false;
  $("logout").hidden = false;
  refresh();
}

function stop() {
  if (timer) clearTimeout(timer);
  timer = null;
}

// ---- DOM helpers ---------------------------------------------------------

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : String(k ?? ""));
  return e;
}

function table(cols, rows, rowAttrs) {
  const head = el("tr", null, ...cols.map((c) =>
    el("th", { class: c.num ? "num" : undefined }, c.title)));
  const body = rows.map((r, i) => el("tr", rowAttrs ? rowAttrs(r, i) : null,
    ...cols.map((c) => {
      const v = c.get(r);
      return v instanceof Node && v.tagName === "TD" ? v
        : el("td", { class: c.num ? "num" : undefined }, v);
    })));
  return el("table", null, el("thead", null, head), el("tbody", null, ...body));
}

const fmtInt = (n) => (n === null || n === undefined) ? "–"
  : Number(n).toLocaleString("en-US");

function fmtNum(n, digits) {
  if (n === null || n === undefined || !isFinite(n)) return "–";
  return n.toFixed(digits);
}

// ---- keys ----------------------------------------------------------------

function keyGroups(doc) {
  // one upstream today ({keys:[...]}); a list of upstreams when the config
  // has several ({upstreams:[{name, keys:[...]}]})
  if (doc && Array.isArray(doc.upstreams)) return doc.upstreams;
  return [{ name: null, keys: (doc && doc.keys) || [] }];
}

function cooldownText(k) {
  if (k.state !== "cooling") return "";
  if (typeof k.cooldown_s === "number" && k.cooldown_s > 0)
    return k.cooldown_s.toFixed(1) + " s";
  return k.cooldown_until || "";
}

function renderKeys(doc) {
  const cols = [
    { title: "key", get: (k) => k.name },
    { title: "state", get: (k) => el("td", { class: "state" },
      el("span", { class: "state-" + k.state }, k.state)) },
    { title: "cooldown", get: cooldownText },
    { title: "last error", get: (k) => k.last_error || "" },
    { title: "requests", num: true, get: (k) => fmtInt(k.requests) },
    { title: "failures", num: true,
      get: (k) => fmtInt(k.failures && typeof k.failures === "object"
        ? k.failures.total : k.failures) },
    { title: "in flight", num: true, get: (k) => fmtInt(k.inflight) },
  ];
  const out = [];
  for (const g of keyGroups(doc)) {
    if (g.name) out.push(el("h3", null, g.name));
    out.push(table(cols, g.keys || [], (k) => ({ "data-key": k.name,
                                                 "data-state": k.state })));
  }
  $("keys").replaceChildren(...out);
}

// ---- pipeline --------------------------------------------------------------

function renderPipeline(doc) {
  const live = (doc.live || []).map((g) => "#" + g.id + (g.current ? " (current)" : "")
    + ": " + g.requests + " in flight").join(", ");
  const summary = el("p", null, "Generation ", el("b", { id: "generation" }, doc.generation),
    " loaded ", doc.loaded_at || "", " from ", el("code", null, doc.file || ""),
    " · reloads ", fmtInt(doc.reloads), ", failed ", fmtInt(doc.reload_failures),
    live ? " · live: " + live : "");
  const cols = [
    { title: "#", num: true, get: (s) => s.i },
    { title: "stage", get: (s) => s.name },
    { title: "plugin", get: (s) => s.plugin },
    { title: "version", get: (s) => s.version },
    { title: "ABI", get: (s) => s.abi },
    { title: "file hash", get: (s) => s.hash || "" },
  ];
  const stages = (doc.stages || []).map((s, i) => Object.assign({ i: i + 1 }, s));
  $("pipeline").replaceChildren(summary, table(cols, stages,
    (s) => ({ "data-stage": s.name })));
}

// ---- usage ----------------------------------------------------------------

function budgetCell(used, limit, unit) {
  if (limit === null || limit === undefined) return el("td", null, "");
  const ratio = limit > 0 ? used / limit : 1;
  return el("td", null,
    el("meter", { min: 0, max: 1, low: 0.8, high: 0.95, optimum: 0,
                  value: Math.min(ratio, 1), title: (ratio * 100).toFixed(1) + " %" }),
    " ", unit === "cost" ? fmtNum(used, 2) + " / " + fmtNum(limit, 2)
                         : fmtInt(used) + " / " + fmtInt(limit));
}

function renderUsage(doc) {
  if (!doc) {
    $("usage").replaceChildren(el("p", { class: "muted" },
      "No usage stage in the pipeline: per-client usage and budgets appear " +
      "here when the pipeline has the usage stage."));
    return;
  }
  const cur = doc.currency ? " (" + doc.currency + ")" : "";
  const cols = [
    { title: "client", get: (c) => c.client },
    { title: "requests today", num: true, get: (c) => fmtInt(c.today.requests) },
    { title: "tokens today", num: true, get: (c) => fmtInt(c.today.tokens) },
    { title: "tokens this month", num: true, get: (c) => fmtInt(c.month.tokens) },
    { title: "cost this month" + cur, num: true,
      get: (c) => c.month.cost === null ? "–" : fmtNum(c.month.cost, 4) },
    { title: "day budget", get: (c) => budgetCell(c.today.tokens, c.budgets.tokens_day) },
    { title: "month budget", get: (c) => budgetCell(c.month.tokens, c.budgets.tokens_month) },
    { title: "cost budget", get: (c) => budgetCell(c.month.cost || 0, c.budgets.cost_month, "cost") },
  ];
  const clients = doc.clients || [];
  $("usage").replaceChildren(el("p", { class: "muted" }, "Day ", doc.day, " · month ",
    doc.month, " (UTC)"), clients.length ? table(cols, clients,
      (c) => ({ "data-client": c.client }))
    : el("p", { class: "muted" }, "No usage recorded yet."));
}

// ---- metrics: parse, derive, chart -----------------------------------------

function parseLabels(s) {
  const out = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m;
  while ((m = re.exec(s))) out[m[1]] = m[2];
  return out;
}

// The totals the charts need from one exposition text.
function scrapeOf(text) {
  const s = { t: Date.now(), total: 0, errors: 0, buckets: new Map() };
  for (const line of text.split("\n")) {
    if (!line.startsWith("sluice_request")) continue;
    const m = /^([a-z_]+)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = parseLabels(m[2] || "");
    const v = Number(m[3]);
    if (NON_API.has(labels.route)) continue;
    if (m[1] === "sluice_requests_total") {
      s.total += v;
      if (ERROR_OUTCOMES.has(labels.outcome)) s.errors += v;
    } else if (m[1] === "sluice_request_duration_seconds_bucket") {
      const le = labels.le === "+Inf" ? Infinity : Number(labels.le);
      s.buckets.set(le, (s.buckets.get(le) || 0) + v);
    }
  }
  return s;
}

// histogram_quantile over the bucket deltas between two scrapes (ms)
function quantile(q, cur, prev) {
  const les = [...cur.buckets.keys()].sort((a, b) => a - b);
  const cum = les.map((le) => cur.buckets.get(le) - ((prev && prev.buckets.get(le)) || 0));
  const n = cum.length ? cum[cum.length - 1] : 0;
  if (n <= 0) return null;
  const rank = q * n;
  for (let i = 0; i < les.length; i++) {
    if (cum[i] >= rank) {
      const lo = i ? les[i - 1] : 0, below = i ? cum[i - 1] : 0;
      if (les[i] === Infinity) return lo * 1000;
      const inb = cum[i] - below;
      return (lo + (les[i] - lo) * (inb > 0 ? (rank - below) / inb : 1)) * 1000;
    }
  }
  return null;
}

function loadHistory() {
  try {
    const h = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
    return Array.isArray(h) ? h : [];
  } catch { return []; }
}

// The server's points replace what this tab holds for the same time: a
// page opened just now shows the last 15 minutes at once.
async function loadServerHistory() {
  const r = await api("/admin/ui/history");
  if (r.status !== 200 || !r.json || !Array.isArray(r.json.points)) return;
  const now = Date.now();
  const pts = r.json.points.filter((p) => p.t > now - WINDOW_MS)
    .map((p) => ({ t: p.t, rate: p.rate, p50: p.p50, p99: p.p99, err: p.err }));
  const newest = pts.length ? pts[pts.length - 1].t : 0;
  history = pts.concat(history.filter((p) => p.t > newest));
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
}

function addPoint(cur) {
  if (lastScrape && cur.total >= lastScrape.total) {
    const dt = (cur.t - lastScrape.t) / 1000;
    const dn = cur.total - lastScrape.total;
    history.push({ t: cur.t, rate: dt > 0 ? dn / dt : 0,
                   p50: quantile(0.5, cur, lastScrape),
                   p99: quantile(0.99, cur, lastScrape),
                   err: dn > 0 ? 100 * (cur.errors - lastScrape.errors) / dn : 0 });
  }
  lastScrape = cur; // a restart (counters went down) starts a new baseline
  history = history.filter((p) => p.t > cur.t - WINDOW_MS);
  sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history));
}

const SVG = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// Draw series (arrays of [t, v|null]) on a 300x100 box, x = the last 15 min.
function chart(svg, series, unit) {
  const now = Date.now(), t0 = now - WINDOW_MS;
  let max = 0;
  for (const s of series) for (const [, v] of s) if (v !== null && v > max) max = v;
  max = max > 0 ? max * 1.15 : 1;
  const kids = [svgEl("line", { x1: 0, y1: 50, x2: 300, y2: 50 }),
                svgEl("text", { x: 2, y: 9 }), svgEl("text", { x: 2, y: 97 })];
  kids[1].textContent = fmtNum(max, max < 10 ? 2 : 0) + " " + unit;
  kids[2].textContent = "-15 min";
  series.forEach((s, i) => {
    const pts = s.filter(([, v]) => v !== null).map(([t, v]) =>
      ((t - t0) / WINDOW_MS * 300).toFixed(1) + "," + (100 - v / max * 100).toFixed(1));
    if (pts.length) kids.push(svgEl("polyline", { class: "s" + i, points: pts.join(" ") }));
    // a dot per point: a lone point (traffic in one interval only) shows too
    for (const p of pts) {
      const [x, y] = p.split(",");
      kids.push(svgEl("circle", { class: "s" + i, cx: x, cy: y, r: 1.2 }));
    }
  });
  svg.replaceChildren(...kids);
}

function renderCharts() {
  chart($("chart-rate"), [history.map((p) => [p.t, p.rate])], "req/s");
  chart($("chart-latency"), [history.map((p) => [p.t, p.p50]),
                             history.map((p) => [p.t, p.p99])], "ms");
  chart($("chart-errors"), [history.map((p) => [p.t, p.err])], "%");
  const last = history[history.length - 1];
  $("now-rate").textContent = last ? fmtNum(last.rate, 1) : "";
  $("now-latency").textContent = last ? fmtNum(last.p50, 1) + " / " + fmtNum(last.p99, 1) : "";
  $("now-errors").textContent = last ? fmtNum(last.err, 1) + " %" : "";
}

// ---- refresh loop ------------------------------------------------------------

async function refresh() {
  stop();
  try {
    const [keys, pipe, health, metrics] = await Promise.all([
      api("/admin/keys"), api("/admin/pipeline"),
      fetch("/health", { cache: "no-store" }).then((r) => r.json()),
      fetch("/metrics", { cache: "no-store" }).then((r) => r.text())]);
    if (keys.status === 200) renderKeys(keys.json);
    else $("keys").replaceChildren(el("p", { class: "muted" },
      "No keyring stage in the pipeline (GET /admin/keys: " + keys.status + ")."));
    if (pipe.status === 200) renderPipeline(pipe.json);
    const hasUsage = pipe.json && (pipe.json.stages || []).some((s) => s.plugin === "usage");
    const usage = hasUsage ? await api("/admin/usage/clients") : null;
    renderUsage(usage && usage.status === 200 ? usage.json : null);
    $("health").textContent = health.status;
    $("health").className = "pill " + health.status;
    if (!serverHistory) {
      await loadServerHistory();
      serverHistory = true;
    }
    addPoint(scrapeOf(metrics));
    renderCharts();
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("The admin token was refused (HTTP 401). Enter it again.");
      return;
    }
    $("updated").textContent = "refresh failed: " + e.message;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

// ---- actions -----------------------------------------------------------------

const ACTIONS = {
  "reset-failed-keys": { path: "/admin/reset-failed-keys",
    text: "Reset every failed or cooling key, so that requests use them again?" },
  "reload-keys": { path: "/admin/reload-keys",
    text: "Reload the keys file? Keys that stay keep their health." },
  "reload": { path: "/admin/reload",
    text: "Reload the pipeline file as a new generation? Requests in flight finish on the old one." },
};

// A line for people: the counts an action answers, or its error message.
function actionSummary(r) {
  const j = r.json || {};
  if (j.error && j.error.message) return j.error.message;
  if (typeof j.reset === "number") return j.reset + " key(s) reset";
  if (typeof j.generation === "number")
    return "generation " + j.generation + " is live (was " + j.previous + ")";
  return r.text.slice(0, 300);
}

function confirmDialog(text) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-text").textContent = text;
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

async function runAction(name) {
  const a = ACTIONS[name];
  if (!(await confirmDialog(a.text))) return;
  const out = $("action-result");
  out.className = "";
  out.textContent = name + ": running…";
  try {
    const r = await api(a.path, { method: "POST" });
    out.className = r.status < 300 ? "ok" : "bad";
    out.textContent = name + ": HTTP " + r.status + " " + actionSummary(r);
  } catch (e) {
    if (e instanceof AuthError) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin("The admin token was refused (HTTP 401). Enter it again.");
      return;
    }
    out.className = "bad";
    out.textContent = name + ": " + e.message;
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("");
  });
  for (const b of document.querySelectorAll("[data-action]"))
    b.addEventListener("click", () => runAction(b.dataset.action));
  if (token()) start();
  else showLogin("");
});
