#!/usr/bin/env bash
test_description='crab.yaml: bad files refused with positions, plain HTTP only on loopback, DSN sources'
. "$(dirname "$0")/test-lib.sh"

# refused NAME: `crab gateway -c $TRASH/NAME.yaml` (the YAML comes from stdin, with DATA
# replaced by $TRASH/NAME-data) exits non-zero by itself, without a sanitizer report,
# and starts nothing: no data directory, no admin socket. Its stderr is left in NAME.err.
refused() {
	local name=$1
	sed -e "s|DATA|$TRASH/$name-data|" >"$TRASH/$name.yaml"
	test_must_fail "$CRAB" gateway -c "$TRASH/$name.yaml" 2>"$TRASH/$name.err" || return 1
	cat "$TRASH/$name.err"
	sanitizer_clean "$TRASH/$name.err" || return 1
	if [ -e "$TRASH/$name-data" ] || [ -e "$TRASH/crab-data" ]; then
		echo "a refused config created a data directory"
		return 1
	fi
}

# reported NAME LINE COLUMN-REGEX MESSAGE-REGEX: NAME.err has that error at that place.
reported() {
	grep -E "^$TRASH/$1\.yaml:$2:$3: $4" "$TRASH/$1.err" ||
		{ echo "no '$1.yaml:$2:$3: $4' in:"; cat "$TRASH/$1.err"; return 1; }
}

test_expect_success 'an unknown key is refused with its position' '
	refused unknown-key <<-EOF &&
	gateway:
	  listen: "127.0.0.1:0"
	  data_dir: "DATA"
	  colour: blue
	EOF
	reported unknown-key 4 3 "unknown key .colour. in .gateway."
'

test_expect_success 'a string where a number belongs is refused at the value' '
	refused wrong-type <<-EOF &&
	gateway:
	  data_dir: "DATA"
	limits:
	  max_body_bytes: "lots"
	EOF
	reported wrong-type 4 "(19|20)" ".max_body_bytes. must be a whole number"
'

test_expect_success 'a list where a single value belongs is refused' '
	refused wrong-shape <<-EOF &&
	gateway:
	  data_dir: "DATA"
	  listen: ["127.0.0.1:0", "127.0.0.1:1"]
	EOF
	reported wrong-shape 3 3 ".listen. must be a single value"
'

test_expect_success 'an out-of-range number is refused with the range' '
	refused out-of-range <<-EOF &&
	gateway:
	  data_dir: "DATA"
	limits:
	  idle_timeout_s: 0
	EOF
	reported out-of-range 4 19 ".idle_timeout_s. must be a whole number from 1 to 86400"
'

test_expect_success 'an unknown section is refused' '
	refused unknown-section <<-EOF &&
	gateway:
	  data_dir: "DATA"
	plugins:
	  x: 1
	EOF
	reported unknown-section 3 1 "unknown section .plugins."
'

test_expect_success 'an unknown store driver is refused at the driver' '
	refused bad-driver <<-EOF &&
	gateway:
	  data_dir: "DATA"
	store:
	  driver: mysql
	EOF
	reported bad-driver 4 11 "store driver must be sqlite or postgres, not .mysql."
'

test_expect_success 'a YAML syntax error is refused at its line, without a leak' '
	refused syntax <<-EOF &&
	gateway:
	  data_dir: "DATA"
	  listen: "127.0.0.1:0
	store:
	  driver: sqlite
	EOF
	reported syntax 3 11 "" && grep -q "not valid YAML" "$TRASH/syntax.err"
'

test_expect_success 'every error is reported, one line each' '
	refused two-errors <<-EOF &&
	gateway:
	  data_dir: "DATA"
	  colour: blue
	limits:
	  max_connections: 3
	EOF
	reported two-errors 3 3 "unknown key .colour." &&
	reported two-errors 5 20 ".max_connections. must be a whole number" &&
	test "$(wc -l <"$TRASH/two-errors.err")" -eq 2
'

test_expect_success 'the postgres driver without dsn_env or dsn_file is refused' '
	refused pg-no-dsn <<-EOF &&
	gateway:
	  data_dir: "DATA"
	store:
	  driver: postgres
	EOF
	reported pg-no-dsn 4 11 "the postgres driver needs exactly one of dsn_env and dsn_file"
