#!/usr/bin/env bash
test_description='the gateway on a real PostgreSQL server; durability read back on both stores'
TEST_STORE=postgres
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"

# status_store FILE: the admin status op's "store" object into FILE, which must not end
# up empty (jq 1.6 -e passes on empty input).
status_store() {
	"$CRAB" admin status '{"rows":true}' >"$1.status" && jq -c .store "$1.status" >"$1" && test -s "$1"
}

test_expect_success 'a database default of synchronous_commit=off is set before start' '
	write_gateway_config pg &&
	psql "$(cat "$TRASH/pg/pg.dsn")" -X -q -v ON_ERROR_STOP=1 -c "DO \$\$ BEGIN
		EXECUTE format(\$f\$ALTER DATABASE %I SET synchronous_commit = off\$f\$,
			current_database()); END \$\$" &&
	test "$(psql "$(cat "$TRASH/pg/pg.dsn")" -X -A -t -c "SHOW synchronous_commit")" = off
'

test_expect_success 'the gateway starts on PostgreSQL' '
	start_gateway pg &&
	grep -q "store postgres" "$GW_LOG" &&
	TOKEN=$(make_lease family) && test -n "$TOKEN"
'

test_expect_success 'status reads back synchronous_commit=on and fsync=on from the server' '
	status_store store.json && cat store.json &&
	jq -e ".driver == \"postgres\" and .synchronous == \"on\" and .fsync == \"on\"
		and .journal_mode == \"wal\" and .schema_version >= 1" store.json
'

test_expect_success 'psql agrees: fsync on, and the server default synchronous_commit on' '
	test "$(store_sql pg "SHOW fsync")" = on &&
	test "$(store_sql pg "SELECT boot_val FROM pg_settings WHERE name = '"'"'synchronous_commit'"'"'")" = on
'

test_expect_success 'the gateway connection itself runs with synchronous_commit=on' '
	# The database default is off (first check), so an "on" here is the gateway setting
	# it on its own connection, read back by the status op over that connection.
	test "$(store_sql pg "SHOW synchronous_commit")" = off &&
	jq -e ".synchronous == \"on\"" store.json
'

test_expect_success 'an event is accepted and stored in PostgreSQL' '
	post_event "$TOKEN" "$(message m1 first)" && expect_status 202 &&
	jq -e ".duplicate == false and (.event_id | startswith(\"evt_\"))
		and (.session_id | startswith(\"ses_\"))" "$TRASH/reply" &&
	EVT1=$(jq -r .event_id "$TRASH/reply") && SES1=$(jq -r .session_id "$TRASH/reply") &&
	test "$(store_sql pg "SELECT tenant_id, idempotency_key, session_id FROM inbox
		WHERE id = '"'"'$EVT1'"'"'")" = "family|telegram:-100123:m1|$SES1" &&
	store_sql pg "SELECT envelope FROM inbox WHERE id = '"'"'$EVT1'"'"'" |
		jq -e ".text == \"first\""
'

test_expect_success 'the same message again is a duplicate with the first ids' '
	post_event "$TOKEN" "$(message m1 first)" && expect_status 202 &&
	jq -e --arg e "$EVT1" --arg s "$SES1" \
		".duplicate == true and .event_id == \$e and .session_id == \$s" "$TRASH/reply" &&
	test "$(store_sql pg "SELECT count(*) FROM inbox")" = 1
'

test_expect_success 'a second message from the same actor reuses the session' '
	post_event "$TOKEN" "$(message m2 second)" && expect_status 202 &&
	jq -e --arg s "$SES1" ".duplicate == false and .session_id == \$s" "$TRASH/reply" &&
	test "$(store_sql pg "SELECT count(*) FROM sessions")" = 1
'

test_expect_success 'session_id "new" starts another session, which can then be named' '
	post_event "$TOKEN" "$(message m3 | jq -c ".session_id = \"new\"")" && expect_status 202 &&
	SES2=$(jq -r .session_id "$TRASH/reply") && test "$SES2" != "$SES1" &&
	post_event "$TOKEN" "$(message m4 | jq -c --arg s "$SES1" ".session_id = \$s")" &&
	expect_status 202 && jq -e --arg s "$SES1" ".session_id == \$s" "$TRASH/reply" &&
	test "$(store_sql pg "SELECT count(*) FROM sessions WHERE tenant_id = '"'"'family'"'"'")" = 2
'

test_expect_success 'status counts the rows PostgreSQL holds' '
	status_store store.json &&
	jq -e ".rows.inbox == 4 and .rows.sessions == 2 and .rows.idempotency_keys == 4
		and .rows.leases == 1" store.json &&
	test "$(store_sql pg "SELECT count(*) FROM idempotency_keys")" = 4
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_expect_success 'after a restart the stored key still answers duplicate' '
	start_gateway pg &&
	post_event "$TOKEN" "$(message m1 first)" && expect_status 202 &&
	jq -e --arg e "$EVT1" ".duplicate == true and .event_id == \$e" "$TRASH/reply" &&
	stop_gateway
'

test_expect_success 'a DSN naming no database refuses to start, clearly' '
	write_gateway_config badpg &&
	sed "s/dbname=[a-z0-9_]*/dbname=no_such_db/" "$TRASH/badpg/pg.dsn" >"$TRASH/badpg/pg.dsn.new" &&
	mv "$TRASH/badpg/pg.dsn.new" "$TRASH/badpg/pg.dsn" &&
	test_must_fail "$CRAB" gateway -c "$TRASH/badpg/crab.yaml" 2>err &&
	cat err && grep -q "cannot start" err && grep -q "no_such_db" err &&
	sanitizer_clean err
'

# The same read-back on SQLite: a gateway on the default store in the same script.
test_expect_success 'SQLite: status reads back WAL, commits apart from the fdatasync that acks wait for' '
	TEST_STORE=sqlite write_gateway_config lite &&
	start_gateway lite &&
	status_store lite.json && cat lite.json &&
	jq -e ".driver == \"sqlite\" and .journal_mode == \"wal\" and .synchronous == \"normal\"
		and .fsync == \"on\" and .acks == \"after fdatasync of the WAL\"" lite.json
'

test_expect_success 'SQLite: an accepted event is answered after a sync of its commit' '
	TOKEN=$(make_lease family) && test -n "$TOKEN" &&
	syncs0=$(jq .syncs lite.json) &&
	post_event "$TOKEN" "$(message l1)" && expect_status 202 &&
	status_store lite2.json &&
	test "$(jq .syncs lite2.json)" -gt "$syncs0"
'

test_expect_success 'SQLite: the database file is in WAL mode for every reader' '
	test "$(TEST_STORE=sqlite store_sql lite "PRAGMA journal_mode")" = wal &&
	stop_gateway
'

test_done
