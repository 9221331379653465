#!/usr/bin/env bash
# t/bench/run.sh: `make bench`. Measures and prints (never asserts) the figures of the
# foundation issue for the release ./crab on SQLite (WAL, acks after fdatasync) in a
# temporary directory, rate limiting off:
#   - accepted events/s and p99 latency from 64 keep-alive connections (wrk -t2 -c64,
#     t/bench/post.lua: every request a new event with its own idempotency key);
#   - the gateway's RssAnon and VmRSS, the largest seen during the run and idle after it
#     (once the accepted events' turns, on the echo model, are done);
#   - startup: exec to the first good GET /v1/health (t/helpers/readytime), median of 10;
#   - that the store holds exactly the events wrk saw accepted.
# BENCH_DURATION (seconds, default 10) shortens or lengthens the load run.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
CRAB=$ROOT/crab
HELPERS=$ROOT/build/release/t/helpers
DURATION=${BENCH_DURATION:-10}
CONNS=64
THREADS=2

for tool in wrk jq sqlite3 ss; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is needed (Debian package)"; exit 1; }
done
[ -x "$CRAB" ] && [ -x "$HELPERS/readytime" ] || { echo "bench: run it as 'make bench'"; exit 1; }

. "$ROOT/t/bench/lib.sh"

PORT=$(free_port) || fail "no free port"
URL=http://127.0.0.1:$PORT
export CRAB_ADMIN_SOCKET=$WORK/data/admin.sock
cat >"$WORK/crab.yaml" <<EOF
gateway:
  listen: "127.0.0.1:$PORT"
  data_dir: "$WORK/data"
store:
  driver: sqlite
  path: crab.db
limits:
  rate_per_second: 0
  max_connections: 4096
log:
  level: info
EOF

echo "crab bench: $("$CRAB" version), SQLite (WAL, acknowledged after fdatasync), $(nproc) CPUs"

# ---- startup on a new database (runs the migrations) ----
"$HELPERS/readytime" -u "$URL" -n 1 -l "$WORK/gateway.log" -- \
	"$CRAB" gateway -c "$WORK/crab.yaml" >"$WORK/ready-cold" 2>/dev/null ||
	fail "readytime failed on a new database"
READY_COLD=$(awk '{ print $2 }' "$WORK/ready-cold")

# ---- load ----
start_gateway
TOKEN=$("$CRAB" admin lease.create '{"tenant_id":"bench","scopes":["produce"],"ttl_s":86400}' |
	jq -er .token) || fail "cannot create a lease"
sleep 1
IDLE_BEFORE_ANON=$(mem_kb "$GW_PID" RssAnon)
IDLE_BEFORE_RSS=$(mem_kb "$GW_PID" VmRSS)

# The sampler uses shell builtins only: a fork per sample would take CPU from the run on
# this 2-core machine (read -t on a FIFO nobody writes is the sleep).
mkfifo "$WORK/never"
(
	exec 9<>"$WORK/never"
	while kill -0 "$GW_PID" 2>/dev/null; do
		anon=0 rss=0
		while read -r key value _; do
			case $key in
			RssAnon:) anon=$value ;;
			VmRSS:) rss=$value ;;
			esac
		done <"/proc/$GW_PID/status"
		echo "$anon $rss"
		read -r -t 0.1 -u 9 _
	done
) >"$WORK/mem.samples" 2>/dev/null &
SAMPLER_PID=$!

CPU0_MACHINE=$(machine_ticks)
CPU0_GW=$(proc_ticks "$GW_PID")
times >"$WORK/times0"
CPU0_CHILDREN=$(children_ticks "$WORK/times0")
CRAB_BENCH_TOKEN=$TOKEN CRAB_BENCH_PREFIX="b$$" \
	wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency -s "$ROOT/t/bench/post.lua" \
	"$URL/v1/events" >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out"; fail "wrk failed"; }
T_WRK_END=$(date +%s%3N)
CPU1_MACHINE=$(machine_ticks)
CPU1_GW=$(proc_ticks "$GW_PID")
times >"$WORK/times1"
CPU1_CHILDREN=$(children_ticks "$WORK/times1")

kill "$SAMPLER_PID" 2>/dev/null
wait "$SAMPLER_PID" 2>/dev/null
SAMPLER_PID=""
# Idle means nothing left to do: the accepted events' turns (echo) run on after wrk has
# stopped; once they are done, the store worker trims its caches after a quiet second.
for _ in $(seq 1 1200); do
	"$CRAB" admin status | jq -e '.turns | .running == 0 and .queued == 0 and
		(.backlog_in_store | not)' >/dev/null && break
	sleep 0.1
done
T_DRAINED=$(date +%s%3N)
sleep 2
IDLE_AFTER_ANON=$(mem_kb "$GW_PID" RssAnon)
IDLE_AFTER_RSS=$(mem_kb "$GW_PID" VmRSS)
LOAD_ANON=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$WORK/mem.samples")
LOAD_RSS=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/mem.samples")

"$CRAB" admin status '{"rows":true}' >"$WORK/status.json" || fail "status failed"
STORED=$(jq -r .store.rows.inbox "$WORK/status.json")
COUNTED=$(jq -r .counters.events_accepted "$WORK/status.json")
stop_gateway
STORED_FILE=$(sqlite3 "$WORK/data/crab.db" "SELECT count(*) FROM inbox")

