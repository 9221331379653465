#!/usr/bin/env bash
test_description='leases: authentication, expiry, scopes, session binding, tenants, rate limit, restarts'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/http.sh"

# lease NAME JSON-ARGS: lease.create; sets NAME_TOKEN and NAME_ID.
lease() {
	local out
	out=$("$CRAB" admin lease.create "$2") || return 1
	eval "$1_TOKEN=\$(echo \"\$out\" | jq -er .token)" &&
	eval "$1_ID=\$(echo \"\$out\" | jq -er .lease_id)"
}

# raw_head HEAD: sends the request head (lines joined with CRLF, then an empty line) on a
# new connection and no body. The whole answer must come, and the server close its side,
# within 2 s; "STATUS BODY" is left in raw.answer.
raw_head() {
	local fd rc
	exec {fd}<>"/dev/tcp/127.0.0.1/${GW_URL##*:}" || return 1
	printf '%s\n\n' "$1" | sed -e 's/$/\r/' >&$fd
	timeout 2 cat <&$fd >raw.out
	rc=$?
	exec {fd}>&-
	[ $rc -eq 0 ] || { echo "no answer within 2 s (status $rc)"; cat raw.out; return 1; }
	split_responses raw.out >raw.answer && cat raw.answer &&
	test "$(wc -l <raw.answer)" -eq 1
}

test_expect_success 'the gateway starts' '
	write_gateway_config gw &&
	start_gateway gw &&
	lease A "{\"tenant_id\": \"tenant-a\", \"scopes\": [\"produce\"], \"ttl_s\": 600}"
'

test_expect_success 'a lease works' '
	post_event "$A_TOKEN" "$(message 1)" && expect_status 202 &&
	SES_A=$(jq -r .session_id reply)
'

test_expect_success 'no Authorization is 401 unauthenticated' '
	curl -sS -o reply -w "%{http_code}" -X POST "$GW_URL/v1/events" \
		-H "Content-Type: application/json" --data-binary "$(message 2)" >status &&
	expect_status 401 unauthenticated
'

test_expect_success 'a wrong token, or another scheme, is 401 unauthenticated' '
	post_event "crab_NotAToken0123456789abcdefghijklmnopqrstuvwxyz" "$(message 2)" &&
	expect_status 401 unauthenticated &&
	post_event "${A_TOKEN%?}x" "$(message 2)" && expect_status 401 unauthenticated &&
	curl -sS -o reply -w "%{http_code}" -X POST "$GW_URL/v1/events" \
		-H "Authorization: Basic $A_TOKEN" -H "Content-Type: application/json" \
		--data-binary "$(message 2)" >status &&
	expect_status 401 unauthenticated
'

test_expect_success 'a revoked lease is 401' '
	lease R "{\"tenant_id\": \"tenant-a\", \"scopes\": [\"produce\"], \"ttl_s\": 600}" &&
	post_event "$R_TOKEN" "$(message 3)" && expect_status 202 &&
	"$CRAB" admin lease.revoke "{\"lease_id\": \"$R_ID\"}" | jq -e ".revoked == true" &&
	post_event "$R_TOKEN" "$(message 4)" && expect_status 401 unauthenticated &&
	test_must_fail "$CRAB" admin lease.revoke "{\"lease_id\": \"$R_ID\"}" 2>err &&
	grep -q "not_found" err
'

test_expect_success CLOCK 'a lease expires at its ttl on the test clock' '
	lease E "{\"tenant_id\": \"tenant-a\", \"scopes\": [\"produce\"], \"ttl_s\": 60}" &&
	"$CRAB" admin clock.advance "{\"ms\": 58000}" &&
	post_event "$E_TOKEN" "$(message 5)" && expect_status 202 &&
	"$CRAB" admin clock.advance "{\"ms\": 3000}" &&
	post_event "$E_TOKEN" "$(message 6)" && expect_status 401 unauthenticated &&
	post_event "$A_TOKEN" "$(message 6)" && expect_status 202
'

test_expect_success 'a subscribe-only lease may not produce: 403 forbidden' '
	lease S "{\"tenant_id\": \"tenant-a\", \"scopes\": [\"subscribe\"], \"ttl_s\": 600}" &&
	post_event "$S_TOKEN" "$(message 7)" && expect_status 403 forbidden
