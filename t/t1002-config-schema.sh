#!/usr/bin/env bash
test_description='crab.yaml models, agents, tenants, routes, router, turns: every error at its exact place; crab config validate'
. "$(dirname "$0")/test-lib.sh"

# The top of every file below: a gateway that would start if the rest were right.
HEAD='gateway:
  listen: "127.0.0.1:0"
  data_dir: "DATA"'

# bad NAME: $TRASH/NAME.yaml is $HEAD then stdin (DATA replaced by $TRASH/NAME-data).
# `crab config validate` must exit 1 and `crab gateway -c` must refuse it too, starting
# nothing (no data directory, so no store and no socket, and no process left to listen),
# with the same errors, and neither may trip a sanitizer. The errors are left in NAME.err.
bad() {
	local name=$1 rc
	{ printf '%s\n' "$HEAD"; cat; } | sed -e "s|DATA|$TRASH/$name-data|" >"$TRASH/$name.yaml"
	"$CRAB" config validate "$TRASH/$name.yaml" >"$TRASH/$name.out" 2>"$TRASH/$name.err"
	rc=$?
	cat "$TRASH/$name.err"
	[ "$rc" -eq 1 ] || { echo "crab config validate exited $rc, want 1"; return 1; }
	[ ! -s "$TRASH/$name.out" ] || { echo "validate printed on stdout:"; cat "$TRASH/$name.out"; return 1; }
	sanitizer_clean "$TRASH/$name.err" || return 1
	test_must_fail "$CRAB" gateway -c "$TRASH/$name.yaml" 2>"$TRASH/$name.gw" || return 1
	sanitizer_clean "$TRASH/$name.gw" || return 1
	if [ -e "$TRASH/$name-data" ] || [ -e "$TRASH/crab-data" ]; then
		echo "the gateway started on a refused config: it made its data directory"
		return 1
	fi
	if pgrep -f -- "gateway -c $TRASH/$name.yaml" >/dev/null; then
		echo "a gateway on the refused config is still running"
		return 1
	fi
	cmp "$TRASH/$name.err" "$TRASH/$name.gw" ||
		{ echo "the gateway printed other errors:"; cat "$TRASH/$name.gw"; return 1; }
}

# reported NAME LINE COLUMN MESSAGE: NAME.err has exactly that line.
reported() {
	grep -Fx "$TRASH/$1.yaml:$2:$3: $4" "$TRASH/$1.err" >/dev/null ||
		{ echo "no '$1.yaml:$2:$3: $4' in:"; cat "$TRASH/$1.err"; return 1; }
}

# errors NAME N: NAME.err has N lines, so nothing else was reported.
errors() {
	local n
	n=$(wc -l <"$TRASH/$1.err")
	[ "$n" -eq "$2" ] || { echo "$n errors, want $2:"; cat "$TRASH/$1.err"; return 1; }
}

test_expect_success 'a YAML syntax error: its place, and not valid YAML' '
	bad syntax <<-EOF &&
	agents:
	  - id: a
	   model: echo
	EOF
	reported syntax 6 4 "did not find expected '"'"'-'"'"' indicator" &&
	grep -Fx "$TRASH/syntax.yaml: not valid YAML" "$TRASH/syntax.err"
'

test_expect_success 'unknown keys: in an entry, in a nested mapping, in a section' '
	bad unknown <<-EOF &&
	models:
	  - {id: echo, adapter: echo, any_adapter_key: 1}
	agents:
	  - id: assistant
	    modle: echo
	    model: echo
	    history:
	      max_turn: 5
	router:
	  unmapped: refuse
	EOF
	reported unknown 8 5 "unknown key '"'"'modle'"'"' in '"'"'agents'"'"'" &&
	reported unknown 11 7 "unknown key '"'"'max_turn'"'"' in '"'"'agents.history'"'"'" &&
	reported unknown 13 3 "unknown key '"'"'unmapped'"'"' in '"'"'router'"'"'" &&
	errors unknown 3
'

