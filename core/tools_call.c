/* tools_call.c: one tool call (tools.h): to a remote host over pinned TLS, or to the
 * gateway's own config.* tools; every outcome a well-formed result, heard from the loop. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config_tools.h"
#include "gateway.h"
#include "jsontext.h"
#include "tools_int.h"
#include "util.h"

#define RETRY_DELAY_MS 200

/* {"call_id","ok":false,"error":{"code","message","retryable"}} */
static char *error_result(const char *call_id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static char *error_result(const char *call_id, const char *code, const char *fmt, ...)
{
	struct crab_buf b = {0};
	char msg[ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	crab_jobj_open(&b);
	crab_jobj_str(&b, "call_id", call_id);
	crab_jobj_bool(&b, "ok", 0);
	crab_buf_add(&b, ",\"error\":", 9);
	crab_jobj_open(&b);
	crab_jobj_str(&b, "code", code);
	crab_jobj_str(&b, "message", msg);
	crab_jobj_bool(&b, "retryable", 0);
	crab_jobj_close(&b);
	crab_jobj_close(&b);
	return crab_buf_take(&b);
}

static void call_free(struct crab_tool_call *c)
{
	crab_http_client_cancel(c->http);
	EVP_PKEY_free(c->pin.key);
	if (c->ev != NULL)
		event_free(c->ev);
	free(c->tool);
	free(c->call_id);
	free(c->body);
	free(c->url);
	free(c->result);
	free(c);
}

/* The result is known: the caller hears of it from the loop, never from inside its own
 * call or a callback of the HTTP client. */
static void finish_later(struct crab_tool_call *c, char *result)
{
	free(c->result);
	c->result = result;
	crab_http_client_cancel(c->http);
	c->http = NULL;
	event_active(c->ev, EV_TIMEOUT, 0);
}

static void on_answer(void *arg, int status, const char *body, size_t len,
    const char *error);

static void post(struct crab_tool_call *c)
{
	const char *headers[] = {"Content-Type: application/json", NULL};
	int64_t left = c->deadline_at - crab_monotonic_us() / 1000;

	if (left <= 0) {
		finish_later(c, error_result(c->call_id, "deadline_exceeded",
		    "%s did not answer within its deadline", c->tool));
		return;
	}
	if (c->h->http == NULL)
		c->h->http = crab_http_client_new(c->t->gw->base);
	EVP_PKEY_free(c->pin.key);
	c->pin = (struct crab_tls_pin){.id = c->t->gw->identity, .expect = c->h->fp, .reuse = 1};
	c->attempts++;
	c->http = crab_http_client_start_pinned(c->h->http,
	    &(struct crab_http_req_v1){.size = sizeof(struct crab_http_req_v1), .method = "POST",
		.url = c->url, .headers = headers, .body = c->body, .body_len = strlen(c->body),
		.timeout_ms = left, .max_response_bytes = CRAB_TOOL_ANSWER_MAX},
	    &(struct crab_http_handler_v1){.size = sizeof(struct crab_http_handler_v1),
		.on_done = on_answer},
	    c, &c->pin);
	if (c->http == NULL)
		finish_later(c, error_result(c->call_id, "unavailable",
		    "cannot reach the tool host of %s now", c->tool));
}

/* The host's answer as the model gets it: its own when it is a result, with our call_id,
 * else an error saying what was wrong. *retryable: worth trying again. */
static char *judge(struct crab_tool_call *c, int status, const char *body, size_t len,
    const char *error, int *retryable)
{
	json_t *doc, *ok;
	char *out;

	*retryable = 1;
	if (error != NULL) {
		if (c->pin.mismatch) {
			*retryable = 0;
			return error_result(c->call_id, "unavailable",
			    "the tool host's key is not the one paired (pin_mismatch)");
		}
		if (crab_monotonic_us() / 1000 >= c->deadline_at)
			return error_result(c->call_id, "deadline_exceeded",
			    "%s did not answer within its deadline", c->tool);
		return error_result(c->call_id, "unavailable", "%s: %s", c->tool, error);
	}
	*retryable = status >= 500 || status == 429 || status == 408;
	doc = json_loadb(body, len, 0, NULL);
	ok = json_object_get(doc, "ok");
	if (status != 200 || !json_is_boolean(ok)) {
		json_decref(doc);
		return error_result(c->call_id, "bad_response", "%s: the tool host answered %s",
		    c->tool, status != 200 ? "with an HTTP error" : "with something that is not a "
		    "tool result");
	}
	*retryable = !json_is_true(ok) &&
		     json_is_true(json_object_get(json_object_get(doc, "error"), "retryable"));
	json_object_set_new(doc, "call_id", json_string(c->call_id));
	out = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return out;
}

static void on_answer(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct crab_tool_call *c = arg;
	struct timeval again = {0, RETRY_DELAY_MS * 1000};
	int retryable;
	char *result;

	c->http = NULL;
	result = judge(c, status, body, len, error, &retryable);
	/* Back after a break, or answering for a tool it no longer has: its list may have
	 * changed. */
	if (error != NULL) {
		c->h->relist = 1;
	} else if (c->h->relist || strstr(result, "\"unknown_tool\"") != NULL) {
		c->h->relist = 0;
		crab_tools_host_list(c->h);
	}
	/* Only an idempotent tool is tried again: another may have acted already. */
	if (retryable && c->idempotent && c->attempts < 2 &&
	    c->deadline_at - crab_monotonic_us() / 1000 > 2 * RETRY_DELAY_MS) {
		free(result);
		c->retrying = 1;
		evtimer_add(c->ev, &again);
		return;
	}
	finish_later(c, result);
}

/* Its host is revoked: what it has in flight fails now (the host's client goes). */
void crab_tools_fail_calls_of(struct crab_tools *t, struct host *h)
{
	for (struct crab_tool_call *c = t->calls; c != NULL; c = c->next) {
		if (c->h != h)
			continue;
		c->h = NULL;
		c->retrying = 0;
		finish_later(c, error_result(c->call_id, "unavailable",
		    "the tool host of %s is no longer paired", c->tool));
	}
}

static void unlink_call(struct crab_tool_call *c)
{
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
}

static void call_ev(evutil_socket_t fd, short what, void *arg)
{
	struct crab_tool_call *c = arg;

	(void)fd;
	(void)what;
	if (c->retrying) {
		c->retrying = 0;
		post(c);
		return;
	}
	unlink_call(c);
	c->done(c->arg, c->tool, c->result);
	call_free(c);
}

/* The gateway's own tools answer here (maybe before crab_config_tools_call returns). */
static void own_answer(void *arg, const char *json, size_t len)
{
	struct crab_tool_call *c = arg;

	c->own_pending = 0;
	if (c->cancelled) { /* the turn went meanwhile */
		call_free(c);
		return;
	}
	finish_later(c, len < CRAB_TOOL_ANSWER_MAX ? xstrndup(json, len) :
	    error_result(c->call_id, "bad_response", "%s answered too much", c->tool));
}

static char *call_body(const struct crab_tool_call_args *a, const char *tool)
{
	struct crab_buf b = {0};

	crab_jobj_open(&b);
	crab_jobj_str(&b, "call_id", a->call_id);
	crab_jobj_str(&b, "tool", tool);
	crab_jobj_raw(&b, "arguments", a->arguments);
	crab_buf_add(&b, ",\"context\":", 11);
	crab_jobj_open(&b);
	crab_jobj_str(&b, "tenant_id", a->tenant_id);
	crab_jobj_str(&b, "agent_id", a->agent->id);
	crab_jobj_str(&b, "session_id", a->session_id);
	if (a->memory_key != NULL && a->memory_key[0] != '\0')
		crab_jobj_str(&b, "memory_key", a->memory_key);
	crab_jobj_int(&b, "deadline_ms", a->deadline_ms);
	crab_jobj_close(&b);
	crab_jobj_close(&b);
	return crab_buf_take(&b);
}

struct crab_tool_call *crab_tools_call(struct crab_tools *t,
    const struct crab_tool_call_args *a, crab_tool_done_fn done, void *arg)
{
	struct crab_tool_call *c = xcalloc(1, sizeof(*c));
	const struct tool *remote;
	char own[65];
	size_t n;
	json_t *args = json_loads(a->arguments, 0, NULL);

	c->t = t;
	c->done = done;
	c->arg = arg;
	c->call_id = xstrdup(a->call_id);
	c->deadline_at = crab_monotonic_us() / 1000 + a->deadline_ms;
	c->ev = event_new(t->gw->base, -1, 0, call_ev, c);
	c->next = t->calls;
	if (t->calls != NULL)
		t->calls->prevp = &c->next;
	c->prevp = &t->calls;
	t->calls = c;
	if (t->dirty)
		crab_tools_refresh(t);
	if (!json_is_object(args)) {
		c->tool = xstrdup(a->name);
		finish_later(c, error_result(c->call_id, "invalid_arguments",
		    "the arguments of %.64s are not a JSON object", a->name));
	} else if ((remote = crab_tools_find_remote(t, a->agent, a->tenant_id, a->name, &c->h)) != NULL) {
		c->tool = xstrdup(remote->name);
		c->idempotent = remote->idempotent;
		c->body = call_body(a, remote->name);
		n = strlen(c->h->endpoint) + sizeof("/v1/tools/call");
		c->url = xmalloc(n);
		snprintf(c->url, n, "%s/v1/tools/call", c->h->endpoint);
		post(c);
	} else if (crab_tools_find_own(a->agent, a->name, own, sizeof(own))) {
		c->tool = xstrdup(own);
		c->body = call_body(a, own);
		c->own_pending = 1;
		crab_config_tools_call(t->gw, c->body, strlen(c->body), own_answer, c);
	} else {
		c->tool = xstrdup(a->name);
		finish_later(c, error_result(c->call_id, "unknown_tool",
		    "no tool named %.64s is available to this agent", a->name));
	}
	json_decref(args);
	return c;
}

void crab_tools_cancel(struct crab_tool_call *c)
{
	if (c == NULL)
		return;
	unlink_call(c);
	if (c->own_pending) { /* freed when the gateway's tool answers */
		c->cancelled = 1;
		crab_http_client_cancel(c->http);
		c->http = NULL;
		event_del(c->ev);
		return;
	}
	call_free(c);
}
