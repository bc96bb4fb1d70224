#!/bin/bash
# smoke.sh [BIN] - drives every feature of mock_upstream once against a fresh
# instance with curl and prints one ok/FAIL line per check; exits 1 on any
# FAIL. BIN defaults to $MOCK_BIN. A manual check of the mock, not a CTest.
BIN=${1:-$MOCK_BIN}
[ -x "$BIN" ] || { echo "usage: smoke.sh path/to/mock_upstream" >&2; exit 2; }
T=$(mktemp -d)
trap 'kill $PID 2>/dev/null; rm -rf "$T"' EXIT
cd "$T"
$BIN --port 0 --port-file sport --chunks 3 --delay-ms 50 > s.out 2> s.err &
PID=$!
for _ in $(seq 500); do [ -s sport ] && break; sleep 0.01; done
U=127.0.0.1:$(cat sport)
B='{"model":"m1","messages":[{"role":"user","content":"hi"}]}'
SB='{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}'
FAILS=0
check() {
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: got [$2] want [$3]"
        FAILS=$((FAILS + 1))
    fi
}
check health "$(curl -s -o /dev/null -w '%{http_code}' $U/_mock/health)" 200
check plain "$(curl -s $U/v1/chat/completions -d "$B" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["model"], d["choices"][0]["message"]["content"])')" "m1 Hello from mock upstream. You said: hi"
check stream "$(curl -sN $U/chat/completions -d "$SB" | grep -c '^data: ')" 5
check badjson "$(curl -s -o /dev/null -w '%{http_code}' $U/v1/chat/completions -d '{x')" 400
check models "$(curl -s $U/v1/models | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))')" 3
check 404 "$(curl -s -o /dev/null -w '%{http_code}' $U/v1/nope)" 404
check badrule "$(curl -s -o /dev/null -w '%{http_code}' $U/_mock/script -d '{"rules":[{"statsu":1}]}')" 400
curl -s $U/_mock/script -d '{"rules":[{"match":{"auth":"Bearer a"},"status":429,"headers":{"Retry-After":2},"times":2},
 {"match":{"auth":"Bearer b"},"close":true},
 {"match":{"auth":"Bearer c","stream":true},"stream":{"chunks":6,"cut_after":2}},
 {"match":{"auth":"Bearer d"},"stall_ms":300,"body":"plain text","status":503},
 {"match":{"auth":"Bearer e"},"stream":{"raw":["data: x\n","\n","data: [DONE]\n\n"]}},
 {"match":{"model":"big"},"json":{"hello":"world"}},
 {"match":{"auth":"Bearer f"},"stream":{"chunks":2}}]}' >/dev/null
check 429a "$(curl -s -D - -o /dev/null $U/v1/chat/completions -H 'Authorization: Bearer a' -d "$B" | tr -d '\r' | grep -E '^(HTTP|Retry-After)' | tr '\n' ' ')" "HTTP/1.1 429 Too Many Requests Retry-After: 2 "
check 429b "$(curl -s -o /dev/null -w '%{http_code}' $U/v1/chat/completions -H 'Authorization: Bearer a' -d "$SB")" 429
check 429used "$(curl -s -o /dev/null -w '%{http_code}' $U/v1/chat/completions -H 'Authorization: Bearer a' -d "$B")" 200
check close "$(curl -s -o /dev/null $U/v1/chat/completions -H 'Authorization: Bearer b' -d "$B"; echo $?)" 52
check cut-nonstream-skips "$(curl -s -o /dev/null -w '%{http_code}' $U/v1/chat/completions -H 'Authorization: Bearer c' -d "$B")" 200
check cut "$(curl -sN $U/v1/chat/completions -H 'Authorization: Bearer c' -d "$SB" | grep -c '^data: '; echo ${PIPESTATUS[0]})" "2
18"
check stall "$(curl -s -w ' %{http_code} %{time_total}' $U/v1/chat/completions -H 'Authorization: Bearer d' -d "$B" | awk '{print $1, $2, $3, ($4 >= 0.3)}')" "plain text 503 1"
check raw "$(curl -sN $U/v1/chat/completions -H 'Authorization: Bearer e' -d "$B" | od -An -c | tr -s ' ' | tr -d '\n')" " d a t a : x \n \n d a t a : [ D O N E ] \n \n"
check model "$(curl -s $U/v1/chat/completions -d '{"model":"big"}')" '{"hello":"world"}'
check stream-rule-on-plain "$(curl -s -D - $U/v1/chat/completions -H 'Authorization: Bearer f' -d "$B" | tr -d '\r' | grep -ci 'content-type: text/event-stream')" 1
curl -s -XPOST $U/_mock/script -d '{"match":{"body_contains":"slow"},"stream":{"chunks":5,"delay_ms":1000}}' >/dev/null
curl -sN -m 0.5 $U/v1/chat/completions -d '{"stream":true,"x":"slow"}' -H 'X-Tag: leave' >/dev/null
curl -s -XPOST $U/_mock/script -d '{"match":{"auth":"Bearer g"},"stream":{"stall_after":1,"stall_ms":5000}}' >/dev/null
curl -sN -m 0.5 $U/v1/chat/completions -d '{"stream":true}' -H 'Authorization: Bearer g' >/dev/null
sleep 0.1
curl -s $U/_mock/requests > s.json
rec() { python3 -c "import json; d=json.load(open('s.json')); rs=d['requests']; print($1)"; }
check records "$(rec '(len(rs), [r["outcome"] for r in rs].count("complete"))')" "(17, 13)"
check closed "$(rec '[(r["status"], r["outcome"]) for r in rs if r["seq"] == 9]')" "[(None, 'closed')]"
check cut-rec "$(rec '[(r["outcome"], r["chunks_sent"]) for r in rs if r["seq"] == 11]')" "[('cut', 2)]"
check client-closed "$(rec '[(r["outcome"], r["chunks_sent"]) for r in rs[-2:]]')" "[('client_closed', 1), ('client_closed', 1)]"
check headers "$(rec 'rs[-2]["headers"].get("x-tag")')" leave
check active "$(rec 'd["active"]')" 0
curl -s -XPOST $U/_mock/reset >/dev/null
curl -s $U/v1/models $U/v1/models $U/v1/models -o /dev/null -o /dev/null -o /dev/null
check keepalive "$(curl -s $U/_mock/requests | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["requests"]), len({r["conn_id"] for r in d["requests"]}), d["connections_opened"])')" "3 1 2"
# big body: recorded capped at 1 MiB, still parsed
python3 -c 'import json; print(json.dumps({"messages":[{"role":"user","content":"x"*3000000}]}))' > big.json
check bigbody "$(curl -s -o /dev/null -w '%{http_code}' $U/v1/chat/completions -H 'Content-Type: application/json' --data-binary @big.json)" 200
check bigrec "$(curl -s "$U/_mock/requests?since=3" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(len(d["requests"][0]["body"]))')" 1048576
kill -TERM $PID
wait $PID
check sigterm-exit "$?" 0
[ $FAILS -eq 0 ]
