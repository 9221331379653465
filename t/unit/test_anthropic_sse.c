/* test_anthropic_sse.c: the anthropic adapter's pure parts, without a network. The
 * Messages event assembler fed whole, byte by byte, in pieces of 7, irregularly and in
 * random pieces (every stream must give the same sink calls whatever the split): text with
 * ping and usage, tool_use blocks from input_json_delta pieces, stop reasons, an error
 * event, a stream cut inside a block and between blocks, CRLF and CR line ends, unnamed
 * events, thinking blocks, garbage, the limits; a whole non-streamed answer; the request
 * mapping; error bodies. The module itself on a host is in test_anthropic_module.c. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi/crab_module_v1.h"
#include "modules/anthropic/anthropic_int.h"
#include "t/unit/unit.h"
#include "t/unit/sse_splits.h"
#include "t/unit/ant_events.h"

static const struct ant_out outs = {g_text, g_call, g_usage};

static int piece(void *s, const char *p, size_t n)
{
	return ant_stream_feed(s, p, n); /* ANT_MORE 0, ANT_END 1: splits_feed's terms */
}

/* Feeds sse in pieces of step bytes (see splits_feed), then finishes. */
static void feed(struct run *r, const char *sse, size_t len, long step,
    const struct ant_limits *lim)
{
	struct ant_stream *s;
	const char *code, *msg = "";

	run_begin(r);
	s = ant_stream_new(lim, &outs, &r->g);
	splits_feed(piece, s, sse, len, step);
	r->rc = ant_stream_finish(s);
	code = ant_stream_error(s, &msg, &r->retryable);
	run_record(r, code, msg, ant_stream_stop_reason(s));
	ant_stream_free(s);
}

static void feed_default(struct run *r, const char *sse, size_t len, long step)
{
	feed(r, sse, len, step, NULL);
}

/* The same result fed whole, byte by byte, in pieces of 7, irregularly, and in random
 * pieces with three seeds. */
static int same_every_split(const char *sse, int (*check)(struct run *), const char *what)
{
	static const long steps[] = {0, 1, 7, -1, -2, -2, -2};

	return splits_same(feed_default, steps, sizeof(steps) / sizeof(steps[0]), sse, check,
	    what);
}

static const char text_stream[] =
    MSG_START("412")
    TEXT_START("0")
    PING
    TEXT_DELTA("0", "Hel")
    TEXT_DELTA("0", "lo \\u00e9\\n\\\"x\\\"")
    PING
    BLOCK_STOP("0")
    MSG_DELTA("end_turn", "17")
    MSG_STOP;

static int text_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->g.text, "Hello \xc3\xa9\n\"x\"") == 0 &&
	    strcmp(r->stop, "end_turn") == 0 && json_array_size(r->g.calls) == 0 &&
	    r->g.usage_calls == 1 && r->g.in == 412 && r->g.out == 17;
}

/* The notes' example: text, then a tool_use whose input comes in pieces (the first
 * empty); a second tool_use with no delta at all ({}). */
static const char tool_stream[] =
    MSG_START("412")
    TEXT_START("0")
    TEXT_DELTA("0", "Let me ")
    TEXT_DELTA("0", "check.")
    BLOCK_STOP("0")
    TOOL_START("1", "toolu_01A", "get_weather")
    JSON_DELTA("1", "")
    JSON_DELTA("1", "{\\\"city\\\": \\\"Pa")
    PING
    JSON_DELTA("1", "ris\\\", \\\"days\\\": [1, ")
    JSON_DELTA("1", "2]}")
    BLOCK_STOP("1")
    TOOL_START("2", "toolu_01B", "get_time")
    BLOCK_STOP("2")
    MSG_DELTA("tool_use", "57")
    MSG_STOP;

