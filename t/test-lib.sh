# t/test-lib.sh: the shell tests' library, after git's t/test-lib.sh. A test script:
#
#   #!/usr/bin/env bash
#   test_description='what this script covers'
#   . "$(dirname "$0")/test-lib.sh"
#   test_expect_success 'what is checked' '
#       some command && other command
#   '
#   test_done
#
# Each check prints one TAP line ("ok N - ..." or "not ok N - ..." followed by its output
# as "#" lines); t/run.sh adds the lines of every script up. Bodies run in this shell, so
# variables they set are seen by later checks. Every process a script starts with the
# helpers below is stopped when the script exits, whatever happens.

set -u
TEST_NAME=$(basename "$0" .sh)
TEST_ROOT=$(cd "$(dirname "$0")/.." && pwd)
CRAB=${CRAB:-$TEST_ROOT/build/test/crab}
HELPERS=${HELPERS:-$TEST_ROOT/build/release/t/helpers}
TRASH=$(mktemp -d "${TMPDIR:-/tmp}/crab-$TEST_NAME.XXXXXX")
TEST_STORE=${TEST_STORE:-sqlite}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

test_count=0
test_failed=0
TEST_PIDS=""

test_cleanup() {
	for pid in $TEST_PIDS; do
		kill -9 "$pid" 2>/dev/null
	done
	wait 2>/dev/null
	[ -n "${KEEP_TRASH:-}" ] || rm -rf "$TRASH"
}
trap test_cleanup EXIT
cd "$TRASH" || exit 1

# A body runs in a function of its own, so that `return 1` in it (in a loop, say) fails
# the check instead of leaving test_expect_success before it has said "not ok".
test_run_body_() {
	eval "$1"
}

test_expect_success() {
	local prereq="" desc body out
	[ $# -lt 3 ] || { prereq=$1; shift; }
	desc=$1 body=$2
	test_count=$((test_count + 1))
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		echo "ok $test_count # skip $desc (missing $prereq)"
		return 0
	fi
	out=$TRASH/.out.$test_count
	if test_run_body_ "$body" >"$out" 2>&1; then
		echo "ok $test_count - $desc"
	else
		test_failed=$((test_failed + 1))
		echo "not ok $test_count - $desc"
		sed -e 's/^/#   /' "$out" | tail -n 40
	fi
}

# Prerequisites, as in git: `test_expect_success PREREQ 'what' 'body'` runs the check only
# when PREREQ holds, and otherwise prints "ok N # skip what (missing PREREQ)", which
# t/run.sh counts as skipped.
#   CLOCK  the binary has the test-only admin op clock.advance: build/test/crab does, the
#          release builds (crab, crab-static) do not. Asked of the running gateway at its
#          first use, and missing only if that answers unknown_op, so a gateway that is
#          not there fails the check rather than skipping it.
test_have_prereq() {
	case $1 in
	CLOCK)
		if [ -z "${PREREQ_CLOCK:-}" ]; then
			if "$CRAB" admin clock.advance '{"ms": 0}' 2>&1 | grep -q unknown_op; then
				PREREQ_CLOCK=no
			else
				PREREQ_CLOCK=yes
			fi
		fi
		[ "$PREREQ_CLOCK" = yes ]
		;;
	*)
		echo "test-lib: unknown prerequisite '$1'" >&2
		exit 1
		;;
	esac
}

test_done() {
	echo "1..$test_count"
	[ "$test_failed" -eq 0 ]
	exit $?
}

# test_must_fail CMD...: CMD exits non-zero and not from a sanitizer or a signal.
test_must_fail() {
	"$@"
	local rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "expected failure from: $*"
		return 1
	elif [ "$rc" -gt 128 ]; then
		echo "died by signal $((rc - 128)): $*"
		return 1
	fi
	return 0
}

# wait_until SECONDS CMD [ARGS...]: runs CMD every 0.1 s until it succeeds (0) or
# SECONDS have passed (1, saying so). CMD runs anew each time, so a condition on a value
# that changes is a function that computes it, never a "$(...)" in the arguments (that
# is computed once, before the wait).
wait_until() {
	local n=$(($1 * 10))
	shift
	for _ in $(seq 1 $n); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "timed out: $*"
	return 1
}

# ---- the gateway ----

