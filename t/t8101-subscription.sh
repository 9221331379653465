#!/usr/bin/env bash
test_description='subscription logins (crab auth): the paste-code flow with PKCE, turns with the bearer token, one refresh for a burst of 100 turns, a revoked login that fails fast, logout, the device flow with a token exchange, and no token anywhere'
. "$(dirname "$0")/test-lib.sh"
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/oauth.sh"

CLIENT=crab-t8101-client

# claude_model ID MODEL [LINE...]: a Claude-style model entry on the OAuth fake with the
# claude-max login (the same setup each time: one provider, one setup); LINEs go before auth.
claude_model() {
	local o=$OAUTH_URL line
	printf '  - id: %s\n    adapter: anthropic\n    model: %s\n    base_url: "%s"\n' "$1" "$2" "$o"
	shift 2
	for line in "$@"; do
		printf '    %s\n' "$line"
	done
	cat <<EOF
    auth:
      kind: oauth
      provider: claude-max
      authorize_url: "$o/authorize"
      token_url: "$o/token"
      revoke_url: "$o/revoke"
      client_id: $CLIENT
      redirect_uri: "$o/oauth/code/callback"
      scopes: [org:create_api_key, user:profile, user:inference]
      token_body: json
      headers:
        User-Agent: crab-t8101
EOF
}

# The models: a Claude-style model and a second entry sharing its login, a Copilot-style
# token exchange, and the agent on the first.
models_yaml() {
	local o=$OAUTH_URL
	echo models:
	claude_model claude claude-sonnet-4-5 "max_retries: 0"
	claude_model claude-2 claude-haiku-4-5
	cat <<EOF
  - id: copilot
    adapter: openai
    base_url: "$o/v1"
    auth:
      kind: token_exchange
      provider: github-copilot
      device_code_url: "$o/login/device/code"
      token_url: "$o/login/oauth/access_token"
      client_id: $CLIENT
      scopes: ["read:user"]
      exchange_url: "$o/copilot_internal/v2/token"
      exchange_headers:
        Editor-Version: vscode/1.107.0
        Copilot-Integration-Id: vscode-chat
agents:
  - id: assistant
    model: claude
turns:
  max_concurrent: 128
EOF
}

# outcomes FILE: "completed N failed M" of a burst's answers.
outcomes() {
	jq -rs '"completed \(map(select(.status == "completed")) | length) failed \(map(select(.status == "failed")) | length)"' "$1"
}

# cli NAME ARGS...: a crab command whose output is kept (grepped for tokens at the end).
cli() {
	local name=$1
	shift
	"$CRAB" "$@" >"$TRASH/cli.$name.out" 2>&1
	local rc=$?
	cat "$TRASH/cli.$name.out"
	return $rc
}

