-- chat.lua - wrk script for bench/run.sh: POSTs a realistic chat completion
-- body (~1 KB, a system prompt and a short conversation) and prints one
-- machine-readable summary line at the end.
--
-- Environment:
--   BENCH_STREAM=1   ask for a streamed answer ("stream": true)
--   BENCH_AUTH=KEY   send "Authorization: Bearer KEY" (the auth variant)
--
-- No response() hook: it would make wrk build Lua tables for every answer
-- and slow the load generator, which shares the cores with what it measures.
-- Non-2xx answers are wrk's own "status" errors (status > 399).
--
-- The summary line (stdout, parsed by run.sh):
--   BENCH {"requests":N,"duration_us":N,"errors":N,"non2xx":N,
--          "p50_us":N,"p90_us":N,"p99_us":N,"mean_us":N,"max_us":N}

local stream = os.getenv("BENCH_STREAM") == "1"
local auth = os.getenv("BENCH_AUTH")

local body = [[{"model":"openai-gpt-oss-20b","messages":[]] ..
  [[{"role":"system","content":"You are a careful assistant for a small ]] ..
  [[engineering team. Answer briefly, cite the file and line when you talk ]] ..
  [[about code, and say so when you are not sure. Prefer plain words to ]] ..
  [[jargon and never invent an API that does not exist."},]] ..
  [[{"role":"user","content":"Our gateway sits between the client and the ]] ..
  [[model. What does it cost us per request, roughly, and where would you ]] ..
  [[look first if the latency doubled after a deploy?"},]] ..
  [[{"role":"assistant","content":"Per request a gateway parses the body ]] ..
  [[once, picks an upstream key, forwards the bytes and relays the answer: ]] ..
  [[tens of microseconds of CPU on a warm connection. If latency doubled, ]] ..
  [[compare the upstream's own timing header with what the client sees, ]] ..
  [[then look at connection reuse and DNS."},]] ..
  [[{"role":"user","content":"Good. Now give me three checks I can run ]] ..
  [[today, in order, with the command for each, and tell me what a bad ]] ..
  [[result looks like for every one of them. Keep it short."}],]] ..
  [["temperature":0.2,"max_tokens":256]] ..
  (stream and [[,"stream":true}]] or [[}]])

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
if stream then
  wrk.headers["Accept"] = "text/event-stream"
end
if auth and auth ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. auth
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.connect + e.read + e.write + e.timeout
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"errors":%d,"non2xx":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%d,"max_us":%d,' ..
    '"bytes":%d}\n',
    summary.requests, summary.duration, errors, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max, summary.bytes))
end
