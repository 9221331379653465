/* test_ws.c: the WebSocket layer. First the pure parts (frame headers, reassembly, UTF-8,
 * the accept key, the client's check of the answer), then real connections on loopback:
 * a crab_http_server whose handler upgrades GET /ws to an echoing crab_ws, driven by
 * crab_ws_connect and by raw sockets, all in this thread's loop; plain, then TLS. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_server.h"
#include "core/identity.h"
#include "core/tls.h"
#include "core/ws.h"
#include "t/unit/unit.h"

/* ---- building frames ---- */

static const unsigned char KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A frame into out (room enough): masked with KEY when masked. Returns its length. */
static size_t mkframe(unsigned char *out, int fin, int op, const void *payload, size_t len,
    int masked)
{
	size_t n = crab_ws_frame_header(out, fin, op, len, masked ? KEY : NULL);

	memcpy(out + n, payload, len);
	if (masked)
		crab_ws_mask(out + n, len, KEY, 0);
	return n + len;
}

/* Feeds buf whole, or in pieces of step bytes; collects the events' opcodes and the last
 * message. Returns the close code of an error, or 0. */
struct seen {
	int ops[16];
	int nops;
	char msg[256];
	size_t msg_len;
	int close_code;
	char reason[126];
};

static int feed_all(struct crab_ws_parser *p, const unsigned char *buf, size_t n, size_t step,
    struct seen *s)
{
	size_t pos = 0;

	memset(s, 0, sizeof(*s));
	while (pos < n) {
		size_t chunk = step == 0 || n - pos < step ? n - pos : step, off = 0;

		while (off < chunk) {
			struct crab_ws_event ev;
			const char *why;
			size_t used;
			int code, r;

			r = crab_ws_parser_feed(p, buf + pos + off, chunk - off, &used, &ev, &code, &why);
			off += used;
			if (r < 0)
				return code;
			if (r == 0)
				break;
			if (s->nops < 16)
				s->ops[s->nops++] = ev.opcode;
			if (ev.opcode == CRAB_WS_TEXT || ev.opcode == CRAB_WS_BINARY) {
				s->msg_len = ev.len;
				memcpy(s->msg, ev.data, ev.len < sizeof(s->msg) ? ev.len : sizeof(s->msg));
			}
			if (ev.opcode == CRAB_WS_CLOSE) {
				s->close_code = ev.code;
				snprintf(s->reason, sizeof(s->reason), "%s", ev.reason);
			}
		}
		pos += chunk;
	}
	return 0;
}

/* One buffer through a fresh parser: the error code or 0. */
static int parse_one(int server, size_t max, const unsigned char *buf, size_t n, struct seen *s)
{
	struct crab_ws_parser p;
	int rc;

	crab_ws_parser_init(&p, server, max);
	rc = feed_all(&p, buf, n, 0, s);
	crab_ws_parser_release(&p);
	return rc;
}

static void test_headers(void)
{
	unsigned char b[32];
	struct crab_ws_frame f;
	const char *why;
	int code = 0;

	b[0] = 0x81;
	b[1] = 0x85;
	memcpy(b + 2, KEY, 4);
	CHECK_INT(crab_ws_parse_header(b, 6, 1, &f, &code, &why), 6, "a masked 7-bit header is 6 bytes");
	CHECK(f.fin && f.opcode == CRAB_WS_TEXT && f.masked && f.len == 5 &&
	    memcmp(f.key, KEY, 4) == 0, "with fin, opcode, mask, key and length");
	CHECK_INT(crab_ws_parse_header(b, 5, 1, &f, &code, &why), 0, "five of its bytes need more");
	CHECK_INT(crab_ws_parse_header(b, 1, 1, &f, &code, &why), 0, "so does one");

	b[0] = 0x82;
	b[1] = 126;
	b[2] = 0x01;
	b[3] = 0x00;
	CHECK_INT(crab_ws_parse_header(b, 4, 0, &f, &code, &why), 4, "a 16-bit length header");
	CHECK(f.len == 256 && !f.masked, "reads 256, unmasked");
	b[2] = 0;
	b[3] = 5;
	CHECK(crab_ws_parse_header(b, 4, 0, &f, &code, &why) == 4 && f.len == 5,
	    "a non-minimal 16-bit length is accepted");
	b[1] = 127;
	memset(b + 2, 0, 8);
	b[5] = 0x01; /* 2^32 */
	b[9] = 0x07;
	CHECK(crab_ws_parse_header(b, 10, 0, &f, &code, &why) == 10 && f.len == 0x100000007ULL,
	    "a 64-bit length header");
	CHECK_INT(crab_ws_parse_header(b, 9, 0, &f, &code, &why), 0, "nine of its bytes need more");
	b[2] = 0x80;
	code = 0;
	CHECK(crab_ws_parse_header(b, 3, 0, &f, &code, &why) == -1 && code == 1002,
	    "a 64-bit length with its top bit set is 1002, seen on its first byte");

	/* every header no frame may have: 1002 */
	{
		static const struct {
			unsigned char b0, b1;
			int server;
			const char *what;
		} bad[] = {
			{0xc1, 0x80, 1, "RSV1 set is 1002"},
			{0xa1, 0x80, 1, "RSV2 set is 1002"},
			{0x91, 0x80, 1, "RSV3 set is 1002"},
			{0x83, 0x80, 1, "opcode 3 is 1002"},
			{0x8b, 0x80, 1, "opcode 0xB is 1002"},
			{0x09, 0x80, 1, "a fragmented ping is 1002"},
			{0x88, 0xfe, 1, "a close longer than 125 bytes is 1002"},
			{0x81, 0x05, 1, "a server receiving an unmasked frame is 1002"},
			{0x81, 0x85, 0, "a client receiving a masked frame is 1002"},
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			b[0] = bad[i].b0;
			b[1] = bad[i].b1;
			code = 0;
			why = NULL;
			CHECK(crab_ws_parse_header(b, 2, bad[i].server, &f, &code, &why) == -1 &&
			    code == 1002 && why != NULL, bad[i].what);
		}
	}
}

