// harness.mjs - what the client tests share: start mock_upstream and sluice
// (own process groups, killed at the end whatever happens), talk to the
// mock's control API, run a list of tests. Like tests/integration/harness.c.
//
// Environment (set by CTest): SLUICE_BIN, MOCK_BIN, PLUGINS_DIR.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const MODEL = 'qwen/qwen3-next-80b-a3b-instruct';
export const FIRST_KEY = 'sk-test-key-1';

export const children = [];
let tmpdir = null;

// The temp dir of this test run (made on first use, removed at exit).
export function tmp() {
  if (!tmpdir) tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-client-'));
  return tmpdir;
}

export function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`client tests: environment variable ${name} is not set (run through ctest)`);
    process.exit(1);
  }
  return v;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// The seed's overrides would silently change the config under test.
function childEnv() {
  const env = { ...process.env };
  for (const k of ['HOST', 'PORT', 'MEGALLM_BASE_URL', 'MEGALLM_TIMEOUT',
                   'MEGALLM_MAX_RETRIES', 'MAX_KEY_RETRIES', 'LOG_LEVEL']) {
    delete env[k];
  }
  return env;
}

export function start(label, bin, args, logPath) {
  const fd = fs.openSync(logPath, 'a');
  const child = spawn(bin, args, {
    detached: true, // own process group: we kill the group
    stdio: ['ignore', fd, fd],
    env: childEnv(),
  });
  fs.closeSync(fd);
  const rec = { label, child, logPath, exited: null };
  child.on('exit', (code, signal) => { rec.exited = { code, signal }; });
  children.push(rec);
  return rec;
}

export function tail(rec, lines = 40) {
  let text = '';
  try { text = fs.readFileSync(rec.logPath, 'utf8'); } catch { return; }
  const last = text.split('\n').slice(-lines - 1).join('\n');
  console.error(`---- last ${lines} lines of ${rec.label} log (${rec.logPath}) ----\n${last}\n---- end ----`);
}

export function killGroup(rec, signal) {
  try { process.kill(-rec.child.pid, signal); } catch { /* gone */ }
}

export async function stopAll() {
  for (const rec of children) if (!rec.exited) killGroup(rec, 'SIGTERM');
  const until = Date.now() + 5000;
  while (Date.now() < until && children.some((r) => !r.exited)) await sleep(25);
  for (const rec of children) {
    if (!rec.exited) {
      console.error(`client tests: ${rec.label} ignored SIGTERM for 5 s; killing`);
      killGroup(rec, 'SIGKILL');
    }
  }
}

