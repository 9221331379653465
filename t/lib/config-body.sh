# t/lib/config-body.sh: the checks of configuration management (config_apply.h), shared
# by t7301 (SQLite) and t7302 (PostgreSQL). Source it after test-lib.sh; set
# CONFIG_KILL_ROUNDS (how many kill -9 during an apply) first.
. "$TEST_ROOT/t/lib/store.sh"
. "$TEST_ROOT/t/lib/turns.sh"
. "$TEST_ROOT/t/lib/fakes.sh"

SECRET=sk-test-NEVER-SHOWN-7301

# The config: gateway and store sections come from write_gateway_config. Model "dead"
# answers nothing (connection refused): a smoke test that pings it fails. Model "slow"
# (added once the fake runs) answers after 2.5 s: a turn on it is running long enough
# for a reload to happen under it.
BODY=(
	"# the operator's own comment, kept by operator applies"
	"models:"
	"  - {id: echo, adapter: echo}"
	"  - {id: dead, adapter: openai, base_url: \"http://127.0.0.1:1/v1\", max_retries: 0, timeout_s: 5}"
	"agents:"
	"  - id: assistant"
	"    model: echo"
	"    max_tokens: 100"
	"    config_policy:"
	"      tools: [config.get, config.validate, config.apply, config.revert, config.revisions]"
	"  - id: helper"
	"    model: echo"
	"  - id: slowpoke"
	"    model: slow"
	"    max_tokens: 77"
	"tenants:"
	"  - id: family"
	"    identities:"
	"      - {platform: cli, actors: [alice]}"
	"routes:"
	"  - match: {platform: cli}"
	"    agent: assistant"
	"config:"
	"  smoke_test:"
	"    model_ping: echo"
	"    route: {platform: cli, actor_id: alice}"
)

# cfg_get FIELD: a field of the running config (admin config.get).
cfg_get() {
	"$CRAB" admin config.get | jq -j "$1"
}

# counts: revisions and config.applied or config.reverted events stored.
counts() {
	store_sql gw "SELECT (SELECT COUNT(*) FROM config_revisions),
		(SELECT COUNT(*) FROM event_outbox WHERE type IN ('config.applied', 'config.reverted'))"
}

# max_tokens_is N: a turn now (TURN), whose request carried max_tokens N.
max_tokens_is() {
	admin_send "$(chat cli c1 alice "what is max_tokens now")" >/dev/null &&
	MT=$(turn_show "$TURN" | jq -r .request.max_tokens) &&
	{ test "$MT" = "$1" || { echo "max_tokens $MT, want $1"; return 1; }; }
}

# variant FILE SED-EXPRESSION: the running file changed by sed, into FILE.
variant() {
	sed -e "$2" gw/crab.yaml >"$1" && ! cmp -s "$1" gw/crab.yaml
}

# refused CODE STEP FILE: `crab config apply FILE` fails with CODE at STEP, and nothing
# changed: the file's bytes, the running revision and config, the revisions, the events.
refused() {
	cp gw/crab.yaml before.yaml && n0=$(counts) && r0=$(cfg_get .revision) &&
	y0=$(cfg_get .yaml | sha256sum) &&
	test_must_fail "$CRAB" config apply "$3" 2>err && cat err &&
	grep -q "^crab: $1: $2: " err &&
	cmp gw/crab.yaml before.yaml &&
	test "$(counts)" = "$n0" && test "$(cfg_get .revision)" = "$r0" &&
	test "$(cfg_get .yaml | sha256sum)" = "$y0" &&
	test "$(cfg_get .yaml | sha256sum)" = "$(sha256sum <gw/crab.yaml)"
}

# tool AGENT TOOL ARGS: one call of the gateway's config tools as agent AGENT (the
# test-only admin op config.tool); the answer into tool.json.
tool() {
	"$CRAB" admin config.tool "$(jq -cn --arg a "$1" --arg t "$2" --argjson args "$3" \
		'{call: {call_id: "trn_x:1", tool: $t, arguments: $args,
		  context: {tenant_id: "family", agent_id: $a, session_id: null, deadline_ms: 5000}}}')" \
		>tool.json && cat tool.json
}

