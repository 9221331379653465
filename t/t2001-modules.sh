#!/usr/bin/env bash
test_description='modules: example.so loaded and listed, model.test through the registry, refused modules, an older ABI'
. "$(dirname "$0")/test-lib.sh"

CC=${CC:-cc}
MODS=$TEST_ROOT/t/modules
EXAMPLE=$TEST_ROOT/modules/example/example.so

# build_module OUT SOURCE [CC-ARGS...]: $TRASH/OUT.so, built as a module's author would.
build_module() {
	local out=$1 src=$2
	shift 2
	"$CC" -std=c11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -I"$TEST_ROOT" "$@" \
		-o "$TRASH/$out.so" "$src"
}

# ask MODULE TEXT: model.test with one user message; the answer goes to $TRASH/answer.
ask() {
	"$CRAB" admin model.test "$(jq -cn --arg m "$1" --arg t "$2" \
		'{module: $m, request: {messages: [{role: "user", content: $t}]}}')" >"$TRASH/answer" ||
		{ cat "$TRASH/answer"; return 1; }
}

answered() {
	jq -e --arg t "$1" '.text == $t and .stop_reason == "end_turn"' "$TRASH/answer" >/dev/null ||
		{ echo "answer: $(cat "$TRASH/answer"), want text '$1'"; return 1; }
}

# row NAME: the `crab modules` line of the module NAME as "name version state kinds
# source": the first one, the module's own; a model instance of it (a models: entry, such
# as the default {id: echo, adapter: echo}) is listed after the modules.
row() {
	"$CRAB" modules >"$TRASH/modules" || return 1
	awk -v n="$1" 'NR > 1 && $1 == n { print $1, $2, $3, $4, $5; exit }' "$TRASH/modules"
}

# only_once LOG TEXT: TEXT is on exactly one line of LOG.
only_once() {
	local n
	n=$(grep -cF -- "$2" "$1")
	[ "$n" -eq 1 ] || { echo "'$2' on $n lines of $1:"; cat "$1"; return 1; }
}

# load_yaml ENTRY...: the modules section loading the given entries (YAML list items).
load_yaml() {
	printf 'modules:\n  load:\n'
	for e in "$@"; do
		printf '    %s\n' "$e"
	done
}

cat >"$TRASH/rules.txt" <<'EOF'
# the rules t2001 asks
hello => Hello from the rule file, streamed a few words at a time.
weather => Always sunny in a test.
* => No rule for that.
EOF

test_expect_success 'make builds example.so: it exports crab_module_v1 only and needs only libc' '
	test -f "$EXAMPLE" &&
	nm -D --defined-only "$EXAMPLE" | awk "{ print \$3 }" >exported &&
	test "$(cat exported)" = crab_module_v1 &&
	readelf -d "$EXAMPLE" | sed -n "s/.*(NEEDED).*\[\(.*\)\]/\1/p" >needed &&
	cat needed && test "$(cat needed)" = libc.so.6
'

test_expect_success 'older-ABI modules build against t/modules/abi-old and abi-v1.0' '
	build_module oldabi "$MODS/oldabi.c" -I"$MODS/abi-old" &&
	build_module abi10 "$MODS/oldabi.c" -I"$MODS/abi-v1.0" -DNAME="\"abi10\""
'

test_expect_success 'a gateway starts with example.so and the older modules from modules.load' '
	write_gateway_config gw "$(load_yaml \
		"- path: \"$EXAMPLE\"" \
		"  config:" \
		"    rules: \"$TRASH/rules.txt\"" \
		"    delay_ms: 1" \
		"- \"$TRASH/oldabi.so\"" \
		"- path: \"$TRASH/abi10.so\"" \
		"  required: true")" &&
	start_gateway gw
'

test_expect_success 'crab modules lists the built-in echo and the loaded example' '
	test "$(row echo)" = "echo 1.0.0 started model_adapter built-in" &&
	test "$(row example)" = "example 0.1.0 started model_adapter $EXAMPLE" &&
	cat "$TRASH/modules"
'

