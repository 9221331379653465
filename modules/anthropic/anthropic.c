/* anthropic.c: the built-in model adapter "anthropic": Anthropic's Messages API
 * (shared/protocols/anthropic-messages.md). One instance per model entry of the
 * configuration, all state in its context; written only against abi/crab_module_v1.h,
 * libc, jansson and the code the adapters share (modules/common/), so it also builds as
 * a .so.
 *
 * A request: the neutral JSON mapped (anthropic_req.c), POST {base_url}/v1/messages
 * through the host's HTTP client, the event stream assembled (anthropic_sse.c) into sink
 * calls. The credential is an API key (x-api-key) or, for an entry with `auth:`, a bearer
 * token the host lends through auth_token, asked for before each attempt and once more
 * after a 401. Failures before anything reached the sink are retried with exponential
 * backoff and full jitter, or after what retry-after asks, within one overall deadline
 * (modules/common/adapter_retry.h); once text went out an error is reported, never
 * retried invisibly. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* explicit_bzero when built as a .so */
#endif
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "abi/crab_module_v1.h"
#include "modules/anthropic/anthropic_int.h"
#include "modules/common/adapter_buf.h"
#include "modules/common/adapter_config.h"
#include "modules/common/adapter_msg.h"
#include "modules/common/adapter_retry.h"
#include "modules/common/adapter_sink.h"

#define DEFAULT_BASE_URL "https://api.anthropic.com"
#define DEFAULT_VERSION "2023-06-01"
#define DEFAULT_TIMEOUT_S 120
#define DEFAULT_MAX_RETRIES 3
#define DEFAULT_MAX_TOKENS 4096
#define KEY_MAX 4096
#define TOKEN_MAX 16384
#define MAX_CONFIG_HEADERS 32
#define ERROR_BODY_MAX (64u << 10)   /* kept of an error answer; the rest is dropped */
#define JSON_BODY_MAX (16u << 20)    /* a whole (non-streamed) answer */
#define RESPONSE_MAX ((size_t)64 << 20)

struct ant_call;

struct ant {
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
	char *id;   /* the model entry's id, for the log */
	char *url;  /* {base_url}/v1/messages */
	char *model;
	char *system_prefix; /* the first system block; NULL: none */
	char *key;  /* NULL: no x-api-key header */
	int use_auth; /* the entry has auth: the host lends a bearer token */
	char **headers; /* the fixed request headers, "Name: value" */
	size_t nheaders;
	int64_t timeout_ms;
	long long max_tokens;
	int max_retries;
	uint64_t rng;
	struct ant_call *calls; /* in flight, for fini */
};

/* One auth_token question. The host answers it exactly once, perhaps after the call it
 * was asked for has ended: the ticket outlives the call and is freed by the answer. */
struct ant_ticket {
	struct ant_call *c; /* NULL once the call has gone */
	int answered, returned;
};

struct ant_call {
	struct ant *o;
	struct ant_call *next, **prevp;
	struct adapter_sink sink; /* with cancelled, and emitted: text or a call went out */
	char *body, *early_error;
	size_t body_len;
	int stream;
	int64_t deadline;
	int attempt; /* retries so far */
	struct crab_http_call_v1 *http;
	struct crab_timer_v1 *timer;
	int depth;   /* inside our callbacks: the outermost frees */
	int ended;
	/* auth: */
	char *token;               /* the bearer the last attempt used */
	struct ant_ticket *ticket; /* a question to the host not answered yet */
	int refreshed;             /* a 401 has had its one fresh token */
	/* this attempt */
	struct ant_stream *sse;
	int status, json_body, sse_body, failed, too_large, should_retry;
	char retry_after_ms[32], retry_after[64], request_id[80];
	char *buf;
	size_t buf_len, buf_cap;
};

#define LOG(o, level, ...)                                                   \
	do {                                                                 \
		if (CRAB_HOST_HAS((o)->host, log))                           \
			(o)->host->log((o)->self, (level), __VA_ARGS__);     \
	} while (0)

