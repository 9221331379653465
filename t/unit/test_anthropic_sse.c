/* test_anthropic_sse.c: the anthropic adapter without a network. The Messages event
 * assembler fed whole, byte by byte, in pieces of 7, irregularly and in random pieces
 * (every stream must give the same sink calls whatever the split): text with ping and
 * usage, tool_use blocks from input_json_delta pieces, stop reasons, an error event, a
 * stream cut inside a block and between blocks, CRLF and CR line ends, unnamed events,
 * thinking blocks, garbage, the limits; a whole non-streamed answer; the request mapping;
 * error bodies. Then the module itself on a host of this file's own (HTTP, timers and
 * auth_token answered by the test): the headers of an API key and of a lent token, a 401
 * that gets one fresh token, the host's refusals, retries, cancel while the host
 * thinks, and no secret in any message or log line. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi/crab_module_v1.h"
#include "modules/anthropic/anthropic_int.h"
#include "t/unit/unit.h"
#include "t/unit/sse_splits.h"

extern const struct crab_module_v1 crab_builtin_anthropic;

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

#define EV(name, data) "event: " name "\ndata: " data "\n\n"
#define MSG_START(in)                                                                      \
	EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\","   \
	   "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\","     \
	   "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"            \
	   "{\"input_tokens\":" in ",\"output_tokens\":1}}}")
#define TEXT_START(i)                                                                      \
	EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" i            \
	   ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
#define TEXT_DELTA(i, t)                                                                   \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" i            \
	   ",\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}")
#define TOOL_START(i, id, name)                                                            \
	EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" i            \
	   ",\"content_block\":{\"type\":\"tool_use\",\"id\":\"" id "\",\"name\":\"" name     \
	   "\",\"input\":{}}}")
#define JSON_DELTA(i, pj)                                                                  \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" i            \
	   ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"" pj "\"}}")
#define BLOCK_STOP(i) EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" i "}")
#define MSG_DELTA(sr, out)                                                                 \
	EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" sr   \
	   "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":" out "}}")
#define MSG_STOP EV("message_stop", "{\"type\":\"message_stop\"}")
#define PING EV("ping", "{\"type\": \"ping\"}")

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

/* ---- the module on a host of our own ---- */

#define MAXN 16

struct fake_http {
	char url[256], headers[4096], *body;
	struct crab_http_handler_v1 h;
	void *arg;
	int live, cancelled;
};

struct fake_timer {
	void (*cb)(void *);
	void *arg;
	int64_t at;
	int live;
};

static struct fake_http reqs[MAXN];
static int nreqs;
static struct fake_timer timers[MAXN];
static int ntimers;
static int64_t clock_ms;
static char logbuf[32768];
static const char *g_key;
/* auth_token: 0 answers at once with the next token, 1 keeps the question, 2 returns
 * -1, 3 answers the error auth_error */
static int auth_mode, auth_calls;
static const char *auth_tokens[4], *auth_error;
static char auth_stale[4][64];
static void (*pending_answer)(void *, const char *, const char *);
static void *pending_arg;

static void h_log(struct crab_self_v1 *self, enum crab_log_v1 level, const char *fmt, ...)
{
	size_t n = strlen(logbuf);
	va_list ap;
	(void)self, (void)level;
	va_start(ap, fmt);
	if (n + 2 < sizeof(logbuf)) {
		vsnprintf(logbuf + n, sizeof(logbuf) - n - 1, fmt, ap);
		strcat(logbuf, "\n");
	}
	va_end(ap);
}

static int64_t h_now(void)
{
	return clock_ms;
}

static struct crab_timer_v1 *h_timer_start(struct crab_self_v1 *self, int64_t after,
    int repeat, void (*cb)(void *), void *arg)
{
	(void)self, (void)repeat;
	if (ntimers >= MAXN)
		return NULL;
	timers[ntimers] = (struct fake_timer){cb, arg, clock_ms + after, 1};
	return (struct crab_timer_v1 *)&timers[ntimers++];
}

static void h_timer_stop(struct crab_timer_v1 *t)
{
	((struct fake_timer *)t)->live = 0;
}

static struct crab_http_call_v1 *h_http_start(struct crab_self_v1 *self,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg)
{
	struct fake_http *r;
	(void)self;
	if (nreqs >= MAXN)
		return NULL;
	r = &reqs[nreqs++];
	memset(r, 0, sizeof(*r));
	snprintf(r->url, sizeof(r->url), "%s", req->url);
	for (size_t i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
		strncat(r->headers, req->headers[i], sizeof(r->headers) - strlen(r->headers) - 2);
		strcat(r->headers, "\n");
	}
	r->body = strndup(req->body, req->body_len);
	r->h = *h;
	r->arg = arg;
	r->live = 1;
	return (struct crab_http_call_v1 *)r;
}