static int tools_ok(struct run *r)
{
	json_t *a = json_array_get(r->g.calls, 0), *b = json_array_get(r->g.calls, 1);
	json_t *want_a = json_pack("{s:s, s:[i,i]}", "city", "Paris", "days", 1, 2);
	int ok = r->rc == ANT_END && strcmp(r->stop, "tool_use") == 0 &&
	    strcmp(r->g.text, "Let me check.") == 0 && json_array_size(r->g.calls) == 2 &&
	    strcmp(json_string_value(json_object_get(a, "id")), "toolu_01A") == 0 &&
	    strcmp(json_string_value(json_object_get(a, "name")), "get_weather") == 0 &&
	    json_equal(json_object_get(a, "arguments"), want_a) &&
	    strcmp(json_string_value(json_object_get(b, "id")), "toolu_01B") == 0 &&
	    strcmp(json_string_value(json_object_get(b, "name")), "get_time") == 0 &&
	    json_is_object(json_object_get(b, "arguments")) &&
	    json_object_size(json_object_get(b, "arguments")) == 0 &&
	    r->g.usage_calls == 1 && r->g.order_ok && r->g.in == 412 && r->g.out == 57;
	json_decref(want_a);
	return ok;
}

static int error_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "overloaded") == 0 && r->retryable == 1 &&
	    strstr(r->message, "Overloaded") != NULL && strstr(r->message, "overloaded_error") &&
	    strcmp(r->g.text, "Hi") == 0 && r->g.usage_calls == 0;
}

static int cut_block_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "stream_cut") == 0 && r->retryable == 1 &&
	    strstr(r->message, "inside content block 0 (text)") != NULL &&
	    strcmp(r->g.text, "Hello") == 0 && r->g.usage_calls == 0;
}

static int cut_tool_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "stream_cut") == 0 &&
	    strstr(r->message, "content block 1 (tool_use)") != NULL &&
	    json_array_size(r->g.calls) == 0 && strcmp(r->g.text, "Let me check.") == 0;
}

static int cut_between_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "stream_cut") == 0 &&
	    strstr(r->message, "before message_stop") != NULL && strcmp(r->g.text, "Hello") == 0;
}

static int no_stop_event_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->g.text, "Hello") == 0 &&
	    strcmp(r->stop, "max_tokens") == 0 && r->g.usage_calls == 1 && r->g.out == 3;
}

static int crlf_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->g.text, "Hello") == 0 &&
	    strcmp(r->stop, "stop_sequence") == 0;
}

static int unnamed_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->g.text, "ab") == 0 && strcmp(r->stop, "end_turn") == 0;
}

static int thinking_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->g.text, "42") == 0 && strcmp(r->stop, "refusal") == 0;
}

static int garbage_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "not JSON") != NULL && r->retryable == 0;
}

static int html_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "not a server-sent event stream") != NULL;
}

static int orphan_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "never started") != NULL;
}

static int mismatch_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "input_json_delta for a text block") != NULL;
}

static int max_tokens_tool_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "get_weather") != NULL && strstr(r->message, "max_tokens") != NULL &&
	    json_array_size(r->g.calls) == 0;
}

static int last_stop_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->g.text, "Hello") == 0 && strcmp(r->stop, "end_turn") == 0;
}

static int window_ok(struct run *r)
{
	return r->rc == ANT_END && strcmp(r->stop, "max_tokens") == 0;
}

static int rate_event_ok(struct run *r)
{
	return r->rc == ANT_FAIL && strcmp(r->code, "rate_limited") == 0 && r->retryable == 1 &&
	    r->g.text_len == 0;
}

