#!/usr/bin/env bash
# t/bench/delivery.sh: `make bench`, the delivery figures. The release ./crab on SQLite
# (the built-in echo model: each event posted is one turn), subscribers that are the test
# component (t/helpers/component, release build) on loopback, paired with
# `crab pair subscriber`:
#   - lag, twice, each on a new gateway and store with SUBSCRIBERS subscribers:
#       1. "events": RATE events a second to each subscriber, which takes every event a
#          turn publishes (turn.started, turn.completed, message.outbound): RATE / 3
#          turns a second;
#       2. "turns": RATE turns a second, each subscriber taking message.outbound only
#          (RATE events a second to each again, with three times the turns behind them).
#     Events are posted from 64 connections by ACTORS actors (as many sessions) at the
#     pace for WARM_S seconds first (the sessions are made and the connections to the
#     subscribers opened), then, once those are delivered, for RATE_S seconds, the run
#     measured. The lag of a delivery is the time its subscriber had the whole request
#     (the deliver log's at_ms) minus the time the event was published (its frame's
#     occurred_at, in ms; the same clock): p50, p99 and max per subscriber and in all
#     (the warm-up's p99 apart), deliveries/s, whether every event arrived, the
#     gateway's CPU (each thread) and RssAnon meanwhile;
#   - a dead subscriber: a new gateway and store, one subscriber paired, then stopped;
#     PENDING events posted as fast as they are acknowledged (64 connections, ACTORS
#     actors); once their turns are done and the dispatcher has fanned them out (as many
#     pending deliveries), the gateway's RssAnon and VmRSS (the larger of two readings, 2 s
#     after the fan-out and IDLE_S seconds later) against the same gateway idle before the
#     load, with nothing pending; its CPU over those IDLE_S seconds (the retries); and its
#     RssAnon after a restart on that store.
# Prints, never asserts. RATE (default 5000), RATE_S (default 10), WARM_S (default 1),
# SUBSCRIBERS (default 3), ACTORS (default 1000), PENDING (default 100000), IDLE_S
# (default 10), RUNS (default "events turns": which lag runs).
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
CRAB=$ROOT/crab
HELPERS=$ROOT/build/release/t/helpers
RATE=${RATE:-5000}
RATE_S=${RATE_S:-10}
SUBSCRIBERS=${SUBSCRIBERS:-3}
ACTORS=${ACTORS:-1000}
PENDING=${PENDING:-100000}
IDLE_S=${IDLE_S:-10}
WARM_S=${WARM_S:-1}
RUNS=${RUNS:-events turns}
STALL_S=30
CONNS=64
TURN_TYPES='["turn.started","turn.completed","message.outbound"]'

for tool in jq sqlite3 ss; do
	command -v "$tool" >/dev/null || { echo "bench: '$tool' is needed"; exit 1; }
done
[ -x "$CRAB" ] && [ -x "$HELPERS/postload" ] && [ -x "$HELPERS/component" ] ||
	{ echo "bench: run it as 'make bench'"; exit 1; }

. "$ROOT/t/bench/lib.sh"

# The subscribers are stopped before lib.sh's cleanup removes their directories.
SUB_PIDS=""
stop_subs() {
	local pid
	for pid in $SUB_PIDS; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	SUB_PIDS=""
}
trap 'stop_subs; cleanup' EXIT

# config NAME: a gateway's configuration on its own port and data directory $WORK/NAME;
# sets PORT, URL, DATA and CRAB_ADMIN_SOCKET.
config() {
	DATA=$WORK/$1
	PORT=$(free_port) || fail "no free port"
	URL=http://127.0.0.1:$PORT
	export CRAB_ADMIN_SOCKET=$DATA/admin.sock
	cat >"$WORK/crab.yaml" <<EOF
gateway:
  listen: "127.0.0.1:$PORT"
  data_dir: "$DATA"
store:
  driver: sqlite
  path: crab.db
limits:
  rate_per_second: 0
  max_connections: 4096
log:
  level: warn
EOF
}

