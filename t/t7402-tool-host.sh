#!/usr/bin/env bash
test_description='the tool-host library (core/tool_host.h, PROTOCOLS.md §5) in the test component: /v1/tools, calls, schemas, tenants, deadlines, the call_id record, limits, only the pinned gateway'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/peers.sh"

# as_gw PATH CURL-ARGS...: a request to the tool host as the pinned gateway would make it:
# the gateway's own certificate, the component pinned by its key. Body to $TRASH/reply,
# status to $TRASH/status and stdout.
as_gw() {
	local path=$1
	shift
	curl -sS -k --pinnedpubkey "$(pin_arg "$tool_FP")" --cert "$TRASH/gw/data/identity.crt" \
		--key "$TRASH/gw/data/identity.key" -o "$TRASH/reply" -w '%{http_code}' "$@" \
		"$tool_URL$path" | tee "$TRASH/status"
	echo
}

# call CALL_ID TOOL ARGS [CONTEXT] [CURL-ARGS...]: POST /v1/tools/call; the context
# defaults to tenant family with 5 s left.
CTX='{"tenant_id":"family","agent_id":"assistant","session_id":"ses_1","memory_key":"family:assistant","deadline_ms":5000}'
call() {
	local body
	body=$(jq -cn --arg id "$1" --arg tool "$2" --argjson args "$3" --argjson ctx "${4:-$CTX}" \
		'{call_id: $id, tool: $tool, arguments: $args, context: $ctx}') || return 1
	shift 4 2>/dev/null || shift $#
	as_gw /v1/tools/call -X POST -H 'Content-Type: application/json' --data-binary "$body" "$@"
}

# ok_text TEXT: the last call answered ok:true with that one text.
ok_text() {
	expect_status 200 &&
	jq -e --arg t "$1" '.ok == true and .content == [{"type":"text","text":$t}]' "$TRASH/reply" >/dev/null ||
		{ echo "want ok \"$1\": $(cat "$TRASH/reply")"; return 1; }
}

# failed CODE: the last call answered ok:false with that code (HTTP 200).
failed() {
	expect_status 200 &&
	jq -e --arg c "$1" '.ok == false and .error.code == $c and (.error.message | length > 0)
		and (.error.retryable | type == "boolean")' "$TRASH/reply" >/dev/null ||
		{ echo "want ok:false $1: $(cat "$TRASH/reply")"; return 1; }
}

# outcomes CALL_ID: the tools-log outcomes of that call_id, one per line.
outcomes() {
	jq -r --arg id "$1" 'select(.call_id == $id) | .outcome' "$TRASH/tools.log"
}

ran_in_log() {
	outcomes "$1" | grep -qx "$2"
}

test_expect_success 'a gateway pairs the component as a tool host; its offers say tools' '
	write_gateway_config gw && start_gateway gw &&
	start_component tool --tools --tools-log "$TRASH/tools.log" &&
	"$CRAB" pair tool "$tool_URL" test >pair.out &&
	grep -q "^paired tool test gateway" tool/out &&
	"$CRAB" admin peers.list | jq -e ".peers[] | select(.component_id == \"test\") |
		.component_type == \"tool\" and .offers.tools == true"
'