static void test_mask_and_lengths(void)
{
	unsigned char buf[80000], orig[70000];
	struct seen s;
	size_t n;

	for (size_t i = 0; i < sizeof(orig); i++)
		orig[i] = (unsigned char)(i * 7 + 3);
	memcpy(buf, orig, 1000);
	crab_ws_mask(buf, 1000, KEY, 0);
	CHECK(memcmp(buf, orig, 1000) != 0, "masking changes the bytes");
	crab_ws_mask(buf, 3, KEY, 0);
	crab_ws_mask(buf + 3, 997, KEY, 3);
	CHECK(memcmp(buf, orig, 1000) == 0, "masking again in two pieces at offsets gives them back");

	n = mkframe(buf, 1, CRAB_WS_BINARY, orig, 100, 1);
	CHECK(n == 106 && parse_one(1, 1 << 20, buf, n, &s) == 0 && s.msg_len == 100 &&
	    memcmp(s.msg, orig, 100) == 0, "a masked 7-bit frame round-trips through the server's parser");
	n = mkframe(buf, 1, CRAB_WS_BINARY, orig, 300, 1);
	CHECK(n == 308 && parse_one(1, 1 << 20, buf, n, &s) == 0 && s.msg_len == 300 &&
	    memcmp(s.msg, orig, 256) == 0, "a 16-bit length frame round-trips");
	{
		struct crab_ws_parser p;
		struct crab_ws_event ev;
		const char *why;
		size_t used;
		int code;

		n = mkframe(buf, 1, CRAB_WS_BINARY, orig, sizeof(orig), 0);
		crab_ws_parser_init(&p, 0, 1 << 20);
		CHECK(n == sizeof(orig) + 10 &&
		    crab_ws_parser_feed(&p, buf, n, &used, &ev, &code, &why) == 1 && used == n &&
		    ev.len == sizeof(orig) && memcmp(ev.data, orig, sizeof(orig)) == 0 &&
		    ev.data[ev.len] == '\0',
		    "a 64-bit length frame (unmasked, to a client) round-trips, NUL after it");
		crab_ws_parser_release(&p);
	}
}