static void h_http_cancel(struct crab_http_call_v1 *call)
{
	struct fake_http *r = (struct fake_http *)call;
	r->live = 0;
	r->cancelled = 1;
}

static int h_secret_get(struct crab_self_v1 *self, const char *name, char *out, size_t len)
{
	(void)self;
	if (g_key == NULL || strcmp(name, "api_key") != 0 || strlen(g_key) >= len)
		return -1;
	strcpy(out, g_key);
	return 0;
}

static int h_auth_token(struct crab_self_v1 *self, const char *stale,
    void (*answer)(void *, const char *, const char *), void *arg)
{
	int i = auth_calls++;
	(void)self;
	if (i < 4)
		snprintf(auth_stale[i], sizeof(auth_stale[i]), "%s", stale ? stale : "(null)");
	switch (auth_mode) {
	case 0: answer(arg, auth_tokens[i < 4 ? i : 3], NULL); return 0;
	case 1: pending_answer = answer, pending_arg = arg; return 0;
	case 2: return -1;
	default: answer(arg, NULL, auth_error); return 0;
	}
}

static struct crab_host_v1 host = {
	.abi_major = CRAB_ABI_MAJOR, .size = sizeof(struct crab_host_v1), .host_version = "test",
	.role = "gateway", .log = h_log, .now_ms = h_now, .timer_start = h_timer_start,
	.timer_stop = h_timer_stop, .http_start = h_http_start, .http_cancel = h_http_cancel,
	.secret_get = h_secret_get, .auth_token = h_auth_token,
};

/* What the sink heard. */
struct heard {
	char text[1024], code[64], message[1024], stop[32];
	int calls, ends, usage;
};

static void s_text(void *arg, const char *t, size_t n)
{
	struct heard *h = arg;
	strncat(h->text, t, n < sizeof(h->text) - strlen(h->text) - 1 ? n :
	    sizeof(h->text) - strlen(h->text) - 1);
}

static void s_call(void *arg, const char *c, size_t n)
{
	(void)c, (void)n;
	((struct heard *)arg)->calls++;
}

static void s_usage(void *arg, int64_t in, int64_t out)
{
	(void)in, (void)out;
	((struct heard *)arg)->usage++;
}

static void s_done(void *arg, const char *stop)
{
	struct heard *h = arg;
	h->ends++;
	snprintf(h->stop, sizeof(h->stop), "%s", stop);
}

static void s_error(void *arg, const char *code, const char *msg, int retryable)
{
	struct heard *h = arg;
	h->ends++;
	snprintf(h->code, sizeof(h->code), "%s%s", code, retryable ? "+" : "");
	snprintf(h->message, sizeof(h->message), "%s", msg);
}

static const struct crab_model_sink_v1 sink = {
	sizeof(struct crab_model_sink_v1), s_text, s_call, s_usage, s_done, s_error,
};

static void clear_reqs(void)
{
	for (int i = 0; i < nreqs; i++)
		free(reqs[i].body);
	nreqs = 0;
}

static void reset(void)
{
	clear_reqs();
	ntimers = auth_calls = auth_mode = 0;
	clock_ms = 1000000;
	g_key = NULL;
	pending_answer = NULL;
	memset(auth_tokens, 0, sizeof(auth_tokens));
	memset(auth_stale, 0, sizeof(auth_stale));
	host.size = sizeof(struct crab_host_v1);
}

/* Fires due timers, the earliest first, moving the clock to each. */
static void run_timers(void)
{
	for (;;) {
		int best = -1;
		for (int i = 0; i < ntimers; i++) {
			if (timers[i].live && (best < 0 || timers[i].at < timers[best].at))
				best = i;
		}
		if (best < 0)
			return;
		if (timers[best].at > clock_ms)
			clock_ms = timers[best].at;
		timers[best].live = 0;
		timers[best].cb(timers[best].arg);
	}
}

