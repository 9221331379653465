/* anthropic_sse.c: the anthropic adapter's assembler. Server-sent events in any pieces
 * (framed by modules/common/sse.c) carrying the Messages stream of
 * shared/protocols/anthropic-messages.md §3, dispatched on the `event:` name (else the
 * data's `type`), or one whole Message object. Text goes out as it comes; tool_use
 * blocks are put together from their input_json_delta pieces and go out, with the
 * usage, once the message is complete. Everything kept is bounded (struct ant_limits). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup when built as a .so */
#endif
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/anthropic/anthropic_int.h"
#include "modules/common/adapter_buf.h"
#include "modules/common/sse.h"

enum { BLK_NONE, BLK_TEXT, BLK_TOOL, BLK_OTHER };

struct ant_block {
	int type;    /* BLK_*; BLK_NONE: no block at this index (yet) */
	int open;    /* started, not stopped */
	char *id, *name;
	char *json;  /* tool_use: the input_json_delta pieces */
	size_t json_len, json_cap;
	char kind[32]; /* the block's own type, for messages */
};

struct ant_stream {
	struct ant_limits lim;
	struct ant_out out;
	void *arg;
	int state; /* ANT_MORE, ANT_END or ANT_FAIL */

	struct sse sse;

	/* the message */
	int started;    /* message_start came */
	struct ant_block *blocks;
	size_t nblocks; /* slots in blocks: one past the highest index seen */
	size_t ntools, text_len, args_len;
	char stop[40];  /* message_delta's stop_reason, as the API says it */
	int have_usage, emitted;
	int64_t input_tokens, cache_tokens, output_tokens;

	const char *stop_reason;
	char code[32];
	char message[512];
	int retryable;
};