# tool_refused AGENT TOOL ARGS CODE: the call fails with CODE and nothing changed.
tool_refused() {
	cp gw/crab.yaml before.yaml && n0=$(counts) && r0=$(cfg_get .revision) &&
	tool "$1" "$2" "$3" && jq -e --arg c "$4" '.ok == false and .error.code == $c' tool.json &&
	cmp gw/crab.yaml before.yaml && test "$(counts)" = "$n0" &&
	test "$(cfg_get .revision)" = "$r0"
}

test_expect_success 'start: the file is revision 1, actor file, no event' '
	start_openai_fake --delay-ms 2500 &&
	write_gateway_config gw "${BODY[@]}" &&
	sed -i "s|^models:\$|models:\n  - {id: slow, adapter: openai, base_url: \"$FAKE_URL\", max_retries: 0}|" \
		gw/crab.yaml && grep -q "id: slow," gw/crab.yaml && cp gw/crab.yaml rev1.yaml &&
	start_gateway gw && PID0=$GW_PID &&
	test "$(store_sql gw "SELECT revision, actor FROM config_revisions")" = "1|file" &&
	test "$(counts)" = "1|0" &&
	test "$(cfg_get .revision)" = 1 &&
	cfg_get .yaml >running.yaml && cmp running.yaml gw/crab.yaml &&
	"$CRAB" admin status | jq -e ".config.revision == 1" &&
	max_tokens_is 100
'

test_expect_success 'operator apply: a new max_tokens and a new route take effect without a restart' '
	variant new.yaml "s/max_tokens: 100/max_tokens: 250/" &&
	sed -i -e "/^    agent: assistant\$/a\\  - match: {platform: web}\n    agent: helper" \
		-e "s/{platform: cli, actors: \[alice\]}/{platform: cli, actors: [alice]}\n      - {platform: web}/" \
		new.yaml && "$CRAB" config validate new.yaml &&
	"$CRAB" config apply new.yaml >out && cat out &&
	grep -q "^applied revision 2: " out && grep -q agents.assistant.max_tokens out &&
	grep -q routes out && grep -q tenants.family.identities out &&
	cmp gw/crab.yaml new.yaml && grep -q "operator.s own comment" gw/crab.yaml &&
	test "$GW_PID" = "$PID0" && kill -0 "$GW_PID" &&
	test "$(cfg_get .revision)" = 2 &&
	"$CRAB" admin status | jq -e ".config.revision == 2" &&
	max_tokens_is 250 &&
	turn_show "$TURN" | jq -e ".config_revision == 2" &&
	admin_send "$(chat web w1 zoe "hello from the web")" &&
	session_show "$SESSION" | jq -e ".agent_id == \"helper\" and .tenant_id == \"family\"" &&
	test "$(counts)" = "2|1"
'

test_expect_success 'refused: a schema error (file:line:col), nothing changed' '
	variant bad.yaml "s/max_tokens: 250/max_tokens: lots/" &&
	refused invalid_config schema bad.yaml && grep -q "crab.yaml:[0-9]*:[0-9]*: .max_tokens. must be" err
'

test_expect_success 'refused: not YAML at all' '
	printf "models: [\n" >syntax.yaml && refused invalid_config parse syntax.yaml
'

test_expect_success 'refused: a semantic error (a route to no agent)' '
	variant bad.yaml "s/agent: helper/agent: nobody/" &&
	refused invalid_config semantic bad.yaml && grep -q "no agent named .nobody." err
'

test_expect_success 'refused: an inline secret, without repeating it' '
	variant bad.yaml "s|max_retries: 0|max_retries: 0, api_key: \"$SECRET\"|" &&
	grep -q "$SECRET" bad.yaml &&
	refused invalid_config semantic bad.yaml && grep -q "api_key. holds a secret" err &&
	! grep -q "$SECRET" err
'