/* The last request's answer: status, content type, one header more, the body. */
static void answer(int status, const char *ctype, const char *header, const char *body)
{
	struct fake_http *r = &reqs[nreqs - 1];
	char line[256];

	if (!r->live)
		return;
	r->live = 0;
	snprintf(line, sizeof(line), "content-type: %s", ctype);
	r->h.on_header(r->arg, status, line, strlen(line));
	if (header != NULL)
		r->h.on_header(r->arg, status, header, strlen(header));
	if (body != NULL && body[0] != '\0')
		r->h.on_data(r->arg, body, strlen(body));
	r->h.on_done(r->arg, status, NULL, 0, NULL);
}

/* The last request's 200 event stream, then the connection breaks with error. */
static void answer_cut(const char *body, const char *error)
{
	struct fake_http *r = &reqs[nreqs - 1];
	const char *ct = "content-type: text/event-stream";

	if (!r->live)
		return;
	r->live = 0;
	r->h.on_header(r->arg, 200, ct, strlen(ct));
	if (body[0] != '\0')
		r->h.on_data(r->arg, body, strlen(body));
	r->h.on_done(r->arg, 200, NULL, 0, error);
}

static int has_header(int i, const char *line)
{
	char want[512];
	snprintf(want, sizeof(want), "%s\n", line);
	return strstr(reqs[i].headers, want) != NULL;
}

static void *instance(const char *cfg)
{
	void *ctx = NULL;
	if (crab_builtin_anthropic.init(&host, (struct crab_self_v1 *)&host, cfg, strlen(cfg),
	    &ctx) != 0)
		return NULL;
	return ctx;
}

static const char text_body[] =
    MSG_START("7") TEXT_START("0") TEXT_DELTA("0", "Hi ") TEXT_DELTA("0", "there")
    BLOCK_STOP("0") MSG_DELTA("end_turn", "2") MSG_STOP;
