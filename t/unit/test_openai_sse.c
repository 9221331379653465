/* test_openai_sse.c: the openai adapter's pure parts, without a network. The SSE/chunk
 * assembler fed whole, byte by byte and in odd splits (every stream must give the same
 * sink calls whatever the split): text, two parallel tool calls in fragments, usage,
 * [DONE], an error object, garbage, an overlong line, CRLF and CR line ends, a cut
 * stream, the limits; a whole non-streamed answer; the request mapping; error bodies. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/openai/openai_int.h"
#include "t/unit/unit.h"
#include "t/unit/sse_splits.h"

static const struct oai_out outs = {g_text, g_call, g_usage};

static int piece(void *s, const char *p, size_t n)
{
	return oai_stream_feed(s, p, n); /* OAI_MORE 0, OAI_END 1: splits_feed's terms */
}

/* Feeds sse in pieces of step bytes (see splits_feed), then finishes. */
static void feed(struct run *r, const char *sse, size_t len, long step,
    const struct oai_limits *lim)
{
	struct oai_stream *s;
	const char *code, *msg = "";

	run_begin(r);
	s = oai_stream_new(lim, &outs, &r->g);
	splits_feed(piece, s, sse, len, step);
	r->rc = oai_stream_finish(s);
	code = oai_stream_error(s, &msg, &r->retryable);
	run_record(r, code, msg, oai_stream_stop_reason(s));
	oai_stream_free(s);
}

static void feed_default(struct run *r, const char *sse, size_t len, long step)
{
	feed(r, sse, len, step, NULL);
}

/* The same result fed whole, byte by byte, in pieces of 7 and irregularly. */
static int same_every_split(const char *sse, int (*check)(struct run *), const char *what)
{
	static const long steps[] = {0, 1, 7, -1};

	return splits_same(feed_default, steps, sizeof(steps) / sizeof(steps[0]), sse, check,
	    what);
}

#define CHUNK(delta, fr)                                                                   \
	"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"  \
	"\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"logprobs\":null," \
	"\"finish_reason\":" fr "}],\"usage\":null}\n\n"

static const char text_stream[] =
    CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null")
    CHUNK("{\"content\":\"Hel\"}", "null")
    CHUNK("{\"content\":\"lo \\u00e9\\n\\\"x\\\"\"}", "null")
    CHUNK("{}", "\"stop\"")
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
    "\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":82,"
    "\"completion_tokens\":17,\"total_tokens\":99}}\n\n"
    "data: [DONE]\n\n";

static int text_ok(struct run *r)
{
	return r->rc == OAI_END && strcmp(r->g.text, "Hello \xc3\xa9\n\"x\"") == 0 &&
	    strcmp(r->stop, "end_turn") == 0 && json_array_size(r->g.calls) == 0 &&
	    r->g.usage_calls == 1 && r->g.in == 82 && r->g.out == 17;
}

/* Two parallel calls, their fragments interleaved, one chunk with both. */
static const char tool_stream[] =
    CHUNK("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,"
	  "\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	  "\"arguments\":\"\"}}]}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\","
	  "\"function\":{\"name\":\"get_time\",\"arguments\":\"{\\\"tz\\\":\"}}]}", "null")
    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}},"
	  "{\"index\":1,\"function\":{\"arguments\":\"\\\"CET\\\"}\"}}]}", "null")
    CHUNK("{}", "\"tool_calls\"")
    "data: [DONE]\n\n";

static int tools_ok(struct run *r)
{
	json_t *a = json_array_get(r->g.calls, 0), *b = json_array_get(r->g.calls, 1);
	return r->rc == OAI_END && strcmp(r->stop, "tool_use") == 0 &&
	    json_array_size(r->g.calls) == 2 && r->g.text_len == 0 &&
	    strcmp(json_string_value(json_object_get(a, "id")), "call_a") == 0 &&
	    strcmp(json_string_value(json_object_get(a, "name")), "get_weather") == 0 &&
	    strcmp(json_string_value(json_object_get(json_object_get(a, "arguments"), "city")),
		"Paris") == 0 &&
	    strcmp(json_string_value(json_object_get(b, "id")), "call_b") == 0 &&
	    strcmp(json_string_value(json_object_get(b, "name")), "get_time") == 0 &&
	    strcmp(json_string_value(json_object_get(json_object_get(b, "arguments"), "tz")),
		"CET") == 0 &&
	    r->g.usage_calls == 0;
}