static int fail(struct ant_stream *s, const char *code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct ant_stream *s, const char *code, int retryable, const char *fmt, ...)
{
	va_list ap;

	if (s->state == ANT_FAIL)
		return ANT_FAIL; /* the first reason stands */
	s->state = ANT_FAIL;
	s->retryable = retryable;
	snprintf(s->code, sizeof(s->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(s->message, sizeof(s->message), fmt, ap);
	va_end(ap);
	return ANT_FAIL;
}

static int on_event(void *arg, const struct sse_event *ev);

struct ant_stream *ant_stream_new(const struct ant_limits *limits, const struct ant_out *out,
    void *arg)
{
	struct ant_stream *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (limits != NULL) {
		s->lim = *limits;
	} else {
		s->lim.max_line = ANT_MAX_LINE;
		s->lim.max_text = ANT_MAX_TEXT;
		s->lim.max_args = ANT_MAX_ARGS;
		s->lim.max_tool_calls = ANT_MAX_TOOL_CALLS;
		s->lim.max_blocks = ANT_MAX_BLOCKS;
	}
	s->out = *out;
	s->arg = arg;
	sse_init(&s->sse, s->lim.max_line, on_event, s);
	return s;
}

void ant_stream_free(struct ant_stream *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->nblocks; i++) {
		free(s->blocks[i].id);
		free(s->blocks[i].name);
		free(s->blocks[i].json);
	}
	free(s->blocks);
	sse_release(&s->sse);
	free(s);
}

/* ---- the message ---- */

/* An error object ({"type","message"}) of an error event or a whole answer. */
static int fail_provider(struct ant_stream *s, json_t *err)
{
	const char *type = json_string_value(json_object_get(err, "type"));
	const char *msg = json_string_value(json_object_get(err, "message"));
	int transient = 1;
	const char *code = ant_error_code(type, &transient);

	return fail(s, code ? code : "provider_error", code ? transient : 1,
	    "the provider reported an error in its answer: %.300s%s%.64s%s",
	    msg ? msg : "(no message)", type ? " [" : "", type ? type : "", type ? "]" : "");
}

static void usage(struct ant_stream *s, json_t *u)
{
	json_t *v;

	if (!json_is_object(u))
		return;
	s->have_usage = 1;
	/* cumulative counts: each one given replaces the last */
	if (json_is_integer(v = json_object_get(u, "input_tokens")))
		s->input_tokens = json_integer_value(v);
	if (json_is_integer(v = json_object_get(u, "output_tokens")))
		s->output_tokens = json_integer_value(v);
	if (json_is_integer(v = json_object_get(u, "cache_creation_input_tokens")) ||
	    json_is_integer(json_object_get(u, "cache_read_input_tokens")))
		s->cache_tokens = json_integer_value(json_object_get(u, "cache_creation_input_tokens")) +
		    json_integer_value(json_object_get(u, "cache_read_input_tokens"));
}

static int text(struct ant_stream *s, const char *t, size_t n)
{
	if (n == 0)
		return ANT_MORE;
	if (s->text_len + n > s->lim.max_text)
		return fail(s, "bad_response", 0, "answer text longer than %zu bytes", s->lim.max_text);
	s->text_len += n;
	s->emitted = 1;
	if (s->out.on_text != NULL)
		s->out.on_text(s->arg, t, n);
	return ANT_MORE;
}

/* The block at an event's index: a new one (start) or one started and still open. */
static struct ant_block *block_at(struct ant_stream *s, json_t *obj, int start, const char *ev)
{
	json_t *jidx = json_object_get(obj, "index");
	long long idx = json_is_integer(jidx) ? json_integer_value(jidx) : -1;
	struct ant_block *b;

	if (idx < 0 || (size_t)idx >= s->lim.max_blocks) {
		fail(s, "bad_response", 0, "%s with %s index", ev, idx < 0 ? "no valid" :
		    "a too high");
		return NULL;
	}
	if ((size_t)idx >= s->nblocks) {
		if (!start) {
			fail(s, "bad_response", 0, "%s for content block %lld, which never started",
			    ev, idx);
			return NULL;
		}
		b = realloc(s->blocks, ((size_t)idx + 1) * sizeof(*b));
		if (b == NULL) {
			fail(s, "bad_response", 0, "out of memory for content blocks");
			return NULL;
		}
		memset(b + s->nblocks, 0, ((size_t)idx + 1 - s->nblocks) * sizeof(*b));
		s->blocks = b;
		s->nblocks = (size_t)idx + 1;
	}
	b = &s->blocks[idx];
	if (start && b->type != BLK_NONE) {
		fail(s, "bad_response", 0, "content block %lld started twice", idx);
		return NULL;
	}
	if (!start && !b->open) {
		fail(s, "bad_response", 0, "%s for content block %lld, which %s", ev, idx,
		    b->type == BLK_NONE ? "never started" : "has stopped");
		return NULL;
	}
	return b;
}

static int block_start(struct ant_stream *s, json_t *obj)
{
	json_t *cb = json_object_get(obj, "content_block");
	const char *type = json_string_value(json_object_get(cb, "type"));
	struct ant_block *b;

	if (type == NULL)
		return fail(s, "bad_response", 0, "content_block_start without a block type");
	if ((b = block_at(s, obj, 1, "content_block_start")) == NULL)
		return ANT_FAIL;
	b->open = 1;
	snprintf(b->kind, sizeof(b->kind), "%s", type);
	if (strcmp(type, "text") == 0) {
		json_t *t = json_object_get(cb, "text");
		b->type = BLK_TEXT;
		return text(s, json_string_value(t) ? json_string_value(t) : "",
		    json_string_length(t));
	}
	if (strcmp(type, "tool_use") == 0) {
		const char *id = json_string_value(json_object_get(cb, "id"));
		const char *name = json_string_value(json_object_get(cb, "name"));
		json_t *input = json_object_get(cb, "input");

		b->type = BLK_TOOL;
		if (id == NULL || id[0] == '\0' || name == NULL || name[0] == '\0')
			return fail(s, "bad_response", 0, "a tool_use block without id or name");
		if (s->ntools >= s->lim.max_tool_calls)
			return fail(s, "bad_response", 0, "the answer has more than %zu tool calls",
			    s->lim.max_tool_calls);
		s->ntools++;
		if ((b->id = strdup(id)) == NULL || (b->name = strdup(name)) == NULL)
			return fail(s, "bad_response", 0, "out of memory");
		/* input is {} in a stream; a non-empty one is where the pieces would start */
		if (json_is_object(input) && json_object_size(input) > 0) {
			char *d = json_dumps(input, JSON_COMPACT);
			int rc = d == NULL || adapter_buf_add(&b->json, &b->json_len, &b->json_cap, d,
			    strlen(d), s->lim.max_args) != 0;
			free(d);
			if (rc)
				return fail(s, "bad_response", 0, "cannot keep the input of '%.64s'", name);
		}
		return ANT_MORE;
	}
	b->type = BLK_OTHER; /* thinking, redacted_thinking, server tools: not for the sink */
	return ANT_MORE;
}

static int block_delta(struct ant_stream *s, json_t *obj)
{
	json_t *d = json_object_get(obj, "delta");
	const char *type = json_string_value(json_object_get(d, "type"));
	struct ant_block *b;

	if ((b = block_at(s, obj, 0, "content_block_delta")) == NULL)
		return ANT_FAIL;
	if (type == NULL)
		return fail(s, "bad_response", 0, "content_block_delta without a delta type");
	if (strcmp(type, "text_delta") == 0) {
		json_t *t = json_object_get(d, "text");
		if (b->type != BLK_TEXT || !json_is_string(t))
			return fail(s, "bad_response", 0, "a text_delta for a %s block", b->kind);
		return text(s, json_string_value(t), json_string_length(t));
	}
	if (strcmp(type, "input_json_delta") == 0) {
		json_t *pj = json_object_get(d, "partial_json");
		size_t n = json_string_length(pj);

		if (b->type != BLK_TOOL || !json_is_string(pj))
			return fail(s, "bad_response", 0, "an input_json_delta for a %s block", b->kind);
		if (s->args_len + n > s->lim.max_args)
			return fail(s, "bad_response", 0, "tool-use input longer than %zu bytes",
			    s->lim.max_args);
		if (adapter_buf_add(&b->json, &b->json_len, &b->json_cap, json_string_value(pj), n,
		    s->lim.max_args) != 0)
			return fail(s, "bad_response", 0, "out of memory for tool-use input");
		s->args_len += n;
		return ANT_MORE;
	}
	return ANT_MORE; /* thinking_delta, signature_delta, citations_delta, newer ones */
}

static int block_stop(struct ant_stream *s, json_t *obj)
{
	struct ant_block *b = block_at(s, obj, 0, "content_block_stop");

	if (b == NULL)
		return ANT_FAIL;
	b->open = 0;
	return ANT_MORE;
}

/* A whole Message's content array. */
static int whole_content(struct ant_stream *s, json_t *content)
{
	json_t *cb;
	size_t i;

	json_array_foreach(content, i, cb) {
		json_t *idx = json_integer((json_int_t)i);
		json_t *ev = json_pack("{s:O, s:O}", "index", idx, "content_block", cb);
		int rc = block_start(s, ev);

		if (rc == ANT_MORE)
			rc = block_stop(s, ev);
		json_decref(ev);
		json_decref(idx);
		if (rc != ANT_MORE)
			return ANT_FAIL;
	}
	return ANT_MORE;
}

/* One event, by its name (else its data's type). */
static int apply(struct ant_stream *s, const char *name, json_t *obj)
{
	const char *type;

	if (!json_is_object(obj))
		return fail(s, "bad_response", 0, "the provider sent JSON that is not an object");
	type = name[0] != '\0' ? name : json_string_value(json_object_get(obj, "type"));
	if (type == NULL)
		return fail(s, "bad_response", 0, "an event with neither a name nor a type");
	if (strcmp(type, "error") == 0)
		return fail_provider(s, json_object_get(obj, "error"));
	if (strcmp(type, "ping") == 0)
		return ANT_MORE;
	if (strcmp(type, "message_start") == 0) {
		json_t *m = json_object_get(obj, "message");
		if (s->started)
			return fail(s, "bad_response", 0, "a second message_start");
		s->started = 1;
		usage(s, json_object_get(m, "usage"));
		return whole_content(s, json_object_get(m, "content"));
	}
	if (strcmp(type, "content_block_start") == 0)
		return block_start(s, obj);
	if (strcmp(type, "content_block_delta") == 0)
		return block_delta(s, obj);
	if (strcmp(type, "content_block_stop") == 0)
		return block_stop(s, obj);
	if (strcmp(type, "message_delta") == 0) {
		const char *sr = json_string_value(json_object_get(json_object_get(obj, "delta"),
		    "stop_reason"));
		if (sr != NULL && sr[0] != '\0')
			snprintf(s->stop, sizeof(s->stop), "%s", sr);
		usage(s, json_object_get(obj, "usage"));
		return ANT_MORE;
	}
	if (strcmp(type, "message_stop") == 0) {
		s->state = ANT_END;
		return ANT_END;
	}
	return ANT_MORE; /* an event type newer than this adapter: ignored, as SDKs do */
}

int ant_stream_feed_json(struct ant_stream *s, const char *body, size_t len)
{
	json_error_t e;
	json_t *obj;
	const char *type, *sr;
	int rc;

	if (s->state != ANT_MORE)
		return s->state;
	if ((obj = json_loadb(body, len, 0, &e)) == NULL)
		return fail(s, "bad_response", 0, "the answer is not JSON: %s", e.text);
	type = json_string_value(json_object_get(obj, "type"));
	if (type != NULL && strcmp(type, "error") == 0) {
		rc = fail_provider(s, json_object_get(obj, "error"));
	} else if (!json_is_array(json_object_get(obj, "content"))) {
		rc = fail(s, "bad_response", 0, "the answer is not a message: it has no content array");
	} else {
		usage(s, json_object_get(obj, "usage"));
		sr = json_string_value(json_object_get(obj, "stop_reason"));
		if (sr != NULL)
			snprintf(s->stop, sizeof(s->stop), "%s", sr);
		s->started = 1;
		rc = whole_content(s, json_object_get(obj, "content"));
	}
	json_decref(obj);
	if (rc == ANT_MORE)
		s->state = ANT_END;
	return s->state;
}

/* ---- server-sent events ---- */

/* An event's name as this assembler knows it: one longer than any the API uses is "?",
 * dispatched by nothing. */
static const char *event_name(const char *name, size_t len)
{
	return len < SSE_NAME_MAX ? name : "?";
}

/* One event. Nonzero, to stop the framer, once the message has ended or failed. */
static int on_event(void *arg, const struct sse_event *ev)
{
	struct ant_stream *s = arg;
	const char *name = event_name(ev->name, ev->name_len);
	json_error_t e;
	json_t *obj;

	if ((obj = json_loadb(ev->data, ev->data_len, 0, &e)) == NULL) {
		fail(s, "bad_response", 0, "the data of event '%s' is not JSON: %s",
		    name[0] ? name : "(unnamed)", e.text);
	} else {
		apply(s, name, obj);
		json_decref(obj);
	}
	return s->state != ANT_MORE;
}

/* What the framer returned: a line or an event's data too long fails the stream. */
static int framed(struct ant_stream *s, int rc)
{
	if (rc == SSE_TOO_LONG)
		return fail(s, "bad_response", 0, "%s", sse_error(&s->sse));
	return s->state;
}

int ant_stream_feed(struct ant_stream *s, const char *data, size_t len)
{
	if (s->state != ANT_MORE)
		return s->state;
	return framed(s, sse_feed(&s->sse, data, len));
}

static const char *stop_reason(const char *stop, size_t ntools)
{
	static const char *const same[] = {"end_turn", "tool_use", "max_tokens", "stop_sequence",
		"refusal"};

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		if (strcmp(stop, same[i]) == 0)
			return same[i];
	}
	if (strcmp(stop, "model_context_window_exceeded") == 0)
		return "max_tokens"; /* cut short by a length limit, as max_tokens is */
	/* pause_turn (a server tool's long turn), none, or one newer than this adapter */
	return ntools > 0 ? "tool_use" : "end_turn";
}

