/* echo.c: the built-in model adapter "echo": it answers with the last user message,
 * "echo: <text>", streamed in two pieces, a moment later on the loop as a real provider
 * would. Useful for trying the gateway without a model account, and the first module
 * written only against abi/, through the same descriptor a .so exports. */
#include <stdlib.h>
#include <string.h>

#include "abi/crab_module_v1.h"

struct echo {
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
};

struct echo_call {
	struct echo *echo;
	struct crab_model_sink_v1 sink;
	void *sink_arg;
	struct crab_timer_v1 *timer;
	char *text;
	size_t len;
};

/* The last "content" string of a "user" message: enough JSON reading for an echo. The
 * host's requests are compact JSON that the core wrote. */
static char *last_user_text(const char *req, size_t len, size_t *out_len)
{
	const char *end = req + len, *found = NULL, *p;
	char *out;
	size_t n = 0;

	for (p = req; (p = memmem(p, (size_t)(end - p), "\"role\":\"user\"", 13)) != NULL; p += 13) {
		const char *c = memmem(p, (size_t)(end - p), "\"content\":\"", 11);
		if (c != NULL)
			found = c + 11;
	}
	if (found == NULL)
		found = "";
	out = malloc((size_t)(end - found) + 1);
	if (out == NULL)
		return NULL;
	for (p = found; p < end && *p != '"'; p++) {
		if (*p == '\\' && p + 1 < end)
			p++; /* keep escapes' second character: good enough for an echo */
		out[n++] = *p;
	}
	out[n] = '\0';
	*out_len = n;
	return out;
}

static void call_free(struct echo_call *c)
{
	free(c->text);
	free(c);
}

static void answer(void *arg)
{
	struct echo_call *c = arg;
	size_t half = c->len / 2;

	c->echo->host->timer_stop(c->timer);
	c->sink.on_text(c->sink_arg, "echo: ", 6);
	c->sink.on_text(c->sink_arg, c->text, half);
	c->sink.on_text(c->sink_arg, c->text + half, c->len - half);
	if (c->sink.on_usage != NULL)
		c->sink.on_usage(c->sink_arg, (int64_t)c->len, (int64_t)c->len + 6);
	c->sink.on_done(c->sink_arg, "end_turn");
	call_free(c);
}

static int echo_start(void *ctx, const char *request, size_t len,
    const struct crab_model_sink_v1 *sink, void *sink_arg, void **handle)
{
	struct echo *e = ctx;
	struct echo_call *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->text = last_user_text(request, len, &c->len)) == NULL) {
		free(c);
		return -1;
	}
	c->echo = e;
	c->sink = *sink;
	c->sink_arg = sink_arg;
	c->timer = e->host->timer_start(e->self, 0, 0, answer, c);
	if (c->timer == NULL) {
		call_free(c);
		return -1;
	}
	*handle = c;
	return 0;
}

static void echo_cancel(void *ctx, void *handle)
{
	struct echo_call *c = handle;
	(void)ctx;
	c->echo->host->timer_stop(c->timer);
	call_free(c);
}

static int echo_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t len, void **ctx)
{
	struct echo *e;
	(void)config;
	(void)len;

	if (!CRAB_HOST_HAS(host, timer_start) || (e = calloc(1, sizeof(*e))) == NULL)
		return -1;
	e->host = host;
	e->self = self;
	*ctx = e;
	return 0;
}

static void echo_fini(void *ctx)
{
	free(ctx);
}

static const struct crab_model_ops_v1 echo_model = {
	.size = sizeof(struct crab_model_ops_v1),
	.start = echo_start,
	.cancel = echo_cancel,
};

CRAB_MODULE(echo) = {
	.abi_major = CRAB_ABI_MAJOR,
	.size = sizeof(struct crab_module_v1),
	.name = "echo",
	.version = "1.0.0",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
	.init = echo_init,
	.fini = echo_fini,
	.model = &echo_model,
};
