#!/usr/bin/env bash
test_description='t/fakes/openai-fake.js: checked by the official openai npm client and by curl'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/fakes.sh"

export FAKE_KEY=sk-fake-t5001-0123456789

# chat TEXT [STREAM [CURL-ARGS...]]: POSTs a chat completion with one user message TEXT
# (STREAM true|false, default false). The body goes to ./reply, the headers to ./headers,
# the status to ./status; returns curl's exit code.
chat() {
	local text=$1 stream=${2:-false}
	shift 2 2>/dev/null || shift $#
	jq -cn --arg t "$text" --argjson s "$stream" \
		'{model: "gpt-4o-mini", stream: $s, messages: [{role: "user", content: $t}]}' >req.json &&
	curl -sS -N -o reply -D headers -w '%{http_code}' -H "Authorization: Bearer $FAKE_KEY" \
		-H 'Content-Type: application/json' --data-binary @req.json "$@" \
		"$FAKE_URL/chat/completions" >status
}

# post_raw BODY [CURL-ARGS...]: POSTs BODY as is; same files as chat.
post_raw() {
	local body=$1
	shift
	curl -sS -o reply -D headers -w '%{http_code}' "$@" --data-binary "$body" \
		"$FAKE_URL/chat/completions" >status
}

# want_status CODE [ERROR-TYPE [ERROR-CODE]]: the last answer's status and error body.
want_status() {
	local got
	got=$(cat status)
	[ "$got" = "$1" ] || { echo "status $got, want $1: $(head -c 500 reply)"; return 1; }
	[ $# -lt 2 ] || jq -e --arg t "$2" '.error.type == $t and (.error.message | length > 0)' reply >/dev/null ||
		{ echo "error body $(cat reply), want type $2"; return 1; }
	[ $# -lt 3 ] || jq -e --arg c "$3" '.error.code == $c' reply >/dev/null ||
		{ echo "error body $(cat reply), want code $3"; return 1; }
}

# openai_headers: ./headers has the headers every OpenAI answer carries.
openai_headers() {
	local h
	for h in x-request-id openai-processing-ms x-ratelimit-limit-requests x-ratelimit-limit-tokens \
		x-ratelimit-remaining-requests x-ratelimit-remaining-tokens x-ratelimit-reset-requests \
		x-ratelimit-reset-tokens; do
		[ -n "$(header "$h")" ] || { echo "no $h in:"; cat headers; return 1; }
	done
	[ "$(header openai-version)" = 2020-10-01 ] || { echo "openai-version: $(header openai-version)"; return 1; }
	header x-request-id | grep -q '^req_' && header openai-processing-ms | grep -Eq '^[0-9]+$'
}

# data_lines: the data of the SSE events in ./reply, one a line.
data_lines() {
	sed -n 's/^data: //p' reply
}

check_client() {
	node "$FAKES_DIR/check-openai-client.mjs" "$1"
}

test_expect_success 'the official openai npm client is installed in t/fakes' '
	ensure_openai_client &&
	node -e "const v = require(\"$FAKES_DIR/node_modules/openai/package.json\").version;
		if (!/^[45]\./.test(v)) throw new Error(\"openai \" + v)"
'

test_expect_success 'the fake starts, writes its port file and answers' '
	start_openai_fake --api-key "$FAKE_KEY" &&
	echo "$FAKE_URL" | grep -Eq "^http://127\.0\.0\.1:[0-9]+/v1$" &&
	curl -sS --fail "$FAKE_CONTROL/_fake/stats" | jq -e ".requests == 0 and .inflight == 0"
'

test_expect_success 'client: a completion has the echo text, finish_reason stop and usage' '
	check_client completion
'

test_expect_success 'client: a stream adds up to the text, include_usage sends a usage chunk' '
	check_client stream
'

test_expect_success 'client: two parallel tool calls streamed in fragments are assembled' '
	check_client tool_calls
'

test_expect_success 'client: a 429 with Retry-After 1 is retried by the client and succeeds' '
	check_client retry_429
'

test_expect_success 'client: a 500 with maxRetries 0 raises InternalServerError' '
	check_client error_500
'

test_expect_success 'client: a wrong key raises AuthenticationError (invalid_api_key)' '
	check_client auth_401
'

test_expect_success 'client: an error in the middle of a stream raises APIError' '
	check_client mid_stream_error
'

test_expect_success 'client: the fake records the body and the Authorization header' '
	check_client records
'

test_expect_success 'curl: 200, 400, 401 and 404 answers all carry the OpenAI headers' '
	chat "hi" && want_status 200 && openai_headers &&
	jq -e ".choices[0].message.content == \"echo: hi\"" reply &&
	header content-type | grep -q "^application/json" &&
	post_raw "{}" -H "Authorization: Bearer $FAKE_KEY" && want_status 400 invalid_request_error &&
	openai_headers &&
	post_raw "{}" && want_status 401 invalid_request_error invalid_api_key && openai_headers &&
	post_raw "{}" -H "Authorization: Bearer sk-nope" && want_status 401 invalid_request_error invalid_api_key &&
	curl -sS -o reply -D headers -w "%{http_code}" "$FAKE_URL/nothing/here" >status &&
	want_status 404 invalid_request_error && openai_headers &&
	jq -e ".error.message | test(\"/v1/nothing/here\")" reply
'

test_expect_success 'curl: bad JSON, no model or no messages is 400 invalid_request_error' '
	post_raw "{\"model\": " -H "Authorization: Bearer $FAKE_KEY" && want_status 400 invalid_request_error &&
	post_raw "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" -H "Authorization: Bearer $FAKE_KEY" &&
	want_status 400 invalid_request_error && jq -e ".error.param == \"model\"" reply &&
	post_raw "{\"model\":\"m\"}" -H "Authorization: Bearer $FAKE_KEY" && want_status 400 invalid_request_error &&
	jq -e ".error.param == \"messages\"" reply &&
	post_raw "[1,2]" -H "Authorization: Bearer $FAKE_KEY" && want_status 400 invalid_request_error
'

test_expect_success 'curl: GET /v1/models lists models, and needs the key' '
	curl -sS -o reply -w "%{http_code}" -H "Authorization: Bearer $FAKE_KEY" "$FAKE_URL/models" >status &&
	want_status 200 &&
	jq -e ".object == \"list\" and (.data | length > 0) and all(.data[]; .object == \"model\")" reply &&
	curl -sS -o reply -w "%{http_code}" "$FAKE_URL/models" >status && want_status 401
'

test_expect_success 'curl: a stream is text/event-stream, role chunk first, then pieces, [DONE]' '
	chat "one two three" true && want_status 200 &&
	header content-type | grep -q "^text/event-stream" && openai_headers &&
	data_lines >events &&
	test "$(tail -n 1 events)" = "[DONE]" &&
	sed "\$d" events | jq -s -e "
		(.[0].choices[0].delta == {role: \"assistant\", content: \"\"}) and
		([.[].choices[0].delta.content // empty] | add == \"echo: one two three\") and
		([.[].choices[0].delta.content // empty | select(. != \"\")] | length >= 4) and
		(.[-1].choices[0] | .delta == {} and .finish_reason == \"stop\") and
		all(.[]; .object == \"chat.completion.chunk\" and .model == \"gpt-4o-mini\") and
		([.[].id] | unique | length == 1)" &&
	# every event is one data line and a blank line
	test "$(grep -c "^data: " reply)" -eq "$(grep -c "^\$" reply)"
'

test_expect_success 'curl: a cut stream (truncate_after_chunks) has no [DONE]' '
	test_must_fail chat "a b c d e [fake:{\"truncate_after_chunks\":2}]" true &&
	want_status 200 &&
	data_lines >events && cat events &&
	test "$(wc -l <events)" -eq 2 &&
	jq -e ".object == \"chat.completion.chunk\"" events >/dev/null &&
	! grep -q DONE reply
'

test_expect_success 'curl: the garbage step sends data lines that are not JSON' '
	chat "x [fake:{\"garbage\":true}]" true && want_status 200 &&
	header content-type | grep -q "^text/event-stream" &&
	data_lines >events && cat events &&
	test "$(wc -l <events)" -ge 1 &&
	jq -nR -e "[inputs | select((fromjson? | true) // false)] | length == 0" events
'

test_expect_success 'curl: [fake:{"delay_ms":300}] delays the answer by about 300 ms' '
	chat "quick" false -w "%{http_code} %{time_total}" && grep -q "^200 " status &&
	chat "slow [fake:{\"delay_ms\":300}]" false -w "%{http_code} %{time_total}" && cat status &&
	jq -e ".choices[0].message.content == \"echo: slow\"" reply &&
	awk "{ exit !(\$1 == 200 && \$2 >= 0.3 && \$2 < 3) }" status &&
	fake_requests >records.json &&
	jq -c ".[-2:][] | {step, ms: (.finished_at - .received_at)}" records.json &&
	jq -e ".[-2] | .step == null and .finished_at - .received_at < 150" records.json &&
	jq -e ".[-1] | .step == {delay_ms: 300} and .finished_at - .received_at >= 300 and
		.finished_at - .received_at < 2000" records.json
'

test_expect_success 'curl: inflight_at_start and inflight_max see overlapping requests' '
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/requests" >/dev/null &&
	chat "alone" && want_status 200 &&
	jq -cn "{model: \"m\", messages: [{role: \"user\", content: \"[fake:{\\\"delay_ms\\\":500}]\"}]}" >slow.json &&
	pids="" &&
	for i in 1 2 3; do
		curl -sS -o slow.$i.out -H "Authorization: Bearer $FAKE_KEY" --data-binary @slow.json \
			"$FAKE_URL/chat/completions" &
		pids="$pids $!"
	done &&
	ok=yes && for p in $pids; do wait "$p" || ok=no; done && test "$ok" = yes &&
	fake_requests >records.json &&
	jq -c "[.[] | {seq, inflight_at_start, status}]" records.json &&
	jq -e "length == 4 and .[0].inflight_at_start == 0 and
		([.[1:][].inflight_at_start] | sort == [0, 1, 2]) and all(.[]; .status == 200)" records.json &&
	curl -sS "$FAKE_CONTROL/_fake/stats" | jq -e ".inflight == 0 and .inflight_max >= 3"
'

test_expect_success 'curl: scripted steps are used in order, the marker first; DELETE clears' '
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null &&
	fake_script "{\"steps\":[{\"text\":\"first\"},{\"status\":503,\"retry_after_ms\":\"250\"}]}" &&
	curl -sS "$FAKE_CONTROL/_fake/script" | jq -e ".steps | length == 2" &&
	fake_script "{\"steps\":[{\"text\":\"third\"}]}" &&
	chat "x [fake:{\"text\":\"inline\"}]" && jq -e ".choices[0].message.content == \"inline\"" reply &&
	chat "x" && jq -e ".choices[0].message.content == \"first\"" reply &&
	chat "x" && want_status 503 server_error service_unavailable &&
	test "$(header retry-after-ms)" = 250 &&
	chat "x" && jq -e ".choices[0].message.content == \"third\"" reply &&
	chat "x" && jq -e ".choices[0].message.content == \"echo: x\"" reply &&
	fake_script "{\"steps\":[{\"text\":\"dropped\"}]}" &&
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null &&
	chat "y" && jq -e ".choices[0].message.content == \"echo: y\"" reply &&
	curl -sS -o reply -w "%{http_code}" -X POST --data-binary "{\"steps\":3}" \
		"$FAKE_CONTROL/_fake/script" >status && want_status 400
'

test_expect_success 'curl: 429 bodies and Retry-After headers; code and type override' '
	chat "x [fake:{\"status\":429,\"retry_after\":\"1\",\"retry_after_ms\":\"250\"}]" &&
	want_status 429 requests rate_limit_exceeded && openai_headers &&
	test "$(header retry-after)" = 1 && test "$(header retry-after-ms)" = 250 &&
	chat "x [fake:{\"status\":429,\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}]" &&
	want_status 429 insufficient_quota insufficient_quota && test -z "$(header retry-after)" &&
	chat "x [fake:{\"status\":500}]" && want_status 500 server_error &&
	chat "x [fake:{\"status\":400,\"code\":\"context_length_exceeded\"}]" &&
	want_status 400 invalid_request_error context_length_exceeded
'

test_expect_success 'curl: a marker with nested braces and a } inside a string' '
	chat "before [fake:{\"text\":\"a {b} c}\",\"headers\":{\"x-fake-extra\":\"yes\"}}] after" &&
	want_status 200 && jq -e ".choices[0].message.content == \"a {b} c}\"" reply &&
	test "$(header x-fake-extra)" = yes &&
	chat "not a marker [fake:{nope}] here" && want_status 200 &&
	jq -e ".choices[0].message.content == \"echo: not a marker [fake:{nope}] here\"" reply
'

test_expect_success 'curl: hang never answers; a client that gives up is recorded as finished' '
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/requests" >/dev/null &&
	test_must_fail chat "x [fake:{\"hang\":true}]" false --max-time 0.5 &&
	test "$(cat status)" = 000 &&
	wait_until 2 fake_idle &&
	fake_requests | jq -e ".[-1] | .step == {hang: true} and .status == null and .finished_at != null and .aborted == true" &&
	chat "still alive" && want_status 200
'

test_expect_success 'curl: a client leaving in the middle of a slow stream does not hurt the fake' '
	test_must_fail chat "a b c d e f g h [fake:{\"chunk_delay_ms\":100}]" true --max-time 0.35 &&
	data_lines >events && cat events &&
	test "$(wc -l <events)" -ge 2 && ! grep -q DONE events &&
	sleep 0.3 && kill -0 "$FAKE_PID" &&
	chat "after" true && want_status 200 && data_lines | tail -n 1 | grep -qx "\[DONE\]"
'

test_expect_success 'curl: a body over 8 MiB is 413, one just under is served' '
	head -c $((8 * 1024 * 1024 + 1)) /dev/zero | tr "\0" a >big &&
	post_raw @big -H "Authorization: Bearer $FAKE_KEY" && want_status 413 invalid_request_error &&
	# the same without a Content-Length: counted while it arrives
	post_raw @big -H "Authorization: Bearer $FAKE_KEY" -H "Transfer-Encoding: chunked" &&
	want_status 413 invalid_request_error &&
	{ printf "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"" &&
	  head -c $((8 * 1024 * 1024 - 100)) /dev/zero | tr "\0" a && printf "\"}]}"; } >almost &&
	post_raw @almost -H "Authorization: Bearer $FAKE_KEY" && want_status 200 &&
	jq -e ".choices[0].message.content | length == 8 * 1024 * 1024 - 100 + 6" reply
'

test_expect_success '--no-record keeps no records but counts; --max-records drops the oldest' '
	main_pid=$FAKE_PID main_control=$FAKE_CONTROL main_url=$FAKE_URL &&
	start_openai_fake --no-record &&
	chat one && want_status 200 && chat two && want_status 200 &&
	fake_requests | jq -e ". == []" &&
	curl -sS "$FAKE_CONTROL/_fake/stats" | jq -e ".requests == 2" &&
	stop_openai_fake &&
	start_openai_fake --max-records 2 &&
	chat one && chat two && chat three && want_status 200 &&
	fake_requests | jq -e "[.[].seq] == [2, 3] and .[1].body.messages[0].content == \"three\"" &&
	stop_openai_fake &&
	FAKE_PID=$main_pid FAKE_CONTROL=$main_control FAKE_URL=$main_url
'

test_expect_success 'the fake exits 0 on SIGTERM' '
	stop_openai_fake &&
	! kill -0 "$FAKE_PID" 2>/dev/null
'

test_done
