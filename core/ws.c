/* ws.c: RFC 6455 frames, message reassembly, and the connection on a bufferevent; the
 * server's side of the opening handshake. The client's is ws_client.c. */
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
#define MSG_KEEP_CAP (64 << 10)    /* a larger message buffer is not kept between messages */

/* ---- frame headers ---- */

static int opcode_known(int op)
{
	return op == CRAB_WS_CONT || op == CRAB_WS_TEXT || op == CRAB_WS_BINARY ||
	    op == CRAB_WS_CLOSE || op == CRAB_WS_PING || op == CRAB_WS_PONG;
}

static int header_fail(int *code, const char **why, const char *what)
{
	*code = CRAB_WS_PROTOCOL_ERROR;
	*why = what;
	return -1;
}

/* The whole header's length once its first two bytes are known, else 2. */
static size_t header_size(const unsigned char *buf, size_t n)
{
	size_t len7;

	if (n < 2)
		return 2;
	len7 = buf[1] & 0x7f;
	return 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + ((buf[1] & 0x80) ? 4 : 0);
}

int crab_ws_parse_header(const unsigned char *buf, size_t n, int server,
    struct crab_ws_frame *f, int *code, const char **why)
{
	int fin, op, masked;
	size_t len7, need, at = 2;
	uint64_t len;

	if (n < 1)
		return 0;
	fin = buf[0] >> 7;
	op = buf[0] & 0x0f;
	if (buf[0] & 0x70)
		return header_fail(code, why, "reserved bits set");
	if (!opcode_known(op))
		return header_fail(code, why, "unknown opcode");
	if (op >= CRAB_WS_CLOSE && !fin)
		return header_fail(code, why, "fragmented control frame");
	if (n < 2)
		return 0;
	masked = buf[1] >> 7;
	len7 = buf[1] & 0x7f;
	if (op >= CRAB_WS_CLOSE && len7 > CRAB_WS_MAX_CONTROL)
		return header_fail(code, why, "control frame over 125 bytes");
	if (server && !masked)
		return header_fail(code, why, "unmasked frame from a client");
	if (!server && masked)
		return header_fail(code, why, "masked frame from a server");
	if (len7 == 127 && n >= 3 && (buf[2] & 0x80))
		return header_fail(code, why, "64-bit length with its top bit set");
	need = header_size(buf, n);
	if (n < need)
		return 0;
	if (len7 == 126) {
		len = (uint64_t)buf[2] << 8 | buf[3];
		at = 4;
	} else if (len7 == 127) {
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | buf[2 + i];
		at = 10;
	} else {
		len = len7;
	}
	f->fin = fin;
	f->rsv = 0;
	f->opcode = op;
	f->masked = masked;
	f->len = len;
	memset(f->key, 0, sizeof(f->key));
	if (masked)
		memcpy(f->key, buf + at, 4);
	return (int)need;
}

size_t crab_ws_frame_header(unsigned char out[CRAB_WS_MAX_HEADER], int fin, int opcode,
    uint64_t len, const unsigned char *key)
{
	size_t n = 2;

	out[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
	out[1] = key != NULL ? 0x80 : 0;
	if (len < 126) {
		out[1] |= (unsigned char)len;
	} else if (len <= 0xffff) {
		out[1] |= 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		n = 4;
	} else {
		out[1] |= 127;
		for (int i = 0; i < 8; i++)
			out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		n = 10;
	}
	if (key != NULL) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	return n;
}

void crab_ws_mask(unsigned char *buf, size_t n, const unsigned char key[4], uint64_t offset)
{
	unsigned char k[4];

	/* the key turned to where buf starts, so the loop below has a fixed pattern */
	for (int i = 0; i < 4; i++)
		k[i] = key[(offset + (uint64_t)i) & 3];
	for (size_t i = 0; i < n; i++)
		buf[i] ^= k[i & 3];
}

/* ---- UTF-8 (Unicode Table 3-7, well-formed byte sequences) ---- */

int crab_ws_utf8_feed(struct crab_ws_utf8 *st, const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (st->need > 0) {
			if (c < st->lo || c > st->hi)
				return -1;
			st->need--;
			st->lo = 0x80;
			st->hi = 0xbf;
			continue;
		}
		if (c < 0x80)
			continue;
		st->lo = 0x80;
		st->hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			st->need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			st->need = 2;
			if (c == 0xe0)
				st->lo = 0xa0; /* no overlong */
			else if (c == 0xed)
				st->hi = 0x9f; /* no surrogate */
		} else if (c >= 0xf0 && c <= 0xf4) {
			st->need = 3;
			if (c == 0xf0)
				st->lo = 0x90; /* no overlong */
			else if (c == 0xf4)
				st->hi = 0x8f; /* nothing above U+10FFFF */
		} else {
			return -1; /* a continuation, C0, C1, or F5 and above */
		}
	}
	return 0;
}

