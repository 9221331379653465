#!/usr/bin/env bash
test_description='the WebSocket endpoint GET /v1/ws (PROTOCOLS.md §2) against the ws npm client and hand-made frames: events and streamed replies, deliveries and acks, bad frames, refusals, connection-bound leases, resends, crab chat in tmux, wss'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/peers.sh"

MAX_BODY=4096

# crab chat runs in a tmux server of its own, on a socket in $TRASH (so no other tmux
# session is touched and nothing is left behind), killed when the script exits whatever
# happened, before test-lib's cleanup removes $TRASH.
tmux_() {
	tmux -S "$TRASH/tmux.sock" -f "$TRASH/tmux.conf" "$@"
}
trap 'tmux -S "$TRASH/tmux.sock" kill-server 2>/dev/null; test_cleanup' EXIT

# wscheck CHECK [VAR=VALUE...]: t/fakes/ws-gateway-check.mjs CHECK against the gateway.
wscheck() {
	local check=$1
	shift
	env GW_URL="$GW_URL" CRAB="$CRAB" MAX=$MAX_BODY "$@" \
		node "$FAKES_DIR/ws-gateway-check.mjs" "$check"
}

# lease NAME JSON-ARGS: lease.create for tenant family (600 s, JSON-ARGS merged); sets
# NAME_TOKEN and NAME_ID.
lease() {
	local out
	out=$("$CRAB" admin lease.create "$(jq -cn --argjson extra "$2" \
		'{tenant_id: "family", scopes: ["produce", "subscribe"], ttl_s: 600} + $extra')") &&
	eval "$1_TOKEN=\$(echo \"\$out\" | jq -er .token)" &&
	eval "$1_ID=\$(echo \"\$out\" | jq -er .lease_id)"
}

leases_live() {
	"$CRAB" admin status | jq -er .leases_live
}
leases_live_is() {
	test "$(leases_live)" = "$1"
}
revoked_in_store() { # revoked_in_store LEASE_ID
	test -n "$(store_sql gw "SELECT revoked_at FROM leases WHERE id = '$1' AND revoked_at IS NOT NULL")"
}

# ---- crab chat in tmux ----

pane() { # what the chat's pane shows now (its history aside)
	tmux_ capture-pane -p -t chat
}
# prompt_last: the pane's last line that is not blank is the prompt "> ".
prompt_last() {
	test "$(pane | grep -v '^ *$' | tail -n 1 | sed 's/ *$//')" = ">"
}
chat_ready() {
	pane | grep -q "a new chat; Ctrl-D or /quit ends it" && prompt_last
}
replied() { # replied TEXT: "echo: TEXT" is on the screen, and the prompt again after it
	pane | grep -qxF "echo: $1" && prompt_last
}
# say TEXT: types TEXT and Enter, and waits for the whole reply and the next prompt.
say() {
	tmux_ send-keys -t chat -l "$1" && tmux_ send-keys -t chat Enter &&
	wait_until 10 replied "$1" || { pane | grep -v "^ *\$"; return 1; }
}

test_expect_success 'the ws npm client, a gateway (max_body_bytes 4096) and a lease for a new session' '
	ensure_openai_client &&
	{ test -f "$FAKES_DIR/node_modules/ws/package.json" ||
		{ echo "t/fakes/node_modules has no ws: run npm ci in t/fakes"; false; }; } &&
	write_gateway_config gw "limits:" "  max_body_bytes: $MAX_BODY" &&
	start_gateway gw &&
	lease A "{\"session_id\": \"new\"}"
'

test_expect_success 'ws client: subscribe, three events one by one: accepted with the ref, message.delta making "echo: <text>", deliveries in seq order, acked' '
	{ wscheck stream TOKEN="$A_TOKEN" >out; rc=$?; cat out; test $rc -eq 0; } &&
	SES_A=$(sed -n "s/^session \(ses_[^:]*\):.*/\1/p" out) &&
	test "$(store_sql gw "SELECT session_id FROM leases WHERE id = '"'"'$A_ID'"'"'")" = "$SES_A" &&
	"$CRAB" admin sessions.show "{\"session_id\": \"$SES_A\"}" |
		jq -e ".session.turns == 6 and ([.turns[] | select(.status == \"completed\")] | length) == 6"
'

test_expect_success 'bad frames: error frames on an open connection; 1002, 1007, 1009 closes; cut frames; the gateway serves on' '
	wscheck badframes TOKEN="$A_TOKEN" &&
	curl -sS -f "$GW_URL/v1/health" | jq -e ".status == \"ok\"" &&
	kill -0 "$GW_PID"
'

