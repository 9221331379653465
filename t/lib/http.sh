# t/lib/http.sh: reading raw HTTP/1.1 answers (from a bash /dev/tcp connection) in test
# scripts. Source it after test-lib.sh.

# split_responses FILE: one line per HTTP response in FILE, in order: "STATUS BODY".
# Each response must have a Content-Length and the full body; a short or garbled one is
# printed as "truncated ..." or "garbled ..." and the function fails.
split_responses() {
	local in line status len body
	exec {in}<"$1" || return 1
	while IFS= read -r line <&$in; do
		line=${line%$'\r'}
		case $line in
		"HTTP/1.1 "[0-9][0-9][0-9]" "*) ;;
		*) echo "garbled status line: $line"; exec {in}<&-; return 1 ;;
		esac
		status=${line#HTTP/1.1 }
		status=${status%% *}
		len=
		while IFS= read -r line <&$in; do
			line=${line%$'\r'}
			[ -z "$line" ] && break
			case ${line,,} in
			content-length:*) len=${line#*:}; len=${len// /} ;;
			esac
		done
		if [ -z "$len" ]; then
			echo "garbled: a $status answer without Content-Length"
			exec {in}<&-
			return 1
		fi
		body=
		IFS= read -r -N "$len" body <&$in
		if [ "${#body}" -ne "$len" ]; then
			echo "truncated $status: ${#body} of $len bytes: $body"
			exec {in}<&-
			return 1
		fi
		printf '%s %s\n' "$status" "$body"
	done
	exec {in}<&-
	[ -z "$line" ] || { echo "garbled tail: $line"; return 1; }
}
