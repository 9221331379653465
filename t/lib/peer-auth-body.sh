# t/lib/peer-auth-body.sh: the checks of t7002 (SQLite) and t7003 (PostgreSQL): the
# authorization matrix of PEER_AUTH_MODEL.md on the public listener. Sourced after
# test-lib.sh, store.sh and peers.sh.


chat() { # chat PLATFORM ACTOR MESSAGE_ID [JQ]
	jq -cn --arg p "$1" --arg a "$2" --arg m "$3" \
		'{type: "channel.message.received", text: "hi",
		  source: {platform: $p, channel_id: "c1", actor_id: $a, message_id: $m}}' |
		jq -c "${4:-.}"
}
cron() { # cron KEY [JQ]
	jq -cn --arg k "$1" '{type: "cron.job.fired", tenant_id: "family", agent_id: "assistant",
		actor_id: "42", text: "daily check", idempotency_key: $k,
		target: {platform: "telegram", channel_id: "c1"}}' | jq -c "${2:-.}"
}

# raw_tls HEAD [CERT-DIR]: sends a request head (no body) over TLS, with the certificate of
# CERT-DIR if given, and keeps its side open; the answer must come within 3 s.
raw_tls() {
	local cert=()
	[ $# -ge 2 ] && cert=(-cert "$2/identity.crt" -key "$2/identity.key")
	{ printf '%s\r\n\r\n' "$1"; sleep 3; } |
		timeout 5 openssl s_client -quiet -connect "${GW_URL#https://}" "${cert[@]}" >raw.out 2>raw.err
	cat raw.out
}

test_expect_success 'a TLS gateway, a tool host, a subscriber and a remote CLI, paired' '
	write_gateway_config gw "$PEER_TENANTS" &&
	sed -i "/^gateway:/a\\\\  tls: \"on\"" gw/crab.yaml &&
	start_gateway gw && GW_FP=$(gw_fp) &&
	start_component tool --type tool --offers "{\"tools\":true,\"produces\":[\"cron.job.fired\"]}" &&
	start_component sub --type subscriber \
		--offers "{\"subscribes\":[\"message.outbound\"],\"produces\":[\"channel.message.received\"]}" &&
	"$CRAB" pair tool "$tool_URL" cron >/dev/null &&
	"$CRAB" pair subscriber "$sub_URL" listener >/dev/null &&
	pair_listen cli && "$CRAB" pair cli "$LISTEN_URL" laptop >/dev/null && wait $LISTEN_PID &&
	TOOL=$(peer_id cron tool) && SUB=$(peer_id listener subscriber) && OP=$(peer_id laptop operator)
'

test_expect_success 'a subscriber produces the chat events it offered; the tenant comes from the identity mapping' '
	peer_post sub "$(chat telegram 42 m1)" && expect_status 202 &&
	EVT=$(jq -r .event_id reply) &&
	test "$(store_sql gw "SELECT tenant_id, producer FROM inbox WHERE id = '"'"'$EVT'"'"'")" = "family|peer:$SUB"
'

test_expect_success 'a subscriber may not produce what it did not offer: 403 forbidden (type)' '
	peer_post sub "$(cron k1)" && expect_status 403 forbidden &&
	jq -e ".error.field == \"type\"" reply
'

test_expect_success 'a subscriber (a listener relaying chat users) may not name tenant_id or agent_id: 403 forbidden' '
	peer_post sub "$(chat telegram 42 m2 ".tenant_id = \"acme\"")" && expect_status 403 forbidden &&
	jq -e ".error.field == \"tenant_id\"" reply &&
	peer_post sub "$(chat telegram 42 m3 ".agent_id = \"assistant\"")" && expect_status 403 forbidden
'

test_expect_success 'a tool host that offered cron.job.fired names tenant and agent (produce_internal), and nothing else' '
	peer_post tool "$(cron k2)" && expect_status 202 &&
	test "$(store_sql gw "SELECT tenant_id FROM inbox WHERE id = '"'"'$(jq -r .event_id reply)'"'"'")" = family &&
	peer_post tool "$(chat telegram 42 m4)" && expect_status 403 forbidden
'

test_expect_success 'an operator peer produces for any tenant it names' '
	as_peer cli -X POST "$GW_URL/v1/events" -H "Content-Type: application/json" \
		--data-binary "$(chat slack u9 m5 ".tenant_id = \"acme\"")" && expect_status 202 &&
	test "$(store_sql gw "SELECT tenant_id FROM inbox WHERE id = '"'"'$(jq -r .event_id reply)'"'"'")" = acme
'

test_expect_success 'an unknown key, and no credential at all, are 401 before the body is read' '
	mkdir -p stranger && "$CRAB" id --data-dir stranger/data >/dev/null 2>&1 &&
	raw_tls "POST /v1/events HTTP/1.1
Host: x
Content-Type: application/json
Content-Length: 900000" stranger/data | grep -q "^HTTP/1.1 401" &&
	grep -q "\"unauthenticated\"" raw.out &&
	raw_tls "POST /v1/events HTTP/1.1
