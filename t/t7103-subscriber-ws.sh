#!/usr/bin/env bash
test_description='a paired subscriber on its own WebSocket (PROTOCOLS.md §2): its deliveries come over it, each done when acknowledged; what it did not acknowledge comes again, in order, after it reconnects'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/peers.sh"
. "$TEST_ROOT/t/lib/fakes.sh"

# listen NAME COUNT [--no-ack]: subscriber sub's WebSocket until COUNT deliveries.
listen() {
	node "$TEST_ROOT/t/fakes/ws-subscriber.mjs" "wss://${GW_URL#https://}/v1/ws" \
		sub/data/identity.crt sub/data/identity.key "$2" ${3:-} >"$1.out" 2>"$1.err"
}

pending() { store_sql gw "SELECT count(*) FROM deliveries WHERE state = 'pending'"; }
none_pending() { [ "$(pending)" = 0 ]; }

test_expect_success 'a TLS gateway and a subscriber paired (its push endpoint down)' '
	ensure_openai_client &&
	write_gateway_config gw && sed -i "/^gateway:/a\\\\  tls: \"on\"" gw/crab.yaml &&
	start_gateway gw && GW_FP=$(gw_fp) &&
	start_component sub --type subscriber --offers "{\"subscribes\":[\"message.outbound\"]}" &&
	"$CRAB" pair subscriber "$sub_URL" sub >/dev/null &&
	stop_component sub
'

test_expect_success 'deliveries come over the WebSocket and are done when acknowledged' '
	"$CRAB" event send --tenant family "one" >/dev/null &&
	"$CRAB" event send --tenant family "two" >/dev/null &&
	listen first 2 &&
	jq -s -e "length == 2 and all(.event.type == \"message.outbound\")" first.out &&
	jq -r .event.data.text first.out | sort >texts && printf "echo: one\necho: two\n" | diff - texts &&
	wait_until 5 none_pending
'

test_expect_success 'not acknowledged: the same deliveries again after a reconnect, in order' '
	"$CRAB" event send --tenant family "three" >/dev/null &&
	listen noack 1 --no-ack &&
	test "$(pending)" = 1 &&
	listen again 1 &&
	test "$(jq -r .delivery_id again.out)" = "$(jq -r .delivery_id noack.out)" &&
	test "$(jq -r .event.idempotency_key again.out)" = "$(jq -r .event.idempotency_key noack.out)" &&
	wait_until 5 none_pending
'

test_expect_success 'an unpaired key is refused at the upgrade: 401' '
	mkdir -p other && "$CRAB" id --data-dir other/data >/dev/null 2>&1 &&
	test_must_fail node "$TEST_ROOT/t/fakes/ws-subscriber.mjs" "wss://${GW_URL#https://}/v1/ws" \
		other/data/identity.crt other/data/identity.key 1 2>err &&
	grep -q "401" err
'

test_expect_success 'everything stops cleanly' '
	stop_gateway
'

test_done
