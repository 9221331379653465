/* openai_int.h: the openai adapter's internal parts, pure and testable without a
 * network (t/unit/test_openai_sse.c): the request mapping (openai_req.c) and the
 * SSE/chunk assembler (openai_sse.c). Only jansson, libc and modules/common/; no host,
 * no loop. */
#ifndef CRAB_OPENAI_INT_H
#define CRAB_OPENAI_INT_H

#include <stddef.h>
#include <stdint.h>

/* ---- the request: provider-neutral JSON to a Chat Completions body ---- */

struct oai_req_opts {
	const char *model;            /* when the request names none; NULL: none */
	const char *max_tokens_field; /* "max_completion_tokens", or "max_tokens" */
	int include_usage;            /* stream_options.include_usage when streaming */
};

/* The body to POST (malloc'd, NUL-terminated, *len bytes); *stream says whether it asks
 * for a stream. NULL with a reason in err when the request cannot be mapped. */
char *oai_request_build(const char *req, size_t req_len, const struct oai_req_opts *opt,
    size_t *len, int *stream, char *err, size_t errlen);

/* The provider's error body ({"error":{"message","code","type"}}, {"error":"..."}, or
 * anything else) as a message for a person: at most OAI_MSG_MAX bytes of the provider's
 * message, control characters blanked, into msg; its code (else type) into code. */
#define OAI_MSG_MAX 300
void oai_error_body(const char *body, size_t len, char *msg, size_t msglen, char *code,
    size_t codelen);

/* ---- the assembler: SSE bytes (or one whole answer) to sink calls ---- */

#define OAI_MAX_LINE (1u << 20)      /* an SSE line, and one event's data */
#define OAI_MAX_TEXT (4u << 20)      /* answer text in all */
#define OAI_MAX_ARGS (4u << 20)      /* tool-call arguments in all */
#define OAI_MAX_TOOL_CALLS 64

struct oai_limits {
	size_t max_line, max_text, max_args, max_tool_calls;
};

/* Where the assembler reports: text as it arrives; tool calls ({"id","name",
 * "arguments":{...}}) and usage once the answer is complete, from oai_stream_finish. */
struct oai_out {
	void (*on_text)(void *arg, const char *text, size_t len);
	void (*on_tool_call)(void *arg, const char *call_json, size_t len);
	void (*on_usage)(void *arg, int64_t input_tokens, int64_t output_tokens);
};

enum { OAI_FAIL = -1, OAI_MORE = 0, OAI_END = 1 };

struct oai_stream;

/* limits NULL: the OAI_MAX_* defaults. out is copied; arg is its callbacks' first
 * argument. */
struct oai_stream *oai_stream_new(const struct oai_limits *limits, const struct oai_out *out,
    void *arg);
void oai_stream_free(struct oai_stream *s);

/* Bytes of a server-sent event stream, split anywhere. OAI_MORE: go on; OAI_END:
 * [DONE] came (later bytes are ignored); OAI_FAIL: see oai_stream_error. */
int oai_stream_feed(struct oai_stream *s, const char *data, size_t len);
/* One whole chat.completion object (a non-streaming answer) instead of a stream. */
int oai_stream_feed_json(struct oai_stream *s, const char *body, size_t len);
/* The body has ended. OAI_END after reporting the tool calls and the usage: the answer
 * is complete and oai_stream_stop_reason says how it ended; OAI_FAIL otherwise, with
 * nothing reported ("stream_cut" when it ended before [DONE] and before a finish
 * reason). */
int oai_stream_finish(struct oai_stream *s);

const char *oai_stream_stop_reason(const struct oai_stream *s);
/* After OAI_FAIL: a code ("bad_response", "stream_cut", "provider_error"), a message for
 * a person, and whether trying again may help. */
const char *oai_stream_error(const struct oai_stream *s, const char **message, int *retryable);

#endif
