# t/lib/store.sh: reading a test gateway's store from a test script, on either backend.
# Source it after test-lib.sh.

# store_sql NAME SQL: runs SQL against the store of the gateway NAME (as written by
# write_gateway_config) and prints the rows, columns separated by '|'. With
# TEST_STORE=postgres it goes through psql on the run's server, otherwise through the
# sqlite3 shell on the database file (waiting out a writer's lock).
store_sql() {
	local dir=$TRASH/$1
	if [ "$TEST_STORE" = postgres ]; then
		psql "$(cat "$dir/pg.dsn")" -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -c "$2"
	else
		sqlite3 -batch -bail -cmd '.timeout 5000' "$dir/data/crab.db" "$2"
	fi
}
