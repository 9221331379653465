#!/usr/bin/env bash
test_description='push delivery to paired subscribers (PROTOCOLS.md §4): order per session, retries with growing delays on the test clock, the same key and body on every attempt, dead letters and replay, a slow subscriber delaying no other'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/peers.sh"

SUBSCRIBES='{"subscribes":["turn.completed","message.outbound"]}'

# keys NAME: the idempotency keys component NAME was sent, one per attempt.
keys() {
	jq -r .key "$TRASH/$1/deliver.log" 2>/dev/null
}

# has_keys NAME FILE: every key of FILE reached NAME.
has_keys() {
	keys "$1" | sort -u >"$TRASH/$1.got" &&
	test -z "$(comm -23 "$2" "$TRASH/$1.got")"
}

# outbox_keys: the keys of what a subscriber of SUBSCRIBES must get, sorted.
outbox_keys() {
	store_sql gw "SELECT idempotency_key FROM event_outbox
		WHERE type IN ('turn.completed', 'message.outbound')" | sort -u
}

# in_order NAME: per session, the first delivery of each seq comes in seq order.
in_order() {
	jq -r '.body | fromjson | .event | "\(.session_id) \(.seq)"' "$TRASH/$1/deliver.log" |
		awk '!seen[$0]++ { if ($2 <= last[$1]) { print "out of order: " $0; bad = 1 } last[$1] = $2 }
		     END { exit bad }'
}

now_ms() {
	date -d "$("$CRAB" admin clock.advance '{"ms": 0}' | jq -r .now)" +%s%3N
}

# Conditions to wait for (computed anew at each try).
tried_pending_ge() { # tried_pending_ge N: N pending deliveries have had an attempt
	[ "$(store_sql gw "SELECT count(*) FROM deliveries WHERE attempts >= 1 AND state = 'pending'")" -ge "$1" ]
}
attempts_ge() { # attempts_ge DELIVERY N
	[ "$(store_sql gw "SELECT attempts FROM deliveries WHERE id = '$1'")" -ge "$2" ]
}
dead_letters_are() { # dead_letters_are SUBSCRIBER N
	[ "$("$CRAB" dlq list --subscriber "$1" --json | jq ".dead_letters | length")" = "$2" ]
}
lines_matching_are() { # lines_matching_are PATTERN FILE N
	[ "$(grep -c "$1" "$2")" = "$3" ]
}
outbound_after_are() { # outbound_after_are POS N: message.outbound rows after POS
	[ "$(store_sql gw "SELECT count(*) FROM event_outbox WHERE pos > $1 AND type = 'message.outbound'")" = "$2" ]
}

sub() { # sub NAME ARGS...: a subscriber component logging what it is sent
	start_component "$1" --type subscriber --offers "$SUBSCRIBES" \
		--deliver-log "$TRASH/$1/deliver.log" "${@:2}"
}

# memory_path PEER_ID true|false: whether the dispatcher holds the subscriber's new
# deliveries in memory (no rows unless an attempt fails), as admin status says.
memory_path() {
	"$CRAB" admin status |
		jq -e --arg s "$1" ".delivery.subscribers[] | select(.peer_id == \$s) | .memory_path == $2" >/dev/null
}

# rows_pending N: how many delivery rows are pending.
rows_pending() {
	test "$(store_sql gw "SELECT COUNT(*) FROM deliveries WHERE state = 'pending'")" = "$1"
}

test_expect_success 'a gateway and a subscriber, paired' '
	write_gateway_config gw "subscribers:" "  - component: filtered" \
		"    types: [message.outbound, peer.paired]" &&
	start_gateway gw &&
	mkdir -p s1 && sub s1 &&
	"$CRAB" pair subscriber "$s1_URL" s1 >/dev/null && S1=$(peer_id s1 subscriber) &&
	TOKEN=$(make_lease family)
'

test_expect_success 'every event it subscribed to arrives once, with its key, in seq order per session' '
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c 4 -n 200 -a 5 -p order 2>err &&
	wait_until 20 outbound_after_are 0 200 &&
	outbox_keys >want && test "$(wc -l <want)" = 400 &&
	wait_until 20 has_keys s1 want &&
	test "$(keys s1 | wc -l)" = 400 && in_order s1 &&
	jq -e --arg s "$S1" "[.[]] | length > 0" <<<"$("$CRAB" admin status | jq .delivery.subscribers)" &&
	"$CRAB" admin status | jq -e ".delivery.delivered == 400 and .delivery.dead_lettered == 0" &&
	memory_path "$S1" true && rows_pending 0
'

test_expect_success 'the body is the outbox frame itself' '
	key=$(keys s1 | head -1) &&
	jq -r --arg k "$key" "select(.key == \$k) | .body | fromjson | .event" s1/deliver.log | jq -cS . >sent &&
	store_sql gw "SELECT payload FROM event_outbox WHERE idempotency_key = '"'"'$key'"'"'" | jq -cS . >stored &&
	cmp sent stored
'

