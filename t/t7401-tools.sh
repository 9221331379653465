#!/usr/bin/env bash
test_description='remote tools (PROTOCOLS.md §5): a model calling tools in parallel and in rounds, every failure returned to the model as a tool result, tools an agent may not use, tenants kept apart'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"
. "$TEST_ROOT/t/lib/peers.sh"

export T7401_KEY=sk-t7401-secret-0123456789abcdef
N=0

# say LEASE ENVELOPE: posts it and waits for its turn; EVENT, TURN and ./wait are set.
say() {
	post_event "$1" "$2" >/dev/null && expect_status 202 &&
	EVENT=$(jq -er .event_id "$TRASH/reply") &&
	"$CRAB" admin turns.wait "{\"event_id\":\"$EVENT\",\"timeout_ms\":30000}" >wait &&
	TURN=$(jq -er .turn_id wait) || { echo "no outcome:"; cat wait; return 1; }
	jq -c . wait
}

# family TEXT / acme TEXT: a message in tenant family (telegram actor 42) or acme (slack).
family() {
	N=$((N + 1))
	say "$FAMILY" "$(envelope 42 "m$N" "$1")"
}
acme() {
	N=$((N + 1))
	say "$ACME" "{\"type\":\"channel.message.received\",\"text\":\"$1\",\"source\":{\"platform\":\"slack\",\"channel_id\":\"c1\",\"actor_id\":\"7\",\"message_id\":\"s$N\"}}"
}

completed_with() {
	jq -e --arg t "$1" '.status == "completed" and .text == $t' wait >/dev/null ||
		{ echo "want completed with '$1'"; return 1; }
}

# calls: the turn's tool_calls rows as JSON lines {id, tool, arguments, result, error}.
calls() {
	store_sql gw "SELECT id, tool, arguments, result, COALESCE(error, '') FROM tool_calls
		WHERE turn_id = '$TURN' ORDER BY started_at, LENGTH(id), id" |
		jq -cR 'split("|") | {id: .[0], tool: .[1], arguments: (.[2] | fromjson),
			result: (.[3] | fromjson), error: .[4]}'
}

# requests: the fake's requests of this turn (their bodies), oldest first.
requests() {
	fake_requests | jq -c --arg t "$1" 'sort_by(.seq) | map(select(
		([.body.messages[] | select(.role == "user")] | last | .content) == $t)) | map(.body)'
}

# tool_result ID: the tool message answering the model's call ID, in the last request.
tool_result() {
	jq -r --arg id "$1" 'last | .messages[] | select(.role == "tool" and .tool_call_id == $id) | .content' r.json
}

listed() {
	"$CRAB" admin status | jq -e '.tools.hosts | length == 1 and .[0].tools >= 7' >/dev/null
}

script() {
	fake_script "{\"steps\":$1}"
}

test_expect_success 'a gateway on the fake model, a tool host paired, the agent allowed test.* but not test.count' '
	start_openai_fake --api-key "$T7401_KEY" &&
	write_gateway_config gw "$(openai_yaml T7401_KEY)" \
		"    tools:" "      allow: [\"test.*\"]" "      deny: [test.count]" \
		"      max_rounds: 3" "      deadline_ms: 1500" "$PEER_TENANTS" &&
	start_gateway gw &&
	mkdir -p tools && start_component tools --type tool --tools --tools-log "$TRASH/tools.log" &&
	"$CRAB" pair tool "$tools_URL" tools >/dev/null &&
	wait_until 10 listed &&
	FAMILY=$(make_lease family) && ACME=$(make_lease acme)
'

