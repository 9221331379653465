/* ws_loop.h: test_ws.c's loopback: a crab_http_server whose handler upgrades GET /ws to
 * an echoing crab_ws, what each end saw, pumping this thread's loop, crab_ws_connect
 * clients and raw sockets. */
#ifndef CRAB_T_WS_LOOP_H
#define CRAB_T_WS_LOOP_H

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_server.h"
#include "core/identity.h"
#include "core/ws.h"

static struct event_base *base;
static struct crab_http_server *srv;
static struct crab_ws_limits server_limits = {64 << 10, 10, 20};

/* What one end of a connection saw. */
struct side {
	struct crab_ws *ws;
	int opens, closes, messages;
	int code;
	char reason[128];
	int binary;
	char *last;
	size_t last_len;
	char fp[CRAB_FP_HEX];
	char auth[64];
};

static struct side servers[32];
static int nservers;
static int upgrades_refused;

static void on_message(void *arg, struct crab_ws *ws, int binary, const char *data, size_t len)
{
	struct side *s = arg;

	s->messages++;
	s->binary = binary;
	free(s->last);
	s->last = malloc(len + 1);
	memcpy(s->last, data, len + 1);
	s->last_len = len;
	(void)ws;
}

static void on_open(void *arg, struct crab_ws *ws)
{
	struct side *s = arg;
	(void)ws;
	s->opens++;
}

static void on_close(void *arg, struct crab_ws *ws, int code, const char *reason)
{
	struct side *s = arg;

	if (ws != s->ws)
		printf("# on_close for another ws\n");
	s->closes++;
	s->code = code;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
	s->ws = NULL;
}

/* The server's side: echoes, closes when asked, goes away when asked. */
static void echo_message(void *arg, struct crab_ws *ws, int binary, const char *data, size_t len)
{
	struct side *s = arg;

	on_message(arg, ws, binary, data, len);
	if (!binary && strcmp(data, "close-me") == 0) {
		crab_ws_close(ws, 4000, "asked to");
		if (crab_ws_send(ws, 0, "late", 4) == 0)
			printf("# sending after close worked\n");
		return;
	}
	if (!binary && strcmp(data, "free-me") == 0) {
		crab_ws_free(ws);
		s->ws = NULL;
		return;
	}
	crab_ws_send(ws, binary, data, len);
}

static const struct crab_ws_callbacks client_cb = {on_open, on_message, on_close};
static const struct crab_ws_callbacks echo_cb = {NULL, echo_message, on_close};

static int serving; /* --serve: a connection takes the first free side */

static struct side *free_side(void)
{
	for (int i = 0; serving && i < 32; i++) {
		if (servers[i].ws == NULL)
			return &servers[i];
	}
	return &servers[nservers % 32];
}

static void on_request(struct crab_http_request *req, void *arg)
{
	struct side *s = free_side();
	const char *fp = crab_http_request_peer_fingerprint(req);
	const char *auth = crab_http_request_header(req, "Authorization");
	const char *why;
	(void)arg;

	if (strcmp(crab_http_request_path(req), "/ws") != 0) {
		crab_http_reply(req, 404, "{\"error\":{\"code\":\"not_found\"}}", 30);
		return;
	}
	if (crab_ws_check_upgrade(req, &why) != 0)
		upgrades_refused++;
	free(s->last);
	memset(s, 0, sizeof(*s));
	/* the fingerprint and headers are read before the upgrade frees req */
	snprintf(s->fp, sizeof(s->fp), "%s", fp ? fp : "");
	snprintf(s->auth, sizeof(s->auth), "%s", auth ? auth : "");
	s->ws = crab_ws_accept(req, &server_limits, &echo_cb, s);
	if (s->ws != NULL)
		nservers++;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void pump_once(void)
{
	struct timeval tick = {0, 5000};

	event_base_loopexit(base, &tick);
	event_base_dispatch(base);
}

#define PUMP_UNTIL(cond, secs)                                                       \
	do {                                                                         \
		double end_ = now_s() + (secs);                                      \
		while (!(cond) && now_s() < end_)                                    \
			pump_once();                                                 \
	} while (0)

static void pump_for(double secs)
{
	double end = now_s() + secs;
	while (now_s() < end)
		pump_once();
}

static struct crab_ws *client(struct side *c, const char *scheme, SSL_CTX *tls, const char *path,
    const struct crab_ws_limits *limits)
{
	static const char *const headers[] = {"Authorization: Bearer t0ken", NULL};
	char url[128], err[256] = "";

	memset(c, 0, sizeof(*c));
	snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, crab_http_server_port(srv), path);
	c->ws = crab_ws_connect(base, url, tls, headers, limits, &client_cb, c, err, sizeof(err));
	if (c->ws == NULL)
		printf("# connect: %s\n", err);
	return c->ws;
}

/* ---- raw sockets ---- */

static int raw_connect(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_port = htons((unsigned short)crab_http_server_port(srv));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		abort();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Reads what comes into buf (NUL-terminated, binary kept) until it holds want bytes, the
 * peer closes, or secs pass; pumps the loop meanwhile. Returns the length. */
static size_t raw_read(int fd, char *buf, size_t cap, size_t want, double secs)
{
	double end = now_s() + secs;
	size_t got = 0;

	while (got < want && got < cap - 1 && now_s() < end) {
		ssize_t n = read(fd, buf + got, cap - 1 - got);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		if (n > 0)
			got += (size_t)n;
		else
			pump_once();
	}
	buf[got] = '\0';
	return got;
}

static const char upgrade_req[] =
	"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
static const char upgrade_answer[] =
	"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
	"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

#endif
