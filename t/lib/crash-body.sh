# t/lib/crash-body.sh: the crash test, for whichever store TEST_STORE names. Sourced by
# t/t4100-crash.sh (SQLite) and t/t3101-crash-postgres.sh (PostgreSQL) after
# test-lib.sh.
#
# 2,000 events from 8 keep-alive connections; the gateway is killed with SIGKILL once a
# few hundred have been acknowledged, restarted on the same store, and then every event
# that got a 202 must be in the inbox exactly once, under the event id it was answered
# with, and posting it again must answer "duplicate": true with that same id.

. "$TEST_ROOT/t/lib/store.sh"

CRASH_TOTAL=2000
CRASH_CONNS=8
CRASH_AFTER=300 # acknowledgements seen before the kill

test_expect_success 'the gateway starts, rate limits off' '
	write_gateway_config crash "limits:" "  rate_per_second: 0" &&
	start_gateway crash &&
	TOKEN=$(make_lease tenant_crash) && test -n "$TOKEN"
'

test_expect_success "kill -9 after $CRASH_AFTER of $CRASH_TOTAL events were acknowledged" '
	# Its own line: "A && B &" would create the file in the background, late.
	: >"$TRASH/acked"
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c $CRASH_CONNS -n $CRASH_TOTAL \
		-p crash -o "$TRASH/acked" 2>"$TRASH/postload.err" &
	PL_PID=$!
	TEST_PIDS="$TEST_PIDS $PL_PID"
	i=0
	while [ "$(wc -l <"$TRASH/acked")" -lt $CRASH_AFTER ] && [ $i -lt 3000 ] &&
		kill -0 $PL_PID 2>/dev/null; do
		sleep 0.01
		i=$((i + 1))
	done
	crash_gateway
	wait $PL_PID
	rc=$?
	cat "$TRASH/postload.err"
	ACKED=$(wc -l <"$TRASH/acked")
	echo "acknowledged before the kill: $ACKED"
	test $rc -eq 0 &&
	test "$ACKED" -ge $CRASH_AFTER &&
	test "$ACKED" -lt $CRASH_TOTAL &&
	grep -q "connections dropped [1-9]" "$TRASH/postload.err"
'

test_expect_success 'the gateway restarts on the same store' '
	start_gateway crash
'

test_expect_success 'every acknowledged event is in the inbox exactly once, same id' '
	store_sql crash "SELECT idempotency_key, id FROM inbox
		WHERE tenant_id = '"'"'tenant_crash'"'"'" | tr "|" " " | sort >"$TRASH/stored" &&
	sort "$TRASH/acked" >"$TRASH/acked.sorted" &&
	echo "stored: $(wc -l <"$TRASH/stored"), acknowledged: $(wc -l <"$TRASH/acked.sorted")" &&
	comm -23 "$TRASH/acked.sorted" "$TRASH/stored" >"$TRASH/missing" &&
	{ test ! -s "$TRASH/missing" || { echo "acknowledged but not stored:"; head "$TRASH/missing"; false; }; } &&
	cut -d" " -f1 "$TRASH/stored" | uniq -d >"$TRASH/twice" &&
	{ test ! -s "$TRASH/twice" || { echo "stored twice:"; head "$TRASH/twice"; false; }; }
'

test_expect_success 'each stored event has its idempotency key, and no key is orphaned' '
	n=$(store_sql crash "SELECT count(*) FROM inbox i JOIN idempotency_keys k
		ON k.tenant_id = i.tenant_id AND k.key = i.idempotency_key AND k.event_id = i.id") &&
	rows=$(store_sql crash "SELECT count(*) FROM inbox") &&
	keys=$(store_sql crash "SELECT count(*) FROM idempotency_keys") &&
	echo "inbox $rows, keys $keys, matched $n" &&
	test "$n" -eq "$rows" && test "$keys" -eq "$rows"
'

test_expect_success 'posting every acknowledged event again answers its first id' '
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c $CRASH_CONNS -r "$TRASH/acked" \
		2>"$TRASH/replay.err"
	rc=$?
	cat "$TRASH/replay.err"
	test $rc -eq 0 &&
	grep -q "duplicate $(wc -l <"$TRASH/acked")," "$TRASH/replay.err"
'

test_expect_success 'the restarted gateway accepts new events and stops cleanly' '
	post_event "$TOKEN" "$(message after-crash-1)" && expect_status 202 &&
	jq -e ".duplicate == false" "$TRASH/reply" &&
	stop_gateway
'
