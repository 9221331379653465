# t/lib/oauth.sh: the fake subscription-auth provider (t/fakes/oauth-fake.js) in test
# scripts, and turns through models whose auth: it serves. Source it after test-lib.sh
# (it sources fakes.sh, for start_fake, when that is not done yet).
#
#   start_oauth_fake [ARGS...]   sets OAUTH_URL, OAUTH_PID, OAUTH_LOG
#   oauth_stat JQ                one figure of GET /_fake/stats ("0" when absent)
#   oauth_post PATH [JSON]       POST to a control endpoint (/_fake/revoke, ...)
#   oauth_code URL               opens a paste-flow authorize URL; prints CODE#STATE
#   ask TEXT ACTOR               one turn as ACTOR (its own session); the turns.wait
#                                answer in ./wait
#   burst N PREFIX               N turns at once from N actors (N sessions), each on
#                                its own connection; their turns.wait answers in
#                                ./burst.PREFIX, one JSON line each

command -v start_fake >/dev/null || . "$TEST_ROOT/t/lib/fakes.sh"

# start_oauth_fake [ARGS...]: t/fakes/oauth-fake.js on an ephemeral loopback port.
start_oauth_fake() {
	local rc
	OAUTH_LOG=$TRASH/oauth-fake.log
	start_fake oauth "$TRASH/oauth-fake.port" "$OAUTH_LOG" "$@"
	rc=$?
	[ -n "$STARTED_PID" ] && OAUTH_PID=$STARTED_PID
	[ "$rc" -eq 0 ] || return 1
	OAUTH_URL=http://127.0.0.1:$STARTED_PORT
}

oauth_stat() {
	curl -sS --fail-with-body "$OAUTH_URL/_fake/stats" | jq -r "($1) // 0"
}

oauth_post() {
	curl -sS --fail-with-body -X POST -H 'Content-Type: application/json' \
		--data-binary "${2:-{\}}" "$OAUTH_URL$1"
}

# oauth_code URL: what the paste-code page of URL shows.
oauth_code() {
	curl -sS --fail-with-body "$1" | sed -n 's/.*<code id="code">\([^<]*\)<\/code>.*/\1/p'
}

# ask TEXT ACTOR: posts TEXT as ACTOR with $TOKEN and waits for its turn (any outcome).
ask() {
	post_event "$TOKEN" "$(jq -cn --arg t "$1" --arg a "$2" \
		'{type: "channel.message.received", text: $t,
		  source: {platform: "telegram", channel_id: "c-auth", actor_id: $a}}')" >/dev/null &&
	expect_status 202 &&
	"$CRAB" admin turns.wait "$(jq -cn --arg e "$(jq -r .event_id "$TRASH/reply")" \
		'{event_id: $e, timeout_ms: 20000}')" >wait
}

# burst N PREFIX: N events at once (actors PREFIX-1 ... PREFIX-N), one connection each,
# then every turn's outcome, one JSON line each, in ./burst.PREFIX.
burst() {
	local n=$1 prefix=$2 i body pids=()
	mkdir -p "$TRASH/burst-$prefix"
	for i in $(seq 1 "$n"); do
		body=$(printf '{"type":"channel.message.received","text":"burst %s %d","source":{"platform":"telegram","channel_id":"c-auth","actor_id":"%s-%d"}}' \
			"$prefix" "$i" "$prefix" "$i")
		curl -sS -o "$TRASH/burst-$prefix/$i" -X POST "$GW_URL/v1/events" \
			-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
			--data-binary "$body" &
		pids+=($!)
	done
	wait "${pids[@]}" # not a bare wait: the gateway and the fakes are children too
	: >"burst.$prefix"
	for i in $(seq 1 "$n"); do
		"$CRAB" admin turns.wait "$(jq -c '{event_id, timeout_ms: 60000}' "$TRASH/burst-$prefix/$i")" |
			jq -c . >>"burst.$prefix" || { echo "no outcome for $prefix-$i"; return 1; }
	done
}