'

test_expect_success 'a lease may not produce cron.job.fired: 403 forbidden' '
	post_event "$A_TOKEN" "{\"type\": \"cron.job.fired\", \"tenant_id\": \"tenant-a\",
		\"agent_id\": \"assistant\", \"actor_id\": \"42\", \"text\": \"check the calendar\",
		\"idempotency_key\": \"cron:job_1:2026-11-24T06:00:00Z\"}" &&
	expect_status 403 forbidden
'

test_expect_success 'a lease of tenant "*" is 403 unknown_identity (no identity mapping yet)' '
	lease W "{\"tenant_id\": \"*\", \"scopes\": [\"produce\"], \"ttl_s\": 600}" &&
	post_event "$W_TOKEN" "$(message 8)" && expect_status 403 unknown_identity
'

test_expect_success 'a session-bound lease posts into its session by default' '
	post_event "$A_TOKEN" "$(message 9 | jq -c ".session_id = \"new\"")" && expect_status 202 &&
	SES_A2=$(jq -r .session_id reply) && test "$SES_A2" != "$SES_A" &&
	lease B "{\"tenant_id\": \"tenant-a\", \"session_id\": \"$SES_A\", \"scopes\": [\"produce\"], \"ttl_s\": 600}" &&
	post_event "$B_TOKEN" "$(message 10 | jq -c ".source.actor_id = \"77\"")" && expect_status 202 &&
	jq -e --arg s "$SES_A" ".session_id == \$s" reply &&
	post_event "$B_TOKEN" "$(message 11 | jq -c --arg s "$SES_A" ".session_id = \$s")" &&
	expect_status 202 && jq -e --arg s "$SES_A" ".session_id == \$s" reply
'

test_expect_success 'a session-bound lease may not post "new" or another session: 403 session_forbidden' '
	post_event "$B_TOKEN" "$(message 12 | jq -c ".session_id = \"new\"")" &&
	expect_status 403 session_forbidden &&
	post_event "$B_TOKEN" "$(message 13 | jq -c --arg s "$SES_A2" ".session_id = \$s")" &&
	expect_status 403 session_forbidden
'

test_expect_success 'a lease of tenant B naming a session of tenant A: 403 session_forbidden' '
	lease TB "{\"tenant_id\": \"tenant-b\", \"scopes\": [\"produce\"], \"ttl_s\": 600}" &&
	post_event "$TB_TOKEN" "$(message 14 | jq -c --arg s "$SES_A" ".session_id = \$s")" &&
	expect_status 403 session_forbidden &&
	post_event "$TB_TOKEN" "$(message 15 | jq -c ".session_id = \"ses_00000000000000000000000000\"")" &&
	expect_status 403 session_forbidden &&
	post_event "$TB_TOKEN" "$(message 16)" && expect_status 202 &&
	jq -e --arg a "$SES_A" --arg b "$SES_A2" ".session_id != \$a and .session_id != \$b" reply
'

test_expect_success 'lease.create naming a session of another tenant is refused' '
	before=$("$CRAB" admin status | jq .leases_live) &&
	test_must_fail "$CRAB" admin lease.create "{\"tenant_id\": \"tenant-b\", \"session_id\": \"$SES_A\", \"scopes\": [\"produce\"]}" 2>err &&
	cat err && grep -q "session_forbidden" err &&
	test_must_fail "$CRAB" admin lease.create "{\"tenant_id\": \"tenant-a\", \"session_id\": \"ses_00000000000000000000000000\", \"scopes\": [\"produce\"]}" 2>err &&
	grep -q "session_forbidden" err &&
	test "$("$CRAB" admin status | jq .leases_live)" -eq "$before"
'

test_expect_success 'a missing lease is refused before the body is read' '
	raw_head "POST /v1/events HTTP/1.1
Host: x
Content-Type: application/json
Content-Length: 1000000" &&
	grep "^401 " raw.answer | cut -d" " -f2- | jq -e ".error.code == \"unauthenticated\""
'

test_expect_success 'an unauthenticated client learns nothing of the size limit' '
	raw_head "POST /v1/events HTTP/1.1
