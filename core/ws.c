/* ws.c: the RFC 6455 connection on a bufferevent, and the server's side of the opening
 * handshake. Frames and reassembly are ws_frame.c's; the client's handshake ws_client.c. */
#include "ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "errors.h"
#include "http_server.h"
#include "id.h"
#include "log.h"
#include "util.h"

#define CLOSE_WAIT_SECONDS 3       /* for the peer's close after ours, or its FIN after both */
#define HANDSHAKE_DEFAULT_SECONDS 60
#define PONG_MAX_BACKLOG (64 << 10) /* beyond it pings go unanswered (a peer that never reads) */

/* ---- the connection ---- */

enum ws_state {
	WS_CONNECTING, /* client: the server's 101 has not come yet */
	WS_OPEN,
	WS_CLOSING,    /* our close frame is out: waiting for the peer's */
	WS_FLUSHING,   /* closes exchanged, or the connection failed: our last bytes go out,
			* then our FIN, and the peer's is awaited (no reset of what it still
			* sends) */
	WS_DEAD,       /* the socket is closed; on_close and the free come from the loop */
};

struct crab_ws {
	struct event_base *base;
	struct bufferevent *bev; /* NULL once the socket is closed */
	int server;
	enum ws_state state;
	struct crab_ws_limits limits;
	struct crab_ws_callbacks cb;
	void *arg;
	struct crab_ws_parser parser;
	char accept[CRAB_WS_ACCEPT_LEN]; /* client, connecting: the answer expected */
	struct event *ping;   /* every ping_interval_s while open */
	struct event *timer;  /* the handshake's deadline, then the close's */
	struct event *reap;   /* on_close and the free, from the loop, never nested */
	int in_cb;            /* on_open or on_message is running */
	int reaping;          /* on_close is running */
	int notify;           /* on_close is due (crab_ws_free clears it) */
	int half_closed;      /* our FIN is sent */
	int code;             /* what on_close will say */
	char reason[CRAB_WS_MAX_CONTROL + 1];
};

static void ws_outcome(struct crab_ws *ws, int code, const char *reason)
{
	ws->code = code;
	crab_strlcpy(ws->reason, reason != NULL ? reason : "", sizeof(ws->reason));
}

static void ws_destroy(struct crab_ws *ws)
{
	if (ws->bev != NULL)
		bufferevent_free(ws->bev);
	event_free(ws->ping);
	event_free(ws->timer);
	event_free(ws->reap);
	crab_ws_parser_release(&ws->parser);
	free(ws);
}

/* Closes the socket now; on_close (unless freed by the owner) and the free follow from
 * the loop, so no caller of ours, nor callback of the owner, has ws freed under it. */
static void ws_finish(struct crab_ws *ws)
{
	if (ws->state == WS_DEAD)
		return;
	ws->state = WS_DEAD;
	/* inside one of bev's callbacks too: libevent holds a reference until it returns */
	bufferevent_free(ws->bev);
	ws->bev = NULL;
	event_del(ws->ping);
	event_del(ws->timer);
	event_active(ws->reap, EV_TIMEOUT, 0);
}

static void ws_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_ws *ws = arg;
	(void)fd;
	(void)what;

	if (ws->notify && ws->cb.on_close != NULL) {
		ws->reaping = 1;
		ws->cb.on_close(ws->arg, ws, ws->code, ws->reason);
	}
	ws_destroy(ws);
}

static void ws_send_frame(struct crab_ws *ws, int opcode, const void *data, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(ws->bev);
	unsigned char head[CRAB_WS_MAX_HEADER], key[4];
	struct evbuffer_iovec vec;

	if (ws->server) {
		evbuffer_add(out, head, crab_ws_frame_header(head, 1, opcode, len, NULL));
		if (len > 0)
			evbuffer_add(out, data, len);
		return;
	}
	/* A client masks every frame with a fresh key (§5.3), in place in the output. */
	crab_random_bytes(key, sizeof(key));
	evbuffer_add(out, head, crab_ws_frame_header(head, 1, opcode, len, key));
	if (len == 0)
		return;
	if (evbuffer_reserve_space(out, (ev_ssize_t)len, &vec, 1) != 1)
		fatalx("out of memory");
	memcpy(vec.iov_base, data, len);
	crab_ws_mask(vec.iov_base, len, key, 0);
	vec.iov_len = len;
	evbuffer_commit_space(out, &vec, 1);
}

