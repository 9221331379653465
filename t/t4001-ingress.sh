#!/usr/bin/env bash
test_description='HTTP ingress: accepted events, every bad input with its status and code, slow and idle clients'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/http.sh"

ACCEPTED=0 # replies 202 with "duplicate": false
SEQ=0

# accept BODY: posts BODY with $TOKEN; it must be 202 and new. Counts it in ACCEPTED.
accept() {
	post_event "$TOKEN" "$1" >/dev/null
	expect_status 202 &&
	jq -e '.duplicate == false and (.event_id | startswith("evt_")) and
		(.session_id | startswith("ses_"))' "$TRASH/reply" >/dev/null ||
		{ echo "not accepted as new: $(cat "$TRASH/reply")"; return 1; }
	ACCEPTED=$((ACCEPTED + 1))
}

# serving: the gateway still answers health and accepts a fresh event.
serving() {
	curl -sS -f "$GW_URL/v1/health" | jq -e '.status == "ok"' >/dev/null ||
		{ echo "health failed"; return 1; }
	SEQ=$((SEQ + 1))
	accept "$(message "serving-$SEQ")"
}

# refused STATUS CODE BODY [CURL-ARGS...]: posting BODY is answered STATUS with CODE,
# and the gateway keeps serving.
refused() {
	local status=$1 code=$2 body=$3
	shift 3
	post_event "$TOKEN" "$body" "$@" >/dev/null
	expect_status "$status" "$code" && serving
}

# http_code CURL-ARGS...: prints the status; the body goes to $TRASH/reply.
http_code() {
	curl -sS -o "$TRASH/reply" -w '%{http_code}' "$@"
}

# json_error STATUS CODE: $TRASH/reply is our JSON error body with that code.
json_error() {
	jq -e --arg c "$2" '.error.code == $c and (.error.message | length > 0)' "$TRASH/reply" \
		>/dev/null || { echo "want a JSON $1 $2, got: $(cat "$TRASH/reply")"; return 1; }
}

# status_http FIELD: a field of the status op's "http" object.
status_http() {
	"$CRAB" admin status | jq -r ".http.$1"
}