# write_gateway_config NAME [YAML...]: $TRASH/NAME/crab.yaml on an ephemeral port, with
# the store of $TEST_STORE (postgres: a fresh database on the run's server). Extra
# arguments are YAML lines appended to the file (whole sections).
write_gateway_config() {
	local name=$1 dir=$TRASH/$1
	shift
	mkdir -p "$dir"
	{
		printf 'gateway:\n  listen: "127.0.0.1:0"\n  data_dir: "%s/data"\n' "$dir"
		if [ "$TEST_STORE" = postgres ]; then
			printf 'store:\n  driver: postgres\n  dsn_file: "%s/pg.dsn"\n' "$dir"
		else
			printf 'store:\n  driver: sqlite\n  path: crab.db\n'
		fi
		for line in "$@"; do
			printf '%s\n' "$line"
		done
	} >"$dir/crab.yaml"
	if [ "$TEST_STORE" = postgres ] && [ ! -f "$dir/pg.dsn" ]; then
		pg_new_database "${TEST_NAME//-/_}_$name" >"$dir/pg.dsn" || return 1
	fi
}

# pg_new_database NAME: a fresh database on the run's PostgreSQL server; prints its DSN.
pg_new_database() {
	[ -n "${CRAB_TEST_PG_DIR:-}" ] || { echo "CRAB_TEST_PG_DIR is not set (run through t/run.sh)"; return 1; }
	"$TEST_ROOT/t/lib/pg.sh" createdb "$CRAB_TEST_PG_DIR" "$(echo "$1" | tr 'A-Z-' 'a-z_')"
}

# start_gateway NAME: starts `crab gateway` with $TRASH/NAME/crab.yaml and waits until
# its admin socket answers. Sets GW_PID, GW_URL, GW_LOG and exports CRAB_ADMIN_SOCKET.
start_gateway() {
	local name=$1 dir=$TRASH/$1 i
	GW_LOG=$dir/gateway.log
	export CRAB_ADMIN_SOCKET=$dir/data/admin.sock
	"$CRAB" gateway -c "$dir/crab.yaml" >>"$GW_LOG" 2>&1 &
	GW_PID=$!
	TEST_PIDS="$TEST_PIDS $GW_PID"
	for i in $(seq 1 200); do
		if GW_URL=$("$CRAB" admin pair.test 2>/dev/null | jq -r .listen) && [ -n "$GW_URL" ]; then
			return 0
		fi
		kill -0 "$GW_PID" 2>/dev/null || { echo "gateway exited:"; cat "$GW_LOG"; return 1; }
		sleep 0.05
	done
	echo "gateway did not become ready:"
	cat "$GW_LOG"
	return 1
}

# sanitizer_clean LOG: no AddressSanitizer, LeakSanitizer or UBSan report in LOG.
sanitizer_clean() {
	if grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$1"; then
		echo "sanitizer report in $1"
		return 1
	fi
}

# stop_gateway: SIGTERM, then it must exit 0 within 15 s with a clean sanitizer log.
stop_gateway() {
	local rc i
	kill -TERM "$GW_PID" 2>/dev/null || { echo "gateway was not running"; return 1; }
	for i in $(seq 1 300); do
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.05
	done
	wait "$GW_PID"
	rc=$?
	[ "$rc" -eq 0 ] || { echo "gateway exited with $rc"; tail -n 30 "$GW_LOG"; return 1; }
	sanitizer_clean "$GW_LOG"
}

# crash_gateway: kill -9, no shutdown path at all.
crash_gateway() {
	kill -9 "$GW_PID" 2>/dev/null
	wait "$GW_PID" 2>/dev/null
	return 0
}

# make_lease TENANT [JSON-ARGS]: creates a produce lease; prints its token. Extra JSON
# fields are merged into the lease.create arguments.
make_lease() {
	local args
	args=$(jq -cn --arg t "$1" --argjson extra "${2:-{\}}" \
		'{tenant_id: $t, scopes: ["produce"], ttl_s: 600} + $extra') &&
	"$CRAB" admin lease.create "$args" | jq -er .token
}

# post_event TOKEN BODY [CURL-ARGS...]: POST /v1/events; the body goes to $TRASH/reply,
# the status to $TRASH/status and stdout.
post_event() {
	local token=$1 body=$2
	shift 2
	curl -sS -o "$TRASH/reply" -w '%{http_code}' -X POST "$GW_URL/v1/events" \
		-H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
		--data-binary "$body" "$@" | tee "$TRASH/status"
	echo
}

# message JSON for channel.message.received with the given message id (and optional text).
message() {
	jq -cn --arg id "$1" --arg text "${2:-hello}" \
		'{type: "channel.message.received", text: $text,
		  source: {platform: "telegram", channel_id: "-100123", actor_id: "42", message_id: $id}}'
}

# expect_status CODE [ERROR-CODE]: the last post_event answered CODE (and that error code).
expect_status() {
	local got
	got=$(cat "$TRASH/status")
	[ "$got" = "$1" ] || { echo "status $got, want $1: $(cat "$TRASH/reply")"; return 1; }
	if [ $# -ge 2 ]; then
		jq -e --arg c "$2" '.error.code == $c' "$TRASH/reply" >/dev/null ||
			{ echo "error body: $(cat "$TRASH/reply"), want code $2"; return 1; }
	fi
}
