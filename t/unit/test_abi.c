/* test_abi.c: the module ABI's size rules from both sides. CRAB_HOST_HAS on a host
 * table smaller than the module's header; the registry copying a smaller descriptor
 * only as far as its size; refusals; the host table a registry hands out; and the
 * example .so (modules/example/example.so, so run from the top directory as t/run.sh
 * does) streamed, cancelled and finalised through the registry. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/module_self.h"
#include "core/modules.h"
#include "t/unit/unit.h"

#define EXAMPLE_SO "modules/example/example.so"

static int fake_kv_get(struct crab_self_v1 *self, const char *key,
    void (*done)(void *arg, int ok, int found, const char *value, size_t len), void *arg)
{
	(void)self, (void)key, (void)done, (void)arg;
	return 0;
}

static int fake_secret_get(struct crab_self_v1 *self, const char *name, char *out, size_t outlen)
{
	(void)self, (void)name, (void)out, (void)outlen;
	return -1;
}

static struct crab_timer_v1 *fake_timer_start(struct crab_self_v1 *self, int64_t after_ms,
    int repeat, void (*cb)(void *arg), void *arg)
{
	(void)self, (void)after_ms, (void)repeat, (void)cb, (void)arg;
	return NULL;
}

static void test_host_has(void)
{
	struct crab_host_v1 h;

	memset(&h, 0, sizeof(h));
	h.abi_major = CRAB_ABI_MAJOR;
	h.size = offsetof(struct crab_host_v1, kv_get); /* an older host: no kv_get, kv_put */
	h.timer_start = fake_timer_start;
	h.kv_get = fake_kv_get; /* set in memory, but beyond the size the host declares */
	CHECK(CRAB_HOST_HAS(&h, timer_start), "a host function within the size and set is there");
	CHECK(!CRAB_HOST_HAS(&h, kv_get), "one beyond the host's size is absent, set or not");
	CHECK(!CRAB_HOST_HAS(&h, kv_put), "and so is the one after it");
	CHECK(!CRAB_HOST_HAS(&h, http_start), "one within the size but NULL is absent");
	CHECK(CRAB_HOST_HAS(&h, secret_get) == 0, "a NULL slot just before the end is absent");
	h.secret_get = fake_secret_get;
	CHECK(CRAB_HOST_HAS(&h, secret_get), "the last slot the size covers counts");
	h.size = offsetof(struct crab_host_v1, kv_get) + sizeof(h.kv_get) - 1;
	CHECK(!CRAB_HOST_HAS(&h, kv_get), "a size covering part of a slot does not hold it");
	h.size = offsetof(struct crab_host_v1, kv_get) + sizeof(h.kv_get);
	CHECK(CRAB_HOST_HAS(&h, kv_get), "a size covering the whole slot holds it");
	CHECK(!CRAB_HOST_HAS((const struct crab_host_v1 *)NULL, log), "no host has nothing");
}

/* ---- a module written in the test ---- */

static struct {
	int inits, finis, fail_init;
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
} probe;

static int probe_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t len, void **ctx)
{
	(void)config, (void)len;
	probe.inits++;
	probe.host = host;
	probe.self = self;
	*ctx = &probe;
	return probe.fail_init ? -1 : 0;
}

static void probe_fini(void *ctx)
{
	(void)ctx;
	probe.finis++;
}

static int probe_start(void *ctx, const char *req, size_t len, const struct crab_model_sink_v1 *sink,
    void *sink_arg, void **handle)
{
	(void)ctx, (void)req, (void)len, (void)sink, (void)sink_arg, (void)handle;
	return -1;
}

static void probe_cancel(void *ctx, void *handle)
{
	(void)ctx, (void)handle;
}

static const struct crab_model_ops_v1 probe_model = {
	.size = sizeof(struct crab_model_ops_v1),
	.start = probe_start,
	.cancel = probe_cancel,
};

/* A model table from an imagined older header that ended after start. */
static const struct crab_model_ops_v1 short_model = {
	.size = offsetof(struct crab_model_ops_v1, cancel),
	.start = probe_start,
	.cancel = probe_cancel,
};

static const struct crab_tool_ops_v1 probe_tool = {.size = sizeof(struct crab_tool_ops_v1)};

static struct crab_module_v1 probe_desc(const char *name)
{
	struct crab_module_v1 d = {
		.abi_major = CRAB_ABI_MAJOR,
		.size = sizeof(struct crab_module_v1),
		.name = name,
		.version = "1.2.3",
		.kinds = CRAB_KIND_MODEL_ADAPTER,
		.init = probe_init,
		.fini = probe_fini,
		.model = &probe_model,
	};
	return d;
}

