#!/usr/bin/env bash
test_description='retention: idempotency keys kept 7 days, then pruned (on the test clock)'
. "$(dirname "$0")/test-lib.sh"

DAY_MS=86400000

# advance_days N: moves the gateway's clock N days forward.
advance_days() {
	"$CRAB" admin clock.advance "{\"ms\": $(($1 * DAY_MS))}" >/dev/null
}

# rows TABLE: the status op's row count for TABLE.
rows() {
	"$CRAB" admin status '{"rows":true}' | jq -er ".store.rows.$1"
}

# A lease that outlives the clock jumps (30 days, the longest allowed).
long_lease() {
	make_lease family '{"ttl_s": 2592000}'
}

test_expect_success 'the gateway starts; a message is accepted' '
	write_gateway_config gw &&
	start_gateway gw &&
	TOKEN=$(long_lease) &&
	post_event "$TOKEN" "$(message old)" && expect_status 202 &&
	jq -e ".duplicate == false" reply && EVT_OLD=$(jq -r .event_id reply)
'

test_expect_success CLOCK 'six days later it is still a duplicate and retention prunes nothing' '
	advance_days 6 &&
	"$CRAB" admin retention.run >run.json && cat run.json &&
	jq -e ".pruned_idempotency_keys == 0" run.json &&
	post_event "$TOKEN" "$(message old "again")" && expect_status 202 &&
	jq -e --arg e "$EVT_OLD" ".duplicate == true and .event_id == \$e" reply
'

test_expect_success 'a second message on day six' '
	post_event "$TOKEN" "$(message young)" && expect_status 202 &&
	jq -e ".duplicate == false" reply && EVT_YOUNG=$(jq -r .event_id reply) &&
	KEYS=$(rows idempotency_keys) && INBOX=$(rows inbox) &&
	test "$KEYS" -eq 2 && test "$INBOX" -eq 2
'

test_expect_success CLOCK 'eight days after the first, retention prunes its key only' '
	advance_days 2 &&
	"$CRAB" admin retention.run >run.json && cat run.json &&
	jq -e ".pruned_idempotency_keys == 1" run.json &&
	test "$(rows idempotency_keys)" -eq $((KEYS - 1)) &&
	test "$(rows inbox)" -eq "$INBOX"
'

test_expect_success CLOCK 'the pruned message is accepted as new; the younger one is still a duplicate' '
	post_event "$TOKEN" "$(message old)" && expect_status 202 &&
	jq -e --arg e "$EVT_OLD" ".duplicate == false and .event_id != \$e" reply &&
	post_event "$TOKEN" "$(message young)" && expect_status 202 &&
	jq -e --arg e "$EVT_YOUNG" ".duplicate == true and .event_id == \$e" reply
'

test_expect_success 'a second run right after prunes nothing more' '
	"$CRAB" admin retention.run | jq -e ".pruned_idempotency_keys == 0" &&
	stop_gateway
'

test_expect_success CLOCK 'the background job prunes on its own (retention interval_s 1)' '
	write_gateway_config bg "retention:" "  interval_s: 1" &&
	start_gateway bg &&
	TOKEN=$(long_lease) &&
	post_event "$TOKEN" "$(message bg)" && expect_status 202 &&
	advance_days 6 && sleep 1.5 &&
	test "$(rows idempotency_keys)" -eq 1 &&
	advance_days 2 &&
	for i in $(seq 1 50); do
		[ "$(rows idempotency_keys)" -eq 0 ] && break
		sleep 0.1
	done &&
	test "$(rows idempotency_keys)" -eq 0 &&
	grep -q "retention: pruned 1 idempotency keys" "$GW_LOG" &&
	post_event "$TOKEN" "$(message bg)" && expect_status 202 &&
	jq -e ".duplicate == false" reply &&
	stop_gateway
'

test_done
