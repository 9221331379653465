#!/usr/bin/env bash
test_description='the openai model adapter against the fake OpenAI server, through the module registry (modeldrive)'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/fakes.sh"

MODELDRIVE=${MODELDRIVE:-$TEST_ROOT/build/test/t/helpers/modeldrive}
OPENAI_SO=$TEST_ROOT/modules/openai/openai.so
export T5002_KEY=sk-t5002-secret-0123456789abcdef

# cfg [JQ-OBJECT]: the adapter's config for the fake (a models: entry), merged with the
# object given.
cfg() {
	jq -cn --arg u "$FAKE_URL" "{id: \"gpt\", adapter: \"openai\", model: \"gpt-4o-mini\",
		base_url: \$u, api_key_env: \"T5002_KEY\", timeout_s: 20} + (${1:-{\}})"
}

# req TEXT [JQ-OBJECT]: a neutral request with one user message TEXT, merged with the
# object given.
req() {
	jq -cn --arg t "$1" "{messages: [{role: \"user\", content: \$t}]} + (${2:-{\}})"
}

# drive NAME CONFIG REQUEST [MODELDRIVE-OPTIONS...]: one request; the sink's calls go to
# NAME.out (JSON lines), the log to NAME.err, the exit status to NAME.rc. Fails only on a
# sanitizer report or a status modeldrive gives for its own failures (2, 3, 5).
drive() {
	local name=$1 config=$2 request=$3 rc
	shift 3
	"$MODELDRIVE" "$@" openai "$config" "$request" >"$name.out" 2>"$name.err"
	rc=$?
	echo "$rc" >"$name.rc"
	sanitizer_clean "$name.err" || return 1
	case $rc in
	0 | 1 | 4 | 6) return 0 ;;
	*) echo "modeldrive exited $rc:"; cat "$name.out" "$name.err"; return 1 ;;
	esac
}

# out NAME JQ: JQ over NAME.out read as one array (-s) holds.
out() {
	jq -es "$2" "$1.out" >/dev/null || { echo "not ($2) in $1.out:"; cat "$1.out"; tail -n 5 "$1.err"; return 1; }
}

# text NAME: the text pieces of NAME.out put together.
text() {
	jq -rsj '[.[] | select(.event == "text") | .text] | join("")' "$1.out"
}

# ended NAME done | ended NAME CODE [RETRYABLE]: NAME ended with on_done, or with the
# error CODE (and retryable 0 or 1 when given), exactly once, last.
ended() {
	local once='([.[] | select(.event == "done" or .event == "error")] | length == 1)'
	if [ "$2" = done ]; then
		jq -es ".[-1].event == \"done\" and $once" "$1.out" >/dev/null && [ "$(cat "$1.rc")" = 0 ] ||
			{ echo "want done:"; cat "$1.out"; tail -n 5 "$1.err"; fake_log; return 1; }
	else
		jq -es --arg c "$2" --argjson r "${3:-null}" ".[-1].event == \"error\" and .[-1].code == \$c and
			(\$r == null or .[-1].retryable == \$r) and $once" "$1.out" >/dev/null &&
			[ "$(cat "$1.rc")" = 1 ] ||
			{ echo "want error $2 (retryable ${3:-either}):"; cat "$1.out"; tail -n 5 "$1.err"; fake_log; return 1; }
	fi
}

# fake_log: what the fake was asked and did, for a failure's output.
fake_log() {
	echo "the fake's requests:"
	fake_requests | jq -c ".[] | {seq, status, step, received_at, finished_at}"
}

# took NAME MIN MAX: NAME ended after MIN ms or more and before MAX ms.
took() {
	local ms
	ms=$(jq -s '.[-1].elapsed_ms' "$1.out")
	[ "$ms" -ge "$2" ] && [ "$ms" -lt "$3" ] || { echo "$1 took $ms ms, want $2 to $3"; return 1; }
}

fake_clear() {
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/requests" >/dev/null &&
	curl -sS -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null
}