test_expect_success 'modules.list gives the same, as JSON' '
	"$CRAB" admin modules.list >list.json &&
	jq -e --arg p "$EXAMPLE" ".modules | map(select(.name == \"example\")) == [
		{name: \"example\", version: \"0.1.0\", kinds: [\"model_adapter\"], source: \$p, state: \"started\",
		 instance: null}]" list.json
'

test_expect_success 'model.test gets the example rule answer (any case, within the message)' '
	ask example "well, HeLLo there" &&
	answered "Hello from the rule file, streamed a few words at a time." &&
	jq -e ".usage == {input_tokens: 3, output_tokens: 12} and .tool_calls == []" "$TRASH/answer"
'

test_expect_success 'the last user message is the one matched; "*" answers the rest' '
	"$CRAB" admin model.test "{\"module\":\"example\",\"request\":{\"messages\":[
		{\"role\":\"user\",\"content\":\"hello\"},{\"role\":\"assistant\",\"content\":\"hi\"},
		{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"and the w\\u00e9ather? WEATHER\"}]}]}}" >"$TRASH/answer" &&
	answered "Always sunny in a test." &&
	ask example "nothing matches this" && answered "No rule for that."
'

test_expect_success 'the built-in echo answers through the same op' '
	ask echo "same path" && answered "echo: same path"
'

test_expect_success 'modules built against an older, smaller ABI load and answer' '
	test "$(row oldabi)" = "oldabi 0.9.0 started model_adapter $TRASH/oldabi.so" &&
	test "$(row abi10)" = "abi10 0.9.0 started model_adapter $TRASH/abi10.so" &&
	ask oldabi "from the past" && answered "oldabi: from the past" &&
	ask abi10 "frozen" && answered "abi10: frozen"
'

test_expect_success 'the older module was handed a host table larger than its header knows' '
	grep -F "module oldabi: host table" "$GW_LOG" >line && cat line &&
	read -r host known <<<"$(sed -n "s/.*host table \([0-9]*\) bytes, .* knows \([0-9]*\)$/\1 \2/p" line)" &&
	test "$known" -lt "$host" &&
	v10=$(sed -n "s/.*module abi10: host table $host bytes, .* knows \([0-9]*\)$/\1/p" "$GW_LOG") &&
	test -n "$v10" && test "$v10" -gt "$known" && test "$v10" -le "$host"
'

test_expect_success 'an unknown module is not_found' '
	test_must_fail "$CRAB" admin model.test "{\"module\":\"nope\",\"request\":{}}" >out 2>&1 &&
	grep not_found out
'

test_expect_success 'the gateway stops cleanly: every module finalised, nothing leaked' '
	stop_gateway
'

test_expect_success 'a model.test still streaming at shutdown is cancelled, nothing leaked' '
	write_gateway_config slow "$(load_yaml \
		"- path: \"$EXAMPLE\"" \
		"  config:" \
		"    rules: \"$TRASH/rules.txt\"" \
		"    delay_ms: 5000")" &&
	start_gateway slow &&
	{ "$CRAB" admin model.test "{\"module\":\"example\",\"request\":{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}}" >slow.out 2>&1 & } &&
	asker=$! &&
	for i in $(seq 1 50); do grep -q "model.test\|example" "$GW_LOG" && break; sleep 0.02; done &&
	sleep 0.3 &&
	stop_gateway &&
	{ wait $asker; true; } &&
	! grep -q "Hello from the rule file" slow.out
'

test_expect_success 'the frozen v1.0 header is a prefix of the current one' '
	"$CC" -std=c11 -Wall -Werror -I"$MODS/abi-v1.0" -o layout-v1.0 "$MODS/layout.c" &&
	"$CC" -std=c11 -Wall -Werror -I"$TEST_ROOT/abi" -o layout-now "$MODS/layout.c" &&
	./layout-v1.0 >v1.0.txt && ./layout-now >now.txt && diff v1.0.txt now.txt
'

# ---- refused modules ----

# refused NAME SO REASON: a gateway loading SO (after the entry $BEFORE, if set) logs
# "module SO: REASON; going on without it" once, starts without it and stops clean; with
# `required: true` it does not start and says "cannot start: module SO: REASON
# (required: true)", again with no sanitizer report.
refused() {
	local name=$1 so=$2 reason=$3 out
	write_gateway_config "$name" "$(load_yaml ${BEFORE:+"$BEFORE"} "- \"$so\"")" &&
	start_gateway "$name" &&
	only_once "$GW_LOG" "module $so: $reason; going on without it" &&
	"$CRAB" modules >"$TRASH/modules" && cat "$TRASH/modules" &&
	! grep -F " $so" "$TRASH/modules" &&
	stop_gateway || return 1
	write_gateway_config "$name-required" "$(load_yaml ${BEFORE:+"$BEFORE"} "- path: \"$so\"" "  required: true")" &&
	out=$TRASH/$name-required/out &&
	test_must_fail "$CRAB" gateway -c "$TRASH/$name-required/crab.yaml" >"$out" 2>&1 &&
	cat "$out" &&
	only_once "$out" "cannot start: module $so: $reason (required: true)" &&
	sanitizer_clean "$out" &&
	! test -e "$TRASH/$name-required/data/admin.sock"
}

