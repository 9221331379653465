/* openai_sse.c: the openai adapter's assembler. Server-sent events in any pieces (framed
 * by modules/common/sse.c) carrying chat.completion.chunk objects, or one whole
 * chat.completion: text goes out as it comes, tool-call fragments are put together per
 * index and go out at the end with the usage. An event named error (or any name that
 * begins so) carries the provider's error object. Everything it keeps is bounded
 * (struct oai_limits). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup when built as a .so */
#endif
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/common/adapter_buf.h"
#include "modules/common/sse.h"
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

	struct sse sse;

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

static int on_event(void *arg, const struct sse_event *ev);

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
	sse_init(&s->sse, s->lim.max_line, on_event, s);
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
	sse_release(&s->sse);
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
		else if (adapter_buf_add(&t->args, &t->args_len, &t->args_cap, p, n,
		    s->lim.max_args) != 0)
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

/* The event being read is named error, or so begins (its name is kept until it ends). */
static int error_event(const struct oai_stream *s)
{
	return s->sse.name_len >= 5 && memcmp(s->sse.name, "error", 5) == 0;
}

static int apply(struct oai_stream *s, json_t *obj, int whole)
{
	json_t *err = json_object_get(obj, "error"), *choices, *usage, *c;
	size_t i;

	if (!json_is_object(obj))
		return fail(s, "bad_response", 0, "the provider sent JSON that is not an object");
	if (err != NULL && !json_is_null(err))
		return fail_provider(s, err);
	if (error_event(s))
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

/* One event: a chunk, or [DONE]. Nonzero, to stop the framer, once the stream has
 * ended or failed. */
static int on_event(void *arg, const struct sse_event *ev)
{
	struct oai_stream *s = arg;
	json_error_t e;
	json_t *obj;

	if (strcmp(ev->data, "[DONE]") == 0) {
		s->state = OAI_END;
	} else if ((obj = json_loadb(ev->data, ev->data_len, 0, &e)) == NULL) {
		fail(s, "bad_response", 0, "an event's data is not JSON: %s", e.text);
	} else {
		apply(s, obj, 0);
		json_decref(obj);
	}
	return s->state != OAI_MORE;
}

/* What the framer returned: a line or an event's data too long fails the stream. */
static int framed(struct oai_stream *s, int rc)
{
	if (rc == SSE_TOO_LONG)
		return fail(s, "bad_response", 0, "%s", sse_error(&s->sse));
	return s->state;
}

int oai_stream_feed(struct oai_stream *s, const char *data, size_t len)
{
	if (s->state != OAI_MORE)
		return s->state;
	return framed(s, sse_feed(&s->sse, data, len));
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
		framed(s, sse_flush(&s->sse));
		if (s->state == OAI_MORE && s->sse.has_data && strcmp(s->sse.data, "[DONE]\n") == 0)
			s->state = OAI_END;
	}
	if (s->state == OAI_MORE) {
		if (s->finish[0] == '\0' && s->sse.events == 0 && s->sse.unknown_lines > 0)
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
