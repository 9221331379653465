#!/usr/bin/env bash
test_description='sessions and turns on the echo model: outbox seq, history, close, new, config revisions, context file cache'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/turns.sh"

# assistant keeps 50 turns of history and has a global and a per-actor context file;
# short keeps one turn and is routed the telegram channel "short".
CONFIG=(
	"models:" "  - {id: echo, adapter: echo}"
	"agents:"
	"  - id: assistant"
	"    model: echo"
	"    context:"
	"      global: ctx/global.md"
	"      actor: ctx/{platform}-{actor_id}.md"
	"  - id: short"
	"    model: echo"
	"    history: {max_turns: 1}"
	"tenants:"
	"  - id: default"
	"    identities: [{platform: cli}]"
	"  - id: family"
	"    identities: [{platform: telegram, actors: [\"42\"]}]"
	"routes:"
	"  - match: {platform: telegram, channel_id: short}"
	"    agent: short"
)

# messages_of TURN: request.messages of TURN as "role:content" lines.
messages_of() {
	turn_show "$1" | jq -r '.request.messages[] | "\(.role):\(.content)"'
}

context_reads() {
	"$CRAB" admin status | jq -er .turns.context_file_reads
}

test_expect_success 'the gateway starts' '
	write_gateway_config gw "${CONFIG[@]}" &&
	mkdir -p gw/ctx && echo "GLOBAL-V1" >gw/ctx/global.md &&
	echo "ACTOR-42" >gw/ctx/telegram-42.md &&
	start_gateway gw &&
	FAMILY=$(make_lease family)
'

test_expect_success 'crab event send --wait prints the agent'"'"'s reply' '
	"$CRAB" event send --wait "hello there" >out && cat out &&
	test "$(cat out)" = "echo: hello there" &&
	"$CRAB" event send --wait --tenant family --platform telegram --channel c0 --actor 42 \
		"from telegram" >out && cat out &&
	test "$(cat out)" = "echo: from telegram"
'

test_expect_success 'three turns in one session' '
	post_wait "$FAMILY" "$(chat telegram c1 42 "first" s1)" && S=$SESSION T1=$TURN &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "second" s2)" && test "$SESSION" = "$S" &&
	T2=$TURN &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "third" s3)" && test "$SESSION" = "$S" &&
	T3=$TURN && test "$T1" != "$T2" && test "$T2" != "$T3"
'

test_expect_success 'the outbox seq of the session is 1..10 without gaps, in order of the turns' '
	outbox_rows gw "$S" >rows && cat rows &&
	cut -d"|" -f1 rows >seqs && seq 1 10 >want && diff want seqs &&
	cut -d"|" -f2 rows >types &&
	printf "%s\n" session.created \
		turn.started turn.completed message.outbound \
		turn.started turn.completed message.outbound \
		turn.started turn.completed message.outbound >want && diff want types &&
	outbox_payloads gw "$S" message.outbound | jq -r .turn_id >out_turns &&
	printf "%s\n" "$T1" "$T2" "$T3" >want && diff want out_turns &&
	session_show "$S" | jq -e ".last_seq == 10 and .turns == 3"
'

test_expect_success 'every frame carries its row'"'"'s seq; message.outbound keys are <turn>:out:0, unique' '
	store_sql gw "SELECT seq, payload FROM event_outbox WHERE session_id = '"'"'$S'"'"'" |
		while IFS="|" read -r seq payload; do
			echo "$payload" | jq -e --argjson n "$seq" --arg s "$S" \
				".seq == \$n and .session_id == \$s" >/dev/null || exit 1
		done &&
	outbox_payloads gw "$S" message.outbound >outs &&
	jq -c "select(.idempotency_key != (.turn_id + \":out:0\"))" outs >bad && test ! -s bad &&
	test "$(jq -r .idempotency_key outs | sort -u | wc -l)" = 3 &&
	jq -s -e "all(.[]; .data.target.channel_id == \"c1\" and (.data.text | startswith(\"echo: \")))" outs &&
	jq -r .data.reply_to outs >replies && printf "%s\n" s1 s2 s3 >want && diff want replies
'

test_expect_success 'history: the third turn sends the first two turns, then its own message' '
	messages_of "$T3" >msgs && cat msgs &&
	printf "%s\n" "user:first" "assistant:echo: first" "user:second" \
		"assistant:echo: second" "user:third" >want && diff want msgs &&
	messages_of "$T1" >msgs && printf "%s\n" "user:first" >want && diff want msgs
'

test_expect_success 'history.max_turns: 1 sends only the last turn' '
	post_wait "$FAMILY" "$(chat telegram short 42 "one" h1)" && SS=$SESSION &&
	session_show "$SS" | jq -e ".agent_id == \"short\"" &&
	post_wait "$FAMILY" "$(chat telegram short 42 "two" h2)" &&
	post_wait "$FAMILY" "$(chat telegram short 42 "three" h3)" && test "$SESSION" = "$SS" &&
	messages_of "$TURN" >msgs && cat msgs &&
	printf "%s\n" "user:two" "assistant:echo: two" "user:three" >want && diff want msgs