static const char req1[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
#define KEY "sk-ant-api03-TESTKEY-0123456789"
#define TOK1 "sk-ant-oat01-FIRST-token-1111"
#define TOK2 "sk-ant-oat01-SECOND-token-2222"
#define SSE "text/event-stream"
#define ERR_JSON(type, msg) \
	"{\"type\":\"error\",\"error\":{\"type\":\"" type "\",\"message\":\"" msg "\"},\"request_id\":\"req_1\"}"

static void test_module_key(void)
{
	const struct crab_model_ops_v1 *ops = crab_builtin_anthropic.model;
	struct heard h = {0};
	void *ctx, *handle;

	reset();
	g_key = KEY;
	ctx = instance("{\"id\":\"claude\",\"model\":\"claude-sonnet-4-5\",\"base_url\":"
	    "\"http://127.0.0.1:9/\",\"api_key_env\":\"K\",\"headers\":{\"anthropic-beta\":\"b1\"}}");
	CHECK(ctx != NULL, "an instance with an API key");
	CHECK(ops->start(ctx, req1, strlen(req1), &sink, &h, &handle) == 0 && nreqs == 1,
	    "start: one request at once");
	CHECK(strcmp(reqs[0].url, "http://127.0.0.1:9/v1/messages") == 0 &&
	    has_header(0, "x-api-key: " KEY) && has_header(0, "anthropic-version: 2023-06-01") &&
	    has_header(0, "anthropic-beta: b1") && has_header(0, "Content-Type: application/json") &&
	    has_header(0, "Accept: text/event-stream") && strstr(reqs[0].headers, "Authorization") == NULL,
	    "POST {base_url}/v1/messages with x-api-key, anthropic-version, the config's headers");
	CHECK(strstr(reqs[0].body, "\"max_tokens\":4096") && strstr(reqs[0].body, "\"stream\":true") &&
	    strstr(reqs[0].body, "\"model\":\"claude-sonnet-4-5\""), "the body: model, max_tokens, stream");
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0 && strcmp(h.text, "Hi there") == 0 &&
	    h.usage == 1, "the stream's text, usage and end_turn reach the sink");

	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer(529, "application/json", "retry-after: 2", ERR_JSON("overloaded_error", "Overloaded"));
	CHECK(h.ends == 0 && ntimers == 1 && timers[0].at == clock_ms + 2000,
	    "529 with retry-after 2: a retry in 2 s");
	run_timers();
	CHECK(nreqs == 3 && has_header(2, "x-api-key: " KEY), "the retry, with the key");
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0, "then the answer");

	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer(400, "application/json", NULL, ERR_JSON("invalid_request_error", "bad key " KEY " here"));
	CHECK(h.ends == 1 && strcmp(h.code, "bad_request") == 0 &&
	    strstr(h.message, "bad key *** here") != NULL && strstr(h.message, "request-id req_1") &&
	    strstr(h.message, "invalid_request_error") != NULL,
	    "400: bad_request, not retried, the key masked, type and request-id named");
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer(429, "application/json", NULL, ERR_JSON("rate_limit_error", "slow " KEY));
	run_timers();
	answer(401, "application/json", NULL, ERR_JSON("authentication_error", "invalid x-api-key"));
	CHECK(h.ends == 1 && strcmp(h.code, "unauthenticated") == 0 && nreqs == 6,
	    "429 retried, then 401: unauthenticated, not retried, no token asked for");
	CHECK(auth_calls == 0 && strstr(logbuf, KEY) == NULL && strstr(logbuf, "slow ***") != NULL,
	    "the log has the provider's message with the key masked, never the key");

	h = (struct heard){0};
	clear_reqs();
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer_cut(MSG_START("7") TEXT_START("0") TEXT_DELTA("0", "Hi "), "transfer closed");
	CHECK(h.ends == 1 && strcmp(h.code, "stream_cut+") == 0 && strcmp(h.text, "Hi ") == 0 &&
	    strstr(h.message, "inside content block 0 (text)") && strstr(h.message, "transfer closed") &&
	    nreqs == 1, "the connection broken inside a block after text: stream_cut, not retried");
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer_cut(MSG_START("7") PING, "connection reset");
	run_timers();
	CHECK(nreqs == 3 && h.ends == 0, "broken before any text: retried");
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0 && strcmp(h.text, "Hi there") == 0,
	    "and the retry's answer is the only text");
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer_cut(MSG_START("7") TEXT_START("0") TEXT_DELTA("0", "Done.") BLOCK_STOP("0")
	    MSG_DELTA("end_turn", "2"), "transfer closed");
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0 && h.usage == 1 && nreqs == 4,
	    "broken after message_delta's stop reason: the message is complete");
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer(200, SSE, NULL, MSG_START("7") TEXT_START("0") TEXT_DELTA("0", "a")
	    EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
	    "\"message\":\"Overloaded\"}}"));
	CHECK(h.ends == 1 && strcmp(h.code, "overloaded+") == 0 && nreqs == 5,
	    "an error event after text: its code, not retried");
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	answer(200, SSE, NULL, MSG_START("7") EV("error", "{\"type\":\"error\",\"error\":"
	    "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"));
	run_timers();
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0 && nreqs == 7,
	    "an error event before any text: retried");
	crab_builtin_anthropic.fini(ctx);

	CHECK(instance("{\"headers\":{\"X-Api-Key\":\"sk-inline\"}}") == NULL &&
	    instance("{\"headers\":{\"authorization\":\"Bearer x\"}}") == NULL &&
	    instance("{\"headers\":{\"anthropic-version\":\"x\"}}") == NULL &&
	    instance("{\"headers\":[1]}") == NULL && instance("{\"base_url\":\"ftp://x\"}") == NULL &&
	    instance("{\"max_tokens\":0}") == NULL,
	    "init refuses a credential or version in headers:, bad headers, base_url, max_tokens");
	reset();
}