test_expect_success 'refused: changes that need a restart (gateway, store, a model)' '
	variant bad.yaml "s/listen: \"127.0.0.1:0\"/listen: \"127.0.0.1:1\"/" &&
	refused restart_required semantic bad.yaml && grep -q "gateway.listen" err &&
	variant bad.yaml "s/adapter: echo}/adapter: openai}/" &&
	refused restart_required semantic bad.yaml && grep -q "models.echo" err &&
	variant bad.yaml "s/timeout_s: 5}/timeout_s: 6}/" &&
	refused restart_required semantic bad.yaml && grep -q "models.dead" err &&
	{ cat gw/crab.yaml; printf "%s\n" "modules:" "  load: [nothing.so]"; } >bad.yaml &&
	refused restart_required semantic bad.yaml && grep -q "modules.load" err
'

test_expect_success 'refused: a failing smoke test (a route to nobody, a dead model)' '
	variant bad.yaml "s/route: {platform: cli, actor_id: alice}/route: {platform: cli, actor_id: mallory}/" &&
	refused smoke_test_failed smoke_test bad.yaml && grep -q "mallory" err &&
	variant bad.yaml "s/model_ping: echo/model_ping: dead/" &&
	refused smoke_test_failed smoke_test bad.yaml && grep -q "model_ping .dead. failed" err
'

test_expect_success 'the running config still answers as revision 2' '
	max_tokens_is 250 && turn_show "$TURN" | jq -e ".config_revision == 2"
'

test_expect_success 'revert: revision 1 again, as revision 3, byte for byte' '
	"$CRAB" config revert 1 >out && cat out &&
	grep -q "^applied revision 3: revert to 1: " out &&
	cmp gw/crab.yaml rev1.yaml &&
	max_tokens_is 100 &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type = '"'"'config.reverted'"'"'
		ORDER BY seq DESC LIMIT 1" | jq -e ".data.revision == 3 and .data.reverted_to == 1
		and .data.actor == \"operator\" and (.data.paths | index(\"agents.assistant.max_tokens\"))" &&
	"$CRAB" config revert 1 >out && grep -q "^unchanged: revision 3" out &&
	test "$(counts)" = "3|2" &&
	test_must_fail "$CRAB" config revert 99 2>err && grep -q "^crab: not_found: " err &&
	test "$(counts)" = "3|2"
'

# hup_revision N: the running config is revision N (a condition for wait_until).
hup_revision() { test "$(cfg_get .revision)" = "$1"; }

test_expect_success 'SIGHUP with a good file applies it (actor sighup)' '
	variant hup.yaml "s/max_tokens: 100/max_tokens: 400/" && cp hup.yaml gw/crab.yaml &&
	kill -HUP "$GW_PID" &&
	wait_until 10 hup_revision 4 &&
	test "$(store_sql gw "SELECT actor FROM config_revisions WHERE revision = 4")" = sighup &&
	max_tokens_is 400 && kill -0 "$GW_PID"
'

test_expect_success 'SIGHUP with a bad file keeps the running config, and says why' '
	cp gw/crab.yaml good.yaml && n0=$(counts) &&
	sed -i "s/max_tokens: 400/max_tokens: -1/" gw/crab.yaml &&
	kill -HUP "$GW_PID" &&
	wait_until 10 grep -q "SIGHUP: the file was not applied" "$GW_LOG" &&
	grep "SIGHUP: the file was not applied" "$GW_LOG" | grep -q "max_tokens" &&
	kill -0 "$GW_PID" && test "$(cfg_get .revision)" = 4 && test "$(counts)" = "$n0" &&
	max_tokens_is 400 &&
	cp good.yaml gw/crab.yaml && kill -HUP "$GW_PID" &&
	wait_until 10 grep -q "SIGHUP: the file is the running config (revision 4)" "$GW_LOG" &&
	test "$(counts)" = "$n0"
'

