#!/usr/bin/env bash
test_description='the authorization matrix of t7002 on the PostgreSQL store: peers, grants and leases stored there'
TEST_STORE=postgres
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/peers.sh"
. "$TEST_ROOT/t/lib/peer-auth-body.sh"
test_done
