#!/usr/bin/env bash
# t/bench/turns.sh: `make bench`, the turn figures. The release ./crab on SQLite answers
# through the built-in openai adapter from t/helpers/fastmodel (the zero-latency model:
# the Node.js fake's SSE answers, streamed, no delay), 256 sessions (one actor each):
#   - unloaded: 100 turns one at a time, the gateway's own time per turn;
#   - at 5,000 turns/s and at 2,500: events posted at that pace for PACED_S seconds,
#     from 64 connections; the gateway's own time per turn, and whether turns kept up;
#   - throughput: TURNS events posted as fast as they are acknowledged, from CONNS
#     connections; completed turns/s from the first post to the last turn stored, the
#     CPU and disk writes per turn;
#   - RssAnon with 10,000 sessions stored (a last load: 10,000 actors, one turn each).
# The gateway's own time per turn is the executor's histogram (admin status): from the
# turn's start (its event accepted, or the session's last turn stored, or a slot freed)
# to message.outbound stored, minus the model call. A gateway is started afresh for each
# load, on the same store, so that each histogram holds only that load's turns.
# Prints, never asserts. TURNS (default 50000), CONNS (default 128), PACED_S (default 10).
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
CRAB=$ROOT/crab
HELPERS=$ROOT/build/release/t/helpers
TURNS=${TURNS:-50000}
CONNS=${CONNS:-128}
PACED_S=${PACED_S:-10}
PACED_RATE=5000
SESSIONS=256
STORED_SESSIONS=10000
SOLO=100

for tool in jq sqlite3 ss; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is needed"; exit 1; }
done
[ -x "$CRAB" ] && [ -x "$HELPERS/postload" ] && [ -x "$HELPERS/fastmodel" ] ||
	{ echo "bench: run it as 'make bench'"; exit 1; }

. "$ROOT/t/bench/lib.sh"

"$HELPERS/fastmodel" --port-file "$WORK/fake.port" >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
for _ in $(seq 1 100); do
	[ -s "$WORK/fake.port" ] && break
	sleep 0.05
done
[ -s "$WORK/fake.port" ] || fail "the zero-latency model did not start: $(cat "$WORK/fake.log")"

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

lease() {
	"$CRAB" admin lease.create '{"tenant_id":"*","scopes":["produce"],"ttl_s":86400}' |
		jq -er .token || fail "cannot create a lease"
}

