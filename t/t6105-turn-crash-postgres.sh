#!/usr/bin/env bash
test_description='kill -9 with turns running and queued (PostgreSQL): each accepted event gets exactly one finished turn'
TEST_STORE=postgres
CRASH_TOTAL=300 CRASH_SESSIONS=40 # the SQLite run (t6102) has 500 over 60
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/turn-crash-body.sh"
test_done