/* A close frame: code (0: none) and as much of reason as fits, cut between characters. */
static void ws_send_close(struct crab_ws *ws, int code, const char *reason)
{
	unsigned char payload[CRAB_WS_MAX_CONTROL];
	size_t n = 0, rlen = reason != NULL ? strlen(reason) : 0;

	if (code != 0) {
		payload[0] = (unsigned char)(code >> 8);
		payload[1] = (unsigned char)code;
		if (rlen > sizeof(payload) - 2)
			rlen = sizeof(payload) - 2;
		while (rlen > 0 && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
			rlen--;
		if (rlen > 0 && !crab_ws_utf8_valid((const unsigned char *)reason, rlen))
			rlen = 0;
		if (rlen > 0)
			memcpy(payload + 2, reason, rlen);
		n = 2 + rlen;
	}
	ws_send_frame(ws, CRAB_WS_CLOSE, payload, n);
}

static void ws_wait(struct crab_ws *ws, int seconds)
{
	struct timeval tv = {seconds, 0};

	event_add(ws->timer, &tv);
}

/* Our FIN once our output is out (after close_notify on TLS); reading goes on. */
static void ws_half_close(struct crab_ws *ws)
{
	SSL *ssl = bufferevent_openssl_get_ssl(ws->bev);

	if (ws->half_closed)
		return;
	ws->half_closed = 1;
	if (ssl == NULL || SSL_shutdown(ssl) >= 0)
		shutdown(bufferevent_getfd(ws->bev), SHUT_WR);
	ERR_clear_error();
}

/* The close handshake is over (or the connection failed): flush, FIN, wait for theirs. */
static void ws_flush(struct crab_ws *ws)
{
	ws->state = WS_FLUSHING;
	event_del(ws->ping);
	ws_wait(ws, CLOSE_WAIT_SECONDS);
	if (evbuffer_get_length(bufferevent_get_output(ws->bev)) == 0)
		ws_half_close(ws);
}

static void ws_start_close(struct crab_ws *ws, int code, const char *reason)
{
	ws_send_close(ws, code, reason);
	ws_outcome(ws, code != 0 ? code : CRAB_WS_NO_STATUS, reason);
	ws->state = WS_CLOSING;
	event_del(ws->ping);
	ws_wait(ws, CLOSE_WAIT_SECONDS);
}

/* A protocol error: our close with its code, and nothing more is read (§7.1.7). */
static void ws_fail(struct crab_ws *ws, int code, const char *why)
{
	if (ws->state == WS_OPEN) {
		ws_send_close(ws, code, why);
		ws_outcome(ws, code, why);
	}
	ws_flush(ws);
}

static void ws_got_close(struct crab_ws *ws, int code, const char *reason)
{
	if (ws->state == WS_OPEN) /* echo the code (§5.5.1), not the reason */
		ws_send_close(ws, code == CRAB_WS_NO_STATUS ? 0 : code, NULL);
	ws_outcome(ws, code, reason);
	ws_flush(ws);
}

static void ws_event(struct crab_ws *ws, const struct crab_ws_event *ev)
{
	switch (ev->opcode) {
	case CRAB_WS_TEXT:
	case CRAB_WS_BINARY:
		/* after our close, messages are dropped */
		if (ws->state != WS_OPEN || ws->cb.on_message == NULL)
			return;
		ws->in_cb++;
		ws->cb.on_message(ws->arg, ws, ev->opcode == CRAB_WS_BINARY,
		    (const char *)ev->data, ev->len);
		ws->in_cb--;
		return;
	case CRAB_WS_PING:
		if (ws->state == WS_OPEN && crab_ws_backlog(ws) < PONG_MAX_BACKLOG)
			ws_send_frame(ws, CRAB_WS_PONG, ev->data, ev->len);
		return;
	case CRAB_WS_CLOSE:
		ws_got_close(ws, ev->code, ev->reason);
		return;
	default: /* a pong: its arrival has reset the idle timeout already */
		return;
	}
}

static void ws_read_frames(struct crab_ws *ws, struct evbuffer *in)
{
	/* the state is checked before in is touched: a callback may have freed the socket */
	while (ws->state == WS_OPEN || ws->state == WS_CLOSING) {
		struct evbuffer_iovec vec;
		struct crab_ws_event ev;
		const char *why;
		size_t used;
		int r, code;

		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			return;
		r = crab_ws_parser_feed(&ws->parser, vec.iov_base, vec.iov_len, &used, &ev, &code,
		    &why);
		evbuffer_drain(in, used);
		if (r < 0)
			ws_fail(ws, code, why);
		else if (r > 0)
			ws_event(ws, &ev);
	}
	if (ws->state == WS_FLUSHING)
		evbuffer_drain(in, evbuffer_get_length(in));
}

static void ws_arm_open(struct crab_ws *ws)
{
	struct timeval idle = {ws->limits.idle_timeout_s, 0};
	struct timeval ping = {ws->limits.ping_interval_s, 0};

	if (ws->limits.idle_timeout_s > 0)
		bufferevent_set_timeouts(ws->bev, &idle, &idle);
	else
		bufferevent_set_timeouts(ws->bev, NULL, NULL);
	if (ws->limits.ping_interval_s > 0)
		event_add(ws->ping, &ping);
}

static void ws_read_cb(struct bufferevent *bev, void *arg)
{
	struct crab_ws *ws = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (ws->state == WS_CONNECTING) {
		char err[256];
		int r = crab_ws_read_answer(in, ws->accept, err, sizeof(err));

		if (r == 0)
			return;
		if (r < 0) {
			ws_outcome(ws, CRAB_WS_ABNORMAL, err);
			ws_finish(ws);
			return;
		}
		ws->state = WS_OPEN;
		event_del(ws->timer);
		ws_arm_open(ws);
		if (ws->cb.on_open != NULL) {
			ws->in_cb++;
			ws->cb.on_open(ws->arg, ws);
			ws->in_cb--;
		}
	}
	ws_read_frames(ws, in);
}

static void ws_write_cb(struct bufferevent *bev, void *arg)
{
	struct crab_ws *ws = arg;

	if (ws->state == WS_FLUSHING && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ws_half_close(ws);
}

/* Why a connection being set up ended. */
static void ws_connect_failed(struct crab_ws *ws, short what)
{
	SSL *ssl = bufferevent_openssl_get_ssl(ws->bev);
	unsigned long e = ssl != NULL ? bufferevent_get_openssl_error(ws->bev) : 0;
	int sock_err = EVUTIL_SOCKET_ERROR();
	char why[200];

	if (e != 0) {
		ERR_error_string_n(e, why, sizeof(why));
		ws_outcome(ws, CRAB_WS_TLS_FAILED, "tls handshake failed: ");
		crab_strlcpy(ws->reason + strlen(ws->reason), why,
		    sizeof(ws->reason) - strlen(ws->reason));
	} else if (ssl != NULL && !SSL_is_init_finished(ssl) && (what & BEV_EVENT_EOF)) {
		ws_outcome(ws, CRAB_WS_TLS_FAILED, "connection closed in the tls handshake");
	} else if (what & BEV_EVENT_EOF) {
		ws_outcome(ws, CRAB_WS_ABNORMAL, "connection closed before the handshake's answer");
	} else {
		snprintf(why, sizeof(why), "cannot connect: %s",
		    evutil_socket_error_to_string(sock_err));
		ws_outcome(ws, CRAB_WS_ABNORMAL, why);
	}
	ERR_clear_error();
}

static void ws_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct crab_ws *ws = arg;

	if (what & BEV_EVENT_CONNECTED)
		return; /* the opening handshake, queued, goes out now */
	if (what & BEV_EVENT_TIMEOUT) {
		if (ws->state == WS_OPEN && (what & BEV_EVENT_READING)) {
			/* silent past the idle limit, pings unanswered */
			ws_start_close(ws, CRAB_WS_GOING_AWAY, "idle timeout");
			bufferevent_enable(bev, EV_READ); /* libevent stopped it at the timeout */
			return;
		}
		if (ws->state == WS_OPEN)
			ws_outcome(ws, CRAB_WS_ABNORMAL, "peer not reading");
		ws_finish(ws);
		return;
	}
	/* end of stream or error: in CLOSING and FLUSHING the outcome is known already */
	if (ws->state == WS_CONNECTING)
		ws_connect_failed(ws, what);
	else if (ws->state == WS_OPEN)
		ws_outcome(ws, CRAB_WS_ABNORMAL, (what & BEV_EVENT_EOF) ?
		    "connection closed without a close frame" : "connection lost");
	ERR_clear_error();
	ws_finish(ws);
}

static void ws_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_ws *ws = arg;
	(void)fd;
	(void)what;

	if (ws->state == WS_OPEN)
		ws_send_frame(ws, CRAB_WS_PING, NULL, 0);
}