static void test_streams(void)
{
	same_every_split(text_stream, text_ok, "text with pings: the text, usage once, end_turn");
	same_every_split(tool_stream, tools_ok,
	    "text then two tool_use blocks from input_json_delta pieces: assembled, tool_use");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Hi")
	    EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"Overloaded\"}}") TEXT_DELTA("0", "more"),
	    error_ok, "an error event after text: overloaded, retryable, nothing after it");
	same_every_split(EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
	    "\"message\":\"slow down\"}}"), rate_event_ok, "an error event first: rate_limited");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Hel") TEXT_DELTA("0", "lo")
	    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"ind",
	    cut_block_ok, "a stream cut inside a text block: stream_cut naming the block");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Let me check.")
	    BLOCK_STOP("0") TOOL_START("1", "toolu_1", "get_weather") JSON_DELTA("1", "{\\\"ci"),
	    cut_tool_ok, "a stream cut inside a tool_use block: stream_cut, no tool call");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Hello") BLOCK_STOP("0"),
	    cut_between_ok, "a stream cut between blocks, before message_delta: stream_cut");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Hello") BLOCK_STOP("0")
	    MSG_DELTA("max_tokens", "3"), no_stop_event_ok,
	    "message_delta with a stop reason but no message_stop: complete (max_tokens)");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Hello") BLOCK_STOP("0")
	    MSG_DELTA("end_turn", "3") "event: message_stop\ndata: {\"type\":\"message_stop\"}",
	    last_stop_ok,
	    "a last message_stop without its blank line still ends the stream");
	same_every_split("event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":"
	    "{\"content\":[],\"usage\":{\"input_tokens\":1,\"output_tokens\":0}}}\r\n\r\n"
	    "event:content_block_start\rdata:{\"type\":\"content_block_start\",\"index\":0,"
	    "\"content_block\":{\"type\":\"text\",\"text\":\"He\"}}\r\r"
	    ": a comment\r\nid: 3\r\nretry: 10\r\n"
	    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,"
	    "\"delta\":{\"type\":\"text_delta\",\"text\":\"llo\"}}\r\n\r\n"
	    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
	    "\"stop_sequence\",\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":2}}\n\n"
	    MSG_STOP, crlf_ok,
	    "CRLF and CR line ends, fields without their space, a block opening with text, comments");
	same_every_split("data: {\"type\":\"message_start\",\"message\":{\"content\":[]}}\n\n"
	    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"
	    "event: something_new\ndata: {\"type\":\"something_new\",\"x\":1}\n\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"b\"}}\n\n"
	    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
	    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n"
	    "data: {\"type\":\"message_stop\"}\n\n", unnamed_ok,
	    "events without an event: line go by their type; an unknown event is ignored");
	same_every_split(MSG_START("5")
	    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
	    "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}")
	    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
	    "\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}")
	    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
	    "\"delta\":{\"type\":\"signature_delta\",\"signature\":\"sig\"}}")
	    BLOCK_STOP("0") TEXT_START("1") TEXT_DELTA("1", "42") BLOCK_STOP("1")
	    MSG_DELTA("refusal", "9") MSG_STOP, thinking_ok,
	    "a thinking block is not text; stop reason refusal");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "Hi")
	    "event: content_block_delta\ndata: {\"type\": oops\n\n" MSG_STOP, garbage_ok,
	    "an event's data that is not JSON: bad_response");
	same_every_split("<html><body>502 Bad Gateway</body></html>\n", html_ok,
	    "an HTML page instead of events: bad_response");
	same_every_split(MSG_START("5") TEXT_DELTA("3", "x") MSG_STOP, orphan_ok,
	    "a delta for a block that never started: bad_response");
	same_every_split(MSG_START("5") TEXT_START("0") JSON_DELTA("0", "{}") MSG_STOP, mismatch_ok,
	    "an input_json_delta for a text block: bad_response");
	same_every_split(MSG_START("5") TOOL_START("0", "toolu_1", "get_weather")
	    JSON_DELTA("0", "{\\\"city\\\": \\\"Par") BLOCK_STOP("0") MSG_DELTA("max_tokens", "9")
	    MSG_STOP, max_tokens_tool_ok,
	    "max_tokens inside a tool_use block: bad_response saying so, no tool call");
	same_every_split(MSG_START("5") TEXT_START("0") TEXT_DELTA("0", "a") BLOCK_STOP("0")
	    MSG_DELTA("model_context_window_exceeded", "9") MSG_STOP, window_ok,
	    "model_context_window_exceeded is max_tokens");
}

