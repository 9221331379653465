#!/usr/bin/env bash
test_description='routing at ingress: tenants from the identity mapping, agents from the routes, memory keys, per-tenant context layers'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/turns.sh"

# Two tenants on telegram: family by actor 42, acme by actor 77 and by channel -500;
# guild has the whole of discord; guests has nobody (it is the unmapped_tenant at the
# end). Routes, first match wins: acme's channel -500 goes to agent work (one memory per
# channel), the rest of telegram to assistant (one memory per person); discord matches
# no route and gets gateway.default_agent (assistant). The third route is never reached.
CONFIG=(
	"models:" "  - {id: echo, adapter: echo}"
	"agents:"
	"  - id: assistant"
	"    model: echo"
	"    context:"
	"      global: ctx/global.md"
	"      platform: ctx/platforms/{platform}.md"
	"      channel: ctx/channels/{platform}/{channel_id}.md"
	"      actor: ctx/actors/{tenant_id}/{platform}/{actor_id}.md"
	"  - id: work"
	"    model: echo"
	"tenants:"
	"  - id: family"
	"    identities:"
	"      - {platform: telegram, actors: [\"42\"]}"
	"  - id: acme"
	"    identities:"
	"      - {platform: telegram, actors: [\"77\"]}"
	"      - {platform: telegram, channels: [\"-500\"]}"
	"  - id: guild"
	"    identities:"
	"      - {platform: discord}"
	"  - id: guests"
	"routes:"
	"  - match: {tenant: acme, channel_id: \"-500\"}"
	"    agent: work"
	"    isolation_key: \"{tenant_id}:{channel_id}\""
	"  - match: {platform: telegram}"
	"    agent: assistant"
	"    isolation_key: \"{platform}:{actor_id}\""
	"  - match: {channel_id: \"-500\"}"
	"    agent: work"
	"    isolation_key: \"never\""
)

# in_tenant TENANT SESSION: `crab sessions list --tenant TENANT` lists SESSION, and
# only sessions of TENANT.
in_tenant() {
	"$CRAB" sessions list --tenant "$1" --json >list.json &&
	jq -e --arg s "$2" --arg t "$1" \
		'any(.sessions[]; .id == $s) and all(.sessions[]; .tenant_id == $t)' \
		list.json >/dev/null || { echo "session $2 is not one of $1's:"; cat list.json; return 1; }
}

# keys SESSION TENANT AGENT RUNTIME-KEY MEMORY-KEY: the session's own fields, and the
# session.created outbox event, say so.
keys() {
	session_show "$1" >ses.json &&
	jq -e --arg t "$2" --arg a "$3" --arg r "$4" --arg m "$5" \
		'.tenant_id == $t and .agent_id == $a and .runtime_key == $r and .memory_key == $m' \
		ses.json >/dev/null || { echo "session: $(cat ses.json)"; return 1; }
	outbox_payloads gw "$1" session.created >created.json &&
	test "$(wc -l <created.json)" = 1 &&
	jq -e --arg t "$2" --arg a "$3" --arg r "$4" --arg m "$5" \
		'.tenant_id == $t and .agent_id == $a and .data.runtime_key == $r and .data.memory_key == $m' \
		created.json >/dev/null || { echo "session.created: $(cat created.json)"; return 1; }
}

# counts: the rows of the tables an accepted event writes to.
counts() {
	store_sql gw "SELECT (SELECT COUNT(*) FROM inbox), (SELECT COUNT(*) FROM sessions),
		(SELECT COUNT(*) FROM idempotency_keys), (SELECT COUNT(*) FROM event_outbox),
		(SELECT COUNT(*) FROM turns)"
}