/* ---- messages: never the key or the token ---- */

static void scrub(const struct ant_call *c, char *msg)
{
	adapter_scrub(msg, c->o->key);
	adapter_scrub(msg, c->token);
}

static void end_error(struct ant_call *c, const char *code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void end_error(struct ant_call *c, const char *code, int retryable, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	scrub(c, msg);
	c->ended = 1;
	if (c->sink.cancelled)
		return;
	LOG(c->o, CRAB_LOG_V1_INFO, "[%s] request failed: %s: %s", c->o->id, code, msg);
	c->sink.ops.on_error(c->sink.arg, code, msg, retryable);
}

static void end_done(struct ant_call *c, const char *stop_reason)
{
	c->ended = 1;
	if (!c->sink.cancelled)
		c->sink.ops.on_done(c->sink.arg, stop_reason);
}

/* ---- the call's life ---- */

static void forget_token(struct ant_call *c)
{
	if (c->token != NULL) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
		c->token = NULL;
	}
}

static void call_release(struct ant_call *c)
{
	if (c->http != NULL)
		c->o->host->http_cancel(c->http);
	if (c->timer != NULL)
		c->o->host->timer_stop(c->timer);
	if (c->ticket != NULL)
		c->ticket->c = NULL; /* its answer, when it comes, finds no call */
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
	forget_token(c);
	ant_stream_free(c->sse);
	free(c->buf);
	free(c->body);
	free(c->early_error);
	free(c);
}

/* Leaves one of our callbacks: the outermost frees a call that ended meanwhile. */
static void call_leave(struct ant_call *c)
{
	if (--c->depth == 0 && (c->ended || c->sink.cancelled))
		call_release(c);
}

/* The assembler's calls go to the sink, the call's struct adapter_sink their arg. */
static const struct ant_out call_out = {adapter_sink_text, adapter_sink_tool_call,
	adapter_sink_usage};

/* ---- retries (modules/common/adapter_retry.h) ---- */

static void attempt_begin(struct ant_call *c);

static void retry_fire(void *arg)
{
	struct ant_call *c = arg;

	c->depth++;
	c->o->host->timer_stop(c->timer);
	c->timer = NULL;
	if (c->early_error != NULL)
		end_error(c, "bad_request", 0, "%s", c->early_error);
	else
		attempt_begin(c);
	call_leave(c);
}

/* An attempt failed with msg: again after a while when the failure is transient,
 * nothing reached the sink, retries and time are left; else the error. */
static void retry_or_fail(struct ant_call *c, int transient, const char *code, int retryable,
    const char *msg)
{
	struct ant *o = c->o;
	struct adapter_attempt a = {
		.transient = transient, .emitted = c->sink.emitted, .attempt = c->attempt,
		.max_retries = o->max_retries, .now_ms = o->host->now_ms(),
		.deadline_ms = c->deadline, .timeout_ms = o->timeout_ms,
		.retry_after_ms = c->retry_after_ms, .retry_after = c->retry_after,
	};
	char report[1024], logged[1024];
	int64_t delay = adapter_retry_next(&o->rng, &a, msg, report, sizeof(report));

	if (delay < 0) {
		end_error(c, code, retryable, "%s", report);
		return;
	}
	c->attempt++;
	snprintf(logged, sizeof(logged), "%s", msg);
	scrub(c, logged);
	LOG(o, CRAB_LOG_V1_INFO, "[%s] %s; retry %d of %d in %lld ms", o->id, logged, c->attempt,
	    o->max_retries, (long long)delay);
	if ((c->timer = o->host->timer_start(o->self, delay, 0, retry_fire, c)) == NULL)
		end_error(c, code, retryable, "%s (cannot arm the retry timer)", msg);
}

/* ---- the credential the host lends (auth:) ---- */

static int attempt_start(struct ant_call *c);

static void start_or_fail(struct ant_call *c)
{
	if (attempt_start(c) != 0)
		end_error(c, "provider_unreachable", 1, "cannot start an HTTP request to %s",
		    c->o->url);
}