static void test_limits(void)
{
	struct run r;
	size_t big = ANT_MAX_LINE + 10;
	char *line = malloc(big + 1);
	const char *after = MSG_START("1") TEXT_START("0") TEXT_DELTA("0", "Hi") BLOCK_STOP("0")
	    MSG_DELTA("end_turn", "1") MSG_STOP "garbage\ndata: {oops\n\n";

	feed(&r, after, strlen(after), 3, NULL);
	CHECK(r.rc == ANT_END && strcmp(r.g.text, "Hi") == 0, "bytes after message_stop are ignored");
	run_free(&r);

	memcpy(line, "data: ", 6);
	memset(line + 6, 'x', big - 6);
	line[big] = '\0';
	feed(&r, line, big, 4096, NULL);
	CHECK(r.rc == ANT_FAIL && strcmp(r.code, "bad_response") == 0 &&
	    strstr(r.message, "longer than 1048576") != NULL,
	    "a line over 1 MiB, in pieces: bad_response naming the limit");
	run_free(&r);
	line[big - 1] = '\n';
	feed(&r, line, big, 0, NULL);
	CHECK(r.rc == ANT_FAIL && strstr(r.message, "longer than") != NULL,
	    "and in one piece with its line end");
	run_free(&r);
	free(line);
	{
		const char *s = MSG_START("1") TEXT_START("0") TEXT_DELTA("0", "12345")
		    TEXT_DELTA("0", "6789") BLOCK_STOP("0") MSG_STOP;
		struct ant_limits l = {4096, 8, 16, 2, 4};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == ANT_FAIL && strstr(r.message, "text longer than 8") != NULL &&
		    strcmp(r.g.text, "12345") == 0, "the text limit: an error, nothing beyond it");
		run_free(&r);
	}
	{
		const char *s = MSG_START("1") TOOL_START("0", "a", "x") BLOCK_STOP("0")
		    TOOL_START("1", "b", "x") BLOCK_STOP("1") TOOL_START("2", "c", "x") BLOCK_STOP("2")
		    MSG_STOP;
		struct ant_limits l = {4096, 8, 16, 2, 4};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == ANT_FAIL && strstr(r.message, "more than 2 tool calls") != NULL &&
		    json_array_size(r.g.calls) == 0, "the tool-call count limit");
		run_free(&r);
	}
	{
		const char *s = MSG_START("1") TOOL_START("0", "a", "x")
		    JSON_DELTA("0", "{\\\"k\\\":\\\"0123456789abcdef\\\"}") BLOCK_STOP("0") MSG_STOP;
		struct ant_limits l = {4096, 8, 16, 2, 4};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == ANT_FAIL && strstr(r.message, "input longer than 16") != NULL,
		    "the tool-input limit");
		run_free(&r);
	}
	{
		const char *s = MSG_START("1") TEXT_START("4") MSG_STOP;
		struct ant_limits l = {4096, 8, 16, 2, 4};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == ANT_FAIL && strstr(r.message, "too high index") != NULL,
		    "the block index limit");
		run_free(&r);
	}
	{
		const char *s = MSG_START("1") TEXT_START("0") TEXT_START("0") MSG_STOP;
		feed(&r, s, strlen(s), 0, NULL);
		CHECK(r.rc == ANT_FAIL && strstr(r.message, "started twice") != NULL,
		    "a block started twice: bad_response");
		run_free(&r);
	}
	{
		const char *s = MSG_START("1") TEXT_START("0") TEXT_DELTA("0", "a") MSG_STOP;
		feed(&r, s, strlen(s), 0, NULL);
		CHECK(r.rc == ANT_FAIL && strcmp(r.code, "bad_response") == 0 &&
		    strstr(r.message, "still open") != NULL,
		    "message_stop with a block still open: bad_response, not a silent answer");
		run_free(&r);
	}
	{ /* cache tokens count as input */
		const char *s = EV("message_start", "{\"type\":\"message_start\",\"message\":{\"content\":[],"
		    "\"usage\":{\"input_tokens\":10,\"cache_creation_input_tokens\":5,"
		    "\"cache_read_input_tokens\":100,\"output_tokens\":1}}}")
		    MSG_DELTA("end_turn", "7") MSG_STOP;
		feed(&r, s, strlen(s), 0, NULL);
		CHECK(r.rc == ANT_END && r.g.in == 115 && r.g.out == 7 && r.g.text_len == 0,
		    "usage: cache creation and reads count as input; output from message_delta");
		run_free(&r);
	}
	feed(&r, "", 0, 0, NULL);
	CHECK(r.rc == ANT_FAIL && strcmp(r.code, "stream_cut") == 0, "an empty body is a cut stream");
	run_free(&r);
}