/* The message is complete: every block stopped; the tool calls, each checked before any
 * goes out, then the usage. */
static int complete(struct ant_stream *s)
{
	char **calls = calloc(s->ntools + 1, sizeof(*calls));
	size_t i, k = 0;
	int rc = ANT_END;

	if (calls == NULL)
		return fail(s, "bad_response", 0, "out of memory");
	for (i = 0; i < s->nblocks && rc == ANT_END; i++) {
		struct ant_block *b = &s->blocks[i];
		json_error_t e;
		json_t *args, *call;

		if (b->open) {
			rc = fail(s, "bad_response", 0, "the message ended with content block %zu (%s) "
			    "still open", i, b->kind);
			break;
		}
		if (b->type != BLK_TOOL)
			continue;
		args = b->json_len == 0 ? json_object() : json_loadb(b->json, b->json_len, 0, &e);
		if (args == NULL || !json_is_object(args)) {
			json_decref(args);
			rc = fail(s, "bad_response", 0, "the input of tool call '%.64s' is not a JSON "
			    "object%s", b->name, strcmp(s->stop, "max_tokens") == 0 ?
			    " (the answer reached max_tokens inside it)" : "");
			break;
		}
		call = json_pack("{s:s, s:s, s:o}", "id", b->id, "name", b->name, "arguments", args);
		if (call == NULL || (calls[k++] = json_dumps(call, JSON_COMPACT)) == NULL)
			rc = fail(s, "bad_response", 0, "cannot encode tool call '%.64s'", b->name);
		json_decref(call);
	}
	for (i = 0; i < k; i++) {
		if (rc == ANT_END && calls[i] != NULL && s->out.on_tool_call != NULL) {
			s->emitted = 1;
			s->out.on_tool_call(s->arg, calls[i], strlen(calls[i]));
		}
		free(calls[i]);
	}
	free(calls);
	if (rc != ANT_END)
		return rc;
	if (s->have_usage && s->out.on_usage != NULL) {
		s->emitted = 1;
		s->out.on_usage(s->arg, s->input_tokens + s->cache_tokens, s->output_tokens);
	}
	s->stop_reason = stop_reason(s->stop, s->ntools);
	return ANT_END;
}

