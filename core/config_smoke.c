/* config_smoke.c: the smoke test a new config names for itself (crab.yaml(5),
 * config.smoke_test), run before the config is written and swapped in: the route given
 * must reach an agent under the new config (its own router, built for the test), and
 * one tiny request to the model named must succeed, through the running model instance
 * (a model's adapter settings cannot change without a restart, so it is the one the
 * new config would use). */
#include "config_apply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "modules.h"
#include "router.h"
#include "util.h"

#define PING_TIMEOUT_MAX_S 60

struct crab_config_smoke {
	struct crab_gateway *gw;
	void (*done)(void *arg, const char *why);
	void *arg;
	const struct crab_model_ops_v1 *ops;
	void *ctx, *handle;
	int calling;           /* the adapter has not said its last word */
	struct event *finish;  /* the answer, always from the loop */
	struct event *timeout;
	char model[128];
	int64_t timeout_s;
	char why[512];         /* "" when it passed */
};

static void smoke_free(struct crab_config_smoke *s)
{
	if (s->finish != NULL)
		event_free(s->finish);
	if (s->timeout != NULL)
		event_free(s->timeout);
	free(s);
}

void crab_config_smoke_cancel(struct crab_config_smoke *s)
{
	if (s == NULL)
		return;
	if (s->calling && s->ops != NULL && s->handle != NULL)
		s->ops->cancel(s->ctx, s->handle);
	smoke_free(s);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_config_smoke *s = arg;
	void (*done)(void *, const char *) = s->done;
	void *done_arg = s->arg;
	char why[sizeof(s->why)];

	(void)fd;
	(void)what;
	if (s->calling && s->ops != NULL && s->handle != NULL)
		s->ops->cancel(s->ctx, s->handle);
	crab_strlcpy(why, s->why, sizeof(why));
	smoke_free(s);
	done(done_arg, why[0] ? why : NULL);
}

/* The adapter's last word, or the clock's: the answer goes from the loop. */
static void end(struct crab_config_smoke *s)
{
	event_active(s->finish, EV_TIMEOUT, 0);
}

static void on_text(void *arg, const char *text, size_t len)
{
	(void)arg;
	(void)text;
	(void)len;
}

static void on_tool_call(void *arg, const char *call, size_t len)
{
	(void)arg;
	(void)call;
	(void)len;
}

static void on_usage(void *arg, int64_t in, int64_t out)
{
	(void)arg;
	(void)in;
	(void)out;
}

static void on_done(void *arg, const char *stop_reason)
{
	struct crab_config_smoke *s = arg;

	(void)stop_reason;
	if (!s->calling)
		return;
	s->calling = 0;
	end(s);
}

static void on_error(void *arg, const char *code, const char *message, int retryable)
{
	struct crab_config_smoke *s = arg;

	(void)retryable;
	if (!s->calling)
		return;
	s->calling = 0;
	snprintf(s->why, sizeof(s->why), "model_ping '%s' failed: %s: %.200s",
	    s->model, code ? code : "model_error", message ? message : "no message");
	end(s);
}

static const struct crab_model_sink_v1 sink = {
	.size = sizeof(struct crab_model_sink_v1),
	.on_text = on_text,
	.on_tool_call = on_tool_call,
	.on_usage = on_usage,
	.on_done = on_done,
	.on_error = on_error,
};

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_config_smoke *s = arg;

	(void)fd;
	(void)what;
	if (!s->calling)
		return;
	snprintf(s->why, sizeof(s->why), "model_ping '%s' had no answer within "
	    "%lld s", s->model, (long long)s->timeout_s);
	finish_cb(-1, 0, s); /* cancels the call */
}

/* route: under the new config an event from there reaches an agent. */
static int route_test(const struct crab_config *cfg, char *why, size_t len)
{
	struct crab_router *r = crab_router_new(cfg);
	const struct crab_event_fields in = {
		.platform = cfg->smoke_test.route_platform,
		.channel_id = cfg->smoke_test.route_channel_id ? cfg->smoke_test.route_channel_id : "",
		.actor_id = cfg->smoke_test.route_actor_id ? cfg->smoke_test.route_actor_id : "",
	};
	struct crab_route out;
	struct crab_error err;
	int rc = 0;

	if (crab_router_resolve(r, &in, &out, &err) != 0) {
		snprintf(why, len, "route {platform: %.64s, channel_id: %.64s, "
		    "actor_id: %.64s} reaches no agent: %s: %s", in.platform, in.channel_id,
		    in.actor_id, err.code, err.message);
		rc = -1;
	} else {
		if (crab_config_agent_find(cfg, out.agent_id) == NULL) {
			snprintf(why, len, "route {platform: %.64s} goes to agent "
			    "'%.64s', which is not in the new configuration", in.platform,
			    out.agent_id);
			rc = -1;
		}
		crab_route_release(&out);
	}
	crab_router_free(r);
	return rc;
}

static void ping(struct crab_config_smoke *s, const struct crab_config *cfg)
{
	const struct crab_config_model *m = crab_config_model_find(cfg, cfg->smoke_test.model_ping);
	struct timeval limit;
	json_t *req;
	char *text;
	int rc;

	crab_strlcpy(s->model, cfg->smoke_test.model_ping, sizeof(s->model));
	s->ops = m ? crab_registry_model_instance(s->gw->modules, m->id, &s->ctx) : NULL;
	if (s->ops == NULL) {
		snprintf(s->why, sizeof(s->why), "model_ping '%s' is not running",
		    s->model);
		end(s);
		return;
	}
	s->timeout_s = cfg->turns.model_timeout_s < PING_TIMEOUT_MAX_S ?
	    cfg->turns.model_timeout_s : PING_TIMEOUT_MAX_S;
	limit = (struct timeval){s->timeout_s, 0};
	s->timeout = evtimer_new(s->gw->base, timeout_cb, s);
	evtimer_add(s->timeout, &limit);
	req = json_pack("{s:[{s:s, s:s}], s:s, s:s, s:i, s:b}", "messages", "role", "user",
	    "content", "ping", "model", m->model ? m->model : m->id, "system", "",
	    "max_tokens", 16, "stream", 1);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	s->calling = 1;
	rc = s->ops->start(s->ctx, text, strlen(text), &sink, s, &s->handle);
	free(text);
	if (rc != 0 && s->calling) {
		s->calling = 0;
		snprintf(s->why, sizeof(s->why), "model_ping '%s': the adapter "
		    "refused the request", s->model);
		end(s);
	}
}

struct crab_config_smoke *crab_config_smoke_start(struct crab_gateway *gw,
    const struct crab_config *cfg, void (*done)(void *arg, const char *why), void *arg)
{
	struct crab_config_smoke *s;

	if (cfg->smoke_test.model_ping == NULL && !cfg->smoke_test.route)
		return NULL;
	s = xcalloc(1, sizeof(*s));
	s->gw = gw;
	s->done = done;
	s->arg = arg;
	s->finish = event_new(gw->base, -1, 0, finish_cb, s);
	if (cfg->smoke_test.route && route_test(cfg, s->why, sizeof(s->why)) != 0)
		end(s);
	else if (cfg->smoke_test.model_ping != NULL)
		ping(s, cfg);
	else
		end(s);
	return s;
}
