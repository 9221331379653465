/* config_reload.c: the gateway's side of a configuration change (config_apply.h): the
 * revision recorded at start, the swap to a new config, and SIGHUP. */
#include "config_apply.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config_view.h"
#include "dispatch.h"
#include "gateway.h"
#include "log.h"
#include "router.h"
#include "turns.h"
#include "util.h"

#define SUMMARY_MAX 1000

/* ---- at start ---- */

/* A crash while the config file was written leaves the temporary file beside it
 * (crab_file_write_atomic's ".<name>.XXXXXX"), never a half-written config: removed. */
static void remove_stale_temporaries(const struct crab_config *cfg)
{
	const char *slash = strrchr(cfg->path, '/');
	char pattern[4200];
	glob_t g;

	if (slash != NULL)
		snprintf(pattern, sizeof(pattern), "%.*s/.%s.??????", (int)(slash - cfg->path),
		    cfg->path, slash + 1);
	else
		snprintf(pattern, sizeof(pattern), ".%s.??????", cfg->path);
	if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		if (unlink(g.gl_pathv[i]) == 0)
			log_info("config: removed '%s', left by a write a crash cut", g.gl_pathv[i]);
	}
	globfree(&g);
}

int crab_config_record_start(struct crab_store *st, struct crab_config *cfg, char *err,
    size_t errlen)
{
	const char *yaml = cfg->source_text ? cfg->source_text : "";
	char *last = NULL, *summary, why[128];
	int64_t latest = 0;
	json_t *before = NULL, *after, *paths;

	remove_stale_temporaries(cfg);
	if (crab_store_config_latest(st, &latest, &last) != 0)
		goto fail;
	if (last != NULL && strcmp(last, yaml) == 0) {
		cfg->revision = latest;
		free(last);
		return 0;
	}
	/* What changed since the last revision, when there is one to compare with. */
	if (last != NULL)
		before = crab_config_view(last, strlen(last), why, sizeof(why));
	after = crab_config_view(yaml, strlen(yaml), why, sizeof(why));
	if (last == NULL) {
		summary = xstrdup("the first revision: the file as the gateway started with it");
	} else if (before != NULL && after != NULL) {
		paths = crab_config_diff_text(before, after);
		summary = crab_config_diff_summary("the file changed before this start: ", paths,
		    SUMMARY_MAX);
		json_decref(paths);
	} else {
		summary = xstrdup("the file changed before this start");
	}
	json_decref(before);
	json_decref(after);
	free(last);
	if (crab_store_config_insert(st, "file", yaml, summary, crab_clock_now_ms(),
		&cfg->revision) != 0) {
		free(summary);
		goto fail;
	}
	log_info("config: revision %lld recorded from the file: %s", (long long)cfg->revision,
	    summary);
	free(summary);
	return 0;
fail:
	snprintf(err, errlen, "cannot record the config revision: %s", crab_store_error(st));
	return -1;
}

/* ---- the swap ---- */

/* The old router and config, freed once every store job queued before the swap has
 * run: ingest jobs route with the router they were given, and turns' begin jobs read
 * the config their turn holds. */
struct retire_job {
	struct crab_store_job job;
	struct crab_router *router;
	struct crab_config *cfg;
};

static int retire_run(struct crab_store *st, struct crab_store_job *job)
{
	(void)st;
	(void)job;
	return 0;
}

static void retire_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct retire_job *j = (struct retire_job *)job;

	(void)status; /* the job writes nothing: it only waits its turn */
	crab_router_free(j->router);
	crab_config_unref(j->cfg);
	free(j);
}

void crab_gateway_config_swap(struct crab_gateway *gw, struct crab_config *cfg)
{
	struct crab_config *old = gw->cfg;
	struct retire_job *j = xcalloc(1, sizeof(*j));
	const struct crab_http_limits limits = {
		.max_header_bytes = (size_t)cfg->limits.max_header_bytes,
		.max_body_bytes = (size_t)cfg->limits.max_body_bytes,
		.idle_timeout_s = (int)cfg->limits.idle_timeout_s,
		.max_connections = (int)cfg->limits.max_connections,
	};
	enum crab_log_level level;

	j->job.run = retire_run;
	j->job.done = retire_done;
	j->router = gw->router;
	j->cfg = old;
	gw->cfg = cfg;
	gw->config_revision = cfg->revision;
	gw->router = crab_router_new(cfg);
	if (log_level_parse(cfg->log_level, &level) == 0)
		log_init("gateway", level);
	if (gw->http != NULL)
		crab_http_server_set_limits(gw->http, &limits);
	if (gw->retention_timer != NULL &&
	    old->retention.interval_s != cfg->retention.interval_s) {
		struct timeval every = {cfg->retention.interval_s, 0};
		event_add(gw->retention_timer, &every);
	}
	if (gw->turns != NULL)
		crab_turns_reconfigure(gw->turns);
	if (gw->dispatch != NULL)
		crab_dispatch_peers_changed(gw->dispatch); /* subscribers' filters */
	crab_storeq_submit(gw->storeq, &j->job);
}

/* ---- SIGHUP ---- */

static void sighup_done(void *arg, const struct crab_config_outcome *o)
{
	struct crab_gateway *gw = arg;

	if (!o->ok)
		log_warnx("SIGHUP: the file was not applied, the running config (revision %lld) "
		    "stays: %s: %s", (long long)gw->cfg->revision, o->code, o->message);
	else if (o->unchanged)
		log_info("SIGHUP: the file is the running config (revision %lld)",
		    (long long)o->revision);
}

void crab_config_sighup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct crab_gateway *gw = arg;
	const struct crab_config_req req = {.op = CRAB_CONFIG_RELOAD, .actor = "sighup"};

	(void)sig;
	(void)what;
	if (gw->draining)
		return;
	log_info("SIGHUP: reloading %s", gw->cfg->path);
	crab_config_submit(gw->config_mgr, &req, sighup_done, gw);
}