static int error_ok(struct run *r)
{
	return r->rc == OAI_FAIL && strcmp(r->code, "provider_error") == 0 &&
	    strstr(r->message, "The server had an error") != NULL &&
	    strstr(r->message, "server_error") != NULL && strcmp(r->g.text, "Hi") == 0;
}

static int garbage_ok(struct run *r)
{
	return r->rc == OAI_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "not JSON") != NULL && r->retryable == 0;
}

static int crlf_ok(struct run *r)
{
	return r->rc == OAI_END && strcmp(r->g.text, "Hello") == 0 &&
	    strcmp(r->stop, "max_tokens") == 0;
}

static int cut_ok(struct run *r)
{
	return r->rc == OAI_FAIL && strcmp(r->code, "stream_cut") == 0 && r->retryable == 1 &&
	    strcmp(r->g.text, "Hel") == 0;
}

static int no_done_ok(struct run *r)
{
	return r->rc == OAI_END && strcmp(r->g.text, "Hel") == 0 &&
	    strcmp(r->stop, "content_filter") == 0;
}

static int last_done_ok(struct run *r)
{
	return r->rc == OAI_END && strcmp(r->g.text, "Hel") == 0 &&
	    strcmp(r->stop, "end_turn") == 0;
}

static int bad_args_ok(struct run *r)
{
	return r->rc == OAI_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "get_weather") != NULL && strstr(r->message, "not valid JSON") &&
	    json_array_size(r->g.calls) == 0;
}

static int fields_ok(struct run *r)
{
	return r->rc == OAI_END && strcmp(r->g.text, "ab") == 0;
}

static int html_ok(struct run *r)
{
	return r->rc == OAI_FAIL && strcmp(r->code, "bad_response") == 0 &&
	    strstr(r->message, "not a server-sent event stream") != NULL;
}

static void test_streams(void)
{
	same_every_split(text_stream, text_ok, "text stream: text, usage once, end_turn");
	same_every_split(tool_stream, tools_ok,
	    "two parallel tool calls in fragments: ids, names, arguments parsed, tool_use");
	same_every_split(CHUNK("{\"content\":\"Hi\"}", "null")
	    "data: {\"error\":{\"message\":\"The server had an error while processing your "
	    "request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
	    CHUNK("{\"content\":\"more\"}", "null") "data: [DONE]\n\n",
	    error_ok, "an error object: provider_error with its message, nothing after it");
	same_every_split(CHUNK("{\"content\":\"Hi\"}", "null") "data: {\"choices\": [oops\n\n"
	    "data: [DONE]\n\n", garbage_ok, "a data line that is not JSON: bad_response");
	same_every_split("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\r\n\r\n"
	    "data:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
	    "\"finish_reason\":\"length\"}]}\r\r"
	    "data: [DONE]\r\n\r\n", crlf_ok, "CRLF and CR line ends, data: without its space");
	same_every_split(CHUNK("{\"content\":\"Hel\"}", "null") "data: {\"choices\":[{\"ind",
	    cut_ok, "a stream cut before [DONE] and a finish reason: stream_cut");
	same_every_split(CHUNK("{\"content\":\"Hel\"}", "\"content_filter\""),
	    no_done_ok, "a finish reason without [DONE] is complete (content_filter)");
	same_every_split(CHUNK("{\"content\":\"Hel\"}", "null") "data: [DONE]", last_done_ok,
	    "a last [DONE] without its line end still ends the stream");
	same_every_split(CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"function\":"
	    "{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]}", "\"tool_calls\"")
	    "data: [DONE]\n\n", bad_args_ok, "tool-call arguments that are not JSON: bad_response, no call");
	same_every_split(": keep-alive\n\nevent: message\nid: 7\nretry: 100\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
	    ":\n"
	    "data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other choice\"}},"
	    "{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
	    "data: [DONE]\n\n", fields_ok, "comments, event/id/retry fields and other choices ignored");
	same_every_split("<html><body>502 Bad Gateway</body></html>\n", html_ok,
	    "an HTML page instead of events: bad_response");
}