# post PREFIX EVENTS ACTORS CONNS [RATE]: postload's summary line into $WORK/post.out.
post() {
	"$HELPERS/postload" -u "$URL" -t "$TOKEN" -c "$4" -n "$2" -a "$3" -p "$1$$" \
		${5:+-R "$5"} 2>"$WORK/post.out" || fail "postload failed: $(cat "$WORK/post.out")"
	cat "$WORK/post.out" >>"$WORK/postload.log"
}
ack_p() { sed -n "s/.*ack_us p50 \([0-9]*\) p99 \([0-9]*\).*/\\$1/p" "$WORK/post.out"; }
now_ms() { date +%s%3N; }
thread_ticks() { # "store sync" CPU ticks of the store worker and sync threads (by name)
	local t comm f store=0 sync=0
	for t in /proc/"$GW_PID"/task/*; do
		read -r comm <"$t/comm"
		read -r -a f <"$t/stat"
		case $comm in
		crab-store) store=$((f[13] + f[14])) ;;
		crab-sync) sync=$((f[13] + f[14])) ;;
		esac
	done
	echo "$store $sync"
}
write_bytes() { awk '$1 == "write_bytes:" { print $2 }' "/proc/$GW_PID/io"; }

echo "crab turns bench: $("$CRAB" version), SQLite (WAL, acknowledged after fdatasync)," \
	"$(nproc) CPUs, model: t/helpers/fastmodel on loopback (streaming, no delay)"

# 1. Unloaded: one turn at a time (the operator's event.send waits for each).
start_gateway
TOKEN=$(lease)
for i in $(seq 1 "$SOLO"); do
	"$CRAB" admin event.send "{\"wait\":true,\"event\":{\"type\":\"channel.message.received\",
		\"text\":\"one at a time $i\",\"source\":{\"platform\":\"postload\",
		\"channel_id\":\"load\",\"actor_id\":\"solo\"}}}" >/dev/null ||
		fail "event.send failed"
done
"$CRAB" admin status >"$WORK/status-solo.json" || fail "status failed"
stop_gateway

# 2. At 5,000 turns/s, and at half that: paced posts over 256 sessions.
# paced RATE: the load; its status into status-paced-RATE.json, figures into PACED_*.
paced() {
	local t0 t1 t2
	start_gateway
	PACED=$(($1 * PACED_S))
	t0=$(now_ms)
	post "p$1-" "$PACED" "$SESSIONS" 64 "$1"
	t1=$(now_ms)
	PACED_ACK50=$(ack_p 1)
	PACED_ACK99=$(ack_p 2)
	wait_turns "$PACED"
	t2=$(now_ms)
	"$CRAB" admin status >"$WORK/status-paced-$1.json" || fail "status failed"
	stop_gateway
	PACED_POSTED=$(rate "$PACED" $((t1 - t0)))
	PACED_LAG=$((t2 - t1))
}
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { printf "%.0f", n / (ms / 1000) }'; }
paced $((PACED_RATE / 2))
HALF_ACK50=$PACED_ACK50
HALF_ACK99=$PACED_ACK99
paced "$PACED_RATE"

# 3. Throughput: as fast as the gateway acknowledges, over 256 sessions.
start_gateway
CPU0_GW=$(proc_ticks "$GW_PID")
read -r STORE0 SYNC0 < <(thread_ticks)
W0=$(write_bytes)
T2=$(now_ms)
post t "$TURNS" "$SESSIONS" "$CONNS"
T_POSTED2=$(now_ms)
LOAD_ACK50=$(ack_p 1)
LOAD_ACK99=$(ack_p 2)
wait_turns "$TURNS"
T3=$(now_ms)
CPU1_GW=$(proc_ticks "$GW_PID")
read -r STORE1 SYNC1 < <(thread_ticks)
W1=$(write_bytes)
"$CRAB" admin status >"$WORK/status.json" || fail "status failed"
LOAD_ANON=$(mem_kb "$GW_PID" RssAnon)

# 4. 10,000 sessions stored: one turn each from as many actors.
post s "$STORED_SESSIONS" "$STORED_SESSIONS" 64
wait_turns $((TURNS + STORED_SESSIONS))
sleep 2
SESSIONS_STORED=$(sqlite3 "$WORK/data/crab.db" "SELECT count(*) FROM sessions")
IDLE_ANON=$(mem_kb "$GW_PID" RssAnon)
IDLE_RSS=$(mem_kb "$GW_PID" VmRSS)
stop_gateway

per_turn_us() { # TICKS TURNS
	awk -v t="$1" -v hz="$CLK_TCK" -v n="$2" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'
}
fig() { jq -r "$2" "$WORK/$1"; }

COMPLETED=$(fig status.json .turns.completed)
FAILED=$(($(fig status.json .turns.failed) + $(fig "status-paced-$PACED_RATE.json" .turns.failed)))
RATE=$(rate "$COMPLETED" $((T3 - T2)))
CPU_US=$(per_turn_us $((CPU1_GW - CPU0_GW)) "$COMPLETED")
STORE_US=$(per_turn_us $((STORE1 - STORE0)) "$COMPLETED")
SYNC_US=$(per_turn_us $((SYNC1 - SYNC0)) "$COMPLETED")
WRITTEN=$(awk -v b=$((W1 - W0)) -v n="$COMPLETED" 'BEGIN { printf "%.1f", b / n / 1024 }')
P50=$(fig "status-paced-$PACED_RATE.json" .turns.overhead_us.p50)
P99=$(fig "status-paced-$PACED_RATE.json" .turns.overhead_us.p99)
HALF=status-paced-$((PACED_RATE / 2)).json

echo "paced: $PACED events at $PACED_RATE/s over $SESSIONS sessions from 64 connections," \
	"posted at $PACED_POSTED/s, the last turn stored $PACED_LAG ms after the last post;" \
	"$(fig "status-paced-$PACED_RATE.json" .turns.completed) completed"
echo "throughput: $TURNS events over $SESSIONS sessions from $CONNS connections, posted at" \
	"$(rate "$TURNS" $((T_POSTED2 - T2)))/s; $COMPLETED completed; $FAILED failed in all"
printf '%-46s %8s          (target >= 5000: %s)\n' "completed turns/s:" "$RATE" \
	"$(verdict "$(awk -v r="$RATE" 'BEGIN { print (r >= 5000) }')")"
printf '%-46s %8s us       (target < 300 us: %s)\n' "gateway time per turn at 5,000/s, p50:" \
	"$P50" "$(verdict "$((P50 < 300))")"
printf '%-46s %8s us       (target < 5000 us: %s)\n' "gateway time per turn at 5,000/s, p99:" \
	"$P99" "$(verdict "$((P99 < 5000))")"
printf '%-46s %8s us       (p99 %s us)\n' "gateway time per turn at $((PACED_RATE / 2))/s, p50:" \
	"$(fig "$HALF" .turns.overhead_us.p50)" "$(fig "$HALF" .turns.overhead_us.p99)"
printf '%-46s %8s us       (p99 %s us; %s turns one at a time)\n' \
	"gateway time per turn unloaded, p50:" "$(fig status-solo.json .turns.overhead_us.p50)" \
	"$(fig status-solo.json .turns.overhead_us.p99)" "$SOLO"
printf '%-46s %8s us       (p99 %s us; at %s/s %s / %s us; at full throughput %s / %s us)\n' \
	"acknowledgement at 5,000/s, p50:" "$PACED_ACK50" "$PACED_ACK99" $((PACED_RATE / 2)) \
	"$HALF_ACK50" "$HALF_ACK99" "$LOAD_ACK50" "$LOAD_ACK99"
printf '%-46s %8s us       (store worker %s us, sync %s us)\n' \
	"gateway CPU per turn at full throughput:" "$CPU_US" "$STORE_US" "$SYNC_US"
printf '%-46s %8s KiB\n' "written to disk per turn:" "$WRITTEN"
printf '%-46s %8s us       (p99 %s us)\n' "model call as the gateway saw it, p50:" \
	"$(fig status.json .turns.model_us.p50)" "$(fig status.json .turns.model_us.p99)"
printf '%-46s %8s MiB\n' "RssAnon at the end of the throughput load:" "$(mib "$LOAD_ANON")"
printf '%-46s %8s MiB      (target < 16 MiB: %s; VmRSS %s MiB)\n' \
	"RssAnon with $SESSIONS_STORED sessions stored:" "$(mib "$IDLE_ANON")" \
	"$(verdict "$((IDLE_ANON < 16384))")" "$(mib "$IDLE_RSS")"
exit 0
