#!/usr/bin/env bash
test_description='a lease made for a new session: the first event creates and binds it'
. "$(dirname "$0")/test-lib.sh"

new_lease() {
	"$CRAB" admin lease.create '{"tenant_id":"family","scopes":["produce"],"ttl_s":600,"session_id":"new"}'
}

test_expect_success 'start a gateway' '
	write_gateway_config gw && start_gateway gw
'

test_expect_success 'lease.create accepts session_id "new"' '
	new_lease >lease.json &&
	jq -e ".session_id == \"new\" and (.token | startswith(\"crab_\"))" lease.json &&
	TOKEN=$(jq -r .token lease.json) && LEASE=$(jq -r .lease_id lease.json)
'

test_expect_success 'the first event creates a fresh session' '
	post_event "$TOKEN" "$(message 1)" && expect_status 202 &&
	FIRST=$(jq -r .session_id "$TRASH/reply") &&
	jq -e ".duplicate == false and (.session_id | startswith(\"ses_\"))" "$TRASH/reply"
'

test_expect_success 'later events continue that session, whatever the runtime key' '
	post_event "$TOKEN" "$(message 2 | jq -c ".source.channel_id = \"elsewhere\"")" &&
	expect_status 202 && test "$(jq -r .session_id "$TRASH/reply")" = "$FIRST" &&
	post_event "$TOKEN" "$(message 3 | jq -c --arg s "$FIRST" ".session_id = \$s")" &&
	expect_status 202 && test "$(jq -r .session_id "$TRASH/reply")" = "$FIRST"
'

test_expect_success 'once bound, "new" and other sessions are 403 session_forbidden' '
	post_event "$TOKEN" "$(message 4 | jq -c ".session_id = \"new\"")" &&
	expect_status 403 session_forbidden &&
	post_event "$TOKEN" "$(message 5 | jq -c ".session_id = \"ses_01ABCDEFGHJKMNPQRSTVWXYZ0\"")" &&
	expect_status 403 session_forbidden
'

test_expect_success 'a pending lease may not name an existing session' '
	OTHER=$(new_lease | jq -r .token) &&
	post_event "$OTHER" "$(message 6 | jq -c --arg s "$FIRST" ".session_id = \$s")" &&
	expect_status 403 session_forbidden &&
	post_event "$OTHER" "$(message 7)" && expect_status 202 &&
	test "$(jq -r .session_id "$TRASH/reply")" != "$FIRST"
'

test_expect_success 'eight racing first events on a fresh lease all land in one session' '
	RACE=$(new_lease | jq -r .token) && pids= &&
	for i in 1 2 3 4 5 6 7 8; do
		curl -sS -X POST "$GW_URL/v1/events" -H "Authorization: Bearer $RACE" \
			-H "Content-Type: application/json" --data-binary "$(message "race-$i")" \
			>"race.$i" &
		pids="$pids $!"
	done &&
	wait $pids &&
	cat race.* &&
	test "$(jq -r .session_id race.* | sort -u | wc -l)" = 1 &&
	test "$(jq -r .duplicate race.* | sort -u)" = false
'

test_expect_success 'the binding survives a restart' '
	stop_gateway && start_gateway gw &&
	post_event "$TOKEN" "$(message 8)" && expect_status 202 &&
	test "$(jq -r .session_id "$TRASH/reply")" = "$FIRST" &&
	post_event "$TOKEN" "$(message 9 | jq -c ".session_id = \"new\"")" &&
	expect_status 403 session_forbidden
'

test_expect_success 'a duplicate first event binds nothing twice' '
	DUP=$(new_lease | jq -r .token) &&
	post_event "$DUP" "$(message dup)" && expect_status 202 &&
	S1=$(jq -r .session_id "$TRASH/reply") &&
	post_event "$DUP" "$(message dup)" && expect_status 202 &&
	jq -e --arg s "$S1" ".duplicate == true and .session_id == \$s" "$TRASH/reply"
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