wrkval() { awk -v k="$1" '$1 == k { print $2 }' "$WORK/wrk.out"; }
OK2XX=$(wrkval bench_2xx)
NON2XX=$(wrkval bench_non2xx)
SOCKERR=$(wrkval bench_socket_errors)
DUR_US=$(wrkval bench_duration_us)
P50=$(wrkval bench_p50_us)
P99=$(wrkval bench_p99_us)
PMAX=$(wrkval bench_max_us)
[ -n "$OK2XX" ] && [ -n "$P99" ] || { cat "$WORK/wrk.out"; fail "no figures from wrk"; }

# ---- startup on the database the load filled ----
"$HELPERS/readytime" -u "$URL" -n 10 -l "$WORK/gateway.log" -- \
	"$CRAB" gateway -c "$WORK/crab.yaml" >"$WORK/ready" 2>"$WORK/ready.runs" ||
	{ cat "$WORK/ready.runs"; fail "readytime failed"; }
READY=$(awk '{ print $2 }' "$WORK/ready")
READY_MIN=$(awk '{ print $4 }' "$WORK/ready.runs" | sort -n | head -n 1)
READY_MAX=$(awk '{ print $4 }' "$WORK/ready.runs" | sort -n | tail -n 1)

RATE=$(awk -v n="$OK2XX" -v us="$DUR_US" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
P99_MS=$(awk -v u="$P99" 'BEGIN { printf "%.2f", u / 1000 }')
INFLIGHT=$((STORED - OK2XX))

echo "load: wrk -t$THREADS -c$CONNS -d${DURATION}s, POST /v1/events, a new idempotency key per request"
read -r BUSY0 TOTAL0 <<<"$CPU0_MACHINE"
read -r BUSY1 TOTAL1 <<<"$CPU1_MACHINE"
GW_TICKS=$((CPU1_GW - CPU0_GW))
WRK_TICKS=$((CPU1_CHILDREN - CPU0_CHILDREN))
awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOTAL1 - TOTAL0)) -v gw="$GW_TICKS" -v wrk="$WRK_TICKS" \
	-v n="$OK2XX" -v hz="$CLK_TCK" 'BEGIN {
	o = b - gw - wrk; if (o < 0) o = 0
	printf "machine during the run: gateway %.0f%%, wrk %.0f%%, other processes %.0f%%, idle %.0f%% (of all CPUs)\n",
		100 * gw / t, 100 * wrk / t, 100 * o / t, 100 * (t - b) / t
	printf "gateway CPU per accepted event: %.1f us (all threads)\n", gw / hz * 1e6 / n }'
printf '%-34s %10s          (target >= 20000: %s)\n' "accepted events/s:" "$RATE" \
	"$(verdict "$(awk -v r="$RATE" 'BEGIN { print (r >= 20000) }')")"
printf '%-34s %10s ms       (target < 5 ms: %s; p50 %.2f ms, max %.2f ms)\n' "p99 latency:" \
	"$P99_MS" "$(verdict "$(awk -v u="$P99" 'BEGIN { print (u < 5000) }')")" \
	"$(awk -v u="$P50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$PMAX" 'BEGIN { print u / 1000 }')"
printf '%-34s %10s MiB      (target < 8 MiB: %s)\n' "RssAnon under load (max):" \
	"$(mib "$LOAD_ANON")" "$(verdict "$((LOAD_ANON < 8192))")"
printf '%-34s %10s MiB      (shared library pages included)\n' "VmRSS under load (max):" \
	"$(mib "$LOAD_RSS")"
printf '%-34s %10s MiB      (target < 4 MiB: %s)\n' "RssAnon idle after the run:" \
	"$(mib "$IDLE_AFTER_ANON")" "$(verdict "$((IDLE_AFTER_ANON < 4096))")"
printf '%-34s %10s MiB      (the turns of the accepted events done %.1f s after the load)\n' \
	"VmRSS idle after the run:" "$(mib "$IDLE_AFTER_RSS")" \
	"$(awk -v ms=$((T_DRAINED - T_WRK_END)) 'BEGIN { print ms / 1000 }')"
printf '%-34s %10s MiB      (VmRSS %s MiB)\n' "RssAnon idle before the run:" \
	"$(mib "$IDLE_BEFORE_ANON")" "$(mib "$IDLE_BEFORE_RSS")"
printf '%-34s %10s ms       (target < 50 ms: %s; min %s, max %s)\n' "ready (median of 10 starts):" \
	"$READY" "$(verdict "$(awk -v r="$READY" 'BEGIN { print (r < 50) }')")" "$READY_MIN" "$READY_MAX"
printf '%-34s %10s ms\n' "ready, first start (new database):" "$READY_COLD"
echo "stored events: $STORED (in the file after shutdown: $STORED_FILE, gateway counted $COUNTED)," \
	"wrk 2xx: $OK2XX, non-2xx: $NON2XX, socket errors: $SOCKERR"
if [ "$STORED" = "$STORED_FILE" ] && [ "$STORED" = "$COUNTED" ] &&
	[ "$INFLIGHT" -ge 0 ] && [ "$INFLIGHT" -le "$CONNS" ] && [ "$NON2XX" = 0 ]; then
	echo "stored = wrk 2xx + $INFLIGHT answered after wrk stopped counting (at most $CONNS in flight): ok"
else
	echo "stored events do not match wrk's 2xx ($INFLIGHT extra): MISSED"
fi
exit 0
