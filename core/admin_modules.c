/* admin_modules.c: admin operations on modules. modules.list shows what the registry
 * holds; model.test sends one request to a model adapter through the same registry path
 * the turn executor uses, and answers with what the adapter reported. */
#include <stdlib.h>
#include <string.h>

#include "admin_ops.h"
#include "gateway.h"
#include "modules.h"
#include "util.h"

#define MODEL_TEST_TIMEOUT_S 30
#define MODEL_TEST_TEXT_MAX (1 << 20)

void crab_admin_op_modules_list(struct admin_call *call, json_t *args)
{
	(void)args;
	crab_admin_reply_ok(call, json_pack("{s:o}", "modules", crab_registry_list(call->gw->modules)));
}

struct model_test {
	struct model_test *next, **prevp; /* gw->model_tests */
	struct admin_call *call;
	const struct crab_model_ops_v1 *ops;
	void *ctx, *handle;
	struct event *timeout;
	char *text;
	size_t len;
	json_t *tool_calls, *usage;
};

static void model_test_free(struct model_test *t)
{
	*t->prevp = t->next;
	if (t->next != NULL)
		t->next->prevp = t->prevp;
	event_free(t->timeout);
	free(t->text);
	json_decref(t->tool_calls);
	json_decref(t->usage);
	free(t);
}

static void on_text(void *arg, const char *text, size_t len)
{
	struct model_test *t = arg;

	if (t->len + len > MODEL_TEST_TEXT_MAX)
		return; /* the answer is cut, never unbounded */
	t->text = xrealloc(t->text, t->len + len + 1);
	memcpy(t->text + t->len, text, len);
	t->len += len;
	t->text[t->len] = '\0';
}

static void on_tool_call(void *arg, const char *call, size_t len)
{
	struct model_test *t = arg;
	json_t *c = json_loadb(call, len, 0, NULL);
	json_array_append_new(t->tool_calls, c ? c : json_string("(not JSON)"));
}

static void on_usage(void *arg, int64_t in, int64_t out)
{
	struct model_test *t = arg;
	json_decref(t->usage);
	t->usage = json_pack("{s:I, s:I}", "input_tokens", (json_int_t)in, "output_tokens",
	    (json_int_t)out);
}

static void on_done(void *arg, const char *stop_reason)
{
	struct model_test *t = arg;
	crab_admin_reply_ok(t->call, json_pack("{s:s%, s:s, s:O, s:O}", "text",
	    t->text ? t->text : "", t->len, "stop_reason", stop_reason ? stop_reason : "",
	    "tool_calls", t->tool_calls, "usage", t->usage));
	model_test_free(t);
}

static void on_error(void *arg, const char *code, const char *message, int retryable)
{
	struct model_test *t = arg;
	crab_admin_reply_error(t->call, code ? code : "model_error", "%s%s",
	    message ? message : "the model adapter failed", retryable ? " (retryable)" : "");
	model_test_free(t);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct model_test *t = arg;
	(void)fd;
	(void)what;
	t->ops->cancel(t->ctx, t->handle);
	crab_admin_reply_error(t->call, "timeout", "the model adapter did not finish in %d s",
	    MODEL_TEST_TIMEOUT_S);
	model_test_free(t);
}

static const struct crab_model_sink_v1 sink = {
	.size = sizeof(struct crab_model_sink_v1),
	.on_text = on_text,
	.on_tool_call = on_tool_call,
	.on_usage = on_usage,
	.on_done = on_done,
	.on_error = on_error,
};

void crab_admin_op_model_test(struct admin_call *call, json_t *args)
{
	const char *name = json_string_value(json_object_get(args, "module"));
	json_t *request = json_object_get(args, "request");
	struct timeval limit = {MODEL_TEST_TIMEOUT_S, 0};
	struct model_test *t;
	char *text;
	int rc;

	if (name == NULL || !json_is_object(request)) {
		crab_admin_reply_error(call, "invalid_args", "module (a name) and request (an object) are required");
		return;
	}
	t = xcalloc(1, sizeof(*t));
	t->call = call;
	t->ops = crab_registry_model(call->gw->modules, name, &t->ctx);
	if (t->ops == NULL) {
		free(t); /* not linked yet */
		crab_admin_reply_error(call, "not_found", "no started model adapter '%.64s'", name);
		return;
	}
	t->next = call->gw->model_tests;
	if (t->next != NULL)
		t->next->prevp = &t->next;
	t->prevp = &call->gw->model_tests;
	call->gw->model_tests = t;
	t->tool_calls = json_array();
	t->usage = json_null();
	t->timeout = evtimer_new(call->gw->base, on_timeout, t);
	/* Armed first: an adapter may finish (and free t) inside start. */
	evtimer_add(t->timeout, &limit);
	text = json_dumps(request, JSON_COMPACT);
	rc = t->ops->start(t->ctx, text, strlen(text), &sink, t, &t->handle);
	free(text);
	if (rc != 0) {
		model_test_free(t);
		crab_admin_reply_error(call, "model_error", "model adapter '%.64s' refused the request", name);
	}
}

void crab_admin_modules_release(struct crab_gateway *gw)
{
	while (gw->model_tests != NULL) {
		struct model_test *t = gw->model_tests;
		t->ops->cancel(t->ctx, t->handle);
		crab_admin_reply_error(t->call, "shutting_down", "the gateway stopped first");
		model_test_free(t);
	}
}
