#!/usr/bin/env bash
test_description='pairing (SECURITY.md): identities, TLS 1.3 with pins, a tool host, a subscriber and a remote CLI paired and reconnecting after restarts, windows, changed keys, a man in the middle, no admin route on TCP'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/peers.sh"


# other_gateway NAME: a second gateway from $TRASH/NAME/crab.yaml, in the background;
# sets OTHER_PID once it logs that it is ready (its admin socket: NAME/data/admin.sock).
other_gateway() {
	local i
	"$CRAB" gateway -c "$1/crab.yaml" >"$1/gateway.log" 2>&1 &
	OTHER_PID=$!
	TEST_PIDS="$TEST_PIDS $OTHER_PID"
	for i in $(seq 1 200); do
		grep -q " ready: " "$1/gateway.log" && return 0
		kill -0 $OTHER_PID 2>/dev/null || { cat "$1/gateway.log"; return 1; }
		sleep 0.05
	done
	return 1
}

test_expect_success 'the gateway makes its identity on first start: 0600 files in a 0700 directory' '
	write_gateway_config gw "$PEER_TENANTS" &&
	sed -i "/^gateway:/a\\  tls: \"on\"" gw/crab.yaml &&
	start_gateway gw && GW_FP=$(gw_fp) &&
	case "$GW_URL" in https://*) ;; *) echo "not https: $GW_URL"; false ;; esac &&
	test "$(stat -c %a gw/data)" = 700 &&
	test "$(stat -c %a gw/data/identity.key)" = 600 &&
	test "$(stat -c %a gw/data/identity.crt)" = 600 &&
	"$CRAB" id --data-dir gw/data >id.out &&
	grep -qx "fingerprint $GW_FP" id.out &&
	grep -qx "short $("$CRAB" admin pair.test | jq -r .short)" id.out &&
	openssl pkey -in gw/data/identity.key -pubout -outform DER | sha256sum | cut -d" " -f1 >fp.openssl &&
	test "$(cat fp.openssl)" = "$GW_FP"
'

test_expect_success 'the public listener speaks TLS 1.3 only, with the gateway key, and no client certificate is needed for health' '
	curl -sS -k --pinnedpubkey "$(pin_arg "$GW_FP")" "$GW_URL/v1/health" | jq -e ".status == \"ok\"" &&
	test_must_fail curl -sS -k --tls-max 1.2 "$GW_URL/v1/health" &&
	test_must_fail curl -sS "http://${GW_URL#https://}/v1/health" --max-time 3
'

test_expect_success 'pair a tool host, a subscriber and a remote CLI' '
	start_component tool --type tool --offers "{\"tools\":true,\"produces\":[\"cron.job.fired\"]}" &&
	start_component sub --type subscriber \
		--offers "{\"subscribes\":[\"message.outbound\"],\"produces\":[\"channel.message.received\"]}" &&
	"$CRAB" pair tool "$tool_URL" memory >pair.tool &&
	grep -q "its fingerprint: $(echo "$tool_FP" | cut -c1-4)" pair.tool &&
	"$CRAB" pair subscriber "$sub_URL" telegram --json >pair.sub &&
	jq -e --arg fp "$sub_FP" ".fingerprint == \$fp and .component_type == \"subscriber\"" pair.sub &&
	pair_listen cli &&
	"$CRAB" pair cli "$LISTEN_URL" laptop >pair.cli &&
	wait "$LISTEN_PID" &&
	grep -q "paired as operator .laptop. with gateway" cli/listen.out &&
	grep -q "$("$CRAB" admin pair.test | jq -r .short)" cli/listen.out &&
	grep -q "^paired tool memory gateway" tool/out &&
	"$CRAB" peers list >peers.out && cat peers.out &&
	test "$(grep -c "^peer_" peers.out)" = 3
'

test_expect_success 'each pairing is stored with its fingerprint and published as peer.paired on the gateway-wide stream' '
	store_sql gw "SELECT component_type, component_id, fingerprint FROM peers WHERE revoked_at IS NULL ORDER BY paired_at" >rows &&
	cat rows &&
	grep -qx "tool|memory|$tool_FP" rows && grep -qx "subscriber|telegram|$sub_FP" rows &&
	grep -q "^operator|laptop|" rows &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type = '"'"'peer.paired'"'"' ORDER BY seq" >paired &&
	test "$(wc -l <paired)" = 3 &&
	jq -se "[.[].seq] == [1,2,3] and all(.[]; .tenant_id == null and .session_id == null)" paired &&
	jq -se "[.[].data.component_type] == [\"tool\",\"subscriber\",\"operator\"]" paired