test_expect_success 'refusals: no Authorization 401; subscribe without the scope and an event without produce are forbidden; a revoked lease is closed with 1008' '
	lease P "{\"scopes\": [\"produce\"]}" &&
	lease S "{\"scopes\": [\"subscribe\"]}" &&
	lease R "{}" &&
	wscheck refusals TOKEN="$R_TOKEN" LEASE_ID="$R_ID" TOKEN_PRODUCE="$P_TOKEN" \
		TOKEN_SUBSCRIBE="$S_TOKEN"
'

test_expect_success 'a connection-bound lease is revoked when its WebSocket closes' '
	lease B "{\"session_id\": \"new\", \"connection_bound\": true}" &&
	before=$(leases_live) &&
	wscheck bound TOKEN="$B_TOKEN" &&
	wait_until 5 revoked_in_store "$B_ID" &&
	wait_until 5 leases_live_is $((before - 1)) &&
	post_event "$B_TOKEN" "$(message bound-after)" && expect_status 401 unauthenticated
'

test_expect_success 'unacknowledged deliveries are sent again to the same lease on a new connection, in order' '
	lease U "{\"session_id\": \"new\"}" &&
	wscheck resend TOKEN="$U_TOKEN"
'

test_expect_success 'crab chat in tmux: three messages, three streamed replies, /quit exits 0 and revokes its lease' '
	printf "set -g remain-on-exit on\nset -g history-limit 2000\n" >tmux.conf &&
	{
		printf "export CRAB_ADMIN_SOCKET=%q ASAN_OPTIONS=%q UBSAN_OPTIONS=%q\n" \
			"$CRAB_ADMIN_SOCKET" "$ASAN_OPTIONS" "$UBSAN_OPTIONS" &&
		printf "%q chat new 2>%q\n" "$CRAB" "$TRASH/chat.err" &&
		printf "echo EXIT=\$? >%q\n" "$TRASH/chat.exit"
	} >chat.sh &&
	before=$(leases_live) &&
	tmux_ new-session -d -s chat -x 120 -y 40 "sh $TRASH/chat.sh" &&
	{ wait_until 10 chat_ready || { pane | grep -v "^ *\$"; cat chat.err; false; }; } &&
	say "hello from tmux" &&
	say "a second line, with ünïcödé" &&
	say "and a third" &&
	tmux_ send-keys -t chat -l "/quit" && tmux_ send-keys -t chat Enter &&
	wait_until 10 test -s chat.exit &&
	tmux_ capture-pane -p -S - -t chat | grep -v "^ *\$" >screen && cat screen && cat chat.err &&
	grep -qx EXIT=0 chat.exit &&
	grep -qxF "a new chat; Ctrl-D or /quit ends it" screen &&
	grep -qxF "echo: hello from tmux" screen &&
	grep -qxF "echo: a second line, with ünïcödé" screen &&
	grep -qxF "echo: and a third" screen &&
	sanitizer_clean chat.err &&
	tmux_ kill-session -t chat &&
	store_sql gw "SELECT id, session_id, revoked_at, connection_bound FROM leases
		ORDER BY created_at DESC, id DESC LIMIT 1" >chat.lease && cat chat.lease &&
	IFS="|" read -r CHAT_LEASE CHAT_SES CHAT_REVOKED CHAT_BOUND <chat.lease &&
	test -n "$CHAT_REVOKED" && test "$CHAT_BOUND" = 1 &&
	leases_live_is "$before" &&
	"$CRAB" admin sessions.show "{\"session_id\": \"$CHAT_SES\"}" >chat.session &&
	jq -e ".session.turns == 3 and ([.turns[] | select(.status == \"completed\")] | length) == 3" chat.session &&
	jq -r ".turns[].output[0].content" chat.session >outputs &&
	printf "%s\n" "echo: hello from tmux" "echo: a second line, with ünïcödé" "echo: and a third" >want &&
	cmp outputs want
'

test_expect_success 'everything stops cleanly: open connections are closed 1001, exit 0, no sanitizer report' '
	wscheck held TOKEN="$A_TOKEN" >held.out 2>&1 &
	HELD=$! && TEST_PIDS="$TEST_PIDS $HELD" &&
	{ wait_until 10 grep -q "^ready" held.out || { cat held.out; false; }; } &&
	stop_gateway &&
	{ wait "$HELD" || { cat held.out; false; }; } && cat held.out
'

test_expect_success 'wss (tls: "on"): the gateway key is the one pair.test names, and a turn streams as over ws' '
	write_gateway_config tlsgw &&
	sed -i "s/^gateway:\$/gateway:\n  tls: \"on\"/" tlsgw/crab.yaml &&
	start_gateway tlsgw &&
	case "$GW_URL" in https://*) ;; *) echo "not https: $GW_URL"; false ;; esac &&
	lease T "{\"session_id\": \"new\"}" &&
	wscheck tls TOKEN="$T_TOKEN" GW_FP="$(gw_fp)" &&
	stop_gateway
'

test_done
