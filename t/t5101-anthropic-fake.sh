#!/usr/bin/env bash
test_description='t/fakes/anthropic-fake.js: checked by the official @anthropic-ai/sdk npm client and by curl'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/anthropic-turns.sh"

export FAKE_KEY=sk-ant-api03-fake-t5101-0123456789
export FAKE_BEARER=sk-ant-oat01-fake-t5101-token-abcdef

# msg TEXT [STREAM [CURL-ARGS...]]: POSTs a message with one user turn TEXT (STREAM
# true|false, default false) with the key and the version. The body goes to ./reply, the
# headers to ./headers, the status to ./status; returns curl's exit code.
msg() {
	local text=$1 stream=${2:-false}
	shift 2 2>/dev/null || shift $#
	jq -cn --arg t "$text" --argjson s "$stream" \
		'{model: "claude-haiku-4-5", max_tokens: 200, stream: $s, messages: [{role: "user", content: $t}]}' >req.json &&
	post @req.json "$@"
}

# post BODY [CURL-ARGS...]: POSTs BODY (curl's --data-binary) with the key and the version
# (CURL-ARGS may add or override headers); same files as msg.
post() {
	local body=$1
	shift
	curl -sS -N -o reply -D headers -w '%{http_code}' -H "x-api-key: $FAKE_KEY" \
		-H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' "$@" \
		--data-binary "$body" "$ANT_URL/v1/messages" >status
}

# post_bare BODY [CURL-ARGS...]: POSTs BODY with only the headers given.
post_bare() {
	local body=$1
	shift
	curl -sS -o reply -D headers -w '%{http_code}' "$@" --data-binary "$body" \
		"$ANT_URL/v1/messages" >status
}