int crab_ws_utf8_valid(const unsigned char *s, size_t n)
{
	struct crab_ws_utf8 st = {0, 0, 0};

	return crab_ws_utf8_feed(&st, s, n) == 0 && st.need == 0;
}

/* ---- reassembly ---- */

/* Codes a close frame may carry (§7.4): the registered ones and the private ranges. */
static int close_code_sendable(int c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

void crab_ws_parser_init(struct crab_ws_parser *p, int server, size_t max_message)
{
	memset(p, 0, sizeof(*p));
	p->server = server;
	p->max_message = max_message;
}

void crab_ws_parser_release(struct crab_ws_parser *p)
{
	free(p->msg);
	memset(p, 0, sizeof(*p));
}

static int parser_fail(struct crab_ws_parser *p, int code, const char *why, int *codep,
    const char **whyp)
{
	p->failed = code;
	p->why = why;
	*codep = code;
	*whyp = why;
	return -1;
}

/* The message handed out last is done with. */
static void message_reset(struct crab_ws_parser *p)
{
	p->msg_ready = 0;
	p->msg_opcode = 0;
	p->msg_len = 0;
	memset(&p->utf8, 0, sizeof(p->utf8));
	if (p->msg_cap > MSG_KEEP_CAP) {
		free(p->msg);
		p->msg = NULL;
		p->msg_cap = 0;
	}
}

/* A frame's header is read: what it means for the message under way. */
static int frame_start(struct crab_ws_parser *p, int *code, const char **why)
{
	const struct crab_ws_frame *f = &p->frame;

	if (f->opcode >= CRAB_WS_CLOSE) {
		p->ctl_len = 0;
		return 0;
	}
	if (f->opcode == CRAB_WS_CONT) {
		if (p->msg_opcode == 0)
			return parser_fail(p, CRAB_WS_PROTOCOL_ERROR,
			    "continuation without a message", code, why);
	} else {
		if (p->msg_opcode != 0)
			return parser_fail(p, CRAB_WS_PROTOCOL_ERROR,
			    "data frame inside a fragmented message", code, why);
		p->msg_opcode = f->opcode;
	}
	/* Refused on what the header declares, before any of the payload is kept. */
	if (f->len > p->max_message - p->msg_len)
		return parser_fail(p, CRAB_WS_TOO_BIG, "message too big", code, why);
	return 0;
}

static void msg_reserve(struct crab_ws_parser *p, size_t need)
{
	size_t cap = p->msg_cap ? p->msg_cap : 256;

	if (need <= p->msg_cap)
		return;
	while (cap < need)
		cap *= 2;
	/* need is at most max_message + 1 (the NUL): so is the buffer */
	if (cap > p->max_message + 1)
		cap = p->max_message + 1;
	p->msg = xrealloc(p->msg, cap);
	p->msg_cap = cap;
}

static int payload_add(struct crab_ws_parser *p, const unsigned char *buf, size_t n, int *code,
    const char **why)
{
	const struct crab_ws_frame *f = &p->frame;
	unsigned char *to;

	if (f->opcode >= CRAB_WS_CLOSE) {
		to = p->ctl + p->ctl_len;
		p->ctl_len += n;
	} else {
		msg_reserve(p, p->msg_len + n + 1);
		to = p->msg + p->msg_len;
		p->msg_len += n;
	}
	memcpy(to, buf, n);
	if (f->masked)
		crab_ws_mask(to, n, f->key, p->done);
	/* text is checked as it comes: a bad byte fails the message at once */
	if (f->opcode < CRAB_WS_CLOSE && p->msg_opcode == CRAB_WS_TEXT &&
	    crab_ws_utf8_feed(&p->utf8, to, n) != 0)
		return parser_fail(p, CRAB_WS_INVALID_DATA, "text is not UTF-8", code, why);
	return 0;
}

/* A frame's payload is whole: 1 with an event, 0 for a fragment, or -1. */
static int frame_end(struct crab_ws_parser *p, struct crab_ws_event *ev, int *code,
    const char **why)
{
	const struct crab_ws_frame *f = &p->frame;

	memset(ev, 0, sizeof(*ev));
	if (f->opcode >= CRAB_WS_CLOSE) {
		p->ctl[p->ctl_len] = '\0';
		ev->opcode = f->opcode;
		ev->data = p->ctl;
		ev->len = p->ctl_len;
		ev->reason = "";
		if (f->opcode != CRAB_WS_CLOSE)
			return 1;
		ev->code = CRAB_WS_NO_STATUS;
		if (p->ctl_len == 1)
			return parser_fail(p, CRAB_WS_PROTOCOL_ERROR, "close frame of one byte",
			    code, why);
		if (p->ctl_len >= 2) {
			ev->code = p->ctl[0] << 8 | p->ctl[1];
			ev->reason = (const char *)p->ctl + 2;
			if (!close_code_sendable(ev->code))
				return parser_fail(p, CRAB_WS_PROTOCOL_ERROR,
				    "close code not to be sent", code, why);
			if (!crab_ws_utf8_valid(p->ctl + 2, p->ctl_len - 2))
				return parser_fail(p, CRAB_WS_INVALID_DATA,
				    "close reason is not UTF-8", code, why);
		}
		return 1;
	}
	if (!f->fin)
		return 0;
	if (p->msg_opcode == CRAB_WS_TEXT && p->utf8.need != 0)
		return parser_fail(p, CRAB_WS_INVALID_DATA, "text is not UTF-8", code, why);
	msg_reserve(p, p->msg_len + 1);
	p->msg[p->msg_len] = '\0';
	ev->opcode = p->msg_opcode;
	ev->data = p->msg;
	ev->len = p->msg_len;
	p->msg_ready = 1;
	return 1;
}

int crab_ws_parser_feed(struct crab_ws_parser *p, const unsigned char *buf, size_t n,
    size_t *used, struct crab_ws_event *ev, int *code, const char **why)
{
	size_t pos = 0;
	int r;

	*used = 0;
	if (p->failed) {
		*code = p->failed;
		*why = p->why;
		return -1;
	}
	if (p->msg_ready)
		message_reset(p);
	for (;;) {
		uint64_t left;
		size_t take;

		if (!p->in_payload) {
			/* The header may come in pieces: gather it, no further than itself. */
			while ((r = crab_ws_parse_header(p->head, p->head_len, p->server, &p->frame,
			    code, why)) == 0) {
				take = header_size(p->head, p->head_len) - p->head_len;
				if (take > n - pos)
					take = n - pos;
				if (take == 0) {
					*used = pos;
					return 0;
				}
				memcpy(p->head + p->head_len, buf + pos, take);
				p->head_len += take;
				pos += take;
			}
			*used = pos;
			if (r < 0)
				return parser_fail(p, *code, *why, code, why);
			p->head_len = 0;
			if (frame_start(p, code, why) != 0)
				return -1;
			p->in_payload = 1;
			p->done = 0;
		}
		left = p->frame.len - p->done;
		take = left < n - pos ? (size_t)left : n - pos;
		if (take > 0) {
			r = payload_add(p, buf + pos, take, code, why);
			pos += take;
			p->done += take;
			*used = pos;
			if (r != 0)
				return -1;
		}
		if (p->done < p->frame.len) {
			*used = pos;
			return 0;
		}
		p->in_payload = 0;
		*used = pos;
		if ((r = frame_end(p, ev, code, why)) != 0)
			return r;
	}
}

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
	if (code != 0 && !close_code_sendable(code))
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
