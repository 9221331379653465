#!/usr/bin/env bash
test_description='an agent changes its own configuration through the gateway config tools (seed: "Config management and safety"): apply takes effect on the next turn, an invalid change and one outside its policy change nothing, revert; revisions, audit rows and events agree'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"
. "$TEST_ROOT/t/lib/peers.sh"

export T7403_KEY=sk-t7403-secret-0123456789abcdef
N=0

# say TEXT: a message of actor 42 (tenant family); waits for its turn, ./wait its outcome.
say() {
	N=$((N + 1))
	post_event "$LEASE" "$(envelope 42 "m$N" "$1")" >/dev/null && expect_status 202 &&
	EVENT=$(jq -er .event_id "$TRASH/reply") &&
	"$CRAB" admin turns.wait "{\"event_id\":\"$EVENT\",\"timeout_ms\":30000}" >wait ||
		{ echo "no outcome:"; cat wait; return 1; }
	jq -c . wait
}

# tool NAME ARGS THEN: the model calls config tool NAME once with ARGS, then says THEN.
tool() {
	fake_script "{\"steps\":[{\"tool_calls\":[{\"id\":\"k$N\",\"name\":\"$1\",\"arguments\":$2}]},{\"text\":\"$3\"}]}"
}

# result: the tool message the model got back in the last request of the last turn.
result() {
	fake_requests | jq -r 'sort_by(.seq) | last | .body.messages | map(select(.role == "tool")) | last | .content'
}

# max_tokens_sent: what the last request to the model asked for.
max_tokens_sent() {
	fake_requests | jq -r 'sort_by(.seq) | last | .body.max_completion_tokens'
}

revisions_agree() {
	local rows events
	rows=$(store_sql gw "SELECT COUNT(*) FROM config_revisions")
	events=$(store_sql gw "SELECT COUNT(*) FROM event_outbox
		WHERE type IN ('config.applied', 'config.reverted')")
	echo "revisions $rows, config events $events"
	# The first revision is the file the gateway started with: no event for it.
	test "$rows" = "$((events + 1))" &&
	"$CRAB" config revisions >list && test "$(grep -c . list)" -ge "$rows"
}

test_expect_success 'a gateway whose agent may use the config tools on its own section' '
	start_openai_fake --api-key "$T7403_KEY" &&
	write_gateway_config gw "$(openai_yaml T7403_KEY)" "    max_tokens: 1000" \
		"    config_policy:" \
		"      tools: [config.get, config.validate, config.apply, config.revert, config.revisions]" \
		"  - id: other" "    model: gpt" "    max_tokens: 500" "$PEER_TENANTS" &&
	start_gateway gw && LEASE=$(make_lease family) &&
	cp gw/crab.yaml before.yaml
'

test_expect_success 'the tools are shown to the agent; config.get shows its own section' '
	tool config__get "{}" "seen" && say "show me" &&
	fake_requests | jq -e "sort_by(.seq) | .[0].body.tools | map(.function.name) | index(\"config__apply\") != null" >/dev/null &&
	result | grep -q "\"max_tokens\"" && ! result | grep -q "\"other\""
'

test_expect_success 'the agent applies a valid change: on disk, in force on the next turn, no restart' '
	GW=$GW_PID &&
	tool config__apply "{\"patch\":{\"agents\":{\"assistant\":{\"max_tokens\":777}}}}" "applied" &&
	say "make answers shorter" && jq -e ".status == \"completed\"" wait >/dev/null &&
	result | tee r.txt && tail -1 r.txt | jq -e ".revision >= 2" >/dev/null &&
	grep -q "max_tokens: 777" gw/crab.yaml &&
	say "how long now" && test "$(max_tokens_sent)" = 777 &&
	test "$GW_PID" = "$GW" && kill -0 "$GW_PID" &&
	revisions_agree
'

test_expect_success 'an invalid change is refused with the reason, and nothing changes on disk' '
	cp gw/crab.yaml good.yaml &&
	tool config__apply "{\"patch\":{\"agents\":{\"assistant\":{\"max_tokens\":0}}}}" "refused" &&
	say "zero tokens please" && result | tee r.txt | grep -q "\"ok\":false\\|error" &&
	grep -q max_tokens r.txt &&
	cmp gw/crab.yaml good.yaml && revisions_agree
'

test_expect_success 'a patch outside its policy (another agent, a tenant, an identity mapping) is refused and changes nothing' '
	tool config__apply "{\"patch\":{\"agents\":{\"other\":{\"max_tokens\":5}}}}" "no" &&
	say "change the other agent" && result | grep -q forbidden &&
	tool config__apply "{\"patch\":{\"tenants\":{\"family\":{\"identities\":[{\"platform\":\"slack\"}]}}}}" "no" &&
	say "move me to slack" && result | grep -q forbidden &&
	cmp gw/crab.yaml good.yaml && revisions_agree
'

test_expect_success 'revert to the first revision: the file as it started, in force on the next turn' '
	tool config__revisions "{}" "listed" && say "list them" && result | grep -q "agent:assistant" &&
	tool config__revert "{\"revision\":1}" "reverted" && say "undo" &&
	jq -e ".status == \"completed\"" wait >/dev/null &&
	grep -q "max_tokens: 1000" gw/crab.yaml &&
	say "and now" && test "$(max_tokens_sent)" = 1000 &&
	revisions_agree &&
	store_sql gw "SELECT type, payload FROM event_outbox WHERE type LIKE '"'"'config.%'"'"'" >applied &&
	test "$(grep "^config.applied|" applied | grep -c "agent:assistant")" = 1 &&
	test "$(grep "^config.reverted|" applied | grep -c "agent:assistant")" = 1
'

test_expect_success 'no key in the revisions, events or log' '
	test -s gw/gateway.log && ! grep -q "$T7403_KEY" gw/gateway.log &&
	store_sql gw "SELECT yaml FROM config_revisions" >revisions && test -s revisions &&
	store_sql gw "SELECT payload FROM event_outbox" >payloads && test -s payloads &&
	! grep -q "$T7403_KEY" revisions payloads
'

test_expect_success 'everything stops cleanly' '
	stop_gateway
'

test_done
