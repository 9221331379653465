# t/lib/turn-crash-body.sh: the turn crash test, for whichever store TEST_STORE names.
# Sourced by t/t6102-turn-crash.sh (SQLite) and t/t6105-turn-crash-postgres.sh
# (PostgreSQL) after test-lib.sh.
#
# CRASH_TOTAL events over CRASH_SESSIONS sessions, answered by the OpenAI fake through
# the openai adapter, 16 turns at a time. The fake is stopped (SIGSTOP) while the events
# are posted, so that all of them are accepted before turns can end, however slow the
# machine; once it runs again and a few dozen turns have completed, the gateway is killed
# with SIGKILL, with turns running and hundreds queued, and restarted on the same store.
# Then every accepted event has exactly one finished turn, completed, with one reply, in
# its session's order, and no outbox event is there twice.

. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"

export CRASH_KEY=sk-turn-crash-0123456789abcdef
CRASH_TOTAL=${CRASH_TOTAL:-500}
CRASH_SESSIONS=${CRASH_SESSIONS:-60}
CRASH_MAX_RUNNING=16
CRASH_AFTER=60 # turns completed before the kill

# turns_completed: completed turn rows in the store.
turns_completed() {
	store_sql crash "SELECT count(*) FROM turns WHERE status = 'completed'"
}

# outbox_col TYPE COLUMN: COLUMN of every outbox row of TYPE, one a line.
outbox_col() {
	store_sql crash "SELECT $2 FROM event_outbox WHERE type = '$1'"
}

test_expect_success 'the fake (200 ms a request) and a gateway running 16 turns at a time' '
	start_openai_fake --api-key "$CRASH_KEY" --delay-ms 200 &&
	write_gateway_config crash "limits:" "  rate_per_second: 0" \
		"$(openai_yaml CRASH_KEY "timeout_s: 30")" \
		"turns:" "  max_concurrent: $CRASH_MAX_RUNNING" &&
	start_gateway crash &&
	TOKEN=$(make_lease tenant_turn_crash) && test -n "$TOKEN"
'

test_expect_success "$CRASH_TOTAL events over $CRASH_SESSIONS sessions; kill -9 while turns run and wait" '
	kill -STOP $FAKE_PID &&
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c 8 -n $CRASH_TOTAL -a $CRASH_SESSIONS \
		-p tc -o acked 2>postload.err
	rc=$?
	kill -CONT $FAKE_PID &&
	cat postload.err &&
	test $rc -eq 0 && test "$(wc -l <acked)" -eq $CRASH_TOTAL &&
	i=0 &&
	while n=$(turns_completed) && [ "$n" -lt $CRASH_AFTER ] && [ $i -lt 1500 ]; do
		sleep 0.02
		i=$((i + 1))
	done &&
	"$CRAB" admin status | jq -c .turns >before-kill &&
	crash_gateway &&
	echo "at the kill: $(cat before-kill)" &&
	jq -e ".completed >= $CRASH_AFTER and .completed < $CRASH_TOTAL - 100 and .running > 0 and .queued > 0" \
		before-kill >/dev/null
'

test_expect_success 'the kill cut turns: events still pending, turns still running in the store' '
	PENDING=$(inbox_pending crash) &&
	CUT=$(store_sql crash "SELECT count(*) FROM turns WHERE status = '"'"'running'"'"'") &&
	echo "pending events $PENDING, running turns $CUT" &&
	test "$PENDING" -gt 50 && test "$CUT" -gt 0
'

test_expect_success 'the gateway restarts on the same store and finishes every turn' '
	start_gateway crash &&
	wait_no_pending crash 120 &&
	"$CRAB" admin status | jq -c .turns &&
	grep "accepted events read back from the store" "$GW_LOG"
'

test_expect_success 'every accepted event has exactly one turn.completed, none failed' '
	store_sql crash "SELECT id FROM inbox" | sort >events &&
	test "$(wc -l <events)" -eq $CRASH_TOTAL &&
	cut -d" " -f2 acked | sort >acked.ids && diff acked.ids events &&
	outbox_col turn.completed payload | jq -r .data.event_id | sort >completed &&
	uniq -d completed >twice &&
	{ test ! -s twice || { echo "completed twice:"; head twice; false; }; } &&
	diff events completed &&
	test "$(outbox_col turn.failed id | wc -l)" -eq 0
'

test_expect_success 'one reply per event, no idempotency key twice in the whole outbox' '
	test "$(outbox_col message.outbound id | wc -l)" -eq $CRASH_TOTAL &&
	outbox_col message.outbound payload | jq -r .data.text | sort | uniq -c >texts &&
	cat texts && test "$(cat texts | wc -l)" -eq 1 && grep -q " $CRASH_TOTAL echo: load test message$" texts &&
	store_sql crash "SELECT idempotency_key FROM event_outbox" | sort | uniq -d >dup.keys &&
	{ test ! -s dup.keys || { echo "keys twice:"; head dup.keys; false; }; }
'

test_expect_success 'each event has one turn row, completed; seq has no gap or repeat in any session' '
	store_sql crash "SELECT event_id, status FROM turns" | sort >turns &&
	echo "turn rows: $(wc -l <turns), events with a turn: $(cut -d"|" -f1 turns | uniq | wc -l)," \
		"not completed: $(grep -vc "|completed$" turns)" &&
	test "$(wc -l <turns)" -eq $CRASH_TOTAL &&
	test "$(cut -d"|" -f1 turns | uniq | wc -l)" -eq $CRASH_TOTAL &&
	test "$(grep -vc "|completed$" turns)" -eq 0 &&
	store_sql crash "SELECT session_id, count(*), count(DISTINCT seq), min(seq), max(seq)
		FROM event_outbox GROUP BY session_id" >seqs &&
	test "$(wc -l <seqs)" -eq $CRASH_SESSIONS &&
	awk -F"|" "\$2 != \$3 || \$4 != 1 || \$5 != \$2 { print; bad = 1 } END { exit bad }" seqs
'

test_expect_success 'in every session the turns ended in event id order, across the restart' '
	store_sql crash "SELECT session_id, payload FROM event_outbox WHERE type = '"'"'turn.completed'"'"'
		ORDER BY session_id, seq" | sed "s/|/ /" >ends &&
	awk "{ print \$1 }" ends | uniq | wc -l | grep -qx $CRASH_SESSIONS &&
	cut -d" " -f2- ends | jq -r .data.event_id >ends.events &&
	awk "{ print \$1 }" ends | paste -d" " - ends.events >ends.pairs &&
	awk "\$1 == s && \$2 <= e { print \"out of order in \" \$1 \": \" e \" then \" \$2; bad = 1 }
		{ s = \$1; e = \$2 } END { exit bad }" ends.pairs
'

test_expect_success 'the fake answered every turn at least once' '
	n=$(fake_requests | jq length) &&
	echo "model requests: $n for $CRASH_TOTAL turns" &&
	test "$n" -ge $CRASH_TOTAL
'

test_expect_success 'the restarted gateway and the fake stop cleanly' '
	stop_gateway && stop_openai_fake
'