test_expect_success CLOCK 'agent tools: listed by policy; other agents get none and are refused' '
	"$CRAB" admin config.tool "{\"list\": \"assistant\"}" |
		jq -e "[.tools[].name] == [\"config.get\", \"config.validate\", \"config.apply\",
			\"config.revert\", \"config.revisions\"] and
			all(.tools[]; .input_schema.type == \"object\" and (.idempotent | type) == \"boolean\")" &&
	"$CRAB" admin config.tool "{\"list\": \"helper\"}" | jq -e ".tools == []" &&
	tool_refused helper config.get "{}" forbidden &&
	tool_refused nobody config.get "{}" forbidden
'

test_expect_success CLOCK 'agent config.get: its own section, no tenants, no secrets' '
	tool assistant config.get "{}" &&
	jq -e ".ok and .data.revision == 4 and (.data.config | keys) == [\"agents\"] and
		(.data.config.agents | keys) == [\"assistant\"] and
		.data.config.agents.assistant.max_tokens == 400" tool.json &&
	jq -e ".content[0].type == \"text\"" tool.json
'

test_expect_success CLOCK 'agent config.validate: checks, writes nothing' '
	cp gw/crab.yaml before.yaml && n0=$(counts) &&
	tool assistant config.validate "{\"patch\": {\"agents\": {\"assistant\": {\"max_tokens\": 55}}}}" &&
	jq -e ".ok and .data.validated and .data.paths == [\"agents.assistant.max_tokens\"]" tool.json &&
	cmp gw/crab.yaml before.yaml && test "$(counts)" = "$n0" &&
	tool_refused assistant config.validate "{\"patch\": {\"agents\": {\"assistant\": {\"max_tokens\": 0}}}}" invalid_config
'

test_expect_success CLOCK 'agent config.apply: a merge patch of its own section, actor agent:assistant' '
	tool assistant config.apply "{\"patch\": {\"agents\": {\"assistant\": {\"max_tokens\": 55}}}}" &&
	jq -e ".ok and .data.revision == 5 and .data.paths == [\"agents.assistant.max_tokens\"]" tool.json &&
	test "$(store_sql gw "SELECT actor FROM config_revisions WHERE revision = 5")" = agent:assistant &&
	max_tokens_is 55 &&
	grep -q "max_tokens: 55" gw/crab.yaml &&
	! grep -q "operator.s own comment" gw/crab.yaml &&
	"$CRAB" config validate gw/crab.yaml
'

test_expect_success CLOCK 'agent changes outside its policy are refused, naming the path; nothing changes' '
	tool_refused assistant config.apply "{\"patch\": {\"tenants\": {\"family\": {\"identities\": []}}}}" forbidden &&
	jq -e ".error.step == \"policy\" and (.error.message | test(\"tenants.family.identities\"))" tool.json &&
	tool_refused assistant config.apply "{\"patch\": {\"agents\": {\"assistant\": {\"config_policy\": {\"paths\": [\"routes\"]}}}}}" forbidden &&
	jq -e ".error.message | test(\"config_policy\")" tool.json &&
	tool_refused assistant config.apply "{\"patch\": {\"agents\": {\"helper\": {\"max_tokens\": 9}}}}" forbidden &&
	jq -e ".error.message | test(\"agents.helper.max_tokens\")" tool.json &&
	tool_refused assistant config.apply "{\"patch\": {\"models\": {\"dead\": {\"api_key_env\": \"HOME\"}}}}" forbidden &&
	tool_refused assistant config.apply "{\"patch\": {\"gateway\": {\"listen\": \"0.0.0.0:80\"}}}" forbidden &&
	tool_refused assistant config.apply "{\"patch\": {\"agents\": {\"assistant\": {\"api_key\": \"$SECRET\"}}}}" forbidden &&
	! grep -q "$SECRET" tool.json &&
	tool_refused assistant config.apply "{\"patch\": {\"agents\": {\"assistant\": {\"model\": \"nope\"}}}}" invalid_config &&
	tool_refused assistant config.apply "{\"nope\": 1}" invalid_arguments
'

test_expect_success CLOCK 'agent apply refuses when the file was edited on disk and not applied' '
	cp gw/crab.yaml applied.yaml && echo "# an edit not applied yet" >>gw/crab.yaml &&
	cp gw/crab.yaml edited.yaml && n0=$(counts) &&
	tool assistant config.apply "{\"patch\": {\"agents\": {\"assistant\": {\"max_tokens\": 56}}}}" &&
	jq -e ".ok == false and .error.code == \"conflict\"" tool.json &&
	cmp gw/crab.yaml edited.yaml && test "$(counts)" = "$n0" && test "$(cfg_get .revision)" = 5 &&
	cp applied.yaml gw/crab.yaml
'

test_expect_success CLOCK 'agent revert and revisions' '
	tool assistant config.revert "{\"revision\": 4}" &&
	jq -e ".ok and .data.revision == 6 and .data.reverted_to == 4" tool.json &&
	max_tokens_is 400 &&
	tool assistant config.revisions "{\"limit\": 2}" &&
	jq -e ".ok and [.data.revisions[].revision] == [6, 5] and .data.revisions[0].actor == \"agent:assistant\"" tool.json &&
	tool_refused assistant config.revert "{\"revision\": 2}" forbidden &&
	jq -e ".error.message | test(\"tenants.family.identities\")" tool.json
'

fake_got() { test "$(fake_requests | jq length)" -ge "$1"; }

test_expect_success 'a reload while a turn runs: the turn ends under the config it started with' '
	n=$(fake_requests | jq length) &&
	"$CRAB" admin event.send "$(jq -cn "{event: {type: \"channel.message.received\",
		tenant_id: \"family\", agent_id: \"slowpoke\", text: \"take your time\",
		source: {platform: \"cli\", channel_id: \"s1\", actor_id: \"alice\"}}}")" >sent &&
	SLOW=$(jq -er .event_id sent) && wait_until 10 fake_got $((n + 1)) &&
	R=$(cfg_get .revision) &&
	sed -e "/^  - id: slowpoke\$/,/^    max_tokens: 77\$/d" -e "s/max_tokens: 400/max_tokens: 401/" \
		gw/crab.yaml >noslow.yaml && ! grep -q slowpoke noslow.yaml &&
	"$CRAB" config apply noslow.yaml && test "$(cfg_get .revision)" = $((R + 1)) &&
	"$CRAB" admin status | jq -e ".turns.running == 1" &&
	wait_turn "$SLOW" &&
	turn_show "$TURN" | jq -e ".model == \"slow\" and .request.max_tokens == 77 and
		.config_revision == $R" &&
	max_tokens_is 401 &&
	test_must_fail "$CRAB" admin event.send "$(jq -cn "{event: {type: \"channel.message.received\",
		tenant_id: \"family\", agent_id: \"slowpoke\", text: \"again\",
		source: {platform: \"cli\", channel_id: \"s1\", actor_id: \"alice\"}}}")" 2>err &&
	grep -q "no agent .slowpoke." err
'

test_expect_success 'the revisions list, the config_revisions rows and the config.applied events agree' '
	"$CRAB" config revisions --json --limit 100 >revs.json &&
	"$CRAB" config revisions >revs.txt && cat revs.txt && grep -q "(running)" revs.txt &&
	jq -c "[.revisions[] | [.revision, .actor, .diff_summary]] | reverse" revs.json >listed &&
	store_sql gw "SELECT revision, actor, diff_summary FROM config_revisions ORDER BY revision" |
		jq -R -c "split(\"|\") | [(.[0] | tonumber), .[1], .[2]]" | jq -s -c . >rows &&
	diff listed rows &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type IN ('"'"'config.applied'"'"', '"'"'config.reverted'"'"') ORDER BY seq" |
		jq -c "[.data.revision, .data.actor, .data.diff_summary]" | jq -s -c . >events &&
	jq -c "[.[] | select(.[1] != \"file\")]" rows >applied_rows &&
	diff applied_rows events &&
	store_sql gw "SELECT payload FROM event_outbox WHERE type IN ('"'"'config.applied'"'"', '"'"'config.reverted'"'"')" |
		jq -e -s "all(.[]; .session_id == null and .tenant_id == null and (.seq | type) == \"number\")" &&
	test "$(jq length rows)" -ge 5 &&
	test "$(jq -r ".running" revs.json)" = "$(cfg_get .revision)" &&
	store_sql gw "SELECT yaml FROM config_revisions WHERE revision = $(cfg_get .revision)" >last.yaml &&
	{ cfg_get .yaml; echo; } >running.yaml && diff last.yaml running.yaml
'

test_expect_success 'no secret in any log, event or revision' '
	! grep -q "$SECRET" "$GW_LOG" &&
	! store_sql gw "SELECT payload FROM event_outbox" | grep -q "$SECRET" &&
	! store_sql gw "SELECT yaml || diff_summary FROM config_revisions" | grep -q "$SECRET"
'

test_expect_success 'a restart with an unchanged file keeps the revision; a changed one is recorded as file' '
	R=$(cfg_get .revision) && stop_gateway && start_gateway gw &&
	test "$(cfg_get .revision)" = "$R" && test "$(store_sql gw "SELECT MAX(revision) FROM config_revisions")" = "$R" &&
	stop_gateway && sed -i "s/max_tokens: 401/max_tokens: 402/" gw/crab.yaml && start_gateway gw &&
	test "$(cfg_get .revision)" = $((R + 1)) &&
	store_sql gw "SELECT actor, diff_summary FROM config_revisions WHERE revision = $((R + 1))" |
		grep -q "^file|the file changed before this start: agents.assistant.max_tokens$"
'

# big NAME MAX_TOKENS: a large config (2000 more agents) with the running gateway and store.
big() {
	{
		cat gw/crab.yaml
		echo "# a large configuration: $2"
	} | awk -v n=2000 -v mt="$2" '
		/^tenants:/ { for (i = 0; i < n; i++) printf "  - id: bulk%04d\n    model: echo\n    max_tokens: %d  # bulk agent %d\n    history: {max_turns: 10, max_bytes: 65536}\n", i, mt, i }
		{ print }' >"$1"
}

test_expect_success "kill -9 during $CONFIG_KILL_ROUNDS applies of a large config: the file is the old or the new one, whole; restarts work" '
	big big-a.yaml 111 && big big-b.yaml 222 && "$CRAB" config validate big-a.yaml &&
	test "$(wc -c <big-a.yaml)" -gt 200000 &&
	"$CRAB" config apply big-a.yaml && cmp gw/crab.yaml big-a.yaml &&
	old=big-a.yaml new=big-b.yaml newer=0 older=0 &&
	for round in $(seq 1 $CONFIG_KILL_ROUNDS); do
		{ "$CRAB" config apply $new >apply.out 2>&1 & } && APPLY=$! &&
		sleep "$(awk -v r=$RANDOM "BEGIN { printf \"%.3f\", (r % 1200) / 1000 }")" &&
		crash_gateway && { wait $APPLY; true; } &&
		if cmp -s gw/crab.yaml $new; then
			newer=$((newer + 1)) && t=$old old=$new new=$t
		elif cmp -s gw/crab.yaml $old; then
			older=$((older + 1))
		else
			echo "round $round: the file is neither"; return 1
		fi &&
		"$CRAB" config validate gw/crab.yaml >/dev/null &&
		start_gateway gw &&
		cfg_get .yaml >running.yaml && cmp running.yaml gw/crab.yaml &&
		store_sql gw "SELECT yaml FROM config_revisions WHERE revision = $(cfg_get .revision)" >stored.yaml &&
		{ cfg_get .yaml; echo; } | cmp - stored.yaml ||
		{ echo "round $round failed"; return 1; }
	done &&
	echo "$newer rounds ended with the new file, $older with the old one" &&
	ls -a gw >files && cat files && ! grep -q "^\.crab\.yaml\." files &&
	store_sql gw "SELECT COUNT(*), COUNT(DISTINCT revision), MIN(revision), MAX(revision)
		FROM config_revisions" | awk -F"|" "\$1 != \$2 || \$3 != 1 || \$4 != \$1 { exit 1 }"
'

test_expect_success 'everything stops cleanly' '
	stop_gateway
'