/* A bearer credential fits in a header line: printable, no space. */
static int token_ok(const char *t)
{
	size_t n = 0;

	for (; t[n] != '\0'; n++) {
		if ((unsigned char)t[n] <= 0x20 || t[n] == 0x7f)
			return 0;
	}
	return n > 0 && n < TOKEN_MAX;
}

/* The host's error "code: message": its code when it begins with one ([a-z0-9_]), else
 * login_required; the message without it. */
static void auth_failed(struct ant_call *c, const char *error)
{
	char code[48] = "login_required";
	const char *msg = error && error[0] ? error : "the host lent no token";
	size_t n = 0;

	while (error != NULL && n < sizeof(code) - 1 && ((error[n] >= 'a' && error[n] <= 'z') ||
	    (error[n] >= '0' && error[n] <= '9') || error[n] == '_'))
		n++;
	if (error != NULL && n > 0 && error[n] == ':') {
		memcpy(code, error, n);
		code[n] = '\0';
		for (msg = error + n + 1; *msg == ' '; msg++)
			;
	}
	end_error(c, code, 0, "no credential for model '%s': %.400s", c->o->id, msg);
}

static void token_answer(void *arg, const char *token, const char *error)
{
	struct ant_ticket *t = arg;
	struct ant_call *c = t->c;

	t->answered = 1;
	if (t->returned) /* asked earlier: the ticket is ours to free now */
		free(t);
	if (c == NULL)
		return; /* the call was cancelled or freed meanwhile */
	c->ticket = NULL;
	c->depth++;
	if (!c->sink.cancelled) {
		if (token != NULL && token_ok(token)) {
			forget_token(c);
			if ((c->token = strdup(token)) == NULL)
				end_error(c, "auth_unavailable", 0, "out of memory for the token");
			else
				start_or_fail(c);
		} else if (token != NULL) {
			end_error(c, "auth_unavailable", 0, "the host lent model '%s' a token that "
			    "cannot go in a header", c->o->id);
		} else {
			auth_failed(c, error);
		}
	}
	call_leave(c);
}

/* Asks the host for the token (stale: the one just refused), then starts the attempt
 * when it answers. Called only from our callbacks, never from start, so that an answer
 * given at once may end the call through the sink. */
static void ask_token(struct ant_call *c, const char *stale)
{
	struct ant *o = c->o;
	struct ant_ticket *t;
	char *refused = NULL;
	int rc;

	if (!CRAB_HOST_HAS(o->host, auth_token)) {
		end_error(c, "auth_unavailable", 0, "model '%s' has auth:, but this gateway lends "
		    "no subscription credentials (no auth layer in this host)", o->id);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		end_error(c, "auth_unavailable", 0, "out of memory");
		return;
	}
	/* a copy: an answer given at once replaces c->token while the host still holds it */
	if (stale != NULL && (refused = strdup(stale)) == NULL) {
		free(t);
		end_error(c, "auth_unavailable", 0, "out of memory");
		return;
	}
	t->c = c;
	c->ticket = t;
	rc = o->host->auth_token(o->self, refused, token_answer, t);
	t->returned = 1;
	if (refused != NULL) {
		explicit_bzero(refused, strlen(refused));
		free(refused);
	}
	if (t->answered) { /* answered before returning */
		free(t);
		return;
	}
	if (rc != 0) { /* no answer will come */
		c->ticket = NULL;
		free(t);
		end_error(c, "auth_unavailable", 0, "the host has no credential for model '%s' "
		    "(auth_token refused it)", o->id);
	}
}

/* One attempt: with the host's token first when the entry has auth:. */
static void attempt_begin(struct ant_call *c)
{
	if (c->o->use_auth)
		ask_token(c, NULL);
	else
		start_or_fail(c);
}

/* ---- the HTTP answer ---- */