test_expect_success 'GET /v1/tools lists the tools with their schemas and idempotent flags' '
	as_gw /v1/tools && expect_status 200 && cat reply &&
	jq -e ".host == \"test\" and ([.tools[].name] | sort) ==
		[\"test.badjson\",\"test.count\",\"test.echo\",\"test.fail\",\"test.note_get\",\"test.note_put\",\"test.sleep\"]" reply &&
	jq -e ".tools[] | select(.name == \"test.echo\") | .idempotent == true and
		.input_schema.required == [\"text\"] and .input_schema.properties.text.maxLength == 1000 and
		(.description | length > 0)" reply &&
	jq -e ".tools[] | select(.name == \"test.count\") | .idempotent == false" reply &&
	jq -e ".tools[] | select(.name == \"test.sleep\") | .input_schema.properties.ms.maximum == 600000" reply
'

test_expect_success 'test.echo answers its text, with the call_id' '
	call c-echo-1 test.echo "{\"text\":\"hello there\"}" && ok_text "hello there" &&
	jq -e ".call_id == \"c-echo-1\" and .data == {}" reply &&
	ran_in_log c-echo-1 run &&
	jq -e "select(.call_id == \"c-echo-1\") | .tool == \"test.echo\" and .context.tenant_id == \"family\"
		and .arguments.text == \"hello there\" and .from_record == false" tools.log
'

test_expect_success 'arguments failing the schema: invalid_arguments naming the field; the handler does not run' '
	call c-bad-1 test.echo "{}" && failed invalid_arguments &&
	jq -e ".call_id == \"c-bad-1\" and .error.retryable == false and (.error.message | test(\"text\"))" reply &&
	call c-bad-2 test.echo "{\"text\":5}" && failed invalid_arguments &&
	jq -e ".error.message | test(\"arguments.text\")" reply &&
	call c-bad-3 test.echo "$(jq -cn "{text: (\"x\" * 1001)}")" && failed invalid_arguments &&
	jq -e ".error.message | test(\"arguments.text\")" reply &&
	call c-bad-4 test.sleep "{\"ms\":600001}" && failed invalid_arguments &&
	call c-bad-5 test.echo "{\"text\":\"a\",\"extra\":1}" && failed invalid_arguments &&
	call c-bad-6 test.fail "{\"code\":\"Not A Code\"}" && failed invalid_arguments &&
	for id in c-bad-1 c-bad-2 c-bad-3 c-bad-4 c-bad-5 c-bad-6; do
		test "$(outcomes $id)" = invalid_arguments || { echo "$id: $(outcomes $id)"; return 1; }
	done
'

test_expect_success 'no tenant in the context: tenant_required, and nothing runs' '
	call c-ten-1 test.echo "{\"text\":\"x\"}" "{\"agent_id\":\"assistant\",\"deadline_ms\":5000}" &&
	failed tenant_required &&
	call c-ten-2 test.echo "{\"text\":\"x\"}" "{\"tenant_id\":\"\"}" && failed tenant_required &&
	as_gw /v1/tools/call -X POST --data-binary "{\"call_id\":\"c-ten-3\",\"tool\":\"test.echo\",\"arguments\":{\"text\":\"x\"}}" &&
	failed tenant_required &&
	for id in c-ten-1 c-ten-2 c-ten-3; do test "$(outcomes $id)" = tenant_required || return 1; done
'

test_expect_success 'deadline: a 2 s sleep with 300 ms left is deadline_exceeded in time; a repeat joins it and gets its late result' '
	t0=$(date +%s%3N) &&
	call c-dl-1 test.sleep "{\"ms\":2000}" "{\"tenant_id\":\"family\",\"deadline_ms\":300}" &&
	t1=$(date +%s%3N) && echo "answered after $((t1 - t0)) ms" &&
	failed deadline_exceeded && jq -e ".error.retryable == true and .call_id == \"c-dl-1\"" reply &&
	test $((t1 - t0)) -ge 250 && test $((t1 - t0)) -lt 1000 &&
	call c-dl-1 test.sleep "{\"ms\":2000}" "{\"tenant_id\":\"family\",\"deadline_ms\":5000}" &&
	ok_text "slept 2000 ms" && t2=$(date +%s%3N) && test $((t2 - t0)) -lt 3000 &&
	call c-dl-1 test.sleep "{\"ms\":2000}" && ok_text "slept 2000 ms" &&
	test "$(outcomes c-dl-1 | tr "\n" " ")" = "run joined record " &&
	call c-dl-2 test.sleep "{\"ms\":0}" "{\"tenant_id\":\"family\",\"deadline_ms\":0}" &&
	failed deadline_exceeded && test "$(outcomes c-dl-2)" = deadline_exceeded
'

test_expect_success 'test.count: a repeated call_id is answered from the record; a new one counts; other arguments are call_id_reused' '
	call c-cnt-1 test.count "{}" && cat reply && N=$(jq -r ".content[0].text" reply | sed "s/^count //") &&
	test "$N" -ge 1 &&
	call c-cnt-1 test.count "{}" && ok_text "count $N" &&
	test "$(outcomes c-cnt-1 | tr "\n" " ")" = "run record " &&
	jq -se "[.[] | select(.call_id == \"c-cnt-1\") | .from_record] == [false, true]" tools.log &&
	call c-cnt-2 test.count "{}" && ok_text "count $((N + 1))" &&
	call c-cnt-1 test.count "{\"again\":true}" && failed call_id_reused &&
	call c-cnt-1 test.echo "{\"text\":\"x\"}" && failed call_id_reused &&
	call c-cnt-1 test.count "{}" "{\"tenant_id\":\"acme\"}" && failed call_id_reused &&
	call c-cnt-3 test.count "{}" && ok_text "count $((N + 2))"
'

test_expect_success 'notes are scoped by tenant: acme cannot read what family stored' '
	call c-n-1 test.note_put "{\"key\":\"plants\",\"value\":\"water at 6\"}" && ok_text stored &&
	call c-n-2 test.note_get "{\"key\":\"plants\"}" "{\"tenant_id\":\"acme\",\"deadline_ms\":5000}" &&
	failed not_found &&
	call c-n-3 test.note_get "{\"key\":\"plants\"}" && ok_text "water at 6" &&
	call c-n-4 test.note_put "{\"key\":\"plants\",\"value\":\"acme plants\"}" "{\"tenant_id\":\"acme\"}" &&
	call c-n-5 test.note_get "{\"key\":\"plants\"}" && ok_text "water at 6"
'

test_expect_success 'a tool error, an unknown tool, a wrong method and the invalid JSON of test.badjson' '
	call c-f-1 test.fail "{\"code\":\"quota_exceeded\",\"message\":\"no more\"}" && failed quota_exceeded &&
	jq -e ".error.message == \"no more\" and .error.retryable == false" reply &&
	call c-f-2 test.nothing "{}" && failed unknown_tool &&
	as_gw /v1/tools/call && expect_status 405 method_not_allowed &&
	as_gw /v1/tools -X POST --data-binary "{}" && expect_status 405 method_not_allowed &&
	call c-f-3 test.badjson "{}" && expect_status 200 &&
	test "$(cat reply)" = "{\"call_id\": not json" &&
	test_must_fail jq . reply
'

test_expect_success 'a request from another key than the pinned gateway: 403' '
	mkdir -p stranger && "$CRAB" id --data-dir stranger/data >/dev/null 2>&1 &&
	for path in /v1/tools /v1/tools/call; do
		curl -sS -k --cert stranger/data/identity.crt --key stranger/data/identity.key \
			-o reply -w "%{http_code}" -X POST --data-binary "{\"call_id\":\"c-s\",\"tool\":\"test.count\",\"context\":{\"tenant_id\":\"family\"}}" \
			"$tool_URL$path" >status &&
		expect_status 403 pin_mismatch || return 1
	done &&
	test -z "$(outcomes c-s)"
'

test_expect_success 'a body over 1 MiB is 413, malformed JSON 400 with an error body; it serves on' '
	head -c $((1100 * 1024)) /dev/zero | tr "\0" "a" >big &&
	as_gw /v1/tools/call -X POST --data-binary @big && expect_status 413 body_too_large &&
	as_gw /v1/tools/call -X POST --data-binary "{\"call_id\": " && expect_status 400 invalid_json &&
	as_gw /v1/tools/call -X POST --data-binary "[1,2]" && expect_status 400 invalid_json &&
	as_gw /v1/tools/call -X POST --data-binary "{\"tool\":\"test.echo\"}" && expect_status 400 bad_request &&
	jq -e ".error.field == \"call_id\"" reply &&
	call c-x-1 test.echo "[]" && expect_status 400 bad_request && jq -e ".error.field == \"arguments\"" reply &&
	call c-x-2 test.echo "{\"text\":\"x\"}" "{\"tenant_id\":7}" && expect_status 400 bad_request &&
	jq -e ".error.field == \"context.tenant_id\"" reply &&
	call c-x-3 test.echo "{\"text\":\"still here\"}" && ok_text "still here"
'

test_expect_success 'a connection closed before the reply: the handler completes and its result is recorded' '
	call c-gone-1 test.sleep "{\"ms\":800}" "$CTX" --max-time 0.3;
	test "$(cat status)" = 000 &&
	sleep 1 &&
	call c-gone-1 test.sleep "{\"ms\":800}" && ok_text "slept 800 ms" &&
	test "$(outcomes c-gone-1 | tr "\n" " ")" = "run record "
'

test_expect_success 'stopping with calls in flight: a clean exit, nothing leaked' '
	(call c-stop-1 test.sleep "{\"ms\":60000}" "{\"tenant_id\":\"family\",\"deadline_ms\":60000}" >/dev/null 2>&1 &) &&
	wait_until 10 ran_in_log c-stop-1 run &&
	stop_component tool && stop_gateway
'

test_done