# want_status CODE [ERROR-TYPE [MESSAGE-REGEX]]: the last answer's status and error body
# ({"type":"error","error":{"type","message"},"request_id"}).
want_status() {
	local got
	got=$(cat status)
	[ "$got" = "$1" ] || { echo "status $got, want $1: $(head -c 500 reply)"; return 1; }
	[ $# -lt 2 ] || jq -e --arg t "$2" '.type == "error" and .error.type == $t and
		(.error.message | length > 0) and (.request_id | startswith("req_"))' reply >/dev/null ||
		{ echo "error body $(cat reply), want type $2"; return 1; }
	[ $# -lt 3 ] || jq -e --arg m "$3" '.error.message | test($m)' reply >/dev/null ||
		{ echo "error body $(cat reply), want a message matching $3"; return 1; }
}

# api_headers: ./headers has the headers every answer carries.
api_headers() {
	local h
	for h in anthropic-organization-id anthropic-ratelimit-requests-limit \
		anthropic-ratelimit-requests-remaining anthropic-ratelimit-requests-reset \
		anthropic-ratelimit-tokens-limit anthropic-ratelimit-input-tokens-remaining \
		anthropic-ratelimit-output-tokens-reset; do
		[ -n "$(header "$h")" ] || { echo "no $h in:"; cat headers; return 1; }
	done
	header request-id | grep -q '^req_' &&
	header anthropic-ratelimit-requests-reset | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$'
}

# events: the SSE events of ./reply as JSON lines {event, data}; each must be an event:
# line, a data: line and a blank line, in that order.
events() {
	awk '
		/^event: / { if (ev != "") { bad = 1 } ev = substr($0, 8); next }
		/^data: / { if (ev == "" || data != "") { bad = 1 } data = substr($0, 7); next }
		/^$/ { if (ev == "" || data == "") { bad = 1 } print "{\"event\":\"" ev "\",\"data\":" data "}"; ev = ""; data = ""; next }
		{ bad = 1 }
		END { if (bad || ev != "" || data != "") { print "BAD FRAMING" > "/dev/stderr"; exit 1 } }
	' reply
}

# check_client CHECK: one check of check-anthropic-client.mjs against the fake.
check_client() {
	FAKE_URL=$ANT_URL node "$FAKES_DIR/check-anthropic-client.mjs" "$1"
}

test_expect_success 'the official @anthropic-ai/sdk is installed in t/fakes, at the pinned version' '
	ensure_anthropic_client &&
	test "$(jq -r ".dependencies[\"@anthropic-ai/sdk\"]" "$FAKES_DIR/package.json")" = \
		"$(node -p "require(\"$FAKES_DIR/node_modules/@anthropic-ai/sdk/package.json\").version")"
'

test_expect_success 'the fake starts, writes its port file and answers' '
	start_anthropic_fake --api-key "$FAKE_KEY" --bearer "$FAKE_BEARER" &&
	echo "$ANT_URL" | grep -Eq "^http://127\.0\.0\.1:[0-9]+$" &&
	curl -sS --fail "$FAKE_CONTROL/_fake/stats" | jq -e ".requests == 0 and .inflight == 0"
'

test_expect_success 'sdk: a plain message has the echo text, end_turn, usage and the headers' '
	check_client message
'

test_expect_success 'sdk: a stream through messages.stream() adds up to the text; raw events in order' '
	check_client stream
'

test_expect_success 'sdk: tool_use blocks streamed as input_json_delta are assembled; tool_result round trip' '
	check_client tool_use
'

test_expect_success 'sdk: 429 with maxRetries 0 raises RateLimitError; with 1 it waits retry-after' '
	check_client error_429
'

test_expect_success 'sdk: 529 and 500 raise InternalServerError (overloaded_error, api_error)' '
	check_client error_5xx
'

test_expect_success 'sdk: a wrong key raises AuthenticationError; an authToken goes as Bearer' '
	check_client auth
'

test_expect_success 'sdk: an error event in the middle of a stream raises APIError after the text' '
	check_client mid_stream_error
'

test_expect_success 'sdk: what the API refuses is refused (no max_tokens, a system role, a version)' '
	check_client invalid
'

test_expect_success 'sdk: the fake records the body and the headers' '
	check_client records
'

test_expect_success 'curl: 200, 400, 401 and 404 answers carry request-id and the rate-limit headers' '
	msg "hi" && want_status 200 && api_headers &&
	jq -e ".type == \"message\" and .content == [{type: \"text\", text: \"echo: hi\"}] and
		.stop_reason == \"end_turn\" and .stop_sequence == null and .usage.input_tokens > 0" reply &&
	header content-type | grep -q "^application/json" &&
	post "{}" && want_status 400 invalid_request_error "model: Field required" && api_headers &&
	post_bare "{}" -H "anthropic-version: 2023-06-01" && want_status 401 authentication_error "x-api-key header is required" &&
	api_headers &&
	post_bare "{}" -H "x-api-key: sk-nope" -H "anthropic-version: 2023-06-01" &&
	want_status 401 authentication_error "invalid x-api-key" &&
	curl -sS -o reply -D headers -w "%{http_code}" "$ANT_URL/v1/nothing" >status &&
	want_status 404 not_found_error "/v1/nothing" && api_headers
'

test_expect_success 'curl: anthropic-version is required and must be 2023-06-01' '
	post_bare "{}" -H "x-api-key: $FAKE_KEY" && want_status 400 invalid_request_error "anthropic-version: header is required" &&
	post_bare "{}" -H "x-api-key: $FAKE_KEY" -H "anthropic-version: 2024-01-01" &&
	want_status 400 invalid_request_error "2024-01-01.*not a valid version"
'

test_expect_success 'curl: Authorization: Bearer with the --bearer token, and only that one' '
	post_bare "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"tok\"}]}" \
		-H "Authorization: Bearer $FAKE_BEARER" -H "anthropic-version: 2023-06-01" &&
	want_status 200 && jq -e ".content[0].text == \"echo: tok\"" reply &&
	post_bare "{}" -H "Authorization: Bearer $FAKE_KEY" -H "anthropic-version: 2023-06-01" &&
	want_status 401 authentication_error "Invalid bearer token" &&
	! grep -F -- "$FAKE_KEY" reply
'

test_expect_success 'curl: the body is checked as the API does: 400 invalid_request_error naming the field' '
	post "{\"model\": " && want_status 400 invalid_request_error "parsing the body" &&
	post "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" &&
	want_status 400 invalid_request_error "max_tokens: Field required" &&
	post "{\"model\":\"m\",\"max_tokens\":0,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" &&
	want_status 400 invalid_request_error "max_tokens: Input should be greater" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[]}" &&
	want_status 400 invalid_request_error "at least one message" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}" &&
	want_status 400 invalid_request_error "messages.0.role" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"\"}]}]}" &&
	want_status 400 invalid_request_error "text content blocks must be non-empty" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}" &&
	want_status 400 invalid_request_error "non-empty content" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_x\",\"content\":\"r\"}]}]}" &&
	want_status 400 invalid_request_error "unexpected .tool_use_id." &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"t\",\"input\":{}}]},{\"role\":\"user\",\"content\":\"no result\"}]}" &&
	want_status 400 invalid_request_error "ids were found without .tool_result. blocks immediately after: toolu_a" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"t\",\"parameters\":{\"type\":\"object\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" &&
	want_status 400 invalid_request_error "input_schema: Field required" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"tools\":[{\"name\":\"a.b\",\"input_schema\":{\"type\":\"object\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" &&
	want_status 400 invalid_request_error "tools.0.name" &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"stream_options\":{},\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" &&
	want_status 400 invalid_request_error "stream_options: Extra inputs"
