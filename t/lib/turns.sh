# t/lib/turns.sh: helpers for the tests of routing, sessions and turns on the built-in echo
# model (t6002 to t6005). Source it after test-lib.sh and t/lib/store.sh.

# chat PLATFORM CHANNEL ACTOR TEXT [MESSAGE-ID]: a channel.message.received envelope.
chat() {
	jq -cn --arg p "$1" --arg c "$2" --arg a "$3" --arg t "$4" --arg m "${5:-}" \
		'{type: "channel.message.received", text: $t,
		  source: ({platform: $p, channel_id: $c, actor_id: $a} +
			   (if $m == "" then {} else {message_id: $m} end))}'
}

# wait_turn EVENT_ID: waits (15 s at most) for the turn of EVENT_ID, which must have
# completed; sets TURN, and leaves the turns.wait answer in $TRASH/wait.
wait_turn() {
	"$CRAB" admin turns.wait "$(jq -cn --arg e "$1" '{event_id: $e, timeout_ms: 15000}')" \
		>"$TRASH/wait" || return 1
	jq -e '.status == "completed"' "$TRASH/wait" >/dev/null ||
		{ echo "turn of $1: $(cat "$TRASH/wait")"; return 1; }
	TURN=$(jq -r .turn_id "$TRASH/wait")
}

# post_wait TOKEN BODY: posts BODY, which must be accepted (202), and waits for its turn;
# sets EVENT, SESSION and TURN.
post_wait() {
	post_event "$1" "$2" >/dev/null && expect_status 202 &&
	EVENT=$(jq -er .event_id "$TRASH/reply") &&
	SESSION=$(jq -er .session_id "$TRASH/reply") &&
	wait_turn "$EVENT"
}

# admin_send EVENT-JSON: event.send from the local operator (trusted: it may name tenant,
# agent and actor, and send internal events), waiting for the turn, which must have
# completed; sets EVENT, SESSION and TURN.
admin_send() {
	"$CRAB" admin event.send \
		"$(jq -cn --argjson e "$1" '{event: $e, wait: true, timeout_ms: 15000}')" \
		>"$TRASH/wait" || return 1
	jq -e '.status == "completed"' "$TRASH/wait" >/dev/null ||
		{ echo "event.send: $(cat "$TRASH/wait")"; return 1; }
	EVENT=$(jq -r .event_id "$TRASH/wait") &&
	SESSION=$(jq -r .session_id "$TRASH/wait") &&
	TURN=$(jq -r .turn_id "$TRASH/wait")
}

# turn_show TURN: turns.show's turn object (with request and response), one JSON line.
turn_show() {
	"$CRAB" admin turns.show "$(jq -cn --arg t "$1" '{turn_id: $t}')" | jq -c .turn
}

# session_show SESSION: sessions.show's session object, one JSON line.
session_show() {
	"$CRAB" admin sessions.show "$(jq -cn --arg s "$1" '{session_id: $s}')" | jq -c .session
}

# system_of TURN: the composed context (request.system) TURN sent to its model.
system_of() {
	turn_show "$1" | jq -er .request.system
}

# outbox_rows NAME SESSION: SESSION's outbox rows in the store of gateway NAME, one per
# line as "seq|type|idempotency_key", in seq order.
outbox_rows() {
	store_sql "$1" "SELECT seq, type, idempotency_key FROM event_outbox
		WHERE session_id = '$2' ORDER BY seq"
}

# outbox_payloads NAME SESSION TYPE: the frames (JSON) of SESSION's outbox rows of TYPE,
# one per line, in seq order.
outbox_payloads() {
	store_sql "$1" "SELECT payload FROM event_outbox
		WHERE session_id = '$2' AND type = '$3' ORDER BY seq"
}
