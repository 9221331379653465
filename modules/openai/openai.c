/* openai.c: the built-in model adapter "openai": OpenAI's Chat Completions API and the
 * servers that speak it (vLLM, Ollama, llama.cpp, LM Studio, proxies). One instance per
 * model entry of the configuration, all state in its context; written only against
 * abi/crab_module_v1.h, libc, jansson and the code the adapters share (modules/common/),
 * so it also builds as a .so.
 *
 * A request: the neutral JSON mapped (openai_req.c), POST {base_url}/chat/completions
 * through the host's HTTP client, the server-sent events assembled (openai_sse.c) into
 * sink calls. Failures before anything reached the sink are retried with exponential
 * backoff and full jitter, or after what Retry-After asks, within one overall deadline
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
#include "modules/common/adapter_buf.h"
#include "modules/common/adapter_config.h"
#include "modules/common/adapter_msg.h"
#include "modules/common/adapter_retry.h"
#include "modules/common/adapter_sink.h"
#include "modules/openai/openai_int.h"

#define DEFAULT_BASE_URL "https://api.openai.com/v1"
#define DEFAULT_TIMEOUT_S 120
#define DEFAULT_MAX_RETRIES 3
#define KEY_MAX 4096
#define MAX_CONFIG_HEADERS 32
#define ERROR_BODY_MAX (64u << 10)   /* kept of an error answer; the rest is dropped */
#define JSON_BODY_MAX (16u << 20)    /* a whole (non-streamed) answer */
#define RESPONSE_MAX ((size_t)64 << 20)

struct oai_call;

struct oai {
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
	char *id;   /* the model entry's id, for the log */
	char *url;  /* {base_url}/chat/completions */
	char *model;
	char *max_tokens_field;
	char *key;  /* NULL: no Authorization header */
	char **headers; /* the fixed request headers, "Name: value" */
	size_t nheaders;
	int64_t timeout_ms;
	int max_retries, include_usage;
	uint64_t rng;
	struct oai_call *calls; /* in flight, for fini */
};

struct oai_call {
	struct oai *o;
	struct oai_call *next, **prevp;
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
	/* this attempt */
	struct oai_stream *sse;
	int status, json_body, sse_body, failed, too_large, should_retry;
	char retry_after_ms[32], retry_after[64];
	char *buf;
	size_t buf_len, buf_cap;
};

#define LOG(o, level, ...)                                                   \
	do {                                                                 \
		if (CRAB_HOST_HAS((o)->host, log))                           \
			(o)->host->log((o)->self, (level), __VA_ARGS__);     \
	} while (0)

/* ---- messages: never the key ---- */

