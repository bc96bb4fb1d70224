// openai_client.test.mjs - the official `openai` npm client (pinned 6.x in
// package-lock.json) against a real sluice in front of the mock upstream.
//
// Starts both itself (harness.mjs): mock_upstream on a port it picks, a
// temporary YAML, sluice on a free loopback port; kills both at the end,
// whatever happened. Exits non-zero when a check fails.
//
// Environment (set by CTest): SLUICE_BIN, MOCK_BIN, PLUGINS_DIR.

import fs from 'node:fs';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import {
  FIRST_KEY, MODEL, assert, freePort, header, mockPost, mockRequests, need,
  runMain, runTests, start, startMock, startSluice, tmp, waitReady,
} from './harness.mjs';

// A sluice with two upstreams: "dead" (a free port nothing listens on) and
// "live" (the mock); the route "fb-model" tries dead first, then falls back
// to live with the model name "live-model".
async function startRoutedSluice(mockPort) {
  const port = await freePort();
  const dead = await freePort();
  const yaml = [
    'server:',
    '  host: "127.0.0.1"',
    `  port: ${port}`,
    '  threads: 2',
    'upstream:',
    '  timeout_s: 30',
    'upstreams:',
    `  - { name: dead, base_url: "http://127.0.0.1:${dead}/v1", keys: false }`,
    `  - { name: live, base_url: "http://127.0.0.1:${mockPort}/v1", keys: false }`,
    'routes:',
    '  - model: fb-model',
    '    deployments:',
    '      - { upstream: dead, model: dead-model }',
    '      - { upstream: live, model: live-model }',
    `plugins_dir: ${JSON.stringify(need('PLUGINS_DIR'))}`,
    'state:',
    `  path: ${JSON.stringify(path.join(tmp(), 'routed.state.db'))}`,
    'pipeline:',
    '  - plugin: router',
    '    config: { deployment_cooldown_s: 0 }',
    '  - plugin: retry',
    '    config: { max_retries: 1, base_ms: 5, max_ms: 20 }',
    '  - plugin: sse',
    '',
  ].join('\n');
  const cfg = path.join(tmp(), 'routed.yaml');
  fs.writeFileSync(cfg, yaml);
  const rec = start('sluice (routed)', need('SLUICE_BIN'), ['-c', cfg], path.join(tmp(), 'routed.log'));
  await waitReady(rec, `http://127.0.0.1:${port}/health`, 'sluice (routed)');
  return { rec, port };
}

async function main() {
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

  // ---- 429 vs 503: the SDK's own retry honours Retry-After --------------
  const sluiceRetry = await startSluice(mock.port, {
    name: 'sluice-retry', pipeline: ['  - plugin: retry', '  - plugin: sse'],
  });
  const retrying = new OpenAI({
    baseURL: `http://127.0.0.1:${sluiceRetry.port}/v1`, apiKey: 'sk-test', maxRetries: 2, timeout: 20_000,
  });

  test('every key rate-limited: 429 rate_limit_exceeded + Retry-After, the SDK waits and succeeds', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', {
      rules: [{ match: { path: '/chat/completions' }, status: 429, headers: { 'Retry-After': '1' }, times: 2 }],
    });
    // first, without the SDK's retry: what sluice answers
    const raw = await fetch(`http://127.0.0.1:${sluiceRetry.port}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'x' }] }),
    });
    const doc = await raw.json();
    assert(raw.status === 429 && doc.error.code === 'rate_limit_exceeded', `sluice answered ${raw.status} ${JSON.stringify(doc)}`);
    assert(raw.headers.get('retry-after') === '1', `Retry-After ${raw.headers.get('retry-after')}`);
    assert(raw.headers.get('x-sluice-attempts') === '2', `x-sluice-attempts ${raw.headers.get('x-sluice-attempts')}`);
    // again through the SDK: it waits for Retry-After, then the keys are back
    await mockPost(mock.port, '/_mock/script', {
      rules: [{ match: { path: '/chat/completions' }, status: 429, headers: { 'Retry-After': '1' }, times: 2 }],
    });
    const t0 = Date.now();
    const r = await retrying.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'wait for it' }] });
    assert(r.choices[0].message.content.includes('wait for it'), `answer ${JSON.stringify(r)}`);
    const reqs = (await mockRequests(mock.port)).slice(-3);
    assert(reqs.map((q) => q.status).join() === '429,429,200', `mock statuses ${reqs.map((q) => q.status)}`);
    // the SDK's retry came after the Retry-After second, not early
    assert(reqs[2].t_start_ms - reqs[1].t_start_ms >= 900, `the retry came ${reqs[2].t_start_ms - reqs[1].t_start_ms} ms after the 429`);
    assert(Date.now() - t0 >= 900, 'the SDK did not wait');
  });

  test('every key failed: 503 all_keys_unavailable (not 429)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', { rules: [{ match: { path: '/embeddings' }, status: 401, times: 0 }] });
    let caught = null;
    try {
      await retrying.embeddings.create({ model: 'text-embedding-3-small', input: 'x' }, { maxRetries: 0 });
    } catch (e) { caught = e; }
    assert(caught && caught.status === 503 && caught.code === 'all_keys_unavailable',
      `expected 503 all_keys_unavailable, got ${caught?.status} ${caught?.code}: ${caught?.message}`);
  });

  test('models.list', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert(ids.includes(MODEL) && ids.includes('gpt-4o-mini') && ids.length === 2,
      `models: ${JSON.stringify(ids)}`);
  });

  const routed = await startRoutedSluice(mock.port);
  const viaFallback = new OpenAI({
    baseURL: `http://127.0.0.1:${routed.port}/v1`,
    apiKey: 'sk-test',
    maxRetries: 0,
    timeout: 20_000,
  });

  test('a completion through a fallback (dead upstream, then live)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const { data, response } = await viaFallback.chat.completions
      .create({ model: 'fb-model', messages: [{ role: 'user', content: 'fall back' }] })
      .withResponse();
    assert(data.object === 'chat.completion' && data.choices[0].message.content.includes('fall back'),
      `completion ${JSON.stringify(data)}`);
    assert(response.headers.get('x-sluice-upstream') === 'live' &&
           response.headers.get('x-sluice-fallbacks') === '1',
      `headers upstream=${response.headers.get('x-sluice-upstream')} fallbacks=${response.headers.get('x-sluice-fallbacks')}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 1 && JSON.parse(reqs[0].body).model === 'live-model',
      `the mock saw ${JSON.stringify(reqs.map((r) => r.body))}`);
  });

  test('a stream through a fallback', async () => {
    const stream = await viaFallback.chat.completions.create({
      model: 'fb-model', stream: true, messages: [{ role: 'user', content: 'hi' }],
    });
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content || '';
      finish = chunk.choices[0]?.finish_reason || finish;
    }
    assert(text.startsWith('tok0 ') && finish === 'stop', `stream text ${JSON.stringify(text)} finish ${finish}`);
  });

  return runTests('openai_client', tests);
}

runMain('openai_client', main);
