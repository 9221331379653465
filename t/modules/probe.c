/* probe.c: a test module that calls every host function once at start and logs what it
 * got, so t2002 can check the host table end to end from a real .so. Never logs the
 * secret itself, only its length. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "abi/crab_module_v1.h"

struct probe {
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
	struct crab_timer_v1 *timer;
	struct crab_watch_v1 *watch;
	int pipefd[2];
	char health_url[512];
};

static struct probe probe_state;

#define SAY(...) p->host->log(p->self, CRAB_LOG_V1_INFO, __VA_ARGS__)

static void kv_got(void *arg, int ok, int found, const char *value, size_t len)
{
	struct probe *p = arg;
	SAY("probe kv ok=%d found=%d value=%.*s", ok, found, (int)len, value ? value : "");
}

static void kv_stored(void *arg, int ok)
{
	struct probe *p = arg;
	SAY("probe kv_put ok=%d", ok);
	p->host->kv_get(p->self, "greeting", kv_got, p);
}

static void emitted(void *arg, int status, const char *answer, size_t len)
{
	struct probe *p = arg;
	SAY("probe emit status=%d answer=%.*s", status, (int)len, answer);
}

static void http_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct probe *p = arg;
	SAY("probe http status=%d body=%.*s error=%s", status, (int)len, body ? body : "",
	    error ? error : "none");
}

static void timer_fired(void *arg)
{
	struct probe *p = arg;
	p->host->timer_stop(p->timer);
	p->timer = NULL;
	SAY("probe timer fired");
}

static void readable(int fd, unsigned events, void *arg)
{
	struct probe *p = arg;
	char c;
	if (read(fd, &c, 1) == 1)
		SAY("probe fd readable=%d byte=%c", (events & CRAB_FD_READ) != 0, c);
	p->host->fd_unwatch(p->watch);
	p->watch = NULL;
}

static int probe_start(void *ctx)
{
	struct probe *p = ctx;
	static const char envelope[] =
	    "{\"type\":\"channel.message.received\",\"tenant_id\":\"probe-tenant\","
	    "\"agent_id\":\"probe-agent\",\"text\":\"from a module\",\"idempotency_key\":\"probe-1\","
	    "\"source\":{\"platform\":\"probe\",\"channel_id\":\"c1\",\"actor_id\":\"a1\"}}";
	static const struct crab_http_handler_v1 handler = {
		.size = sizeof(struct crab_http_handler_v1), .on_done = http_done,
	};
	struct crab_http_req_v1 req = {.size = sizeof(req), .method = "GET", .timeout_ms = 5000};
	char value[256];

	SAY("probe host %s role %s size %u", p->host->host_version, p->host->role, p->host->size);
	if (p->host->config_get(p->self, "greeting", value, sizeof(value)) == 0)
		SAY("probe config greeting=%s", value);
	SAY("probe config missing=%d", p->host->config_get(p->self, "nope.deeper", value, sizeof(value)));
	if (p->host->secret_get(p->self, "token", value, sizeof(value)) == 0)
		SAY("probe secret length=%zu", strlen(value));
	p->host->kv_put(p->self, "greeting", "stored-value", 12, kv_stored, p);
	p->host->emit_event(p->self, envelope, sizeof(envelope) - 1, emitted, p);
	if (p->host->config_get(p->self, "health_url", p->health_url, sizeof(p->health_url)) == 0) {
		req.url = p->health_url;
		if (p->host->http_start(p->self, &req, &handler, p) == NULL)
			SAY("probe http could not start");
	}
	p->timer = p->host->timer_start(p->self, 10, 0, timer_fired, p);
	if (pipe(p->pipefd) == 0) {
		p->watch = p->host->fd_watch(p->self, p->pipefd[0], CRAB_FD_READ, readable, p);
		(void)!write(p->pipefd[1], "x", 1);
	}
	return 0;
}

static int probe_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t len, void **ctx)
{
	struct probe *p = &probe_state;
	(void)config;
	(void)len;

	if (!CRAB_HOST_HAS(host, kv_put) || !CRAB_HOST_HAS(host, emit_event) ||
	    !CRAB_HOST_HAS(host, http_start) || !CRAB_HOST_HAS(host, fd_watch))
		return -1;
	p->host = host;
	p->self = self;
	p->pipefd[0] = p->pipefd[1] = -1;
	*ctx = p;
	return 0;
}

static void probe_stop(void *ctx)
{
	struct probe *p = ctx;
	if (p->timer != NULL)
		p->host->timer_stop(p->timer);
	if (p->watch != NULL)
		p->host->fd_unwatch(p->watch);
	p->timer = NULL;
	p->watch = NULL;
}

static void probe_fini(void *ctx)
{
	struct probe *p = ctx;
	if (p->pipefd[0] >= 0) {
		close(p->pipefd[0]);
		close(p->pipefd[1]);
	}
}

static int no_start(void *ctx, const char *r, size_t l, const struct crab_model_sink_v1 *s,
    void *a, void **h)
{
	(void)ctx, (void)r, (void)l, (void)s, (void)a, (void)h;
	return -1;
}

static void no_cancel(void *ctx, void *h)
{
	(void)ctx, (void)h;
}

static const struct crab_model_ops_v1 probe_model = {sizeof(probe_model), no_start, no_cancel};

CRAB_MODULE(probe) = {
	.abi_major = CRAB_ABI_MAJOR,
	.size = sizeof(struct crab_module_v1),
	.name = "probe",
	.version = "0.0.1",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
	.init = probe_init,
	.start = probe_start,
	.stop = probe_stop,
	.fini = probe_fini,
	.model = &probe_model,
};