static void test_reassembly(void)
{
	unsigned char buf[512];
	size_t n = 0;
	struct seen s;
	int ok = 1;

	/* "Hel", a ping, "lo", a pong, "!" */
	n += mkframe(buf + n, 0, CRAB_WS_TEXT, "Hel", 3, 1);
	n += mkframe(buf + n, 1, CRAB_WS_PING, "p1", 2, 1);
	n += mkframe(buf + n, 0, CRAB_WS_CONT, "lo", 2, 1);
	n += mkframe(buf + n, 1, CRAB_WS_PONG, "", 0, 1);
	n += mkframe(buf + n, 1, CRAB_WS_CONT, "!", 1, 1);
	n += mkframe(buf + n, 1, CRAB_WS_BINARY, "\0b", 2, 1);
	for (size_t step = 0; step <= 7; step++) {
		struct crab_ws_parser p;

		crab_ws_parser_init(&p, 1, 1 << 20);
		if (feed_all(&p, buf, n, step, &s) != 0 || s.nops != 4 || s.ops[0] != CRAB_WS_PING ||
		    s.ops[1] != CRAB_WS_PONG || s.ops[2] != CRAB_WS_TEXT || s.ops[3] != CRAB_WS_BINARY)
			ok = 0;
		crab_ws_parser_release(&p);
	}
	CHECK(ok, "fragments reassemble around ping and pong, in any split down to one byte");

	{
		struct crab_ws_parser p;
		struct crab_ws_event ev;
		const char *why;
		size_t used, off = 0;
		int code, r;

		crab_ws_parser_init(&p, 1, 1 << 20);
		r = crab_ws_parser_feed(&p, buf, n, &used, &ev, &code, &why);
		CHECK(r == 1 && ev.opcode == CRAB_WS_PING && ev.len == 2 && memcmp(ev.data, "p1", 2) == 0,
		    "the ping inside the message comes out first");
		off += used;
		crab_ws_parser_feed(&p, buf + off, n - off, &used, &ev, &code, &why);
		off += used;
		r = crab_ws_parser_feed(&p, buf + off, n - off, &used, &ev, &code, &why);
		CHECK(r == 1 && ev.opcode == CRAB_WS_TEXT && ev.len == 6 &&
		    strcmp((const char *)ev.data, "Hello!") == 0, "then the whole text \"Hello!\"");
		crab_ws_parser_release(&p);
	}

	n = mkframe(buf, 1, CRAB_WS_CONT, "x", 1, 1);
	CHECK_INT(parse_one(1, 1 << 20, buf, n, &s), 1002, "a continuation without a message is 1002");
	n = mkframe(buf, 0, CRAB_WS_TEXT, "a", 1, 1);
	n += mkframe(buf + n, 1, CRAB_WS_TEXT, "b", 1, 1);
	CHECK_INT(parse_one(1, 1 << 20, buf, n, &s), 1002,
	    "a new data frame inside a fragmented message is 1002");
	n = mkframe(buf, 1, CRAB_WS_TEXT, "a", 1, 0);
	CHECK_INT(parse_one(1, 1 << 20, buf, n, &s), 1002, "an unmasked frame to a server is 1002");
	n = mkframe(buf, 1, CRAB_WS_TEXT, "a", 1, 1);
	CHECK_INT(parse_one(0, 1 << 20, buf, n, &s), 1002, "a masked frame to a client is 1002");
	buf[0] = 0x89;
	buf[1] = 0x80 | 126;
	buf[2] = 0;
	buf[3] = 126;
	memcpy(buf + 4, KEY, 4);
	CHECK_INT(parse_one(1, 1 << 20, buf, 8, &s), 1002, "a ping of 126 bytes is 1002");
}

static void test_limits(void)
{
	unsigned char buf[512], payload[200];
	struct crab_ws_parser p;
	struct crab_ws_event ev;
	const char *why;
	size_t n, used;
	int code = 0, r;
	struct seen s;

	memset(payload, 'x', sizeof(payload));
	n = mkframe(buf, 1, CRAB_WS_TEXT, payload, 100, 1);
	CHECK(parse_one(1, 100, buf, n, &s) == 0 && s.msg_len == 100,
	    "a message of exactly the limit passes");
	crab_ws_parser_init(&p, 1, 100);
	n = mkframe(buf, 1, CRAB_WS_TEXT, payload, 101, 1);
	r = crab_ws_parser_feed(&p, buf, 8, &used, &ev, &code, &why);
	CHECK(r == -1 && code == 1009 && used == 6,
	    "one byte over is 1009, on the header alone, before any payload is kept");
	CHECK(p.msg_cap == 0, "nothing was allocated for it");
	r = crab_ws_parser_feed(&p, buf + 6, n - 6, &used, &ev, &code, &why);
	CHECK(r == -1 && code == 1009 && used == 0, "and the parser stays failed");
	crab_ws_parser_release(&p);

	n = mkframe(buf, 0, CRAB_WS_BINARY, payload, 60, 1);
	n += mkframe(buf + n, 1, CRAB_WS_CONT, payload, 41, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1009, "fragments adding up over the limit are 1009");
	n = mkframe(buf, 0, CRAB_WS_BINARY, payload, 60, 1);
	n += mkframe(buf + n, 1, CRAB_WS_PING, payload, 125, 1);
	n += mkframe(buf + n, 1, CRAB_WS_CONT, payload, 40, 1);
	CHECK(parse_one(1, 100, buf, n, &s) == 0 && s.msg_len == 100,
	    "control frames in between do not count toward the message");
}

static void test_utf8(void)
{
	static const struct {
		const char *s;
		int valid;
		const char *what;
	} cases[] = {
		{"plain ascii", 1, "ASCII is valid"},
		{"h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf", 1,
		 "two-, three- and four-byte sequences up to U+10FFFF are valid"},
		{"\xed\x9f\xbf \xee\x80\x80", 1, "U+D7FF and U+E000, around the surrogates, are valid"},
		{"\xc0\xaf", 0, "an overlong two-byte '/' is not"},
		{"\xc1\xbf", 0, "an overlong C1 lead is not"},
		{"\xe0\x80\xaf", 0, "an overlong three-byte sequence is not"},
		{"\xf0\x80\x80\xaf", 0, "an overlong four-byte sequence is not"},
		{"\xed\xa0\x80", 0, "a high surrogate is not"},
		{"\xed\xbf\xbf", 0, "a low surrogate is not"},
		{"\xf4\x90\x80\x80", 0, "U+110000 is not"},
		{"\xf5\x80\x80\x80", 0, "an F5 lead is not"},
		{"\xe2\x82", 0, "a truncated sequence is not"},
		{"a\x80", 0, "a lone continuation byte is not"},
		{"\xc3\x28", 0, "a lead followed by ASCII is not"},
	};
	struct crab_ws_utf8 st = {0, 0, 0};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_INT(crab_ws_utf8_valid((const unsigned char *)cases[i].s, strlen(cases[i].s)),
		    cases[i].valid, cases[i].what);
	CHECK(crab_ws_utf8_feed(&st, (const unsigned char *)"\xf0\x9d", 2) == 0 && st.need == 2 &&
	    crab_ws_utf8_feed(&st, (const unsigned char *)"\x84\x9e", 2) == 0 && st.need == 0,
	    "the incremental check carries a sequence across pieces");
}

