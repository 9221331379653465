/* fuzz_ws.c: libFuzzer target for the WebSocket frame parser and reassembly, no sockets.
 * The first byte picks how the rest is cut into pieces; the rest goes through a server's
 * parser and a client's, with a small message limit so 1009 is reachable. Every event
 * is checked against what the layer promises; then the input, as one payload, makes a
 * round trip through a masked frame, and is read as a server's handshake answer. */
#include <event2/buffer.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ws.h"

#define MAX_MESSAGE 1024

static void check_event(const struct crab_ws_event *ev)
{
	switch (ev->opcode) {
	case CRAB_WS_TEXT:
		if (!crab_ws_utf8_valid(ev->data, ev->len))
			abort();
		/* fall through */
	case CRAB_WS_BINARY:
		if (ev->len > MAX_MESSAGE || ev->data[ev->len] != '\0')
			abort();
		break;
	case CRAB_WS_CLOSE:
		if (ev->reason == NULL ||
		    (ev->code != 1005 && (ev->code < 1000 || ev->code > 4999)))
			abort();
		/* fall through */
	case CRAB_WS_PING:
	case CRAB_WS_PONG:
		if (ev->len > CRAB_WS_MAX_CONTROL)
			abort();
		break;
	default:
		abort();
	}
}

static void run(int server, const uint8_t *data, size_t size, size_t step)
{
	struct crab_ws_parser p;
	size_t pos = 0;

	crab_ws_parser_init(&p, server, MAX_MESSAGE);
	while (pos < size) {
		size_t n = step == 0 || size - pos < step ? size - pos : step;
		struct crab_ws_event ev;
		const char *why;
		size_t used;
		int code, r;

		r = crab_ws_parser_feed(&p, data + pos, n, &used, &ev, &code, &why);
		if (used > n)
			abort();
		pos += used;
		if (r < 0) {
			if ((code != 1002 && code != 1007 && code != 1009) || why == NULL)
				abort();
			break;
		}
		if (r == 0 && used != n)
			abort(); /* "need more" takes everything it was given */
		if (r > 0)
			check_event(&ev);
	}
	crab_ws_parser_release(&p);
}

/* The input as one binary payload: masked by a client, read back by a server. */
static void round_trip(const uint8_t *data, size_t size)
{
	unsigned char key[4] = {0, 0, 0, 0}, *frame = malloc(size + CRAB_WS_MAX_HEADER);
	struct crab_ws_parser p;
	struct crab_ws_event ev;
	const char *why;
	size_t n, used;
	int code;

	memcpy(key, data, size < 4 ? size : 4);
	n = crab_ws_frame_header(frame, 1, CRAB_WS_BINARY, size, key);
	memcpy(frame + n, data, size);
	crab_ws_mask(frame + n, size, key, 0);
	crab_ws_parser_init(&p, 1, size);
	if (crab_ws_parser_feed(&p, frame, n + size, &used, &ev, &code, &why) != 1 ||
	    used != n + size || ev.opcode != CRAB_WS_BINARY || ev.len != size ||
	    (size > 0 && memcmp(ev.data, data, size) != 0))
		abort();
	crab_ws_parser_release(&p);
	free(frame);
}

/* The input as a server's answer to the client's opening handshake. */
static void answer(const uint8_t *data, size_t size)
{
	struct evbuffer *in = evbuffer_new();
	char err[256];
	size_t before;
	int r;

	evbuffer_add(in, data, size);
	before = evbuffer_get_length(in);
	r = crab_ws_read_answer(in, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", err, sizeof(err));
	if (r < -1 || r > 1 || (r != 1 && evbuffer_get_length(in) != before) ||
	    (r == -1 && strlen(err) == 0))
		abort();
	evbuffer_free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crab_ws_utf8 st = {0, 0, 0};
	size_t step, half = size / 2;
	int whole;

	if (size < 1)
		return 0;
	step = data[0] % 8 == 0 ? 0 : (size_t)(data[0] % 8); /* 0: all at once */
	run(1, data + 1, size - 1, step);
	run(0, data + 1, size - 1, step);
	round_trip(data, size);
	answer(data + 1, size - 1);
	/* the incremental UTF-8 check agrees with the whole one, cut anywhere */
	whole = crab_ws_utf8_valid(data, size);
	if ((crab_ws_utf8_feed(&st, data, half) == 0 &&
	    crab_ws_utf8_feed(&st, data + half, size - half) == 0 && st.need == 0) != whole)
		abort();
	return 0;
}
