/* fastmodel.c: the zero-latency model of `make bench`. It answers POST
 * /v1/chat/completions exactly as t/fakes/openai-fake.js does with no script and no delay
 * (the same SSE chunks: a role chunk, one chunk per word of "echo: <last user text>", the
 * finish chunk, the usage chunk when asked, [DONE]; or the one JSON object when not
 * streaming), on libevent's evhttp, so that the model's own cost on a 2-core machine is a
 * small part of what the bench measures. It records nothing and knows no faults: the
 * tests use the Node.js fake, which does.
 *
 *   fastmodel --port-file FILE
 *
 * Listens on 127.0.0.1, an ephemeral port written to FILE. Runs until killed. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (8 * 1024 * 1024)

static unsigned long next_id;

static void add_headers(struct evhttp_request *req, const char *type)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char id[64];

	snprintf(id, sizeof(id), "req_fast%lx", ++next_id);
	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "x-request-id", id);
	evhttp_add_header(h, "openai-processing-ms", "0");
	evhttp_add_header(h, "openai-version", "2020-10-01");
}

static void error_reply(struct evhttp_request *req, int status, const char *msg)
{
	struct evbuffer *b = evbuffer_new();
	json_t *body = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", msg, "type",
	    "invalid_request_error", "param", "code");
	char *s = json_dumps(body, JSON_COMPACT);

	add_headers(req, "application/json");
	evbuffer_add(b, s, strlen(s));
	evhttp_send_reply(req, status, "Error", b);
	evbuffer_free(b);
	free(s);
	json_decref(body);
}

/* The text of the last user message: a string, or its text parts joined by "\n". */
static char *last_user_text(json_t *messages)
{
	for (size_t i = json_array_size(messages); i > 0; i--) {
		json_t *m = json_array_get(messages, i - 1), *c = json_object_get(m, "content"), *p;
		const char *role = json_string_value(json_object_get(m, "role"));
		size_t k;
		struct evbuffer *b;
		char *s;

		if (role == NULL || strcmp(role, "user") != 0)
			continue;
		if (json_is_string(c))
			return strdup(json_string_value(c));
		b = evbuffer_new();
		json_array_foreach(c, k, p) {
			const char *t = json_string_value(json_object_get(p, "text"));
			if (t != NULL) {
				if (evbuffer_get_length(b) > 0)
					evbuffer_add(b, "\n", 1);
				evbuffer_add(b, t, strlen(t));
			}
		}
		evbuffer_add(b, "", 1);
		s = strdup((const char *)evbuffer_pullup(b, -1));
		evbuffer_free(b);
		return s;
	}
	return strdup("");
}