static void ws_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_ws *ws = arg;
	(void)fd;
	(void)what;

	if (ws->state == WS_CONNECTING)
		ws_outcome(ws, CRAB_WS_ABNORMAL, "handshake timed out");
	ws_finish(ws); /* closing: the peer's close, or its FIN, did not come in time */
}

static struct crab_ws *ws_alloc(struct event_base *base, struct bufferevent *bev, int server,
    const struct crab_ws_limits *limits, const struct crab_ws_callbacks *cb, void *arg)
{
	struct crab_ws *ws = xcalloc(1, sizeof(*ws));

	ws->base = base;
	ws->bev = bev;
	ws->server = server;
	if (limits != NULL)
		ws->limits = *limits;
	if (ws->limits.max_message == 0)
		ws->limits.max_message = 1 << 20;
	if (ws->limits.idle_timeout_s == 0)
		ws->limits.idle_timeout_s = 60;
	if (ws->limits.ping_interval_s == 0)
		ws->limits.ping_interval_s = 20;
	if (cb != NULL)
		ws->cb = *cb;
	ws->arg = arg;
	ws->notify = 1;
	crab_ws_parser_init(&ws->parser, server, ws->limits.max_message);
	ws->ping = event_new(base, -1, EV_PERSIST, ws_ping_cb, ws);
	ws->timer = evtimer_new(base, ws_timer_cb, ws);
	ws->reap = event_new(base, -1, 0, ws_reap_cb, ws);
	if (ws->ping == NULL || ws->timer == NULL || ws->reap == NULL)
		fatalx("out of memory");
	bufferevent_setcb(bev, ws_read_cb, ws_write_cb, ws_event_cb, ws);
	bufferevent_setwatermark(bev, EV_READ | EV_WRITE, 0, 0);
	bufferevent_set_timeouts(bev, NULL, NULL);
	return ws;
}

