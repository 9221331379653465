/* admin_client.c: the blocking client side of the admin socket, and `crab admin OP [ARGS]`,
 * the raw form of every control operation for operators' scripts. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

#define REPLY_MAX (16 << 20)

const char *crab_cli_admin_socket(const char *option)
{
	const char *env = getenv("CRAB_ADMIN_SOCKET");
	if (option != NULL)
		return option;
	return env != NULL && *env ? env : "crab-data/admin.sock";
}

int crab_cli_admin_socket_only(int argc, char **argv, int from, const char **socket_path)
{
	const char *option = NULL;

	for (int i = from; i < argc; i++) {
		if (strcmp(argv[i], "--admin-socket") != 0 || i + 1 == argc)
			return -1;
		option = argv[++i];
	}
	*socket_path = crab_cli_admin_socket(option);
	return 0;
}

/* send(MSG_NOSIGNAL): a gateway that hangs up (it refuses another uid by closing) is an
 * error to report, not a SIGPIPE. */
static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads one line (without the newline) into a malloc'd string. */
static char *read_line(int fd)
{
	size_t len = 0, cap = 4096;
	char *buf = xmalloc(cap);

	for (;;) {
		ssize_t n;
		char *nl;

		if (len + 1 >= cap) {
			if (cap >= REPLY_MAX)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf[len + (size_t)n] = '\0';
		if ((nl = memchr(buf + len, '\n', (size_t)n)) != NULL) {
			*nl = '\0';
			return buf;
		}
		len += (size_t)n;
	}
	free(buf);
	return NULL;
}

int crab_admin_call(const char *socket_path, const char *op, json_t *args, json_t **result,
    char *err, size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	json_t *req = json_pack("{s:i, s:s, s:o}", "id", 1, "op", op, "args",
	    args ? args : json_object());
	json_t *reply = NULL;
	char *line = NULL, *text;
	int fd = -1, rc = -1;

	*result = NULL;
	if (strlen(socket_path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "admin socket path '%s' is too long", socket_path);
		goto out;
	}
	crab_strlcpy(sun.sun_path, socket_path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		snprintf(err, errlen, "cannot reach the gateway at '%s': %s", socket_path,
		    strerror(errno));
		goto out;
	}
	text = json_dumps(req, JSON_COMPACT);
	if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0) {
		free(text);
		snprintf(err, errlen, "cannot write to '%s': %s", socket_path, strerror(errno));
		goto out;
	}
	free(text);
	if ((line = read_line(fd)) == NULL ||
	    (reply = json_loads(line, 0, NULL)) == NULL || !json_is_object(reply)) {
		snprintf(err, errlen, "no valid answer from the gateway at '%s'", socket_path);
		goto out;
	}
	if (!json_is_true(json_object_get(reply, "ok"))) {
		json_t *e = json_object_get(reply, "error");
		snprintf(err, errlen, "%s: %s", json_string_value(json_object_get(e, "code")) ?: "error",
		    json_string_value(json_object_get(e, "message")) ?: "no message");
		goto out;
	}
	*result = json_incref(json_object_get(reply, "result"));
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(line);
	json_decref(reply);
	json_decref(req);
	return rc;
}

int crab_cli_call(const char *socket_path, const char *op, json_t *args, json_t **result)
{
	char err[512];

	if (crab_admin_call(socket_path, op, args, result, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	return 0;
}

void crab_cli_print_json(json_t *result)
{
	char *s = json_dumps(result, JSON_COMPACT);

	printf("%s\n", s);
	free(s);
}

int crab_cli_admin_main(int argc, char **argv)
{
	const char *sock = NULL, *op = NULL, *args_text = NULL;
	json_t *args = NULL, *result;
	char err[512];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--admin-socket") == 0 && i + 1 < argc)
			sock = argv[++i];
		else if (op == NULL)
			op = argv[i];
		else if (args_text == NULL)
			args_text = argv[i];
		else
			op = NULL, i = argc; /* too many words */
	}
	if (op == NULL || op[0] == '-') {
		fprintf(stderr, "usage: crab admin OP ['{json args}'] [--admin-socket PATH]\n");
		return 2;
	}
	if (args_text != NULL) {
		json_error_t jerr;
		args = json_loads(args_text, 0, &jerr);
		if (!json_is_object(args)) {
			fprintf(stderr, "crab: args must be a JSON object: %s\n",
			    args ? "not an object" : jerr.text);
			json_decref(args);
			return 2;
		}
	}
	if (crab_admin_call(crab_cli_admin_socket(sock), op, args, &result, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	json_dumpf(result, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(result);
	return 0;
}