test_expect_success 'wrong types: a mapping for a list, a value for a list, a value for a mapping' '
	bad types <<-EOF &&
	models:
	  id: echo
	agents:
	  - id: assistant
	    model: echo
	    history: 5
	tenants:
	  - id: family
	    identities:
	      - platform: telegram
	        actors: "42"
	  - [family]
	EOF
	reported types 4 1 "'"'"'models'"'"' must be a list" &&
	reported types 9 5 "'"'"'agents.history'"'"' must be a mapping" &&
	reported types 14 9 "'"'"'actors'"'"' must be a list" &&
	reported types 15 5 "an entry of '"'"'tenants'"'"' must be a mapping" &&
	errors types 4
'

test_expect_success 'bad numbers: not a number, out of range, with the range' '
	bad numbers <<-EOF &&
	models:
	  - {id: echo, adapter: echo}
	agents:
	  - id: assistant
	    model: echo
	    max_tokens: lots
	    history:
	      max_bytes: 10
	turns:
	  max_concurrent: 0
	EOF
	reported numbers 9 17 "'"'"'max_tokens'"'"' must be a whole number from 1 to 1000000" &&
	reported numbers 11 18 "'"'"'max_bytes'"'"' must be a whole number from 1024 to 67108864" &&
	reported numbers 13 19 "'"'"'max_concurrent'"'"' must be a whole number from 1 to 10000" &&
	errors numbers 3
'

test_expect_success 'missing required keys are reported at the entry' '
	bad missing <<-EOF &&
	models:
	  - id: echo
	agents:
	  - model: echo
	  - id: assistant
	routes:
	  - match: {platform: cli}
	tenants:
	  - id: family
	    identities:
	      - actors: ["42"]
	EOF
	reported missing 5 5 "missing key '"'"'adapter'"'"' in '"'"'models'"'"'" &&
	reported missing 7 5 "missing key '"'"'id'"'"' in '"'"'agents'"'"'" &&
	reported missing 8 5 "missing key '"'"'model'"'"' in '"'"'agents'"'"'" &&
	reported missing 10 5 "missing key '"'"'agent'"'"' in '"'"'routes'"'"'" &&
	reported missing 14 9 "missing key '"'"'platform'"'"' in '"'"'tenants.identities'"'"'" &&
	errors missing 5
'

test_expect_success 'bad ids and names, an empty actors list, a bad choice' '
	bad values <<-EOF &&
	models:
	  - {id: echo, adapter: Echo}
	agents:
	  - {id: "my agent", model: echo}
	tenants:
	  - id: family
	    identities:
	      - platform: telegram
	        actors: []
	router:
	  unmapped_actors: maybe
	EOF
	reported values 5 25 "'"'"'adapter'"'"' must be 1 to 64 characters of a-z 0-9 _ -, not '"'"'Echo'"'"'" &&
	reported values 7 11 "'"'"'id'"'"' must be 1 to 64 characters of A-Z a-z 0-9 _ . -, not '"'"'my agent'"'"'" &&
	reported values 12 9 "'"'"'actors'"'"' must not be an empty list" &&
	reported values 14 20 "'"'"'unmapped_actors'"'"' must be route or refuse, not '"'"'maybe'"'"'" &&
	grep -F "default_agent: no agent named '"'"'assistant'"'"'" "$TRASH/values.err" &&
	errors values 5
'