# subscriber NAME TYPES: a subscriber component taking the event types TYPES (a JSON
# list) and logging what it is sent to $WORK/NAME/deliver.log, paired with the running
# gateway; sets SUB_PID (and adds it to SUB_PIDS).
subscriber() {
	local dir=$WORK/$1 port="" i
	mkdir -p "$dir"
	"$HELPERS/component" --data-dir "$dir/data" --type subscriber \
		--offers "{\"subscribes\":$2}" \
		--deliver-log "$dir/deliver.log" >"$dir/out" 2>"$dir/log" &
	SUB_PID=$!
	SUB_PIDS="$SUB_PIDS $SUB_PID"
	for i in $(seq 1 200); do
		port=$(awk '/^port /{ print $2 }' "$dir/out")
		[ -n "$port" ] && grep -q '^fingerprint ' "$dir/out" && break
		kill -0 "$SUB_PID" 2>/dev/null || fail "subscriber $1 exited: $(cat "$dir/log")"
		sleep 0.05
	done
	[ -n "$port" ] || fail "subscriber $1 did not start"
	"$CRAB" pair subscriber "https://127.0.0.1:$port" "$1" >"$dir/pair.out" 2>&1 ||
		fail "pairing $1 failed: $(cat "$dir/pair.out")"
}

lease() {
	"$CRAB" admin lease.create '{"tenant_id":"bench","scopes":["produce"],"ttl_s":86400}' |
		jq -er .token || fail "cannot create a lease"
}

# post PREFIX EVENTS [RATE]: postload's summary line into $WORK/post.out.
post() {
	"$HELPERS/postload" -u "$URL" -t "$TOKEN" -c "$CONNS" -n "$2" -a "$ACTORS" -p "$1$$" \
		${3:+-R "$3"} 2>"$WORK/post.out" || fail "postload failed: $(cat "$WORK/post.out")"
	cat "$WORK/post.out" >>"$WORK/postload.log"
}

now_ms() { date +%s%3N; }
db() { sqlite3 "$DATA/crab.db" "$1"; }