static void test_text_frames(void)
{
	unsigned char buf[256];
	size_t n;
	struct seen s;

	n = mkframe(buf, 0, CRAB_WS_TEXT, "caf\xc3", 4, 1);
	n += mkframe(buf + n, 1, CRAB_WS_CONT, "\xa9", 1, 1);
	CHECK(parse_one(1, 100, buf, n, &s) == 0 && s.msg_len == 5,
	    "a character split between fragments is valid text");
	n = mkframe(buf, 1, CRAB_WS_TEXT, "caf\xc3", 4, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1007, "text ending inside a character is 1007");
	n = mkframe(buf, 0, CRAB_WS_TEXT, "\xc0\xaf", 2, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1007,
	    "an overlong in a first fragment is 1007 before the message ends");
	n = mkframe(buf, 1, CRAB_WS_TEXT, "\xed\xa0\x80", 3, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1007, "a surrogate in text is 1007");
	n = mkframe(buf, 1, CRAB_WS_BINARY, "\xed\xa0\x80", 3, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 0, "binary is not checked");

	n = mkframe(buf, 1, CRAB_WS_CLOSE, "\x03\xe8" "bye", 5, 1);
	CHECK(parse_one(1, 100, buf, n, &s) == 0 && s.close_code == 1000 && strcmp(s.reason, "bye") == 0,
	    "a close frame gives its code and reason");
	n = mkframe(buf, 1, CRAB_WS_CLOSE, "", 0, 1);
	CHECK(parse_one(1, 100, buf, n, &s) == 0 && s.close_code == 1005,
	    "an empty close frame reads as 1005");
	n = mkframe(buf, 1, CRAB_WS_CLOSE, "\x03", 1, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1002, "a close frame of one byte is 1002");
	n = mkframe(buf, 1, CRAB_WS_CLOSE, "\x03\xed", 2, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1002, "a close frame carrying 1005 is 1002");
	n = mkframe(buf, 1, CRAB_WS_CLOSE, "\x03\xe7", 2, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1002, "a close frame carrying 999 is 1002");
	n = mkframe(buf, 1, CRAB_WS_CLOSE, "\x0f\xa0" "\xff", 3, 1);
	CHECK_INT(parse_one(1, 100, buf, n, &s), 1007, "a close reason that is not UTF-8 is 1007");
}

static void test_accept_key(void)
{
	char out[CRAB_WS_ACCEPT_LEN];

	/* RFC 6455 §1.3: SHA-1 b37a4f2c c0624f16 90f64606 cf385945 b2bec4ea, in base64 */
	CHECK(crab_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out) == 0 &&
	    strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "the accept key of RFC 6455's example");
	CHECK(crab_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=", out) == -1, "a 23-character key is refused");
	CHECK(crab_ws_accept_key("dGhlIHNhbXBsZSBub25j!Q==", out) == -1, "a key that is not base64 is refused");
	CHECK(crab_ws_accept_key("dGhlIHNhbXBsZSBub25jZQZZ", out) == -1,
	    "a key of other than 16 bytes is refused");
	CHECK(crab_ws_accept_key(NULL, out) == -1, "no key is refused");
	CHECK(crab_ws_has_token("keep-alive, Upgrade", "upgrade") &&
	    crab_ws_has_token("upgrade", "upgrade") && !crab_ws_has_token("upgraded", "upgrade") &&
	    !crab_ws_has_token(NULL, "upgrade"), "header token lists are read case-insensitively");
}