struct crab_ws *crab_ws_new(struct event_base *base, struct bufferevent *bev, int server,
    const struct crab_ws_limits *limits, const struct crab_ws_callbacks *cb, void *arg)
{
	struct crab_ws *ws = ws_alloc(base, bev, server, limits, cb, arg);

	ws->state = WS_OPEN;
	ws_arm_open(ws);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	/* Frames that came with the handshake: read from the loop, not from this call. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	return ws;
}

struct crab_ws *crab_ws_new_connecting(struct event_base *base, struct bufferevent *bev,
    const char *accept, const struct crab_ws_limits *limits,
    const struct crab_ws_callbacks *cb, void *arg)
{
	struct crab_ws *ws = ws_alloc(base, bev, 0, limits, cb, arg);

	ws->state = WS_CONNECTING;
	crab_strlcpy(ws->accept, accept, sizeof(ws->accept));
	ws_wait(ws, ws->limits.idle_timeout_s > 0 ? ws->limits.idle_timeout_s :
	    HANDSHAKE_DEFAULT_SECONDS);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	return ws;
}

int crab_ws_send(struct crab_ws *ws, int binary, const void *data, size_t len)
{
	if (ws->state != WS_OPEN)
		return -1;
	if (!binary && !crab_ws_utf8_valid(data, len))
		return -1;
	ws_send_frame(ws, binary ? CRAB_WS_BINARY : CRAB_WS_TEXT, data, len);
	return 0;
}

int crab_ws_close(struct crab_ws *ws, int code, const char *reason)
{
	if (code != 0 && !crab_ws_close_code_sendable(code))
		return -1;
	if (ws->state == WS_CONNECTING) {
		ws_outcome(ws, code != 0 ? code : CRAB_WS_NO_STATUS, reason);
		ws_finish(ws);
		return 0;
	}
	if (ws->state != WS_OPEN)
		return -1;
	ws_start_close(ws, code, reason);
	return 0;
}

size_t crab_ws_backlog(const struct crab_ws *ws)
{
	return ws->bev != NULL ? evbuffer_get_length(bufferevent_get_output(ws->bev)) : 0;
}

SSL *crab_ws_ssl(struct crab_ws *ws)
{
	return ws->bev != NULL ? bufferevent_openssl_get_ssl(ws->bev) : NULL;
}

void crab_ws_free(struct crab_ws *ws)
{
	if (ws == NULL || ws->reaping)
		return;
	ws->notify = 0;
	if (ws->in_cb > 0) {
		/* inside its own on_message or on_open: the reap frees it after */
		ws_finish(ws);
		return;
	}
	ws_destroy(ws);
}

