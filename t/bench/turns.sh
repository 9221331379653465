#!/usr/bin/env bash
# t/bench/turns.sh: `make bench`, the turn figures. The release ./crab on SQLite (WAL,
# synchronous=FULL) answers through the built-in openai adapter from the OpenAI fake
# (t/fakes/openai-fake.js, streaming, no delay, not recording: the zero-latency model):
#   - completed turns/s: TURNS events from 64 connections over 256 sessions (actors),
#     from the first post to the last turn stored;
#   - the gateway's own time per turn, from the executor's histogram (admin status):
#     arrival to acceptance stored, plus turn start to message.outbound stored, minus the
#     model call (a wait for a free turn slot is not counted), p50 and p99;
#   - the same for 100 turns one at a time before the load (no queue: the path itself);
#   - gateway CPU per turn (all threads), and the model call as the gateway saw it;
#   - RssAnon with 10,000 sessions stored (a second load: 10,000 actors, one turn each).
# Prints, never asserts. TURNS (default 50000) sets the size of the first load.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
CRAB=$ROOT/crab
HELPERS=$ROOT/build/release/t/helpers
TURNS=${TURNS:-50000}
SESSIONS=256
STORED_SESSIONS=10000
CONNS=64
SOLO=100

for tool in node jq sqlite3 ss; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is needed"; exit 1; }
done
[ -x "$CRAB" ] && [ -x "$HELPERS/postload" ] && [ -x "$HELPERS/fastmodel" ] || { echo "bench: run it as 'make bench'"; exit 1; }

. "$ROOT/t/bench/lib.sh"

"$HELPERS/fastmodel" --port-file "$WORK/fake.port" >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
for _ in $(seq 1 100); do
	[ -s "$WORK/fake.port" ] && break
	sleep 0.05
done
[ -s "$WORK/fake.port" ] || fail "the OpenAI fake did not start: $(cat "$WORK/fake.log")"

PORT=$(free_port) || fail "no free port"
URL=http://127.0.0.1:$PORT
export CRAB_ADMIN_SOCKET=$WORK/data/admin.sock
cat >"$WORK/crab.yaml" <<YAML
gateway:
  listen: "127.0.0.1:$PORT"
  data_dir: "$WORK/data"
limits:
  rate_per_second: 0
models:
  - id: fake
    adapter: openai
    model: bench
    base_url: "http://127.0.0.1:$(cat "$WORK/fake.port")/v1"
agents:
  - id: assistant
    model: fake
    history:
      max_turns: 4
tenants:
  - id: bench
    identities:
      - platform: postload
turns:
  max_concurrent: $SESSIONS
log:
  level: warn
YAML

# status_field JQ: one figure of the running gateway's status.
status_field() {
	"$CRAB" admin status | jq -r "$1"
}

# wait_turns N: until the executor has finished N turns and has nothing queued.
wait_turns() {
	local done=0
	for _ in $(seq 1 6000); do
		done=$(status_field '.turns.completed + .turns.failed')
		[ "$done" -ge "$1" ] && [ "$(status_field .turns.queued)" = 0 ] && return 0
		kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited"
		sleep 0.05
	done
	fail "only $done of $1 turns finished"
}

now_ms() { date +%s%3N; }

echo "crab turns bench: $("$CRAB" version), SQLite (WAL, synchronous=FULL), $(nproc) CPUs," \
	"model: OpenAI fake on loopback (streaming, no delay)"
start_gateway
TOKEN=$("$CRAB" admin lease.create '{"tenant_id":"*","scopes":["produce"],"ttl_s":86400}' |
	jq -er .token) || fail "cannot create a lease"

# Unloaded: one turn at a time (the operator's event.send waits for each), so the figures
# are the gateway's own path with no queue: three commits and the work around them.
for i in $(seq 1 "$SOLO"); do
	"$CRAB" admin event.send "{\"wait\":true,\"event\":{\"type\":\"channel.message.received\",
		\"text\":\"one at a time $i\",\"source\":{\"platform\":\"postload\",
		\"channel_id\":\"load\",\"actor_id\":\"solo\"}}}" >/dev/null ||
		fail "event.send failed"
done
"$CRAB" admin status >"$WORK/status-solo.json" || fail "status failed"