static void add_chunk(struct evbuffer *out, const char *head, const char *tail, json_t *delta,
    const char *finish)
{
	char *d = json_dumps(delta, JSON_COMPACT);

	evbuffer_add_printf(out, "data: %s{\"index\":0,\"delta\":%s,\"logprobs\":null,"
	    "\"finish_reason\":%s%s%s}%s\n\n", head, d, finish ? "\"" : "", finish ? finish : "null",
	    finish ? "\"" : "", tail);
	free(d);
	json_decref(delta);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* The events of a streamed answer: word pieces as the JS fake's /\s*\S+\s*\/g makes them. */
static void stream_body(struct evbuffer *out, const char *model, const char *text,
    int include_usage, long prompt_tokens, long completion_tokens)
{
	char head[512];
	const char *tail = include_usage ? "],\"usage\":null}" : "]}";
	char *m = json_dumps(json_string(model), JSON_COMPACT | JSON_ENCODE_ANY);
	const char *p = text;

	snprintf(head, sizeof(head), "{\"id\":\"chatcmpl-fast%lx\",\"object\":"
	    "\"chat.completion.chunk\",\"created\":1764000000,\"model\":%s,"
	    "\"system_fingerprint\":\"fp_fake\",\"choices\":[", next_id, m);
	free(m);
	add_chunk(out, head, tail, json_pack("{s:s, s:s}", "role", "assistant", "content", ""),
	    NULL);
	while (*p != '\0') {
		const char *start = p;
		while (is_space(*p))
			p++;
		while (*p != '\0' && !is_space(*p))
			p++;
		while (is_space(*p))
			p++;
		add_chunk(out, head, tail, json_pack("{s:s%}", "content", start,
		    (size_t)(p - start)), NULL);
	}
	add_chunk(out, head, tail, json_object(), "stop");
	if (include_usage)
		evbuffer_add_printf(out, "data: %s],\"usage\":{\"prompt_tokens\":%ld,"
		    "\"completion_tokens\":%ld,\"total_tokens\":%ld,\"prompt_tokens_details\":"
		    "{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":"
		    "{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
		    "\"rejected_prediction_tokens\":0}}}\n\n", head, prompt_tokens, completion_tokens,
		    prompt_tokens + completion_tokens);
	evbuffer_add_printf(out, "data: [DONE]\n\n");
}

static void completions(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req), *out;
	size_t len = evbuffer_get_length(in);
	json_t *body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
	const char *model = json_string_value(json_object_get(body, "model"));
	char *user, *text;
	long prompt_tokens = (long)(len + 3) / 4, completion_tokens;

	if (!json_is_object(body) || model == NULL ||
	    !json_is_array(json_object_get(body, "messages"))) {
		error_reply(req, 400, "Invalid request (fast fake).");
		json_decref(body);
		return;
	}
	user = last_user_text(json_object_get(body, "messages"));
	if (asprintf(&text, "echo: %s", user) < 0)
		abort();
	completion_tokens = (long)(strlen(text) + 3) / 4;
	out = evbuffer_new();
	if (json_is_true(json_object_get(body, "stream"))) {
		stream_body(out, model, text, json_is_true(json_object_get(json_object_get(body,
		    "stream_options"), "include_usage")), prompt_tokens, completion_tokens);
		add_headers(req, "text/event-stream; charset=utf-8");
		evhttp_send_reply_start(req, 200, "OK");
		evhttp_send_reply_chunk(req, out);
		evhttp_send_reply_end(req);
	} else {
		json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:[{s:i, s:{s:s, s:s}, s:s}],"
		    " s:{s:I, s:I, s:I}}", "id", "chatcmpl-fast", "object", "chat.completion",
		    "created", 1764000000, "model", model, "choices", "index", 0, "message", "role",
		    "assistant", "content", text, "finish_reason", "stop", "usage", "prompt_tokens",
		    (json_int_t)prompt_tokens, "completion_tokens", (json_int_t)completion_tokens,
		    "total_tokens", (json_int_t)(prompt_tokens + completion_tokens));
		char *s = json_dumps(o, JSON_COMPACT);
		evbuffer_add(out, s, strlen(s));
		add_headers(req, "application/json");
		evhttp_send_reply(req, 200, "OK", out);
		free(s);
		json_decref(o);
	}
	evbuffer_free(out);
	free(text);
	free(user);
	json_decref(body);
}

static void route(struct evhttp_request *req, void *arg)
{
	(void)arg;
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST &&
	    strcmp(evhttp_request_get_uri(req), "/v1/chat/completions") == 0)
		completions(req);
	else
		error_reply(req, 404, "Unknown path (fast fake).");
}

int main(int argc, char **argv)
{
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	FILE *f;
	char tmp[4096];

	if (argc != 3 || strcmp(argv[1], "--port-file") != 0) {
		fprintf(stderr, "usage: fastmodel --port-file FILE\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	http = evhttp_new(base);
	evhttp_set_max_body_size(http, BODY_MAX);
	evhttp_set_gencb(http, route, NULL);
	sock = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (sock == NULL ||
	    getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) != 0) {
		fprintf(stderr, "fastmodel: cannot listen on 127.0.0.1\n");
		return 1;
	}
	/* Written whole under another name, then renamed: a reader never sees half a port. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[2]);
	if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%d\n",
	    ntohs(((struct sockaddr_in *)&ss)->sin_port)) < 0 || fclose(f) != 0 ||
	    rename(tmp, argv[2]) != 0) {
		perror("fastmodel: port file");
		return 1;
	}
	event_base_dispatch(base);
	return 0;
}