'

test_expect_success 'the gateway reaches its tool host and subscriber over pinned TLS' '
	TOOL_PEER=$(peer_id memory tool) && SUB_PEER=$(peer_id telegram subscriber) &&
	test "$(health_of "$TOOL_PEER")" = ok && test "$(health_of "$SUB_PEER")" = ok
'

test_expect_success 'a component answers only its pinned gateway: another key is 403 pin_mismatch' '
	mkdir -p stranger && "$CRAB" id --data-dir stranger/data >/dev/null 2>&1 &&
	curl -sS -k --cert stranger/data/identity.crt --key stranger/data/identity.key \
		-o reply -w "%{http_code}" "$tool_URL/v1/health" >status &&
	expect_status 403 pin_mismatch &&
	test_must_fail curl -sS -k "$tool_URL/v1/health" --max-time 3
'

test_expect_success 'the remote CLI posts with its own key, no lease, to the gateway it pinned' '
	(unset CRAB_ADMIN_SOCKET; "$CRAB" event send --gateway "$GW_URL" --data-dir cli/data \
		--tenant family --platform telegram --channel dm-1 --actor 42 "from the laptop" >sent) &&
	cat sent && EVT=$(awk "/^event_id/{print \$2}" sent) &&
	test "$(store_sql gw "SELECT tenant_id, producer FROM inbox WHERE id = '"'"'$EVT'"'"'")" = \
		"family|peer:$(peer_id laptop operator)"
'

test_expect_success 'restart everything: they reconnect without pairing again' '
	stop_gateway && stop_component tool && stop_component sub &&
	start_component tool --type tool --offers "{\"tools\":true,\"produces\":[\"cron.job.fired\"]}" &&
	start_component sub --type subscriber \
		--offers "{\"subscribes\":[\"message.outbound\"],\"produces\":[\"channel.message.received\"]}" &&
	start_gateway gw && test "$(gw_fp)" = "$GW_FP" &&
	test "$(health_of "$TOOL_PEER")" = ok && test "$(health_of "$SUB_PEER")" = ok &&
	(unset CRAB_ADMIN_SOCKET; "$CRAB" event send --gateway "$GW_URL" --data-dir cli/data \
		--tenant family --platform telegram --channel dm-1 --actor 42 "again") &&
	test "$(store_sql gw "SELECT count(*) FROM peers")" = 3
'

test_expect_success 'a component already pinning the gateway takes another role without a window' '
	stop_component tool &&
	start_component tool --type tool --type subscriber \
		--offers "{\"tools\":true,\"subscribes\":[\"turn.completed\"],\"produces\":[\"cron.job.fired\"]}" &&
	"$CRAB" pair subscriber "$tool_URL" memory &&
	jq -e ".gateways | length == 1 and (.[0].roles | length == 2)" tool/data/gateways.json
'

test_expect_success 'pairing outside a window is refused: 403 pairing_closed, from another gateway' '
	write_gateway_config gw2 && other_gateway gw2 &&
	test_must_fail "$CRAB" pair tool "$tool_URL" memory --admin-socket gw2/data/admin.sock 2>err &&
	cat err && grep -q pairing_closed err &&
	grep -q "pairing refused (pairing_closed)" tool/log &&
	kill -TERM $OTHER_PID && wait $OTHER_PID
'

test_expect_success 'a component whose key changed is refused (pin_mismatch, logged) until paired again' '
	stop_component sub &&
	rm sub/data/identity.key sub/data/identity.crt &&
	start_component sub --type subscriber --pairing-window 10m \
		--offers "{\"subscribes\":[\"message.outbound\"],\"produces\":[\"channel.message.received\"]}" &&
	test "$(health_of "$SUB_PEER")" = pin_mismatch &&
	grep -q "$SUB_PEER (subscriber .telegram.): pin_mismatch" gw/gateway.log &&
	peer_post sub "{\"type\":\"channel.message.received\",\"text\":\"hi\",\"source\":{\"platform\":\"telegram\",\"channel_id\":\"c\",\"actor_id\":\"42\"}}" &&
	expect_status 401 unauthenticated &&
	"$CRAB" pair subscriber "$sub_URL" telegram --json >repair && cat repair &&
	jq -e --arg old "$SUB_PEER" ".replaced == \$old" repair &&
	SUB_PEER=$(jq -r .peer_id repair) && test "$(health_of "$SUB_PEER")" = ok &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type = '"'"'peer.revoked'"'"'" | grep -q telegram
