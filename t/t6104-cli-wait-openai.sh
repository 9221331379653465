#!/usr/bin/env bash
test_description='crab event send --wait against an openai model: the streamed reply is printed'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/fakes.sh"
. "$TEST_ROOT/t/lib/openai-turns.sh"

export T6104_KEY=sk-t6104-secret-0123456789abcdef

test_expect_success 'the fake and a gateway whose default agent is on it' '
	start_openai_fake --api-key "$T6104_KEY" &&
	write_gateway_config gw "$(openai_yaml T6104_KEY "timeout_s: 30" "max_retries: 0")" \
		"turns:" "  model_timeout_s: 20" &&
	start_gateway gw
'

test_expect_success 'crab event send --wait prints the reply the fake streamed, piece by piece' '
	"$CRAB" event send --wait "hello from the shell [fake:{\"chunk_delay_ms\":30}]" >out 2>err
	rc=$?
	cat out err &&
	test $rc -eq 0 &&
	test "$(cat out)" = "echo: hello from the shell" &&
	test ! -s err &&
	fake_requests >records &&
	jq -e "length == 1 and .[0].body.stream == true and .[0].status == 200 and
		(.[0].finished_at - .[0].received_at) >= 90 and
		([.[0].body.messages[] | select(.role == \"user\")] | last | .content) ==
			\"hello from the shell [fake:{\\\"chunk_delay_ms\\\":30}]\"" records >/dev/null
'

test_expect_success 'the same turn is stored: completed, with that reply going out' '
	test "$(store_sql gw "SELECT status FROM turns")" = completed &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type = '"'"'message.outbound'"'"'" >outbound &&
	jq -e ".data.text == \"echo: hello from the shell\" and .data.target.platform == \"cli\"" outbound
'

test_expect_success '--wait --json prints the outcome as JSON' '
	"$CRAB" event send --wait --json "as json" >out &&
	cat out && test "$(wc -l <out)" -eq 1 &&
	jq -e ".status == \"completed\" and .text == \"echo: as json\" and
		(.turn_id | startswith(\"trn_\")) and (.event_id | startswith(\"evt_\"))" out
'

test_expect_success 'a failing model: exit 1, the error code on stderr, nothing on stdout' '
	"$CRAB" event send --wait "[fake:{\"status\":500}] broken" >out 2>err
	rc=$?
	cat out err &&
	test $rc -eq 1 && test ! -s out &&
	grep -q "^crab: the turn failed: provider_error: HTTP 500 from the provider" err
'

test_expect_success 'a model that hangs past --timeout: exit 1, no reply, the gateway is fine' '
	start=$(now_ms) &&
	"$CRAB" event send --wait --timeout 1 "[fake:{\"hang\":true}] hang" >out 2>err
	rc=$?
	elapsed=$(($(now_ms) - start))
	cat out err && echo "$elapsed ms" &&
	test $rc -eq 1 && test ! -s out && grep -q "^crab: no reply: " err &&
	test $elapsed -lt 10000 &&
	test "$(curl -sS -o /dev/null -w "%{http_code}" "$GW_URL/v1/health")" = 200
'

# The drain gives running turns 10 s (core/gateway.c DRAIN_LIMIT_MS), more than a third
# of stop_gateway's 15 s on a loaded machine: this stop allows 30 s.
test_expect_success 'SIGTERM with that model call still hanging: the drain cuts it, exit 0, the event stays pending' '
	hanging=$(fake_requests | jq "map(select(.finished_at == null)) | length")
	kill -TERM $GW_PID
	for i in $(seq 1 300); do kill -0 $GW_PID 2>/dev/null || break; sleep 0.1; done
	wait $GW_PID
	rc=$?
	echo "hanging before: $hanging; exit $rc after $i tenths of a second" &&
	test "$hanging" -eq 1 && test $rc -eq 0 && sanitizer_clean "$GW_LOG" &&
	grep "drain: .* 1 turns still open" "$GW_LOG" &&
	test "$(fake_requests | jq "map(select(.finished_at == null)) | length")" -eq 0 &&
	test "$(inbox_pending gw)" -eq 1 &&
	stop_openai_fake
'

test_done
