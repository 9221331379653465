/* ws_frame.c: RFC 6455 without sockets: frame headers, masking, UTF-8 validation and
 * message reassembly (ws.h). What the fuzzer and the parser's unit tests drive. */
#include "ws.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

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
int crab_ws_close_code_sendable(int c)
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
			if (!crab_ws_close_code_sendable(ev->code))
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
