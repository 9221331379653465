#!/usr/bin/env bash
test_description='the anthropic model adapter in a gateway, against the fake Anthropic server: answers, streamed deltas over ws, a tool_use round trip through a paired tool host, 529 retried, a cut stream, a wrong key, the key kept secret, auth: (a lent Bearer token, a 401 tried once more, no login)'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/anthropic-turns.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"
. "$TEST_ROOT/t/lib/peers.sh"

export T5102_KEY=sk-ant-api03-t5102-secret-0123456789abcdef
export T5102_WRONG=sk-ant-api03-t5102-wrong-9999999999999999
export T5102_TOKEN=sk-ant-oat01-t5102-token-abcdef0123456789
MODELDRIVE=${MODELDRIVE:-$TEST_ROOT/build/test/t/helpers/modeldrive}
ANTHROPIC_SO=$TEST_ROOT/modules/anthropic/anthropic.so
N=0

# say TEXT: posts TEXT as telegram actor 42 (tenant family, always the same session) and
# waits for its turn. Sets EVENT, SESSION, TURN; the turns.wait answer goes to ./wait.
say() {
	N=$((N + 1))
	post_event "$FAMILY" "$(envelope 42 "m$N" "$1")" >/dev/null && expect_status 202 &&
	EVENT=$(jq -er .event_id "$TRASH/reply") && SESSION=$(jq -er .session_id "$TRASH/reply") &&
	"$CRAB" admin turns.wait "{\"event_id\":\"$EVENT\",\"timeout_ms\":30000}" >wait &&
	TURN=$(jq -er .turn_id wait) || { echo "no outcome:"; cat wait; return 1; }
	echo "$1: $(jq -c . wait)"
}

# event_outbox: the outbox frames of $EVENT's turn, one a line, to ./ev.outbox; then
# `frames TYPE` counts those of TYPE.
event_outbox() {
	store_sql "$GW" "SELECT payload FROM event_outbox WHERE session_id = '$SESSION'" |
		jq -c --arg e "$EVENT" --arg t "$TURN" \
			'select(.data.event_id == $e or (.type == "message.outbound" and .turn_id == $t))' >ev.outbox
}
frames() {
	jq -s --arg t "$1" 'map(select(.type == $t)) | length' ev.outbox
}

# completed TEXT: the turn of $EVENT completed with TEXT, sent out once.
completed() {
	jq -e --arg t "$1" '.status == "completed" and .text == $t' wait >/dev/null ||
		{ echo "want completed with '$1'"; return 1; }
	event_outbox &&
	test "$(frames turn.completed) $(frames turn.failed) $(frames message.outbound)" = "1 0 1"
}

# failed CODE: the turn of $EVENT failed with CODE: in the answer, in one turn.failed, in
# the turns table; nothing went out.
failed() {
	jq -e --arg c "$1" '.status == "failed" and .error_code == $c' wait >/dev/null ||
		{ echo "want failed with $1"; return 1; }
	event_outbox &&
	test "$(frames turn.completed) $(frames turn.failed) $(frames message.outbound)" = "0 1 0" &&
	jq -e --arg c "$1" 'select(.type == "turn.failed") | .data.error.code == $c' ev.outbox >/dev/null &&
	test "$(store_sql "$GW" "SELECT status FROM turns WHERE event_id = '$EVENT'")" = failed
}

# requests_for TEXT: the fake's records of requests whose last user text is TEXT, as a JSON
# array, oldest first (a turn's later rounds too: their last user turn is tool results).
requests_for() {
	fake_requests | jq -c --arg t "$1" 'sort_by(.seq) | map(select(.path == "/v1/messages" and
		([.body.messages[] | select(.role == "user") | .content |
			if type == "string" then . else map(select(.type == "text") | .text) | join("\n") end |
			select(. != "")] | last) == $t))'
}

# calls: the turn's tool_calls rows as JSON lines {tool, arguments, ok}.
calls() {
	store_sql "$GW" "SELECT tool, arguments, result FROM tool_calls WHERE turn_id = '$TURN'
		ORDER BY started_at, LENGTH(id), id" |
		jq -cR 'split("|") | {tool: .[0], arguments: (.[1] | fromjson), ok: (.[2] | fromjson | .ok)}'
}