static void test_registry(void)
{
	struct event_base *base = event_base_new();
	struct crab_registry *r = crab_registry_new(base, NULL);
	struct crab_module_v1 d = probe_desc("old");
	json_t *config = json_pack("{s:s, s:i, s:{s:b}}", "rules", "/x/rules.txt", "n", 5,
	    "deep", "k", 1);
	char err[512], out[64];
	void *ctx = NULL;

	/* A descriptor from an older header that ended after model: the bytes beyond its
	 * size (tool, channel, subscriber) are set here, and must read as NULL. */
	d.size = offsetof(struct crab_module_v1, tool);
	d.tool = &probe_tool;
	d.subscriber = (const struct crab_subscriber_ops_v1 *)&probe_tool;
	CHECK_INT(crab_registry_add(r, &d, NULL, config, err, sizeof(err)), 0,
	    "a descriptor that ends after model registers");
	CHECK_INT(probe.inits, 1, "its init ran once");
	CHECK(probe.self != NULL && probe.self->desc.size == d.size, "the copy keeps its size");
	CHECK(probe.self != NULL && probe.self->desc.model == &probe_model, "fields within it are copied");
	CHECK(probe.self != NULL && probe.self->desc.tool == NULL && probe.self->desc.channel == NULL &&
	    probe.self->desc.subscriber == NULL, "fields beyond it read as NULL");

	/* The host table a registry without services hands out. */
	CHECK(probe.host != NULL && probe.host->abi_major == CRAB_ABI_MAJOR &&
	    probe.host->size == sizeof(struct crab_host_v1), "the host table carries its ABI and size");
	CHECK_STR(probe.host->role, "gateway", "the role defaults to gateway");
	CHECK(CRAB_HOST_HAS(probe.host, log) && CRAB_HOST_HAS(probe.host, now_ms) &&
	    CRAB_HOST_HAS(probe.host, timer_start) && CRAB_HOST_HAS(probe.host, timer_stop) &&
	    CRAB_HOST_HAS(probe.host, fd_watch) && CRAB_HOST_HAS(probe.host, config_get) &&
	    CRAB_HOST_HAS(probe.host, secret_get), "the loop, log and config functions are there");
	CHECK(!CRAB_HOST_HAS(probe.host, kv_get) && !CRAB_HOST_HAS(probe.host, kv_put),
	    "no store: kv_get and kv_put are absent");
	CHECK(!CRAB_HOST_HAS(probe.host, http_start) && !CRAB_HOST_HAS(probe.host, emit_event),
	    "no HTTP client, no ingress: http_start and emit_event are absent");

	/* config_get reads the module's own node. */
	CHECK(probe.host->config_get(probe.self, "rules", out, sizeof(out)) == 0 &&
	    strcmp(out, "/x/rules.txt") == 0, "config_get reads a string");
	CHECK(probe.host->config_get(probe.self, "n", out, sizeof(out)) == 0 && strcmp(out, "5") == 0,
	    "an integer as text");
	CHECK(probe.host->config_get(probe.self, "deep.k", out, sizeof(out)) == 0 &&
	    strcmp(out, "true") == 0, "a dotted key reaches into a mapping");
	CHECK_INT(probe.host->config_get(probe.self, "deep", out, sizeof(out)), -1, "a mapping is no scalar");
	CHECK_INT(probe.host->config_get(probe.self, "none", out, sizeof(out)), -1, "an absent key is -1");
	CHECK_INT(probe.host->config_get(probe.self, "rules", out, 5), -1, "a value too long is -1");

	CHECK(crab_registry_model(r, "old", &ctx) == NULL, "a module not started has no model");
	crab_registry_start(r);
	CHECK(crab_registry_model(r, "old", &ctx) == &probe_model && ctx == &probe,
	    "started, the registry finds its model table and context");

	/* A declared kind whose table lies beyond the descriptor's size is missing. */
	d = probe_desc("oldtool");
	d.size = offsetof(struct crab_module_v1, tool);
	d.kinds |= CRAB_KIND_TOOL_HOST;
	d.tool = &probe_tool;
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), -1,
	    "a kind whose table is beyond the size is refused");
	CHECK_STR(err, "module oldtool: declares kind tool_host but has no operation table",
	    "as having no table");

	d = probe_desc("shortops");
	d.model = &short_model;
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), -1,
	    "an operation table that ends before cancel is refused");
	CHECK_STR(err, "module shortops: declares kind model_adapter but its operation table "
	    "(size 16) ends before cancel", "naming the operation");

	d = probe_desc("tiny");
	d.size = 16;
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), -1, "a tiny descriptor is refused");
	CHECK_STR(err, "module tiny: descriptor size 16 is smaller than the smallest v1 descriptor (64)",
	    "with both sizes");
	d = probe_desc("major");
	d.abi_major = 2;
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), -1, "ABI major 2 is refused");
	d = probe_desc("Bad Name");
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), -1, "a bad name is refused");
	CHECK_STR(err, "module Bad Name: name must be 1 to 64 of [a-z0-9_-]", "saying what a name is");
	d = probe_desc("old");
	CHECK_INT(crab_registry_add(r, &d, "/x/old.so", NULL, err, sizeof(err)), -1, "a second 'old' is refused");
	CHECK_STR(err, "module /x/old.so: a module named 'old' is already loaded (built-in)",
	    "naming the file and the first one");
	CHECK_INT(probe.inits, 1, "no refused module's init ran");

	probe.fail_init = 1;
	d = probe_desc("failing");
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), -1, "an init that fails refuses");
	CHECK_STR(err, "module failing: init failed", "with that reason");
	CHECK_INT(probe.finis, 0, "its fini is not called");
	probe.fail_init = 0;
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), 0,
	    "it left no trace: the same name loads afterwards");

	crab_registry_free(r);
	CHECK_INT(probe.finis, 2, "freeing the registry finalises each module once");
	json_decref(config);
	event_base_free(base);
}

