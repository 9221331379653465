#!/usr/bin/env bash
test_description='a backlog larger than turns.queue_max waits in the store and runs in order, once each'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"

export T6006_KEY=sk-t6006-backlog-0123456789abcdef
TOTAL=240   # events over SESSIONS sessions, far more than QUEUE_MAX
SESSIONS=4
QUEUE_MAX=16

test_expect_success 'a gateway with a queue of 16 events and 2 turn slots, on a slow fake' '
	start_openai_fake --api-key "$T6006_KEY" --delay-ms 20 &&
	write_gateway_config gw "limits:" "  rate_per_second: 0" \
		"turns:" "  max_concurrent: 2" "  queue_max: $QUEUE_MAX" \
		"$(openai_yaml T6006_KEY "timeout_s: 30")" &&
	start_gateway gw &&
	TOKEN=$(make_lease t6006) && test -n "$TOKEN"
'

test_expect_success "$TOTAL events of $SESSIONS actors, posted faster than the turns run" '
	for a in $(seq 1 $SESSIONS); do
		: >in.$a && : >out.$a &&
		for i in $(seq 1 $((TOTAL / SESSIONS))); do
			envelope "actor-$a" "m-$a-$i" "actor $a message $i" >>in.$a
		done
	done &&
	pids="" &&
	for a in $(seq 1 $SESSIONS); do
		post_lines "$TOKEN" in.$a out.$a &
		pids="$pids $!"
	done &&
	rc=0 &&
	for p in $pids; do wait $p || rc=1; done &&
	test $rc -eq 0 &&
	for a in $(seq 1 $SESSIONS); do acks in.$a out.$a; done >acks &&
	jq -se "length == $TOTAL and all(.[]; .status == \"202\")" acks >/dev/null
'

test_expect_success 'the queue in memory never held more than queue_max; the rest waited in the store' '
	"$CRAB" admin status | jq -c .turns >status.json && cat status.json &&
	jq -e ".queued <= $QUEUE_MAX" status.json >/dev/null &&
	test "$(inbox_pending gw)" -gt $((QUEUE_MAX * 2)) &&
	jq -e ".backlog_in_store == true" status.json >/dev/null
'

test_expect_success 'every event gets exactly one completed turn, read back from the store' '
	wait_no_pending gw 120 &&
	grep "accepted events read back from the store" "$GW_LOG" &&
	test "$(store_sql gw "SELECT count(*) FROM turns WHERE status = '\''completed'\''")" -eq $TOTAL &&
	test "$(store_sql gw "SELECT count(DISTINCT event_id) FROM turns")" -eq $TOTAL &&
	"$CRAB" admin status | jq -e ".turns.backlog_in_store == false and .turns.queued == 0" >/dev/null
'

test_expect_success 'each session ran its events in acceptance order' '
	for a in $(seq 1 $SESSIONS); do
		jq -r "select(.text | startswith(\"actor $a \")) | .event_id" acks | sort >ids.$a &&
		sid=$(jq -r "select(.text | startswith(\"actor $a \")) | .session_id" acks | sort -u) &&
		test "$(echo "$sid" | wc -l)" -eq 1 &&
		store_sql gw "SELECT event_id FROM turns WHERE session_id = '\''$sid'\'' ORDER BY id" >run.$a &&
		diff ids.$a run.$a || return 1
	done
'

test_expect_success 'the fake saw each message once' '
	fake_texts | sort >seen && sort -u seen >seen.unique &&
	test "$(wc -l <seen)" -eq $TOTAL && diff seen seen.unique
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway gw
'

test_done