static void test_done_and_limits(void)
{
	struct oai_limits small = {64, 8, 16, 2};
	struct run r;
	size_t big = OAI_MAX_LINE + 10;
	char *line = malloc(big + 1);
	const char *after = CHUNK("{\"content\":\"Hi\"}", "null") "data: [DONE]\n\ngarbage\n"
	    "data: {oops\n\n";

	feed(&r, after, strlen(after), 3, NULL);
	CHECK(r.rc == OAI_END && strcmp(r.g.text, "Hi") == 0, "bytes after [DONE] are ignored");
	run_free(&r);

	memcpy(line, "data: ", 6);
	memset(line + 6, 'x', big - 6);
	line[big] = '\0';
	feed(&r, line, big, 4096, NULL);
	CHECK(r.rc == OAI_FAIL && strcmp(r.code, "bad_response") == 0 &&
	    strstr(r.message, "longer than 1048576") != NULL,
	    "a line over 1 MiB, in pieces: bad_response naming the limit");
	run_free(&r);
	line[big - 1] = '\n';
	feed(&r, line, big, 0, NULL);
	CHECK(r.rc == OAI_FAIL && strstr(r.message, "longer than") != NULL,
	    "and in one piece with its line end");
	run_free(&r);
	free(line);

	feed(&r, CHUNK("{\"content\":\"0123456789\"}", "null"), 130, 0, &small);
	CHECK(r.rc == OAI_FAIL && strstr(r.message, "longer than 64") != NULL,
	    "a smaller line limit applies to the event's data");
	run_free(&r);
	{
		const char *s = "data: {\"choices\":[{\"delta\":{\"content\":\"12345\"}}]}\n\n"
		    "data: {\"choices\":[{\"delta\":{\"content\":\"6789\"}}]}\n\n";
		struct oai_limits l = {4096, 8, 16, 2};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == OAI_FAIL && strstr(r.message, "text longer than 8") != NULL &&
		    strcmp(r.g.text, "12345") == 0, "the text limit: an error, nothing beyond it");
		run_free(&r);
	}
	{
		const char *s = "data: {\"choices\":[{\"delta\":{\"tool_calls\":["
		    "{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"x\",\"arguments\":\"{}\"}},"
		    "{\"index\":1,\"id\":\"b\",\"function\":{\"name\":\"x\",\"arguments\":\"{}\"}},"
		    "{\"index\":2,\"id\":\"c\",\"function\":{\"name\":\"x\",\"arguments\":\"{}\"}}"
		    "]}}]}\n\ndata: [DONE]\n\n";
		struct oai_limits l = {4096, 8, 16, 2};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == OAI_FAIL && strstr(r.message, "more than 2 tool calls") != NULL &&
		    json_array_size(r.g.calls) == 0, "the tool-call count limit");
		run_free(&r);
	}
	{
		const char *s = "data: {\"choices\":[{\"delta\":{\"tool_calls\":["
		    "{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"x\",\"arguments\":"
		    "\"{\\\"k\\\":\\\"0123456789abcdef\\\"}\"}}]}}]}\n\ndata: [DONE]\n\n";
		struct oai_limits l = {4096, 8, 16, 2};
		feed(&r, s, strlen(s), 0, &l);
		CHECK(r.rc == OAI_FAIL && strstr(r.message, "arguments longer than 16") != NULL,
		    "the arguments limit");
		run_free(&r);
	}
	{ /* every call numbered 0 (some local servers), one without arguments */
		const char *s = "data: {\"choices\":[{\"delta\":{\"tool_calls\":["
		    "{\"index\":0,\"id\":\"a\",\"function\":{\"name\":\"x\",\"arguments\":\"{\\\"n\\\":1}\"}},"
		    "{\"index\":0,\"id\":\"b\",\"function\":{\"name\":\"y\"}}"
		    "]},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
		feed(&r, s, strlen(s), 0, NULL);
		CHECK(r.rc == OAI_END && json_array_size(r.g.calls) == 2 &&
		    json_integer_value(json_object_get(json_object_get(json_array_get(r.g.calls, 0),
			"arguments"), "n")) == 1 &&
		    json_object_size(json_object_get(json_array_get(r.g.calls, 1), "arguments")) == 0 &&
		    strcmp(r.stop, "tool_use") == 0,
		    "calls sharing index 0 with new ids stay apart; no arguments is {}; stop + calls is tool_use");
		run_free(&r);
	}
	feed(&r, "", 0, 0, NULL);
	CHECK(r.rc == OAI_FAIL && strcmp(r.code, "stream_cut") == 0, "an empty body is a cut stream");
	run_free(&r);
}

