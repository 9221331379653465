#!/usr/bin/env bash
test_description='idempotency: racing copies, keys per tenant, the default and the explicit key'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"

# race TOKEN BODY: 16 copies of BODY posted at once, each on its own connection; their
# answers go to race-N.json.out and "URL CONNECTS STATUS" lines to race.codes.
race() {
	printf '%s' "$2" >race-body.json &&
	rm -f race-*.json.out race.codes &&
	curl -sS --parallel --parallel-immediate --parallel-max 16 \
		-X POST "$GW_URL/v1/events?copy=[1-16]" -o "race-#1.json.out" \
		-w '%{url} %{num_connects} %{http_code}\n' \
		-H "Authorization: Bearer $1" -H "Content-Type: application/json" \
		--data-binary @race-body.json >race.codes &&
	cat race.codes &&
	test "$(wc -l <race.codes)" -eq 16 &&
	# each copy on its own new connection, not queued behind another
	test "$(grep -c " 1 [0-9]*$" race.codes)" -eq 16
}

# race_ok: all 16 were 202, exactly one not a duplicate, all with the same ids.
race_ok() {
	test "$(grep -c " 202$" race.codes)" -eq 16 || { echo "not all 202"; return 1; }
	jq -s -c '[length, (map(select(.duplicate == false)) | length),
		(map(.event_id) | unique | length), (map(.session_id) | unique | length)]' \
		race-*.json.out >race.summary &&
	cat race.summary &&
	test "$(cat race.summary)" = "[16,1,1,1]"
}

# stored_keys TENANT KEY: how many inbox rows the tenant has under that key.
stored_keys() {
	store_sql gw "SELECT count(*) FROM inbox WHERE tenant_id = '$1' AND idempotency_key = '$2'"
}

test_expect_success 'the gateway starts, leases for two tenants' '
	write_gateway_config gw &&
	start_gateway gw &&
	TOKEN_A=$(make_lease tenant-a) && TOKEN_B=$(make_lease tenant-b)
'

for round in 1 2 3; do
	test_expect_success "16 racing copies of one key: exactly one is new (round $round)" '
		race "$TOKEN_A" "$(message race-'$round')" && race_ok &&
		test "$(stored_keys tenant-a "telegram:-100123:race-'$round'")" -eq 1
	'
done

test_expect_success 'the racing copies left one event each in the store' '
	"$CRAB" admin status "{\"rows\":true}" | jq -e ".store.rows.inbox == 3 and .counters.events_accepted == 3
		and .counters.events_duplicate == 45"
'

test_expect_success 'a key is per tenant: the same message under another tenant is new' '
	post_event "$TOKEN_A" "$(message 981)" && expect_status 202 &&
	EVT_A=$(jq -r .event_id reply) && jq -e ".duplicate == false" reply &&
	post_event "$TOKEN_B" "$(message 981)" && expect_status 202 &&
	EVT_B=$(jq -r .event_id reply) && jq -e ".duplicate == false" reply &&
	test "$EVT_A" != "$EVT_B" &&
	post_event "$TOKEN_B" "$(message 981)" && expect_status 202 &&
	jq -e --arg e "$EVT_B" ".duplicate == true and .event_id == \$e" reply &&
	post_event "$TOKEN_A" "$(message 981)" && expect_status 202 &&
	jq -e --arg e "$EVT_A" ".duplicate == true and .event_id == \$e" reply &&
	test "$(stored_keys tenant-a telegram:-100123:981)" -eq 1 &&
	test "$(stored_keys tenant-b telegram:-100123:981)" -eq 1
'

test_expect_success 'racing copies under two tenants: one new event per tenant' '
	race "$TOKEN_B" "$(message race-1)" && race_ok &&
	test "$(stored_keys tenant-b telegram:-100123:race-1)" -eq 1 &&
	test "$(stored_keys tenant-a telegram:-100123:race-1)" -eq 1
'

test_expect_success 'the default key is platform:channel_id:message_id' '
	post_event "$TOKEN_A" "$(message 982)" && expect_status 202 &&
	EVT=$(jq -r .event_id reply) &&
	test "$(store_sql gw "SELECT idempotency_key FROM inbox WHERE id = '"'"'$EVT'"'"'")" = \
		"telegram:-100123:982"
'

test_expect_success 'the same message id in another channel is new' '
	post_event "$TOKEN_A" "$(message 982 | jq -c ".source.channel_id = \"-100999\"")" &&
	expect_status 202 && jq -e --arg e "$EVT" ".duplicate == false and .event_id != \$e" reply &&
	post_event "$TOKEN_A" "$(message 982 | jq -c ".source.platform = \"discord\"")" &&
	expect_status 202 && jq -e ".duplicate == false" reply &&
	post_event "$TOKEN_A" "$(message 982 | jq -c ".source.actor_id = \"43\"")" &&
	expect_status 202 && jq -e --arg e "$EVT" ".duplicate == true and .event_id == \$e" reply
'

test_expect_success 'without a message id every post is new' '
	body=$(message x | jq -c "del(.source.message_id)") &&
	post_event "$TOKEN_A" "$body" && expect_status 202 && jq -e ".duplicate == false" reply &&
	first=$(jq -r .event_id reply) &&
	post_event "$TOKEN_A" "$body" && expect_status 202 &&
	jq -e --arg e "$first" ".duplicate == false and .event_id != \$e" reply
'

test_expect_success 'an explicit idempotency_key wins over the default' '
	post_event "$TOKEN_A" "$(message 983 | jq -c ".idempotency_key = \"my-key-1\"")" &&
	expect_status 202 && jq -e ".duplicate == false" reply && EVT=$(jq -r .event_id reply) &&
	post_event "$TOKEN_A" "$(message 984 | jq -c ".idempotency_key = \"my-key-1\"")" &&
	expect_status 202 && jq -e --arg e "$EVT" ".duplicate == true and .event_id == \$e" reply &&
	post_event "$TOKEN_A" "$(message 983)" &&
	expect_status 202 && jq -e --arg e "$EVT" ".duplicate == false and .event_id != \$e" reply &&
	test "$(stored_keys tenant-a my-key-1)" -eq 1 &&
	test "$(stored_keys tenant-a telegram:-100123:983)" -eq 1
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
