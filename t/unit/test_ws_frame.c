/* test_ws_frame.c: the WebSocket layer's pure parts: frame headers, masking and
 * lengths, reassembly, limits, UTF-8, text frames, the accept key, the client's check of
 * the answer. Real connections are in test_ws.c. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ws.h"
#include "t/unit/unit.h"
#include "t/unit/ws_mkframe.h"


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

int main(void)
{
	test_headers();
	test_mask_and_lengths();
	test_reassembly();
	test_limits();
	test_utf8();
	test_text_frames();
	test_accept_key();
	test_read_answer();
	return unit_done();
}
