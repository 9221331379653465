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
# Then the same load over TLS (gateway.tls: on: TLS 1.3 on loopback with the gateway's
# self-signed Ed25519 certificate; wrk over https, not verifying it), on a new database,
# and what a new connection costs, one at a time: NEWCONNS GET /v1/health, each on a new
# connection (curl, Connection: close, no TLS session resumed), plain and TLS; and
# openssl s_time -new (a full TLS 1.3 handshake and GET /v1/health on each connection)
# for HANDSHAKE_S seconds.
# BENCH_DURATION (seconds, default 10) shortens or lengthens each load run.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
CRAB=$ROOT/crab
HELPERS=$ROOT/build/release/t/helpers
DURATION=${BENCH_DURATION:-10}
CONNS=64
THREADS=2
NEWCONNS=2000
HANDSHAKE_S=3

for tool in wrk jq sqlite3 ss curl openssl; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is needed (Debian package)"; exit 1; }
done
[ -x "$CRAB" ] && [ -x "$HELPERS/readytime" ] || { echo "bench: run it as 'make bench'"; exit 1; }

. "$ROOT/t/bench/lib.sh"

# config MODE: the gateway's configuration for a run, plain or tls, on its own port and
# data directory (the plain one is $WORK/data); sets PORT, DATA and CRAB_ADMIN_SOCKET.
config() {
	local tls=off
	DATA=$WORK/data
	[ "$1" = tls ] && DATA=$WORK/data-tls tls=on
	PORT=$(free_port) || fail "no free port"
	export CRAB_ADMIN_SOCKET=$DATA/admin.sock
	cat >"$WORK/crab.yaml" <<EOF
gateway:
  listen: "127.0.0.1:$PORT"
  data_dir: "$DATA"
  tls: "$tls"
store:
  driver: sqlite
  path: crab.db
limits:
  rate_per_second: 0
  max_connections: 4096
log:
  level: info
EOF
}