'

test_expect_success '"session_id": "new" starts a fresh session with no history, which later events continue' '
	post_wait "$FAMILY" "$(chat telegram c1 42 "afresh" n1 | jq -c ".session_id = \"new\"")" &&
	S2=$SESSION && test "$S2" != "$S" &&
	messages_of "$TURN" >msgs && printf "%s\n" "user:afresh" >want && diff want msgs &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "and on" n2)" && test "$SESSION" = "$S2" &&
	messages_of "$TURN" >msgs && printf "%s\n" "user:afresh" "assistant:echo: afresh" \
		"user:and on" >want && diff want msgs &&
	session_show "$S" | jq -e ".status == \"open\" and .turns == 3"
'

test_expect_success 'crab sessions list and show' '
	"$CRAB" sessions list --tenant family >list && cat list &&
	grep -E "^$S2 +open +family +assistant +2 " list &&
	grep -E "^$SS +open +family +short +3 " list &&
	! grep -E " default " list &&
	"$CRAB" sessions list --tenant default --json | jq -e ".sessions | length == 1" &&
	"$CRAB" sessions show "$S2" >show && cat show &&
	grep -Fx "session  $S2 (open)" show && grep -Fx "tenant   family" show &&
	grep -Fx "runtime  family/assistant/telegram/c1/42" show &&
	grep -Fx "  > afresh" show && grep -Fx "  < echo: and on" show
'

test_expect_success 'crab sessions close: the next message of the runtime key opens a new session' '
	"$CRAB" sessions close "$S2" >closed && cat closed &&
	grep -Fx "closed $S2 (0 leases revoked)" closed &&
	"$CRAB" sessions show "$S2" --json | jq -e ".session.status == \"closed\"" &&
	"$CRAB" sessions list --tenant family --status closed --json |
		jq -e --arg s "$S2" "[.sessions[].id] == [\$s]" &&
	test_must_fail "$CRAB" sessions close "$S2" 2>err && grep -q not_found err &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "after close" c1)" && S3=$SESSION &&
	test "$S3" != "$S2" && test "$S3" != "$S" &&
	messages_of "$TURN" >msgs && printf "%s\n" "user:after close" >want && diff want msgs
'

test_expect_success 'a lease bound to a session stops working when the session is closed: 401' '
	BOUND=$("$CRAB" admin lease.create "{\"tenant_id\": \"family\", \"session_id\": \"$S3\", \"scopes\": [\"produce\"], \"ttl_s\": 600}" | jq -er .token) &&
	post_wait "$BOUND" "$(chat telegram c1 42 "bound" b1)" && test "$SESSION" = "$S3" &&
	"$CRAB" sessions close "$S3" >closed && grep -Fx "closed $S3 (1 leases revoked)" closed &&
	post_event "$BOUND" "$(chat telegram c1 42 "bound again" b2)" &&
	expect_status 401 unauthenticated
'

test_expect_success 'each turn records its model and the config revision it ran under' '
	test "$(store_sql gw "SELECT COUNT(*), MAX(revision) FROM config_revisions")" = "1|1" &&
	turn_show "$T3" | jq -e ".model == \"echo\" and .config_revision == 1" &&
	outbox_payloads gw "$S" turn.completed | jq -s -e "length == 3 and
		all(.[]; .data.model == \"echo\" and .data.config_revision == 1)"
'

test_expect_success 'a restart with the same file keeps the revision; a changed file makes a new one' '
	stop_gateway && start_gateway gw &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "same config" r1)" &&
	turn_show "$TURN" | jq -e ".config_revision == 1" &&
	stop_gateway &&
	echo "# changed: the config revision moves on" >>gw/crab.yaml &&
	start_gateway gw &&
	test "$(store_sql gw "SELECT COUNT(*), MAX(revision) FROM config_revisions")" = "2|2" &&
	store_sql gw "SELECT yaml FROM config_revisions WHERE revision = 2" | grep -q "^# changed" &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "new config" r2)" && TR2=$TURN &&
	turn_show "$TR2" | jq -e ".config_revision == 2 and .model == \"echo\"" &&
	outbox_payloads gw "$SESSION" turn.completed | jq -s -e ".[-1].data.config_revision == 2" &&
	turn_show "$T3" | jq -e ".config_revision == 1"
'

test_expect_success 'context files are read once, and again only when changed' '
	post_wait "$FAMILY" "$(chat telegram c1 42 "ctx one" x1)" &&
	R1=$(context_reads) && test "$R1" -ge 2 &&
	system_of "$TURN" | grep -q GLOBAL-V1 &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "ctx two" x2)" &&
	test "$(context_reads)" = "$R1" &&
	echo "GLOBAL-V2, edited" >gw/ctx/global.md &&
	post_wait "$FAMILY" "$(chat telegram c1 42 "ctx three" x3)" &&
	test "$(context_reads)" = "$((R1 + 1))" &&
	system_of "$TURN" >sys && cat sys &&
	grep -q "GLOBAL-V2, edited" sys && ! grep -q GLOBAL-V1 sys && grep -q ACTOR-42 sys
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