static void test_whole(void)
{
	const char *body = "{\"id\":\"chatcmpl-B9\",\"object\":\"chat.completion\",\"created\":1,"
	    "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"logprobs\":null,\"finish_reason\":"
	    "\"tool_calls\",\"message\":{\"role\":\"assistant\",\"content\":\"Let me look.\","
	    "\"tool_calls\":[{\"id\":\"call_abc123\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}}],"
	    "\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99}}";
	struct got g = {.calls = json_array(), .order_ok = 1};
	struct oai_stream *s = oai_stream_new(NULL, &outs, &g);
	const char *msg;
	int rc;

	rc = oai_stream_feed_json(s, body, strlen(body));
	rc = rc == OAI_END ? oai_stream_finish(s) : rc;
	CHECK(rc == OAI_END && strcmp(g.text, "Let me look.") == 0 &&
	    json_array_size(g.calls) == 1 && g.usage_calls == 1 && g.in == 82 && g.order_ok &&
	    strcmp(oai_stream_stop_reason(s), "tool_use") == 0 &&
	    strcmp(json_string_value(json_object_get(json_object_get(json_array_get(g.calls, 0),
		"arguments"), "city")), "Paris") == 0,
	    "a whole answer: text, the tool call parsed, usage after it, tool_use");
	oai_stream_free(s);
	json_decref(g.calls);

	g = (struct got){.calls = json_array()};
	s = oai_stream_new(NULL, &outs, &g);
	body = "{\"error\":{\"message\":\"nope\",\"code\":\"x\"}}";
	rc = oai_stream_feed_json(s, body, strlen(body));
	CHECK(rc == OAI_FAIL && strcmp(oai_stream_error(s, &msg, NULL), "provider_error") == 0 &&
	    strstr(msg, "nope") != NULL, "a whole answer with an error object");
	oai_stream_free(s);
	s = oai_stream_new(NULL, &outs, &g);
	rc = oai_stream_feed_json(s, "{\"choices\":[{\"message\":", 23);
	CHECK(rc == OAI_FAIL && strcmp(oai_stream_error(s, &msg, NULL), "bad_response") == 0,
	    "a whole answer that is not JSON: bad_response");
	oai_stream_free(s);
	json_decref(g.calls);
}

static json_t *build(const char *req, const struct oai_req_opts *o, int *stream, char *err)
{
	size_t len = 0;
	char *body = oai_request_build(req, strlen(req), o, &len, stream, err, 256);
	json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
	free(body);
	return j;
}

