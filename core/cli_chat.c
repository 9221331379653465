/* cli_chat.c: `crab chat [new] [--session ID]`: an interactive chat in the terminal. It
 * takes a lease from the admin socket (produce and subscribe, bound to a new session or
 * to --session, and to its connection, so it dies when the chat ends), opens the
 * gateway's WebSocket, subscribes, and sends each line typed as a chat message. The
 * reply is printed as the model streams it (message.delta), and the turn's end
 * (message.outbound, or turn.failed) ends the line. Ctrl-D or /quit ends the chat and
 * revokes the lease. */
#include "cli.h"

#include <event2/event.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "id.h"
#include "tls.h"
#include "util.h"
#include "ws.h"

#define LINE_MAX_BYTES (64 * 1024)

struct chat {
	struct event_base *base;
	struct crab_ws *ws;
	struct event *input;
	const char *platform, *channel, *actor;
	char session_id[CRAB_ID_MAX]; /* "" until the first answer names it */
	char line[LINE_MAX_BYTES];
	size_t len;
	int streamed;  /* deltas printed for the turn under way */
	int waiting;   /* a message sent, its reply not finished */
	int closing;
	int rc;
};

static void prompt(struct chat *c)
{
	if (!c->waiting && !c->closing) {
		fputs("> ", stdout);
		fflush(stdout);
	}
}

static void send_line(struct chat *c, const char *text)
{
	char message_id[CRAB_ID_MAX];
	json_t *ev, *frame;
	char *s;

	crab_id_new("cli", message_id);
	ev = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:s}}", "type", "channel.message.received",
	    "text", text, "source", "platform", c->platform, "channel_id", c->channel,
	    "actor_id", c->actor, "message_id", message_id);
	json_object_set_new(ev, "session_id",
	    json_string(c->session_id[0] ? c->session_id : "new"));
	frame = json_pack("{s:s, s:o}", "op", "event", "event", ev);
	s = json_dumps(frame, JSON_COMPACT);
	crab_ws_send(c->ws, 0, s, strlen(s));
	free(s);
	json_decref(frame);
	c->waiting = 1;
	c->streamed = 0;
}

static void quit(struct chat *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	event_del(c->input);
	crab_ws_close(c->ws, CRAB_WS_NORMAL, "bye");
}

static void on_input(evutil_socket_t fd, short what, void *arg)
{
	struct chat *c = arg;
	ssize_t n;
	char *nl;

	(void)what;
	n = read(fd, c->line + c->len, sizeof(c->line) - 1 - c->len);
	if (n <= 0) { /* Ctrl-D */
		fputs("\n", stdout);
		quit(c);
		return;
	}
	c->len += (size_t)n;
	c->line[c->len] = '\0';
	while ((nl = strchr(c->line, '\n')) != NULL) {
		*nl = '\0';
		if (strcmp(c->line, "/quit") == 0) {
			quit(c);
			return;
		}
		/* A line typed while a reply streams goes too: the session's turns run
		 * in order. */
		if (c->line[0] != '\0')
			send_line(c, c->line);
		else
			prompt(c);
		c->len -= (size_t)(nl + 1 - c->line);
		memmove(c->line, nl + 1, c->len + 1);
	}
	if (c->len == sizeof(c->line) - 1) {
		fprintf(stderr, "crab: a line longer than %d bytes\n", LINE_MAX_BYTES);
		c->len = 0;
	}
}

static void ack(struct chat *c, json_t *msg)
{
	const char *id = json_string_value(json_object_get(msg, "delivery_id"));
	char frame[128];

	if (id != NULL) {
		snprintf(frame, sizeof(frame), "{\"op\":\"ack\",\"delivery_id\":\"%.64s\"}", id);
		crab_ws_send(c->ws, 0, frame, strlen(frame));
	}
}