/* The first block still open, or NULL. */
static const struct ant_block *open_block(const struct ant_stream *s, size_t *index)
{
	for (size_t i = 0; i < s->nblocks; i++) {
		if (s->blocks[i].open) {
			*index = i;
			return &s->blocks[i];
		}
	}
	return NULL;
}

int ant_stream_finish(struct ant_stream *s)
{
	const struct ant_block *b;
	size_t idx = 0;

	if (s->stop_reason != NULL || s->state == ANT_FAIL)
		return s->state; /* finished already */
	if (s->state == ANT_MORE) {
		/* A last line without its end, a last event without its blank line: only a
		 * message_stop counts; any other event cut off is dropped, as SSE says. */
		framed(s, sse_flush(&s->sse));
		if (s->state == ANT_MORE && s->sse.has_data &&
		    strcmp(event_name(s->sse.name, s->sse.name_len), "message_stop") == 0)
			sse_dispatch(&s->sse);
	}
	if (s->state == ANT_MORE) {
		b = open_block(s, &idx);
		if (!s->started && s->sse.events == 0 && s->sse.unknown_lines > 0)
			return fail(s, "bad_response", 0, "the answer is not a server-sent event stream");
		if (b != NULL)
			return fail(s, "stream_cut", 1, "the stream ended inside content block %zu (%s), "
			    "before message_stop", idx, b->kind);
		if (s->stop[0] == '\0')
			return fail(s, "stream_cut", 1, "the stream ended before message_stop and "
			    "before a stop reason");
		s->state = ANT_END; /* message_delta with its stop reason: complete enough */
	}
	if (s->state == ANT_FAIL)
		return ANT_FAIL;
	return complete(s);
}

const char *ant_stream_stop_reason(const struct ant_stream *s)
{
	return s->stop_reason;
}

const char *ant_stream_error(const struct ant_stream *s, const char **message, int *retryable)
{
	if (message != NULL)
		*message = s->message;
	if (retryable != NULL)
		*retryable = s->retryable;
	return s->state == ANT_FAIL ? s->code : NULL;
}

int ant_stream_emitted(const struct ant_stream *s)
{
	return s->emitted;
}