static void test_whole(void)
{
	const char *body = "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\","
	    "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":["
	    "{\"type\":\"text\",\"text\":\"Let me check.\"},{\"type\":\"tool_use\",\"id\":"
	    "\"toolu_01A\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}],"
	    "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":412,"
	    "\"output_tokens\":57,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}";
	struct got g = {.calls = json_array(), .order_ok = 1};
	struct ant_stream *s = ant_stream_new(NULL, &outs, &g);
	const char *msg;
	int rc, retryable;

	rc = ant_stream_feed_json(s, body, strlen(body));
	rc = rc == ANT_END ? ant_stream_finish(s) : rc;
	CHECK(rc == ANT_END && strcmp(g.text, "Let me check.") == 0 &&
	    json_array_size(g.calls) == 1 && g.usage_calls == 1 && g.in == 412 && g.out == 57 &&
	    g.order_ok && strcmp(ant_stream_stop_reason(s), "tool_use") == 0 &&
	    strcmp(json_string_value(json_object_get(json_object_get(json_array_get(g.calls, 0),
		"arguments"), "city")), "Paris") == 0,
	    "a whole answer: text, the tool call, usage after it, tool_use");
	ant_stream_free(s);
	json_decref(g.calls);

	g = (struct got){.calls = json_array()};
	s = ant_stream_new(NULL, &outs, &g);
	body = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}";
	rc = ant_stream_feed_json(s, body, strlen(body));
	CHECK(rc == ANT_FAIL && strcmp(ant_stream_error(s, &msg, &retryable), "overloaded") == 0 &&
	    retryable == 1 && strstr(msg, "Overloaded") != NULL, "a whole answer that is an error");
	ant_stream_free(s);
	s = ant_stream_new(NULL, &outs, &g);
	rc = ant_stream_feed_json(s, "{\"content\":[{\"type\":", 20);
	CHECK(rc == ANT_FAIL && strcmp(ant_stream_error(s, &msg, NULL), "bad_response") == 0,
	    "a whole answer that is not JSON: bad_response");
	ant_stream_free(s);
	s = ant_stream_new(NULL, &outs, &g);
	rc = ant_stream_feed_json(s, "{\"type\":\"message\"}", 18);
	CHECK(rc == ANT_FAIL && strcmp(ant_stream_error(s, &msg, NULL), "bad_response") == 0 &&
	    strstr(msg, "no content array") != NULL,
	    "a whole answer without content: bad_response");
	ant_stream_free(s);
	json_decref(g.calls);
}

static json_t *build(const char *req, const struct ant_req_opts *o, int *stream, char *err)
{
	size_t len = 0;
	char *body = ant_request_build(req, strlen(req), o, &len, stream, err, 256);
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	free(body);
	return j;
}

