# t/lib/openai-turns.sh: agent turns against the OpenAI fake (t/fakes/openai-fake.js) through the
# built-in openai adapter, in test scripts. Source it after test-lib.sh, store.sh and
# fakes.sh.
#
#   openai_yaml KEY_ENV [MODEL-LINE...]   models: and agents: sections for the fake
#   envelope ACTOR MESSAGE_ID TEXT        one channel.message.received envelope
#   post_lines TOKEN IN OUT               POSTs each envelope of IN on one connection
#   acks IN OUT                           the 202 answers of post_lines as JSON lines
#   wait_no_pending NAME SECONDS          until the inbox has no pending event
#   fake_texts                            the last user text of each fake request, in order
#   fake_clear                            forget the fake's records and script

# openai_yaml KEY_ENV [MODEL-LINE...]: one openai model "gpt" on $FAKE_URL with its key
# from the environment variable KEY_ENV, and the agent "assistant" on it. Extra arguments
# are lines of the model entry ("timeout_s: 5"), indented here.
openai_yaml() {
	local key_env=$1 line
	shift
	printf 'models:\n  - id: gpt\n    adapter: openai\n    model: gpt-4o-mini\n'
	printf '    base_url: "%s"\n    api_key_env: %s\n' "$FAKE_URL" "$key_env"
	for line in "$@"; do
		printf '    %s\n' "$line"
	done
	printf 'agents:\n  - id: assistant\n    model: gpt\n'
}

# envelope ACTOR MESSAGE_ID TEXT: a chat message on telegram channel c-test, no session_id
# (the actor's current session), as one line. printf, not jq: scripts make hundreds. Only
# backslashes and double quotes are escaped; keep control characters out of the arguments.
envelope() {
	local a m t
	a=${1//\\/\\\\} m=${2//\\/\\\\} t=${3//\\/\\\\}
	a=${a//\"/\\\"} m=${m//\"/\\\"} t=${t//\"/\\\"}
	printf '{"type":"channel.message.received","text":"%s","source":{"platform":"telegram","channel_id":"c-test","actor_id":"%s","message_id":"%s"}}\n' \
		"$t" "$a" "$m"
}

# post_lines TOKEN IN OUT: one curl, one keep-alive connection: POSTs every line of IN (an
# envelope each) in order and appends "REPLY<TAB>HTTP-STATUS" to OUT for each.
post_lines() {
	local token=$1 in=$2 out=$3 body
	local -a args=()
	while IFS= read -r body; do
		[ ${#args[@]} -eq 0 ] || args+=(--next)
		args+=(-sS -X POST "$GW_URL/v1/events" -H "Authorization: Bearer $token"
			-H 'Content-Type: application/json' --data-binary "$body" -w '\t%{http_code}\n')
	done <"$in"
	curl "${args[@]}" >>"$out"
}

# acks IN OUT: the envelopes of IN beside the answers post_lines wrote to OUT, as JSON lines
# {text, status, event_id, session_id, duplicate}.
acks() {
	paste "$1" "$2" | jq -cR 'split("\t") | (.[0] | fromjson) as $env |
		((.[1] | fromjson?) // {}) as $r |
		{text: $env.text, status: .[2], event_id: $r.event_id, session_id: $r.session_id,
		 duplicate: $r.duplicate}'
}

# inbox_pending NAME: how many events of the gateway NAME still wait for their turn.
inbox_pending() {
	store_sql "$1" "SELECT count(*) FROM inbox WHERE state = 'pending'"
}

# wait_no_pending NAME SECONDS: until no event of the gateway NAME is pending, at most
# SECONDS.
wait_no_pending() {
	local name=$1 limit=$(($2 * 10)) i n
	for i in $(seq 1 $limit); do
		n=$(inbox_pending "$name") && [ "$n" = 0 ] && return 0
		sleep 0.1
	done
	echo "still $(inbox_pending "$name") pending events after $2 s"
	return 1
}

# fake_texts: one line per API request the fake recorded, in arrival order: the text of
# its last user message.
fake_texts() {
	fake_requests | jq -r 'sort_by(.seq) | .[] | select(.path == "/v1/chat/completions") |
		[.body.messages[] | select(.role == "user")] | last | .content |
		if type == "string" then . else map(.text? // "") | join("\n") end'
}

fake_clear() {
	curl -sS --fail-with-body -X DELETE "$FAKE_CONTROL/_fake/requests" >/dev/null &&
	curl -sS --fail-with-body -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null
}

# now_ms: wall-clock milliseconds.
now_ms() {
	echo $(($(date +%s%N) / 1000000))
}