'

test_expect_success 'curl: consecutive user turns are combined, as the API does; tool results pair up' '
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"one\"},{\"role\":\"user\",\"content\":\"two\"}]}" &&
	want_status 200 && jq -e ".content[0].text == \"echo: one\ntwo\"" reply &&
	post "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"q\"},
		{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_a\",\"name\":\"t\",\"input\":{}},{\"type\":\"tool_use\",\"id\":\"toolu_b\",\"name\":\"t\",\"input\":{}}]},
		{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_a\",\"content\":\"A\"}]},
		{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_b\",\"content\":[{\"type\":\"text\",\"text\":\"B\"}],\"is_error\":true}]}]}" &&
	want_status 200 && jq -e ".content[0].text == \"echo: A\nB\"" reply
'

test_expect_success 'curl: a stream: every event an event: line and a data: line of that type, in the documented order' '
	msg "one two three" true && want_status 200 &&
	header content-type | grep -q "^text/event-stream" && api_headers &&
	events >ev.json && jq -c .event ev.json | tr "\n" " " &&
	jq -se "all(.[]; .event == .data.type)" ev.json &&
	jq -se "[.[].event] == [\"message_start\", \"content_block_start\", \"ping\"] +
		[range(4) | \"content_block_delta\"] + [\"content_block_stop\", \"message_delta\", \"message_stop\"]" ev.json &&
	jq -se ".[0].data.message | .role == \"assistant\" and .content == [] and .stop_reason == null and
		.usage.input_tokens > 0 and (.id | startswith(\"msg_\"))" ev.json &&
	jq -se "[.[] | select(.event == \"content_block_delta\") | .data.delta.text] | add == \"echo: one two three\"" ev.json &&
	jq -se ".[-2].data | .delta.stop_reason == \"end_turn\" and .usage.output_tokens > 0" ev.json
'

test_expect_success 'curl: a streamed tool_use: input {} then input_json_delta pieces ("" first) that parse' '
	msg "x [fake:{\"tool_use\":[{\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}]}]" true &&
	want_status 200 && events >ev.json &&
	jq -se "map(select(.event == \"content_block_start\")) | .[0].data.content_block ==
		{type: \"tool_use\", id: \"toolu_1\", name: \"get_weather\", input: {}}" ev.json &&
	jq -se "[.[] | select(.event == \"content_block_delta\") | .data.delta] |
		.[0] == {type: \"input_json_delta\", partial_json: \"\"} and length >= 3 and
		([.[].partial_json] | add | fromjson) == {city: \"Paris\"}" ev.json &&
	jq -se ".[-2].data.delta.stop_reason == \"tool_use\"" ev.json
'

test_expect_success 'curl: steps stop_reason and stop_sequence' '
	msg "x [fake:{\"text\":\"cut\",\"stop_reason\":\"max_tokens\"}]" && want_status 200 &&
	jq -e ".stop_reason == \"max_tokens\" and .content[0].text == \"cut\"" reply &&
	msg "x [fake:{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\"}]" true && want_status 200 &&
	events | jq -se ".[-2].data.delta == {stop_reason: \"stop_sequence\", stop_sequence: \"END\"}"
'

test_expect_success 'curl: truncate_after_events N sends N events and cuts the connection (no message_stop)' '
	test_must_fail msg "a b c d e [fake:{\"truncate_after_events\":5}]" true &&
	want_status 200 && cat reply &&
	test "$(grep -c "^event: " reply)" -eq 5 && ! grep -q message_stop reply &&
	test "$(grep "^event: " reply | tail -n 1)" = "event: content_block_delta"
'

test_expect_success 'curl: mid_stream_error sends an event: error frame after the first text' '
	msg "a b c d [fake:{\"mid_stream_error\":true}]" true && want_status 200 &&
	events >ev.json && jq -c . ev.json &&
	jq -se "[.[].event] == [\"message_start\", \"content_block_start\", \"ping\", \"content_block_delta\", \"error\"]" ev.json &&
	jq -se ".[-1].data == {type: \"error\", error: {type: \"overloaded_error\", message: \"Overloaded\"}}" ev.json &&
	msg "a [fake:{\"mid_stream_error\":true,\"type\":\"api_error\"}]" true &&
	events | jq -se ".[-1].data.error.type == \"api_error\""
'

test_expect_success 'curl: status steps answer the documented error bodies; 429 has retry-after' '
	msg "x [fake:{\"status\":429}]" && want_status 429 rate_limit_error "rate limit" &&
	test "$(header retry-after)" = 1 && test "$(header anthropic-ratelimit-requests-remaining)" = 0 &&
	msg "x [fake:{\"status\":429,\"retry_after\":\"7\"}]" && test "$(header retry-after)" = 7 &&
	msg "x [fake:{\"status\":529}]" && want_status 529 overloaded_error "^Overloaded$" &&
	test -z "$(header retry-after)" &&
	msg "x [fake:{\"status\":500}]" && want_status 500 api_error &&
	msg "x [fake:{\"status\":401}]" && want_status 401 authentication_error &&
	msg "x [fake:{\"status\":402}]" && want_status 402 billing_error &&
	msg "x [fake:{\"status\":404}]" && want_status 404 not_found_error &&
	msg "x [fake:{\"status\":504}]" && want_status 504 timeout_error &&
	msg "x [fake:{\"status\":400,\"message\":\"prompt is too long\"}]" &&
	want_status 400 invalid_request_error "^prompt is too long$" &&
	jq -e ".request_id == \"$(header request-id)\"" reply
'

test_expect_success 'curl: scripted steps are used in order, the marker first; DELETE clears' '
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null &&
	fake_script "{\"steps\":[{\"text\":\"first\"},{\"status\":529,\"retry_after_ms\":\"250\"}]}" &&
	curl -sS "$FAKE_CONTROL/_fake/script" | jq -e ".steps | length == 2" &&
	fake_script "{\"steps\":[{\"text\":\"third\"}]}" &&
	msg "x [fake:{\"text\":\"inline\"}]" && jq -e ".content[0].text == \"inline\"" reply &&
	msg "x" && jq -e ".content[0].text == \"first\"" reply &&
	msg "x" && want_status 529 overloaded_error && test "$(header retry-after-ms)" = 250 &&
	msg "x" && jq -e ".content[0].text == \"third\"" reply &&
	msg "x" && jq -e ".content[0].text == \"echo: x\"" reply &&
	fake_script "{\"steps\":[{\"text\":\"dropped\"}]}" &&
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null &&
	msg "y" && jq -e ".content[0].text == \"echo: y\"" reply &&
	curl -sS -o reply -w "%{http_code}" -X POST --data-binary "{\"steps\":3}" \
		"$FAKE_CONTROL/_fake/script" >status && want_status 400
'

test_expect_success 'curl: a request that fails validation takes no step from the script' '
	fake_script "{\"steps\":[{\"text\":\"kept\"}]}" &&
	post "{\"model\":\"m\",\"messages\":[]}" && want_status 400 &&
	msg "x" && jq -e ".content[0].text == \"kept\"" reply
'

test_expect_success 'curl: [fake:{"delay_ms":300}] delays the answer; hang never answers' '
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/requests" >/dev/null &&
	msg "slow [fake:{\"delay_ms\":300}]" false -w "%{http_code} %{time_total}" && cat status &&
	awk "{ exit !(\$1 == 200 && \$2 >= 0.3 && \$2 < 3) }" status &&
	jq -e ".content[0].text == \"echo: slow\"" reply &&
	test_must_fail msg "x [fake:{\"hang\":true}]" false --max-time 0.5 &&
	wait_until 2 fake_idle &&
	fake_requests >records.json &&
	jq -e ".[0] | .step == {delay_ms: 300} and .finished_at - .received_at >= 300" records.json &&
	jq -e ".[1] | .step == {hang: true} and .status == null and .aborted == true" records.json
'

test_expect_success 'curl: a client leaving a slow stream (event_delay_ms) does not hurt the fake' '
	test_must_fail msg "a b c d e f g h [fake:{\"event_delay_ms\":100}]" true --max-time 0.35 &&
	test "$(grep -c "^event: " reply)" -ge 2 && ! grep -q message_stop reply &&
	sleep 0.3 && kill -0 "$FAKE_PID" &&
	msg "after" true && want_status 200 && tail -n 3 reply | grep -q "^event: message_stop"
'

test_expect_success 'curl: count_tokens and the models list' '
	curl -sS -o reply -w "%{http_code}" -H "x-api-key: $FAKE_KEY" -H "anthropic-version: 2023-06-01" \
		--data-binary "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"count me\"}]}" \
		"$ANT_URL/v1/messages/count_tokens" >status && want_status 200 &&
	jq -e ".input_tokens > 0" reply &&
	curl -sS -o reply -w "%{http_code}" -H "x-api-key: $FAKE_KEY" -H "anthropic-version: 2023-06-01" \
		"$ANT_URL/v1/models" >status && want_status 200 &&
	jq -e "(.data | length > 0) and all(.data[]; .type == \"model\") and .has_more == false" reply
'

test_expect_success '--no-record keeps no records but counts; the fake exits 0 on SIGTERM' '
	main_pid=$FAKE_PID main_control=$FAKE_CONTROL main_url=$ANT_URL &&
	start_anthropic_fake --no-record --api-key k &&
	curl -sS -o /dev/null -H "x-api-key: k" -H "anthropic-version: 2023-06-01" \
		--data-binary "{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" "$ANT_URL/v1/messages" &&
	fake_requests | jq -e ". == []" &&
	curl -sS "$FAKE_CONTROL/_fake/stats" | jq -e ".requests == 1" &&
	stop_anthropic_fake &&
	FAKE_PID=$main_pid FAKE_CONTROL=$main_control ANT_URL=$main_url &&
	stop_anthropic_fake && ! kill -0 "$FAKE_PID" 2>/dev/null
'

test_done
