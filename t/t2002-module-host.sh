#!/usr/bin/env bash
test_description='the host table, end to end, from a real loaded .so'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"

FROM_PROBE="select count(*) from inbox where producer = 'module:probe'"

test_expect_success 'build the probe module against abi/ only' '
	cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
		-I"$TEST_ROOT" -o "$TRASH/probe.so" "$TEST_ROOT/t/modules/probe.c"
'

test_expect_success 'a gateway loads it with its config and secret reference' '
	write_gateway_config gw "models: [{id: echo, adapter: echo}]" \
		"agents: [{id: assistant, model: echo}, {id: probe-agent, model: echo}]" &&
	echo "s3cret-value" >"$TRASH/token" &&
	cat >>"$TRASH/gw/crab.yaml" <<-YAML &&
	modules:
	  load:
	    - path: "$TRASH/probe.so"
	      required: true
	      config:
	        greeting: "hi there"
	        token_file: "$TRASH/token"
	        health_url: "http://PLACEHOLDER/v1/health"
	YAML
	start_gateway gw &&
	# the probe calls this gateway: pin the port it got and restart on it
	sed -i -e "s|http://PLACEHOLDER|$GW_URL|" -e "s|127.0.0.1:0|${GW_URL#http://}|" \
		"$TRASH/gw/crab.yaml" &&
	stop_gateway && start_gateway gw &&
	"$CRAB" modules >mods &&
	grep -E "^probe +0\.0\.1 +started +model_adapter +$TRASH/probe.so" mods
'

wait_log() {
	for i in $(seq 1 100); do
		grep -q "$1" "$GW_LOG" && return 0
		sleep 0.05
	done
	echo "not in the log: $1"; tail -n 20 "$GW_LOG"; return 1
}

test_expect_success 'the host table is the full current one, for the gateway role' '
	wait_log "probe host 0\.[0-9.]* role gateway size [0-9]"
'

test_expect_success 'config_get reads the module node and reports a missing key' '
	wait_log "probe config greeting=hi there" && wait_log "probe config missing=-1"
'

test_expect_success 'secret_get reads <name>_file, and the secret never reaches the log' '
	wait_log "probe secret length=12" && ! grep -q "s3cret-value" "$GW_LOG"
'

test_expect_success 'kv_put then kv_get round-trips through the store' '
	wait_log "probe kv_put ok=1" && wait_log "probe kv ok=1 found=1 value=stored-value"
'

test_expect_success 'emit_event stores the event as from the module, tenant from its envelope' '
	wait_log "probe emit status=202 answer={\"event_id\":\"evt_" &&
	test "$(store_sql gw "$FROM_PROBE and tenant_id = '"'probe-tenant'"'")" = 1
'

test_expect_success 'http_start reaches the gateway health endpoint' '
	wait_log "probe http status=200 body={\"status\":\"ok\"} error=none"
'

test_expect_success 'timers and fd watches fire on the loop' '
	wait_log "probe timer fired" && wait_log "probe fd readable=1 byte=x"
'

test_expect_success 'a restarted gateway does not store the emitted event twice' '
	stop_gateway && start_gateway gw && wait_log "probe emit status=202" &&
	grep "probe emit status=202" "$GW_LOG" | tail -n 1 | grep -q "\"duplicate\":true" &&
	test "$(store_sql gw "$FROM_PROBE")" = 1
'

test_expect_success 'the gateway stops cleanly with the module loaded' '
	stop_gateway
'

test_done
