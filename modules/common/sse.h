/* sse.h: server-sent events framing for the model adapters: bytes in pieces split
 * anywhere to events, by the WHATWG rules. Lines end at CRLF, LF or CR; a BOM may begin
 * the stream; "field:value" with or without one space after the colon; a line that
 * begins with ":" is a comment (a keep-alive); data lines are joined with "\n"; a blank
 * line ends the event; id and retry are known and unused; other fields are counted, so
 * that an adapter can tell a body that was never an event stream. What an event means
 * is the adapter's (openai_sse.c, anthropic_sse.c): this only frames. Bounded: a line,
 * and one event's data, at most max_line bytes. Only libc. */
#ifndef CRAB_SSE_H
#define CRAB_SSE_H

#include <stddef.h>

#define SSE_NAME_MAX 40 /* bytes kept of an event's name, with its NUL */

/* One event, borrowed until the callback returns. */
struct sse_event {
	const char *name; /* its "event:" field, "" when none; cut to SSE_NAME_MAX - 1 bytes */
	size_t name_len;  /* the whole name's length: SSE_NAME_MAX or more when it was cut */
	char *data;       /* its data lines joined by "\n", NUL-terminated */
	size_t data_len;
};

/* Told each event; 0 to go on, anything else to stop where the event ended. */
typedef int (*sse_event_fn)(void *arg, const struct sse_event *ev);

/* What sse_feed, sse_flush and sse_dispatch return. */
enum { SSE_TOO_LONG = -1, SSE_MORE = 0, SSE_STOP = 1 };

/* The framer, embedded in an assembler. The adapter reads the event being put together
 * (has_data, data: its data lines so far, each followed by "\n"; name, name_len) and the
 * counts; only sse.c writes them. */
struct sse {
	size_t max_line;
	sse_event_fn on_event;
	void *arg;
	char *line; /* a line begun in an earlier piece */
	size_t line_len, line_cap;
	int after_cr;   /* the last byte was CR: a LF right after it ends nothing */
	int first_line; /* a BOM may begin it */
	char *data;
	size_t data_len, data_cap;
	int has_data;
	char name[SSE_NAME_MAX];
	size_t name_len;
	size_t events;        /* dispatched, with data */
	size_t unknown_lines; /* of fields other than data, event, id and retry */
	char error[64];       /* after SSE_TOO_LONG: which limit, for a person */
};

void sse_init(struct sse *f, size_t max_line, sse_event_fn on_event, void *arg);
void sse_release(struct sse *f);

/* Bytes of the stream. SSE_MORE: all taken; SSE_STOP: on_event asked to stop (the bytes
 * after that event are not read); SSE_TOO_LONG: a line or an event's data is longer
 * than max_line (sse_error says which), and the stream cannot go on. */
int sse_feed(struct sse *f, const char *data, size_t len);
/* The stream has ended: a last line without its end is read as a line (it may add data
 * or name the event, never end one). The same returns as sse_feed. */
int sse_flush(struct sse *f);
/* The event being put together, dispatched as a blank line would. */
int sse_dispatch(struct sse *f);
const char *sse_error(const struct sse *f);

#endif
