#!/usr/bin/env bash
test_description='internal events without a target: where they run and where their answer goes'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/turns.sh"

# cron KEY ACTOR [JQ]: a cron.job.fired of tenant family for ACTOR ("" for none), edited by JQ.
cron() {
	jq -cn --arg k "$1" --arg a "$2" \
		'{type: "cron.job.fired", tenant_id: "family", agent_id: "assistant",
		  text: "check the calendar", idempotency_key: ("cron:" + $k)} +
		 (if $a == "" then {} else {actor_id: $a} end)' | jq -c "${3:-.}"
}

# outbound SESSION TURN: the message.outbound event of TURN in SESSION (it must be the
# only one), into out.json.
outbound() {
	outbox_payloads gw "$1" message.outbound |
		jq -c --arg t "$2" 'select(.turn_id == $t)' >out.json &&
	test "$(wc -l <out.json)" = 1 || { echo "message.outbound of $2:"; cat out.json; return 1; }
}

# target_is CHANNEL: out.json goes to telegram CHANNEL.
target_is() {
	jq -e --arg c "$1" '.data.target.platform == "telegram" and .data.target.channel_id == $c' \
		out.json >/dev/null || { echo "want target $1: $(cat out.json)"; return 1; }
}

test_expect_success 'a gateway: family on telegram, acme where nobody talks' '
	write_gateway_config gw \
		"models:" "  - {id: echo, adapter: echo}" \
		"agents:" "  - {id: assistant, model: echo}" \
		"tenants:" \
		"  - id: family" \
		"    identities: [{platform: telegram, actors: [\"42\", \"43\", \"44\"]}]" \
		"  - id: acme" \
		"    identities: [{platform: telegram, actors: [\"77\"]}]" &&
	start_gateway gw &&
	ANY=$(make_lease "*")
'

test_expect_success 'actor 42 talks on channel A, then on B; actor 44 last talks on C' '
	post_wait "$ANY" "$(chat telegram chan-a 42 "on a" m1)" && SA=$SESSION &&
	post_wait "$ANY" "$(chat telegram chan-b 42 "on b" m2)" && SB=$SESSION &&
	post_wait "$ANY" "$(chat telegram chan-c 44 "on c" m3)" && SC44=$SESSION &&
	test "$SA" != "$SB" && test "$SB" != "$SC44"
'

test_expect_success 'cron for 42 without target: answered on B, in B'"'"'s session for 42' '
	admin_send "$(cron job1 42)" &&
	test "$SESSION" = "$SB" &&
	outbound "$SB" "$TURN" && target_is chan-b &&
	jq -e ".data.text == \"echo: check the calendar\" and .tenant_id == \"family\"" out.json &&
	system_of "$TURN" | grep "Conversation: platform telegram, channel chan-b; internal event cron.job.fired; actor 42"
'

test_expect_success 'the same cron key again is a duplicate: no second turn' '
	"$CRAB" admin event.send "{\"event\": $(cron job1 42)}" >dup.json && cat dup.json &&
	jq -e --arg e "$EVENT" ".duplicate == true and .event_id == \$e" dup.json &&
	test "$(store_sql gw "SELECT COUNT(*) FROM turns WHERE session_id = '"'"'$SB'"'"'")" = 2
'

test_expect_success 'cron for 42 with an explicit target: answered there, in that channel'"'"'s session' '
	admin_send "$(cron job2 42 ".target = {platform: \"telegram\", channel_id: \"chan-a\"}")" &&
	test "$SESSION" = "$SA" &&
	outbound "$SA" "$TURN" && target_is chan-a
'

test_expect_success 'cron for 42 naming session A without target: answered on A, in A' '
	admin_send "$(cron job3 42 ".session_id = \"$SA\"")" &&
	test "$SESSION" = "$SA" &&
	outbound "$SA" "$TURN" && target_is chan-a
'

test_expect_success 'cron for 43, who never talked: the tenant'"'"'s last channel (C), in a session of 43' '
	admin_send "$(cron job4 43)" &&
	test "$SESSION" != "$SC44" &&
	outbound "$SESSION" "$TURN" && target_is chan-c &&
	session_show "$SESSION" | jq -e ".tenant_id == \"family\" and
		.runtime_key == \"family/assistant/telegram/chan-c/43\""
'

test_expect_success 'cron with no actor at all: the tenant'"'"'s last channel too' '
	admin_send "$(cron job5 "")" &&
	outbound "$SESSION" "$TURN" && target_is chan-c
'

test_expect_success 'cron in a tenant nobody talked in: the turn completes, nothing goes out' '
	admin_send "$(cron job6 77 ".tenant_id = \"acme\"")" &&
	session_show "$SESSION" | jq -e ".tenant_id == \"acme\"" &&
	test "$(store_sql gw "SELECT COUNT(*) FROM event_outbox WHERE session_id = '"'"'$SESSION'"'"' AND type = '"'"'message.outbound'"'"'")" = 0 &&
	outbox_payloads gw "$SESSION" turn.completed >done.json && cat done.json &&
	test "$(wc -l <done.json)" = 1 &&
	jq -e --arg t "$TURN" ".turn_id == \$t and .data.outbound == false and
		(.data.no_outbound_reason | type == \"string\" and length > 0) and
		.data.output[0].content == \"echo: check the calendar\"" done.json &&
	turn_show "$TURN" | jq -e ".status == \"completed\""
'

test_expect_success 'a lease may not produce cron.job.fired: 403 forbidden, nothing stored' '
	before=$(store_sql gw "SELECT COUNT(*) FROM inbox") &&
	FAMILY=$(make_lease family) &&
	post_event "$FAMILY" "$(cron job7 42)" && expect_status 403 forbidden &&
	post_event "$ANY" "$(cron job8 42)" && expect_status 403 forbidden &&
	test "$(store_sql gw "SELECT COUNT(*) FROM inbox")" = "$before"
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