# proc_ns PID: the CPU time of every thread of PID so far in ns (the connection runs are
# too short for clock ticks).
proc_ns() {
	local f t sum=0
	for f in /proc/"$1"/task/*/schedstat; do
		read -r t _ <"$f" && sum=$((sum + t))
	done
	echo "$sum"
}

# median FILE: the median of the numbers in FILE, one a line.
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# load NAME: the running gateway ($GW_PID, at $URL) under wrk's load, then idle once the
# turns of what it accepted are done; sets the figures printed below (RATE, P50, P99,
# LOAD_ANON, GW_TICKS, ...). Leaves the gateway running.
load() {
	local name=$1
	TOKEN=$("$CRAB" admin lease.create '{"tenant_id":"bench","scopes":["produce"],"ttl_s":86400}' |
		jq -er .token) || fail "cannot create a lease"
	sleep 1
	IDLE_BEFORE_ANON=$(mem_kb "$GW_PID" RssAnon)
	IDLE_BEFORE_RSS=$(mem_kb "$GW_PID" VmRSS)

	sampler_start "$name"

	CPU0_MACHINE=$(machine_ticks)
	CPU0_GW=$(proc_ticks "$GW_PID")
	times >"$WORK/times0"
	CPU0_CHILDREN=$(children_ticks "$WORK/times0")
	CRAB_BENCH_TOKEN=$TOKEN CRAB_BENCH_PREFIX="b$$$name" \
		wrk -t$THREADS -c$CONNS -d"${DURATION}s" --latency -s "$ROOT/t/bench/post.lua" \
		"$URL/v1/events" >"$WORK/$name.wrk.out" 2>&1 ||
		{ cat "$WORK/$name.wrk.out"; fail "wrk failed"; }
	T_WRK_END=$(date +%s%3N)
	CPU1_MACHINE=$(machine_ticks)
	CPU1_GW=$(proc_ticks "$GW_PID")
	times >"$WORK/times1"
	CPU1_CHILDREN=$(children_ticks "$WORK/times1")

	sampler_stop "$name"
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
	LOAD_ANON=$MAX_ANON
	LOAD_RSS=$MAX_RSS

	"$CRAB" admin status '{"rows":true}' >"$WORK/$name.status.json" || fail "status failed"
	STORED=$(jq -r .store.rows.inbox "$WORK/$name.status.json")
	COUNTED=$(jq -r .counters.events_accepted "$WORK/$name.status.json")

	WRK_OUT=$WORK/$name.wrk.out
	OK2XX=$(wrkval bench_2xx)
	NON2XX=$(wrkval bench_non2xx)
	SOCKERR=$(wrkval bench_socket_errors)
	DUR_US=$(wrkval bench_duration_us)
	P50=$(wrkval bench_p50_us)
	P99=$(wrkval bench_p99_us)
	PMAX=$(wrkval bench_max_us)
	[ -n "$OK2XX" ] && [ -n "$P99" ] || { cat "$WORK/$name.wrk.out"; fail "no figures from wrk"; }
	RATE=$(awk -v n="$OK2XX" -v us="$DUR_US" 'BEGIN { printf "%.0f", n / (us / 1e6) }')
	P99_MS=$(awk -v u="$P99" 'BEGIN { printf "%.2f", u / 1000 }')
	INFLIGHT=$((STORED - OK2XX))
	GW_TICKS=$((CPU1_GW - CPU0_GW))
	WRK_TICKS=$((CPU1_CHILDREN - CPU0_CHILDREN))
}

# wrkval KEY: a figure the last wrk run printed (t/bench/post.lua's done()).
wrkval() { awk -v k="$1" '$1 == k { print $2 }' "$WRK_OUT"; }

# machine_line: how the machine's CPUs were shared during the last load.
machine_line() {
	read -r BUSY0 TOTAL0 <<<"$CPU0_MACHINE"
	read -r BUSY1 TOTAL1 <<<"$CPU1_MACHINE"
	awk -v b=$((BUSY1 - BUSY0)) -v t=$((TOTAL1 - TOTAL0)) -v gw="$GW_TICKS" -v wrk="$WRK_TICKS" 'BEGIN {
		o = b - gw - wrk; if (o < 0) o = 0
		printf "machine during the run: gateway %.0f%%, wrk %.0f%%, other processes %.0f%%, idle %.0f%% (of all CPUs)\n",
			100 * gw / t, 100 * wrk / t, 100 * o / t, 100 * (t - b) / t }'
}

# stored_check: whether the store holds what wrk saw accepted (STORED_FILE: read from
# the file once the gateway has stopped).
stored_check() {
	echo "stored events: $STORED (in the file after shutdown: $STORED_FILE, gateway counted $COUNTED)," \
		"wrk 2xx: $OK2XX, non-2xx: $NON2XX, socket errors: $SOCKERR"
	if [ "$STORED" = "$STORED_FILE" ] && [ "$STORED" = "$COUNTED" ] &&
		[ "$INFLIGHT" -ge 0 ] && [ "$INFLIGHT" -le "$CONNS" ] && [ "$NON2XX" = 0 ]; then
		echo "stored = wrk 2xx + $INFLIGHT answered after wrk stopped counting (at most $CONNS in flight): ok"
	else
		echo "stored events do not match wrk's 2xx ($INFLIGHT extra): MISSED"
	fi
}

# newconns NAME: NEWCONNS GET /v1/health at $URL one after the other, each on a new
# connection (curl: Connection: close; over TLS a full handshake, no session resumed);
# sets NC_P50_US (connect to answer), NC_HS_US (the TLS handshake, 0 on plain), NC_CPU_US
# (the gateway's CPU a connection) and NC_BAD (answers not a 200 on a new connection).
newconns() {
	local name=$1 c0 c1
	c0=$(proc_ns "$GW_PID")
	timeout 300 curl -sSk --no-sessionid -H 'Connection: close' -o /dev/null \
		-w '%{http_code} %{num_connects} %{time_connect} %{time_appconnect} %{time_total}\n' \
		"$URL/v1/health?[1-$NEWCONNS]" >"$WORK/$name.curl" 2>&1 || fail "curl failed on $URL"
	c1=$(proc_ns "$GW_PID")
	NC_BAD=$(awk '!($1 == 200 && $2 == 1) { n++ } END { print n + 0 }' "$WORK/$name.curl")
	awk '{ print $5 * 1e6 }' "$WORK/$name.curl" >"$WORK/$name.total"
	awk '{ print ($4 > 0 ? ($4 - $3) * 1e6 : 0) }' "$WORK/$name.curl" >"$WORK/$name.hs"
	NC_P50_US=$(median "$WORK/$name.total")
	NC_HS_US=$(median "$WORK/$name.hs")
	NC_CPU_US=$(awk -v ns=$((c1 - c0)) -v n="$NEWCONNS" 'BEGIN { printf "%.0f", ns / n / 1000 }')
}

echo "crab bench: $("$CRAB" version), SQLite (WAL, acknowledged after fdatasync), $(nproc) CPUs"

# ---- startup on a new database (runs the migrations) ----
config plain
URL=http://127.0.0.1:$PORT
"$HELPERS/readytime" -u "$URL" -n 1 -l "$WORK/gateway.log" -- \
	"$CRAB" gateway -c "$WORK/crab.yaml" >"$WORK/ready-cold" 2>/dev/null ||
	fail "readytime failed on a new database"
READY_COLD=$(awk '{ print $2 }' "$WORK/ready-cold")

# ---- load ----
start_gateway
load plain
newconns plain
PLAIN_NC_P50_US=$NC_P50_US PLAIN_NC_CPU_US=$NC_CPU_US PLAIN_NC_BAD=$NC_BAD
stop_gateway
STORED_FILE=$(sqlite3 "$DATA/crab.db" "SELECT count(*) FROM inbox")

# ---- startup on the database the load filled ----
"$HELPERS/readytime" -u "$URL" -n 10 -l "$WORK/gateway.log" -- \
	"$CRAB" gateway -c "$WORK/crab.yaml" >"$WORK/ready" 2>"$WORK/ready.runs" ||
	{ cat "$WORK/ready.runs"; fail "readytime failed"; }
READY=$(awk '{ print $2 }' "$WORK/ready")
READY_MIN=$(awk '{ print $4 }' "$WORK/ready.runs" | sort -n | head -n 1)
READY_MAX=$(awk '{ print $4 }' "$WORK/ready.runs" | sort -n | tail -n 1)

echo "load: wrk -t$THREADS -c$CONNS -d${DURATION}s, POST /v1/events, a new idempotency key per request"
machine_line
awk -v gw="$GW_TICKS" -v n="$OK2XX" -v hz="$CLK_TCK" 'BEGIN {
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
stored_check
PLAIN_RATE=$RATE PLAIN_P50=$P50 PLAIN_P99=$P99 PLAIN_LOAD_ANON=$LOAD_ANON
PLAIN_CPU_US=$(awk -v gw="$GW_TICKS" -v n="$OK2XX" -v hz="$CLK_TCK" 'BEGIN { print gw / hz * 1e6 / n }')

# ---- the same load over TLS, on a new database ----
config tls
start_gateway
URL=$("$CRAB" admin pair.test | jq -er .listen) || fail "pair.test failed"
case $URL in https://*) ;; *) fail "tls: on, but the gateway listens on $URL" ;; esac
TLS_SESSION=$(openssl s_client -connect "127.0.0.1:$PORT" -brief </dev/null 2>&1 |
	awk -F': ' '$1 == "Protocol version" { v = $2 } $1 == "Ciphersuite" { c = $2 }
		$1 == "Signature type" { s = $2 } END { print v ", " c ", " s " certificate" }')
load tls
newconns tls
c0=$(proc_ns "$GW_PID")
t0=$(date +%s%N)
timeout $((HANDSHAKE_S + 60)) openssl s_time -connect "127.0.0.1:$PORT" -new -tls1_3 \
	-www /v1/health -time "$HANDSHAKE_S" >"$WORK/s_time.out" 2>&1 ||
	{ tail -n 3 "$WORK/s_time.out"; fail "openssl s_time failed"; }
t1=$(date +%s%N)
c1=$(proc_ns "$GW_PID")
stop_gateway
STORED_FILE=$(sqlite3 "$DATA/crab.db" "SELECT count(*) FROM inbox")

HS_N=$(awk '$2 == "connections" && $3 == "in" && $6 == "seconds," { print $1 }' "$WORK/s_time.out")
HS_BYTES=$(awk '$2 == "connections" && $3 == "in" && $6 == "seconds," { print $7 }' "$WORK/s_time.out")
[ -n "$HS_N" ] && [ "$HS_N" -gt 0 ] || { tail -n 3 "$WORK/s_time.out"; fail "no figures from openssl s_time"; }

echo "over TLS ($TLS_SESSION; gateway.tls: on), wrk over https, the same load, a new database:"
machine_line
awk -v gw="$GW_TICKS" -v n="$OK2XX" -v hz="$CLK_TCK" -v plain="$PLAIN_CPU_US" 'BEGIN {
	us = gw / hz * 1e6 / n
	printf "gateway CPU per accepted event, TLS: %.1f us (all threads; plain %.1f us, %+.1f us)\n",
		us, plain, us - plain }'
printf '%-34s %10s          (plain %s, %+.0f%%)\n' "accepted events/s, TLS:" "$RATE" "$PLAIN_RATE" \
	"$(awk -v t="$RATE" -v p="$PLAIN_RATE" 'BEGIN { print 100 * (t - p) / p }')"
printf '%-34s %10s ms       (p50 %.2f ms, max %.2f ms; plain p99 %.2f ms, p50 %.2f ms)\n' \
	"p99 latency, TLS:" "$P99_MS" \
	"$(awk -v u="$P50" 'BEGIN { print u / 1000 }')" "$(awk -v u="$PMAX" 'BEGIN { print u / 1000 }')" \
	"$(awk -v u="$PLAIN_P99" 'BEGIN { print u / 1000 }')" "$(awk -v u="$PLAIN_P50" 'BEGIN { print u / 1000 }')"
printf '%-34s %10s MiB      (plain %s MiB; %d TLS connections)\n' "RssAnon under load, TLS (max):" \
	"$(mib "$LOAD_ANON")" "$(mib "$PLAIN_LOAD_ANON")" "$CONNS"
printf '%-34s %10s MiB      (shared library pages included)\n' "VmRSS under load, TLS (max):" \
	"$(mib "$LOAD_RSS")"
printf '%-34s %10s MiB      (VmRSS %s MiB; before the run %s MiB)\n' "RssAnon idle after, TLS:" \
	"$(mib "$IDLE_AFTER_ANON")" "$(mib "$IDLE_AFTER_RSS")" "$(mib "$IDLE_BEFORE_ANON")"
stored_check
echo "new connections, one at a time: $NEWCONNS GET /v1/health, each on a new connection" \
	"(curl, Connection: close, no TLS session resumed)"
printf '%-34s %10s ms       (gateway CPU %s us a connection; %s not a 200)\n' \
	"  plain, connect to answer (p50):" "$(awk -v u="$PLAIN_NC_P50_US" 'BEGIN { printf "%.3f", u / 1000 }')" \
	"$PLAIN_NC_CPU_US" "$PLAIN_NC_BAD"
printf '%-34s %10s ms       (handshake p50 %.3f ms; gateway CPU %s us a connection; %s not a 200)\n' \
	"  TLS, connect to answer (p50):" "$(awk -v u="$NC_P50_US" 'BEGIN { printf "%.3f", u / 1000 }')" \
	"$(awk -v u="$NC_HS_US" 'BEGIN { print u / 1000 }')" "$NC_CPU_US" "$NC_BAD"
awk -v n="$HS_N" -v ns=$((t1 - t0)) -v cpu=$((c1 - c0)) -v b="$HS_BYTES" -v s="$HANDSHAKE_S" 'BEGIN {
	printf "%-34s %10.0f          (gateway CPU %.0f us a connection)\n",
		"TLS handshakes/s, one at a time:", n / (ns / 1e9), cpu / n / 1000
	printf "  (openssl s_time -new -tls1_3 -www /v1/health for %d s: %d new connections, each a full\n", s, n
	printf "  handshake, no session resumed, then one GET read to the close, %d bytes an answer)\n", b }'
exit 0