# has_auth_layer: the running gateway lends subscription credentials (host->auth_token):
# its admin socket knows auth.status.
has_auth_layer() {
	"$CRAB" admin auth.status >/dev/null 2>&1
}

listed() {
	"$CRAB" admin status | jq -e '.tools.hosts | length == 1 and .[0].tools >= 7' >/dev/null
}

# gateway NAME YAML...: a gateway of its own on the fake, tenants as peers.sh has them, and
# a produce lease of tenant family in FAMILY.
gateway() {
	GW=$1
	shift
	write_gateway_config "$GW" "$@" "$PEER_TENANTS" && start_gateway "$GW" &&
	FAMILY=$(make_lease family) && test -n "$FAMILY"
}

test_expect_success 'the fake (with a key), a gateway with an anthropic model, a tool host paired' '
	start_anthropic_fake --api-key "$T5102_KEY" --bearer "$T5102_TOKEN" &&
	gateway gw "$(anthropic_yaml T5102_KEY "max_retries: 2")" \
		"    tools:" "      allow: [\"test.*\"]" &&
	mkdir -p tools && start_component tools --type tool --tools --tools-log "$TRASH/tools.log" &&
	"$CRAB" pair tool "$tools_URL" tools >/dev/null &&
	wait_until 10 listed
'