test_expect_success 'a gateway with two tenants on telegram, and their context files' '
	write_gateway_config gw "${CONFIG[@]}" &&
	mkdir -p gw/ctx/platforms gw/ctx/channels/telegram gw/ctx/actors/family/telegram \
		gw/ctx/actors/acme/telegram &&
	echo "LAYER-GLOBAL: be brief." >gw/ctx/global.md &&
	echo "LAYER-PLATFORM: this is telegram." >gw/ctx/platforms/telegram.md &&
	echo "LAYER-CHANNEL: the kitchen group." >gw/ctx/channels/telegram/kitchen.md &&
	echo "LAYER-ACTOR-FAMILY-42: Ana, likes plants." >gw/ctx/actors/family/telegram/42.md &&
	echo "LAYER-ACTOR-ACME-42: the other 42, at acme." >gw/ctx/actors/acme/telegram/42.md &&
	echo "LAYER-ACTOR-ACME-77: Bo, runs the books." >gw/ctx/actors/acme/telegram/77.md &&
	start_gateway gw &&
	ANY=$(make_lease "*")
'

test_expect_success 'actor 42 lands in family: assistant, memory per person' '
	post_wait "$ANY" "$(chat telegram kitchen 42 "hello from ana" m1)" &&
	S42=$SESSION T42=$TURN &&
	in_tenant family "$S42" &&
	keys "$S42" family assistant family/assistant/telegram/kitchen/42 \
		family/assistant/telegram:42 &&
	jq -e ".text == \"echo: hello from ana\"" wait
'

test_expect_success 'actor 77 lands in acme, on any channel' '
	post_wait "$ANY" "$(chat telegram dm-77 77 "hello from bo" m2)" &&
	S77=$SESSION T77=$TURN &&
	in_tenant acme "$S77" &&
	keys "$S77" acme assistant acme/assistant/telegram/dm-77/77 acme/assistant/telegram:77
'

test_expect_success 'anyone in channel -500 is acme; the first route (tenant + channel) picks agent work' '
	post_wait "$ANY" "$(chat telegram -500 31 "from a stranger in -500" m3)" &&
	S500=$SESSION &&
	in_tenant acme "$S500" &&
	keys "$S500" acme work acme/work/telegram/-500/31 "acme/work/acme:-500" &&
	post_wait "$ANY" "$(chat telegram -500 77 "bo in -500" m4)" &&
	keys "$SESSION" acme work acme/work/telegram/-500/77 "acme/work/acme:-500" &&
	test "$SESSION" != "$S500"
'

test_expect_success 'an actor mapping beats a channel mapping: 42 in -500 is family, and not routed to work' '
	post_wait "$ANY" "$(chat telegram -500 42 "ana in -500" m5)" &&
	in_tenant family "$SESSION" &&
	keys "$SESSION" family assistant family/assistant/telegram/-500/42 \
		family/assistant/telegram:42
'

test_expect_success 'a whole-platform mapping: discord is guild; no route, the default agent, one memory' '
	post_wait "$ANY" "$(chat discord 900 5 "hi on discord" m6)" &&
	in_tenant guild "$SESSION" &&
	keys "$SESSION" guild assistant guild/assistant/discord/900/5 guild/assistant/global
'

test_expect_success 'the same runtime key continues its session' '
	post_wait "$ANY" "$(chat telegram kitchen 42 "again" m7)" &&
	test "$SESSION" = "$S42"
'