static void test_read_answer(void)
{
	const char *accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
	struct evbuffer *in = evbuffer_new();
	char err[256] = "", *big;

	evbuffer_add_printf(in, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
	    "Connection: upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n\x81\x01x", accept);
	CHECK(crab_ws_read_answer(in, accept, err, sizeof(err)) == 1 && evbuffer_get_length(in) == 3,
	    "a good 101 is taken, the frame after it left in the buffer");
	evbuffer_drain(in, evbuffer_get_length(in));

	evbuffer_add_printf(in, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAMBiTxaQ9kWlbGaTzbK0xGo=\r\n\r\n");
	CHECK(crab_ws_read_answer(in, accept, err, sizeof(err)) == -1 && strstr(err, "Accept") != NULL,
	    "a wrong Sec-WebSocket-Accept is refused");
	evbuffer_drain(in, evbuffer_get_length(in));

	evbuffer_add_printf(in, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 18\r\n\r\n{\"error\":");
	CHECK_INT(crab_ws_read_answer(in, accept, err, sizeof(err)), 0,
	    "a refusal waits for its short body");
	evbuffer_add_printf(in, "\"nope\"}\r\n");
	CHECK(crab_ws_read_answer(in, accept, err, sizeof(err)) == -1 && strstr(err, "401") != NULL &&
	    strstr(err, "\"nope\"") != NULL, "and quotes status and body in the error");
	evbuffer_drain(in, evbuffer_get_length(in));

	evbuffer_add_printf(in, "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ");
	CHECK_INT(crab_ws_read_answer(in, accept, err, sizeof(err)), 0, "an unfinished head needs more");
	big = malloc(17000);
	memset(big, 'a', 17000);
	evbuffer_add(in, big, 17000);
	CHECK(crab_ws_read_answer(in, accept, err, sizeof(err)) == -1 && strstr(err, "16384") != NULL,
	    "a head over 16 KiB is refused");
	free(big);
	evbuffer_free(in);
}

/* ---- connections ---- */

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

static void test_echo(void)
{
	struct side c;
	char big[64 << 10];
	int before = nservers;

	CHECK(client(&c, "ws", NULL, "/ws", NULL) != NULL, "crab_ws_connect starts a connection");
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	CHECK(c.opens == 1 && c.closes == 0, "on_open: the server upgraded GET /ws");
	CHECK(nservers == before + 1 && strcmp(servers[before].auth, "Bearer t0ken") == 0,
	    "the handler saw the extra Authorization header");
	CHECK(crab_http_server_connections(srv) == 0 && crab_http_server_inflight(srv) == 0,
	    "the upgraded connection has left the HTTP server's count");
	CHECK(crab_ws_ssl(c.ws) == NULL, "a ws:// connection has no TLS");

	crab_ws_send(c.ws, 0, "hello", 5);
	PUMP_UNTIL(c.messages > 0, 3);
	CHECK(c.messages == 1 && !c.binary && c.last_len == 5 && strcmp(c.last, "hello") == 0,
	    "a text message comes back");
	CHECK(crab_ws_send(c.ws, 0, "\xc0\xaf", 2) == -1, "sending text that is not UTF-8 fails");

	crab_ws_send(c.ws, 1, "a\0b", 3);
	PUMP_UNTIL(c.messages > 1, 3);
	CHECK(c.messages == 2 && c.binary && c.last_len == 3 && memcmp(c.last, "a\0b", 3) == 0,
	    "a binary message with a NUL comes back whole");

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	crab_ws_send(c.ws, 0, big, sizeof(big));
	CHECK(crab_ws_backlog(c.ws) > 0, "a large message shows in the backlog until written");
	PUMP_UNTIL(c.messages > 2, 5);
	CHECK(c.messages == 3 && c.last_len == sizeof(big) && memcmp(c.last, big, sizeof(big)) == 0,
	    "a message of exactly the server's limit (64 KiB) comes back whole");
	CHECK_INT(crab_ws_backlog(c.ws), 0, "and the backlog is empty again");

	crab_ws_close(c.ws, 1000, "bye");
	CHECK(crab_ws_send(c.ws, 0, "x", 1) == -1 && crab_ws_close(c.ws, 1000, NULL) == -1,
	    "a closing ws refuses sends and a second close");
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 1000, "the client's close handshake ends with 1000 on its side");
	CHECK(servers[before].closes == 1 && servers[before].code == 1000 &&
	    strcmp(servers[before].reason, "bye") == 0, "and with 1000 and the reason on the server's");
	pump_for(0.1);
	CHECK(c.closes == 1 && servers[before].closes == 1, "on_close came once on each side");
	free(c.last);
}

static void test_too_big(void)
{
	struct side c;
	char *big = malloc((64 << 10) + 1);
	int before = nservers;

	memset(big, 'z', (64 << 10) + 1);
	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	crab_ws_send(c.ws, 1, big, (64 << 10) + 1);
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 1009, "one byte over the server's limit: the client sees 1009");
	CHECK(servers[before].closes == 1 && servers[before].code == 1009 &&
	    servers[before].messages == 0, "the server closed it with 1009, delivering nothing");
	free(big);
	free(c.last);
}