'

test_expect_success 'the postgres driver with both dsn_env and dsn_file is refused' '
	refused pg-two-dsn <<-EOF &&
	gateway:
	  data_dir: "DATA"
	store:
	  driver: postgres
	  dsn_env: CRAB_T1001_DSN
	  dsn_file: /nonexistent/pg.dsn
	EOF
	reported pg-two-dsn 4 11 "the postgres driver needs exactly one"
'

# The DSN problems are found at start, after the config loaded: the data directory may
# exist by then, but nothing listens and the secret never shows.
dsn_refused() {
	local name=$1 dir=$TRASH/$1
	mkdir -p "$dir" &&
	sed -e "s|DATA|$dir/data|" >"$dir/crab.yaml" &&
	test_must_fail "$CRAB" gateway -c "$dir/crab.yaml" 2>"$dir/err" || return 1
	cat "$dir/err"
	sanitizer_clean "$dir/err" &&
	test ! -e "$dir/data/admin.sock"
}

test_expect_success 'a dsn_env naming an unset variable is refused clearly' '
	unset CRAB_T1001_UNSET_DSN
	dsn_refused dsn-unset <<-EOF &&
	gateway:
	  listen: "127.0.0.1:0"
	  data_dir: "DATA"
	store:
	  driver: postgres
	  dsn_env: CRAB_T1001_UNSET_DSN
	EOF
	grep -q "environment variable .CRAB_T1001_UNSET_DSN. (store.dsn_env) is not set" \
		"$TRASH/dsn-unset/err"
'

test_expect_success 'a DSN that cannot connect is refused without printing the DSN' '
	CRAB_T1001_DSN="host=$TRASH/no-server dbname=crab user=crab password=sekrit-t1001 connect_timeout=2" \
	dsn_refused dsn-bad <<-EOF &&
	gateway:
	  listen: "127.0.0.1:0"
	  data_dir: "DATA"
	store:
	  driver: postgres
	  dsn_env: CRAB_T1001_DSN
	EOF
	grep -q "cannot start" "$TRASH/dsn-bad/err" &&
	! grep -E "sekrit-t1001|password=|user=crab" "$TRASH/dsn-bad/err"
'

test_expect_success 'a dsn_file that cannot be read is refused' '
	dsn_refused dsn-file <<-EOF &&
	gateway:
	  listen: "127.0.0.1:0"
	  data_dir: "DATA"
	store:
	  driver: postgres
	  dsn_file: "$TRASH/missing.dsn"
	EOF
	grep -q "cannot read store.dsn_file .*missing.dsn" "$TRASH/dsn-file/err"
'

test_expect_success 'plain HTTP (tls: off) on a non-loopback address is refused' '
	write_gateway_config open "limits:" "  idle_timeout_s: 2" &&
	sed -i "s|127.0.0.1:0|0.0.0.0:0|; s|^gateway:|gateway:\n  tls: \"off\"|" "$TRASH/open/crab.yaml" &&
	test_must_fail "$CRAB" gateway -c "$TRASH/open/crab.yaml" 2>"$TRASH/open/err" &&
	cat "$TRASH/open/err" &&
	grep -q "refusing plain HTTP on non-loopback address .0.0.0.0:0." "$TRASH/open/err" &&
	sanitizer_clean "$TRASH/open/err" &&
	test ! -e "$TRASH/open/data/admin.sock"
'

test_expect_success 'with insecure_plaintext: true it starts and logs INSECURE' '
	sed -i "s|^gateway:|gateway:\n  insecure_plaintext: true|" "$TRASH/open/crab.yaml" &&
	start_gateway open &&
	grep "INSECURE" "$GW_LOG" &&
	curl -sS "$GW_URL/v1/health" | jq -e ".status == \"ok\"" &&
	stop_gateway
'

test_expect_success 'a loopback listener does not log INSECURE' '
	write_gateway_config local &&
	start_gateway local &&
	! grep "INSECURE" "$GW_LOG" &&
	stop_gateway
'

test_done
