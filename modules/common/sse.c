/* sse.c: the server-sent events framer of sse.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/common/adapter_buf.h"
#include "modules/common/sse.h"

void sse_init(struct sse *f, size_t max_line, sse_event_fn on_event, void *arg)
{
	memset(f, 0, sizeof(*f));
	f->max_line = max_line;
	f->on_event = on_event;
	f->arg = arg;
	f->first_line = 1;
}

void sse_release(struct sse *f)
{
	free(f->line);
	free(f->data);
	f->line = f->data = NULL;
}

static int too_long(struct sse *f, const char *what)
{
	snprintf(f->error, sizeof(f->error), "%s longer than %zu bytes", what, f->max_line);
	return SSE_TOO_LONG;
}

int sse_dispatch(struct sse *f)
{
	struct sse_event ev;
	int rc;

	if (!f->has_data) { /* an event without data is none: its name goes */
		f->name[0] = '\0';
		f->name_len = 0;
		return SSE_MORE;
	}
	f->has_data = 0;
	f->events++;
	f->data[--f->data_len] = '\0'; /* the last line's "\n" */
	ev.name = f->name;
	ev.name_len = f->name_len;
	ev.data = f->data;
	ev.data_len = f->data_len;
	rc = f->on_event(f->arg, &ev);
	f->data_len = 0;
	f->name[0] = '\0';
	f->name_len = 0;
	return rc != 0 ? SSE_STOP : SSE_MORE;
}

/* One line, without its end. */
static int line(struct sse *f, const char *p, size_t n)
{
	const char *colon, *v;
	size_t field, vn;

	if (f->first_line) {
		f->first_line = 0;
		if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
			p += 3, n -= 3;
	}
	if (n == 0)
		return sse_dispatch(f);
	if (p[0] == ':')
		return SSE_MORE; /* a comment, a keep-alive */
	colon = memchr(p, ':', n);
	field = colon ? (size_t)(colon - p) : n;
	v = colon ? colon + 1 : p + n;
	vn = (size_t)(p + n - v);
	if (vn > 0 && v[0] == ' ')
		v++, vn--;
	if (field == 4 && memcmp(p, "data", 4) == 0) {
		if (adapter_buf_add(&f->data, &f->data_len, &f->data_cap, v, vn, f->max_line) != 0 ||
		    adapter_buf_add(&f->data, &f->data_len, &f->data_cap, "\n", 1, f->max_line) != 0)
			return too_long(f, "an event's data is");
		f->has_data = 1;
	} else if (field == 5 && memcmp(p, "event", 5) == 0) {
		size_t kept = vn < sizeof(f->name) ? vn : sizeof(f->name) - 1;
		memcpy(f->name, v, kept);
		f->name[kept] = '\0';
		f->name_len = vn;
	} else if (!(field == 2 && memcmp(p, "id", 2) == 0) &&
	    !(field == 5 && memcmp(p, "retry", 5) == 0)) {
		f->unknown_lines++;
	}
	return SSE_MORE;
}

int sse_feed(struct sse *f, const char *data, size_t len)
{
	const char *p = data, *end = data + len;
	int rc = SSE_MORE;

	while (p < end && rc == SSE_MORE) {
		const char *eol;
		size_t n;

		if (f->after_cr) { /* CRLF, perhaps split between two pieces */
			f->after_cr = 0;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; eol++)
			;
		n = (size_t)(eol - p);
		if (eol == end || f->line_len > 0) {
			/* a line begun in an earlier piece, or going on in a later one */
			if (adapter_buf_add(&f->line, &f->line_len, &f->line_cap, p, n, f->max_line) != 0)
				return too_long(f, "an SSE line");
			if (eol == end)
				break;
			n = f->line_len;
			f->line_len = 0;
			rc = line(f, f->line, n);
		} else if (n > f->max_line) {
			return too_long(f, "an SSE line");
		} else {
			rc = line(f, p, n);
		}
		f->after_cr = *eol == '\r';
		p = eol + 1;
	}
	return rc;
}

int sse_flush(struct sse *f)
{
	size_t n = f->line_len;

	if (n == 0)
		return SSE_MORE;
	f->line_len = 0;
	return line(f, f->line, n);
}

const char *sse_error(const struct sse *f)
{
	return f->error;
}
