/* oldabi.c: a model adapter like echo, for t2001's compatibility checks, built with
 * `-I t/modules/abi-old` (an older, smaller v1 header: no emit_event and later in the
 * host table, no tool/channel/subscriber in the descriptor) or `-I t/modules/abi-v1.0`
 * (the frozen v1.0 header). It answers "<name>: <last user text>" from a timer, and its
 * init logs the host table's size next to the size its own header knows. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <stdlib.h>
#include <string.h>

#include "crab_module_v1.h"

#ifndef NAME
#define NAME "oldabi"
#endif

struct old {
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
};

struct old_call {
	struct old *old;
	struct crab_model_sink_v1 sink;
	void *sink_arg;
	struct crab_timer_v1 *timer;
	char text[256];
	size_t len;
};

static void answer(void *arg)
{
	struct old_call *c = arg;

	c->old->host->timer_stop(c->timer);
	c->sink.on_text(c->sink_arg, NAME ": ", strlen(NAME) + 2);
	c->sink.on_text(c->sink_arg, c->text, c->len);
	c->sink.on_done(c->sink_arg, "end_turn");
	free(c);
}

static int old_start(void *ctx, const char *req, size_t len, const struct crab_model_sink_v1 *sink,
    void *sink_arg, void **handle)
{
	struct old *o = ctx;
	struct old_call *c = calloc(1, sizeof(*c));
	const char *end = req + len, *p, *found = NULL;

	if (c == NULL)
		return -1;
	/* The last "content" string after a user role: the core sends compact JSON. */
	for (p = req; (p = memmem(p, (size_t)(end - p), "\"role\":\"user\"", 13)) != NULL; p += 13) {
		const char *t = memmem(p, (size_t)(end - p), "\"content\":\"", 11);
		if (t != NULL)
			found = t + 11;
	}
	for (p = found; p != NULL && p < end && *p != '"' && c->len < sizeof(c->text); p++)
		c->text[c->len++] = *p;
	c->old = o;
	c->sink = *sink;
	c->sink_arg = sink_arg;
	if ((c->timer = o->host->timer_start(o->self, 0, 0, answer, c)) == NULL) {
		free(c);
		return -1;
	}
	*handle = c;
	return 0;
}

static void old_cancel(void *ctx, void *handle)
{
	struct old_call *c = handle;
	struct old *o = ctx;

	o->host->timer_stop(c->timer);
	free(c);
}

static int old_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t config_len, void **ctx)
{
	struct old *o;

	(void)config;
	(void)config_len;
	/* Only what this header knows can be asked for; a newer host has it all. */
	if (!CRAB_HOST_HAS(host, timer_start) || !CRAB_HOST_HAS(host, timer_stop) ||
	    (o = calloc(1, sizeof(*o))) == NULL)
		return -1;
	o->host = host;
	o->self = self;
	if (CRAB_HOST_HAS(host, log))
		host->log(self, CRAB_LOG_V1_INFO, "host table %u bytes, this module's header knows %zu",
		    host->size, sizeof(struct crab_host_v1));
	*ctx = o;
	return 0;
}

static void old_fini(void *ctx)
{
	free(ctx);
}

static const struct crab_model_ops_v1 old_model = {
	.size = sizeof(struct crab_model_ops_v1),
	.start = old_start,
	.cancel = old_cancel,
};

CRAB_MODULE(oldabi) = {
	.abi_major = CRAB_ABI_MAJOR,
	.size = sizeof(struct crab_module_v1),
	.name = NAME,
	.version = "0.9.0",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
	.init = old_init,
	.fini = old_fini,
	.model = &old_model,
};