# requests N: the fake recorded N API requests since fake_clear; they go to ./records.
requests() {
	fake_requests >records || return 1
	[ "$(jq length records)" = "$1" ] || { echo "want $1 requests, the fake has:"; jq -c '.[] | {seq, status, step}' records; return 1; }
}

# no_key FILE...: the API key is in none of them.
no_key() {
	! grep -l -F -- "$T5002_KEY" "$@"
}

test_expect_success 'modeldrive and the fake are there' '
	test -x "$MODELDRIVE" &&
	start_openai_fake --api-key "$T5002_KEY"
'

test_expect_success 'a streamed answer: text pieces, usage, end_turn; the request as Chat Completions' '
	fake_clear &&
	drive s "$(cfg)" "$(req "hello there world" "{system: \"Be terse.\", max_tokens: 50}")" &&
	ended s done && test "$(text s)" = "echo: hello there world" &&
	out s "[.[] | select(.event == \"text\")] | length >= 3" &&
	out s "[.[] | select(.event == \"usage\")] | length == 1 and .[0].input_tokens > 0 and .[0].output_tokens > 0" &&
	out s ".[-1].stop_reason == \"end_turn\"" &&
	requests 1 &&
	jq -e ".[0].body | .model == \"gpt-4o-mini\" and .stream == true and
		.stream_options.include_usage == true and .max_completion_tokens == 50 and
		.messages == [{role: \"system\", content: \"Be terse.\"}, {role: \"user\", content: \"hello there world\"}]" records &&
	jq -e ".[0].headers | .\"content-type\" == \"application/json\" and .accept == \"text/event-stream\"" records
'

test_expect_success 'a non-streamed answer (stream false)' '
	fake_clear &&
	drive ns "$(cfg)" "$(req "just once" "{stream: false}")" &&
	ended ns done && test "$(text ns)" = "echo: just once" &&
	out ns "[.[] | select(.event == \"text\")] | length == 1" &&
	out ns "[.[] | select(.event == \"usage\")] | length == 1" &&
	requests 1 && jq -e ".[0].body | has(\"stream\") | not" records &&
	jq -e ".[0].body | has(\"stream_options\") | not" records
'

TWO_CALLS='{"steps":[{"tool_calls":[{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"days\":[1,2]}"},{"name":"get_time","arguments":"{\"tz\":\"CET\"}"}]}]}'

test_expect_success 'two parallel tool calls streamed in fragments: assembled, arguments parsed, tool_use' '
	fake_clear && fake_script "$TWO_CALLS" &&
	drive tc "$(cfg)" "$(req "weather and time?")" &&
	ended tc done && out tc ".[-1].stop_reason == \"tool_use\"" &&
	out tc "[.[] | select(.event == \"tool_call\") | .call] | length == 2 and
		.[0].name == \"get_weather\" and .[0].arguments == {city: \"Paris\", days: [1, 2]} and
		.[1].name == \"get_time\" and .[1].arguments == {tz: \"CET\"} and
		(.[0].id | startswith(\"call_\")) and .[0].id != .[1].id"
'

test_expect_success 'and the same from a non-streamed answer' '
	fake_clear && fake_script "$TWO_CALLS" &&
	drive tcn "$(cfg)" "$(req "weather and time?" "{stream: false}")" &&
	ended tcn done && out tcn ".[-1].stop_reason == \"tool_use\"" &&
	out tcn "[.[] | select(.event == \"tool_call\") | .call.arguments] == [{city: \"Paris\", days: [1, 2]}, {tz: \"CET\"}]"
'

test_expect_success 'tools, assistant tool calls and tool results map to the Chat Completions shapes' '
	fake_clear &&
	drive map "$(cfg "{max_tokens_field: \"max_tokens\", organization: \"org-t5002\", project: \"proj-1\",
		headers: {\"X-Extra\": \"yes\"}}")" "$(jq -cn "{model: \"gpt-4.1\", max_tokens: 9, messages: [
		{role: \"user\", content: \"weather?\"},
		{role: \"assistant\", content: \"\", tool_calls: [{id: \"call_1\", name: \"get_weather\", arguments: {city: \"Oslo\"}}]},
		{role: \"tool\", tool_call_id: \"call_1\", content: \"{\\\"temp_c\\\":3}\"},
		{role: \"user\", content: \"and now?\"}],
		tools: [{name: \"get_weather\", description: \"Weather now\", input_schema: {type: \"object\", properties: {city: {type: \"string\"}}}}]}")" &&
	ended map done && requests 1 &&
	jq -e ".[0].body | .model == \"gpt-4.1\" and .max_tokens == 9 and (has(\"max_completion_tokens\") | not)" records &&
	jq -e ".[0].body.messages[1] | .role == \"assistant\" and .content == null and
		.tool_calls == [{id: \"call_1\", type: \"function\", function: {name: \"get_weather\", arguments: \"{\\\"city\\\":\\\"Oslo\\\"}\"}}]" records &&
	jq -e ".[0].body.messages[2] == {role: \"tool\", tool_call_id: \"call_1\", content: \"{\\\"temp_c\\\":3}\"}" records &&
	jq -e ".[0].body.tools == [{type: \"function\", function: {name: \"get_weather\", description: \"Weather now\",
		parameters: {type: \"object\", properties: {city: {type: \"string\"}}}}}]" records &&
	jq -e ".[0].headers | .\"openai-organization\" == \"org-t5002\" and .\"openai-project\" == \"proj-1\" and .\"x-extra\" == \"yes\"" records
'

test_expect_success 'the key from api_key_env goes as a Bearer token, and nowhere else' '
	requests 1 &&
	jq -e --arg k "Bearer $T5002_KEY" ".[0].headers.authorization == \$k" records &&
	no_key ./*.out ./*.err
'

test_expect_success 'the key never appears in an error, even when the provider quotes it' '
	fake_clear &&
	drive leak "$(cfg)" "$(req "x [fake:{\"status\":400,\"message\":\"bad key $T5002_KEY here\"}]")" &&
	ended leak bad_request 0 && out leak ".[-1].message | contains(\"bad key *** here\")" &&
	no_key leak.out leak.err
'

test_expect_success 'a wrong key: unauthenticated, not retried' '
	fake_clear &&
	T5002_KEY=sk-wrong-key-000000 drive wrong "$(cfg)" "$(req hello)" &&
	ended wrong unauthenticated 0 && out wrong ".[-1].message | contains(\"HTTP 401\")" &&
	requests 1
'

test_expect_success 'no key configured: no Authorization header at all' '
	save_url=$FAKE_URL save_control=$FAKE_CONTROL save_pid=$FAKE_PID &&
	start_openai_fake &&
	fake_clear &&
	drive nokey "$(cfg "{api_key_env: null}" | jq -c "del(.api_key_env)")" "$(req hello)" &&
	ended nokey done && requests 1 &&
	jq -e ".[0].headers | has(\"authorization\") | not" records &&
	drive noenv "$(cfg "{api_key_env: \"T5002_NOT_SET\"}")" "$(req hello)" &&
	ended noenv done && requests 2 &&
	jq -e ".[1].headers | has(\"authorization\") | not" records &&
	stop_openai_fake && FAKE_URL=$save_url FAKE_CONTROL=$save_control FAKE_PID=$save_pid
'

test_expect_success 'a 429 with Retry-After 1, then success: after 1 s, two requests' '
	fake_clear && fake_script "{\"steps\":[{\"status\":429,\"retry_after\":\"1\"}]}" &&
	drive ra "$(cfg)" "$(req "try again")" &&
	ended ra done && test "$(text ra)" = "echo: try again" &&
	took ra 1000 4000 &&
	requests 2 && jq -e ".[1].received_at - .[0].finished_at >= 990" records
'

test_expect_success 'retry-after-ms comes before retry-after' '
	fake_clear && fake_script "{\"steps\":[{\"status\":429,\"retry_after_ms\":\"600.5\",\"retry_after\":\"30\"}]}" &&
	drive rams "$(cfg)" "$(req "soon")" &&
	ended rams done && took rams 600 4000 &&
	requests 2
'

# The date is to the second: 3 s ahead is at least 2 s, less the start of modeldrive,
# and well beyond the first backoff (0 to 500 ms).
test_expect_success 'a Retry-After as an HTTP date' '
	fake_clear &&
	when=$(LC_ALL=C date -u -d "+3 seconds" "+%a, %d %b %Y %H:%M:%S GMT") &&
	fake_script "$(jq -cn --arg d "$when" "{steps: [{status: 503, retry_after: \$d}]}")" &&
	drive radate "$(cfg)" "$(req "at a date")" &&
	ended radate done && took radate 1000 5000 &&
	requests 2
'

test_expect_success 'a Retry-After over 120 s: given up at once' '
	fake_clear &&
	drive long "$(cfg)" "$(req "x [fake:{\"status\":429,\"retry_after\":\"500\"}]")" &&
	ended long rate_limited && out long ".[-1].message | contains(\"120 s\")" &&
	took long 0 1000 && requests 1
'

test_expect_success '500 three times with max_retries 2: provider_error after three requests' '
	fake_clear && fake_script "{\"steps\":[{\"status\":500},{\"status\":500},{\"status\":500},{\"text\":\"too late\"}]}" &&
	drive e500 "$(cfg "{max_retries: 2}")" "$(req hello)" &&
	ended e500 provider_error 1 &&
	out e500 ".[-1].message | contains(\"HTTP 500\") and contains(\"3 attempts\")" &&
	requests 3 && test "$(text e500)" = ""
'

test_expect_success '503 then 502 then success with the default max_retries' '
	fake_clear && fake_script "{\"steps\":[{\"status\":503},{\"status\":502}]}" &&
	drive e503 "$(cfg)" "$(req "third time")" &&
	ended e503 done && test "$(text e503)" = "echo: third time" && requests 3
'

test_expect_success '400: bad_request with the provider code, not retried' '
	fake_clear &&
	drive e400 "$(cfg)" "$(req "x [fake:{\"status\":400,\"code\":\"context_length_exceeded\",\"message\":\"This model maximum context length is 128000 tokens.\"}]")" &&
	ended e400 bad_request 0 &&
	out e400 ".[-1].message | contains(\"HTTP 400\") and contains(\"context_length_exceeded\") and contains(\"128000 tokens\")" &&
	requests 1
'

test_expect_success '404: model_not_found; 403: forbidden' '
	fake_clear &&
	drive e404 "$(cfg)" "$(req "x [fake:{\"status\":404}]")" && ended e404 model_not_found 0 &&
	drive e403 "$(cfg)" "$(req "x [fake:{\"status\":403}]")" && ended e403 forbidden 0 &&
	requests 2
'

test_expect_success '429 insufficient_quota is not retried' '
	fake_clear &&
	drive quota "$(cfg)" "$(req "x [fake:{\"status\":429,\"code\":\"insufficient_quota\"}]")" &&
	ended quota insufficient_quota 0 && requests 1
'

test_expect_success 'x-should-retry overrides the status: false on a 500, true on a 400' '
	fake_clear &&
	drive nsr "$(cfg)" "$(req "x [fake:{\"status\":500,\"should_retry\":false}]")" &&
	ended nsr provider_error && requests 1 &&
	fake_clear && fake_script "{\"steps\":[{\"status\":400,\"should_retry\":true}]}" &&
	drive sr "$(cfg)" "$(req "again")" && ended sr done && requests 2
'

test_expect_success 'a stream cut after text went out: stream_cut, not retried' '
	fake_clear &&
	drive cut "$(cfg)" "$(req "one two three four [fake:{\"truncate_after_chunks\":3}]")" &&
	ended cut stream_cut 1 && test -n "$(text cut)" && requests 1
'

test_expect_success 'a stream cut before any text: retried, then stream_cut' '
	fake_clear &&
	drive cut0 "$(cfg "{max_retries: 1}")" "$(req "one two [fake:{\"truncate_after_chunks\":1}]")" &&
	ended cut0 stream_cut 1 && test "$(text cut0)" = "" && requests 2
'

test_expect_success 'garbage data lines: bad_response' '
	fake_clear &&
	drive garbage "$(cfg)" "$(req "x [fake:{\"garbage\":true}]")" &&
	ended garbage bad_response 0 && requests 1 &&
	drive garbage2 "$(cfg)" "$(req "x [fake:{\"garbage\":true}]" "{stream: false}")" &&
	ended garbage2 bad_response 0
'

test_expect_success 'an error object in the middle of the stream: provider_error after the text' '
	fake_clear &&
	drive mid "$(cfg)" "$(req "partial answer [fake:{\"mid_stream_error\":true}]")" &&
	ended mid provider_error && out mid ".[-1].message | contains(\"mid-stream\")" &&
	test -n "$(text mid)" && requests 1
'

test_expect_success 'a server that hangs, timeout_s 1: timeout after about 1 s' '
	fake_clear &&
	drive hang "$(cfg "{timeout_s: 1}")" "$(req "x [fake:{\"hang\":true}]")" &&
	ended hang timeout && took hang 950 2500 &&
	requests 1
'

test_expect_success 'a closed port: provider_unreachable after max_retries' '
	drive closed "$(cfg "{base_url: \"http://127.0.0.1:1/v1\", max_retries: 2}")" "$(req hello)" &&
	ended closed provider_unreachable 1 &&
	out closed ".[-1].message | contains(\"127.0.0.1:1\") and contains(\"3 attempts\")" &&
	test "$(grep -c "retry [12] of 2" closed.err)" = 2
'

test_expect_success 'cancel during a call: no sink call afterwards, the call ends, nothing leaks' '
	fake_clear &&
	drive cancel "$(cfg)" "$(req "x [fake:{\"hang\":true}]")" -c 300 &&
	test "$(cat cancel.rc)" = 4 && out cancel "length == 1 and .[0].event == \"cancelled\"" &&
	requests 1 && jq -e ".[0].finished_at != null" records
'

test_expect_success 'cancel during a backoff wait: no second request' '
	fake_clear &&
	drive cancelwait "$(cfg)" "$(req "x [fake:{\"status\":429,\"retry_after_ms\":\"500\"}]")" -c 200 &&
	test "$(cat cancelwait.rc)" = 4 && out cancelwait "length == 1" && requests 1
'

test_expect_success 'fini with a request in flight, and with one in a backoff wait: freed, no sink call' '
	fake_clear &&
	drive fini "$(cfg)" "$(req "x [fake:{\"hang\":true}]")" -f 300 &&
	test "$(cat fini.rc)" = 6 && out fini "length == 1 and .[0].event == \"fini\"" &&
	drive finiwait "$(cfg)" "$(req "x [fake:{\"status\":429,\"retry_after\":\"5\"}]")" -f 300 &&
	test "$(cat finiwait.rc)" = 6 && out finiwait "length == 1" && requests 2
'

test_expect_success 'the base instance ({}): no model named anywhere is a bad_request, no network' '
	drive base "{}" "$(req hello)" &&
	ended base bad_request 0 && out base ".[-1].message | contains(\"no model\")"
'

test_expect_success 'a bad base_url refuses init' '
	test_must_fail "$MODELDRIVE" openai "{\"base_url\": \"ftp://x\"}" "$(req hi)" >badurl.out 2>badurl.err &&
	grep -q "base_url must begin with http" badurl.err
'

test_expect_success 'the same adapter built as a .so answers too' '
	test -f "$OPENAI_SO" &&
	fake_clear &&
	drive so "$(cfg)" "$(req "from the so")" -s "$OPENAI_SO" &&
	ended so done && test "$(text so)" = "echo: from the so" && requests 1
'

test_expect_success 'the fake stops cleanly' '
	stop_openai_fake
'

test_done