static void test_request(void)
{
	struct oai_req_opts o = {"gpt-4o-mini", "max_completion_tokens", 1};
	char err[256];
	int stream = -1;
	json_t *j, *m;
	const char *req = "{\"system\":\"You are terse.\",\"max_tokens\":100,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"},"
	    "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\","
	    "\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"{\\\"temp_c\\\":18}\"}],"
	    "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather now\","
	    "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}]}";

	j = build(req, &o, &stream, err);
	m = json_object_get(j, "messages");
	CHECK(j != NULL && stream == 1, "a request maps; stream by default");
	CHECK_STR(json_string_value(json_object_get(j, "model")), "gpt-4o-mini",
	    "the config's model when the request names none");
	CHECK(json_array_size(m) == 4 &&
	    strcmp(json_string_value(json_object_get(json_array_get(m, 0), "role")), "system") == 0 &&
	    strcmp(json_string_value(json_object_get(json_array_get(m, 0), "content")),
		"You are terse.") == 0, "system is a first system message");
	CHECK(json_is_null(json_object_get(json_array_get(m, 2), "content")) &&
	    strcmp(json_string_value(json_object_get(json_object_get(json_array_get(
		json_object_get(json_array_get(m, 2), "tool_calls"), 0), "function"), "arguments")),
		"{\"city\":\"Paris\"}") == 0,
	    "assistant tool calls: arguments as a JSON string, content null");
	CHECK(strcmp(json_string_value(json_object_get(json_array_get(m, 3), "tool_call_id")),
	    "call_1") == 0, "a tool result keeps its tool_call_id");
	CHECK(strcmp(json_string_value(json_object_get(json_object_get(json_array_get(
	    json_object_get(j, "tools"), 0), "function"), "name")), "get_weather") == 0 &&
	    json_is_object(json_object_get(json_object_get(json_array_get(json_object_get(j,
		"tools"), 0), "function"), "parameters")), "tools as functions with parameters");
	CHECK(json_integer_value(json_object_get(j, "max_completion_tokens")) == 100 &&
	    json_object_get(j, "max_tokens") == NULL, "max_tokens as max_completion_tokens");
	CHECK(json_is_true(json_object_get(json_object_get(j, "stream_options"), "include_usage")),
	    "a stream asks for usage");
	json_decref(j);

	o.max_tokens_field = "max_tokens";
	j = build("{\"model\":\"llama3\",\"stream\":false,\"max_tokens\":5,\"messages\":[]}", &o,
	    &stream, err);
	CHECK(j != NULL && stream == 0 && json_object_get(j, "stream") == NULL &&
	    json_object_get(j, "stream_options") == NULL &&
	    json_integer_value(json_object_get(j, "max_tokens")) == 5 &&
	    strcmp(json_string_value(json_object_get(j, "model")), "llama3") == 0,
	    "stream false, the request's model, max_tokens_field max_tokens");
	json_decref(j);

	o.model = NULL;
	CHECK(build("{\"messages\":[]}", &o, &stream, err) == NULL && strstr(err, "no model"),
	    "no model anywhere: refused with a reason");
	CHECK(build("[1]", &o, &stream, err) == NULL && strstr(err, "not a JSON object"),
	    "a request that is not an object is refused");
}

static void test_error_body(void)
{
	char msg[OAI_MSG_MAX + 8], code[64], long_body[1200];
	const char *b = "{\"error\":{\"message\":\"This model's maximum context length is 8192\","
	    "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":"
	    "\"context_length_exceeded\"}}";

	oai_error_body(b, strlen(b), msg, sizeof(msg), code, sizeof(code));
	CHECK(strstr(msg, "maximum context length") != NULL &&
	    strcmp(code, "context_length_exceeded") == 0, "an error body: message and code");
	oai_error_body("{\"error\":{\"message\":\"quota\",\"type\":\"insufficient_quota\"}}", 57,
	    msg, sizeof(msg), code, sizeof(code));
	CHECK_STR(code, "insufficient_quota", "the type when there is no code");
	snprintf(long_body, sizeof(long_body), "{\"error\":{\"message\":\"%0900d\"}}", 7);
	oai_error_body(long_body, strlen(long_body), msg, sizeof(msg), code, sizeof(code));
	CHECK(strlen(msg) == OAI_MSG_MAX && code[0] == '\0', "a long message is cut at 300 bytes");
	oai_error_body("<html>Bad gateway</html>", 24, msg, sizeof(msg), code, sizeof(code));
	CHECK(strstr(msg, "no error message") != NULL, "an HTML page is not quoted");
	oai_error_body("upstream\r\nconnect error", 23, msg, sizeof(msg), code, sizeof(code));
	CHECK_STR(msg, "upstream  connect error", "plain text is quoted, control characters blanked");
}

int main(void)
{
	test_streams();
	test_done_and_limits();
	test_whole();
	test_request();
	test_error_body();
	return unit_done();
}
