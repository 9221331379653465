/* openai_sse.c: the openai adapter's assembler. Server-sent events in any pieces (the
 * WHATWG rules: lines end at CRLF, LF or CR; "data:" with or without its space; comments
 * and other fields ignored; an event ends at a blank line) carrying chat.completion.chunk
 * objects, or one whole chat.completion: text goes out as it comes, tool-call fragments
 * are put together per index and go out at the end with the usage. Everything it keeps
 * is bounded (struct oai_limits). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup when built as a .so */
#endif
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/openai/openai_int.h"

struct oai_tool {
	long long index; /* the provider's */
	char *id, *name;
	char *args;
	size_t args_len, args_cap;
};

struct oai_stream {
	struct oai_limits lim;
	struct oai_out out;
	void *arg;
	int state; /* OAI_MORE, OAI_END or OAI_FAIL */

	/* SSE */
	char *line;
	size_t line_len, line_cap;
	int after_cr;   /* the last byte was CR: a LF right after it ends nothing */
	int first_line; /* a BOM may begin it */
	char *data;     /* this event's data lines, each followed by "\n" */
	size_t data_len, data_cap;
	int has_data;
	int error_event; /* "event: error" */
	size_t events, unknown_lines;

	/* the answer */
	size_t text_len, args_len;
	struct oai_tool *tools;
	size_t ntools;
	char finish[32];
	int have_usage;
	int64_t input_tokens, output_tokens;

	const char *stop_reason;
	char code[32];
	char message[512];
	int retryable;
};

static int fail(struct oai_stream *s, const char *code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct oai_stream *s, const char *code, int retryable, const char *fmt, ...)
{
	va_list ap;

	if (s->state == OAI_FAIL)
		return OAI_FAIL; /* the first reason stands */
	s->state = OAI_FAIL;
	s->retryable = retryable;
	snprintf(s->code, sizeof(s->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(s->message, sizeof(s->message), fmt, ap);
	va_end(ap);
	return OAI_FAIL;
}

/* Appends n bytes to a buffer that may not grow beyond max; -1 beyond it or out of
 * memory. Keeps a NUL after the bytes. */
static int buf_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n, size_t max)
{
	if (n > max || *len > max - n)
		return -1;
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 256;
		char *b;
		while (c < *len + n + 1)
			c *= 2;
		if ((b = realloc(*buf, c)) == NULL)
			return -1;
		*buf = b;
		*cap = c;
	}
	if (n > 0)
		memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}

struct oai_stream *oai_stream_new(const struct oai_limits *limits, const struct oai_out *out,
    void *arg)
{
	struct oai_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (limits != NULL) {
		s->lim = *limits;
	} else {
		s->lim.max_line = OAI_MAX_LINE;
		s->lim.max_text = OAI_MAX_TEXT;
		s->lim.max_args = OAI_MAX_ARGS;
		s->lim.max_tool_calls = OAI_MAX_TOOL_CALLS;
	}
	s->out = *out;
	s->arg = arg;
	s->first_line = 1;
	return s;
}

void oai_stream_free(struct oai_stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ntools; i++) {
		free(s->tools[i].id);
		free(s->tools[i].name);
		free(s->tools[i].args);
	}
	free(s->tools);
	free(s->line);
	free(s->data);
	free(s);
}

/* ---- the chunks ---- */

/* The provider's error object as a message: "message [code]". */
static int fail_provider(struct oai_stream *s, json_t *err)
{
	const char *msg = json_string_value(err), *code = NULL;

	if (json_is_object(err)) {
		json_t *c = json_object_get(err, "code");
		msg = json_string_value(json_object_get(err, "message"));
		code = json_is_string(c) ? json_string_value(c) :
		    json_string_value(json_object_get(err, "type"));
	}
	return fail(s, "provider_error", 1, "the provider reported an error in its answer: %.300s%s%.64s%s",
	    msg ? msg : "(no message)", code ? " [" : "", code ? code : "", code ? "]" : "");
}

static struct oai_tool *tool_slot(struct oai_stream *s, long long index, const char *id)
{
	struct oai_tool *t = NULL, *more;