static void test_request(void)
{
	struct ant_req_opts o = {"claude-sonnet-4-5", 4096, NULL};
	char err[256];
	int stream = -1;
	json_t *j, *m, *want;
	const char *req = "{\"system\":\"You are terse.\",\"max_tokens\":100,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
	    "{\"role\":\"assistant\",\"content\":\"Checking.\",\"tool_calls\":[{\"id\":\"toolu_01A\","
	    "\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}},{\"id\":\"toolu_01B\","
	    "\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":\\\"CET\\\"}\"}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"toolu_01A\",\"content\":\"18C, sunny\"},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"toolu_01B\",\"content\":\"{\\\"error\\\":{\\\"code\\\":\\\"boom\\\"}}\"},"
	    "{\"role\":\"assistant\",\"content\":null},"
	    "{\"role\":\"user\",\"content\":\"and tomorrow?\"}],"
	    "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Current weather\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
	    "\"required\":[\"city\"]}},{\"name\":\"get_time\"},{\"name\":\"get_day\","
	    "\"description\":\"\",\"input_schema\":{\"properties\":{\"tz\":{\"type\":\"string\"}}}}]}";

	j = build(req, &o, &stream, err);
	m = json_object_get(j, "messages");
	CHECK(j != NULL && stream == 1 && json_is_true(json_object_get(j, "stream")),
	    "a request maps; stream by default");
	CHECK_STR(json_string_value(json_object_get(j, "model")), "claude-sonnet-4-5",
	    "the config's model when the request names none");
	CHECK_STR(json_string_value(json_object_get(j, "system")), "You are terse.",
	    "system is the top-level system, not a message");
	CHECK_INT(json_integer_value(json_object_get(j, "max_tokens")), 100, "the request's max_tokens");
	want = json_loads("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Weather in Paris?\"}]},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Checking.\"},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_01B\",\"name\":\"get_time\",\"input\":{\"tz\":\"CET\"}}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01A\","
	    "\"content\":\"18C, sunny\"},{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_01B\","
	    "\"content\":\"{\\\"error\\\":{\\\"code\\\":\\\"boom\\\"}}\",\"is_error\":true},"
	    "{\"type\":\"text\",\"text\":\"and tomorrow?\"}]}]", 0, NULL);
	if (!CHECK(json_equal(m, want), "tool calls as tool_use blocks; the results and the next "
	    "user text as one user message of tool_result blocks (is_error for a failed call); "
	    "an empty assistant message left out")) {
		char *got = json_dumps(m, JSON_COMPACT);
		printf("#   got %s\n", got);
		free(got);
	}
	json_decref(want);
	want = json_loads("[{\"name\":\"get_weather\",\"description\":\"Current weather\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
	    "\"required\":[\"city\"]}},{\"name\":\"get_time\",\"input_schema\":{\"type\":\"object\","
	    "\"properties\":{}}},{\"name\":\"get_day\",\"input_schema\":{\"type\":\"object\","
	    "\"properties\":{\"tz\":{\"type\":\"string\"}}}}]", 0, NULL);
	CHECK(json_equal(json_object_get(j, "tools"), want),
	    "tools with input_schema (an empty object schema when none, type object said when "
	    "not; an empty description left out)");
	json_decref(want);
	json_decref(j);

	j = build("{\"model\":\"claude-haiku\",\"stream\":false,\"messages\":["
	    "{\"role\":\"system\",\"content\":\"Be kind.\"},{\"role\":\"user\",\"content\":\"a\"},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},{\"type\":\"image_url\"}]}]}",
	    &o, &stream, err);
	CHECK(j != NULL && stream == 0 && json_object_get(j, "stream") == NULL &&
	    json_integer_value(json_object_get(j, "max_tokens")) == 4096 &&
	    strcmp(json_string_value(json_object_get(j, "model")), "claude-haiku") == 0 &&
	    strcmp(json_string_value(json_object_get(j, "system")), "Be kind.") == 0 &&
	    json_array_size(json_object_get(j, "messages")) == 1 &&
	    json_array_size(json_object_get(json_array_get(json_object_get(j, "messages"), 0),
		"content")) == 2,
	    "stream false; the config's max_tokens; a system message joins system; two user "
	    "messages merged; unknown parts left out");
	json_decref(j);

	o.system_prefix = "You are Claude Code, Anthropic's official CLI for Claude.";
	j = build("{\"system\":\"You are terse.\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"hi\"}]}", &o, &stream, err);
	want = json_loads("[{\"type\":\"text\",\"text\":\"You are Claude Code, Anthropic's "
	    "official CLI for Claude.\"},{\"type\":\"text\",\"text\":\"You are terse.\"}]", 0, NULL);
	CHECK(json_equal(json_object_get(j, "system"), want),
	    "system_prefix: the first system block exactly, the request's system after it");
	json_decref(want);
	json_decref(j);
	j = build("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", &o, &stream, err);
	CHECK(json_array_size(json_object_get(j, "system")) == 1,
	    "system_prefix with no system of the request's: the prefix alone");
	json_decref(j);
	o.system_prefix = NULL;

	o.model = NULL;
	CHECK(build("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &o, &stream, err) == NULL &&
	    strstr(err, "no model"), "no model anywhere: refused with a reason");
	o.model = "m";
	CHECK(build("[1]", &o, &stream, err) == NULL && strstr(err, "not a JSON object"),
	    "a request that is not an object is refused");
	CHECK(build("{\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}", &o, &stream, err) == NULL &&
	    strstr(err, "no message with content"), "nothing to say is refused");
	CHECK(build("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", &o, &stream, err) == NULL &&
	    strstr(err, "robot"), "an unknown role is refused");
	CHECK(build("{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", &o, &stream, err) == NULL &&
	    strstr(err, "tool_call_id"), "a tool result without tool_call_id is refused");
	CHECK(build("{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"t\",\"name\":\"n\","
	    "\"arguments\":\"[1]\"}]}]}", &o, &stream, err) == NULL && strstr(err, "not a JSON object"),
	    "tool-call arguments that are not an object are refused");
}

static void test_error_body(void)
{
	char msg[ANT_MSG_MAX + 8], type[64], id[80], long_body[1200];
	const char *b = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
	    "\"message\":\"Number of request tokens has exceeded your per-minute rate limit\"},"
	    "\"request_id\":\"req_011CSHoEeqs5C35K2UUqR7Fy\"}";
	int transient = -1;

	ant_error_body(b, strlen(b), msg, sizeof(msg), type, sizeof(type), id, sizeof(id));
	CHECK(strstr(msg, "per-minute rate limit") != NULL && strcmp(type, "rate_limit_error") == 0 &&
	    strcmp(id, "req_011CSHoEeqs5C35K2UUqR7Fy") == 0, "an error body: message, type, request_id");
	snprintf(long_body, sizeof(long_body), "{\"error\":{\"message\":\"%0900d\"}}", 7);
	ant_error_body(long_body, strlen(long_body), msg, sizeof(msg), type, sizeof(type), id, sizeof(id));
	CHECK(strlen(msg) == ANT_MSG_MAX && type[0] == '\0' && id[0] == '\0',
	    "a long message is cut at 300 bytes");
	ant_error_body("<html>Bad gateway</html>", 24, msg, sizeof(msg), type, sizeof(type), id, sizeof(id));
	CHECK(strstr(msg, "no error message") != NULL, "an HTML page is not quoted");
	ant_error_body("upstream\r\nconnect error", 23, msg, sizeof(msg), type, sizeof(type), id, sizeof(id));
	CHECK_STR(msg, "upstream  connect error", "plain text is quoted, control characters blanked");
	CHECK(strcmp(ant_error_code("overloaded_error", &transient), "overloaded") == 0 && transient == 1 &&
	    strcmp(ant_error_code("rate_limit_error", &transient), "rate_limited") == 0 && transient == 1 &&
	    strcmp(ant_error_code("authentication_error", &transient), "unauthenticated") == 0 &&
	    transient == 0 && strcmp(ant_error_code("invalid_request_error", NULL), "bad_request") == 0 &&
	    strcmp(ant_error_code("api_error", NULL), "provider_error") == 0 &&
	    ant_error_code("nonsense", NULL) == NULL, "error types as the sink's codes");
}

int main(void)
{
	test_streams();
	test_limits();
	test_whole();
	test_request();
	test_error_body();
	return unit_done();
}
