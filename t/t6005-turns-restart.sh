#!/usr/bin/env bash
test_description='accepted events whose turns have not run when the gateway stops run after the restart, once each, in order'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/turns.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"

# The OpenAI fake answers as the echo model does ("echo: TEXT"), but takes 100 ms a
# request: a burst of N turns of one session takes two seconds, so that the stop and the
# kill below find turns still waiting however fast the gateway is.
export RESTART_KEY=sk-turns-restart-0123456789abcdef

N=20

# post_burst TOKEN PREFIX CHANNEL: N messages "PREFIX 1".."PREFIX N" from telegram
# CHANNEL, actor 42, on N connections at once (so that they are accepted faster than
# their turns run), without waiting for any turn. Returns as soon as all are answered;
# burst_accepted reads the answers.
post_burst() {
	local args=() i
	for i in $(seq 1 $N); do
		[ "$i" -eq 1 ] || args+=(--next)
		args+=(-X POST "$GW_URL/v1/events" -H "Authorization: Bearer $1"
			-H "Content-Type: application/json" -o "$2.reply.$i" -w "%{http_code}\n"
			--data-binary "$(chat telegram "$3" 42 "$2 $i" "$2-$i")")
	done
	curl -sS --parallel --parallel-immediate --parallel-max $N "${args[@]}" >"$2.codes" \
		2>"$2.curl-err"
}

# burst_accepted PREFIX: every message of the burst was accepted, all into one session
# (into PREFIX.session). Their acceptance order is the order of their event ids:
# "event_id text" lines in that order go to PREFIX.accepted.
burst_accepted() {
	local i
	test "$(sort -u "$1.codes")" = 202 || { cat "$1.codes" "$1".reply.*; return 1; }
	for i in $(seq 1 $N); do
		echo "$(jq -er .event_id "$1.reply.$i") $1 $i" || return 1
	done | LC_ALL=C sort >"$1.accepted" &&
	cat "$1".reply.* | jq -r .session_id | sort -u >"$1.session" &&
	test "$(wc -l <"$1.session")" = 1 || { echo "not one session:"; cat "$1.session"; return 1; }
}

# pending: how many accepted events still wait for their turn, in the store.
pending() {
	store_sql gw "SELECT COUNT(*) FROM inbox WHERE state = 'pending'"
}

# all_done PREFIX: the last accepted event of PREFIX has its turn completed, and then so
# have all the others (a session runs its events in order), exactly one turn each; in
# outbox order the turns answer the events in the order they were accepted, and their
# answers go out in that order too, with seq 1, 2, 3... and no gap.
all_done() {
	local ses
	ses=$(cat "$1.session")
	wait_turn "$(tail -n 1 "$1.accepted" | cut -d" " -f1)" &&
	test "$(pending)" = 0 &&
	test "$(store_sql gw "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM turns
		WHERE session_id = '$ses' AND status = 'completed'")" = "$N|$N" &&
	test "$(store_sql gw "SELECT COUNT(*) FROM turns WHERE session_id = '$ses'")" = "$N" &&
	cut -d" " -f1 "$1.accepted" >"$1.want" &&
	outbox_payloads gw "$ses" turn.completed | jq -r .data.event_id >"$1.done" &&
	diff "$1.want" "$1.done" &&
	cut -d" " -f2- "$1.accepted" | sed "s/^/echo: /" >"$1.want" &&
	outbox_payloads gw "$ses" message.outbound | jq -r .data.text >"$1.texts" &&
	diff "$1.want" "$1.texts" &&
	outbox_rows gw "$ses" | cut -d"|" -f1 >"$1.seqs" &&
	seq 1 $((1 + 3 * N)) >"$1.want" && diff "$1.want" "$1.seqs"
}

# history_ok PREFIX: the last turn was sent every earlier message of the burst, in order.
history_ok() {
	local last
	last=$(store_sql gw "SELECT id FROM turns
		WHERE event_id = '$(tail -n 1 "$1.accepted" | cut -d" " -f1)'") &&
	turn_show "$last" | jq -r '.request.messages[] | select(.role == "user") | .content' \
		>"$1.history" &&
	cut -d" " -f2- "$1.accepted" >"$1.want" &&
	diff "$1.want" "$1.history"
}

test_expect_success 'the gateway starts, its model 100 ms a request' '
	start_openai_fake --api-key "$RESTART_KEY" --delay-ms 100 &&
	write_gateway_config gw "$(openai_yaml RESTART_KEY)" \
		"tenants:" "  - {id: family, identities: [{platform: telegram, actors: [\"42\"]}]}" &&
	start_gateway gw &&
	FAMILY=$(make_lease family)
'

test_expect_success "$N events posted to one session, then a clean stop with turns still waiting" '
	post_burst "$FAMILY" stop c1 && stop_gateway &&
	burst_accepted stop &&
	echo "$(pending) of $N still waiting at the stop" && test "$(pending)" -gt 0
'

test_expect_success 'after the restart every turn completes, once each, in the order of the events' '
	start_gateway gw &&
	all_done stop && history_ok stop
'

test_expect_success 'the turns survived a stop, not a new session: the burst'"'"'s session is the runtime key'"'"'s current one' '
	post_wait "$FAMILY" "$(chat telegram c1 42 "after" after-1)" &&
	test "$SESSION" = "$(cat stop.session)"
'

test_expect_success "$N events to a new session, then kill -9 with turns still waiting" '
	post_burst "$FAMILY" crash c2 && crash_gateway &&
	burst_accepted crash &&
	test "$(cat crash.session)" != "$(cat stop.session)" &&
	echo "$(pending) of $N still waiting at the crash" && test "$(pending)" -gt 0
'

test_expect_success 'after the crash too: every turn once, in the order of the events' '
	start_gateway gw &&
	all_done crash && history_ok crash
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