static void end_error(struct oai_call *c, const char *code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void end_error(struct oai_call *c, const char *code, int retryable, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	adapter_scrub(msg, c->o->key);
	c->ended = 1;
	if (c->sink.cancelled)
		return;
	LOG(c->o, CRAB_LOG_V1_INFO, "[%s] request failed: %s: %s", c->o->id, code, msg);
	c->sink.ops.on_error(c->sink.arg, code, msg, retryable);
}

static void end_done(struct oai_call *c, const char *stop_reason)
{
	c->ended = 1;
	if (!c->sink.cancelled)
		c->sink.ops.on_done(c->sink.arg, stop_reason);
}

/* ---- the call's life ---- */

static void call_release(struct oai_call *c)
{
	if (c->http != NULL)
		c->o->host->http_cancel(c->http);
	if (c->timer != NULL)
		c->o->host->timer_stop(c->timer);
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
	oai_stream_free(c->sse);
	free(c->buf);
	free(c->body);
	free(c->early_error);
	free(c);
}

/* Leaves one of our callbacks: the outermost frees a call that ended meanwhile. */
static void call_leave(struct oai_call *c)
{
	if (--c->depth == 0 && (c->ended || c->sink.cancelled))
		call_release(c);
}

/* The assembler's calls go to the sink, the call's struct adapter_sink their arg. */
static const struct oai_out call_out = {adapter_sink_text, adapter_sink_tool_call,
	adapter_sink_usage};

/* ---- retries (modules/common/adapter_retry.h) ---- */

static int attempt_start(struct oai_call *c);

static void retry_fire(void *arg)
{
	struct oai_call *c = arg;

	c->depth++;
	c->o->host->timer_stop(c->timer);
	c->timer = NULL;
	if (c->early_error != NULL)
		end_error(c, "bad_request", 0, "%s", c->early_error);
	else if (attempt_start(c) != 0)
		end_error(c, "provider_unreachable", 1, "cannot start an HTTP request to %s",
		    c->o->url);
	call_leave(c);
}

/* An attempt failed with msg: again after a while when the failure is transient,
 * nothing reached the sink, retries and time are left; else the error. */
static void retry_or_fail(struct oai_call *c, int transient, const char *code, int retryable,
    const char *msg)
{
	struct oai *o = c->o;
	struct adapter_attempt a = {
		.transient = transient, .emitted = c->sink.emitted, .attempt = c->attempt,
		.max_retries = o->max_retries, .now_ms = o->host->now_ms(),
		.deadline_ms = c->deadline, .timeout_ms = o->timeout_ms,
		.retry_after_ms = c->retry_after_ms, .retry_after = c->retry_after,
	};
	char report[1024];
	int64_t delay = adapter_retry_next(&o->rng, &a, msg, report, sizeof(report));

	if (delay < 0) {
		end_error(c, code, retryable, "%s", report);
		return;
	}
	c->attempt++;
	LOG(o, CRAB_LOG_V1_INFO, "[%s] %s; retry %d of %d in %lld ms", o->id, msg, c->attempt,
	    o->max_retries, (long long)delay);
	if ((c->timer = o->host->timer_start(o->self, delay, 0, retry_fire, c)) == NULL)
		end_error(c, code, retryable, "%s (cannot arm the retry timer)", msg);
}

/* ---- the HTTP answer ---- */

static void on_header(void *arg, int status, const char *line, size_t len)
{
	struct oai_call *c = arg;
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
	for (vn = (size_t)(line + len - v); vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'); vn--)
		;
	if (name == 14 && strncasecmp(line, "retry-after-ms", 14) == 0) {
		dst = c->retry_after_ms, dstlen = sizeof(c->retry_after_ms);
	} else if (name == 11 && strncasecmp(line, "retry-after", 11) == 0) {
		dst = c->retry_after, dstlen = sizeof(c->retry_after);
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

static int keep(struct oai_call *c, const char *data, size_t len, size_t max)
{
	return adapter_buf_add(&c->buf, &c->buf_len, &c->buf_cap, data, len, max);
}

static int is_2xx(int status)
{
	return status >= 200 && status < 300;
}

/* Server-sent events: what the answer says it is, else what was asked for. */
static int sse_mode(const struct oai_call *c)
{
	return c->sse_body || (c->stream && !c->json_body);
}

static int on_data(void *arg, const char *data, size_t len)
{
	struct oai_call *c = arg;
	int rc = 0;

	c->depth++;
	if (is_2xx(c->status) && sse_mode(c)) {
		if (oai_stream_feed(c->sse, data, len) == OAI_FAIL) {
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

static void http_error(struct oai_call *c, int status)
{
	char pmsg[OAI_MSG_MAX + 8], pcode[64], msg[512];
	const char *code;
	int transient = status == 408 || status == 409 || status == 429 || status >= 500;
	int retryable = transient;

	oai_error_body(c->buf, c->buf_len, pmsg, sizeof(pmsg), pcode, sizeof(pcode));
	switch (status) {
	case 400: code = "bad_request"; break;
	case 401: code = "unauthenticated"; break;
	case 403: code = "forbidden"; break;
	case 404: code = "model_not_found"; break;
	case 408: code = "timeout"; break;
	case 409: code = "provider_error"; break;
	case 429: code = "rate_limited"; break;
	default: code = status >= 500 ? "provider_error" : status >= 400 ? "bad_request" :
	    "bad_response"; break;
	}
	if (status == 429 && strcmp(pcode, "insufficient_quota") == 0) {
		code = "insufficient_quota"; /* out of credit: no waiting helps */
		transient = retryable = 0;
	}
	if (c->should_retry >= 0)
		transient = c->should_retry;
	snprintf(msg, sizeof(msg), "HTTP %d from the provider: %s%s%s%s", status, pmsg,
	    pcode[0] ? " [" : "", pcode, pcode[0] ? "]" : "");
	retry_or_fail(c, transient, code, retryable, msg);
}

static void attempt_done(struct oai_call *c, int status, const char *error)
{
	struct oai *o = c->o;
	const char *code, *smsg;
	char msg[768];
	int retryable, rc;

	if (c->failed) { /* the assembler stopped the call */
		code = oai_stream_error(c->sse, &smsg, &retryable);
		end_error(c, code, retryable, "%s", smsg);
	} else if (c->too_large) {
		end_error(c, "bad_response", 0, "the answer is larger than %u bytes", JSON_BODY_MAX);
	} else if (error != NULL) {
		if (o->host->now_ms() + 250 >= c->deadline)
			end_error(c, "timeout", 1, "no complete answer within timeout_s %lld%s",
			    (long long)(o->timeout_ms / 1000), c->sink.emitted ? " (the answer is cut)" :
			    "");
		else if (c->sink.emitted)
			end_error(c, "stream_cut", 1, "the connection failed after the answer had "
			    "begun: %.300s", error);
		else if (c->status != 0) {
			snprintf(msg, sizeof(msg), "the answer broke off: %.300s", error);
			retry_or_fail(c, 1, "stream_cut", 1, msg);
		} else {
			snprintf(msg, sizeof(msg), "cannot reach %s: %.300s", o->url, error);
			retry_or_fail(c, 1, "provider_unreachable", 1, msg);
		}
	} else if (is_2xx(status)) {
		if (sse_mode(c))
			rc = oai_stream_feed(c->sse, c->buf ? c->buf : "", c->buf_len);
		else
			rc = oai_stream_feed_json(c->sse, c->buf ? c->buf : "", c->buf_len);
		if (rc != OAI_FAIL)
			rc = oai_stream_finish(c->sse);
		if (rc == OAI_END) {
			end_done(c, oai_stream_stop_reason(c->sse));
			return;
		}
		code = oai_stream_error(c->sse, &smsg, &retryable);
		if (strcmp(code, "stream_cut") == 0) {
			snprintf(msg, sizeof(msg), "%s", smsg);
			retry_or_fail(c, 1, code, retryable, msg);
		} else {
			end_error(c, code, retryable, "%s", smsg);
		}
	} else {
		http_error(c, status);
	}
}

static void on_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct oai_call *c = arg;
	(void)body; /* on_data took it */
	(void)len;

	c->http = NULL;
	c->depth++;
	if (!c->sink.cancelled)
		attempt_done(c, status, error);
	call_leave(c);
}

static int attempt_start(struct oai_call *c)
{
	struct oai *o = c->o;
	const char *headers[MAX_CONFIG_HEADERS + 8];
	char *auth = NULL;
	size_t n = 0, alen;
	int64_t left = c->deadline - o->host->now_ms();
	struct crab_http_req_v1 req = {.size = sizeof(req)};
	struct crab_http_handler_v1 h = {
		.size = sizeof(h), .on_header = on_header, .on_data = on_data, .on_done = on_done,
	};

	oai_stream_free(c->sse);
	if ((c->sse = oai_stream_new(NULL, &call_out, &c->sink)) == NULL)
		return -1;
	c->status = c->json_body = c->sse_body = c->failed = c->too_large = 0;
	c->should_retry = -1;
	c->retry_after_ms[0] = c->retry_after[0] = '\0';
	c->buf_len = 0;
	for (size_t i = 0; i < o->nheaders; i++)
		headers[n++] = o->headers[i];
	headers[n++] = c->stream ? "Accept: text/event-stream" : "Accept: application/json";
	if (o->key != NULL) {
		alen = strlen(o->key) + 32;
		if ((auth = malloc(alen)) == NULL)
			return -1;
		snprintf(auth, alen, "Authorization: Bearer %s", o->key);
		headers[n++] = auth;
	}
	headers[n] = NULL;
	req.method = "POST";
	req.url = o->url;
	req.headers = headers;
	req.body = c->body;
	req.body_len = c->body_len;
	req.timeout_ms = left > 1 ? left : 1;
	req.max_response_bytes = RESPONSE_MAX;
	c->http = o->host->http_start(o->self, &req, &h, c); /* copies the headers */
	if (auth != NULL) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	return c->http != NULL ? 0 : -1;
}

/* ---- the model operations ---- */

static int oai_start(void *ctx, const char *request, size_t len,
    const struct crab_model_sink_v1 *sink, void *sink_arg, void **handle)
{
	struct oai *o = ctx;
	struct oai_req_opts opts = {o->model, o->max_tokens_field, o->include_usage};
	struct oai_call *c;
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
	c->body = oai_request_build(request, len, &opts, &c->body_len, &c->stream, err, sizeof(err));
	c->next = o->calls;
	if (c->next != NULL)
		c->next->prevp = &c->next;
	c->prevp = &o->calls;
	o->calls = c;
	if (c->body == NULL) { /* told through the sink, on the loop, with the reason */
		if ((c->early_error = strdup(err)) == NULL ||
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

static void oai_cancel(void *ctx, void *handle)
{
	struct oai_call *c = handle;
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

static void oai_free(struct oai *o)
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
	free(o->max_tokens_field);
	free(o);
}

static int add_header(struct oai *o, const char *name, const char *value)
{
	int rc = adapter_header_add(o->headers, &o->nheaders, MAX_CONFIG_HEADERS, name, value);

	if (rc == -1)
		LOG(o, CRAB_LOG_V1_WARN, "[%s] header '%.64s' is not a valid header (or more than "
		    "%d)", o->id, name, MAX_CONFIG_HEADERS);
	return rc == 0 ? 0 : -1;
}

static int configure(struct oai *o, json_t *cfg)
{
	char *base = adapter_config_str(cfg, "base_url", DEFAULT_BASE_URL), key[KEY_MAX], why[128];
	const char *s, *name;
	long long timeout_s, retries;
	size_t n;
	json_t *v;
	int rc = -1;

	o->id = adapter_config_str(cfg, "id", "openai");
	o->model = adapter_config_str(cfg, "model", json_string_value(json_object_get(cfg, "id")));
	o->max_tokens_field = adapter_config_str(cfg, "max_tokens_field", "max_completion_tokens");
	o->headers = calloc(MAX_CONFIG_HEADERS, sizeof(*o->headers));
	if (base == NULL || o->id == NULL || o->max_tokens_field == NULL || o->headers == NULL)
		goto done;
	if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] base_url must begin with http:// or https://", o->id);
		goto done;
	}
	for (n = strlen(base); n > 0 && base[n - 1] == '/'; n--)
		base[n - 1] = '\0';
	if ((o->url = malloc(n + sizeof("/chat/completions"))) == NULL)
		goto done;
	snprintf(o->url, n + sizeof("/chat/completions"), "%s/chat/completions", base);
	if (adapter_config_int(cfg, "timeout_s", DEFAULT_TIMEOUT_S, 1, 3600, &timeout_s, why,
	    sizeof(why)) != 0 || adapter_config_int(cfg, "max_retries", DEFAULT_MAX_RETRIES, 0, 10,
	    &retries, why, sizeof(why)) != 0) {
		LOG(o, CRAB_LOG_V1_WARN, "[%s] %s", o->id, why);
		goto done;
	}
	o->timeout_ms = timeout_s * 1000;
	o->max_retries = (int)retries;
	o->include_usage = !json_is_false(json_object_get(cfg, "include_usage"));
	if (add_header(o, "Content-Type", "application/json") != 0 ||
	    ((s = json_string_value(json_object_get(cfg, "organization"))) != NULL &&
		add_header(o, "OpenAI-Organization", s) != 0) ||
	    ((s = json_string_value(json_object_get(cfg, "project"))) != NULL &&
		add_header(o, "OpenAI-Project", s) != 0))
		goto done;
	json_object_foreach(json_object_get(cfg, "headers"), name, v) {
		if (!json_is_string(v) || add_header(o, name, json_string_value(v)) != 0)
			goto done;
	}
	if (CRAB_HOST_HAS(o->host, secret_get) &&
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
		    "go without Authorization", o->id);
	}
	rc = 0;
done:
	free(base);
	return rc;
}

static int oai_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t len, void **ctx)
{
	struct oai *o = calloc(1, sizeof(*o));
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
		oai_free(o);
		return -1;
	}
	json_decref(cfg);
	*ctx = o;
	return 0;
}

static void oai_fini(void *ctx)
{
	oai_free(ctx);
}

static const struct crab_model_ops_v1 oai_model = {
	.size = sizeof(struct crab_model_ops_v1),
	.start = oai_start,
	.cancel = oai_cancel,
};

CRAB_MODULE(openai) = {
	.abi_major = CRAB_ABI_MAJOR,
	.size = sizeof(struct crab_module_v1),
	.name = "openai",
	.version = "0.1.0",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
	.init = oai_init,
	.fini = oai_fini,
	.model = &oai_model,
};