CPU0_GW=$(proc_ticks "$GW_PID")
T0=$(now_ms)
"$HELPERS/postload" -u "$URL" -t "$TOKEN" -c "$CONNS" -n "$TURNS" -a "$SESSIONS" -p "t$$" \
	2>"$WORK/postload.out" || fail "postload failed: $(cat "$WORK/postload.out")"
T_POSTED=$(now_ms)
wait_turns $((TURNS + SOLO))
T1=$(now_ms)
CPU1_GW=$(proc_ticks "$GW_PID")
"$CRAB" admin status >"$WORK/status.json" || fail "status failed"
LOAD_ANON=$(mem_kb "$GW_PID" RssAnon)

# 10,000 sessions stored: one turn each from as many actors.
"$HELPERS/postload" -u "$URL" -t "$TOKEN" -c "$CONNS" -n "$STORED_SESSIONS" \
	-a "$STORED_SESSIONS" -p "s$$" 2>>"$WORK/postload.out" || fail "postload failed"
wait_turns $((TURNS + SOLO + STORED_SESSIONS))
sleep 2
SESSIONS_STORED=$(sqlite3 "$WORK/data/crab.db" "SELECT count(*) FROM sessions")
IDLE_ANON=$(mem_kb "$GW_PID" RssAnon)
IDLE_RSS=$(mem_kb "$GW_PID" VmRSS)
stop_gateway

COMPLETED=$(($(jq -r .turns.completed "$WORK/status.json") - SOLO))
FAILED=$(jq -r .turns.failed "$WORK/status.json")
RATE=$(awk -v n="$COMPLETED" -v ms=$((T1 - T0)) 'BEGIN { printf "%.0f", n / (ms / 1000) }')
POST_RATE=$(awk -v n="$TURNS" -v ms=$((T_POSTED - T0)) 'BEGIN { printf "%.0f", n / (ms / 1000) }')
SOLO50=$(jq -r .turns.overhead_us.p50 "$WORK/status-solo.json")
SOLO99=$(jq -r .turns.overhead_us.p99 "$WORK/status-solo.json")
P50=$(jq -r .turns.overhead_us.p50 "$WORK/status.json")
P99=$(jq -r .turns.overhead_us.p99 "$WORK/status.json")
MODEL50=$(jq -r .turns.model_us.p50 "$WORK/status.json")
MODEL99=$(jq -r .turns.model_us.p99 "$WORK/status.json")
CPU_US=$(awk -v t=$((CPU1_GW - CPU0_GW)) -v hz="$CLK_TCK" -v n="$COMPLETED" \
	'BEGIN { printf "%.0f", t / hz * 1e6 / n }')

echo "load: postload -c$CONNS, $TURNS events over $SESSIONS sessions (posted at $POST_RATE/s);" \
	"$COMPLETED completed, $FAILED failed"
printf '%-40s %8s          (target >= 5000: %s)\n' "completed turns/s:" "$RATE" \
	"$(verdict "$(awk -v r="$RATE" 'BEGIN { print (r >= 5000) }')")"
printf '%-40s %8s us       (target < 300 us: %s)\n' "gateway time per turn, p50:" "$P50" \
	"$(verdict "$((P50 < 300))")"
printf '%-40s %8s us       (target < 5000 us: %s)\n' "gateway time per turn, p99:" "$P99" \
	"$(verdict "$((P99 < 5000))")"
printf '%-40s %8s us       (p99 %s us; %s turns one at a time, before the load)\n' \
	"gateway time per turn unloaded, p50:" "$SOLO50" "$SOLO99" "$SOLO"
printf '%-40s %8s us\n' "gateway CPU per turn (all threads):" "$CPU_US"
printf '%-40s %8s us       (p99 %s us)\n' "model call as the gateway saw it, p50:" "$MODEL50" \
	"$MODEL99"
printf '%-40s %8s MiB\n' "RssAnon at the end of the load:" "$(mib "$LOAD_ANON")"
printf '%-40s %8s MiB      (target < 16 MiB: %s; VmRSS %s MiB)\n' \
	"RssAnon with $SESSIONS_STORED sessions stored:" "$(mib "$IDLE_ANON")" \
	"$(verdict "$((IDLE_ANON < 16384))")" "$(mib "$IDLE_RSS")"
exit 0
