#!/usr/bin/env bash
test_description='crab event send and crab pair test against a running gateway'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"

# sent FILE: FILE holds exactly the two lines of `crab event send`; sets EVT and SES.
sent() {
	cat "$1" &&
	test "$(wc -l <"$1")" -eq 2 &&
	EVT=$(sed -n "s/^event_id  *\(evt_[0-9A-Z]*\)$/\1/p" "$1") && test -n "$EVT" &&
	SES=$(sed -n "s/^session_id  *\(ses_[0-9A-Z]*\)$/\1/p" "$1") && test -n "$SES"
}

# inbox_row EVT: "tenant|agent|session|platform|channel|actor|text|producer" of the event.
inbox_row() {
	local row env
	row=$(store_sql gw "SELECT tenant_id, agent_id, session_id, producer FROM inbox WHERE id = '$1'") &&
	env=$(store_sql gw "SELECT envelope FROM inbox WHERE id = '$1'") &&
	test -n "$row" &&
	echo "$row|$(echo "$env" | jq -r '[.source.platform, .source.channel_id, .source.actor_id, .text, .session_id] | join("|")')"
}

# lease_revoked LEASE-ID: the store marks that lease revoked.
lease_revoked() {
	test "$(store_sql gw "SELECT count(*) FROM leases WHERE id = '$1' AND revoked_at IS NOT NULL")" -eq 1
}

live_leases() {
	"$CRAB" admin status | jq -er .leases_live
}

test_expect_success 'the gateway starts' '
	write_gateway_config gw "models: [{id: echo, adapter: echo}]" \
		"agents: [{id: assistant, model: echo}, {id: helper, model: echo}]" &&
	start_gateway gw &&
	LIVE=$(live_leases)
'

test_expect_success 'crab event send prints the event and session ids' '
	"$CRAB" event send hello >out1 && sent out1 && EVT1=$EVT SES1=$SES
'

test_expect_success 'the event is stored with the CLI defaults and its text' '
	inbox_row "$EVT1" >row && cat row &&
	IFS="|" read -r tenant agent ses producer platform channel actor text esess <row &&
	test "$tenant" = default && test "$agent" = assistant && test "$ses" = "$SES1" &&
	test "$platform" = cli && test "$channel" = cli && test "$actor" = "$(id -un)" &&
	test "$text" = hello && test "$esess" = new &&
	LEASE1=${producer#lease:} && test "$LEASE1" != "$producer"
'

test_expect_success 'the lease it used is revoked afterwards' '
	lease_revoked "$LEASE1" && test "$(live_leases)" -eq "$LIVE"
'

test_expect_success 'two invocations give two different sessions' '
	"$CRAB" event send hello >out2 && sent out2 &&
	test "$SES" != "$SES1" && test "$EVT" != "$EVT1" &&
	test "$(store_sql gw "SELECT count(*) FROM sessions WHERE id IN ('"'"'$SES1'"'"', '"'"'$SES'"'"')")" -eq 2
'

test_expect_success '--json prints the JSON reply' '
	"$CRAB" event send --json "hello json" >out3 && cat out3 &&
	test "$(wc -l <out3)" -eq 1 &&
	jq -e "(.event_id | startswith(\"evt_\")) and (.session_id | startswith(\"ses_\"))
		and .duplicate == false and (keys | length == 3)" out3 &&
	EVT=$(jq -r .event_id out3) &&
	inbox_row "$EVT" | grep -q "|hello json|new$"
'

test_expect_success '--platform, --channel, --actor, --tenant and --agent are honoured' '
	"$CRAB" event send --platform telegram --channel -100123 --actor 42 \
		--tenant family --agent helper "from options" >out4 && sent out4 &&
	inbox_row "$EVT" >row && cat row &&
	test "$(cat row)" = "family|helper|$SES|$(cut -d"|" -f4 row)|telegram|-100123|42|from options|new" &&
	store_sql gw "SELECT tenant_id, agent_id, platform, channel_id, actor_id FROM session_bindings WHERE session_id = '"'"'$SES'"'"'" >binding &&
	cat binding && test "$(cat binding)" = "family|helper|telegram|-100123|42" &&
	lease_revoked "$(cut -d"|" -f4 row | sed "s/^lease://")"
'

test_expect_success '--gateway and --admin-socket name the gateway explicitly' '
	(unset CRAB_ADMIN_SOCKET; cd / &&
	 "$CRAB" event send --gateway "$GW_URL" --admin-socket "$TRASH/gw/data/admin.sock" hi) >out5 &&
	sent out5
'

test_expect_success 'no lease is left behind' '
	test "$(live_leases)" -eq "$LIVE" &&
	test "$(store_sql gw "SELECT count(*) FROM leases WHERE revoked_at IS NULL")" -eq 0
'

test_expect_success 'crab pair test prints the version and "ok"' '
	"$CRAB" pair test >pair.out && cat pair.out &&
	version=$("$CRAB" version | cut -d" " -f2) &&
	grep -q "^crab gateway $version: ok, listening on $GW_URL" pair.out
'

test_expect_success 'crab event send with no gateway fails clearly, exit 1' '
	(unset CRAB_ADMIN_SOCKET; cd "$TRASH" && "$CRAB" event send hello) >out 2>err; rc=$?
	cat err && test $rc -eq 1 && test ! -s out &&
	grep -q "^crab: cannot reach the gateway at .crab-data/admin.sock." err &&
	"$CRAB" event send --admin-socket "$TRASH/none.sock" hello 2>err; rc=$?
	cat err && test $rc -eq 1 && grep -q "cannot reach the gateway at .*none.sock" err
'

test_expect_success 'a gateway URL nobody answers: exit 1, and the lease is revoked anyway' '
	"$CRAB" event send --gateway "http://127.0.0.1:1" hello >out 2>err; rc=$?
	cat err && test $rc -eq 1 && test ! -s out &&
	grep -q "^crab: cannot post to http://127.0.0.1:1/v1/events" err &&
	test "$(live_leases)" -eq "$LIVE" &&
	test "$(store_sql gw "SELECT count(*) FROM leases WHERE revoked_at IS NULL")" -eq 0
'

test_expect_success 'a refused event is reported with the code, exit 1' '
	"$CRAB" event send --platform "$(head -c 100 /dev/zero | tr "\0" p)" hello >out 2>err; rc=$?
	cat err && test $rc -eq 1 && test ! -s out &&
	grep -q "^crab: the gateway answered 400: invalid_envelope: " err
'

test_expect_success 'usage errors exit 2' '
	for args in "event" "event send" "event send a b" "event send --bogus hi" \
		"event frob hi" "event send --platform" "pair" "pair test extra" "admin" \
		"admin status {not-json" "admin status [1]"
	do
		"$CRAB" $args >out 2>err; rc=$?
		if [ $rc -ne 2 ] || ! grep -q "usage: crab\|must be a JSON object" err; then
			echo "crab $args: exit $rc"; cat err; bad=1
		fi
	done
	test -z "${bad:-}"
'

test_expect_success 'an admin error is exit 1 with "crab: code: message"' '
	"$CRAB" admin no.such.op >out 2>err; rc=$?
	cat err && test $rc -eq 1 && grep -q "^crab: unknown_op: " err &&
	"$CRAB" admin lease.create "{\"scopes\": [\"produce\"]}" 2>err; rc=$?
	cat err && test $rc -eq 1 && grep -q "^crab: invalid_args: " err
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