static void on_header(void *arg, int status, const char *line, size_t len)
{
	struct ant_call *c = arg;
	const char *colon = memchr(line, ':', len), *v;
	size_t name, vn;
	char *dst = NULL;
	size_t dstlen = 0;

	c->status = status;
	if (colon == NULL)
		return;
	name = (size_t)(colon - line);
	for (v = colon + 1; v < line + len && (*v == ' ' || *v == '\t'); v++)
		;
	for (vn = (size_t)(line + len - v); vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t' ||
	    v[vn - 1] == '\r' || v[vn - 1] == '\n'); vn--)
		;
	if (name == 14 && strncasecmp(line, "retry-after-ms", 14) == 0) {
		dst = c->retry_after_ms, dstlen = sizeof(c->retry_after_ms);
	} else if (name == 11 && strncasecmp(line, "retry-after", 11) == 0) {
		dst = c->retry_after, dstlen = sizeof(c->retry_after);
	} else if (name == 10 && strncasecmp(line, "request-id", 10) == 0) {
		dst = c->request_id, dstlen = sizeof(c->request_id);
	} else if (name == 14 && strncasecmp(line, "x-should-retry", 14) == 0) {
		c->should_retry = vn == 4 && strncasecmp(v, "true", 4) == 0 ? 1 :
		    vn == 5 && strncasecmp(v, "false", 5) == 0 ? 0 : -1;
	} else if (name == 12 && strncasecmp(line, "content-type", 12) == 0) {
		c->json_body = vn >= 16 && strncasecmp(v, "application/json", 16) == 0;
		c->sse_body = vn >= 17 && strncasecmp(v, "text/event-stream", 17) == 0;
	}
	if (dst != NULL && vn < dstlen) {
		memcpy(dst, v, vn);
		dst[vn] = '\0';
	}
}

static int keep(struct ant_call *c, const char *data, size_t len, size_t max)
{
	return adapter_buf_add(&c->buf, &c->buf_len, &c->buf_cap, data, len, max);
}

static int is_2xx(int status)
{
	return status >= 200 && status < 300;
}

/* Server-sent events: what the answer says it is, else what was asked for. */
static int sse_mode(const struct ant_call *c)
{
	return c->sse_body || (c->stream && !c->json_body);
}

static int on_data(void *arg, const char *data, size_t len)
{
	struct ant_call *c = arg;
	int rc = 0;

	c->depth++;
	if (is_2xx(c->status) && sse_mode(c)) {
		if (ant_stream_feed(c->sse, data, len) == ANT_FAIL) {
			c->failed = 1;
			rc = -1;
		}
	} else if (is_2xx(c->status) || c->status == 0) {
		if (keep(c, data, len, JSON_BODY_MAX) != 0) {
			c->too_large = 1;
			rc = -1;
		}
	} else {
		size_t room = ERROR_BODY_MAX - c->buf_len;
		keep(c, data, len < room ? len : room, ERROR_BODY_MAX);
	}
	if (c->sink.cancelled)
		rc = -1;
	call_leave(c);
	return rc;
}