Host: x
Authorization: Bearer crab_wrong
Content-Type: application/json
Content-Length: 100000000" &&
	grep -q "^401 " raw.answer &&
	raw_head "POST /v1/events HTTP/1.1
Host: x
Authorization: Bearer $A_TOKEN
Content-Type: application/json
Content-Length: 100000000" &&
	grep "^413 " raw.answer | cut -d" " -f2- | jq -e ".error.code == \"body_too_large\""
'

test_expect_success 'the admin socket is mode 0600, the data directory 0700' '
	test "$(stat -c %a "$TRASH/gw/data/admin.sock")" = 600 &&
	test -S "$TRASH/gw/data/admin.sock" &&
	test "$(stat -c %a "$TRASH/gw/data")" = 700
'

test_expect_success 'a second gateway on the same data directory refuses to start' '
	test_must_fail "$CRAB" gateway -c "$TRASH/gw/crab.yaml" 2>second.err &&
	cat second.err && grep -q "another gateway is running" second.err &&
	sanitizer_clean second.err &&
	"$CRAB" admin pair.test | jq -e ".status == \"ok\"" &&
	post_event "$A_TOKEN" "$(message 17)" && expect_status 202
'

test_expect_success 'leases survive a restart; a revoked one stays revoked' '
	stop_gateway && start_gateway gw &&
	post_event "$A_TOKEN" "$(message 18)" && expect_status 202 &&
	post_event "$B_TOKEN" "$(message 19)" && expect_status 202 &&
	jq -e --arg s "$SES_A" ".session_id == \$s" reply &&
	post_event "$R_TOKEN" "$(message 20)" && expect_status 401 unauthenticated &&
	post_event "$S_TOKEN" "$(message 21)" && expect_status 403 forbidden
'

test_expect_success 'the data directory is back to 0700 after a restart' '
	test "$(stat -c %a "$TRASH/gw/data")" = 700 &&
	test "$(stat -c %a "$TRASH/gw/data/admin.sock")" = 600
'

test_expect_success 'after kill -9 the stale admin socket is cleared at the next start' '
	crash_gateway && test -S "$TRASH/gw/data/admin.sock" &&
	start_gateway gw && post_event "$A_TOKEN" "$(message 22)" && expect_status 202 &&
	stop_gateway
'

test_expect_success 'a gateway with rate_per_second 2, rate_burst 2 starts' '
	write_gateway_config rl "limits:" "  rate_per_second: 2" "  rate_burst: 2" &&
	start_gateway rl &&
	lease L "{\"tenant_id\": \"tenant-a\", \"scopes\": [\"produce\"], \"ttl_s\": 600}" &&
	lease M "{\"tenant_id\": \"tenant-a\", \"scopes\": [\"produce\"], \"ttl_s\": 600}"
'

test_expect_success 'the third quick post of a lease is 429 rate_limited with Retry-After' '
	rm -f rl.headers &&
	curl -sS -D rl.headers -o /dev/null -o /dev/null -o /dev/null -w "%{http_code}\n" -X POST \
		-H "Authorization: Bearer $L_TOKEN" -H "Content-Type: application/json" \
		--data-binary "$(message rl-1)" \
		"$GW_URL/v1/events" "$GW_URL/v1/events" "$GW_URL/v1/events" >rl.codes &&
	cat rl.codes rl.headers &&
	test "$(tr "\n" " " <rl.codes)" = "202 202 429 " &&
	grep -E -i -q "^Retry-After: [1-9][0-9]*.$" rl.headers &&
	post_event "$L_TOKEN" "$(message rl-2)" && expect_status 429 rate_limited
'

test_expect_success 'the limit is per lease: another lease still posts' '
	post_event "$M_TOKEN" "$(message rl-3)" && expect_status 202
'

test_expect_success CLOCK 'the bucket refills with time' '
	"$CRAB" admin clock.advance "{\"ms\": 1000}" &&
	post_event "$L_TOKEN" "$(message rl-4)" && expect_status 202 &&
	"$CRAB" admin status | jq -e ".counters.rate_limited == 2"
'

test_expect_success 'the rate-limited gateway stops cleanly' '
	stop_gateway
'

test_done