test_expect_success CLOCK 'a subscriber down: retries with growing delays on the test clock' '
	stop_component s1 &&
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c 2 -n 20 -a 3 -p down 2>err &&
	wait_until 20 outbound_after_are 0 220 &&
	outbox_keys >want2 &&
	wait_until 10 tried_pending_ge 3 &&
	DLV=$(store_sql gw "SELECT id FROM deliveries WHERE state = '"'"'pending'"'"' AND attempts >= 1 ORDER BY created_at LIMIT 1") &&
	: >waits &&
	for n in 1 2 3 4 5; do
		wait_until 5 attempts_ge "$DLV" $n || return 1
		next=$(store_sql gw "SELECT next_at FROM deliveries WHERE id = '"'"'$DLV'"'"'") &&
		wait=$((next - $(now_ms))) && echo "$n $wait" >>waits &&
		"$CRAB" admin clock.advance "{\"ms\": $((wait > 0 ? wait + 1 : 1))}" >/dev/null || return 1
	done &&
	"$CRAB" status | jq -e --arg s "$S1" ".delivery.subscribers[] | select(.peer_id == \$s) | .pending >= 20" &&
	memory_path "$S1" false && ! rows_pending 0 &&
	cat waits &&
	awk "{ b = 1000 * 2 ^ (\$1 - 1); if (\$2 > b || \$2 < b / 2 - 1500) { print \"attempt \" \$1 \": waited \" \$2 \" ms for a backoff of \" b; bad = 1 } }
	     END { exit bad }" waits
'

test_expect_success CLOCK 'back up: everything arrives, first deliveries in seq order, every attempt with the same key and body' '
	sub s1 && "$CRAB" admin clock.advance "{\"ms\": 60000}" >/dev/null &&
	wait_until 20 has_keys s1 want2 &&
	in_order s1 &&
	jq -r "[.key, (.body | fromjson | .event | tojson)] | @tsv" s1/deliver.log | sort -u |
		awk -F"\t" "{ n[\$1]++ } END { for (k in n) if (n[k] > 1) { print \"two bodies for \" k; bad = 1 } exit bad }" &&
	"$CRAB" admin status | jq -e ".delivery.retried >= 5" &&
	wait_until 10 rows_pending 0 && wait_until 10 memory_path "$S1" true
'

test_expect_success 'a permanent 4xx is a dead letter at once; crab dlq replay delivers it' '
	mkdir -p s2 && sub s2 --deliver-status 400 &&
	"$CRAB" pair subscriber "$s2_URL" s2 >/dev/null && S2=$(peer_id s2 subscriber) &&
	"$CRAB" event send --tenant family "for the dead letter" >/dev/null &&
	wait_until 10 dead_letters_are "$S2" 2 &&
	"$CRAB" dlq list --subscriber "$S2" --json >dl &&
	jq -e ".dead_letters | all(.attempts == 1 and .last_error == \"HTTP 400\")" dl &&
	"$CRAB" dlq list | grep -q "HTTP 400" &&
	stop_component s2 && sub s2 &&
	"$CRAB" dlq replay "$(jq -r ".dead_letters[0].dead_letter_id" dl)" | grep -q "replayed 1" &&
	wait_until 10 grep -q replayed s2/deliver.log &&
	grep replayed s2/deliver.log | jq -e ".body | fromjson | .replayed == true" &&
	"$CRAB" dlq replay --all --subscriber "$S2" | grep -q "replayed 1" &&
	wait_until 10 lines_matching_are replayed s2/deliver.log 2 &&
	test_must_fail "$CRAB" dlq replay dlq_nosuch 2>err && grep -q not_found err
'

test_expect_success 'a slow subscriber (2 s an answer) does not slow a fast one' '
	mkdir -p slow fast && sub slow --deliver-delay-ms 2000 && sub fast &&
	"$CRAB" pair subscriber "$slow_URL" slow >/dev/null &&
	"$CRAB" pair subscriber "$fast_URL" fast >/dev/null &&
	from=$(store_sql gw "SELECT MAX(pos) FROM event_outbox") &&
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c 2 -n 100 -a 10 -p slowfast 2>err &&
	wait_until 20 outbound_after_are "$from" 100 &&
	store_sql gw "SELECT idempotency_key FROM event_outbox WHERE pos > $from AND type IN ('"'"'turn.completed'"'"', '"'"'message.outbound'"'"')" | sort -u >all &&
	test "$(wc -l <all)" = 200 &&
	start=$(date +%s%3N) && wait_until 10 has_keys fast all && took=$(($(date +%s%3N) - start)) &&
	echo "fast got everything after $took ms; slow has $(keys slow | wc -l)" &&
	test "$(keys slow | sort -u | wc -l)" -lt "$(wc -l <all)"
'

test_expect_success 'the YAML narrows what a subscriber is sent to types it also offered' '
	mkdir -p filtered && sub filtered &&
	"$CRAB" pair subscriber "$filtered_URL" filtered >/dev/null &&
	"$CRAB" event send --tenant family "filtered" >/dev/null &&
	wait_until 10 lines_matching_are message.outbound filtered/deliver.log 1 &&
	"$CRAB" event send --tenant family "filtered again" >/dev/null &&
	wait_until 10 lines_matching_are message.outbound filtered/deliver.log 2 &&
	jq -s -e "length == 2 and all(.body | fromjson | .event.type == \"message.outbound\")" \
		filtered/deliver.log
'

test_expect_success 'everything stops cleanly' '
	stop_gateway && stop_component s1 && stop_component s2 && stop_component slow &&
	stop_component fast && stop_component filtered
'

test_done