static void on_deliver(struct chat *c, json_t *ev)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	json_t *data = json_object_get(ev, "data");

	if (type == NULL)
		return;
	if (strcmp(type, "message.delta") == 0) {
		fputs(json_string_value(json_object_get(data, "text")) ?: "", stdout);
		fflush(stdout);
		c->streamed = 1;
	} else if (strcmp(type, "message.outbound") == 0) {
		if (!c->streamed)
			fputs(json_string_value(json_object_get(data, "text")) ?: "", stdout);
		fputs("\n", stdout);
		c->waiting = 0;
		prompt(c);
	} else if (strcmp(type, "turn.failed") == 0) {
		json_t *e = json_object_get(data, "error");
		fprintf(stdout, "%s[the turn failed: %s: %s]\n", c->streamed ? "\n" : "",
		    json_string_value(json_object_get(e, "code")) ?: "error",
		    json_string_value(json_object_get(e, "message")) ?: "");
		c->waiting = 0;
		prompt(c);
	}
}

static void on_message(void *arg, struct crab_ws *ws, int binary, const char *data, size_t len)
{
	struct chat *c = arg;
	json_t *msg = binary ? NULL : json_loadb(data, len, 0, NULL);
	const char *op = json_string_value(json_object_get(msg, "op"));

	(void)ws;
	if (op == NULL) {
	} else if (strcmp(op, "deliver") == 0) {
		ack(c, msg);
		on_deliver(c, json_object_get(msg, "event"));
	} else if (strcmp(op, "accepted") == 0) {
		const char *s = json_string_value(json_object_get(msg, "session_id"));
		if (s != NULL && c->session_id[0] == '\0')
			crab_strlcpy(c->session_id, s, sizeof(c->session_id));
	} else if (strcmp(op, "error") == 0) {
		json_t *e = json_object_get(msg, "error");
		fprintf(stdout, "[refused: %s: %s]\n",
		    json_string_value(json_object_get(e, "code")) ?: "error",
		    json_string_value(json_object_get(e, "message")) ?: "");
		c->waiting = 0;
		prompt(c);
	}
	json_decref(msg);
}

static void on_open(void *arg, struct crab_ws *ws)
{
	struct chat *c = arg;
	static const char subscribe[] =
		"{\"op\":\"subscribe\",\"types\":[\"message.delta\",\"message.outbound\","
		"\"turn.failed\"]}";

	crab_ws_send(ws, 0, subscribe, sizeof(subscribe) - 1);
	event_add(c->input, NULL);
	if (c->session_id[0])
		printf("chat in session %s; Ctrl-D or /quit ends it\n", c->session_id);
	else
		printf("a new chat; Ctrl-D or /quit ends it\n");
	prompt(c);
}

static void on_close(void *arg, struct crab_ws *ws, int code, const char *reason)
{
	struct chat *c = arg;

	(void)ws;
	c->ws = NULL;
	if (!c->closing || (code != CRAB_WS_NORMAL && code != CRAB_WS_NO_STATUS)) {
		fprintf(stderr, "crab: the chat ended: %d %s\n", code, reason);
		c->rc = 1;
	}
	event_base_loopexit(c->base, NULL);
}

static const struct crab_ws_callbacks callbacks = {
	.on_open = on_open,
	.on_message = on_message,
	.on_close = on_close,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: crab chat [new] [--session ID] [--tenant T] [--agent A]\n"
		   "                 [--platform P] [--channel C] [--actor A] [--admin-socket PATH]\n");
}

