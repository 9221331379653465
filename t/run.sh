#!/usr/bin/env bash
# t/run.sh: the whole test run behind `make test`. Starts one PostgreSQL server for the
# run (as an unprivileged user, in a temporary directory), runs the C unit tests and then
# every t/tNNNN-*.sh script (each against the store its name or TEST_STORE selects),
# stops what it started, and ends with the line "N passed, N failed" (", N skipped"
# follows when a check was skipped for a missing prerequisite).
#
#   t/run.sh                     everything, on build/test/crab (what `make test` runs)
#   t/run.sh --integration-only  the shell tests only, on $CRAB (`make test-static`)
set -u
integration_only=0
case "${1:-}" in
--integration-only) integration_only=1 ;;
"") ;;
*) echo "usage: t/run.sh [--integration-only]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$(pwd)
LOGDIR=$ROOT/build/test/logs
[ "$integration_only" -eq 0 ] || LOGDIR=$ROOT/build/test/logs-integration
SCRIPT_TIMEOUT=${SCRIPT_TIMEOUT:-300}
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"

passed=0
failed=0
skipped=0
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
# (a crash, a sanitizer abort, a timeout) counts as one failure. "ok N # skip ..." lines
# count as skipped, not passed.
count() {
	local name=$1 log=$2 rc=$3 ok bad skip
	skip=$(grep -c '^ok [0-9]* # skip' "$log")
	ok=$(($(grep -c '^ok ' "$log") - skip))
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
	skipped=$((skipped + skip))
	printf '  %-40s %4d ok' "$name" "$ok"
	[ "$skip" -eq 0 ] || printf ', %d skipped' "$skip"
	if [ "$bad" -gt 0 ]; then
		printf ', %d FAILED\n' "$bad"
		grep -A 20 '^not ok' "$log" | head -n 60 | sed 's/^/      /'
		failures="$failures $name"
	else
		printf '\n'
	fi
}

if [ "$integration_only" -eq 0 ]; then
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
fi

echo "integration tests${CRAB:+ on $CRAB}:"
for script in t/t[0-9][0-9][0-9][0-9]-*.sh; do
	name=$(basename "$script" .sh)
	log=$LOGDIR/$name.log
	timeout "$SCRIPT_TIMEOUT" bash "$script" >"$log" 2>&1
	count "$name" "$log" $?
done

[ -z "$failures" ] || echo "failed:$failures (logs in $LOGDIR)"
if [ "$skipped" -gt 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