	for (size_t i = s->ntools; i-- > 0;) {
		if (s->tools[i].index == index) {
			t = &s->tools[i];
			break;
		}
	}
	/* a new id under an index already used: some servers number every call 0 */
	if (t != NULL && id != NULL && t->id != NULL && strcmp(t->id, id) != 0)
		t = NULL;
	if (t != NULL)
		return t;
	if (s->ntools >= s->lim.max_tool_calls) {
		fail(s, "bad_response", 0, "the answer has more than %zu tool calls",
		    s->lim.max_tool_calls);
		return NULL;
	}
	if ((more = realloc(s->tools, (s->ntools + 1) * sizeof(*more))) == NULL) {
		fail(s, "bad_response", 0, "out of memory for tool calls");
		return NULL;
	}
	s->tools = more;
	t = &s->tools[s->ntools++];
	memset(t, 0, sizeof(*t));
	t->index = index;
	return t;
}

/* One entry of delta.tool_calls (a fragment) or message.tool_calls (whole, at pos). */
static int tool_fragment(struct oai_stream *s, json_t *tc, size_t pos, int whole)
{
	json_t *jidx = json_object_get(tc, "index"), *fn = json_object_get(tc, "function");
	json_t *args = json_object_get(fn, "arguments");
	const char *id = json_string_value(json_object_get(tc, "id"));
	const char *name = json_string_value(json_object_get(fn, "name"));
	struct oai_tool *t;
	long long index;

	if (!json_is_object(tc))
		return fail(s, "bad_response", 0, "a tool call that is not an object");
	if (id != NULL && id[0] == '\0')
		id = NULL;
	if (json_is_integer(jidx))
		index = json_integer_value(jidx);
	else if (whole)
		index = (long long)pos;
	else /* no index: a new call when it brings an id, else the last one */
		index = id != NULL || s->ntools == 0 ? -1 - (long long)s->ntools :
		    s->tools[s->ntools - 1].index;
	if ((t = tool_slot(s, index, id)) == NULL)
		return OAI_FAIL;
	if (id != NULL && t->id == NULL && (t->id = strdup(id)) == NULL)
		return fail(s, "bad_response", 0, "out of memory");
	if (name != NULL && name[0] != '\0' && t->name == NULL && (t->name = strdup(name)) == NULL)
		return fail(s, "bad_response", 0, "out of memory");
	if (json_is_string(args) || json_is_object(args)) {
		/* a string as the API defines it; an object as some local servers send */
		char *dumped = json_is_object(args) ? json_dumps(args, JSON_COMPACT) : NULL;
		const char *p = dumped ? dumped : json_string_value(args);
		size_t n = dumped ? strlen(dumped) : json_string_length(args);
		int rc = 0;

		if (s->args_len + n > s->lim.max_args)
			rc = fail(s, "bad_response", 0, "tool-call arguments longer than %zu bytes",
			    s->lim.max_args);
		else if (buf_add(&t->args, &t->args_len, &t->args_cap, p, n, s->lim.max_args) != 0)
			rc = fail(s, "bad_response", 0, "out of memory for tool-call arguments");
		else
			s->args_len += n;
		free(dumped);
		return rc;
	}
	return OAI_MORE;
}

/* A chunk's delta, or a whole answer's message. */
static int apply_message(struct oai_stream *s, json_t *m, int whole)
{
	json_t *content = json_object_get(m, "content"), *calls = json_object_get(m, "tool_calls");
	size_t i;
	json_t *tc;

	if (json_is_string(content) && json_string_length(content) > 0) {
		size_t n = json_string_length(content);
		if (s->text_len + n > s->lim.max_text)
			return fail(s, "bad_response", 0, "answer text longer than %zu bytes",
			    s->lim.max_text);
		s->text_len += n;
		if (s->out.on_text != NULL)
			s->out.on_text(s->arg, json_string_value(content), n);
	}
	if (json_is_array(calls)) {
		json_array_foreach(calls, i, tc) {
			if (tool_fragment(s, tc, i, whole) != OAI_MORE)
				return OAI_FAIL;
		}
	}
	return OAI_MORE;
}

static int apply(struct oai_stream *s, json_t *obj, int whole)
{
	json_t *err = json_object_get(obj, "error"), *choices, *usage, *c;
	size_t i;

	if (!json_is_object(obj))
		return fail(s, "bad_response", 0, "the provider sent JSON that is not an object");
	if (err != NULL && !json_is_null(err))
		return fail_provider(s, err);
	if (s->error_event)
		return fail_provider(s, obj);
	usage = json_object_get(obj, "usage");
	if (json_is_object(usage)) {
		s->have_usage = 1;
		s->input_tokens = json_integer_value(json_object_get(usage, "prompt_tokens"));
		s->output_tokens = json_integer_value(json_object_get(usage, "completion_tokens"));
	}
	choices = json_object_get(obj, "choices");
	if (whole && (!json_is_array(choices) || json_array_size(choices) == 0))
		return fail(s, "bad_response", 0, "the answer has no choices");
	json_array_foreach(choices, i, c) {
		json_t *idx = json_object_get(c, "index");
		const char *fr = json_string_value(json_object_get(c, "finish_reason"));

		if (json_is_integer(idx) ? json_integer_value(idx) != 0 : i != 0)
			continue; /* only the first choice is asked for */
		if (apply_message(s, json_object_get(c, whole ? "message" : "delta"), whole) != OAI_MORE)
			return OAI_FAIL;
		if (fr != NULL && fr[0] != '\0')
			snprintf(s->finish, sizeof(s->finish), "%s", fr);
	}
	return OAI_MORE;
}