/* ---- host timers ---- */

struct ticks {
	const struct crab_host_v1 *host;
	struct crab_timer_v1 *t;
	int n, stop_at;
};

static void tick(void *arg)
{
	struct ticks *k = arg;
	if (++k->n == k->stop_at)
		k->host->timer_stop(k->t);
}

static void test_timers(void)
{
	struct event_base *base = event_base_new();
	struct crab_registry *r = crab_registry_new(base, NULL);
	struct crab_module_v1 d = probe_desc("timers");
	struct ticks k = {0};
	char err[512];

	memset(&probe, 0, sizeof(probe));
	CHECK_INT(crab_registry_add(r, &d, NULL, NULL, err, sizeof(err)), 0, "a module for timers");
	k.host = probe.host;
	k.stop_at = 3;
	k.t = k.host->timer_start(probe.self, 0, 1, tick, &k);
	event_base_dispatch(base);
	CHECK_INT(k.n, 3, "a repeating timer of 0 ms repeats until stopped from its callback");
	k.n = 0;
	k.stop_at = 1;
	k.t = k.host->timer_start(probe.self, 2, 0, tick, &k);
	event_base_dispatch(base);
	CHECK_INT(k.n, 1, "a one-shot timer fires once");
	CHECK(k.host->timer_start(probe.self, -1, 0, tick, &k) == NULL, "a negative delay is refused");
	crab_registry_free(r);
	event_base_free(base);
}

/* ---- the example .so through the registry ---- */

struct got {
	char text[1024];
	size_t len;
	int pieces, usages, dones, errors;
	int64_t in, out;
	char stop[32], code[64];
	const struct crab_model_ops_v1 *ops;
	void *ctx, *handle;
	int cancel_at; /* cancel from inside on_text at this piece (0: never) */
};

static void got_text(void *arg, const char *text, size_t len)
{
	struct got *g = arg;

	if (g->len + len < sizeof(g->text)) {
		memcpy(g->text + g->len, text, len);
		g->len += len;
		g->text[g->len] = '\0';
	}
	if (++g->pieces == g->cancel_at)
		g->ops->cancel(g->ctx, g->handle);
}

static void got_usage(void *arg, int64_t in, int64_t out)
{
	struct got *g = arg;
	g->usages++;
	g->in = in;
	g->out = out;
}

static void got_done(void *arg, const char *stop)
{
	struct got *g = arg;
	g->dones++;
	snprintf(g->stop, sizeof(g->stop), "%s", stop);
}

static void got_error(void *arg, const char *code, const char *message, int retryable)
{
	struct got *g = arg;
	(void)message, (void)retryable;
	g->errors++;
	snprintf(g->code, sizeof(g->code), "%s", code);
}

static const struct crab_model_sink_v1 got_sink = {
	.size = sizeof(struct crab_model_sink_v1),
	.on_text = got_text,
	.on_usage = got_usage,
	.on_done = got_done,
	.on_error = got_error,
};

static int ask(struct crab_registry *r, struct got *g, const char *request)
{
	int cancel_at = g->cancel_at;

	memset(g, 0, sizeof(*g));
	g->cancel_at = cancel_at;
	g->ops = crab_registry_model(r, "example", &g->ctx);
	if (g->ops == NULL)
		return -1;
	return g->ops->start(g->ctx, request, strlen(request), &got_sink, g, &g->handle);
}

