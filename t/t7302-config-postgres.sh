#!/usr/bin/env bash
test_description='configuration management of t7301 on the PostgreSQL store: revisions and events stored there'
TEST_STORE=postgres
CONFIG_KILL_ROUNDS=5
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/config-body.sh"
test_done