Host: x
Content-Type: application/json
Content-Length: 900000" | grep -q "^HTTP/1.1 401"
'

test_expect_success 'a grant narrows a peer to some tenants; it can be widened again' '
	"$CRAB" peers grant "$SUB" --tenant acme >/dev/null &&
	peer_post sub "$(chat telegram 42 m6)" && expect_status 403 forbidden &&
	jq -e ".error.field == \"tenant_id\"" reply &&
	peer_post sub "$(chat slack u1 m7)" && expect_status 202 &&
	"$CRAB" peers list --json | jq -e --arg p "$SUB" ".peers[] | select(.peer_id == \$p) | .tenants == [\"acme\"]" &&
	"$CRAB" peers grant "$SUB" --all-tenants >/dev/null &&
	peer_post sub "$(chat telegram 42 m8)" && expect_status 202
'

test_expect_success 'a grant survives a restart' '
	"$CRAB" peers grant "$SUB" --tenant acme >/dev/null &&
	stop_gateway && start_gateway gw &&
	peer_post sub "$(chat telegram 42 m9)" && expect_status 403 forbidden &&
	"$CRAB" peers grant "$SUB" --all-tenants >/dev/null
'

# hold_connection CERT-DIR: a TLS connection with that certificate, kept open after one
# GET /v1/health has been answered; HOLD is its client's pid (it exits when the gateway
# closes the connection), fd 7 keeps its input open.
hold_connection() {
	local i
	rm -f hold.fifo && mkfifo hold.fifo || return 1
	{ printf "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"; cat hold.fifo; } |
		openssl s_client -quiet -connect "${GW_URL#https://}" -cert "$1/identity.crt" \
			-key "$1/identity.key" >hold.out 2>hold.err &
	HOLD=$!
	TEST_PIDS="$TEST_PIDS $HOLD"
	exec 7>hold.fifo
	for i in $(seq 100); do grep -q "\"ok\"" hold.out && return 0; sleep 0.05; done
	echo "no answer on the held connection"; cat hold.err; return 1
}

# closed_within_2s PID: the process has exited within 2 s.
closed_within_2s() {
	local i
	for i in $(seq 40); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
	echo "still open after 2 s"; return 1
}

test_expect_success 'revoking a peer closes its open connection at once, and it is refused after' '
	hold_connection sub/data && kill -0 $HOLD &&
	"$CRAB" peers revoke "$SUB" &&
	closed_within_2s $HOLD && exec 7>&- &&
	grep -q "closed 1 connection of a revoked peer" gw/gateway.log &&
	peer_post sub "$(chat telegram 42 m10)" && expect_status 401 unauthenticated &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type = '"'"'peer.revoked'"'"'" |
		jq -e --arg p "$SUB" ".data.peer_id == \$p and .data.component_type == \"subscriber\""
'

test_expect_success 'refusals are counted, and logged with the peer' '
	"$CRAB" admin status | jq -c .counters >before &&
	peer_post tool "$(chat telegram 42 m11)" && expect_status 403 forbidden &&
	curl -sS -k -o reply -w "%{http_code}" --cert stranger/data/identity.crt \
		--key stranger/data/identity.key -X POST "$GW_URL/v1/events" >status &&
	expect_status 401 unauthenticated &&
	"$CRAB" admin status | jq -c .counters >after &&
	jq -se ".[1].forbidden - .[0].forbidden == 1 and
		.[1].unauthenticated - .[0].unauthenticated == 1 and
		.[1].requests_rejected - .[0].requests_rejected == 2" before after &&
	grep -q "refused an event from peer:$SUB: forbidden" gw/gateway.log &&
	grep -q "refused an event from peer:$TOOL: forbidden" gw/gateway.log &&
	grep -q "refused .* (no credential) on /v1/events: unauthenticated" gw/gateway.log &&
	grep -q "refused .* ($(cut -c1-4 <<<"$(openssl pkey -in stranger/data/identity.key -pubout -outform DER | sha256sum)")-.*) on /v1/events: unauthenticated" gw/gateway.log
'

lease() { # lease NAME JSON-ARGS: sets NAME_TOKEN and NAME_ID
	local out
	out=$("$CRAB" admin lease.create "$2") || return 1
	eval "$1_TOKEN=\$(echo \"\$out\" | jq -er .token)" &&
	eval "$1_ID=\$(echo \"\$out\" | jq -er .lease_id)"
}
lease_post() { # lease_post TOKEN BODY [CURL-ARGS]
	local t=$1 b=$2
	shift 2
	curl -sS -k --pinnedpubkey "$(pin_arg "$GW_FP")" -o reply -w "%{http_code}" -X POST \
		"$GW_URL/v1/events" -H "Authorization: Bearer $t" -H "Content-Type: application/json" \
		--data-binary "$b" "$@" | tee status
	echo
}

