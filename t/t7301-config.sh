#!/usr/bin/env bash
test_description='configuration management: apply, refusals that change nothing, revert, revisions and events, SIGHUP, agent tools under policy, kill -9 during applies (SQLite)'
CONFIG_KILL_ROUNDS=15
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/config-body.sh"
test_done