static void http_error(struct ant_call *c, int status)
{
	char pmsg[ANT_MSG_MAX + 8], ptype[64], pid[80], msg[640];
	const char *code, *rid;
	int transient = status == 408 || status == 409 || status == 429 || status >= 500;
	int retryable = transient;

	ant_error_body(c->buf, c->buf_len, pmsg, sizeof(pmsg), ptype, sizeof(ptype), pid,
	    sizeof(pid));
	switch (status) {
	case 400: code = "bad_request"; break;
	case 401: code = "unauthenticated"; break;
	case 402: code = "insufficient_quota"; break;
	case 403: code = "forbidden"; break;
	case 404: code = "model_not_found"; break;
	case 408: code = "timeout"; break;
	case 409: code = "provider_error"; break;
	case 413: code = "request_too_large"; break;
	case 429: code = "rate_limited"; break;
	case 504: code = "timeout"; break;
	case 529: code = "overloaded"; break;
	default: code = status >= 500 ? "provider_error" : status >= 400 ? "bad_request" :
	    "bad_response"; break;
	}
	if (c->should_retry >= 0)
		transient = c->should_retry;
	rid = pid[0] ? pid : c->request_id;
	snprintf(msg, sizeof(msg), "HTTP %d from the provider: %s%s%s%s%s%s", status, pmsg,
	    ptype[0] ? " [" : "", ptype, ptype[0] ? "]" : "", rid[0] ? " request-id " : "", rid);
	if (status == 401 && c->o->use_auth && !c->refreshed && !c->sink.emitted) {
		/* the token may have just expired or been revoked: one fresh one, at once */
		char logged[sizeof(msg)];
		c->refreshed = 1;
		snprintf(logged, sizeof(logged), "%s", msg);
		scrub(c, logged);
		LOG(c->o, CRAB_LOG_V1_INFO, "[%s] %s; asking the host for a fresh token", c->o->id,
		    logged);
		ask_token(c, c->token);
		return;
	}
	if (status == 401 && c->refreshed)
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " (with a fresh token too)");
	retry_or_fail(c, transient, code, retryable, msg);
}

static void attempt_done(struct ant_call *c, int status, const char *error)
{
	struct ant *o = c->o;
	const char *code, *smsg;
	char msg[768];
	int retryable, rc;

	if (c->failed) { /* the assembler stopped the call */
		code = ant_stream_error(c->sse, &smsg, &retryable);
		if (retryable && strcmp(code, "bad_response") != 0) { /* an error event */
			snprintf(msg, sizeof(msg), "%s", smsg);
			retry_or_fail(c, 1, code, retryable, msg);
		} else {
			end_error(c, code, retryable, "%s", smsg);
		}
	} else if (c->too_large) {
		end_error(c, "bad_response", 0, "the answer is larger than %u bytes", JSON_BODY_MAX);
	} else if (error != NULL) {
		if (o->host->now_ms() + 250 >= c->deadline) {
			end_error(c, "timeout", 1, "no complete answer within timeout_s %lld%s",
			    (long long)(o->timeout_ms / 1000), c->sink.emitted ? " (the answer is cut)" :
			    "");
		} else if (is_2xx(c->status) && sse_mode(c)) {
			/* the stream broke: complete if its message was (a stop reason, no block
			 * open), else cut where the assembler says */
			if (ant_stream_finish(c->sse) == ANT_END) {
				LOG(o, CRAB_LOG_V1_INFO, "[%s] the connection broke after a complete "
				    "message: %.300s", o->id, error);
				end_done(c, ant_stream_stop_reason(c->sse));
				return;
			}
			code = ant_stream_error(c->sse, &smsg, &retryable);
			snprintf(msg, sizeof(msg), "%s (%.300s)", smsg, error);
			if (strcmp(code, "stream_cut") == 0)
				retry_or_fail(c, 1, code, retryable, msg); /* not once text went out */
			else
				end_error(c, code, retryable, "%s", msg);
		} else if (c->sink.emitted) {
			end_error(c, "stream_cut", 1, "the connection failed after the answer had "
			    "begun: %.300s", error);
		} else if (c->status != 0) {
			snprintf(msg, sizeof(msg), "the answer broke off: %.300s", error);
			retry_or_fail(c, 1, "stream_cut", 1, msg);
		} else {
			snprintf(msg, sizeof(msg), "cannot reach %s: %.300s", o->url, error);
			retry_or_fail(c, 1, "provider_unreachable", 1, msg);
		}
	} else if (is_2xx(status)) {
		if (sse_mode(c))
			rc = ant_stream_feed(c->sse, c->buf ? c->buf : "", c->buf_len);
		else
			rc = ant_stream_feed_json(c->sse, c->buf ? c->buf : "", c->buf_len);
		if (rc != ANT_FAIL)
			rc = ant_stream_finish(c->sse);
		if (rc == ANT_END) {
			end_done(c, ant_stream_stop_reason(c->sse));
			return;
		}
		code = ant_stream_error(c->sse, &smsg, &retryable);
		snprintf(msg, sizeof(msg), "%s", smsg);
		if (strcmp(code, "bad_response") != 0 && retryable)
			retry_or_fail(c, 1, code, retryable, msg); /* a cut, or an error event */
		else
			end_error(c, code, retryable, "%s", msg);
	} else {
		http_error(c, status);
	}
}

