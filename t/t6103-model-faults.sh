#!/usr/bin/env bash
test_description='model faults through the openai adapter: retries, failed turns that do not stick a session, timeouts, the key kept secret'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"

export T6103_KEY=sk-t6103-secret-0123456789abcdef
MODEL_TIMEOUT_S=3
N=0

# say TEXT: posts TEXT as actor 42 (always the same session) and waits for its turn. Sets
# EVENT, SESSION and ELAPSED_MS (post to outcome); the turns.wait answer goes to ./wait.
say() {
	local start
	N=$((N + 1))
	start=$(now_ms)
	post_event "$TOKEN" "$(envelope 42 "m$N" "$1")" >/dev/null && expect_status 202 &&
	EVENT=$(jq -er .event_id "$TRASH/reply") && SESSION=$(jq -er .session_id "$TRASH/reply") &&
	"$CRAB" admin turns.wait "{\"event_id\":\"$EVENT\",\"timeout_ms\":20000}" >wait ||
		{ echo "no outcome:"; cat wait; return 1; }
	ELAPSED_MS=$(($(now_ms) - start))
	echo "$1: $(jq -c . wait) in $ELAPSED_MS ms"
}

# event_outbox: the outbox frames of $EVENT's turn, one a line, to ./ev.outbox; then
# `frames TYPE` counts those of TYPE.
event_outbox() {
	store_sql gw "SELECT payload FROM event_outbox WHERE session_id = '$SESSION'" |
		jq -c --arg e "$EVENT" --arg t "$(jq -r .turn_id wait)" \
			'select(.data.event_id == $e or (.type == "message.outbound" and .turn_id == $t))' >ev.outbox
}
frames() {
	jq -s --arg t "$1" 'map(select(.type == $t)) | length' ev.outbox
}

# completed TEXT: the turn of $EVENT completed with TEXT, stored and sent out once.
completed() {
	jq -e --arg t "$1" '.status == "completed" and .text == $t' wait >/dev/null ||
		{ echo "want completed with '$1'"; return 1; }
	event_outbox &&
	test "$(frames turn.completed) $(frames turn.failed) $(frames message.outbound)" = "1 0 1" &&
	jq -e --arg t "$1" 'select(.type == "message.outbound") | .data.text == $t' ev.outbox >/dev/null
}

# failed CODE: the turn of $EVENT failed with CODE: in the answer, in one turn.failed, in
# the turns table; nothing went out.
failed() {
	jq -e --arg c "$1" '.status == "failed" and .error_code == $c' wait >/dev/null ||
		{ echo "want failed with $1"; return 1; }
	event_outbox &&
	test "$(frames turn.completed) $(frames turn.failed) $(frames message.outbound)" = "0 1 0" &&
	jq -e --arg c "$1" 'select(.type == "turn.failed") | .data.error.code == $c' ev.outbox >/dev/null &&
	test "$(store_sql gw "SELECT status FROM turns WHERE event_id = '$EVENT'")" = failed
}

# requests_for TEXT: the fake's records of requests whose last user message is TEXT, as a
# JSON array, oldest first.
requests_for() {
	fake_requests | jq -c --arg t "$1" 'sort_by(.seq) | map(select(
		([.body.messages[] | select(.role == "user")] | last | .content) == $t))'
}

healthy() {
	test "$(curl -sS -o /dev/null -w '%{http_code}' "$GW_URL/v1/health")" = 200
}

test_expect_success 'the fake (with a key) and a gateway on it: max_retries 2, turns time out after 3 s' '
	start_openai_fake --api-key "$T6103_KEY" &&
	write_gateway_config gw "$(openai_yaml T6103_KEY "timeout_s: 30" "max_retries: 2")" \
		"turns:" "  model_timeout_s: $MODEL_TIMEOUT_S" &&
	start_gateway gw &&
	TOKEN=$(make_lease t6103) && test -n "$TOKEN"
'

test_expect_success 'a plain turn completes; the key reached the fake as a Bearer token' '
	say "hello there" && completed "echo: hello there" &&
	requests_for "hello there" >r.json &&
	jq -e --arg k "Bearer $T6103_KEY" "length == 1 and .[0].headers.authorization == \$k" r.json >/dev/null