'

test_expect_success 'a man in the middle: refused with --expect, and shown with its own fingerprint without' '
	start_component mitm --type tool --pairing-window 10m --offers "{\"tools\":true}" &&
	test_must_fail "$CRAB" pair tool "$mitm_URL" memory --expect "$tool_FP" 2>err &&
	cat err && grep -q pin_mismatch err &&
	grep -q "$(echo "$mitm_FP" | cut -c1-4)-" err &&
	test_must_fail grep -q "^paired" mitm/out &&
	"$CRAB" pair tool "$mitm_URL" mitm-check --json >mitm.json &&
	jq -e --arg fp "$mitm_FP" --arg real "$tool_FP" ".fingerprint == \$fp and .fingerprint != \$real" mitm.json &&
	"$CRAB" peers revoke "$(jq -r .peer_id mitm.json)"
'

test_expect_success 'a gateway expecting the right key pairs; a component expecting another gateway refuses' '
	start_component strict --type tool --pairing-window 10m --expect "$(echo "$tool_FP" | cut -c1-20)" &&
	test_must_fail "$CRAB" pair tool "$strict_URL" strict 2>err && grep -q pin_mismatch err &&
	start_component strict2 --type tool --pairing-window 10m --expect "$("$CRAB" admin pair.test | jq -r .short)" &&
	"$CRAB" pair tool "$strict2_URL" strict2 --expect "$strict2_FP"
'

test_expect_success 'pairing and every admin operation are unreachable over TCP: 404' '
	for path in /v1/pair /v1/admin /v1/peers /v1/peers.list /v1/pair.tool /v1/lease.create \
		/v1/leases /admin /v1/config.apply /v1/sessions; do
		for method in GET POST; do
			code=$(curl -sS -k -o reply -w "%{http_code}" -X $method -H "Content-Type: application/json" \
				--data-binary "{}" "$GW_URL$path") &&
			test "$code" = 404 && jq -e ".error.code == \"not_found\"" reply >/dev/null ||
				{ echo "$method $path: $code $(cat reply)"; return 1; }
		done
	done
'

test_expect_success 'the admin socket refuses another uid even with loosened modes (SO_PEERCRED)' '
	if [ "$(id -u)" != 0 ]; then echo "needs root to run a client as another user"; return 1; fi &&
	chmod 0755 gw gw/data && chmod 0777 gw/data/admin.sock &&
	chmod 0755 "$TRASH" &&
	cp "$CRAB" "$TRASH/crab-other" && chmod 0755 "$TRASH/crab-other" &&
	{ runuser -u nobody -- "$TRASH/crab-other" admin pair.test \
		--admin-socket "$TRASH/gw/data/admin.sock" >other.out 2>&1; echo "exit $?" >>other.out; } &&
	cat other.out && grep -qx "exit 1" other.out && test_must_fail grep -q "\"listen\"" other.out &&
	grep -q "admin: refused a connection from uid $(id -u nobody)" gw/gateway.log &&
	"$CRAB" admin pair.test >/dev/null
'

test_expect_success 'the gateway refuses plain HTTP off loopback, and serves TLS there by default' '
	write_gateway_config off &&
	sed -i "s/127.0.0.1:0/0.0.0.0:0/; /^gateway:/a\\  tls: \"off\"" off/crab.yaml &&
	test_must_fail "$CRAB" gateway -c off/crab.yaml 2>off.err && grep -q "refusing plain HTTP" off.err &&
	sed -i "s/tls: \"off\"/tls: auto/" off/crab.yaml &&
	other_gateway off && grep -q "ready: https://0.0.0.0:" off/gateway.log &&
	kill -TERM $OTHER_PID && wait $OTHER_PID
'

test_expect_success 'everything stops cleanly' '
	stop_gateway && stop_component tool && stop_component sub && stop_component mitm &&
	stop_component strict && stop_component strict2 &&
	sanitizer_clean gw2/gateway.log && sanitizer_clean cli/listen.err
'

test_done