static void on_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct ant_call *c = arg;
	(void)body; /* on_data took it */
	(void)len;

	c->http = NULL;
	c->depth++;
	if (!c->sink.cancelled)
		attempt_done(c, status, error);
	call_leave(c);
}

/* "Name: <prefix><value>" for a secret, malloc'd (the caller wipes it); NULL out of
 * memory. */
static char *secret_header(const char *name, const char *prefix, const char *value)
{
	size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
	char *h = malloc(n);

	if (h != NULL)
		snprintf(h, n, "%s: %s%s", name, prefix, value);
	return h;
}

static int attempt_start(struct ant_call *c)
{
	struct ant *o = c->o;
	const char *headers[MAX_CONFIG_HEADERS + 8];
	char *cred = NULL;
	size_t n = 0;
	int64_t left = c->deadline - o->host->now_ms();
	struct crab_http_req_v1 req = {.size = sizeof(req)};
	struct crab_http_handler_v1 h = {
		.size = sizeof(h), .on_header = on_header, .on_data = on_data, .on_done = on_done,
	};

	ant_stream_free(c->sse);
	if ((c->sse = ant_stream_new(NULL, &call_out, &c->sink)) == NULL)
		return -1;
	c->status = c->json_body = c->sse_body = c->failed = c->too_large = 0;
	c->should_retry = -1;
	c->retry_after_ms[0] = c->retry_after[0] = c->request_id[0] = '\0';
	c->buf_len = 0;
	for (size_t i = 0; i < o->nheaders; i++)
		headers[n++] = o->headers[i];
	headers[n++] = c->stream ? "Accept: text/event-stream" : "Accept: application/json";
	if (o->use_auth) /* the host's token; never the API key with it */
		cred = c->token ? secret_header("Authorization", "Bearer ", c->token) : NULL;
	else if (o->key != NULL)
		cred = secret_header("x-api-key", "", o->key);
	if ((o->use_auth || o->key != NULL) && cred == NULL)
		return -1;
	if (cred != NULL)
		headers[n++] = cred;
	headers[n] = NULL;
	req.method = "POST";
	req.url = o->url;
	req.headers = headers;
	req.body = c->body;
	req.body_len = c->body_len;
	req.timeout_ms = left > 1 ? left : 1;
	req.max_response_bytes = RESPONSE_MAX;
	c->http = o->host->http_start(o->self, &req, &h, c); /* copies the headers */
	if (cred != NULL) {
		explicit_bzero(cred, strlen(cred));
		free(cred);
	}
	return c->http != NULL ? 0 : -1;
}

/* ---- the model operations ---- */

static int ant_start(void *ctx, const char *request, size_t len,
    const struct crab_model_sink_v1 *sink, void *sink_arg, void **handle)
{
	struct ant *o = ctx;
	struct ant_req_opts opts = {o->model, o->max_tokens, o->system_prefix};
	struct ant_call *c;
	char err[256];

	if (!CRAB_HOST_HAS(o->host, http_start) || !CRAB_HOST_HAS(o->host, http_cancel) ||
	    !CRAB_HOST_HAS(o->host, timer_start) || !CRAB_HOST_HAS(o->host, timer_stop) ||
	    !CRAB_HOST_HAS(o->host, now_ms)) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] this host lends no HTTP client or timers", o->id);
		return -1;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	if (adapter_sink_init(&c->sink, sink, sink_arg) != 0) {
		free(c);
		return -1;
	}
	c->o = o;
	c->deadline = o->host->now_ms() + o->timeout_ms;
	c->body = ant_request_build(request, len, &opts, &c->body_len, &c->stream, err, sizeof(err));
	c->next = o->calls;
	if (c->next != NULL)
		c->next->prevp = &c->next;
	c->prevp = &o->calls;
	o->calls = c;
	if (c->body == NULL || o->use_auth) {
		/* told through the sink on the loop: the reason, or the host's token */
		if ((c->body == NULL && (c->early_error = strdup(err)) == NULL) ||
		    (c->timer = o->host->timer_start(o->self, 0, 0, retry_fire, c)) == NULL)
			goto fail;
	} else if (attempt_start(c) != 0) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] cannot start an HTTP request to %s", o->id, o->url);
		goto fail;
	}
	*handle = c;
	return 0;