# thread_ticks: "NAME TICKS" for each thread name of the gateway (threads of one name
# added up), sorted by name.
thread_ticks() {
	local t comm f
	for t in /proc/"$GW_PID"/task/*; do
		read -r comm <"$t/comm" 2>/dev/null || continue
		read -r -a f <"$t/stat" 2>/dev/null || continue
		echo "$comm $((f[13] + f[14]))"
	done | awk '{ n[$1] += $2 } END { for (k in n) print k, n[k] }' | sort
}

# threads_line BEFORE AFTER MS: each thread name's share of a core between two
# thread_ticks files MS apart, the busiest first.
threads_line() {
	awk -v hz="$CLK_TCK" -v ms="$3" 'NR == FNR { b[$1] = $2; next }
		{ d = $2 - b[$1]; if (d > 0) printf "%s %.0f\n", $1, 100 * d / hz / (ms / 1000) }' \
		"$1" "$2" | sort -k2,2nr | awk '{ printf "%s%s %s%%", (NR > 1 ? ", " : ""), $1, $2 }'
}

# pct FILE Q: the Q-quantile (0..1) of the sorted numbers in FILE; max for 1.
pct() {
	awk -v q="$2" '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		i = int(q * NR); if (i < q * NR) i++; if (i < 1) i = 1; print v[i] }' "$1"
}

# ---- 1. lag: RATE events a second to each of SUBSCRIBERS subscribers ----

# watch_logs WANT: until the deliver logs of SUBS hold WANT lines, or nothing has come for
# STALL_S seconds. What is watched is their size: nothing is asked of the gateway (admin
# status counts each subscriber's pending rows on the store worker). T2 and the CPU
# readings are taken each time they grow: the last time, the end of the run.
watch_logs() {
	local logs="" s size last=-1 still=0
	for s in $SUBS; do logs="$logs $WORK/$s/deliver.log"; done
	while [ "$still" -lt $((STALL_S * 5)) ]; do
		size=$(stat -c %s $logs 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')
		if [ "$size" != "$last" ]; then
			last=$size still=0
			T2=$(now_ms)
			thread_ticks >"$WORK/threads1"
			CPU1_MACHINE=$(machine_ticks)
			CPU1_SUBS=0
			for pid in $SUB_PIDS; do CPU1_SUBS=$((CPU1_SUBS + $(proc_ticks "$pid"))); done
		else
			still=$((still + 1))
			[ "$still" = 3 ] && [ "$(cat $logs </dev/null | wc -l)" -ge "$1" ] && break
		fi
		kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited"
		sleep 0.2
	done
}

# lags FILE: "LAG_MS KEY AT_MS" for each delivery logged in FILE (the lag: at_ms minus the
# frame's occurred_at).
lags() {
	jq -r '(.body | fromjson | .event.occurred_at) as $t |
		[.at_ms - ((($t[0:19] + "Z") | fromdate) * 1000 + ($t[20:23] | tonumber)), .key, .at_ms]
		| @tsv' "$1" 2>/dev/null
}

# lag_run NAME TYPES TURNS: a new gateway, SUBSCRIBERS subscribers taking TYPES (a JSON
# list), TURNS turns a second posted for WARM_S seconds, then for RATE_S seconds.
lag_run() {
	local name=$1 types=$2 turns=$3 per_turn s i n warm events want all_ok=1 rate missing
	per_turn=$(jq length <<<"$types")
	config "$name"
	start_gateway
	SUBS=""
	for i in $(seq 1 "$SUBSCRIBERS"); do
		subscriber "$name-s$i" "$types"
		SUBS="$SUBS $name-s$i"
	done
	TOKEN=$(lease)
	warm=$((turns * WARM_S))
	post "warm-$name-" "$warm" "$turns"
	watch_logs $((warm * per_turn * SUBSCRIBERS))
	for s in $SUBS; do wc -l <"$WORK/$s/deliver.log" >"$WORK/$s.warm"; done
	sleep 1
	IDLE_ANON=$(mem_kb "$GW_PID" RssAnon)
	events=$((turns * RATE_S))

	sampler_start "$name"
	thread_ticks >"$WORK/threads0"
	CPU0_MACHINE=$(machine_ticks)
	CPU0_SUBS=0
	for pid in $SUB_PIDS; do CPU0_SUBS=$((CPU0_SUBS + $(proc_ticks "$pid"))); done
	T0=$(now_ms)
	post "$name-" "$events" "$turns"
	T1=$(now_ms)
	ACK50=$(sed -n 's/.*ack_us p50 \([0-9]*\) p99 \([0-9]*\).*/\1/p' "$WORK/post.out")
	ACK99=$(sed -n 's/.*ack_us p50 \([0-9]*\) p99 \([0-9]*\).*/\2/p' "$WORK/post.out")
	watch_logs $(((warm + events) * per_turn * SUBSCRIBERS))
	sampler_stop "$name"
	"$CRAB" admin status >"$WORK/$name.status.json" || fail "status failed"
	stop_subs
	stop_gateway
	db "SELECT idempotency_key FROM event_outbox WHERE type IN
		(SELECT value FROM json_each('$types'))" | sort -u >"$WORK/$name.want"
	want=$(($(wc -l <"$WORK/$name.want") * SUBSCRIBERS))

	# The warm-up's deliveries are the first lines of each log (all came before the run).
	for s in $SUBS; do
		lags "$WORK/$s/deliver.log" >"$WORK/$s.all"
		head -n "$(cat "$WORK/$s.warm")" "$WORK/$s.all" | cut -f1 >>"$WORK/$name.warm.lag"
		tail -n +"$(($(cat "$WORK/$s.warm") + 1))" "$WORK/$s.all" >"$WORK/$s.lag"
		cut -f1 "$WORK/$s.lag" | sort -n >"$WORK/$s.sorted"
	done
	sort -n "$WORK/$name.warm.lag" -o "$WORK/$name.warm.lag"
	for s in $SUBS; do cat "$WORK/$s.sorted"; done | sort -n >"$WORK/$name.sorted"

	echo "lag, $name: $((events * per_turn)) events ($events turns at $turns/s, $per_turn" \
		"event(s) each: $(jq -r 'join(", ")' <<<"$types")) to each of $SUBSCRIBERS" \
		"subscribers, over $ACTORS sessions from $CONNS connections, after $warm turns" \
		"of warm-up; from the first post to the last delivery" \
		"$(awk -v ms=$((T2 - T0)) 'BEGIN { printf "%.1f", ms / 1000 }') s"
	awk -v hz="$CLK_TCK" -v ms=$((T2 - T0)) -v a="$CPU0_MACHINE" -v b="$CPU1_MACHINE" \
		-v gw="$(awk '{ s += $2 } END { print s }' "$WORK/threads0")" \
		-v gw1="$(awk '{ s += $2 } END { print s }' "$WORK/threads1")" \
		-v subs=$((CPU1_SUBS - CPU0_SUBS)) -v n="$SUBSCRIBERS" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		t = y[2] - x[2]; busy = y[1] - x[1]; s = ms / 1000
		printf "  CPU meanwhile: gateway %.0f%% of a core, the %d subscribers %.0f%%; machine idle %.0f%% (of all CPUs)\n",
			100 * (gw1 - gw) / hz / s, n, 100 * subs / hz / s, 100 * (t - busy) / t }'
	echo "  gateway CPU by thread (% of a core):" \
		"$(threads_line "$WORK/threads0" "$WORK/threads1" $((T2 - T0)))"
	printf '  %-44s %8s          (posted in %.1f s; ack p50 %s us, p99 %s us)\n' \
		"turns posted:" "$events" "$(awk -v ms=$((T1 - T0)) 'BEGIN { print ms / 1000 }')" \
		"$ACK50" "$ACK99"
	for s in $SUBS; do
		n=$(wc -l <"$WORK/$s.sorted")
		cut -f2 "$WORK/$s.all" | sort -u >"$WORK/$s.keys"
		missing=$(comm -23 "$WORK/$name.want" "$WORK/$s.keys" | wc -l)
		[ "$missing" = 0 ] || all_ok=0
		rate=$(awk -F'\t' 'NR == 1 || $3 < a { a = $3 } $3 > z { z = $3 }
			END { if (z > a) printf "%.0f", NR / ((z - a) / 1000); else print "-" }' "$WORK/$s.lag")
		printf '  %-44s %8s ms       (p50 %s, max %s; %s deliveries, %s/s, %s missing, %s again)\n' \
			"delivery lag p99, subscriber ${s#"$name"-}:" "$(pct "$WORK/$s.sorted" 0.99)" \
			"$(pct "$WORK/$s.sorted" 0.5)" "$(pct "$WORK/$s.sorted" 1)" "$n" "$rate" "$missing" \
			"$(($(wc -l <"$WORK/$s.all") - $(wc -l <"$WORK/$s.keys")))"
	done
	P99=$(pct "$WORK/$name.sorted" 0.99)
	printf '  %-44s %8s ms       (target < 10 ms: %s; p50 %s, p90 %s, max %s)\n' \
		"delivery lag p99, all subscribers:" "$P99" \
		"$(verdict "$(awk -v p="$P99" 'BEGIN { print (p != "-" && p < 10) }')")" \
		"$(pct "$WORK/$name.sorted" 0.5)" "$(pct "$WORK/$name.sorted" 0.9)" \
		"$(pct "$WORK/$name.sorted" 1)"
	printf '  %-44s %8s ms       (p50 %s, max %s: new sessions, new connections)\n' \
		"delivery lag p99 of the warm-up:" "$(pct "$WORK/$name.warm.lag" 0.99)" \
		"$(pct "$WORK/$name.warm.lag" 0.5)" "$(pct "$WORK/$name.warm.lag" 1)"
	printf '  %-44s %8s          (%s expected with the warm-up; every one to every subscriber: %s; the gateway counted %s delivered, %s retried)\n' \
		"deliveries/s, all subscribers:" \
		"$(awk -v n="$(wc -l <"$WORK/$name.sorted")" -v ms=$((T2 - T0)) 'BEGIN { printf "%.0f", n / (ms / 1000) }')" \
		"$want" "$([ "$all_ok" = 1 ] && echo yes || echo NO)" \
		"$(jq -r .delivery.delivered "$WORK/$name.status.json")" \
		"$(jq -r .delivery.retried "$WORK/$name.status.json")"
	printf '  %-44s %8s MiB      (VmRSS %s MiB; idle after the warm-up %s MiB)\n' \
		"gateway RssAnon during the run (max):" "$(mib "$MAX_ANON")" "$(mib "$MAX_RSS")" \
		"$(mib "$IDLE_ANON")"
}

