#!/usr/bin/env bash
test_description='kill -9 with turns running and queued (PostgreSQL): each accepted event gets exactly one finished turn'
TEST_STORE=postgres
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/turn-crash-body.sh"
test_done
