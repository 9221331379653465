#!/usr/bin/env bash
test_description='kill -9 under load (SQLite): every acknowledged event is stored exactly once'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/crash-body.sh"
test_done