static void test_server_closes(void)
{
	struct side c, d;
	int before = nservers;

	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	crab_ws_send(c.ws, 0, "close-me", 8);
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 4000 && strcmp(c.reason, "asked to") == 0 && c.messages == 0,
	    "crab_ws_close from inside on_message: the client sees 4000 and the reason");
	CHECK(servers[before].closes == 1 && servers[before].code == 4000,
	    "the server's on_close says 4000 too");
	free(c.last);

	before = nservers;
	client(&d, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(d.opens > 0 || d.closes > 0, 3);
	crab_ws_send(d.ws, 0, "free-me", 7);
	PUMP_UNTIL(d.closes > 0, 5);
	CHECK(d.closes == 1 && d.code == 1006,
	    "crab_ws_free from inside on_message: the client sees the connection drop, 1006");
	CHECK_INT(servers[before].closes, 0, "and the freed side gets no on_close");
	free(d.last);
}

static void test_client_free(void)
{
	struct side c;
	int before = nservers;

	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	crab_ws_free(c.ws);
	PUMP_UNTIL(servers[before].closes > 0, 3);
	pump_for(0.05);
	CHECK(c.closes == 0, "crab_ws_free by the owner calls no on_close");
	CHECK(servers[before].closes == 1 && servers[before].code == 1006,
	    "the server sees 1006 for a connection dropped without a close");
	free(c.last);
}

static void test_raw(void)
{
	unsigned char frame[64];
	char buf[4096];
	size_t n, got;
	int before = nservers, fd;

	/* a frame in the same packet as the request: already in the input at the upgrade */
	fd = raw_connect();
	memcpy(buf, upgrade_req, sizeof(upgrade_req) - 1);
	n = mkframe((unsigned char *)buf + sizeof(upgrade_req) - 1, 1, CRAB_WS_TEXT, "early", 5, 1);
	if (write(fd, buf, sizeof(upgrade_req) - 1 + n) < 0)
		abort();
	got = raw_read(fd, buf, sizeof(buf), sizeof(upgrade_answer) - 1 + 7, 3);
	CHECK(got == sizeof(upgrade_answer) - 1 + 7 &&
	    memcmp(buf, upgrade_answer, sizeof(upgrade_answer) - 1) == 0,
	    "the 101 has Upgrade, Connection and the RFC's Sec-WebSocket-Accept");
	CHECK(memcmp(buf + sizeof(upgrade_answer) - 1, "\x81\x05" "early", 7) == 0,
	    "a frame sent with the request is read after the upgrade, and echoed unmasked");

	/* half a frame, then the connection goes */
	n = crab_ws_frame_header(frame, 1, CRAB_WS_BINARY, 100, KEY);
	memset(frame + n, 'h', 10);
	if (write(fd, frame, n + 10) < 0)
		abort();
	pump_for(0.05);
	close(fd);
	PUMP_UNTIL(servers[before].closes > 0, 3);
	pump_for(0.1);
	CHECK(servers[before].closes == 1 && servers[before].code == 1006,
	    "a disconnect in the middle of a frame: on_close(1006), once");

	/* a bad handshake is the caller's 400 */
	fd = raw_connect();
	{
		const char bad[] = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
		if (write(fd, bad, sizeof(bad) - 1) < 0)
			abort();
	}
	got = raw_read(fd, buf, sizeof(buf), sizeof(buf), 3);
	CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0 && strstr(buf, "Sec-WebSocket-Key") != NULL &&
	    strstr(buf, "\"code\":\"bad_request\"") != NULL,
	    "a handshake without its key gets a JSON 400 saying so");
	CHECK(strstr(buf, "Sec-WebSocket-Version: 13\r\n") != NULL && strstr(buf, "Connection: close") != NULL,
	    "with the version header, and the connection closes");
	close(fd);
	(void)got;
}

/* The server pings; a crab_ws client answers and stays, a raw socket that never
 * answers is closed with 1001 after the idle limit. */
static void test_idle(void)
{
	struct crab_ws_limits saved = server_limits;
	struct side c;
	unsigned char buf[4096];
	size_t got;
	int raw_at, fd, pings = 0, close_at = -1;

	server_limits.idle_timeout_s = 2;
	server_limits.ping_interval_s = 1;
	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	raw_at = nservers;
	fd = raw_connect();
	if (write(fd, upgrade_req, sizeof(upgrade_req) - 1) < 0)
		abort();
	got = raw_read(fd, (char *)buf, sizeof(buf), sizeof(upgrade_answer) - 1, 3);
	got = raw_read(fd, (char *)buf, sizeof(buf), sizeof(buf), 4);
	for (size_t i = 0; i + 1 < got; i += 2 + (buf[i + 1] & 0x7f)) {
		if (buf[i] == 0x89)
			pings++;
		if (buf[i] == 0x88 && close_at < 0)
			close_at = (int)i;
	}
	CHECK(pings >= 1, "the server pings every interval");
	CHECK(close_at >= 0 && buf[close_at + 2] == 0x03 && buf[close_at + 3] == 0xe9,
	    "a peer silent past the idle limit gets a close with 1001");
	close(fd);
	PUMP_UNTIL(servers[raw_at].closes > 0, 3);
	CHECK(servers[raw_at].closes == 1 && servers[raw_at].code == 1001,
	    "and its on_close says 1001");
	CHECK(c.opens == 1 && c.closes == 0 && c.ws != NULL,
	    "the crab_ws client, answering the pings, is still open");
	crab_ws_close(c.ws, 1000, NULL);
	PUMP_UNTIL(c.closes > 0, 3);
	free(c.last);
	server_limits = saved;
}

