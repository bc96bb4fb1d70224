// ai_sdk.test.mjs - the Vercel AI SDK (`ai` + `@ai-sdk/openai`, its default
// provider, which speaks the Responses API) and LangChain's
// OpenAIEmbeddings (`@langchain/openai`), pinned in package-lock.json,
// against a real sluice in front of the mock upstream (harness.mjs).
//
// Environment (set by CTest): SLUICE_BIN, MOCK_BIN, PLUGINS_DIR.

import { createOpenAI } from '@ai-sdk/openai';
import { OpenAIEmbeddings } from '@langchain/openai';
import { embed, embedMany, generateText, streamText } from 'ai';
import {
  MODEL, assert, mockPost, mockRequests, runMain, runTests, startMock,
  startSluice,
} from './harness.mjs';

async function main() {
  const mock = await startMock();
  const sluice = await startSluice(mock.port, {
    pipeline: ['  - plugin: retry', '  - plugin: sse'],
  });
  const baseURL = `http://127.0.0.1:${sluice.port}/v1`;
  const openai = createOpenAI({ baseURL, apiKey: 'sk-test' });

  const tests = [];
  const test = (name, fn) => tests.push({ name, fn });

  test('generateText with the default provider (Responses API)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const { text, usage } = await generateText({ model: openai(MODEL), prompt: 'hello ai sdk', maxRetries: 0 });
    assert(text === 'Hello from mock upstream. You said: hello ai sdk', `text ${JSON.stringify(text)}`);
    assert(usage.inputTokens > 0 && usage.outputTokens > 0, `usage ${JSON.stringify(usage)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 1 && reqs[0].path === '/v1/responses', `mock saw ${reqs.map((q) => q.path)}`);
  });

  test('streamText (Responses named events, split mid-UTF-8)', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', { rules: [{ match: { path: '/responses' }, stream: { chunks: 4, delay_ms: 10 } }] });
    const result = streamText({ model: openai(MODEL), prompt: 'stream please', maxRetries: 0 });
    let text = '';
    for await (const d of result.textStream) text += d;
    const want = Array.from({ length: 4 }, (_, i) => `tok${i} é `).join('');
    assert(text === want, `streamed ${JSON.stringify(text)}, expected ${JSON.stringify(want)}`);
    const reason = await result.finishReason;
    assert(reason === 'stop', `finish reason ${reason}`);
  });

  test('streamText: an upstream failure before the first byte fails over', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    await mockPost(mock.port, '/_mock/script', { rules: [{ match: { path: '/responses' }, status: 502 }] });
    const result = streamText({ model: openai(MODEL), prompt: 'again', maxRetries: 0 });
    let text = '';
    for await (const d of result.textStream) text += d;
    assert(text.startsWith('tok0 '), `streamed ${JSON.stringify(text)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.map((q) => q.status).join() === '502,200', `mock statuses ${reqs.map((q) => q.status)}`);
  });

  test('embed and embedMany', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const { embedding } = await embed({ model: openai.embedding('text-embedding-3-small'), value: 'one', maxRetries: 0 });
    assert(embedding.length === 8 && embedding[0] === 1, `embedding ${JSON.stringify(embedding)}`);
    const { embeddings } = await embedMany({ model: openai.embedding('text-embedding-3-small'), values: ['a', 'b', 'c'], maxRetries: 0 });
    assert(embeddings.length === 3 && embeddings[2][0] === 3, `embeddings ${JSON.stringify(embeddings)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.every((q) => q.path === '/v1/embeddings'), `mock saw ${reqs.map((q) => q.path)}`);
  });

  test('LangChain OpenAIEmbeddings', async () => {
    await mockPost(mock.port, '/_mock/reset', {});
    const emb = new OpenAIEmbeddings({
      model: 'text-embedding-3-small', apiKey: 'sk-test', maxRetries: 0, configuration: { baseURL },
    });
    const docs = await emb.embedDocuments(['first doc', 'second doc']);
    assert(docs.length === 2 && docs[1].length === 8 && docs[1][0] === 2, `documents ${JSON.stringify(docs)}`);
    const q = await emb.embedQuery('a query');
    assert(q.length === 8 && q[0] === 1, `query ${JSON.stringify(q)}`);
    const reqs = await mockRequests(mock.port);
    assert(reqs.length === 2 && reqs.every((r) => r.path === '/v1/embeddings'), `mock saw ${reqs.map((r) => r.path)}`);
  });

  return runTests('ai_sdk', tests);
}

runMain('ai_sdk', main);
