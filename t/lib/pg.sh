#!/usr/bin/env bash
# pg.sh: a throwaway PostgreSQL server for tests, listening only on a Unix socket in its
# own directory. Source it and call pg_start/pg_createdb/pg_stop, or run it:
#   t/lib/pg.sh start DIR          prints the base DSN
#   t/lib/pg.sh createdb DIR NAME  prints the new database's DSN
#   t/lib/pg.sh stop DIR           stops the server and removes DIR
# PostgreSQL refuses to run as root, so as root the server runs as the system user
# crabtest, created on first use. Authentication is trust: only the owner of the
# socket directory (mode 0700) and root can reach the socket.

PG_TEST_USER=crabtest

# The newest installed server's bin directory.
pg_bindir() {
	local dir
	dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$dir" ] || [ ! -x "$dir/pg_ctl" ]; then
		echo "pg.sh: no PostgreSQL server under /usr/lib/postgresql" >&2
		return 1
	fi
	echo "$dir"
}

# Runs a command as the server's owner, from inside DIR (a root home is unreadable).
_pg_run() {
	local dir=$1
	shift
	if [ "$(id -u)" = 0 ]; then
		(cd "$dir" && runuser -u "$PG_TEST_USER" -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

_pg_user() {
	if [ "$(id -u)" = 0 ]; then echo "$PG_TEST_USER"; else id -un; fi
}

_pg_ensure_user() {
	[ "$(id -u)" = 0 ] || return 0
	id -u "$PG_TEST_USER" >/dev/null 2>&1 && return 0
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		--user-group "$PG_TEST_USER" 2>/dev/null
	# a concurrent run may have created it first
	id -u "$PG_TEST_USER" >/dev/null 2>&1 || {
		echo "pg.sh: cannot create user $PG_TEST_USER" >&2
		return 1
	}
}

# pg_start DIR: initdb and start a server whose data and socket live in DIR.
pg_start() {
	local dir=$1 bin user
	[ -n "$dir" ] || { echo "pg.sh: start needs a directory" >&2; return 1; }
	bin=$(pg_bindir) || return 1
	_pg_ensure_user || return 1
	mkdir -p "$dir" || return 1
	dir=$(cd "$dir" && pwd) || return 1
	# A Unix socket path holds at most 107 bytes.
	if [ $((${#dir} + 15)) -gt 107 ]; then
		echo "pg.sh: directory path too long for a socket: $dir" >&2
		return 1
	fi
	user=$(_pg_user)
	chmod 0700 "$dir" || return 1
	[ "$(id -u)" = 0 ] && { chown "$PG_TEST_USER:" "$dir" || return 1; }
	if ! _pg_run "$dir" test -w "$dir"; then
		echo "pg.sh: $dir is not reachable by $user (check its parents' modes)" >&2
		return 1
	fi
	# -N: the test cluster's files need no sync at creation; the server below syncs.
	_pg_run "$dir" "$bin/initdb" -D "$dir/data" -U "$user" --auth=trust -E UTF8 \
		--no-locale -N >"$dir/initdb.log" 2>&1 || {
		echo "pg.sh: initdb failed:" >&2
		cat "$dir/initdb.log" >&2
		return 1
	}
	cat >>"$dir/data/postgresql.conf" <<-EOF
		listen_addresses = ''
		unix_socket_directories = '$dir'
		fsync = on
		synchronous_commit = on
	EOF
	_pg_run "$dir" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
		>/dev/null || {
		echo "pg.sh: server did not start:" >&2
		cat "$dir/server.log" >&2
		return 1
	}
	PG_DIR=$dir
	echo "host=$dir dbname=postgres user=$user"
}

# pg_createdb NAME [DIR]: creates a database on the server in DIR (default: the one
# pg_start started in this shell) and prints its DSN.
pg_createdb() {
	local name=$1 dir=${2:-$PG_DIR} bin user
	case $name in
	'' | *[!a-z0-9_]*)
		echo "pg.sh: database name must be [a-z0-9_]+: '$name'" >&2
		return 1
		;;
	esac
	[ -n "$dir" ] || { echo "pg.sh: no server directory" >&2; return 1; }
	bin=$(pg_bindir) || return 1
	user=$(_pg_user)
	_pg_run "$dir" "$bin/createdb" -h "$dir" -U "$user" "$name" || return 1
	echo "host=$dir dbname=$name user=$user"
}

# pg_stop DIR: fast shutdown, then the directory goes.
pg_stop() {
	local dir=${1:-$PG_DIR} bin
	[ -n "$dir" ] && [ -d "$dir" ] || return 0
	# never remove a directory pg_start did not make
	if [ ! -e "$dir/initdb.log" ]; then
		echo "pg.sh: $dir is not a pg.sh server directory" >&2
		return 1
	fi
	bin=$(pg_bindir) || return 1
	if [ -f "$dir/data/postmaster.pid" ]; then
		_pg_run "$dir" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ||
			return 1
	fi
	rm -rf "$dir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	case $1 in
	start) pg_start "$2" ;;
	createdb) pg_createdb "$3" "$2" ;;
	stop) pg_stop "$2" ;;
	*)
		echo "usage: $0 start DIR | createdb DIR NAME | stop DIR" >&2
		exit 2
		;;
	esac
fi
