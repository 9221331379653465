# t/lib/peers.sh: pairing tests' helpers: test components (t/helpers/component, the
# responder the roles use), a remote CLI's `crab pair listen`, and requests made with a
# component's own certificate. Source it after test-lib.sh.

COMPONENT=${COMPONENT:-$TEST_ROOT/build/test/t/helpers/component}

# Two tenants for the gateway's config: telegram actor 42 is family's, slack is acme's.
PEER_TENANTS='tenants:
  - id: family
    identities:
      - platform: telegram
        actors: ["42"]
  - id: acme
    identities:
      - platform: slack'

# start_component NAME ARGS...: runs a test component with its data in $TRASH/NAME and
# waits until it listens. Sets NAME_PID, NAME_URL (https://127.0.0.1:PORT) and NAME_FP.
# The port is kept across restarts of the same NAME (pass --listen to choose one).
start_component() {
	local name=$1 dir=$TRASH/$1 i port listen
	shift
	mkdir -p "$dir"
	listen=127.0.0.1:0
	[ -f "$dir/port" ] && listen=127.0.0.1:$(cat "$dir/port")
	: >"$dir/out"
	"$COMPONENT" --data-dir "$dir/data" --listen "$listen" "$@" >"$dir/out" 2>>"$dir/log" &
	eval "${name}_PID=$!"
	TEST_PIDS="$TEST_PIDS $!"
	for i in $(seq 1 200); do
		port=$(awk '/^port /{print $2}' "$dir/out")
		if [ -n "$port" ] && grep -q '^fingerprint ' "$dir/out"; then
			echo "$port" >"$dir/port"
			eval "${name}_URL=https://127.0.0.1:$port"
			eval "${name}_FP=$(awk '/^fingerprint /{print $2}' "$dir/out")"
			return 0
		fi
		kill -0 "$(eval echo \$${name}_PID)" 2>/dev/null || { echo "component $name exited:"; cat "$dir/log"; return 1; }
		sleep 0.05
	done
	echo "component $name did not start"; cat "$dir/log"; return 1
}

# stop_component NAME: SIGTERM; it must exit 0 with a clean sanitizer log.
stop_component() {
	local pid rc
	pid=$(eval echo \$${1}_PID)
	kill -TERM "$pid" 2>/dev/null || { echo "component $1 was not running"; return 1; }
	wait "$pid"
	rc=$?
	[ "$rc" -eq 0 ] || { echo "component $1 exited with $rc"; tail -n 20 "$TRASH/$1/log"; return 1; }
	sanitizer_clean "$TRASH/$1/log"
}

# gw_fp: the running gateway's full fingerprint, from its admin socket.
gw_fp() {
	"$CRAB" admin pair.test | jq -er .fingerprint
}

# pin_arg FP: curl's --pinnedpubkey form of a fingerprint (the SHA-256 of the key's SPKI).
pin_arg() {
	printf 'sha256//%s' "$(printf '%s' "$1" | xxd -r -p | base64 -w0)"
}

# as_peer NAME CURL-ARGS...: curl with component NAME's certificate, to the gateway pinned
# by its key (not by any CA). Body to $TRASH/reply, status to $TRASH/status and stdout.
as_peer() {
	local dir=$TRASH/$1/data
	shift
	curl -sS -k --pinnedpubkey "$(pin_arg "$GW_FP")" --cert "$dir/identity.crt" \
		--key "$dir/identity.key" -o "$TRASH/reply" -w '%{http_code}' "$@" | tee "$TRASH/status"
	echo
}

# peer_post NAME BODY: POST /v1/events as component NAME.
peer_post() {
	as_peer "$1" -X POST "$GW_URL/v1/events" -H 'Content-Type: application/json' \
		--data-binary "$2"
}

# peer_id COMPONENT_ID TYPE: the live peer's id from peers.list.
peer_id() {
	"$CRAB" admin peers.list | jq -er --arg c "$1" --arg t "$2" \
		'.peers[] | select(.component_id == $c and .component_type == $t) | .peer_id'
}

# health_of PEER_ID: its health after a check round.
health_of() {
	"$CRAB" admin peers.list '{"check": true}' | jq -er --arg p "$1" \
		'.peers[] | select(.peer_id == $p) | .health'
}

# pair_listen NAME ARGS...: a remote CLI's `crab pair listen` in the background, its data in
# $TRASH/NAME; sets LISTEN_PID and LISTEN_URL once it listens.
pair_listen() {
	local dir=$TRASH/$1 i
	shift
	mkdir -p "$dir"
	"$CRAB" pair listen --data-dir "$dir/data" --listen 127.0.0.1:0 "$@" >"$dir/listen.out" 2>"$dir/listen.err" &
	LISTEN_PID=$!
	TEST_PIDS="$TEST_PIDS $LISTEN_PID"
	for i in $(seq 1 200); do
		LISTEN_URL=$(sed -n 's/^listening on \(https:[^ ]*\) .*/\1/p' "$dir/listen.out")
		[ -n "$LISTEN_URL" ] && return 0
		kill -0 "$LISTEN_PID" 2>/dev/null || { cat "$dir/listen.err"; return 1; }
		sleep 0.05
	done
	return 1
}
