#!/usr/bin/env bash
test_description='kill -9 the gateway while it delivers 5,000 events to 3 subscribers: after the restart every event reaches every subscriber'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/peers.sh"

TOTAL=${CRASH_DELIVERIES:-5000}
SUBS="s1 s2 s3"

delivered() { # delivered NAME: distinct keys NAME has been sent
	jq -r .key "$TRASH/$1/deliver.log" 2>/dev/null | sort -u
}

# Conditions to wait for (computed anew at each try).
lines_ge() { [ "$(wc -l <"$1")" -ge "$2" ]; }
outbound_are() {
	[ "$(store_sql gw "SELECT count(*) FROM event_outbox WHERE type = 'message.outbound'")" = "$1" ]
}
all_delivered() { [ -z "$(delivered "$1" | comm -23 "$TRASH/want" -)" ]; }

# Each subscriber takes 50 ms an answer (32 in flight: about 600 a second), so the crash
# comes with most of the deliveries still to go. No rate limit: a release build posts
# faster than the lease's default 1,000 a second.
test_expect_success 'a gateway and three subscribers of message.outbound' '
	write_gateway_config gw "limits:" "  rate_per_second: 0" && start_gateway gw &&
	for s in $SUBS; do
		mkdir -p $s &&
		start_component $s --type subscriber --offers "{\"subscribes\":[\"message.outbound\"]}" \
			--deliver-log "$TRASH/$s/deliver.log" --deliver-delay-ms 50 &&
		"$CRAB" pair subscriber "$(eval echo \$${s}_URL)" $s >/dev/null || return 1
	done &&
	TOKEN=$(make_lease family)
'

test_expect_success "$TOTAL events accepted, then kill -9 while they are being delivered" '
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c 8 -n $TOTAL -a 100 -p crash -o acked 2>err &&
	test "$(wc -l <acked)" = $TOTAL &&
	wait_until 120 lines_ge s1/deliver.log $((TOTAL / 5)) &&
	crash_gateway &&
	for s in $SUBS; do echo "$s had $(delivered $s | wc -l) at the crash"; done &&
	test "$(delivered s3 | wc -l)" -lt $TOTAL
'

test_expect_success 'after the restart every event reaches every subscriber' '
	start_gateway gw &&
	wait_until 240 outbound_are $TOTAL &&
	store_sql gw "SELECT idempotency_key FROM event_outbox WHERE type = '"'"'message.outbound'"'"'" | sort -u >want &&
	test "$(wc -l <want)" = $TOTAL &&
	for s in $SUBS; do
		wait_until 240 all_delivered $s ||
			{ echo "$s is missing $(delivered $s | comm -23 want - | wc -l)"; return 1; }
	done &&
	for s in $SUBS; do echo "$s: $(jq -r .key $s/deliver.log | wc -l) deliveries for $TOTAL events"; done &&
	test "$(store_sql gw "SELECT count(*) FROM deliveries WHERE state = '"'"'pending'"'"'")" = 0
'

test_expect_success 'everything stops cleanly' '
	stop_gateway && for s in $SUBS; do stop_component $s || return 1; done
'

test_done