/* ---- the server's handshake ---- */

static int is_base64(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	    c == '+' || c == '/';
}

int crab_ws_accept_key(const char *client_key, char out[CRAB_WS_ACCEPT_LEN])
{
	static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
	unsigned char digest[EVP_MAX_MD_SIZE], buf[24 + sizeof(guid) - 1];
	unsigned int dlen = 0;

	/* 16 bytes in base64: 22 digits, then "==" */
	if (client_key == NULL || strlen(client_key) != 24 || strcmp(client_key + 22, "==") != 0)
		return -1;
	for (int i = 0; i < 22; i++) {
		if (!is_base64((unsigned char)client_key[i]))
			return -1;
	}
	memcpy(buf, client_key, 24);
	memcpy(buf + 24, guid, sizeof(guid) - 1);
	if (EVP_Digest(buf, sizeof(buf), digest, &dlen, EVP_sha1(), NULL) != 1 || dlen != 20)
		fatalx("sha-1 is not available");
	EVP_EncodeBlock((unsigned char *)out, digest, 20);
	return 0;
}

int crab_ws_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);

	while (list != NULL && *list != '\0') {
		const char *end = strchr(list, ','), *e;

		if (end == NULL)
			end = list + strlen(list);
		while (list < end && (*list == ' ' || *list == '\t'))
			list++;
		e = end;
		while (e > list && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - list) == tlen && strncasecmp(list, token, tlen) == 0)
			return 1;
		list = *end == ',' ? end + 1 : end;
	}
	return 0;
}

int crab_ws_check_upgrade(struct crab_http_request *req, const char **why)
{
	const char *version = crab_http_request_header(req, "Sec-WebSocket-Version");
	const char *key = crab_http_request_header(req, "Sec-WebSocket-Key");
	char accept[CRAB_WS_ACCEPT_LEN];

	if (strcmp(crab_http_request_method(req), "GET") != 0)
		*why = "a websocket handshake is a GET";
	else if (!crab_ws_has_token(crab_http_request_header(req, "Upgrade"), "websocket"))
		*why = "missing 'Upgrade: websocket'";
	else if (!crab_ws_has_token(crab_http_request_header(req, "Connection"), "upgrade"))
		*why = "missing 'Connection: upgrade'";
	else if (version == NULL || strcmp(version, "13") != 0)
		*why = "'Sec-WebSocket-Version' must be 13";
	else if (crab_ws_accept_key(key, accept) != 0)
		*why = "missing or malformed 'Sec-WebSocket-Key'";
	else
		return 0;
	return -1;
}

struct crab_ws *crab_ws_accept(struct crab_http_request *req,
    const struct crab_ws_limits *limits, const struct crab_ws_callbacks *cb, void *arg)
{
	char accept[CRAB_WS_ACCEPT_LEN], line[64];
	const char *headers[4], *why;
	struct bufferevent *bev;

	if (crab_ws_check_upgrade(req, &why) != 0) {
		struct crab_error err;

		crab_error_set(&err, "bad_request", NULL, "%s", why);
		crab_http_reply_header(req, "Sec-WebSocket-Version", "13");
		crab_http_reply_error(req, &err);
		return NULL;
	}
	crab_ws_accept_key(crab_http_request_header(req, "Sec-WebSocket-Key"), accept);
	snprintf(line, sizeof(line), "Sec-WebSocket-Accept: %s", accept);
	headers[0] = "Upgrade: websocket";
	headers[1] = "Connection: Upgrade";
	headers[2] = line;
	headers[3] = NULL;
	if ((bev = crab_http_request_upgrade(req, headers)) == NULL)
		return NULL;
	return crab_ws_new(bufferevent_get_base(bev), bev, 1, limits, cb, arg);
}