# Several errors in one file: all of them, in file order, by both commands.
test_expect_success 'dangling references: every one, in file order' '
	bad dangling <<-EOF &&
	  default_agent: helper
	models:
	  - id: echo
	    adapter: echo
	agents:
	  - id: assistant
	    model: gpt
	tenants:
	  - id: family
	routes:
	  - match: {platform: telegram, tenant: famly}
	    agent: assistant
	  - agent: ghost
	router:
	  unmapped_actors: route
	  unmapped_tenant: guests
	EOF
	cat >"$TRASH/dangling.want" <<-EOF &&
	$TRASH/dangling.yaml:4:18: default_agent: no agent named '"'"'helper'"'"' in '"'"'agents'"'"'
	$TRASH/dangling.yaml:10:12: agent '"'"'assistant'"'"': no model named '"'"'gpt'"'"' in '"'"'models'"'"'
	$TRASH/dangling.yaml:14:41: route 1: no tenant named '"'"'famly'"'"' in '"'"'tenants'"'"'
	$TRASH/dangling.yaml:16:12: route 2: no agent named '"'"'ghost'"'"' in '"'"'agents'"'"'
	$TRASH/dangling.yaml:19:20: unmapped_tenant: no tenant named '"'"'guests'"'"' in '"'"'tenants'"'"'
	EOF
	diff -u "$TRASH/dangling.want" "$TRASH/dangling.err"
'

test_expect_success 'duplicate ids are reported at the second, naming the first line' '
	bad dup <<-EOF &&
	models:
	  - {id: echo, adapter: echo}
	  - {id: echo, adapter: openai}
	agents:
	  - {id: assistant, model: echo}
	  - {id: assistant, model: echo}
	tenants:
	  - id: family
	  - id: family
	EOF
	reported dup 6 10 "duplicate model id '"'"'echo'"'"' (first at line 5)" &&
	reported dup 9 10 "duplicate agent id '"'"'assistant'"'"' (first at line 8)" &&
	reported dup 12 9 "duplicate tenant id '"'"'family'"'"' (first at line 11)" &&
	errors dup 3
'

test_expect_success 'an actor, a channel or a whole platform in two tenants' '
	bad claims <<-EOF &&
	models:
	  - {id: echo, adapter: echo}
	agents:
	  - {id: assistant, model: echo}
	tenants:
	  - id: family
	    identities:
	      - platform: telegram
	        actors: ["42", "43"]
	        channels: ["-100123"]
	      - platform: cli
	  - id: work
	    identities:
	      - platform: telegram
	        actors: [44, 42]
	      - platform: telegram
	        channels: [-100123]
	      - platform: cli
	EOF
	reported claims 18 22 "actor '"'"'42'"'"' on '"'"'telegram'"'"' is already mapped to tenant '"'"'family'"'"' (line 12)" &&
	reported claims 20 20 "channel '"'"'-100123'"'"' on '"'"'telegram'"'"' is already mapped to tenant '"'"'family'"'"' (line 13)" &&
	reported claims 21 19 "platform '"'"'cli'"'"' as a whole is already mapped to tenant '"'"'family'"'"' (line 14)" &&
	errors claims 3
'

test_expect_success 'bad templates: the column of the fault inside the string' '
	bad tpl <<-EOF &&
	models:
	  - {id: echo, adapter: echo}
	agents:
	  - id: assistant
	    model: echo
	    context:
	      platform: agents/{platfrm}.md
	      actor: "agents/é/{actor_id"
	routes:
	  - agent: assistant
	    isolation_key: "{platform}:{actor}"
	  - agent: assistant
	    isolation_key: '"'"'{platform}:x}'"'"'
	EOF
	reported tpl 10 24 "'"'"'platform'"'"': unknown field '"'"'platfrm'"'"' (known: tenant_id, agent_id, platform, channel_id, actor_id, thread_id)" &&
	reported tpl 11 24 "'"'"'actor'"'"': '"'"'{'"'"' is never closed" &&
	reported tpl 14 32 "'"'"'isolation_key'"'"': unknown field '"'"'actor'"'"' (known: tenant_id, agent_id, platform, channel_id, actor_id, thread_id)" &&
	reported tpl 16 33 "'"'"'isolation_key'"'"': a lone '"'"'}'"'"' (write '"'"'}}'"'"' for a literal brace)" &&
	errors tpl 4
'

test_expect_success 'agents without a models section: one error, not one per agent' '
	bad nomodels <<-EOF &&
	agents:
	  - {id: assistant, model: echo}
	  - {id: other, model: gpt}
	EOF
	reported nomodels 4 1 "'"'"'agents'"'"' needs a '"'"'models'"'"' section to name their models in" &&
	errors nomodels 1