test_expect_success 'auth: is checked where it is written: keys by kind, URLs, one provider one setup' '
	start_oauth_fake --client-id $CLIENT --body json --expires-in 3600 --token-delay-ms 150 \
		--device-interval 1 --device-pending 2 --exchange-expires-in 1800 \
		--exchange-refresh-in 1500 &&
	cat >bad.yaml <<-EOF &&
	models:
	  - id: m
	    adapter: anthropic
	    auth:
	      kind: oauth
	      provider: p
	      authorize_url: "ftp://example.test/authorize"
	      token_url: "https://example.test/token"
	      client_id: c
	      redirect_uri: "https://example.test/cb"
	      colour: blue
	  - id: n
	    adapter: anthropic
	    auth: {kind: oauth, provider: q, token_url: "https://example.test/t", client_id: c,
	           authorize_url: "https://example.test/a", redirect_uri: "https://example.test/cb"}
	  - id: o
	    adapter: anthropic
	    auth: {kind: oauth, provider: q, token_url: "https://example.test/t", client_id: d,
	           authorize_url: "https://example.test/a", redirect_uri: "https://example.test/cb"}
	  - id: k
	    adapter: anthropic
	    auth: {kind: api_key, token_url: "https://example.test/t"}
	  - id: x
	    adapter: anthropic
	    auth: {kind: token_exchange, provider: gh, client_id: c}
	  - id: y
	    adapter: anthropic
	    auth: {kind: oauth, provider: r, token_url: "https://example.test/t", client_id: c,
	           device_code_url: "https://example.test/d", client_secret: hunter2}
	agents:
	  - id: assistant
	    model: m
	EOF
	test_must_fail "$CRAB" config validate bad.yaml >bad.out 2>&1 &&
	cat bad.out &&
	grep -q "^bad.yaml:7:23: .authorize_url. must be an http:// or https:// URL" bad.out &&
	grep -q "^bad.yaml:11:7: unknown key .colour. in .auth." bad.out &&
	grep -q "^bad.yaml:18:11: model .o.: auth provider .q. is set up differently in model .n. (line 14)" bad.out &&
	grep -q "^bad.yaml:22:11: .auth. of kind api_key needs one of .key_env." bad.out &&
	grep -q "^bad.yaml:22:39: .token_url. is not used with kind api_key" bad.out &&
	grep -q "^bad.yaml:25:11: missing key .device_code_url. in .auth. (kind token_exchange needs it)" bad.out &&
	grep -q "^bad.yaml:25:11: missing key .exchange_url. in .auth." bad.out &&
	grep -q "^bad.yaml:29:55: unknown key .client_secret. in .auth." bad.out &&
	grep -q "^bad.yaml:29:70: .client_secret. holds a secret written inline" bad.out &&
	test "$(wc -l <bad.out)" = 10
'

test_expect_success 'the gateway with two providers: nobody is logged in, and a turn says so without a token request' '
	write_gateway_config gw "$(models_yaml)" &&
	start_gateway gw &&
	TOKEN=$(make_lease t8101 "{\"ttl_s\": 2592000}") && test -n "$TOKEN" &&
	cli status0 auth status &&
	grep -q "^claude-max .*oauth .*not logged in; run crab auth login claude-max" "$TRASH/cli.status0.out" &&
	grep -q "^github-copilot .*token_exchange .*not logged in" "$TRASH/cli.status0.out" &&
	ask "hello before login" solo && jq -c . wait &&
	jq -e ".status == \"failed\" and .error_code == \"login_required\" and
		(.error_message | contains(\"provider claude-max is not logged in; run crab auth login claude-max\"))" wait >/dev/null &&
	test "$(oauth_stat .token_total)" = 0 && test "$(oauth_stat .messages)" = 0
'

test_expect_success 'paste flow: the authorize URL carries PKCE S256, the client id, redirect, scopes and a state' '
	cli url auth login claude-max --print-url >url &&
	URL=$(cat url) && echo "$URL" &&
	case "$URL" in "$OAUTH_URL/authorize?code=true&"*) ;; *) false ;; esac &&
	query() { echo "$URL" | tr "?&" "\n\n" | sed -n "s/^$1=//p"; } &&
	test "$(query client_id)" = $CLIENT &&
	test "$(query response_type)" = code &&
	test "$(query redirect_uri)" = "$(jq -rn --arg u "$OAUTH_URL/oauth/code/callback" "\$u|@uri")" &&
	test "$(query scope)" = "org%3Acreate_api_key%20user%3Aprofile%20user%3Ainference" &&
	test "$(query code_challenge_method)" = S256 &&
	test "$(query code_challenge | wc -c)" = 44 &&
	test "$(query state | wc -c)" = 44
'

