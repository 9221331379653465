# t/bench/lib.sh: what the bench scripts share: a temporary WORK directory removed at
# exit (kept when BENCH_KEEP is set) with everything started, fail, a free port, memory and CPU readings, starting and
# stopping the release gateway. Source it after setting ROOT, CRAB and HELPERS.
WORK=$(mktemp -d /tmp/crab-bench.XXXXXX)
GW_PID=""
SAMPLER_PID=""
cleanup() {
	[ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
	[ -n "$GW_PID" ] && kill -9 "$GW_PID" 2>/dev/null
	[ -n "${FAKE_PID:-}" ] && kill "$FAKE_PID" 2>/dev/null
	wait 2>/dev/null
	if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

fail() {
	echo "bench: $*"
	[ -f "$WORK/gateway.log" ] && tail -n 20 "$WORK/gateway.log"
	exit 1
}

# A free loopback port: readytime has to know it before the gateway starts. Below the
# ephemeral range, so that no client socket (readytime polls a closed port thousands of
# times; Linux can connect such a socket to itself) ever holds it when the gateway binds.
free_port() {
	local port i
	for i in $(seq 1 100); do
		port=$((20000 + RANDOM % 12000))
		ss -Htln "sport = :$port" | grep -q . || { echo "$port"; return 0; }
	done
	return 1
}

# mem_kb PID FIELD: a /proc/PID/status field in kB.
mem_kb() {
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}

mib() {
	awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# verdict OK: the tag printed beside a figure.
verdict() {
	if [ "$1" = 1 ]; then echo "ok"; else echo "MISSED"; fi
}

# CPU accounting in clock ticks, to tell what the gateway costs per event and how much
# of the machine other processes took during the run (the figures depend on it).
CLK_TCK=$(getconf CLK_TCK)
machine_ticks() { # "busy total" over all CPUs
	local _cpu u n s i io irq sirq st
	read -r _cpu u n s i io irq sirq st _ </proc/stat
	echo "$((u + n + s + irq + sirq + st)) $((u + n + s + i + io + irq + sirq + st))"
}
proc_ticks() { # utime + stime of PID, every thread
	local f
	read -r -a f <"/proc/$1/stat"
	echo $((f[13] + f[14]))
}
children_ticks() { # user + system time in the output of `times` (run in this shell, not in $())
	awk -v hz="$CLK_TCK" 'NR == 2 {
		split($1, u, "m"); split($2, s, "m")
		printf "%d", ((u[1] * 60 + u[2]) + (s[1] * 60 + s[2])) * hz }' "$1"
}

start_gateway() {
	local i
	"$CRAB" gateway -c "$WORK/crab.yaml" >>"$WORK/gateway.log" 2>&1 &
	GW_PID=$!
	for i in $(seq 1 200); do
		"$CRAB" admin pair.test >/dev/null 2>&1 && return 0
		kill -0 "$GW_PID" 2>/dev/null || fail "the gateway exited"
		sleep 0.05
	done
	fail "the gateway did not become ready"
}

stop_gateway() {
	local i
	kill -TERM "$GW_PID"
	for i in $(seq 1 300); do
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$GW_PID" || fail "the gateway exited with status $?"
	GW_PID=""
}

# The memory sampler: shell builtins only, no fork per sample (read -t on a FIFO nobody
# writes is the sleep), the largest RssAnon and VmRSS seen into $WORK/NAME.mem.
sampler_start() {
	[ -p "$WORK/never" ] || mkfifo "$WORK/never"
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
	) >"$WORK/$1.mem" 2>/dev/null &
	SAMPLER_PID=$!
}
sampler_stop() {
	kill "$SAMPLER_PID" 2>/dev/null
	wait "$SAMPLER_PID" 2>/dev/null
	SAMPLER_PID=""
	MAX_ANON=$(awk 'BEGIN { m = 0 } $1 > m { m = $1 } END { print m }' "$WORK/$1.mem")
	MAX_RSS=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$WORK/$1.mem")
}