'

test_expect_success '429 with Retry-After: 1, then success: completed, two requests a second apart' '
	fake_script "{\"steps\":[{\"status\":429,\"retry_after\":\"1\"}]}" &&
	say "rate limited once" && completed "echo: rate limited once" &&
	requests_for "rate limited once" >r.json &&
	jq -c "map({seq, status, received_at, finished_at})" r.json &&
	jq -e "length == 2 and .[0].status == 429 and .[1].status == 200 and
		.[1].received_at - .[0].finished_at >= 950" r.json >/dev/null
'

test_expect_success '500 three times with max_retries 2: turn.failed provider_error after three requests' '
	say "[fake:{\"status\":500}] always broken" && failed provider_error &&
	requests_for "[fake:{\"status\":500}] always broken" >r.json &&
	jq -e "length == 3 and all(.[]; .status == 500)" r.json >/dev/null &&
	healthy
'

test_expect_success 'the session is not stuck: its next message completes, in the same session' '
	S=$SESSION &&
	say "after the failure" && completed "echo: after the failure" &&
	test "$SESSION" = "$S"
'

test_expect_success 'the stream cut after the answer began: turn.failed stream_cut, not retried' '
	say "[fake:{\"truncate_after_chunks\":3}] cut me off here please" && failed stream_cut &&
	test "$(requests_for "[fake:{\"truncate_after_chunks\":3}] cut me off here please" | jq length)" -eq 1 &&
	healthy
'

test_expect_success 'an event stream that is not JSON: turn.failed bad_response' '
	say "[fake:{\"garbage\":true}] garbage please" && failed bad_response &&
	test "$(requests_for "[fake:{\"garbage\":true}] garbage please" | jq length)" -eq 1 &&
	healthy
'

test_expect_success "a model that never answers: turn.failed timeout after $MODEL_TIMEOUT_S s, the request dropped" '
	say "[fake:{\"hang\":true}] hang forever" && failed timeout &&
	test "$ELAPSED_MS" -ge $((MODEL_TIMEOUT_S * 1000 - 100)) &&
	test "$ELAPSED_MS" -lt $((MODEL_TIMEOUT_S * 1000 + 4000)) &&
	requests_for "[fake:{\"hang\":true}] hang forever" >r.json &&
	jq -e "length == 1 and .[0].aborted == true and .[0].finished_at != null" r.json >/dev/null &&
	healthy
'

test_expect_success 'and the next message of that session completes' '
	S=$SESSION &&
	say "after the timeout" && completed "echo: after the timeout" &&
	test "$SESSION" = "$S"
'

test_expect_success 'a provider error that repeats the key: the stored error has it masked' '
	fake_script "{\"steps\":[{\"status\":400,\"message\":\"Invalid request: you sent $T6103_KEY\"}]}" &&
	say "echo my key back" && failed bad_request &&
	jq -e ".error_message | contains(\"you sent\")" wait >/dev/null &&
	! grep -F -- "$T6103_KEY" wait ev.outbox
'

test_expect_success 'the key is nowhere in the gateway log, the turns or the outbox' '
	test "$(store_sql gw "SELECT count(*) FROM turns")" -eq 9 &&
	store_sql gw "SELECT * FROM turns" >turns.dump &&
	store_sql gw "SELECT * FROM event_outbox" >outbox.dump &&
	grep -q "always broken" turns.dump && grep -q "after the timeout" outbox.dump &&
	! grep -F -- "$T6103_KEY" "$GW_LOG" turns.dump outbox.dump &&
	! grep -F -- "${T6103_KEY#sk-}" "$GW_LOG" turns.dump outbox.dump
'

test_expect_success 'the gateway stayed up throughout and stops cleanly' '
	healthy &&
	jq -e ".turns.completed == 4 and .turns.failed == 5" <<<"$("$CRAB" admin status)" >/dev/null &&
	stop_gateway && stop_openai_fake
'

test_done
