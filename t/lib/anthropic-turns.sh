# t/lib/anthropic-turns.sh: the Anthropic fake (t/fakes/anthropic-fake.js) and the official
# @anthropic-ai/sdk in test scripts. Source it after test-lib.sh and fakes.sh (whose
# fake_requests and fake_script work on this fake too: they use FAKE_CONTROL).
#
#   ensure_anthropic_client          t/fakes/node_modules with @anthropic-ai/sdk
#   start_anthropic_fake [ARGS...]   sets ANT_URL (no /v1), FAKE_CONTROL, FAKE_PID, FAKE_LOG
#   stop_anthropic_fake [PID]        SIGTERM; it must exit 0
#   anthropic_yaml KEY_ENV [LINE...] models: and agents: sections for the fake
#   ant_clear                        forget the fake's records and script

# ensure_anthropic_client: what ensure_openai_client installs (`npm ci` in t/fakes, when
# node_modules is missing or older than package-lock.json), and the SDK in it; a
# node_modules from before the SDK was added is installed again.
ensure_anthropic_client() {
	local rc sdk=$FAKES_DIR/node_modules/@anthropic-ai/sdk/package.json
	ensure_openai_client || return 1
	[ -f "$sdk" ] && return 0
	fakes_npm_ci npm-ci-anthropic.log test -f "$sdk"
	rc=$?
	if [ "$rc" -ne 0 ] || ! [ -f "$sdk" ]; then
		echo "cannot install @anthropic-ai/sdk: 'npm ci' in t/fakes failed ($rc). npm said:"
		tail -n 20 "$TRASH/npm-ci-anthropic.log" 2>/dev/null
		return 1
	fi
}

# start_anthropic_fake [ARGS...]: t/fakes/anthropic-fake.js on an ephemeral loopback port
# (ARGS: --api-key KEY, --bearer TOKEN, --delay-ms N, --no-record, --max-records N); waits
# up to 10 s for its port file. Exports ANT_URL=http://127.0.0.1:PORT (what base_url and
# the SDK's baseURL take) and FAKE_PID; sets FAKE_CONTROL (the same URL) and FAKE_LOG.
start_anthropic_fake() {
	start_control_fake anthropic "$@" &&
	export ANT_URL=$FAKE_CONTROL
}

# stop_anthropic_fake [PID]: SIGTERM to the fake (default $FAKE_PID); it must exit 0 in 5 s.
stop_anthropic_fake() {
	stop_fake anthropic "${1:-$FAKE_PID}"
}

# anthropic_yaml KEY_ENV [MODEL-LINE...]: one anthropic model "claude" on $ANT_URL with its
# key from the environment variable KEY_ENV (none when KEY_ENV is -), and the agent
# "assistant" on it. Extra arguments are lines of the model entry ("timeout_s: 5").
anthropic_yaml() {
	local key_env=$1 line
	shift
	printf 'models:\n  - id: claude\n    adapter: anthropic\n    model: claude-haiku-4-5\n'
	printf '    base_url: "%s"\n' "$ANT_URL"
	[ "$key_env" = - ] || printf '    api_key_env: %s\n' "$key_env"
	for line in "$@"; do
		printf '    %s\n' "$line"
	done
	printf 'agents:\n  - id: assistant\n    model: claude\n'
}

ant_clear() {
	curl -sS --fail-with-body -X DELETE "$FAKE_CONTROL/_fake/requests" >/dev/null &&
	curl -sS --fail-with-body -X DELETE "$FAKE_CONTROL/_fake/script" >/dev/null
}