# expect_envelope_faults "FIELD|JQ-FILTER"...: each filter, applied to a good message, must
# be answered 400 invalid_envelope naming FIELD.
expect_envelope_faults() {
	local case field filter bad=
	for case in "$@"; do
		field=${case%%|*} filter=${case#*|}
		post_event "$TOKEN" "$(message 0 | jq -c "$filter")" >/dev/null &&
		expect_status 400 invalid_envelope &&
		jq -e --arg f "$field" ".error.field == \$f" "$TRASH/reply" >/dev/null ||
			{ echo "case $field: $(cat "$TRASH/reply")"; bad=1; }
	done
	test -z "$bad"
}

test_expect_success 'the gateway starts, a produce lease is made' '
	write_gateway_config gw "limits:" "  idle_timeout_s: 2" &&
	start_gateway gw &&
	TOKEN=$(make_lease family) && test -n "$TOKEN" &&
	PORT=${GW_URL##*:}
'

test_expect_success 'GET /v1/health is 200 {"status":"ok"} and nothing else' '
	test "$(http_code "$GW_URL/v1/health")" = 200 &&
	jq -e ". == {\"status\": \"ok\"}" "$TRASH/reply"
'

test_expect_success 'a post is 202 with new event and session ids' '
	accept "$(message 1)" &&
	EVT1=$(jq -r .event_id "$TRASH/reply") && SES1=$(jq -r .session_id "$TRASH/reply")
'

test_expect_success 'the same message id again is a duplicate with the first ids' '
	post_event "$TOKEN" "$(message 1 "hello again")" && expect_status 202 &&
	jq -e --arg e "$EVT1" --arg s "$SES1" \
		".duplicate == true and .event_id == \$e and .session_id == \$s" "$TRASH/reply"
'

test_expect_success 'a second message from the same runtime key lands in the same session' '
	accept "$(message 2)" &&
	jq -e --arg e "$EVT1" --arg s "$SES1" ".event_id != \$e and .session_id == \$s" "$TRASH/reply"
'

test_expect_success '"session_id": "new" starts a fresh session, which becomes the current one' '
	accept "$(message 3 | jq -c ".session_id = \"new\"")" &&
	SES2=$(jq -r .session_id "$TRASH/reply") && test "$SES2" != "$SES1" &&
	accept "$(message 4)" &&
	jq -e --arg s "$SES2" ".session_id == \$s" "$TRASH/reply"
'

test_expect_success 'an explicit session id of the tenant continues that session' '
	accept "$(message 5 | jq -c --arg s "$SES1" ".session_id = \$s")" &&
	jq -e --arg s "$SES1" ".session_id == \$s" "$TRASH/reply"
'

test_expect_success 'attachments without text are accepted' '
	accept "$(message 6 | jq -c "del(.text) | .attachments = [{kind: \"image\", mime: \"image/png\", url: \"https://example.org/p.png\"}]")"
'

test_expect_success 'malformed JSON is 400 invalid_json' '
	refused 400 invalid_json "{\"type\": \"channel.message.received\", " &&
	refused 400 invalid_json "not json at all"
'

test_expect_success 'wrong field types are 400 invalid_envelope naming the field' '
	cases=("type|.type = 5" "source|.source = \"telegram\"" \
		"source.platform|.source.platform = 7" "source.channel_id|.source.channel_id = -100123" \
		"source.actor_id|.source.actor_id = {}" "source.message_id|.source.message_id = 981" \
		"text|.text = [\"hi\"]" "attachments|.attachments = \"p.png\"" \
		"attachments[0]|.attachments = [1]" "session_id|.session_id = 5" \
		"idempotency_key|.idempotency_key = true" "metadata|.metadata = []" \
		"target|.target = \"x\"" "occurred_at|.occurred_at = \"yesterday\""
	) &&
	expect_envelope_faults "${cases[@]}" && serving
'

test_expect_success 'missing required fields are 400 invalid_envelope naming the field' '
	cases=("type|del(.type)" "source|del(.source)" \
		"source.platform|del(.source.platform)" "source.channel_id|del(.source.channel_id)" \
		"source.actor_id|del(.source.actor_id)" "text|del(.text)" "text|.text = \"\"" \
		"text|.text = null | .attachments = []"
	) &&
	expect_envelope_faults "${cases[@]}" && serving
'

test_expect_success 'an unknown event type is 400 unknown_event_type' '
	post_event "$TOKEN" "$(message 0 | jq -c ".type = \"channel.message.edited\"")" &&
	expect_status 400 unknown_event_type &&
	jq -e ".error.field == \"type\"" "$TRASH/reply" && serving
'

test_expect_success 'invalid UTF-8 is 400 invalid_json' '
	message 0 "h-BAD-llo" | sed -e "s/-BAD-/\\xff/" >bad-utf8.json &&
	! iconv -f UTF-8 -t UTF-8 bad-utf8.json >/dev/null 2>&1 &&
	refused 400 invalid_json @bad-utf8.json
'

test_expect_success 'a JSON array body is 400 invalid_envelope' '
	refused 400 invalid_envelope "[$(message 0)]"
'

test_expect_success 'a 2 MiB body is 413 body_too_large' '
	message 0 BIG | sed -e "s/BIG.*//" | tr -d "\n" >big.json &&
	head -c 2097152 /dev/zero | tr "\0" a >>big.json &&
	message 0 BIG | sed -e "s/.*BIG//" >>big.json &&
	jq -e ".text | length == 2097152" big.json >/dev/null &&
	test "$(wc -c <big.json)" -gt 2097152 &&
	refused 413 body_too_large @big.json
'

test_expect_success 'a 2 MiB chunked body without Content-Length is 413 body_too_large' '
	post_event "$TOKEN" @big.json -H "Transfer-Encoding: chunked" -v 2>curl.err >/dev/null;
	! grep -qi "^> Content-Length" curl.err && grep -qi "^> Transfer-Encoding: chunked" curl.err &&
	expect_status 413 body_too_large && serving
'

test_expect_success 'a non-JSON content type is 415 unsupported_media_type' '
	test "$(http_code -X POST "$GW_URL/v1/events" -H "Authorization: Bearer $TOKEN" \
		-H "Content-Type: text/plain" --data-binary "$(message 0)")" = 415 &&
	json_error 415 unsupported_media_type &&
	test "$(http_code -X POST "$GW_URL/v1/events" -H "Authorization: Bearer $TOKEN" \
		-F "file=@big.json")" = 415 &&
	json_error 415 unsupported_media_type && serving
'

test_expect_success 'an unknown path is 404 not_found as JSON' '
	test "$(http_code "$GW_URL/v1/nothing-here")" = 404 && json_error 404 not_found &&
	test "$(http_code -X POST "$GW_URL/" -H "Authorization: Bearer $TOKEN")" = 404 &&
	json_error 404 not_found && serving
'

test_expect_success 'a wrong method is 405 as JSON' '
	test "$(http_code "$GW_URL/v1/events" -H "Authorization: Bearer $TOKEN")" = 405 &&
	json_error 405 method_not_allowed &&
	test "$(http_code -X DELETE "$GW_URL/v1/health")" = 405 &&
	json_error 405 method_not_allowed && serving
'

test_expect_success 'headers over 16 KiB are 431 headers_too_large as JSON' '
	test "$(http_code "$GW_URL/v1/health" -H "X-Padding: $(head -c 17000 /dev/zero | tr "\0" a)")" = 431 &&
	json_error 431 headers_too_large &&
	hdrs=() && for i in $(seq 1 40); do hdrs+=(-H "X-Pad-$i: $(head -c 500 /dev/zero | tr "\0" b)"); done &&
	test "$(http_code "$GW_URL/v1/health" "${hdrs[@]}")" = 431 &&
	json_error 431 headers_too_large && serving
'

test_expect_success 'a header that never ends is closed after the idle timeout' '
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" &&
	printf "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Never-Ends: aaa" >&$fd &&
	start=$SECONDS &&
	timeout 10 cat <&$fd >slow.out; rc=$?; exec {fd}>&-
	echo "rc $rc after $((SECONDS - start)) s" &&
	test $rc -eq 0 && test $((SECONDS - start)) -ge 1 && test ! -s slow.out && serving
'

test_expect_success 'a header trickled one byte a second is closed too' '
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" &&
	printf "GET /v1/health HTTP/1.1\r\nX-Trickle: " >&$fd &&
	{ for i in $(seq 1 12); do sleep 1; printf a >&$fd || break; done 2>/dev/null & } &&
	trickler=$! && start=$SECONDS &&
	timeout 10 cat <&$fd >slow.out; rc=$?; exec {fd}>&-; kill $trickler 2>/dev/null; wait $trickler
	echo "rc $rc after $((SECONDS - start)) s" &&
	test $rc -eq 0 && test ! -s slow.out && serving
'

test_expect_success '1,000 idle connections do not stop health or events' '
	ulimit -n 4096 &&
	before=$(status_http connections) && IDLE_FDS=() &&
	for i in $(seq 1 1000); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || break
		IDLE_FDS+=($fd)
	done
	test ${#IDLE_FDS[@]} -eq 1000 &&
	for i in $(seq 1 100); do
		n=$(status_http connections); [ "$n" -ge $((before + 1000)) ] && break; sleep 0.05
	done &&
	echo "connections: $n" && test "$n" -ge $((before + 1000)) &&
	serving && serving
'

test_expect_success 'the idle connections are closed by the idle timeout' '
	for i in $(seq 1 100); do
		n=$(status_http connections); [ "$n" -lt 10 ] && break; sleep 0.1
	done &&
	echo "connections: $n" && test "$n" -lt 10 &&
	peer_closed=0 && for fd in "${IDLE_FDS[@]}"; do
		# EOF (status 1) rather than a timeout (status over 128): the server closed it
		read -r -t 1 -u $fd _; rc=$?
		[ $rc -ge 1 ] && [ $rc -le 128 ] && peer_closed=$((peer_closed + 1))
		exec {fd}>&-
	done &&
	echo "closed by the server: $peer_closed" && test $peer_closed -eq 1000 && serving
'

test_expect_success 'two pipelined requests on one connection get two answers in order' '
	new=$(message pipelined-1) && dup=$(message 1) &&
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" &&
	printf "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%sPOST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" \
		"$TOKEN" ${#new} "$new" "$TOKEN" ${#dup} "$dup" >&$fd &&
	timeout 10 cat <&$fd >pipelined.out; exec {fd}>&-
	cat pipelined.out && echo &&
	split_responses pipelined.out >answers && cat answers &&
	test "$(wc -l <answers)" -eq 2 &&
	sed -n 1p answers | grep "^202 " | cut -d" " -f2- | jq -e ".duplicate == false" &&
	sed -n 2p answers | grep "^202 " | cut -d" " -f2- |
		jq -e --arg e "$EVT1" ".duplicate == true and .event_id == \$e" &&
	ACCEPTED=$((ACCEPTED + 1))
'

test_expect_success 'the store holds exactly the accepted events' '
	"$CRAB" admin status "{\"rows\":true}" >status.json &&
	jq -e --argjson n "$ACCEPTED" ".store.rows.inbox == \$n and .counters.events_accepted == \$n" status.json &&
	test "$(store_sql gw "SELECT count(*) FROM inbox")" -eq "$ACCEPTED" &&
	test "$(store_sql gw "SELECT count(DISTINCT idempotency_key) FROM inbox")" -eq "$ACCEPTED"
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
