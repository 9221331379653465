/* test_anthropic_module.c: the anthropic module itself on a host of this file's own
 * (HTTP, timers and auth_token answered by the test): the headers of an API key and of a
 * lent token, a 401 that gets one fresh token, the host's refusals, retries, cancel while
 * the host thinks, and no secret in any message or log line. The assembler, the request
 * mapping and error bodies are in test_anthropic_sse.c. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi/crab_module_v1.h"
#include "modules/anthropic/anthropic_int.h"
#include "t/unit/ant_events.h"
#include "t/unit/unit.h"

extern const struct crab_module_v1 crab_builtin_anthropic;

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
	test_module_key();
	test_module_auth();
	return unit_done();
}
