#!/usr/bin/env bash
test_description='SIGTERM drains in-flight requests: full replies, exit 0, nothing lost'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"

ACCEPTED_IDS=$TRASH/accepted.ids # event ids answered 202 duplicate:false, all phases
: >"$ACCEPTED_IDS"

# hold_store_lock NAME SECONDS: a second client of NAME's store takes the write lock,
# holds it SECONDS, then lets go. Returns once the lock is held; sets LOCK_PID.
hold_store_lock() {
	local dir=$TRASH/$1 i
	rm -f "$dir/locked"
	if [ "$TEST_STORE" = postgres ]; then
		{ echo "BEGIN; LOCK TABLE idempotency_keys IN ACCESS EXCLUSIVE MODE;"
		  echo "\\o $dir/locked"; echo "SELECT 1;"; echo "\\o"
		  sleep "$2"; echo "COMMIT;"; } |
			psql "$(cat "$dir/pg.dsn")" -X -q -v ON_ERROR_STOP=1 >/dev/null &
	else
		{ echo "BEGIN IMMEDIATE;"; echo ".output $dir/locked"; echo "SELECT 1;"
		  echo ".output stdout"; sleep "$2"; echo "COMMIT;"; } |
			sqlite3 -batch -bail "$dir/data/crab.db" >/dev/null &
	fi
	LOCK_PID=$!
	TEST_PIDS="$TEST_PIDS $LOCK_PID"
	for i in $(seq 1 100); do
		[ -s "$dir/locked" ] && return 0
		sleep 0.05
	done
	echo "the store lock was not taken"
	return 1
}

# check_replies CODES...: every line "ID HTTP-CODE CURL-EXIT" of the files is either no
# reply at all (000) or a full one (curl exit 0, so all of Content-Length came, and the
# body ID.body is one whole JSON object): 202 new, or a 503 JSON error. Accepted ids are
# added to $ACCEPTED_IDS; prints the counts and sets LAST_OK.
check_replies() {
	local id code rc body bad=0 ok=0 none=0 other=0
	local accepted='^\{.*"event_id":"(evt_[0-9A-Za-z]+)".*\}$'
	while read -r id code rc; do
		body=
		[ -f "load/$id.body" ] && body=$(<"load/$id.body")
		case $code in
		000)
			none=$((none + 1))
			continue ;;
		202)
			if [ "$rc" = 0 ] && [[ $body =~ $accepted ]] &&
				[[ $body == *'"duplicate":false'* ]]; then
				echo "${BASH_REMATCH[1]}" >>"$ACCEPTED_IDS"
				ok=$((ok + 1))
				continue
			fi ;;
		503)
			if [ "$rc" = 0 ] && [[ $body == '{"error":{"code":"'*'}}' ]]; then
				other=$((other + 1))
				continue
			fi ;;
		esac
		echo "bad reply to $id: status $code, curl exit $rc, body: $body"
		bad=$((bad + 1))
	done < <(cat "$@")
	echo "accepted $ok, refused 503 $other, no reply $none, bad $bad"
	LAST_OK=$ok
	[ $bad -eq 0 ]
}

# The body of a load message, printf-ed with its message id (no jq per request).
LOAD_BODY='{"type":"channel.message.received","text":"load","source":{"platform":"telegram","channel_id":"-100123","actor_id":"42","message_id":"%s"}}'

# poster W: posts unique messages five at a time on one keep-alive connection until the
# gateway stops answering; "ID HTTP-CODE CURL-EXIT" lines go to load/W.codes.
poster() {
	local w=$1 n=0 k args
	while [ $n -lt 2000 ]; do
		args=()
		for k in 1 2 3 4 5; do
			n=$((n + 1))
			[ $k -gt 1 ] && args+=(--next)
			args+=(-s -X POST -H "Authorization: Bearer $TOKEN"
				-H "Content-Type: application/json"
				--data-binary "$(printf "$LOAD_BODY" "w$w-$n")" -o "load/w$w-$n.body"
				-w "w$w-$n %{http_code} %{exitcode}\n" "$GW_URL/v1/events")
		done
		curl "${args[@]}" >>"load/w$w.codes"
		tail -n 1 "load/w$w.codes" | grep -q " 000 " && break
	done
}