static struct crab_registry *example_registry(struct event_base *base, const char *rules)
{
	struct crab_registry *r = crab_registry_new(base, NULL);
	json_t *config = json_pack("{s:s, s:i}", "rules", rules, "delay_ms", 0);
	char err[512];

	if (crab_registry_load(r, EXAMPLE_SO, config, err, sizeof(err)) != 0) {
		printf("# %s\n", err);
		crab_registry_free(r);
		r = NULL;
	} else {
		crab_registry_start(r);
	}
	json_decref(config);
	return r;
}

static void test_example(void)
{
	struct event_base *base = event_base_new();
	char rules[] = "/tmp/crab-test-abi.XXXXXX";
	const char *text =
	    "# test rules\n"
	    "hello => one two three four five six seven\n"
	    "caf\xc3\xa9 => coffee\n"
	    "\xf0\x9f\xa6\x80 => crab\n";
	struct crab_registry *r;
	struct got g = {0};
	int fd = mkstemp(rules);

	if (access(EXAMPLE_SO, R_OK) != 0) {
		CHECK(0, EXAMPLE_SO " is built (make; run from the top directory)");
		return;
	}
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text), "a rule file");
	close(fd);
	r = example_registry(base, rules);
	CHECK(r != NULL, "example.so loads through the registry with a rule file");
	if (r == NULL)
		goto out;

	CHECK_INT(ask(r, &g, "{\"model\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello?\"}],"
	    "\"max_tokens\":100,\"stream\":true,\"tools\":[{\"a\":[1,2.5e3,null,false,{}]}]}"), 0,
	    "start takes a request");
	CHECK(g.pieces == 0 && g.dones == 0, "and answers nothing before the loop runs");
	event_base_dispatch(base);
	CHECK_STR(g.text, "one two three four five six seven", "the rule's answer, whole");
	CHECK_INT(g.pieces, 3, "in three pieces of up to three words");
	CHECK(g.usages == 1 && g.in == 1 && g.out == 7, "usage in words, once");
	CHECK(g.dones == 1 && strcmp(g.stop, "end_turn") == 0 && g.errors == 0, "then end_turn, once");

	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"CAF\\u00e9 please\"}]}"), 0,
	    "a \\u escape");
	event_base_dispatch(base);
	CHECK_STR(g.text, "coffee", "is decoded before matching (ASCII case folded)");
	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"a \\ud83e\\udd80!\"}]}"), 0,
	    "a surrogate pair");
	event_base_dispatch(base);
	CHECK_STR(g.text, "crab", "is decoded to one character");

	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"nothing\"}]}"), 0,
	    "a request no rule matches");
	event_base_dispatch(base);
	CHECK(g.errors == 1 && strcmp(g.code, "invalid_request") == 0 && g.dones == 0 && g.pieces == 0,
	    "with no '*' rule is an error, from the loop");

	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]"), -1,
	    "a cut request is refused");
	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"hel\x01lo\"}]}"), -1,
	    "a control character in a string is refused");
	{
		char deep[200];
		memset(deep, '[', 100);
		strcpy(deep + 100, "]");
		char req[300];
		snprintf(req, sizeof(req), "{\"x\":%s}", deep);
		CHECK_INT(ask(r, &g, req), -1, "nesting beyond the limit is refused");
	}
	CHECK(g.pieces == 0 && g.dones == 0 && g.errors == 0, "refusals call no sink");

	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"), 0,
	    "a request to cancel");
	event_base_loop(base, EVLOOP_ONCE);
	CHECK_INT(g.pieces, 1, "one piece has come");
	g.ops->cancel(g.ctx, g.handle);
	event_base_dispatch(base);
	CHECK(g.pieces == 1 && g.dones == 0 && g.usages == 0 && g.errors == 0,
	    "after cancel nothing more comes");

	g.cancel_at = 2;
	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"), 0,
	    "a request cancelled from inside on_text");
	event_base_dispatch(base);
	CHECK(g.pieces == 2 && g.dones == 0 && g.usages == 0, "ends there");
	g.cancel_at = 0;

	CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"), 0,
	    "a request left in flight");
	crab_registry_free(r); /* fini ends it: ASan sees a leak otherwise */
	r = example_registry(base, "modules/example/rules.txt");
	CHECK(r != NULL, "the shipped rules.txt loads");
	if (r != NULL) {
		CHECK_INT(ask(r, &g, "{\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}]}"), 0, "ping");
		event_base_dispatch(base);
		CHECK_STR(g.text, "pong", "pong");
		crab_registry_free(r);
	}
out:
	unlink(rules);
	event_base_free(base);
}

int main(void)
{
	test_host_has();
	test_registry();
	test_timers();
	test_example();
	return unit_done();
}