test_expect_success 'context: global, platform, channel, actor (of the tenant), then the runtime layer, in order' '
	system_of "$T42" >sys42 && cat sys42 &&
	jq -Rse "
		(index(\"LAYER-GLOBAL\")) as \$g | (index(\"LAYER-PLATFORM\")) as \$p |
		(index(\"LAYER-CHANNEL\")) as \$c | (index(\"LAYER-ACTOR-FAMILY-42\")) as \$a |
		(index(\"Conversation: platform telegram, channel kitchen; actor 42\")) as \$r |
		\$g == 0 and \$g < \$p and \$p < \$c and \$c < \$a and \$a < \$r" sys42 &&
	! grep -q "LAYER-ACTOR-ACME" sys42
'

test_expect_success 'acme'"'"'s actor 77 gets its own actor file, not family'"'"'s; no channel file: that layer is left out' '
	system_of "$T77" >sys77 && cat sys77 &&
	grep -q "LAYER-ACTOR-ACME-77" sys77 && grep -q "LAYER-GLOBAL" sys77 &&
	grep -q "LAYER-PLATFORM" sys77 &&
	! grep -q "LAYER-ACTOR-FAMILY" sys77 && ! grep -q "LAYER-ACTOR-ACME-42" sys77 &&
	! grep -q "LAYER-CHANNEL" sys77 &&
	jq -Rse "index(\"LAYER-PLATFORM: this is telegram.\n\nLAYER-ACTOR-ACME-77\") != null" sys77 &&
	! jq -Rse "test(\"\n\n\n\")" sys77 >/dev/null
'

test_expect_success 'the same actor id under another tenant (a lease fixed to acme) reads acme'"'"'s file' '
	ACME=$(make_lease acme) &&
	post_wait "$ACME" "$(chat telegram kitchen 42 "the acme 42" m8)" &&
	in_tenant acme "$SESSION" &&
	keys "$SESSION" acme assistant acme/assistant/telegram/kitchen/42 \
		acme/assistant/telegram:42 &&
	system_of "$TURN" >sysacme42 && cat sysacme42 &&
	grep -q "LAYER-ACTOR-ACME-42" sysacme42 && ! grep -q "LAYER-ACTOR-FAMILY" sysacme42 &&
	grep -q "LAYER-CHANNEL" sysacme42
'

test_expect_success 'an unmapped actor is 403 unknown_identity, and nothing is stored' '
	counts >before && cat before &&
	post_event "$ANY" "$(chat telegram kitchen 99 "who am i" m9)" &&
	expect_status 403 unknown_identity &&
	post_event "$ANY" "$(chat whatsapp 123 42 "42, but on whatsapp" m10)" &&
	expect_status 403 unknown_identity &&
	counts >after && diff before after
'

test_expect_success 'an envelope claiming tenant_id or agent_id through a lease is refused: 403 forbidden' '
	counts >before &&
	post_event "$ANY" "$(chat telegram kitchen 42 "let me in" m11 |
		jq -c ".tenant_id = \"acme\" | .agent_id = \"work\"")" &&
	expect_status 403 forbidden && jq -e ".error.field == \"tenant_id\"" "$TRASH/reply" &&
	FAMILY=$(make_lease family) &&
	post_event "$FAMILY" "$(chat telegram dm-77 77 "fixed lease" m12 | jq -c ".agent_id = \"work\"")" &&
	expect_status 403 forbidden && jq -e ".error.field == \"agent_id\"" "$TRASH/reply" &&
	counts >after && diff before after &&
	post_wait "$FAMILY" "$(chat telegram dm-77 77 "fixed lease" m12b)" &&
	in_tenant family "$SESSION" &&
	keys "$SESSION" family assistant family/assistant/telegram/dm-77/77 \
		family/assistant/telegram:77
'

test_expect_success 'a lease fixed to family cannot reach an acme session: 403 session_forbidden' '
	counts >before &&
	post_event "$FAMILY" "$(chat telegram dm-77 77 "into acme" m13 | jq -c --arg s "$S77" ".session_id = \$s")" &&
	expect_status 403 session_forbidden &&
	post_event "$ACME" "$(chat telegram kitchen 42 "into family" m14 | jq -c --arg s "$S42" ".session_id = \$s")" &&
	expect_status 403 session_forbidden &&
	counts >after && diff before after &&
	post_wait "$ACME" "$(chat telegram dm-77 77 "acme into acme" m15 | jq -c --arg s "$S77" ".session_id = \$s")" &&
	test "$SESSION" = "$S77"
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_expect_success 'with router.unmapped_actors: route, an unmapped actor lands in unmapped_tenant' '
	write_gateway_config open "${CONFIG[@]}" "router:" \
		"  unmapped_actors: route" "  unmapped_tenant: guests" &&
	start_gateway open && ANY=$(make_lease "*") &&
	post_wait "$ANY" "$(chat telegram kitchen 99 "who am i" g1)" &&
	in_tenant guests "$SESSION" &&
	session_show "$SESSION" | jq -e ".runtime_key == \"guests/assistant/telegram/kitchen/99\" and
		.memory_key == \"guests/assistant/telegram:99\"" &&
	post_wait "$ANY" "$(chat whatsapp 123 42 "42 on whatsapp" g2)" &&
	in_tenant guests "$SESSION" &&
	post_wait "$ANY" "$(chat telegram kitchen 42 "mapped still" g3)" &&
	in_tenant family "$SESSION" &&
	stop_gateway
'

test_done