accepted_so_far() {
	cat load/w*.codes 2>/dev/null | grep -c " 202 "
}

test_expect_success 'the gateway starts' '
	mkdir load &&
	write_gateway_config gw &&
	start_gateway gw &&
	TOKEN=$(make_lease family "{\"ttl_s\": 3600}") &&
	post_event "$TOKEN" "$(message warmup)" && expect_status 202 &&
	jq -r .event_id reply >>"$ACCEPTED_IDS"
'

test_expect_success 'SIGTERM while five posts wait for the store: all five get full 202s' '
	hold_store_lock gw 3 &&
	pids= &&
	for i in 1 2 3 4 5; do
		curl -s --trace-ascii "load/held-$i.trace" -o "load/held-$i.body" \
			-w "held-$i %{http_code} %{exitcode}\n" -X POST \
			-H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
			--data-binary "$(message "held-$i")" "$GW_URL/v1/events" >"load/held-$i.codes" &
		pids="$pids $!"
	done &&
	for i in $(seq 1 100); do
		[ "$(grep -l "^=> Send data" load/held-*.trace 2>/dev/null | wc -l)" -eq 5 ] && break
		sleep 0.05
	done &&
	grep -l "^=> Send data" load/held-*.trace | wc -l | grep -qx 5 &&
	sleep 0.2 && kill -0 $pids &&
	stop_gateway &&
	for pid in $pids; do wait $pid || echo "curl $pid exited $?"; done &&
	{ wait $LOCK_PID || echo "the lock holder exited $?"; } &&
	cat load/held-*.codes &&
	check_replies load/held-*.codes && test "$LAST_OK" -eq 5
'

test_expect_success 'the admin socket is removed at a clean exit' '
	test ! -e "$TRASH/gw/data/admin.sock" && test -d "$TRASH/gw/data"
'

test_expect_success 'restarted, the gateway sees the same events' '
	start_gateway gw &&
	"$CRAB" admin status "{\"rows\":true}" >status.json &&
	jq -e --argjson n "$(wc -l <"$ACCEPTED_IDS")" ".store.rows.inbox == \$n" status.json &&
	TOKEN=$(make_lease family "{\"ttl_s\": 3600}")
'

test_expect_success 'SIGTERM under load from six keep-alive posters' '
	ppids= &&
	for w in 1 2 3 4 5 6; do
		poster $w &
		ppids="$ppids $!"
	done &&
	TEST_PIDS="$TEST_PIDS $ppids" &&
	for i in $(seq 1 200); do
		[ "$(accepted_so_far)" -ge 150 ] && break
		sleep 0.05
	done &&
	echo "accepted before SIGTERM: $(accepted_so_far)" &&
	stop_gateway &&
	wait $ppids
'

test_expect_success 'every reply that came is a full one; some came, some did not' '
	check_replies load/w*.codes &&
	test "$LAST_OK" -ge 30 &&
	test "$(cat load/w*.codes | grep -c " 000 ")" -ge 6
'

test_expect_success 'no sanitizer report, the admin socket is gone' '
	sanitizer_clean "$GW_LOG" &&
	test ! -e "$TRASH/gw/data/admin.sock"
'

test_expect_success 'restarted again, the store holds exactly the accepted events' '
	start_gateway gw &&
	"$CRAB" admin status "{\"rows\":true}" >status.json &&
	jq -e --argjson n "$(wc -l <"$ACCEPTED_IDS")" ".store.rows.inbox == \$n" status.json &&
	sort "$ACCEPTED_IDS" >want.ids &&
	store_sql gw "SELECT id FROM inbox" | sort >have.ids &&
	diff want.ids have.ids &&
	stop_gateway
'

test_done
