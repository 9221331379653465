#!/usr/bin/env bash
test_description='turns through the openai adapter: one session strictly in order, many sessions at once'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"

export T6101_KEY=sk-t6101-order-0123456789abcdef
ONE_TOTAL=200 # messages to one session
ONE_CONNS=8
MANY=50       # sessions with one message each
MANY_DELAY_MS=300

# outbox_of SESSION TYPE JQ: JQ of each outbox frame of TYPE in SESSION, in seq order.
outbox_of() {
	store_sql gw "SELECT payload FROM event_outbox WHERE session_id = '$1' AND type = '$2'
		ORDER BY seq" | jq -r "$3"
}

# turns_of SESSION STATUS: how many turns of SESSION have STATUS.
turns_of() {
	store_sql gw "SELECT count(*) FROM turns WHERE session_id = '$1' AND status = '$2'"
}

# outbound_elsewhere SESSION: the message.outbound frames of every other session.
outbound_elsewhere() {
	store_sql gw "SELECT payload FROM event_outbox WHERE type = 'message.outbound'
		AND session_id != '$1'"
}

test_expect_success 'the fake (10 ms a request) and a gateway on it' '
	start_openai_fake --api-key "$T6101_KEY" --delay-ms 10 &&
	write_gateway_config gw "limits:" "  rate_per_second: 0" \
		"$(openai_yaml T6101_KEY "timeout_s: 30")" &&
	start_gateway gw &&
	TOKEN=$(make_lease t6101) && test -n "$TOKEN"
'

test_expect_success "$ONE_TOTAL messages of one actor from $ONE_CONNS connections at once: all accepted, one session" '
	for c in $(seq 1 $ONE_CONNS); do
		: >one.in.$c && : >one.out.$c &&
		for i in $(seq $c $ONE_CONNS $ONE_TOTAL); do
			envelope 42 "one-$i" "message $i from connection $c" >>one.in.$c
		done
	done &&
	test "$(cat one.in.* | wc -l)" -eq $ONE_TOTAL &&
	pids="" &&
	for c in $(seq 1 $ONE_CONNS); do
		post_lines "$TOKEN" one.in.$c one.out.$c &
		pids="$pids $!"
	done &&
	rc=0 &&
	for p in $pids; do wait $p || rc=1; done &&
	test $rc -eq 0 &&
	for c in $(seq 1 $ONE_CONNS); do acks one.in.$c one.out.$c; done >one.acks &&
	test "$(wc -l <one.acks)" -eq $ONE_TOTAL &&
	jq -se "all(.[]; .status == \"202\" and .duplicate == false)" one.acks >/dev/null ||
		{ echo "not all accepted:"; jq -c "select(.status != \"202\")" one.acks | head; false; } &&
	jq -rs "map(.session_id) | unique | .[]" one.acks >one.sessions &&
	cat one.sessions && test "$(wc -l <one.sessions)" -eq 1 &&
	SES=$(cat one.sessions) &&
	jq -rs "sort_by(.event_id) | .[].text" one.acks >one.expected
'

test_expect_success 'every turn ends' '
	wait_no_pending gw 90 &&
	"$CRAB" admin status | jq -c .turns
'

test_expect_success 'the fake saw the messages in acceptance (event id) order' '
	fake_texts >one.seen &&
	echo "requests: $(wc -l <one.seen)" &&
	diff one.expected one.seen >one.diff ||
		{ echo "order differs (want < > seen):"; head -n 20 one.diff; false; }
'

test_expect_success 'and strictly one at a time: no request began before the previous one ended' '
	fake_requests >one.records &&
	jq -e "length == $ONE_TOTAL" one.records >/dev/null &&
	jq -c "sort_by(.seq) | [range(1; length) as \$i | {i: \$i, gap_ms: (.[\$i].received_at - .[\$i - 1].finished_at)}]
		| {min_gap_ms: (map(.gap_ms) | min), overlaps: map(select(.gap_ms < 0))}
		| .first_overlaps = .overlaps[:5] | .overlaps |= length" one.records >one.gaps &&
	cat one.gaps &&
	jq -e ".overlaps == 0" one.gaps >/dev/null &&
	jq -e "all(.[]; .inflight_at_start == 0 and .finished_at != null and .status == 200)" one.records >/dev/null
'

test_expect_success 'the replies of that session come out in the same order, each once' '
	outbox_of "$SES" message.outbound .data.text >one.outbound &&
	sed "s/^/echo: /" one.expected >one.want &&
	diff one.want one.outbound >one.odiff ||
		{ echo "outbound differs (want < > got):"; head -n 20 one.odiff; false; } &&
	test "$(outbox_of "$SES" turn.completed .turn_id | sort -u | wc -l)" -eq $ONE_TOTAL &&
	test "$(outbox_of "$SES" turn.failed .turn_id | wc -l)" -eq 0 &&
	test "$(turns_of "$SES" completed)" -eq $ONE_TOTAL
'

test_expect_success "$MANY sessions at once, $MANY_DELAY_MS ms a model call: they overlap, far faster than one by one" '
	fake_clear &&
	: >many.in.all &&
	for i in $(seq 1 $MANY); do
		envelope "p$i" "many-$i" "[fake:{\"delay_ms\":$MANY_DELAY_MS}] parallel $i" >>many.in.all
	done &&
	test "$(wc -l <many.in.all)" -eq $MANY &&
	split -n l/10 -d many.in.all many.in. &&
	start=$(now_ms) &&
	pids="" &&
	for f in many.in.0*; do
		: >"${f/in/out}" &&
		post_lines "$TOKEN" "$f" "${f/in/out}" &
		pids="$pids $!"
	done &&
	rc=0 &&
	for p in $pids; do wait $p || rc=1; done &&
	test $rc -eq 0 &&
	wait_no_pending gw 60 &&
	elapsed=$(($(now_ms) - start)) &&
	for f in many.in.0*; do acks "$f" "${f/in/out}"; done >many.acks &&
	test "$(jq -s "map(select(.status == \"202\")) | length" many.acks)" -eq $MANY &&
	test "$(jq -rs "map(.session_id) | unique | length" many.acks)" -eq $MANY &&
	fake_requests >many.records &&
	inflight=$(jq "map(.inflight_at_start) | max + 1" many.records) &&
	summary="$MANY sessions done in $elapsed ms; the fake had $(jq length many.records) requests, up to $inflight at once; one by one would take $((MANY * MANY_DELAY_MS)) ms" &&
	echo "$summary" &&
	{ test "$(jq length many.records)" -eq $MANY && test "$inflight" -ge 10 ||
		{ jq -c "sort_by(.seq) | .[] | {seq, received_at, finished_at, inflight_at_start}" many.records | head -n 20; false; }; } &&
	test "$elapsed" -lt $((MANY * MANY_DELAY_MS / 3))
'

test_expect_success 'each of them answered its own message' '
	outbound_elsewhere "$SES" | jq -r .data.text | sort >many.outbound &&
	for i in $(seq 1 $MANY); do echo "echo: parallel $i"; done | sort >many.want &&
	diff many.want many.outbound
'

test_expect_success 'the gateway and the fake stop cleanly' '
	stop_gateway && stop_openai_fake
'

test_done
