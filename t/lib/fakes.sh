# t/lib/fakes.sh: the fake upstream servers of t/fakes/ in test scripts. Source it after
# test-lib.sh. A fake started here is in TEST_PIDS, so test-lib's cleanup kills it when the
# script exits, whatever happened; it also exits by itself when the script's shell is gone.
#
#   ensure_openai_client            t/fakes/node_modules (the official `openai` client)
#   start_fake NAME PORT_FILE LOG [ARGS...]  any fake; sets STARTED_PID, STARTED_PORT
#   start_openai_fake [ARGS...]     sets FAKE_URL (.../v1), FAKE_CONTROL, FAKE_PID, FAKE_LOG
#   stop_fake NAME PID              SIGTERM; it must exit 0
#   stop_openai_fake [PID]          the same for the openai fake
#   fake_requests                   prints GET /_fake/requests (a JSON array)
#   fake_script '{"steps":[...]}'   appends steps to the fake's script
#   fake_idle                       the fake has no request in flight
#   header NAME                     a response header of ./headers (curl -D headers)

FAKES_DIR=$TEST_ROOT/t/fakes
FAKE_N=0

# ensure_openai_client: runs `npm ci` in t/fakes once, when node_modules is missing or
# older than package-lock.json (it needs the npm registry then).
ensure_openai_client() {
	local rc
	command -v node >/dev/null || { echo "node is not installed (.ci/install-deps installs nodejs)"; return 1; }
	openai_client_current && return 0
	fakes_npm_ci npm-ci.log openai_client_current
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "cannot install the openai npm client: 'npm ci' in t/fakes failed ($rc);" \
			"the first run needs the npm registry. npm said:"
		tail -n 20 "$TRASH/npm-ci.log" 2>/dev/null
		return 1
	fi
	openai_client_current || { echo "npm ci ran, but t/fakes/node_modules/openai is still missing"; return 1; }
}

# fakes_npm_ci LOG CURRENT...: `npm ci` in t/fakes, logging to $TRASH/LOG, unless the
# command CURRENT... says node_modules is current once the lock is held. Serialized with
# flock, so that two test runs in one checkout do not install at the same time. Returns
# npm's status (0 when nothing was to do).
fakes_npm_ci() {
	local log=$TRASH/$1 lock=$TEST_ROOT/build/.npm-ci.lock
	shift
	command -v npm >/dev/null || { echo "npm is not installed (.ci/install-deps installs npm)"; return 1; }
	mkdir -p "$TEST_ROOT/build" || return 1
	(
		flock -w 600 9 || { echo "timed out waiting for $lock"; exit 1; }
		"$@" && exit 0
		cd "$FAKES_DIR" && timeout 600 npm ci --no-audit --no-fund >"$log" 2>&1
	) 9>"$lock"
}

openai_client_current() {
	local nm=$FAKES_DIR/node_modules
	[ -f "$nm/openai/package.json" ] && [ -f "$nm/.package-lock.json" ] &&
		! [ "$FAKES_DIR/package-lock.json" -nt "$nm/.package-lock.json" ]
}

# start_fake NAME PORT_FILE LOG [ARGS...]: starts t/fakes/NAME-fake.js on an ephemeral
# loopback port (ARGS go to it), logging to LOG, and waits up to 10 s for its port file.
# Sets STARTED_PID (in TEST_PIDS; set even when the fake fails) and STARTED_PORT.
start_fake() {
	local name=$1 port_file=$2 log=$3 i
	shift 3
	STARTED_PID="" STARTED_PORT=""
	command -v node >/dev/null || { echo "node is not installed (.ci/install-deps installs nodejs)"; return 1; }
	rm -f "$port_file"
	node "$FAKES_DIR/$name-fake.js" --port-file "$port_file" --parent-pid $$ "$@" >>"$log" 2>&1 &
	STARTED_PID=$!
	TEST_PIDS="$TEST_PIDS $STARTED_PID"
	for i in $(seq 1 200); do
		if [ -s "$port_file" ]; then
			STARTED_PORT=$(cat "$port_file")
			break
		fi
		kill -0 "$STARTED_PID" 2>/dev/null || { echo "the $name fake exited:"; cat "$log"; return 1; }
		sleep 0.05
	done
	[ -n "$STARTED_PORT" ] || { echo "the $name fake wrote no port in 10 s:"; cat "$log"; return 1; }
}

# start_control_fake NAME [ARGS...]: start_fake NAME with a port file and a log
# (FAKE_LOG) of their own in $TRASH. Exports FAKE_PID (set even when the fake fails) and
# sets FAKE_CONTROL=http://127.0.0.1:PORT (for /_fake/*).
start_control_fake() {
	local name=$1 rc
	shift
	FAKE_N=$((FAKE_N + 1))
	FAKE_LOG=$TRASH/$name-fake.$FAKE_N.log
	start_fake "$name" "$TRASH/$name-fake.$FAKE_N.port" "$FAKE_LOG" "$@"
	rc=$?
	[ -n "$STARTED_PID" ] && export FAKE_PID=$STARTED_PID
	[ "$rc" -eq 0 ] || return 1
	FAKE_CONTROL=http://127.0.0.1:$STARTED_PORT
}

# start_openai_fake [ARGS...]: starts t/fakes/openai-fake.js on an ephemeral loopback port
# (extra ARGS go to it: --api-key KEY, --delay-ms N, --no-record, --max-records N) and waits
# up to 10 s for its port file. Exports FAKE_URL=http://127.0.0.1:PORT/v1 and FAKE_PID;
# sets FAKE_CONTROL (the same without /v1, for /_fake/*) and FAKE_LOG. Each call starts
# another fake; save the variables first to use two.
start_openai_fake() {
	start_control_fake openai "$@" &&
	export FAKE_URL=$FAKE_CONTROL/v1
}

# stop_fake NAME PID: SIGTERM to the NAME fake PID; it must exit 0 in 5 s.
stop_fake() {
	local name=$1 pid=$2 i rc
	kill -TERM "$pid" 2>/dev/null || { echo "the $name fake $pid was not running"; return 1; }
	for i in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && { echo "the $name fake $pid ignored SIGTERM"; kill -9 "$pid"; }
	wait "$pid"
	rc=$?
	TEST_PIDS=$(echo " $TEST_PIDS " | sed "s/ $pid / /")
	[ "$rc" -eq 0 ] || { echo "the $name fake exited with $rc"; return 1; }
}

# stop_openai_fake [PID]: SIGTERM to the fake (default $FAKE_PID); it must exit 0 in 5 s.
stop_openai_fake() {
	stop_fake openai "${1:-$FAKE_PID}"
}

# fake_requests: the fake's request records, a JSON array.
fake_requests() {
	curl -sS --fail-with-body "$FAKE_CONTROL/_fake/requests"
}

# fake_script JSON: appends the steps of JSON ({"steps":[...]}) to the fake's script.
fake_script() {
	curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' \
		--data-binary "$1" "$FAKE_CONTROL/_fake/script" >/dev/null
}

# fake_idle: the fake has no request in flight (for wait_until).
fake_idle() {
	curl -sS "$FAKE_CONTROL/_fake/stats" | jq -e '.inflight == 0' >/dev/null
}

# header NAME: the value of response header NAME in ./headers (the last one given).
header() {
	tr -d '\r' <headers | awk -v n="$1" 'tolower($0) ~ "^" n ":" { sub(/^[^:]*: */, ""); v = $0 } END { print v }'
}
