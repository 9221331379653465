#!/usr/bin/env bash
test_description='one binary: help, version, usage errors'
. "$(dirname "$0")/test-lib.sh"

test_expect_success 'crab version prints the version' '
	"$CRAB" version | grep -E "^crab [0-9]+\.[0-9]+\.[0-9]+$"
'

test_expect_success 'crab help lists the commands' '
	"$CRAB" help >out &&
	grep -q "^  gateway " out && grep -q "^  event " out && grep -q "^  pair " out
'

test_expect_success 'an unknown command prints usage and exits 2' '
	"$CRAB" frobnicate 2>err; test $? -eq 2 &&
	grep -q "unknown command .frobnicate." err && grep -q "^usage: crab" err
'

test_expect_success 'no command at all exits 2' '
	"$CRAB" 2>err; test $? -eq 2 && grep -q "^usage: crab" err
'

test_expect_success 'an unknown gateway option prints usage and exits 2' '
	"$CRAB" gateway --bogus 2>err; test $? -eq 2 && grep -q "usage: crab gateway" err
'

test_expect_success 'crab pair test without a gateway fails clearly' '
	test_must_fail "$CRAB" pair test --admin-socket "$TRASH/none.sock" 2>err &&
	grep -q "cannot reach the gateway at .*none.sock" err
'

test_expect_success 'crab pair test with a bad subcommand exits 2' '
	"$CRAB" pair frob 2>err; test $? -eq 2 && grep -q "usage: crab pair test" err
'

test_done