# unloaded_early LOG NAME: the broken module NAME was dlclose()d before the gateway was
# ready or gave up (its destructor ran then, not at exit), and its fini never ran.
unloaded_early() {
	local gone ready
	gone=$(grep -n "broken module $2: unloaded" "$1" | head -n 1 | cut -d: -f1) &&
	ready=$(grep -nE " ready: | cannot start: " "$1" | head -n 1 | cut -d: -f1) &&
	test -n "$gone" && test -n "$ready" && test "$gone" -lt "$ready" &&
	! grep "broken module $2: fini called" "$1"
}

test_expect_success 'no crab_module_v1 symbol' '
	build_module nosym "$MODS/broken.c" -DFAULT_NO_SYMBOL &&
	refused nosym "$TRASH/nosym.so" "exports no crab_module_v1 symbol" &&
	unloaded_early "$TRASH/nosym/gateway.log" broken
'

test_expect_success 'another ABI major' '
	build_module major2 "$MODS/broken.c" -DABI_MAJOR=2 &&
	refused major2 "$TRASH/major2.so" "ABI major 2, this crab speaks 1 (not binary compatible)" &&
	unloaded_early "$TRASH/major2/gateway.log" broken
'

test_expect_success 'a descriptor smaller than the smallest v1 descriptor' '
	build_module small "$MODS/broken.c" -DDESC_SIZE=16 &&
	refused small "$TRASH/small.so" "descriptor size 16 is smaller than the smallest v1 descriptor (64)"
'

test_expect_success 'init NULL' '
	build_module noinit "$MODS/broken.c" -DFAULT_NO_INIT &&
	refused noinit "$TRASH/noinit.so" "required callback init is NULL"
'

test_expect_success 'fini NULL' '
	build_module nofini "$MODS/broken.c" -DFAULT_NO_FINI &&
	refused nofini "$TRASH/nofini.so" "required callback fini is NULL"
'

test_expect_success 'a declared kind with no operation table' '
	build_module noops "$MODS/broken.c" -DFAULT_NO_OPS &&
	refused noops "$TRASH/noops.so" "declares kind model_adapter but has no operation table"
'

test_expect_success 'an operation table with an operation NULL' '
	build_module nostart "$MODS/broken.c" -DFAULT_NO_START &&
	refused nostart "$TRASH/nostart.so" "declares kind model_adapter but its operation start is NULL"
'

test_expect_success 'init that fails: unloaded at once, fini not called, nothing leaked' '
	build_module initfails "$MODS/broken.c" -DFAULT_INIT_FAILS &&
	refused initfails "$TRASH/initfails.so" "init failed" &&
	grep -F "module broken: init fails on purpose" "$TRASH/initfails/gateway.log" &&
	unloaded_early "$TRASH/initfails/gateway.log" broken &&
	unloaded_early "$TRASH/initfails-required/out" broken
'

test_expect_success 'a module named like the built-in echo' '
	build_module echo2 "$MODS/broken.c" -DNAME="\"echo\"" &&
	refused echo2 "$TRASH/echo2.so" "a module named '"'"'echo'"'"' is already loaded (built-in)" &&
	unloaded_early "$TRASH/echo2/gateway.log" echo