test_expect_success 'a plain turn completes; the request is a Messages body with the key as x-api-key' '
	say "hello there" && completed "echo: hello there" &&
	requests_for "hello there" >r.json && jq -c ".[0].headers" r.json &&
	jq -e --arg k "$T5102_KEY" "length == 1 and (.[0].headers | .\"x-api-key\" == \$k and
		.\"anthropic-version\" == \"2023-06-01\" and .\"content-type\" == \"application/json\" and
		.accept == \"text/event-stream\" and (has(\"authorization\") | not))" r.json >/dev/null &&
	jq -e ".[0] | .path == \"/v1/messages\" and .status == 200 and
		(.body | .model == \"claude-haiku-4-5\" and .max_tokens == 1024 and .stream == true and
		 (.system | type == \"string\" and length > 0) and
		 .messages[-1] == {role: \"user\", content: [{type: \"text\", text: \"hello there\"}]} and
		 (.tools | length >= 7 and all(.[]; (.input_schema.type == \"object\") and (has(\"parameters\") | not))) and
		 ([.tools[].name] | index(\"test__echo\") != null))" r.json >/dev/null
'

test_expect_success 'the next turn sends the history as alternating user and assistant turns' '
	say "and again" && completed "echo: and again" &&
	requests_for "and again" >r.json &&
	jq -e ".[0].body.messages | length >= 3 and .[-2] == {role: \"assistant\", content: [{type: \"text\", text: \"echo: hello there\"}]} and
		([.[].role] | . as \$r | all(range(1; length); \$r[.] != \$r[. - 1]))" r.json >/dev/null
'

test_expect_success 'streamed: a ws client sees the answer arrive as message.delta pieces (ws-gateway-check stream)' '
	ensure_openai_client &&
	WS=$("$CRAB" admin lease.create "{\"tenant_id\":\"family\",\"scopes\":[\"produce\",\"subscribe\"],\"ttl_s\":600,\"session_id\":\"new\"}" | jq -er .token) &&
	ant_clear &&
	{ GW_URL=$GW_URL TOKEN=$WS node "$FAKES_DIR/ws-gateway-check.mjs" stream >ws.out; rc=$?; cat ws.out; test $rc -eq 0; } &&
	fake_requests >recs.json &&
	jq -e "length == 6 and all(.[]; .body.stream == true and .status == 200)" recs.json >/dev/null
'

test_expect_success 'a tool_use round trip: the tools run, the results go back as one user turn of tool_result blocks' '
	ant_clear &&
	fake_script "{\"steps\":[{\"text\":\"Let me look.\",\"tool_use\":[
		{\"id\":\"toolu_t1\",\"name\":\"test__echo\",\"input\":{\"text\":\"alpha\"}},
		{\"id\":\"toolu_t2\",\"name\":\"test__fail\",\"input\":{\"code\":\"boom\",\"message\":\"it broke\"}}]}, {}]}" &&
	say "use your tools" &&
	jq -e ".status == \"completed\" and (.text | startswith(\"echo: alpha\n\")) and (.text | contains(\"boom\"))" wait >/dev/null &&
	requests_for "use your tools" >r.json && test "$(jq length r.json)" = 2 &&
	jq -e ".[1].body.messages[-2] == {role: \"assistant\", content: [{type: \"text\", text: \"Let me look.\"},
		{type: \"tool_use\", id: \"toolu_t1\", name: \"test__echo\", input: {text: \"alpha\"}},
		{type: \"tool_use\", id: \"toolu_t2\", name: \"test__fail\", input: {code: \"boom\", message: \"it broke\"}}]}" r.json >/dev/null &&
	jq -e ".[1].body.messages[-1] | .role == \"user\" and (.content | length == 2) and
		.content[0] == {type: \"tool_result\", tool_use_id: \"toolu_t1\", content: \"alpha\"} and
		(.content[1] | .type == \"tool_result\" and .tool_use_id == \"toolu_t2\" and .is_error == true and
		 (.content | fromjson | .error.code == \"boom\"))" r.json >/dev/null &&
	jq -e "map(.status) == [200, 200]" r.json >/dev/null &&
	calls >rows && cat rows &&
	test "$(jq -r .tool rows | tr "\n" " ")" = "test.echo test.fail " &&
	jq -se ".[0].ok == true and .[1].ok == false" rows >/dev/null
'

test_expect_success '529 then success: the turn completes after two requests' '
	fake_script "{\"steps\":[{\"status\":529}]}" &&
	say "busy once" && completed "echo: busy once" &&
	requests_for "busy once" >r.json &&
	jq -e "map(.status) == [529, 200]" r.json >/dev/null
'

test_expect_success 'a stream cut inside a block after text went out: turn.failed stream_cut, one request' '
	say "[fake:{\"truncate_after_events\":5}] cut me off here please" && failed stream_cut &&
	jq -e ".error_message | contains(\"content block 0\")" wait >/dev/null &&
	test "$(requests_for "[fake:{\"truncate_after_events\":5}] cut me off here please" | jq length)" = 1
'

test_expect_success 'an error event mid-stream after text: turn.failed overloaded, not retried' '
	say "[fake:{\"mid_stream_error\":true}] overloaded midway" && failed overloaded &&
	test "$(requests_for "[fake:{\"mid_stream_error\":true}] overloaded midway" | jq length)" = 1
'

test_expect_success 'the session goes on after the failures' '
	S=$SESSION && say "still here" && completed "echo: still here" && test "$SESSION" = "$S"
'

test_expect_success 'the key is nowhere in the gateway log, the turns, the outbox or the tool host' '
	store_sql gw "SELECT * FROM turns" >turns.dump &&
	store_sql gw "SELECT * FROM event_outbox" >outbox.dump &&
	grep -q "use your tools" turns.dump && grep -q "still here" outbox.dump &&
	! grep -rF -- "$T5102_KEY" "$GW_LOG" turns.dump outbox.dump "$TRASH/tools" &&
	! grep -rF -- "${T5102_KEY#sk-ant-}" "$GW_LOG" turns.dump outbox.dump
'

test_expect_success 'the gateway stops cleanly (clean sanitizer log)' '
	stop_gateway && stop_component tools
'

test_expect_success 'a wrong key: turn.failed unauthenticated after one request' '
	ant_clear &&
	gateway gw2 "$(anthropic_yaml T5102_WRONG "max_retries: 2")" &&
	say "let me in" && failed unauthenticated &&
	jq -e ".error_message | contains(\"HTTP 401\") and contains(\"authentication_error\")" wait >/dev/null &&
	requests_for "let me in" >r.json && jq -e "length == 1 and .[0].status == 401" r.json >/dev/null &&
	! grep -F -- "$T5102_WRONG" "$GW_LOG" wait &&
	stop_gateway
'

# An oauth provider on a closed port, never logged in: the gateway's auth layer answers
# login_required; a gateway without one lends nothing (auth_unavailable).
test_expect_success 'auth: never logged in: turn.failed login_required (auth_unavailable without an auth layer), no request' '
	ant_clear &&
	gateway gw3 "$(anthropic_yaml - "auth:" "  kind: oauth" "  provider: claude-sub" \
		"  authorize_url: \"http://127.0.0.1:1/oauth/authorize\"" \
		"  token_url: \"http://127.0.0.1:1/v1/oauth/token\"" \
		"  client_id: 9d1c250a-e61b-44d9-88ed-5944d1962f5e" \
		"  redirect_uri: \"http://127.0.0.1:1/oauth/code/callback\"")" &&
	if has_auth_layer; then want=login_required; else want=auth_unavailable; fi && echo "want $want" &&
	say "with a subscription" && failed "$want" &&
	test "$(fake_requests | jq length)" = 0 &&
	stop_gateway
'

# A credential the host lends (auth kind api_key: the token from the environment): sent
# as Authorization: Bearer, never x-api-key, with the entry's headers; a 401 gets the
# token asked for again and the request once more. Without an auth layer: auth_unavailable.
test_expect_success 'auth: a lent token goes as Bearer with the extra headers; a 401 is tried once more' '
	ant_clear &&
	gateway gw4 "$(anthropic_yaml T5102_KEY "auth:" "  kind: api_key" "  key_env: T5102_TOKEN" \
		"headers:" "  anthropic-beta: oauth-2025-04-20")" &&
	if has_auth_layer; then
		say "with a lent token" && completed "echo: with a lent token" &&
		requests_for "with a lent token" >r.json &&
		jq -e --arg t "Bearer $T5102_TOKEN" "length == 1 and (.[0].headers | .authorization == \$t and
			(has(\"x-api-key\") | not) and .\"anthropic-beta\" == \"oauth-2025-04-20\")" r.json >/dev/null &&
		fake_script "{\"steps\":[{\"status\":401}]}" &&
		say "refused once" && completed "echo: refused once" &&
		requests_for "refused once" >r.json &&
		jq -e --arg t "Bearer $T5102_TOKEN" "map(.status) == [401, 200] and all(.[]; .headers.authorization == \$t)" r.json >/dev/null
	else
		say "with a lent token" && failed auth_unavailable &&
		test "$(fake_requests | jq length)" = 0
	fi &&
	! grep -F -- "$T5102_TOKEN" "$GW_LOG" wait &&
	stop_gateway
'

test_expect_success 'the same adapter built as a .so: a non-streamed answer through modeldrive' '
	test -f "$ANTHROPIC_SO" && ant_clear &&
	"$MODELDRIVE" -s "$ANTHROPIC_SO" anthropic \
		"$(jq -cn --arg u "$ANT_URL" "{id: \"claude\", model: \"claude-haiku-4-5\", base_url: \$u, api_key_env: \"T5102_KEY\"}")" \
		"{\"stream\":false,\"max_tokens\":50,\"messages\":[{\"role\":\"user\",\"content\":\"from the so\"}]}" >so.out 2>so.err &&
	sanitizer_clean so.err && cat so.out &&
	jq -se "map(select(.event == \"text\") | .text) == [\"echo: from the so\"] and .[-1].stop_reason == \"end_turn\" and
		(map(select(.event == \"usage\")) | length == 1)" so.out >/dev/null &&
	fake_requests | jq -e "length == 1 and (.[0].body | has(\"stream\") | not) and .[0].body.max_tokens == 50" &&
	! grep -F -- "$T5102_KEY" so.out so.err
'

test_expect_success 'a closed port: provider_unreachable after max_retries' '
	test_must_fail "$MODELDRIVE" -s "$ANTHROPIC_SO" anthropic \
		"{\"model\":\"m\",\"base_url\":\"http://127.0.0.1:1\",\"max_retries\":1}" \
		"{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}" >closed.out 2>closed.err &&
	sanitizer_clean closed.err &&
	jq -se ".[-1] | .event == \"error\" and .code == \"provider_unreachable\" and .retryable == 1 and
		(.message | contains(\"127.0.0.1:1/v1/messages\") and contains(\"2 attempts\"))" closed.out >/dev/null
'

test_expect_success 'the fake stops cleanly' '
	stop_anthropic_fake
'

test_done
