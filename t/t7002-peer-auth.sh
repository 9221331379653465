#!/usr/bin/env bash
test_description='the authorization matrix of PEER_AUTH_MODEL.md on the public listener: peers by their pinned keys, grants, revocation closing connections, leases, refusals counted and logged, no secret in any log or event'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/peers.sh"
. "$TEST_ROOT/t/lib/peer-auth-body.sh"
test_done