static void test_connect_failures(void)
{
	struct side c;
	char err[256] = "";
	int fd;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	client(&c, "ws", NULL, "/nope", NULL);
	PUMP_UNTIL(c.closes > 0, 3);
	CHECK(c.opens == 0 && c.closes == 1 && c.code == 1006 && strstr(c.reason, "404") != NULL &&
	    strstr(c.reason, "not_found") != NULL,
	    "a server that answers 404 gives on_close(1006) with status and body, no on_open");
	free(c.last);

	/* a port nobody listens on: bound, never listening */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	memset(&c, 0, sizeof(c));
	{
		char url[64];
		snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", ntohs(sin.sin_port));
		c.ws = crab_ws_connect(base, url, NULL, NULL, NULL, &client_cb, &c, err, sizeof(err));
	}
	PUMP_UNTIL(c.closes > 0, 3);
	CHECK(c.ws == NULL && c.closes == 1 && c.code == 1006 && strstr(c.reason, "refused") != NULL,
	    "a refused connection gives on_close(1006) saying so");
	close(fd);

	CHECK(crab_ws_connect(base, "http://x/", NULL, NULL, NULL, &client_cb, &c, err, sizeof(err)) == NULL &&
	    strstr(err, "ws://") != NULL, "a url that is not ws:// or wss:// is refused");
	CHECK(crab_ws_connect(base, "wss://127.0.0.1:1/", NULL, NULL, NULL, &client_cb, &c, err,
	    sizeof(err)) == NULL && strstr(err, "tls") != NULL, "wss without a tls context is refused");
	{
		static const char *const bad[] = {"X-A: b\r\nX-Evil: 1", NULL};
		CHECK(crab_ws_connect(base, "ws://127.0.0.1:1/", NULL, bad, NULL, &client_cb, &c, err,
		    sizeof(err)) == NULL, "a header with a line break is refused");
	}
	CHECK(crab_ws_connect(base, "ws://[::1/", NULL, NULL, NULL, &client_cb, &c, err, sizeof(err)) == NULL,
	    "a broken IPv6 host is refused");
}

/* ---- TLS ---- */

static int reject_all(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 0;
}

static void test_tls(const struct crab_identity *gw, const struct crab_identity *a)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct side c;
	char fp[CRAB_FP_HEX] = "";
	int before = nservers;

	SSL_CTX_use_certificate(cctx, a->cert);
	SSL_CTX_use_PrivateKey(cctx, a->key);
	client(&c, "wss", cctx, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 5);
	CHECK(c.opens == 1, "wss: the client opens over TLS");
	if (c.opens != 1)
		printf("#   %d %s\n", c.code, c.reason);
	CHECK(c.ws != NULL && crab_ws_ssl(c.ws) != NULL &&
	    crab_tls_peer_fingerprint(crab_ws_ssl(c.ws), fp) == 1 && strcmp(fp, gw->fingerprint) == 0,
	    "the client reads the server's fingerprint from crab_ws_ssl");
	CHECK_STR(servers[before].fp, a->fingerprint,
	    "the handler read the client certificate's fingerprint before the upgrade");
	crab_ws_send(c.ws, 0, "over tls", 8);
	PUMP_UNTIL(c.messages > 0, 3);
	CHECK(c.messages == 1 && strcmp(c.last, "over tls") == 0, "a message comes back over TLS");
	crab_ws_close(c.ws, 1000, "done");
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 1000 && servers[before].closes == 1 &&
	    servers[before].code == 1000, "the close handshake over TLS: 1000 on both sides");
	free(c.last);

	/* the caller's pin, through its verify callback: this layer does not override it */
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, reject_all);
	client(&c, "wss", cctx, "/ws", NULL);
	PUMP_UNTIL(c.closes > 0, 5);
	CHECK(c.opens == 0 && c.closes == 1 && c.code == 1015 && strstr(c.reason, "tls") != NULL,
	    "a server the caller's verify callback rejects: on_close(1015)");
	free(c.last);
	SSL_CTX_free(cctx);
}

/* ---- for t/fakes/ws-echo-check.mjs: against the ws npm package ---- */

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

/* --serve: the echo server on a free loopback port, printed as "port N", until SIGTERM
 * or stdin closes. */