static void test_module_auth(void)
{
	const struct crab_model_ops_v1 *ops = crab_builtin_anthropic.model;
	const char *cfg = "{\"id\":\"claude\",\"model\":\"claude-sonnet-4-5\",\"auth\":"
	    "{\"provider\":\"anthropic\"},\"api_key_env\":\"K\",\"headers\":{\"anthropic-beta\":"
	    "\"oauth-2025-04-20\"}}";
	struct heard h = {0};
	void *ctx, *handle;

	reset();
	host.size = offsetof(struct crab_host_v1, auth_token); /* a host before auth_token */
	ctx = instance(cfg);
	CHECK(ctx != NULL && ops->start(ctx, req1, strlen(req1), &sink, &h, &handle) == 0 &&
	    h.ends == 0, "auth: on a host without auth_token: start says nothing at once");
	run_timers();
	CHECK(h.ends == 1 && strcmp(h.code, "auth_unavailable") == 0 && nreqs == 0 &&
	    auth_calls == 0 && strstr(h.message, "claude") != NULL,
	    "then auth_unavailable, not retryable, no request");
	crab_builtin_anthropic.fini(ctx);

	reset();
	g_key = KEY;
	auth_tokens[0] = TOK1, auth_tokens[1] = TOK2;
	ctx = instance(cfg);
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	CHECK(nreqs == 0 && auth_calls == 0, "auth: nothing asked before the loop runs");
	run_timers();
	CHECK(auth_calls == 1 && strcmp(auth_stale[0], "(null)") == 0 && nreqs == 1 &&
	    has_header(0, "Authorization: Bearer " TOK1) && strstr(reqs[0].headers, "x-api-key") == NULL &&
	    has_header(0, "anthropic-beta: oauth-2025-04-20") &&
	    has_header(0, "anthropic-version: 2023-06-01"),
	    "the host's token as a Bearer, no x-api-key even with a key configured, the extra headers");
	answer(401, "application/json", NULL, ERR_JSON("authentication_error", "expired " TOK1));
	CHECK(auth_calls == 2 && strcmp(auth_stale[1], TOK1) == 0 && nreqs == 2 &&
	    has_header(1, "Authorization: Bearer " TOK2) && h.ends == 0,
	    "401: the host asked again with the refused token as stale; the request again, fresh token");
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0 && strcmp(h.text, "Hi there") == 0,
	    "and the answer");

	h = (struct heard){0};
	auth_calls = 0;
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	answer(401, "application/json", NULL, ERR_JSON("authentication_error", "no " TOK1));
	answer(401, "application/json", NULL, ERR_JSON("authentication_error", "no " TOK2));
	CHECK(h.ends == 1 && strcmp(h.code, "unauthenticated") == 0 && auth_calls == 2 &&
	    strstr(h.message, "fresh token") != NULL && strstr(h.message, TOK2) == NULL &&
	    strstr(h.message, "no ***") != NULL,
	    "a second 401: unauthenticated, not retryable; the token masked in the message");

	h = (struct heard){0};
	auth_calls = 0;
	auth_tokens[0] = TOK1, auth_tokens[1] = TOK1;
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	answer(529, "application/json", "retry-after-ms: 10", ERR_JSON("overloaded_error", "Overloaded"));
	run_timers();
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0 && auth_calls == 2 &&
	    strcmp(auth_stale[1], "(null)") == 0,
	    "529 then success: the token asked for again before the retry, not as stale");

	auth_mode = 3;
	h = (struct heard){0};
	auth_error = "login_required: run `crab auth login claude`";
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	CHECK(h.ends == 1 && strcmp(h.code, "login_required") == 0 &&
	    strstr(h.message, "run `crab auth login claude`") != NULL &&
	    strstr(h.message, "login_required:") == NULL, "the host's error: its code and message");
	h = (struct heard){0};
	auth_error = "revoked: the login was revoked";
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	CHECK(h.ends == 1 && strcmp(h.code, "revoked") == 0, "another code the error begins with");
	h = (struct heard){0};
	auth_error = "Something: broke";
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	CHECK(h.ends == 1 && strcmp(h.code, "login_required") == 0 &&
	    strstr(h.message, "Something: broke") != NULL, "an error with no code: login_required");
	auth_mode = 2;
	h = (struct heard){0};
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	CHECK(h.ends == 1 && strcmp(h.code, "auth_unavailable") == 0, "auth_token refusing: auth_unavailable");

	auth_mode = 1;
	h = (struct heard){0};
	clear_reqs();
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	CHECK(pending_answer != NULL && h.ends == 0 && nreqs == 0, "a host that answers later");
	pending_answer(pending_arg, TOK2, NULL);
	CHECK(nreqs == 1 && has_header(0, "Authorization: Bearer " TOK2), "its answer starts the request");
	answer(200, SSE, NULL, text_body);
	CHECK(h.ends == 1 && strcmp(h.stop, "end_turn") == 0, "and the answer comes");

	h = (struct heard){0};
	pending_answer = NULL;
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	ops->cancel(ctx, handle);
	pending_answer(pending_arg, TOK2, NULL);
	CHECK(h.ends == 0 && nreqs == 1, "cancelled while the host thinks: its answer starts nothing");

	pending_answer = NULL;
	ops->start(ctx, req1, strlen(req1), &sink, &h, &handle);
	run_timers();
	crab_builtin_anthropic.fini(ctx);
	pending_answer(pending_arg, NULL, "auth_unavailable: shutting down");
	CHECK(h.ends == 0 && strstr(logbuf, TOK1) == NULL && strstr(logbuf, TOK2) == NULL &&
	    strstr(logbuf, KEY) == NULL,
	    "fini while the host thinks: its answer finds nothing; no token or key in the log");
	reset();
}

int main(void)
{
	test_streams();
	test_limits();
	test_whole();
	test_request();
	test_error_body();
	test_module_key();
	test_module_auth();
	return unit_done();
}