'

test_expect_success 'two modules of one name: the second is refused, the first runs' '
	build_module twin-a "$MODS/broken.c" -DNAME="\"twin\"" &&
	build_module twin-b "$MODS/broken.c" -DNAME="\"twin\"" &&
	BEFORE="- \"$TRASH/twin-a.so\"" \
	refused twins "$TRASH/twin-b.so" "a module named '"'"'twin'"'"' is already loaded ($TRASH/twin-a.so)" &&
	only_once "$TRASH/twins/gateway.log" "broken module twin: fini called" &&
	only_once "$TRASH/twins-required/out" "broken module twin: fini called"
'

test_expect_success 'the first twin is listed while the second is refused' '
	write_gateway_config twins2 "$(load_yaml "- \"$TRASH/twin-a.so\"" "- \"$TRASH/twin-b.so\"")" &&
	start_gateway twins2 &&
	test "$(row twin)" = "twin 0.0.1 started model_adapter $TRASH/twin-a.so" &&
	stop_gateway
'

test_expect_success 'a file that is not a shared object' '
	seq 1 100 >"$TRASH/text.so" &&
	refused text "$TRASH/text.so" "cannot load: $TRASH/text.so: invalid ELF header"
'

test_expect_success 'a path that does not exist' '
	refused missing "$TRASH/missing.so" \
		"cannot load: $TRASH/missing.so: cannot open shared object file: No such file or directory"
'

test_expect_success 'a bare file name is a file in the directory, never looked up in the library path' '
	write_gateway_config bare "$(load_yaml "- path: libc.so.6" "  required: true")" &&
	(cd "$TRASH/bare" && test_must_fail "$CRAB" gateway -c crab.yaml) >bare.out 2>&1 &&
	cat bare.out && sanitizer_clean bare.out &&
	grep -F "cannot start: module libc.so.6: cannot load: ./libc.so.6: cannot open shared object file" bare.out
'

test_expect_success 'example.so refuses to load without its rule file, or with a bad one' '
	printf "hello => hi\nno arrow here\n" >"$TRASH/bad-rules.txt" &&
	head -c 70000 /dev/zero | tr "\0" "a" >"$TRASH/big-rules.txt" &&
	printf "# only a comment\n\n" >"$TRASH/empty-rules.txt" &&
	printf "* => one\n => two\n" >"$TRASH/nopattern-rules.txt" &&
	printf "* => one\n* => two\n" >"$TRASH/stars-rules.txt" &&
	printf "caf\351 => latin-1\n" >"$TRASH/latin1-rules.txt" &&
	write_gateway_config rules "$(load_yaml \
		"- \"$EXAMPLE\"" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/none.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/bad-rules.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/big-rules.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/empty-rules.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/nopattern-rules.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/stars-rules.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/latin1-rules.txt\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH\" } }" \
		"- { path: \"$EXAMPLE\", config: { rules: \"$TRASH/rules.txt\", delay_ms: -1 } }")" &&
	start_gateway rules &&
	only_once "$GW_LOG" "module example: config needs '"'"'rules: <path to the rule file>'"'"'" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/none.txt'"'"': No such file or directory" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/bad-rules.txt'"'"' line 2: no '"'"'=>'"'"'" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/big-rules.txt'"'"': larger than the limit of 65536 bytes" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/empty-rules.txt'"'"': has no rule" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/nopattern-rules.txt'"'"' line 2: the pattern is empty" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/stars-rules.txt'"'"' line 2: a second '"'"'* =>'"'"' rule" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH/latin1-rules.txt'"'"': not valid UTF-8" &&
	only_once "$GW_LOG" "module example: rules '"'"'$TRASH'"'"': not a regular file" &&
	only_once "$GW_LOG" "module example: delay_ms must be 0 to 10000, not -1" &&
	test "$(grep -cF "module $EXAMPLE: init failed; going on without it" "$GW_LOG")" -eq 10 &&
	test -z "$(row example)" &&
	stop_gateway
'

test_done
