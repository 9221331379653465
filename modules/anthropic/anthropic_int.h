/* anthropic_int.h: the anthropic adapter's internal parts, pure and testable without a
 * network (t/unit/test_anthropic_sse.c): the request mapping (anthropic_req.c) and the
 * Messages event-stream assembler (anthropic_sse.c). Only jansson, libc and
 * modules/common/; no host, no loop. The wire format is
 * shared/protocols/anthropic-messages.md. */
#ifndef CRAB_ANTHROPIC_INT_H
#define CRAB_ANTHROPIC_INT_H

#include <stddef.h>
#include <stdint.h>

/* ---- the request: provider-neutral JSON to a Messages body ---- */

struct ant_req_opts {
	const char *model;    /* when the request names none; NULL: none */
	long long max_tokens; /* when the request gives none (the API requires one) */
	/* The first system block, exactly (a Claude subscription's token is refused
	 * without Claude Code's); NULL: system is one text. */
	const char *system_prefix;
};

/* The body to POST (malloc'd, NUL-terminated, *len bytes); *stream says whether it asks
 * for a stream. NULL with a reason in err when the request cannot be mapped. */
char *ant_request_build(const char *req, size_t req_len, const struct ant_req_opts *opt,
    size_t *len, int *stream, char *err, size_t errlen);

/* The provider's error body ({"type":"error","error":{"type","message"},"request_id"},
 * or anything else) as a message for a person: at most ANT_MSG_MAX bytes of the
 * provider's message, control characters blanked, into msg; error.type into type, the
 * body's request_id into request_id (each "" when absent). */
#define ANT_MSG_MAX 300
void ant_error_body(const char *body, size_t len, char *msg, size_t msglen, char *type,
    size_t typelen, char *request_id, size_t idlen);

/* An error.type of the API as the sink's code ("rate_limit_error" -> "rate_limited",
 * "overloaded_error" -> "overloaded", ...); *transient says whether trying again may help.
 * NULL for a type it does not know. */
const char *ant_error_code(const char *type, int *transient);

/* ---- the assembler: SSE bytes (or one whole answer) to sink calls ---- */

#define ANT_MAX_LINE (1u << 20)      /* an SSE line, and one event's data */
#define ANT_MAX_TEXT (4u << 20)      /* answer text in all */
#define ANT_MAX_ARGS (4u << 20)      /* tool-use input JSON in all */
#define ANT_MAX_TOOL_CALLS 64
#define ANT_MAX_BLOCKS 256           /* content blocks (any type) of one answer */

struct ant_limits {
	size_t max_line, max_text, max_args, max_tool_calls, max_blocks;
};

/* Where the assembler reports: text as it arrives; tool calls ({"id","name",
 * "arguments":{...}}) and usage once the answer is complete. */
struct ant_out {
	void (*on_text)(void *arg, const char *text, size_t len);
	void (*on_tool_call)(void *arg, const char *call_json, size_t len);
	void (*on_usage)(void *arg, int64_t input_tokens, int64_t output_tokens);
};

enum { ANT_FAIL = -1, ANT_MORE = 0, ANT_END = 1 };

struct ant_stream;

/* limits NULL: the ANT_MAX_* defaults. out is copied; arg is its callbacks' first
 * argument. */
struct ant_stream *ant_stream_new(const struct ant_limits *limits, const struct ant_out *out,
    void *arg);
void ant_stream_free(struct ant_stream *s);

/* Bytes of a server-sent event stream, split anywhere. ANT_MORE: go on; ANT_END:
 * message_stop came (later bytes are ignored); ANT_FAIL: see ant_stream_error. */
int ant_stream_feed(struct ant_stream *s, const char *data, size_t len);
/* One whole Message object (a non-streamed answer) instead of a stream. */
int ant_stream_feed_json(struct ant_stream *s, const char *body, size_t len);
/* The body has ended. ANT_END after reporting the tool calls and the usage: the answer
 * is complete and ant_stream_stop_reason says how it ended; ANT_FAIL otherwise, with
 * nothing more reported ("stream_cut" when it ended before message_stop, perhaps inside
 * a content block). */
int ant_stream_finish(struct ant_stream *s);

/* The sink's stop reason: "end_turn", "tool_use", "max_tokens", "stop_sequence",
 * "refusal"; NULL before ANT_END. */
const char *ant_stream_stop_reason(const struct ant_stream *s);
/* After ANT_FAIL: a code ("bad_response", "stream_cut", or the mapped error.type of an
 * error event: "overloaded", "rate_limited", "provider_error", ...), a message for a
 * person, and whether trying again may help. NULL otherwise. */
const char *ant_stream_error(const struct ant_stream *s, const char **message, int *retryable);
/* Whether anything went to on_text, on_tool_call or on_usage. */
int ant_stream_emitted(const struct ant_stream *s);

#endif
