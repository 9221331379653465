#!/usr/bin/env bash
# t/run.sh: the whole test run behind `make test`. Starts one PostgreSQL server for the
# run (as an unprivileged user, in a temporary directory), runs the C unit tests and then
# every t/tNNNN-*.sh script (each against the store its name or TEST_STORE selects),
# stops what it started, and ends with the line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOGDIR=$ROOT/build/test/logs
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-300}
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"

passed=0
failed=0
failures=""

export CRAB_TEST_PG_DIR
CRAB_TEST_PG_DIR=$(mktemp -d /tmp/crab-pg.XXXXXX)
stop_pg() { t/lib/pg.sh stop "$CRAB_TEST_PG_DIR" >/dev/null 2>&1; rm -rf "$CRAB_TEST_PG_DIR"; }
trap stop_pg EXIT
if ! t/lib/pg.sh start "$CRAB_TEST_PG_DIR" >"$LOGDIR/pg-start.log" 2>&1; then
	echo "cannot start PostgreSQL for the tests:"
	cat "$LOGDIR/pg-start.log"
	failed=$((failed + 1))
fi

# count NAME LOG RC: adds a program's TAP lines; a non-zero exit with no failed line
# (a crash, a sanitizer abort, a timeout) counts as one failure.
count() {
	local name=$1 log=$2 rc=$3 ok bad
	ok=$(grep -c '^ok ' "$log")
	bad=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then
		bad=1
		echo "not ok - $name exited with status $rc" >>"$log"
	fi
	if [ "$ok" -eq 0 ] && [ "$bad" -eq 0 ]; then
		bad=1
		echo "not ok - $name ran no test" >>"$log"
	fi
	passed=$((passed + ok))
	failed=$((failed + bad))
	printf '  %-40s %4d ok' "$name" "$ok"
	if [ "$bad" -gt 0 ]; then
		printf ', %d FAILED\n' "$bad"
		grep -A 20 '^not ok' "$log" | head -n 60 | sed 's/^/      /'
		failures="$failures $name"
	else
		printf '\n'
	fi
}

echo "unit tests:"
for bin in build/test/t/unit/test_*; do
	[ -x "$bin" ] || continue
	name=$(basename "$bin")
	log=$LOGDIR/$name.log
	if [ "$name" = test_store ]; then
		CRAB_TEST_PG_DSN=$(t/lib/pg.sh createdb "$CRAB_TEST_PG_DIR" unit_store 2>>"$log") \
			timeout "$SCRIPT_TIMEOUT" "$bin" >>"$log" 2>&1
	else
		timeout "$SCRIPT_TIMEOUT" "$bin" >"$log" 2>&1
	fi
	count "$name" "$log" $?
done

echo "integration tests:"
for script in t/t[0-9][0-9][0-9][0-9]-*.sh; do
	name=$(basename "$script" .sh)
	log=$LOGDIR/$name.log
	timeout "$SCRIPT_TIMEOUT" bash "$script" >"$log" 2>&1
	count "$name" "$log" $?
done

[ -z "$failures" ] || echo "failed:$failures (logs in $LOGDIR)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