static int serve(void)
{
	struct crab_http_limits limits = {4096, 2048, 5, 64};
	struct event *term, *in;
	char err[256];
	int loopback;

	serving = 1;
	base = event_base_new();
	srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
	if (crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("port %d\n", crab_http_server_port(srv));
	fflush(stdout);
	term = evsignal_new(base, SIGTERM, stop_cb, NULL);
	in = event_new(base, 0, EV_READ, stop_cb, NULL);
	event_add(term, NULL);
	event_add(in, NULL);
	event_base_dispatch(base);
	event_free(term);
	event_free(in);
	crab_http_server_free(srv);
	for (int i = 0; i < 32; i++) {
		crab_ws_free(servers[i].ws);
		free(servers[i].last);
	}
	event_base_free(base);
	return 0;
}

/* --client URL: sends a text and a binary message, expects them back, closes with
 * 1000; exit status 0 when all of that happened. */
static int connect_once(const char *url)
{
	static const char *const headers[] = {"Authorization: Bearer from-crab", NULL};
	struct side c = {0};
	char err[256];
	int ok;

	base = event_base_new();
	c.ws = crab_ws_connect(base, url, NULL, headers, NULL, &client_cb, &c, err, sizeof(err));
	if (c.ws == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 5);
	crab_ws_send(c.ws, 0, "hello from crab \xe2\x82\xac", 19);
	PUMP_UNTIL(c.messages > 0 || c.closes > 0, 5);
	ok = c.messages == 1 && c.last != NULL && strcmp(c.last, "hello from crab \xe2\x82\xac") == 0;
	printf("text echo: %s\n", ok ? "ok" : "missing");
	if (c.ws != NULL)
		crab_ws_send(c.ws, 1, "\0\1\2", 3);
	PUMP_UNTIL(c.messages > 1 || c.closes > 0, 5);
	ok = ok && c.messages == 2 && c.binary && c.last_len == 3;
	printf("binary echo: %s\n", c.messages == 2 && c.binary ? "ok" : "missing");
	if (c.ws != NULL)
		crab_ws_close(c.ws, 1000, "done");
	PUMP_UNTIL(c.closes > 0, 5);
	printf("close: %d %s\n", c.code, c.reason);
	ok = ok && c.closes == 1 && c.code == 1000;
	free(c.last);
	event_base_free(base);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 4096, .max_body_bytes = 2048, .idle_timeout_s = 5,
		.max_connections = 64,
	};
	char tmpdir[] = "/tmp/crab-ws-XXXXXX", dir[600], err[256], cmd[700];
	struct crab_identity *gw = NULL, *a = NULL;
	SSL_CTX *ctx;
	int loopback = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && strcmp(argv[1], "--serve") == 0)
		return serve();
	if (argc == 3 && strcmp(argv[1], "--client") == 0)
		return connect_once(argv[2]);
	test_headers();
	test_mask_and_lengths();
	test_reassembly();
	test_limits();
	test_utf8();
	test_text_frames();
	test_accept_key();
	test_read_answer();

	base = event_base_new();
	srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
	CHECK(crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) == 0,
	    "the HTTP server listens on loopback");
	test_echo();
	test_too_big();
	test_server_closes();
	test_client_free();
	test_raw();
	test_idle();
	test_connect_failures();
	CHECK_INT(upgrades_refused, 1, "only the keyless handshake failed crab_ws_check_upgrade");
	crab_http_server_free(srv);

	if (mkdtemp(tmpdir) == NULL)
		abort();
	snprintf(dir, sizeof(dir), "%s/gw", tmpdir);
	gw = crab_identity_load(dir, "gateway", 1, NULL, err, sizeof(err));
	snprintf(dir, sizeof(dir), "%s/a", tmpdir);
	a = crab_identity_load(dir, "client-a", 1, NULL, err, sizeof(err));
	if (CHECK(gw != NULL && a != NULL, "identities for TLS")) {
		ctx = crab_tls_server_ctx(gw, 0, err, sizeof(err));
		srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
		crab_http_server_set_tls(srv, ctx);
		SSL_CTX_free(ctx);
		crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err));
		test_tls(gw, a);
		{
			/* a ws outlives the HTTP server that upgraded it */
			struct side c;
			int before = nservers;
			SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());

			client(&c, "wss", cctx, "/ws", NULL);
			PUMP_UNTIL(c.opens > 0 || c.closes > 0, 5);
			crab_http_server_free(srv);
			crab_ws_send(c.ws, 0, "still here", 10);
			PUMP_UNTIL(c.messages > 0, 3);
			CHECK(c.messages == 1 && servers[before].ws != NULL,
			    "an upgraded connection outlives the HTTP server's free");
			crab_ws_free(c.ws);
			free(c.last);
			SSL_CTX_free(cctx);
		}
	}
	for (int i = 0; i < 32; i++) {
		crab_ws_free(servers[i].ws);
		free(servers[i].last);
	}
	pump_for(0.05);
	event_base_free(base);
	crab_identity_free(gw);
	crab_identity_free(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	ERR_clear_error();
	return unit_done();
}