test_expect_success 'two tools in parallel, then one more, then the answer: every call stored, in order' '
	script "[{\"tool_calls\":[{\"id\":\"c1\",\"name\":\"test__echo\",\"arguments\":{\"text\":\"alpha\"}},
		{\"id\":\"c2\",\"name\":\"test__echo\",\"arguments\":{\"text\":\"beta\"}}]},
		{\"tool_calls\":[{\"id\":\"c3\",\"name\":\"test__note_put\",\"arguments\":{\"key\":\"k\",\"value\":\"family data\"}}]},
		{\"text\":\"all done\"}]" &&
	family "use your tools" && completed_with "all done" &&
	requests "use your tools" >r.json && test "$(jq length r.json)" = 3 &&
	jq -e "[.[0].tools[].function.name] | (index(\"test__echo\") != null) and (index(\"test__count\") == null)" r.json >/dev/null &&
	test "$(jq -r ".[1].messages[] | select(.role == \"tool\" and .tool_call_id == \"c1\") | .content" r.json)" = alpha &&
	test "$(jq -r ".[1].messages[] | select(.role == \"tool\" and .tool_call_id == \"c2\") | .content" r.json)" = beta &&
	jq -e ".[1].messages | map(select(.role == \"assistant\")) | last | .tool_calls | length == 2" r.json >/dev/null &&
	jq -e ".[2].messages | map(select(.role == \"tool\")) | length == 3" r.json >/dev/null &&
	calls >rows && cat rows &&
	test "$(jq -r .tool rows | tr "\n" " ")" = "test.echo test.echo test.note_put " &&
	test "$(jq -r .id rows | tr "\n" " ")" = "$TURN:1 $TURN:2 $TURN:3 " &&
	jq -se ".[0].arguments.text == \"alpha\" and .[0].result.ok == true and .[0].result.content[0].text == \"alpha\"" rows >/dev/null &&
	jq -se "all(.[]; .error == \"\")" rows >/dev/null
'

test_expect_success 'down, past the deadline, an error, invalid JSON, bad arguments: each a tool error to the model, and the turn completes' '
	script "[{\"tool_calls\":[{\"id\":\"d1\",\"name\":\"test__sleep\",\"arguments\":{\"ms\":5000}},
		{\"id\":\"d2\",\"name\":\"test__fail\",\"arguments\":{\"code\":\"boom\",\"message\":\"it broke\"}},
		{\"id\":\"d3\",\"name\":\"test__badjson\",\"arguments\":{}},
		{\"id\":\"d4\",\"name\":\"test__echo\",\"arguments\":{\"text\":42}}]},
		{\"text\":\"survived\"}]" &&
	family "break things" && completed_with "survived" &&
	requests "break things" >r.json && test "$(jq length r.json)" = 2 &&
	tool_result d1 | grep -q deadline_exceeded &&
	tool_result d2 | grep -q boom &&
	tool_result d3 | grep -q bad_response &&
	tool_result d4 | grep -q invalid_arguments &&
	calls >rows && test "$(wc -l <rows)" = 4 &&
	jq -se "all(.[]; .error != \"\" and .result.ok == false)" rows >/dev/null
'

test_expect_success 'a tool the agent may not use is neither shown nor called, even when the model names it' '
	script "[{\"tool_calls\":[{\"id\":\"n1\",\"name\":\"test__count\",\"arguments\":{}},
		{\"id\":\"n2\",\"name\":\"config__apply\",\"arguments\":{\"patch\":{}}}]}, {\"text\":\"refused\"}]" &&
	family "count please" && completed_with "refused" &&
	requests "count please" >r.json &&
	jq -e ".[0].tools | map(.function.name) | (index(\"test__count\") == null) and (index(\"config__apply\") == null)" r.json >/dev/null &&
	tool_result n1 | grep -q unknown_tool && tool_result n2 | grep -q unknown_tool &&
	test "$(jq -s "map(select(.tool == \"test.count\")) | length" "$TRASH/tools.log")" = 0
'

test_expect_success 'tenants apart: acme cannot read what family stored; family can' '
	script "[{\"tool_calls\":[{\"id\":\"t1\",\"name\":\"test__note_get\",\"arguments\":{\"key\":\"k\"}}]}, {\"text\":\"acme looked\"}]" &&
	acme "read the note" && completed_with "acme looked" &&
	requests "read the note" >r.json && tool_result t1 | grep -q not_found &&
	jq -se "map(select(.tool == \"test.note_get\")) | length == 1 and .[0].context.tenant_id == \"acme\"" "$TRASH/tools.log" >/dev/null &&
	jq -se "all(.[]; (.context.memory_key | type) == \"string\" and (.context.memory_key | length) > 0)" "$TRASH/tools.log" >/dev/null &&
	script "[{\"tool_calls\":[{\"id\":\"t2\",\"name\":\"test__note_get\",\"arguments\":{\"key\":\"k\"}}]}, {\"text\":\"family looked\"}]" &&
	family "read my note" && completed_with "family looked" &&
	requests "read my note" >r.json && test "$(tool_result t2)" = "family data"
'

test_expect_success 'more rounds than max_rounds: the turn fails with tool_loop_limit' '
	step="{\"tool_calls\":[{\"name\":\"test__echo\",\"arguments\":{\"text\":\"again\"}}]}" &&
	script "[$step,$step,$step,$step]" &&
	family "loop forever" && jq -e ".status == \"failed\" and .error_code == \"tool_loop_limit\"" wait >/dev/null &&
	fake_clear
'

test_expect_success 'the tool host down: unavailable, as a tool result, and the turn completes' '
	stop_component tools &&
	script "[{\"tool_calls\":[{\"id\":\"u1\",\"name\":\"test__echo\",\"arguments\":{\"text\":\"x\"}}]}, {\"text\":\"carried on\"}]" &&
	family "host is down" && completed_with "carried on" &&
	requests "host is down" >r.json && tool_result u1 | grep -q unavailable
'

test_expect_success 'no key in any log, event or stored payload' '
	test -s "$TRASH/gw/gateway.log" && test -d "$TRASH/tools" &&
	! grep -r "$T7401_KEY" "$TRASH/gw/gateway.log" "$TRASH/tools" &&
	store_sql gw "SELECT payload FROM event_outbox" >payloads && test -s payloads &&
	store_sql gw "SELECT arguments || result FROM tool_calls" >calls.dump && test -s calls.dump &&
	! grep -q "$T7401_KEY" payloads calls.dump
'

test_expect_success 'everything stops cleanly' '
	stop_gateway
'

test_done