fail:
	c->sink.cancelled = 1;
	call_release(c);
	return -1;
}

static void ant_cancel(void *ctx, void *handle)
{
	struct ant_call *c = handle;
	(void)ctx;

	c->sink.cancelled = 1;
	if (c->http != NULL)
		c->o->host->http_cancel(c->http);
	if (c->timer != NULL)
		c->o->host->timer_stop(c->timer);
	c->http = NULL;
	c->timer = NULL;
	if (c->depth == 0)
		call_release(c);
}

/* ---- configuration ---- */

static void ant_free(struct ant *o)
{
	while (o->calls != NULL) {
		o->calls->sink.cancelled = 1;
		call_release(o->calls);
	}
	if (o->key != NULL) {
		explicit_bzero(o->key, strlen(o->key));
		free(o->key);
	}
	for (size_t i = 0; i < o->nheaders; i++)
		free(o->headers[i]);
	free(o->headers);
	free(o->id);
	free(o->url);
	free(o->model);
	free(o->system_prefix);
	free(o);
}

static int add_header(struct ant *o, const char *name, const char *value)
{
	int rc = adapter_header_add(o->headers, &o->nheaders, MAX_CONFIG_HEADERS, name, value);

	if (rc == -1)
		LOG(o, CRAB_LOG_V1_WARN, "[%s] header '%.64s' is not a valid header (or more than "
		    "%d)", o->id, name, MAX_CONFIG_HEADERS);
	return rc == 0 ? 0 : -1;
}

/* A header of the config's headers: mapping, never one the adapter sets itself (the
 * credential above all: a key written in the file would be a secret in it). */
static int config_header(struct ant *o, const char *name, json_t *v)
{
	static const char *const own[] = {"x-api-key", "authorization", "anthropic-version",
		"content-type", "accept"};

	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		if (strcasecmp(name, own[i]) == 0) {
			LOG(o, CRAB_LOG_V1_WARN, "[%s] headers: '%s' is the adapter's own; the "
			    "credential comes from api_key_env, api_key_file or auth, the version "
			    "from anthropic_version", o->id, own[i]);
			return -1;
		}
	}
	if (!json_is_string(v)) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] headers: '%.64s' must be a string", o->id, name);
		return -1;
	}
	return add_header(o, name, json_string_value(v));
}