'

test_expect_success 'router: unmapped_tenant without route, route without unmapped_tenant' '
	bad router1 <<-EOF &&
	tenants:
	  - id: guests
	router:
	  unmapped_tenant: guests
	EOF
	reported router1 7 20 "'"'"'unmapped_tenant'"'"' is only used with '"'"'unmapped_actors: route'"'"'" &&
	errors router1 1 &&
	bad router2 <<-EOF &&
	router:
	  unmapped_actors: route
	EOF
	reported router2 5 20 "'"'"'unmapped_actors: route'"'"' needs '"'"'unmapped_tenant'"'"', the tenant they get" &&
	errors router2 1
'

cat >"$TRASH/good.tail" <<'EOF'
models:
  - id: echo
    adapter: echo
  - id: gpt
    adapter: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9/v1
    api_key_env: CRAB_T1002_NO_KEY
    timeout_s: 120
agents:
  - id: assistant
    model: echo
    max_tokens: 2048
    history: {max_turns: 10, max_bytes: 4096}
    context:
      global: agents/assistant/AGENT.md
      actor: agents/assistant/actors/{tenant_id}/{platform}/{actor_id}.md
  - id: coder
    model: gpt
tenants:
  - id: default
    identities:
      - platform: cli
  - id: family
    identities:
      - platform: telegram
        actors: [42, "43"]
      - platform: discord
        channels: ["1234567"]
  - id: guests
routes:
  - match: {platform: telegram, channel_id: -100123, actor_id: 42, tenant: family}
    agent: coder
    isolation_key: "{platform}:{actor_id}"
  - match: {platform: cli}
    agent: assistant
router:
  unmapped_actors: route
  unmapped_tenant: guests
turns:
  max_concurrent: 8
  model_timeout_s: 60
EOF

test_expect_success 'a complete file validates, with its counts, and the gateway runs it' '
	write_gateway_config good "$(cat "$TRASH/good.tail")" &&
	"$CRAB" config validate "$TRASH/good/crab.yaml" >"$TRASH/good.out" 2>"$TRASH/good.err" &&
	cat "$TRASH/good.out" "$TRASH/good.err" &&
	test "$(cat "$TRASH/good.out")" = "$TRASH/good/crab.yaml: ok (2 models, 2 agents, 3 tenants, 2 routes)" &&
	test ! -s "$TRASH/good.err" &&
	start_gateway good &&
	stop_gateway
'

test_expect_success 'a file without agents gets the built-in echo model and default agent' '
	printf "gateway:\n  default_agent: helper\n" >"$TRASH/minimal.yaml" &&
	"$CRAB" config validate "$TRASH/minimal.yaml" >"$TRASH/minimal.out" &&
	test "$(cat "$TRASH/minimal.out")" = "$TRASH/minimal.yaml: ok (1 models, 1 agents, 0 tenants, 0 routes)"
'

test_expect_success 'config.example.yaml validates' '
	"$CRAB" config validate "$TEST_ROOT/config.example.yaml" >"$TRASH/example.out" &&
	test "$(cat "$TRASH/example.out")" = "$TEST_ROOT/config.example.yaml: ok (1 models, 1 agents, 1 tenants, 1 routes)"
'

test_expect_success 'usage errors exit 2, a missing file 1' '
	for args in "" "validate" "check $TRASH/minimal.yaml" "validate a b" "validate --help"; do
		"$CRAB" config $args 2>"$TRASH/usage.err"
		rc=$?
		[ "$rc" -eq 2 ] || { echo "crab config $args: exit $rc, want 2"; return 1; }
		grep -q "usage: crab config validate FILE" "$TRASH/usage.err" || return 1
	done &&
	"$CRAB" config validate "$TRASH/nonexistent.yaml" 2>"$TRASH/nofile.err"
	[ $? -eq 1 ] && grep -q "nonexistent.yaml: cannot open" "$TRASH/nofile.err"
'

test_done
