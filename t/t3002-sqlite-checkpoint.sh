#!/usr/bin/env bash
test_description='SQLite: the checkpointer copies committed events into the database file'
. "$(dirname "$0")/test-lib.sh"

# db_file_inbox_count: inbox rows in a copy of the database file alone, without its WAL,
# i.e. what checkpoints have copied so far; empty when the copy caught a page mid-write.
db_file_inbox_count() {
	rm -f "$TRASH/copy.db" "$TRASH/copy.db-wal" "$TRASH/copy.db-shm"
	cp "$TRASH/ckpt/data/crab.db" "$TRASH/copy.db" &&
	sqlite3 -batch "$TRASH/copy.db" "SELECT count(*) FROM inbox" 2>/dev/null
}

test_expect_success 'the gateway starts on SQLite' '
	write_gateway_config ckpt "limits:" "  rate_per_second: 0" &&
	start_gateway ckpt &&
	TOKEN=$(make_lease tenant_ckpt) && test -n "$TOKEN"
'

test_expect_success 'events committed to the WAL reach the database file while it runs' '
	"$HELPERS/postload" -u "$GW_URL" -t "$TOKEN" -c 2 -n 300 -p ck 2>err &&
	cat err && grep -q "accepted 300," err &&
	i=0 &&
	while n=$(db_file_inbox_count); [ "${n:-0}" -lt 300 ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	echo "inbox rows in crab.db without its WAL: ${n:-none} after $i polls" &&
	test "${n:-0}" -eq 300
'

test_expect_success 'the gateway stops cleanly and leaves no WAL content behind' '
	stop_gateway &&
	test "$(stat -c %s "$TRASH/ckpt/data/crab.db-wal" 2>/dev/null || echo 0)" -eq 0
'

test_done