echo "crab delivery bench: $("$CRAB" version), SQLite (WAL, acknowledged after fdatasync)," \
	"$(nproc) CPUs, echo model, subscribers: t/helpers/component over pinned TLS on loopback"
for run in $RUNS; do
	case $run in
	events) lag_run events "$TURN_TYPES" $((RATE / 3)) ;;
	turns) lag_run turns '["message.outbound"]' "$RATE" ;;
	*) fail "RUNS: '$run' is neither events nor turns" ;;
	esac
done

# ---- 2. a dead subscriber with PENDING events pending ----
config dead
start_gateway
subscriber dead '["message.outbound"]'
DEAD_PID=$SUB_PID
TOKEN=$(lease)
kill "$DEAD_PID" && wait "$DEAD_PID" 2>/dev/null
SUB_PIDS=""
sleep 2
BEFORE_ANON=$(mem_kb "$GW_PID" RssAnon)
BEFORE_RSS=$(mem_kb "$GW_PID" VmRSS)
sampler_start dead
T0=$(now_ms)
post dead "$PENDING"
T1=$(now_ms)
# Until the turns are done and fanned out: as many pending deliveries as events (the echo
# model: one message.outbound an event) and the subscriber's cursor at the end of the
# outbox; or nothing new for STALL_S seconds. Asked of the store file, not the gateway.
last=-1 still=0
while [ "$still" -lt $((STALL_S * 5)) ]; do
	read -r n at_end < <(db "SELECT (SELECT count(*) FROM deliveries WHERE state = 'pending'),
		(SELECT pos FROM subscriber_cursors) = (SELECT MAX(pos) FROM event_outbox)" | tr '|' ' ')
	[ "${n:-0}" -ge "$PENDING" ] && [ "${at_end:-0}" = 1 ] && break
	if [ "${n:-0}" != "$last" ]; then last=${n:-0} still=0; else still=$((still + 1)); fi
	kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited"
	sleep 0.2
done
T3=$(now_ms)
sleep 2
sampler_stop dead
DEAD_ANON=$(mem_kb "$GW_PID" RssAnon)
DEAD_RSS=$(mem_kb "$GW_PID" VmRSS)
DEAD_PENDING=$(db "SELECT count(*) FROM deliveries WHERE state = 'pending'")
DEAD_OUTBOUND=$(db "SELECT count(*) FROM event_outbox WHERE type = 'message.outbound'")
thread_ticks >"$WORK/dthreads0"
t0=$(now_ms)
sleep "$IDLE_S"
t1=$(now_ms)
thread_ticks >"$WORK/dthreads1"
LATER_ANON=$(mem_kb "$GW_PID" RssAnon)
LATER_RSS=$(mem_kb "$GW_PID" VmRSS)
TRIED=$(db "SELECT count(*) FROM deliveries WHERE state = 'pending' AND attempts > 0")
stop_gateway
start_gateway
sleep 3
RESTART_ANON=$(mem_kb "$GW_PID" RssAnon)
RESTART_RSS=$(mem_kb "$GW_PID" VmRSS)
stop_gateway

# With those pending: the larger of the readings once fanned out and IDLE_S s later.
PEND_ANON=$((DEAD_ANON > LATER_ANON ? DEAD_ANON : LATER_ANON))
PEND_RSS=$((DEAD_RSS > LATER_RSS ? DEAD_RSS : LATER_RSS))
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
echo "dead subscriber: paired, then stopped; $PENDING events from $CONNS connections over" \
	"$ACTORS sessions posted in $(secs $((T1 - T0))) s ($(awk -v n="$PENDING" -v ms=$((T1 - T0)) \
	'BEGIN { printf "%.0f", n / (ms / 1000) }')/s), turns done and fanned out after" \
	"$(secs $((T3 - T0))) s"
printf '%-46s %8s          (message.outbound in the outbox: %s; %s tried at least once)\n' \
	"pending deliveries to it:" "$DEAD_PENDING" "$DEAD_OUTBOUND" "$TRIED"
printf '%-46s %8s MiB      (target < 10 MB (9.5 MiB): %s; %s MiB against %s MiB idle before the load)\n' \
	"RssAnon with those pending, more than before:" "$(mib $((PEND_ANON - BEFORE_ANON)))" \
	"$(verdict $((PEND_ANON - BEFORE_ANON < 9766)))" "$(mib "$PEND_ANON")" "$(mib "$BEFORE_ANON")"
printf '%-46s %8s MiB      (%s MiB against %s MiB before)\n' "VmRSS with those pending, more than before:" \
	"$(mib $((PEND_RSS - BEFORE_RSS)))" "$(mib "$PEND_RSS")" "$(mib "$BEFORE_RSS")"
printf '%-46s %8s MiB      (and %s s later %s MiB; VmRSS %s and %s MiB)\n' \
	"RssAnon 2 s after the fan-out:" "$(mib "$DEAD_ANON")" "$IDLE_S" "$(mib "$LATER_ANON")" \
	"$(mib "$DEAD_RSS")" "$(mib "$LATER_RSS")"
printf '%-46s %8s MiB      (VmRSS %s MiB)\n' "RssAnon, largest during the load:" \
	"$(mib "$MAX_ANON")" "$(mib "$MAX_RSS")"
printf '%-46s %8s MiB      (VmRSS %s MiB)\n' "RssAnon after a restart, those pending:" \
	"$(mib "$RESTART_ANON")" "$(mib "$RESTART_RSS")"
echo "gateway CPU by thread over $IDLE_S s with those pending, retrying (% of a core):" \
	"$(threads_line "$WORK/dthreads0" "$WORK/dthreads1" $((t1 - t0)))"
exit 0
