// openai_client.test.mjs - the official `openai` npm client (pinned 6.x in
// package-lock.json) against a real sluice in front of the mock upstream.
//
// Starts both itself, like tests/integration/harness.c: mock_upstream on a
// port it picks (--port 0 --port-file), a temporary YAML, sluice on a free
// loopback port; waits for /health; kills both (their whole process groups)
// at the end, whatever happened. Exits non-zero when a check fails.
//
// Environment (set by CTest): SLUICE_BIN, MOCK_BIN, PLUGINS_DIR.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';

const MODEL = 'qwen/qwen3-next-80b-a3b-instruct';
const FIRST_KEY = 'sk-test-key-1';
const OVERALL_TIMEOUT_MS = 120_000;

const children = [];
let tmpdir = null;

function need(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`openai_client: environment variable ${name} is not set (run through ctest)`);
    process.exit(1);
  }
  return v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
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

function start(label, bin, args, logPath) {
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

function tail(rec, lines = 40) {
  let text = '';
  try { text = fs.readFileSync(rec.logPath, 'utf8'); } catch { return; }
  const last = text.split('\n').slice(-lines - 1).join('\n');
  console.error(`---- last ${lines} lines of ${rec.label} log (${rec.logPath}) ----\n${last}\n---- end ----`);
}

function killGroup(rec, signal) {
  try { process.kill(-rec.child.pid, signal); } catch { /* gone */ }
}

async function stopAll() {
  for (const rec of children) if (!rec.exited) killGroup(rec, 'SIGTERM');
  const until = Date.now() + 5000;
  while (Date.now() < until && children.some((r) => !r.exited)) await sleep(25);
  for (const rec of children) {
    if (!rec.exited) {
      console.error(`openai_client: ${rec.label} ignored SIGTERM for 5 s; killing`);
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

async function getJson(url, timeoutMs = 2000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await res.text();
  return { status: res.status, body, json: (() => { try { return JSON.parse(body); } catch { return null; } })() };
}

async function waitReady(rec, url, what) {
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

async function startMock() {
  const bin = need('MOCK_BIN');
  const portFile = path.join(tmpdir, 'mock.port');
  const rec = start('mock_upstream', bin,
    ['--host', '127.0.0.1', '--port', '0', '--port-file', portFile, '--quiet'],
    path.join(tmpdir, 'mock.log'));
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

async function startSluice(mockPort) {
  const bin = need('SLUICE_BIN');
  const pluginsDir = need('PLUGINS_DIR');
  const keys = path.join(tmpdir, 'keys.txt');
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
    'models:',
    `  - { id: "${MODEL}", context_length: 262144 }`,
    '  - { id: "gpt-4o-mini", context_length: 128000 }',
    'pipeline:',
    '  - plugin: keyring',
    `    config: { keys_file: ${JSON.stringify(keys)} }`,
    '  - plugin: sse',
    '',
  ].join('\n');
  const cfg = path.join(tmpdir, 'sluice.yaml');
  fs.writeFileSync(cfg, yaml);
  const rec = start('sluice', bin, ['-c', cfg], path.join(tmpdir, 'sluice.log'));
  await waitReady(rec, `http://127.0.0.1:${port}/health`, 'sluice');
  return { rec, port };
}

// ---- checks ------------------------------------------------------------

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function mockPost(mockPort, p, body) {
  const res = await fetch(`http://127.0.0.1:${mockPort}${p}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  assert(res.ok, `POST ${p} on the mock: ${res.status} ${await res.text()}`);
}

async function mockRequests(mockPort) {
  const r = await getJson(`http://127.0.0.1:${mockPort}/_mock/requests`, 5000);
  assert(r.status === 200 && r.json, `GET /_mock/requests: ${r.status}`);
  return Array.isArray(r.json) ? r.json : r.json.requests;
}

function header(rec, name) {
  const h = rec.headers || {};
  for (const [k, v] of Object.entries(h)) {
    if (k.toLowerCase() === name.toLowerCase()) return Array.isArray(v) ? v[0] : v;
  }
  return undefined;
}

async function main() {
  tmpdir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-client-'));
  const mock = await startMock();
  const sluice = await startSluice(mock.port);
  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${sluice.port}/v1`,
    apiKey: 'sk-test',
    maxRetries: 0,
    timeout: 20_000,
  });

  const tests = [];
  const test = (name, fn) => tests.push({ name, fn });

  test('chat.completions.create (plain)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const userText = 'hello from openai-node';
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: userText }],
    });
    const content = completion.choices?.[0]?.message?.content;
    assert(content === `Hello from mock upstream. You said: ${userText}`,
      `unexpected content: ${JSON.stringify(content)}`);
    assert(completion.object === 'chat.completion', `object: ${completion.object}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 1, `the mock saw ${reqs.length} requests, expected 1`);
    assert(reqs[0].path === '/v1/chat/completions', `mock path ${reqs[0].path}`);
    const auth = header(reqs[0], 'authorization');
    assert(auth === `Bearer ${FIRST_KEY}`,
      `the mock saw authorization ${JSON.stringify(auth)}, expected the keyring's key`);
    const sent = JSON.parse(reqs[0].body);
    assert(sent.model === MODEL && sent.messages?.[0]?.content === userText,
      `the mock saw body ${reqs[0].body}`);
  });

  test('chat.completions.create (stream: true)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', { rules: [{ stream: { chunks: 7, delay_ms: 50 } }] });
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'stream to me' }],
      stream: true,
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    for await (const chunk of stream) {
      chunks++;
      assert(chunk.object === 'chat.completion.chunk', `chunk object: ${chunk.object}`);
      text += chunk.choices?.[0]?.delta?.content ?? '';
      finish = chunk.choices?.[0]?.finish_reason ?? finish;
    }
    const want = Array.from({ length: 7 }, (_, i) => `tok${i} `).join('');
    assert(text === want, `streamed text ${JSON.stringify(text)}, expected ${JSON.stringify(want)}`);
    assert(chunks === 7, `${chunks} chunks, expected 7`);
    assert(finish === 'stop', `finish_reason ${finish}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 1 && reqs[0].outcome === 'complete',
      `the mock's record: ${JSON.stringify(reqs.map((r) => r.outcome))}`);
  });

  test('stream with stream_options.include_usage', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'usage please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let chunks = 0;
    let usage = null;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices?.[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    assert(text === 'tok0 tok1 tok2 tok3 tok4 ', `streamed text ${JSON.stringify(text)}`);
    assert(chunks === 6, `${chunks} chunks, expected 5 + 1 usage chunk`);
    assert(usage && usage.total_tokens > 0, `usage: ${JSON.stringify(usage)}`);
  });

  test('stream cut mid-way raises an error, never half an answer', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', {
      rules: [{ stream: { chunks: 10, delay_ms: 20, cut_after: 3 } }],
    });
    const stream = await client.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'this will break' }],
      stream: true,
    });
    let text = '';
    let caught = null;
    try {
      for await (const chunk of stream) text += chunk.choices?.[0]?.delta?.content ?? '';
    } catch (e) {
      caught = e;
    }
    assert(caught, `the SDK raised nothing on a cut stream; text ${JSON.stringify(text)}`);
    assert(caught instanceof OpenAI.APIError,
      `expected an APIError, got ${caught?.constructor?.name}: ${caught?.message}`);
    assert(/broke before it finished/.test(String(caught.message)),
      `error message ${JSON.stringify(caught.message)}`);
    assert(text === 'tok0 tok1 tok2 ', `text before the error ${JSON.stringify(text)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 1 && reqs[0].outcome === 'cut',
      `the mock's record: ${JSON.stringify(reqs.map((r) => r.outcome))}`);
  });

  test('upstream 429 surfaces as RateLimitError', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', {
      rules: [{
        status: 429,
        json: { error: { message: 'slow down please', type: 'rate_limit_error', param: null, code: 'rate_limit_exceeded' } },
      }],
    });
    let caught = null;
    try {
      await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] });
    } catch (e) {
      caught = e;
    }
    assert(caught, 'expected an error for an upstream 429');
    assert(caught instanceof OpenAI.RateLimitError,
      `expected RateLimitError, got ${caught?.constructor?.name}: ${caught?.message}`);
    assert(caught.status === 429, `status ${caught.status}`);
    assert(String(caught.message).includes('slow down please'), `message ${caught.message}`);
    assert(caught.code === 'rate_limit_exceeded', `code ${caught.code}`);
  });

  // ---- the endpoints beside chat (issue 15) ----------------------------

  test('responses.create (plain)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const r = await client.responses.create({ model: MODEL, input: 'hi there', instructions: 'be brief' });
    assert(r.object === 'response' && r.status === 'completed', `response: ${JSON.stringify(r).slice(0, 200)}`);
    assert(r.output_text === 'Hello from mock upstream. You said: hi there', `output_text ${JSON.stringify(r.output_text)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 1 && reqs[0].path === '/v1/responses', `mock saw ${reqs.map((q) => q.path)}`);
    assert(/^Bearer sk-test-key-[12]$/.test(header(reqs[0], 'authorization')), 'upstream key');
  });

  test('responses.create (stream: true): named events, UTF-8 split mid-character', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', { rules: [{ match: { path: '/responses' }, stream: { chunks: 5, delay_ms: 10 } }] });
    const stream = await client.responses.create({ model: MODEL, input: 'stream', stream: true });
    const types = [];
    let text = '';
    let usage = null;
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') usage = ev.response.usage;
    }
    const want = Array.from({ length: 5 }, (_, i) => `tok${i} é `).join('');
    assert(text === want, `streamed ${JSON.stringify(text)}, expected ${JSON.stringify(want)}`);
    assert(types[0] === 'response.created' && types.at(-1) === 'response.completed', `events ${types}`);
    assert(usage && usage.total_tokens > 0, `usage ${JSON.stringify(usage)}`);
  });

  test('responses stream cut after the first byte: it ends with the API\'s error event', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', { rules: [{ match: { path: '/responses' }, stream: { chunks: 6, cut_after: 2 } }] });
    const stream = await client.responses.create({ model: MODEL, input: 'break', stream: true });
    const events = [];
    for await (const ev of stream) events.push(ev);
    const last = events.at(-1);
    // the SDK yields a Responses `error` event as ResponseErrorEvent
    assert(last.type === 'error' && last.code === 'stream_interrupted', `last event ${JSON.stringify(last)}`);
    assert(/broke before it finished/.test(last.message), `message ${last.message}`);
    assert(last.sequence_number === events.length - 1, `sequence_number ${last.sequence_number} after ${events.length - 1} events`);
    assert(events.filter((e) => e.type === 'response.output_text.delta').length === 2, 'deltas before the error');
  });

  test('embeddings.create (base64 by default, decoded by the SDK)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const r = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['one', 'two'] });
    assert(r.data.length === 2, `${r.data.length} embeddings`);
    const v = r.data[1].embedding;
    assert(v.length === 8 && v[0] === 2 && v[1] === 1, `vector ${JSON.stringify(v)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs[0].path === '/v1/embeddings' && JSON.parse(reqs[0].body).encoding_format === 'base64', `mock saw ${reqs[0].body}`);
  });

  test('completions.create (plain and stream)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const r = await client.completions.create({ model: MODEL, prompt: 'def f():', max_tokens: 5 });
    assert(r.object === 'text_completion' && r.choices[0].text.includes('def f():'), `completion ${JSON.stringify(r)}`);
    const stream = await client.completions.create({ model: MODEL, prompt: 'x', stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0].text;
    assert(text === 'tok0 tok1 tok2 tok3 tok4 ', `streamed ${JSON.stringify(text)}`);
  });

  test('moderations.create', async () => {
    const r = await client.moderations.create({ input: ['fine', 'kill it'] });
    assert(r.results.length === 2 && !r.results[0].flagged && r.results[1].flagged, `results ${JSON.stringify(r.results)}`);
  });

  test('audio.transcriptions.create with a file (multipart)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const audio = Buffer.from('RIFF\u0000\u0001fake wave bytes\r\n--not-a-boundary');
    const r = await client.audio.transcriptions.create({ file: await toFile(audio, 'a.wav'), model: 'whisper-1' });
    assert(r.text === `mock transcript of ${audio.length} bytes`, `text ${JSON.stringify(r.text)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs[0].path === '/v1/audio/transcriptions', `path ${reqs[0].path}`);
    assert(/^multipart\/form-data; boundary=/.test(header(reqs[0], 'content-type')), `content type ${header(reqs[0], 'content-type')}`);
    assert(reqs[0].body.includes('whisper-1'), 'the model field did not reach the mock');
  });

  test('audio.speech.create: the bytes, unchanged', async () => {
    const body = { model: 'tts-1', voice: 'alloy', input: 'hello there' };
    const r = await client.audio.speech.create(body);
    const got = Buffer.from(await r.arrayBuffer());
    const direct = await fetch(`http://127.0.0.1:${mock.port}/v1/audio/speech`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    const want = Buffer.from(await direct.arrayBuffer());
    assert(got.length === want.length && got.equals(want), `speech: ${got.length} bytes, the mock sends ${want.length}`);
  });

  test('images.generate', async () => {
    const r = await client.images.generate({ prompt: 'a cat', n: 2 });
    assert(r.data.length === 2 && Buffer.from(r.data[0].b64_json, 'base64').subarray(1, 4).toString() === 'PNG',
      `images ${JSON.stringify(r.data)}`);
  });

  test('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert(ids.includes(MODEL) && ids.includes('gpt-4o-mini') && ids.length === 2,
      `models: ${JSON.stringify(ids)}`);
  });

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
  console.log(`openai_client: ${passed} passed, ${failed} failed`);
  return failed === 0;
}

const guard = setTimeout(() => {
  console.error(`openai_client: timed out after ${OVERALL_TIMEOUT_MS / 1000} s`);
  for (const rec of children) tail(rec, 30);
  process.exitCode = 1;
  process.exit();
}, OVERALL_TIMEOUT_MS);
guard.unref();

main()
  .then((ok) => { process.exitCode = ok ? 0 : 1; })
  .catch(async (e) => {
    console.error(`openai_client: ${e?.stack || e}`);
    await stopAll();
    console.log('openai_client: 0 passed, 1 failed');
    process.exitCode = 1;
  });