test_expect_success 'paste flow: the code the page shows (CODE#STATE) logs in; the code is good once' '
	CODE=$(oauth_code "$URL") && case "$CODE" in *"#$(query state)") ;; *) false ;; esac &&
	cli login1 auth login claude-max --code "$CODE" &&
	grep -q "^logged in to claude-max (access token expires in 3[56][0-9][0-9] s)" "$TRASH/cli.login1.out" &&
	test "$(oauth_stat .token.authorization_code)" = 1 &&
	curl -sS "$OAUTH_URL/_fake/requests" | jq -e "map(select(.path == \"/token\")) | last |
		.headers[\"content-type\"] == \"application/json\" and .headers[\"user-agent\"] == \"crab-t8101\" and
		(.body | fromjson | .grant_type == \"authorization_code\" and .client_id == \"$CLIENT\" and
		 (.code_verifier | length) == 43 and .state != null and .redirect_uri != null)" >/dev/null &&
	test_must_fail "$CRAB" auth login claude-max --code "$CODE" 2>err &&
	cat err && grep -q "login_unknown: no login of provider claude-max waits for this code" err &&
	test "$(oauth_stat .token.authorization_code)" = 1
'

test_expect_success 'paste flow, interactive: crab auth login prints the URL and reads the code from stdin' '
	out=$TRASH/cli.login2.out &&
	{ wait_until 10 grep -q "^$OAUTH_URL/authorize?" "$out" &&
	  oauth_code "$(grep "^$OAUTH_URL/authorize?" "$out")" | tee code2; } |
		"$CRAB" auth login claude-max >"$out" 2>&1 &&
	CODE2=$(cat code2) && test -n "$CODE2" && cat "$out" &&
	grep -q "paste the code the page shows" "$TRASH/cli.login2.out" &&
	grep -q "logged in to claude-max" "$TRASH/cli.login2.out" &&
	test "$(oauth_stat .token.authorization_code)" = 2 &&
	cli status1 auth status && grep -q "^claude-max .*logged in (access token expires in" "$TRASH/cli.status1.out"
'

test_expect_success 'turns succeed with the bearer token; no refresh while it is fresh' '
	for i in 1 2 3; do
		ask "hello $i" solo && jq -e ".status == \"completed\" and .text == \"echo: hello $i\"" wait >/dev/null || return 1
	done &&
	test "$(oauth_stat .messages_ok)" = 3 && test "$(oauth_stat .messages_401)" = 0 &&
	test "$(oauth_stat .token.refresh_token)" = 0
'

test_expect_success CLOCK 'two models sharing a provider share its login and its token' '
	"$CRAB" admin auth.token "{\"model\":\"claude\"}" >t1 && "$CRAB" admin auth.token "{\"model\":\"claude-2\"}" >t2 &&
	jq -e ".token == true and .length > 20" t1 >/dev/null &&
	test "$(jq -r .sha256 t1)" = "$(jq -r .sha256 t2)" &&
	curl -sS "$OAUTH_URL/_fake/issued" | jq -e --arg h "$(jq -r .sha256 t1)" \
		".tokens | map(select(.kind == \"access\")) | last | .sha256 == \$h" >/dev/null
'

test_expect_success CLOCK 'the access token expires (the clock passes it) under a burst of 100 turns in 100 sessions: one refresh, all complete' '
	"$CRAB" admin clock.advance "{\"ms\": 3601000}" >/dev/null &&
	"$CRAB" auth status | grep "^claude-max" | grep -q "expired" &&
	burst 100 a && outcomes burst.a &&
	test "$(outcomes burst.a)" = "completed 100 failed 0" &&
	test "$(jq -r .session_id "$TRASH"/burst-a/* | sort -u | wc -l)" = 100 &&
	test "$(oauth_stat .token.refresh_token)" = 1 &&
	test "$(oauth_stat .messages_401)" = 0 &&
	"$CRAB" auth status | grep "^claude-max" | grep -q "expires in 3[56][0-9][0-9] s"
'

test_expect_success 'the access token expires at the provider under a burst of 100: every 401 shares one refresh, all complete' '
	R0=$(oauth_stat .token.refresh_token) && U0=$(oauth_stat .messages_401) &&
	oauth_post /_fake/expire &&
	burst 100 b && outcomes burst.b &&
	test "$(outcomes burst.b)" = "completed 100 failed 0" &&
	test "$(jq -r .session_id "$TRASH"/burst-b/* | sort -u | wc -l)" = 100 &&
	test "$(oauth_stat .token.refresh_token)" = $((R0 + 1)) &&
	U=$(($(oauth_stat .messages_401) - U0)) && echo "401s: $U" &&
	test "$U" -ge 1 && test "$U" -le 100
'

test_expect_success 'a failing token endpoint (503) is not hammered: one request, the burst fails fast, a later turn recovers' '
	R0=$(oauth_stat .token_total) &&
	oauth_post /_fake/expire && oauth_post /_fake/fail "{\"status\":503,\"count\":1}" &&
	burst 20 c && outcomes burst.c &&
	test "$(jq -rs "map(select(.status == \"completed\")) | length" burst.c)" = 0 &&
	jq -se "map(select(.status == \"failed\")) | length > 0 and all(.[]; .error_code == \"auth_unavailable\" and
		(.error_message | contains(\"provider claude-max has no usable token now (refreshing the access token failed: HTTP 503\")))" burst.c >/dev/null &&
	test "$(oauth_stat .token_total)" = $((R0 + 1)) &&
	"$CRAB" auth status --json | jq -e ".providers[] | select(.provider == \"claude-max\") |
		.failures == 1 and (.last_error | contains(\"HTTP 503\"))" >/dev/null &&
	{ if test_have_prereq CLOCK; then "$CRAB" admin clock.advance "{\"ms\": 1100}" >/dev/null
	  else sleep 1.2; fi; } &&
	ask "after the outage" solo && jq -e ".status == \"completed\"" wait >/dev/null &&
	test "$(oauth_stat .token_total)" = $((R0 + 2))
'

test_expect_success CLOCK 'an API that refuses even renewed tokens gets renewals 1 s, 2 s, 4 s ... apart, not one per turn' '
	"$CRAB" admin clock.advance "{\"ms\": 61000}" >/dev/null && # the last refusal is past
	R0=$(oauth_stat .token.refresh_token) &&
	oauth_post /_fake/refuse "{\"on\":true}" &&
	for i in $(seq 1 12); do
		ask "refused $i" solo && jq -c "{status, error_code}" wait || return 1
	done >refused.out &&
	test "$(grep -c "\"completed\"" refused.out)" = 0 &&
	R=$(($(oauth_stat .token.refresh_token) - R0)) && echo "refreshes: $R" &&
	test "$R" -ge 1 && test "$R" -le 3 &&
	test "$(grep -c auth_unavailable refused.out)" -ge 8 &&
	oauth_post /_fake/refuse "{\"on\":false}" &&
	"$CRAB" admin clock.advance "{\"ms\": 61000}" >/dev/null &&
	ask "accepted again" solo && jq -e ".status == \"completed\"" wait >/dev/null
'

test_expect_success 'the login survives a restart, sealed: the store holds no token, auth.key is 0600' '
	stop_gateway &&
	test "$(stat -c %a "$TRASH/gw/data/auth.key")" = 600 &&
	store_sql gw "SELECT provider, state, substr(sealed, 1, 3) FROM auth_tokens ORDER BY provider" >rows &&
	cat rows && grep -qx "claude-max|active|v1." rows &&
	start_gateway gw &&
	R0=$(oauth_stat .token_total) &&
	ask "after the restart" solo && jq -e ".status == \"completed\"" wait >/dev/null &&
	test "$(oauth_stat .token_total)" = "$R0"
'

test_expect_success 'the provider revokes the login: turns fail with login_required at once, the token endpoint sees one request' '
	R0=$(oauth_stat .token.refresh_token) && T0=$(oauth_stat .token_total) &&
	oauth_post /_fake/revoke &&
	burst 30 d && outcomes burst.d &&
	test "$(outcomes burst.d)" = "completed 0 failed 30" &&
	jq -se "all(.[]; .error_code == \"login_required\" and (.error_message | contains(\"the login of provider claude-max was revoked (invalid_grant); run crab auth login claude-max\")))" burst.d >/dev/null &&
	for i in 1 2 3 4 5 6 7 8 9 10; do
		ask "still revoked $i" solo && jq -e ".error_code == \"login_required\"" wait >/dev/null || return 1
	done &&
	test "$(oauth_stat .token.refresh_token)" = $((R0 + 1)) &&
	test "$(oauth_stat .token_total)" = $((T0 + 1)) &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type = '"'"'turn.failed'"'"'" >failed.events &&
	jq -se "map(select(.data.error.code == \"login_required\")) | length >= 40" failed.events >/dev/null
'

test_expect_success 'crab auth status says to log in again, and so it does after a restart' '
	cli status2 auth status &&
	grep -q "^claude-max .*log in again: the login was revoked (invalid_grant); run crab auth login claude-max" "$TRASH/cli.status2.out" &&
	"$CRAB" auth status --json | jq -e ".providers[] | select(.provider == \"claude-max\") | .state == \"revoked\" and .reason == \"invalid_grant\"" >/dev/null &&
	stop_gateway && start_gateway gw &&
	"$CRAB" auth status | grep -q "^claude-max .*log in again" &&
	ask "revoked after restart" solo && jq -e ".error_code == \"login_required\"" wait >/dev/null &&
	test "$(oauth_stat .token_total)" = $((T0 + 1))
'

test_expect_success 'a new login ends it: turns succeed again' '
	cli login3 auth login claude-max --code "$(oauth_code "$("$CRAB" auth login claude-max --print-url)")" &&
	ask "logged in again" solo && jq -e ".status == \"completed\"" wait >/dev/null
'

test_expect_success 'logout revokes the refresh token at the provider and forgets the login' '
	cli logout auth logout claude-max &&
	grep -q "^logged out of claude-max (the refresh token was revoked at the provider)" "$TRASH/cli.logout.out" &&
	test "$(oauth_stat .revoke)" = 1 &&
	ask "after logout" solo &&
	jq -e ".error_code == \"login_required\" and (.error_message | contains(\"provider claude-max was logged out\"))" wait >/dev/null &&
	"$CRAB" auth status | grep -q "^claude-max .*logged out; run crab auth login claude-max"
'

test_expect_success 'device flow (GitHub style): crab auth login prints the code and waits; polling honours the interval' '
	cli device auth login github-copilot &&
	grep -q "open $OAUTH_URL/login/device and enter the code [B-Z]\{4\}-[B-Z]\{4\}" "$TRASH/cli.device.out" &&
	grep -q "^logged in to github-copilot" "$TRASH/cli.device.out" &&
	test "$(oauth_stat .device_code)" = 1 && test "$(oauth_stat .device_poll)" = 3 &&
	test "$(oauth_stat .slow_down)" = 0 &&
	"$CRAB" auth status | grep -q "^github-copilot .*logged in (no short-lived token in hand"
'

test_expect_success CLOCK 'token exchange: one short-lived token, renewed when refused or due, never shown' '
	"$CRAB" admin auth.token "{\"model\":\"copilot\"}" >x1 && cat x1 &&
	"$CRAB" admin auth.token "{\"model\":\"copilot\"}" >x2 &&
	issued_short() { curl -sS "$OAUTH_URL/_fake/issued" | jq -r ".tokens | map(select(.kind == \"short\")) | last | .sha256"; } &&
	test "$(jq -r .sha256 x1)" = "$(issued_short)" && test "$(jq -r .sha256 x2)" = "$(issued_short)" &&
	test "$(oauth_stat .exchange)" = 1 &&
	curl -sS "$OAUTH_URL/_fake/requests" | jq -e "map(select(.path == \"/copilot_internal/v2/token\")) | last | .headers |
		(.authorization | startswith(\"Bearer gho_\")) and .[\"editor-version\"] == \"vscode/1.107.0\" and
		.[\"copilot-integration-id\"] == \"vscode-chat\"" >/dev/null &&
	"$CRAB" admin auth.token "{\"model\":\"copilot\",\"refuse\":true}" >x3 &&
	test "$(jq -r .sha256 x3)" = "$(issued_short)" && test "$(jq -r .sha256 x3)" != "$(jq -r .sha256 x1)" &&
	test "$(oauth_stat .exchange)" = 2 &&
	"$CRAB" admin clock.advance "{\"ms\": 1501000}" >/dev/null &&
	"$CRAB" admin auth.token "{\"model\":\"copilot\"}" >x4 &&
	test "$(jq -r .sha256 x4)" = "$(jq -r .sha256 x3)" &&
	exchanges() { test "$(oauth_stat .exchange)" = 3; } && wait_until 5 exchanges &&
	"$CRAB" admin auth.token "{\"model\":\"copilot\"}" >x4 &&
	test "$(jq -r .sha256 x4)" = "$(issued_short)" && test "$(oauth_stat .exchange)" = 3 &&
	! grep -q "tid=" x1 x2 x3 x4
'

test_expect_success CLOCK 'token exchange: a revoked login turns into login_required, with one exchange request' '
	oauth_post /_fake/revoke &&
	"$CRAB" admin auth.token "{\"model\":\"copilot\",\"refuse\":true}" >x5 && cat x5 &&
	jq -e ".token == false and (.error | startswith(\"login_required: the login of provider github-copilot was revoked\"))" x5 >/dev/null &&
	"$CRAB" admin auth.token "{\"model\":\"copilot\"}" >x6 &&
	jq -e ".token == false" x6 >/dev/null &&
	test "$(oauth_stat .exchange)" = 4 && test "$(oauth_stat .exchange_401)" = 1
'

test_expect_success 'device flow: a denied login is an error, not a hang' '
	oauth_post /_fake/device/deny &&
	test_must_fail "$CRAB" auth login github-copilot >"$TRASH/cli.deny.out" 2>&1 &&
	cat "$TRASH/cli.deny.out" &&
	grep -q "login_denied: the login of provider github-copilot was denied at the provider" "$TRASH/cli.deny.out"
'

test_expect_success 'no token, code or key in the log, the store, the events, the turns or the CLI output' '
	curl -sS "$OAUTH_URL/_fake/issued" | jq -r ".tokens[].token" >tokens &&
	curl -sS "$OAUTH_URL/_fake/requests" | jq -r ".[] | .body | select(. != \"\") |
		(if startswith(\"{\") then fromjson else
		 split(\"&\") | map(split(\"=\") | {(.[0]): (.[1] // \"\")}) | add end) |
		(.code_verifier, .code, .device_code, .refresh_token, .token) // empty" >>tokens &&
	grep -c . tokens &&
	echo "$CODE" | cut -d"#" -f1 >>tokens && echo "$CODE2" | cut -d"#" -f1 >>tokens &&
	tr -d "\n" <"$TRASH/gw/data/auth.key" >>tokens && echo >>tokens &&
	test "$(wc -l <tokens)" -ge 10 &&
	for t in turns event_outbox tool_calls inbox auth_tokens module_kv config_revisions sessions; do
		store_sql gw "SELECT * FROM $t" >"dump.$t" || return 1
	done &&
	grep -q "after the outage" dump.turns && grep -q "login_required" dump.event_outbox &&
	ls "$TRASH"/cli.*.out >/dev/null &&
	outputs=$(ls wait burst.* x[0-9] t[0-9] bad.out 2>/dev/null; true) &&
	! grep -F -f tokens "$GW_LOG" dump.* "$TRASH"/cli.*.out $outputs &&
	! grep -E "fake-o[ar]t01-|gho_|tid=" "$GW_LOG" dump.* "$TRASH"/cli.*.out $outputs
'

test_expect_success 'the gateway stops cleanly' '
	stop_gateway
'

test_done