test_expect_success 'leases over TLS: a subscribe-only lease may not produce; a lease may not name tenant_id' '
	lease S "{\"tenant_id\":\"family\",\"scopes\":[\"subscribe\"],\"ttl_s\":600}" &&
	lease_post "$S_TOKEN" "$(chat telegram 42 l1)" && expect_status 403 forbidden &&
	lease P "{\"tenant_id\":\"family\",\"scopes\":[\"produce\"],\"ttl_s\":600}" &&
	lease_post "$P_TOKEN" "$(chat telegram 42 l2 ".tenant_id = \"acme\"")" && expect_status 403 forbidden &&
	jq -e ".error.field == \"tenant_id\"" reply &&
	lease_post "$P_TOKEN" "$(chat telegram 42 l3)" && expect_status 202 && FAMILY_SES=$(jq -r .session_id reply)
'

test_expect_success 'a lease bound to a session cannot reach another; a tenant'"'"'s lease cannot reach another tenant'"'"'s session' '
	lease B "{\"tenant_id\":\"family\",\"session_id\":\"$FAMILY_SES\",\"scopes\":[\"produce\"],\"ttl_s\":600}" &&
	lease_post "$B_TOKEN" "$(chat telegram 42 l4 ".session_id = \"new\"")" && expect_status 403 session_forbidden &&
	lease A "{\"tenant_id\":\"acme\",\"scopes\":[\"produce\"],\"ttl_s\":600}" &&
	lease_post "$A_TOKEN" "$(chat slack u1 l5 ".session_id = \"$FAMILY_SES\"")" && expect_status 403 session_forbidden &&
	lease_post "$B_TOKEN" "$(chat telegram 42 l6)" && expect_status 202 &&
	test "$(jq -r .session_id reply)" = "$FAMILY_SES"
'

test_expect_success 'a revoked lease, and one used after expiry, are 401' '
	"$CRAB" admin lease.revoke "{\"lease_id\":\"$B_ID\"}" >/dev/null &&
	lease_post "$B_TOKEN" "$(chat telegram 42 l7)" && expect_status 401 unauthenticated &&
	lease E "{\"tenant_id\":\"family\",\"scopes\":[\"produce\"],\"ttl_s\":60}" &&
	lease_post "$E_TOKEN" "$(chat telegram 42 l8)" && expect_status 202
'

test_expect_success CLOCK 'a lease past its expiry is 401' '
	"$CRAB" admin clock.advance "{\"ms\": 61000}" >/dev/null &&
	lease_post "$E_TOKEN" "$(chat telegram 42 l9)" && expect_status 401 unauthenticated
'

test_expect_success 'a connection-bound lease dies with the connection that used it' '
	lease C "{\"tenant_id\":\"family\",\"scopes\":[\"produce\"],\"ttl_s\":600,\"connection_bound\":true}" &&
	lease_post "$C_TOKEN" "$(chat telegram 42 c1)" && expect_status 202 &&
	for i in $(seq 40); do grep -q "lease $C_ID revoked: its connection ended" gw/gateway.log && break; sleep 0.05; done &&
	grep -q "lease $C_ID revoked: its connection ended" gw/gateway.log &&
	lease_post "$C_TOKEN" "$(chat telegram 42 c2)" && expect_status 401 unauthenticated &&
	test -n "$(store_sql gw "SELECT revoked_at FROM leases WHERE id = '"'"'$C_ID'"'"'")"
'

test_expect_success 'a connection-bound lease never used does not outlive a restart' '
	lease D "{\"tenant_id\":\"family\",\"scopes\":[\"produce\"],\"ttl_s\":600,\"connection_bound\":true}" &&
	stop_gateway && start_gateway gw &&
	lease_post "$D_TOKEN" "$(chat telegram 42 d1)" && expect_status 401 unauthenticated
'

test_expect_success 'no secret (private key, lease token) in any log line or event of the run' '
	for tok in "$S_TOKEN" "$P_TOKEN" "$B_TOKEN" "$A_TOKEN" "$E_TOKEN" "$C_TOKEN" "$D_TOKEN"; do
		test -n "$tok" || return 1
		for f in gw/gateway.log tool/log sub/log cli/listen.out cli/listen.err; do
			test_must_fail grep -qF "$tok" $f || { echo "token in $f"; return 1; }
		done
	done &&
	for dir in gw/data tool/data sub/data cli/data; do
		grep -v "^-----" $dir/identity.key >keylines &&
		for f in gw/gateway.log tool/log sub/log cli/listen.out cli/listen.err; do
			test_must_fail grep -qF -f keylines $f || { echo "key of $dir in $f"; return 1; }
		done &&
		store_sql gw "SELECT payload FROM event_outbox UNION ALL SELECT envelope FROM inbox" >events &&
		test_must_fail grep -qF -f keylines events
	done &&
	test_must_fail grep -q "PRIVATE KEY" gw/gateway.log tool/log sub/log cli/listen.out events
'

test_expect_success 'everything stops cleanly' '
	stop_gateway && stop_component tool && stop_component sub && sanitizer_clean cli/listen.err
'