// Last resort when the process leaves without stopAll (uncaught error, exit).
process.on('exit', () => {
  for (const rec of children) if (!rec.exited) killGroup(rec, 'SIGKILL');
  if (tmpdir && !process.env.SLUICE_TEST_KEEP) {
    try { fs.rmSync(tmpdir, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => { process.exitCode = 1; process.exit(); });
}

export async function getJson(url, timeoutMs = 2000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  return { status: res.status, body, json: (() => { try { return JSON.parse(body); } catch { return null; } })() };
}

export async function waitReady(rec, url, what) {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (rec.exited) {
      tail(rec);
      throw new Error(`${what} exited during start-up (${JSON.stringify(rec.exited)})`);
    }
    try {
      const r = await getJson(url, 1000);
      if (r.status === 200) return;
    } catch { /* not yet */ }
    await sleep(25);
  }
  tail(rec);
  throw new Error(`${what} not ready within 10 s (${url})`);
}

export async function startMock() {
  const bin = need('MOCK_BIN');
  const portFile = path.join(tmp(), 'mock.port');
  const rec = start('mock_upstream', bin,
    ['--host', '127.0.0.1', '--port', '0', '--port-file', portFile, '--quiet'],
    path.join(tmp(), 'mock.log'));
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    if (rec.exited) { tail(rec); throw new Error('mock_upstream exited during start-up'); }
    let port = 0;
    try { port = parseInt(fs.readFileSync(portFile, 'utf8'), 10) || 0; } catch { /* not yet */ }
    if (port > 0) {
      try {
        const r = await getJson(`http://127.0.0.1:${port}/_mock/health`, 1000);
        if (r.status === 200) return { rec, port };
      } catch { /* not yet */ }
    }
    await sleep(25);
  }
  tail(rec);
  throw new Error('mock_upstream not ready within 10 s');
}

// pipeline: the items of `pipeline:` after the keyring (default: sse).
export async function startSluice(mockPort, { pipeline = ['  - plugin: sse'], name = 'sluice' } = {}) {
  const bin = need('SLUICE_BIN');
  const pluginsDir = need('PLUGINS_DIR');
  const keys = path.join(tmp(), 'keys.txt');
  fs.writeFileSync(keys, `${FIRST_KEY}\nsk-test-key-2\n`, { mode: 0o600 });
  fs.chmodSync(keys, 0o600);
  const port = await freePort();
  const yaml = [
    'server:',
    '  host: "127.0.0.1"',
    `  port: ${port}`,
    '  threads: 2',
    'upstream:',
    `  base_url: "http://127.0.0.1:${mockPort}/v1"`,
    '  timeout_s: 30',
    `plugins_dir: ${JSON.stringify(pluginsDir)}`,
    'state:', // each sluice its own state file: key health must not leak
    `  path: ${JSON.stringify(path.join(tmp(), `${name}.state.db`))}`,
    'models:',
    `  - { id: "${MODEL}", context_length: 262144 }`,
    '  - { id: "gpt-4o-mini", context_length: 128000 }',
    'pipeline:',
    '  - plugin: keyring',
    `    config: { keys_file: ${JSON.stringify(keys)} }`,
    ...pipeline,
    '',
  ].join('\n');
  const cfg = path.join(tmp(), `${name}.yaml`);
  fs.writeFileSync(cfg, yaml);
  const rec = start(name, bin, ['-c', cfg], path.join(tmp(), `${name}.log`));
  await waitReady(rec, `http://127.0.0.1:${port}/health`, name);
  return { rec, port };
}

// ---- checks ------------------------------------------------------------

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export async function mockPost(mockPort, p, body) {
  const res = await fetch(`http://127.0.0.1:${mockPort}${p}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  assert(res.ok, `POST ${p} on the mock: ${res.status} ${await res.text()}`);
}

export async function mockRequests(mockPort) {
  const r = await getJson(`http://127.0.0.1:${mockPort}/_mock/requests`, 5000);
  assert(r.status === 200 && r.json, `GET /_mock/requests: ${r.status}`);
  return Array.isArray(r.json) ? r.json : r.json.requests;
}

export function header(rec, name) {
  const h = rec.headers || {};
  for (const [k, v] of Object.entries(h)) {
    if (k.toLowerCase() === name.toLowerCase()) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}


// Run the tests in order, print ok/FAIL lines, stop the children; true when
// all passed. `label` names the suite in the summary line.
export async function runTests(label, tests) {
  let passed = 0;
  let failed = 0;
  for (const t of tests) {
    const t0 = Date.now();
    try {
      await t.fn();
      passed++;
      console.log(`ok   - ${t.name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL - ${t.name}: ${e?.stack || e}`);
    }
  }
  if (failed) {
    for (const rec of children) tail(rec, 30);
  }
  await stopAll();
  console.log(`${label}: ${passed} passed, ${failed} failed`);
  return failed === 0;
}

// Run main() under an overall time limit; sets the exit code.
export function runMain(label, main, timeoutMs = 120_000) {
  const guard = setTimeout(() => {
    console.error(`${label}: timed out after ${timeoutMs / 1000} s`);
    for (const rec of children) tail(rec, 30);
    process.exitCode = 1;
    process.exit();
  }, timeoutMs);
  guard.unref();
  main()
    .then((ok) => { process.exitCode = ok ? 0 : 1; })
    .catch(async (e) => {
      console.error(`${label}: ${e?.stack || e}`);
      await stopAll();
      console.log(`${label}: 0 passed, 1 failed`);
      process.exitCode = 1;
    });
}