int oai_stream_feed_json(struct oai_stream *s, const char *body, size_t len)
{
	json_error_t e;
	json_t *obj;
	int rc;

	if (s->state != OAI_MORE)
		return s->state;
	if ((obj = json_loadb(body, len, 0, &e)) == NULL)
		return fail(s, "bad_response", 0, "the answer is not JSON: %s", e.text);
	rc = apply(s, obj, 1);
	json_decref(obj);
	if (rc == OAI_MORE)
		s->state = OAI_END;
	return s->state;
}

/* ---- server-sent events ---- */

static int dispatch(struct oai_stream *s)
{
	json_error_t e;
	json_t *obj;
	int rc;

	if (!s->has_data) {
		s->error_event = 0;
		return OAI_MORE;
	}
	s->has_data = 0;
	s->events++;
	s->data[--s->data_len] = '\0'; /* the last line's "\n" */
	if (strcmp(s->data, "[DONE]") == 0) {
		s->state = OAI_END;
		return OAI_END;
	}
	obj = json_loadb(s->data, s->data_len, 0, &e);
	s->data_len = 0;
	if (obj == NULL)
		return fail(s, "bad_response", 0, "an event's data is not JSON: %s", e.text);
	rc = apply(s, obj, 0);
	json_decref(obj);
	s->error_event = 0;
	return rc;
}

/* One line, without its end. */
static int line(struct oai_stream *s, const char *p, size_t n)
{
	const char *colon;
	size_t field;

	if (s->first_line) {
		s->first_line = 0;
		if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
			p += 3, n -= 3;
	}
	if (n == 0)
		return dispatch(s);
	if (p[0] == ':')
		return OAI_MORE; /* a comment, a keep-alive */
	colon = memchr(p, ':', n);
	field = colon ? (size_t)(colon - p) : n;
	if (field == 4 && memcmp(p, "data", 4) == 0) {
		const char *v = colon ? colon + 1 : p + n;
		size_t vn = (size_t)(p + n - v);
		if (vn > 0 && v[0] == ' ')
			v++, vn--;
		if (buf_add(&s->data, &s->data_len, &s->data_cap, v, vn, s->lim.max_line) != 0 ||
		    buf_add(&s->data, &s->data_len, &s->data_cap, "\n", 1, s->lim.max_line) != 0)
			return fail(s, "bad_response", 0, "an event's data is longer than %zu bytes",
			    s->lim.max_line);
		s->has_data = 1;
	} else if (field == 5 && memcmp(p, "event", 5) == 0) {
		s->error_event = colon != NULL && n - field >= 6 &&
		    memcmp(colon + 1 + (colon[1] == ' '), "error", 5) == 0;
	} else if (!(field == 2 && memcmp(p, "id", 2) == 0) &&
	    !(field == 5 && memcmp(p, "retry", 5) == 0)) {
		s->unknown_lines++;
	}
	return OAI_MORE;
}

int oai_stream_feed(struct oai_stream *s, const char *data, size_t len)
{
	const char *p = data, *end = data + len;

	while (p < end && s->state == OAI_MORE) {
		const char *eol;
		size_t n;

		if (s->after_cr) { /* CRLF, perhaps split between two pieces */
			s->after_cr = 0;
			if (*p == '\n') {
				p++;
				continue;
			}
		}
		for (eol = p; eol < end && *eol != '\n' && *eol != '\r'; eol++)
			;
		n = (size_t)(eol - p);
		if (eol == end || s->line_len > 0) {
			/* a line begun in an earlier piece, or going on in a later one */
			if (buf_add(&s->line, &s->line_len, &s->line_cap, p, n, s->lim.max_line) != 0)
				return fail(s, "bad_response", 0, "an SSE line longer than %zu bytes",
				    s->lim.max_line);
			if (eol == end)
				break;
			n = s->line_len;
			s->line_len = 0;
			line(s, s->line, n);
		} else if (n > s->lim.max_line) {
			return fail(s, "bad_response", 0, "an SSE line longer than %zu bytes",
			    s->lim.max_line);
		} else {
			line(s, p, n);
		}
		s->after_cr = *eol == '\r';
		p = eol + 1;
	}
	return s->state;
}