static int configure(struct ant *o, json_t *cfg)
{
	char *base = adapter_config_str(cfg, "base_url", DEFAULT_BASE_URL), key[KEY_MAX], why[128];
	char *version = adapter_config_str(cfg, "anthropic_version", DEFAULT_VERSION);
	const char *s, *name;
	long long timeout_s, retries;
	json_t *v, *hv, *auth = json_object_get(cfg, "auth");
	size_t n;
	int rc = -1;

	o->id = adapter_config_str(cfg, "id", "anthropic");
	o->model = adapter_config_str(cfg, "model", json_string_value(json_object_get(cfg, "id")));
	o->system_prefix = adapter_config_str(cfg, "system_prefix", NULL);
	o->headers = calloc(MAX_CONFIG_HEADERS, sizeof(*o->headers));
	if (base == NULL || version == NULL || o->id == NULL || o->headers == NULL)
		goto done;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] base_url must begin with http:// or https://", o->id);
		goto done;
	}
	for (n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
		base[n - 1] = '\0';
	if ((o->url = malloc(n + sizeof("/v1/messages"))) == NULL)
		goto done;
	snprintf(o->url, n + sizeof("/v1/messages"), "%s/v1/messages", base);
	if (adapter_config_int(cfg, "timeout_s", DEFAULT_TIMEOUT_S, 1, 3600, &timeout_s, why,
	    sizeof(why)) != 0 || adapter_config_int(cfg, "max_retries", DEFAULT_MAX_RETRIES, 0, 10,
	    &retries, why, sizeof(why)) != 0 || adapter_config_int(cfg, "max_tokens",
	    DEFAULT_MAX_TOKENS, 1, 1000000, &o->max_tokens, why, sizeof(why)) != 0) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] %s", o->id, why);
		goto done;
	}
	o->timeout_ms = timeout_s * 1000;
	o->max_retries = (int)retries;
	if (add_header(o, "Content-Type", "application/json") != 0 ||
	    add_header(o, "anthropic-version", version) != 0)
		goto done;
	v = json_object_get(cfg, "headers");
	if (v != NULL && !json_is_null(v) && !json_is_object(v)) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] headers must be a mapping of names to values", o->id);
		goto done;
	}
	json_object_foreach(v, name, hv) {
		if (config_header(o, name, hv) != 0)
			goto done;
	}
	if (auth != NULL && !json_is_null(auth) && !json_is_false(auth)) {
		/* what auth: holds is the host's business (crab.yaml(5) AUTH) */
		o->use_auth = 1;
		if (json_object_get(cfg, "api_key_env") != NULL ||
		    json_object_get(cfg, "api_key_file") != NULL)
			LOG(o, CRAB_LOG_V1_WARN, "[%s] auth: is set: api_key_env and api_key_file are "
			    "not used", o->id);
	} else if (CRAB_HOST_HAS(o->host, secret_get) &&
	    o->host->secret_get(o->self, "api_key", key, sizeof(key)) == 0 && key[0] != '\0') {
		for (s = key; *s != '\0' && (unsigned char)*s >= 0x20 && *s != 0x7f; s++)
			;
		if (*s != '\0') {
			LOG(o, CRAB_LOG_V1_WARN, "[%s] the API key holds control characters", o->id);
			explicit_bzero(key, sizeof(key));
			goto done;
		}
		o->key = strdup(key);
		explicit_bzero(key, sizeof(key));
		if (o->key == NULL)
			goto done;
	} else if (json_object_get(cfg, "api_key_env") != NULL ||
	    json_object_get(cfg, "api_key_file") != NULL) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] api_key_env or api_key_file names no key: requests "
		    "go without x-api-key", o->id);
	}
	rc = 0;
done:
	free(base);
	free(version);
	return rc;
}

static int ant_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t len, void **ctx)
{
	struct ant *o = calloc(1, sizeof(*o));
	json_t *cfg = json_loadb(config, len, 0, NULL);

	if (o == NULL || !json_is_object(cfg)) {
		free(o);
		json_decref(cfg);
		return -1;
	}
	o->host = host;
	o->self = self;
	o->rng = adapter_rng_seed(o, CRAB_HOST_HAS(host, now_ms) ? host->now_ms() : 0);
	if (configure(o, cfg) != 0) {
		json_decref(cfg);
		ant_free(o);
		return -1;
	}
	json_decref(cfg);
	*ctx = o;
	return 0;
}

static void ant_fini(void *ctx)
{
	ant_free(ctx);
}

static const struct crab_model_ops_v1 ant_model = {
	.size = sizeof(struct crab_model_ops_v1),
	.start = ant_start,
	.cancel = ant_cancel,
};

CRAB_MODULE(anthropic) = {
	.abi_major = CRAB_ABI_MAJOR,
	.size = sizeof(struct crab_module_v1),
	.name = "anthropic",
	.version = "0.1.0",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
	.init = ant_init,
	.fini = ant_fini,
	.model = &ant_model,
};