/* The lease, and the gateway's address and key, from the admin socket. */
static int get_lease(const char *sock, const char *tenant, const char *agent,
    const char *session, json_t **lease, json_t **gw)
{
	json_t *args;
	char err[512];

	if (crab_admin_call(sock, "pair.test", NULL, gw, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return -1;
	}
	args = json_pack("{s:s, s:[s, s], s:s, s:i, s:b}", "tenant_id", tenant, "scopes",
	    "produce", "subscribe", "session_id", session ? session : "new", "ttl_s", 86400,
	    "connection_bound", 1);
	if (agent != NULL)
		json_object_set_new(args, "agent_id", json_string(agent));
	if (crab_admin_call(sock, "lease.create", args, lease, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: cannot get a lease: %s\n", err);
		return -1;
	}
	return 0;
}

int crab_cli_chat_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"session", required_argument, NULL, 's'},
		{"tenant", required_argument, NULL, 't'},
		{"agent", required_argument, NULL, 'A'},
		{"platform", required_argument, NULL, 'p'},
		{"channel", required_argument, NULL, 'c'},
		{"actor", required_argument, NULL, 'a'},
		{"admin-socket", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	struct passwd *pw = getpwuid(geteuid());
	struct chat c = {.platform = "cli", .channel = "cli",
		.actor = pw != NULL ? pw->pw_name : "operator"};
	const char *session = NULL, *tenant = "default", *agent = NULL, *sock = NULL;
	struct crab_tls_pin pin = {0};
	json_t *lease = NULL, *gw = NULL, *args;
	SSL_CTX *tls = NULL;
	char url[600], auth[128], err[512];
	const char *headers[2];
	int ch, first = 1;

	if (argc > 1 && strcmp(argv[1], "new") == 0)
		first = 2;
	optind = first;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's': session = optarg; break;
		case 't': tenant = optarg; break;
		case 'A': agent = optarg; break;
		case 'p': c.platform = optarg; break;
		case 'c': c.channel = optarg; break;
		case 'a': c.actor = optarg; break;
		case 'S': sock = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || (first == 2 && session != NULL)) {
		usage(stderr);
		return 2;
	}
	sock = crab_cli_admin_socket(sock);
	if (get_lease(sock, tenant, agent, session, &lease, &gw) != 0) {
		json_decref(gw);
		return 1;
	}
	if (session != NULL)
		crab_strlcpy(c.session_id, session, sizeof(c.session_id));
	/* http://host:port -> ws://host:port/v1/ws; https -> wss, pinned to the gateway. */
	{
		const char *listen = json_string_value(json_object_get(gw, "listen"));
		int secure = listen != NULL && strncmp(listen, "https://", 8) == 0;

		if (listen == NULL || (!secure && strncmp(listen, "http://", 7) != 0)) {
			fprintf(stderr, "crab: the gateway did not say where it listens\n");
			c.rc = 1;
			goto out;
		}
		snprintf(url, sizeof(url), "%s://%s/v1/ws", secure ? "wss" : "ws",
		    listen + (secure ? 8 : 7));
		if (secure) {
			pin.expect = json_string_value(json_object_get(gw, "fingerprint"));
			if ((tls = crab_tls_client_ctx(&pin, err, sizeof(err))) == NULL) {
				fprintf(stderr, "crab: %s\n", err);
				c.rc = 1;
				goto out;
			}
		}
	}
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
	    json_string_value(json_object_get(lease, "token")));
	headers[0] = auth;
	headers[1] = NULL;
	c.base = event_base_new();
	c.input = event_new(c.base, STDIN_FILENO, EV_READ | EV_PERSIST, on_input, &c);
	c.ws = crab_ws_connect(c.base, url, tls, headers, NULL, &callbacks, &c, err, sizeof(err));
	explicit_bzero(auth, sizeof(auth));
	if (c.ws == NULL) {
		fprintf(stderr, "crab: %s\n", err);
		c.rc = 1;
	} else {
		event_base_dispatch(c.base);
	}
	crab_ws_free(c.ws);
	event_free(c.input);
	event_base_free(c.base);
	/* Connection-bound, the lease died with the connection; revoking says it plainly. */
	args = json_pack("{s:O}", "lease_id", json_object_get(lease, "lease_id"));
	{
		json_t *r;
		if (crab_admin_call(sock, "lease.revoke", args, &r, err, sizeof(err)) == 0)
			json_decref(r);
	}
out:
	SSL_CTX_free(tls);
	EVP_PKEY_free(pin.key);
	json_decref(lease);
	json_decref(gw);
	return c.rc;
}