static const char *stop_reason(const char *finish, size_t ntools)
{
	if (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0)
		return "tool_use";
	if (strcmp(finish, "length") == 0)
		return "max_tokens";
	if (strcmp(finish, "content_filter") == 0)
		return "content_filter";
	/* "stop", none, or one we do not know; some local servers say "stop" after calls */
	return ntools > 0 ? "tool_use" : "end_turn";
}

/* The answer is complete: the tool calls, each checked before any goes out, then the
 * usage. */
static int complete(struct oai_stream *s)
{
	char **calls = calloc(s->ntools + 1, sizeof(*calls));
	int rc = OAI_END;
	size_t i;

	if (calls == NULL)
		return fail(s, "bad_response", 0, "out of memory");
	for (i = 0; i < s->ntools && rc == OAI_END; i++) {
		struct oai_tool *t = &s->tools[i];
		json_error_t e;
		json_t *args, *call;
		char fallback_id[32];

		if (t->name == NULL) {
			rc = fail(s, "bad_response", 0, "tool call %zu has no name", i + 1);
			break;
		}
		args = t->args_len == 0 ? json_object() : json_loadb(t->args, t->args_len, 0, &e);
		if (args == NULL) {
			rc = fail(s, "bad_response", 0, "the arguments of tool call '%.64s' are not "
			    "valid JSON: %s", t->name, e.text);
			break;
		}
		if (!json_is_object(args)) {
			json_decref(args);
			rc = fail(s, "bad_response", 0, "the arguments of tool call '%.64s' are not "
			    "a JSON object", t->name);
			break;
		}
		snprintf(fallback_id, sizeof(fallback_id), "call_%zu", i);
		call = json_pack("{s:s, s:s, s:o}", "id", t->id ? t->id : fallback_id, "name",
		    t->name, "arguments", args);
		if (call == NULL || (calls[i] = json_dumps(call, JSON_COMPACT)) == NULL)
			rc = fail(s, "bad_response", 0, "cannot encode tool call '%.64s'", t->name);
		json_decref(call);
	}
	for (i = 0; i < s->ntools; i++) {
		if (rc == OAI_END && s->out.on_tool_call != NULL)
			s->out.on_tool_call(s->arg, calls[i], strlen(calls[i]));
		free(calls[i]);
	}
	free(calls);
	if (rc != OAI_END)
		return rc;
	if (s->have_usage && s->out.on_usage != NULL)
		s->out.on_usage(s->arg, s->input_tokens, s->output_tokens);
	s->stop_reason = stop_reason(s->finish, s->ntools);
	return OAI_END;
}

int oai_stream_finish(struct oai_stream *s)
{
	if (s->stop_reason != NULL || s->state == OAI_FAIL)
		return s->state; /* finished already */
	if (s->state == OAI_MORE) {
		/* A last line without its end, a last event without its blank line: only a
		 * [DONE] counts; an event cut off is dropped, as SSE says. */
		if (s->line_len > 0) {
			size_t n = s->line_len;
			s->line_len = 0;
			line(s, s->line, n);
		}
		if (s->state == OAI_MORE && s->has_data && strcmp(s->data, "[DONE]\n") == 0)
			s->state = OAI_END;
	}
	if (s->state == OAI_MORE) {
		if (s->finish[0] == '\0' && s->events == 0 && s->unknown_lines > 0)
			return fail(s, "bad_response", 0, "the answer is not a server-sent event stream");
		if (s->finish[0] == '\0')
			return fail(s, "stream_cut", 1, "the stream ended before [DONE] and before a "
			    "finish reason");
		s->state = OAI_END; /* a finish reason without [DONE]: complete enough */
	}
	if (s->state == OAI_FAIL)
		return OAI_FAIL;
	return complete(s);
}

const char *oai_stream_stop_reason(const struct oai_stream *s)
{
	return s->stop_reason;
}

const char *oai_stream_error(const struct oai_stream *s, const char **message, int *retryable)
{
	if (message != NULL)
		*message = s->message;
	if (retryable != NULL)
		*retryable = s->retryable;
	return s->state == OAI_FAIL ? s->code : NULL;
}
