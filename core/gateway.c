/* gateway.c: `crab gateway -c FILE`: load and validate the config, open the store, load
 * the live leases, start the store worker, the public listener and the admin socket, run
 * the loop; on SIGTERM or SIGINT stop accepting, let in-flight requests finish, then
 * close the store cleanly. */
#include "gateway.h"

#include <errno.h>
#include <event2/thread.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "admin_ops.h"
#include "auth.h"
#include "clock.h"
#include "config_apply.h"
#include "dispatch.h"
#include "outbox.h"
#include "tools.h"
#include "http_client.h"
#include "identity.h"
#include "live.h"
#include "modules.h"
#include "log.h"
#include "peers.h"
#include "router.h"
#include "turns.h"
#include "util.h"
#include "version.h"

#define DRAIN_LIMIT_MS 10000
#define DSN_FILE_MAX 4096

/* ---- retention ---- */

/* Keys pruned per store job: each job shares a transaction with ingest, so a large
 * backlog is pruned in many short jobs rather than one long stall. */
#define PRUNE_CHUNK 5000

struct retention_job {
	struct crab_store_job job;
	struct crab_gateway *gw;
	int64_t cutoff, pruned, total;
	void (*done)(void *arg, int64_t pruned);
	void *arg;
};

static int retention_job_run(struct crab_store *st, struct crab_store_job *job)
{
	struct retention_job *j = (struct retention_job *)job;
	return crab_store_idem_prune(st, j->cutoff, PRUNE_CHUNK, &j->pruned);
}

static void retention_job_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct retention_job *j = (struct retention_job *)job;

	if (status == CRAB_JOB_OK) {
		j->total += j->pruned;
		if (j->pruned == PRUNE_CHUNK) { /* more to go: queue behind the ingest waiting */
			crab_storeq_submit(j->gw->storeq, &j->job);
			return;
		}
	}
	if (j->total > 0)
		log_info("retention: pruned %lld idempotency keys", (long long)j->total);
	if (j->done != NULL)
		j->done(j->arg, status == CRAB_JOB_OK ? j->total : -1);
	free(j);
}

/* The outbox rows of a durable commit group: the dispatcher takes them. */
static void published(void *ctx, void *batch)
{
	struct crab_gateway *gw = ctx;

	crab_dispatch_published(gw->dispatch, batch);
}

static void published_discard(void *ctx, void *batch)
{
	(void)ctx;
	crab_outbox_batch_free(batch);
}

void crab_gateway_peers_changed(struct crab_gateway *gw)
{
	crab_dispatch_peers_changed(gw->dispatch);
	crab_tools_peers_changed(gw->tools);
}

void crab_gateway_retention_run(struct crab_gateway *gw,
    void (*done)(void *arg, int64_t pruned), void *arg)
{
	struct retention_job *j = xcalloc(1, sizeof(*j));
	int64_t now = crab_clock_now_ms();

	crab_lease_table_expire(gw->leases, now);
	j->job.run = retention_job_run;
	j->job.done = retention_job_done;
	j->gw = gw;
	j->cutoff = now - gw->cfg->retention.idempotency_days * 86400 * 1000;
	j->done = done;
	j->arg = arg;
	crab_storeq_submit(gw->storeq, &j->job);
}

static void retention_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	crab_gateway_retention_run(arg, NULL, NULL);
}

/* ---- shutdown ---- */

static void drain_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_gateway *gw = arg;
	(void)fd;
	(void)what;

	/* Connections too: a reply written during the drain is only queued until the loop
	 * flushes it, and leaving the loop earlier drops it. */
	if (crab_http_server_inflight(gw->http) == 0 && crab_storeq_pending(gw->storeq) == 0 &&
	    crab_http_server_connections(gw->http) == 0 && crab_turns_running(gw->turns) == 0) {
		event_base_loopexit(gw->base, NULL);
		return;
	}
	if (crab_clock_now_ms() > gw->drain_deadline_ms && crab_storeq_pending(gw->storeq) == 0) {
		/* Turns cut here stay pending in the store and run after the next start. */
		log_warnx("drain: %zu requests and %u turns still open after %d ms, closing them",
		    crab_http_server_inflight(gw->http), crab_turns_running(gw->turns),
		    DRAIN_LIMIT_MS);
		event_base_loopexit(gw->base, NULL);
	}
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct crab_gateway *gw = arg;
	struct timeval tick = {0, 10000};
	(void)what;

	if (gw->draining)
		return;
	log_info("%s: draining", strsignal((int)sig));
	gw->draining = 1;
	gw->drain_deadline_ms = crab_clock_now_ms() + DRAIN_LIMIT_MS;
	crab_http_server_drain(gw->http);
	crab_live_drain(gw->live);
	crab_admin_drain(gw->admin);
	crab_turns_drain(gw->turns);
	crab_dispatch_drain(gw->dispatch);
	event_del(gw->retention_timer);
	gw->drain_timer = event_new(gw->base, -1, EV_PERSIST, drain_check_cb, gw);
	event_add(gw->drain_timer, &tick);
}

/* ---- startup ---- */

static void raise_fd_limit(void)
{
	struct rlimit rl;

	/* Every keep-alive connection holds a descriptor; the default 1024 is too few. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int make_private_dir(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	size_t len = crab_strlcpy(path, dir, sizeof(path));

	if (len >= sizeof(path)) {
		snprintf(err, errlen, "data directory path is too long");
		return -1;
	}
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create data directory '%s': %s", path, strerror(errno));
		return -1;
	}
	/* Keys, the database and the admin socket live here: owner only. */
	if (chmod(path, 0700) != 0) {
		snprintf(err, errlen, "cannot restrict data directory '%s': %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/* The PostgreSQL DSN from the environment or a file, never from the YAML itself. */
static char *read_dsn(const struct crab_config *cfg, char *err, size_t errlen)
{
	char why[512];
	char *path, *dsn;
	size_t n;

	if (cfg->store.dsn_env != NULL) {
		const char *v = getenv(cfg->store.dsn_env);
		if (v == NULL || *v == '\0') {
			snprintf(err, errlen, "environment variable '%s' (store.dsn_env) is not set",
			    cfg->store.dsn_env);
			return NULL;
		}
		return xstrdup(v);
	}
	path = crab_config_resolve(cfg, cfg->store.dsn_file);
	dsn = crab_file_read(path, DSN_FILE_MAX, &n, why, sizeof(why));
	if (dsn == NULL)
		snprintf(err, errlen, "cannot read store.dsn_file (%s)", why);
	free(path);
	while (dsn != NULL && n > 0 && (dsn[n - 1] == '\n' || dsn[n - 1] == '\r' ||
					   dsn[n - 1] == ' '))
		dsn[--n] = '\0';
	return dsn;
}

static struct crab_store *open_store(const struct crab_config *cfg, char *err, size_t errlen)
{
	struct crab_store_options opts = {.driver = cfg->store.driver};
	struct crab_store *st;
	char *data_dir = crab_config_resolve(cfg, cfg->data_dir);
	char *sqlite_path = NULL, *dsn = NULL;

	if (strcmp(cfg->store.driver, "sqlite") == 0) {
		if (cfg->store.path[0] == '/') {
			sqlite_path = xstrdup(cfg->store.path);
		} else {
			size_t n = strlen(data_dir) + strlen(cfg->store.path) + 2;
			sqlite_path = xmalloc(n);
			snprintf(sqlite_path, n, "%s/%s", data_dir, cfg->store.path);
		}
		opts.sqlite_path = sqlite_path;
	} else if ((dsn = read_dsn(cfg, err, errlen)) == NULL) {
		free(data_dir);
		return NULL;
	}
	opts.pg_dsn = dsn;
	st = crab_store_open(&opts, err, errlen);
	if (dsn != NULL) {
		explicit_bzero(dsn, strlen(dsn));
		free(dsn);
	}
	free(sqlite_path);
	free(data_dir);
	return st;
}

static int load_lease(const struct crab_store_lease *row, void *arg)
{
	struct crab_lease *l = crab_lease_from_row(row);
	if (l != NULL)
		crab_lease_table_add(arg, l);
	return 0;
}

static int load_peer(const struct crab_store_peer *row, void *arg)
{
	struct crab_peer *p = crab_peer_from_row(row);
	if (p != NULL)
		crab_peer_table_add(arg, p);
	return 0;
}

/* The gateway's identity, made on first start in the data directory. */
static int load_identity(struct crab_gateway *gw, char *err, size_t errlen)
{
	char *dir = crab_config_resolve(gw->cfg, gw->cfg->data_dir);
	char host[256] = "crab";
	int created = 0;

	if (gw->cfg->name != NULL)
		crab_strlcpy(host, gw->cfg->name, sizeof(host));
	else
		gethostname(host, sizeof(host) - 1);
	gw->name = xstrdup(host);
	gw->identity = crab_identity_load(dir, gw->name, 1, &created, err, errlen);
	free(dir);
	if (gw->identity == NULL)
		return -1;
	log_info("identity %s%s", gw->identity->short_fp, created ? " (created now)" : "");
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: crab gateway [-c FILE]\n"
		   "  -c, --config FILE   configuration (default: crab.yaml)\n");
}

static int parse_args(int argc, char **argv, const char **config)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int ch;

	*config = "crab.yaml";
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*config = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- modules ---- */

struct module_emit {
	void (*done)(void *arg, int status, const char *answer, size_t len);
	void *arg;
};

static void module_emit_answer(void *arg, int status, const char *body, size_t len)
{
	struct module_emit *e = arg;
	if (e->done != NULL)
		e->done(e->arg, status, body, len);
	free(e);
}

/* host->emit_event: modules are the operator's own code, trusted like a peer with
 * produce_internal, so their envelopes name their tenant and agent. */
static int module_emit(void *role, const char *module, const char *envelope, size_t len,
    void (*done)(void *arg, int status, const char *answer, size_t len), void *arg)
{
	struct crab_gateway *gw = role;
	struct module_emit *e = xcalloc(1, sizeof(*e));
	char id[96];
	struct crab_ingest_producer p = {.id = id, .trusted = 1};

	if (gw->draining) {
		free(e);
		return -1;
	}
	snprintf(id, sizeof(id), "module:%s", module);
	e->done = done;
	e->arg = arg;
	crab_ingest(gw, envelope, len, &p, module_emit_answer, e);
	return 0;
}

static int load_modules(struct crab_gateway *gw, char *err, size_t errlen)
{
	struct crab_registry_services svc = {
		.storeq = gw->storeq, .http = gw->http_client, .emit = module_emit, .role = gw,
		.role_name = "gateway", .auth = gw->auth,
	};

	gw->modules = crab_registry_new(gw->base, &svc);
	if (crab_registry_add_builtins(gw->modules, err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < gw->cfg->nmodules; i++) {
		const struct crab_config_module *m = &gw->cfg->modules[i];
		char why[512];

		if (crab_registry_load(gw->modules, m->path, m->config, why, sizeof(why)) == 0)
			continue;
		if (m->required) {
			snprintf(err, errlen, "%s (required: true)", why);
			return -1;
		}
		log_warnx("%s; going on without it", why);
	}
	return 0;
}

/* One instance of its adapter per models: entry; a model that cannot run stops the start
 * (never half-configured), with the position of its adapter in the file. */
static int start_models(struct crab_gateway *gw, char *err, size_t errlen)
{
	for (size_t i = 0; i < gw->cfg->nmodels; i++) {
		const struct crab_config_model *m = &gw->cfg->models[i];
		char why[512];

		if (crab_registry_instance(gw->modules, m->adapter, m->id, m->config, why,
			sizeof(why)) != 0) {
			snprintf(err, errlen, "%s:%d:%d: model '%s': %s", gw->cfg->path,
			    m->adapter_line, m->adapter_col, m->id, why);
			return -1;
		}
	}
	return 0;
}

/* After each burst of store answers: new outbox rows go to subscribers. */
static void after_store(void *arg)
{
	struct crab_gateway *gw = arg;

	crab_dispatch_outbox_moved(gw->dispatch);
	crab_live_outbox_moved(gw->live);
}

static int gateway_start(struct crab_gateway *gw, struct crab_store *st, char *err,
    size_t errlen)
{
	struct timeval every = {gw->cfg->retention.interval_s, 0};
	int64_t revoked = 0;

	if (crab_store_lease_revoke_bound(st, crab_clock_now_ms(), &revoked) != 0) {
		snprintf(err, errlen, "cannot revoke connection-bound leases: %s",
		    crab_store_error(st));
		crab_store_close(st);
		return -1;
	}
	if (revoked > 0)
		log_info("%lld connection-bound lease%s revoked: their connections ended with the "
			 "last run", (long long)revoked, revoked == 1 ? "" : "s");
	if (crab_store_lease_foreach_live(st, crab_clock_now_ms(), load_lease, gw->leases) != 0) {
		snprintf(err, errlen, "cannot load leases: %s", crab_store_error(st));
		crab_store_close(st);
		return -1;
	}
	gw->peers = crab_peer_table_new();
	if (crab_store_peer_list(st, 0, load_peer, gw->peers) != 0) {
		snprintf(err, errlen, "cannot load peers: %s", crab_store_error(st));
		crab_store_close(st);
		return -1;
	}
	{
		char *dir = crab_config_resolve(gw->cfg, gw->cfg->data_dir);
		gw->auth = crab_auth_new(gw->base, gw->cfg, dir, st, err, errlen);
		free(dir);
		if (gw->auth == NULL) {
			crab_store_close(st);
			return -1;
		}
	}
	gw->storeq = crab_storeq_new(gw->base, st);
	gw->http_client = crab_http_client_new(gw->base);
	crab_auth_start(gw->auth, gw->storeq, gw->http_client);
	if (load_modules(gw, err, errlen) != 0 || start_models(gw, err, errlen) != 0)
		return -1;
	gw->router = crab_router_new(gw->cfg);
	gw->turns = crab_turns_new(gw);
	if (crab_ingress_start(gw, err, errlen) != 0)
		return -1;
	if ((gw->admin = crab_admin_new(gw, gw->cfg->admin_socket, err, errlen)) == NULL)
		return -1;
	gw->sig_term = evsignal_new(gw->base, SIGTERM, signal_cb, gw);
	gw->sig_int = evsignal_new(gw->base, SIGINT, signal_cb, gw);
	event_add(gw->sig_term, NULL);
	event_add(gw->sig_int, NULL);
	gw->config_mgr = crab_config_mgr_new(gw);
	gw->sig_hup = evsignal_new(gw->base, SIGHUP, crab_config_sighup_cb, gw);
	event_add(gw->sig_hup, NULL);
	gw->retention_timer = event_new(gw->base, -1, EV_PERSIST, retention_timer_cb, gw);
	event_add(gw->retention_timer, &every);
	crab_registry_start(gw->modules);
	crab_turns_recover(gw->turns);
	crab_peer_check_start(gw);
	gw->dispatch = crab_dispatch_new(gw);
	crab_storeq_set_tap(gw->storeq, &(struct crab_storeq_tap){.mark = crab_outbox_mark,
		.rollback = crab_outbox_rollback, .take = crab_outbox_take,
		.deliver = published, .discard = published_discard, .ctx = gw});
	gw->tools = crab_tools_new(gw);
	gw->live = crab_live_new(gw);
	crab_storeq_after_done(gw->storeq, after_store, gw);
	return 0;
}

static void gateway_release(struct crab_gateway *gw)
{
	if (gw->sig_term)
		event_free(gw->sig_term);
	if (gw->sig_int)
		event_free(gw->sig_int);
	if (gw->retention_timer)
		event_free(gw->retention_timer);
	if (gw->drain_timer)
		event_free(gw->drain_timer);
	if (gw->sig_hup)
		event_free(gw->sig_hup);
	/* Changes still waiting are answered while their askers (admin calls, turns'
	 * tool calls) are still there. */
	crab_config_mgr_free(gw->config_mgr);
	crab_admin_modules_release(gw);
	crab_admin_peers_release(gw);
	crab_peer_check_release(gw);
	if (gw->storeq != NULL)
		crab_storeq_after_done(gw->storeq, NULL, NULL);
	crab_dispatch_free(gw->dispatch);
	crab_tools_free(gw->tools);
	crab_live_free(gw->live);
	crab_turns_free(gw->turns); /* answers waiters: before the admin socket goes */
	/* Answers who still waits for a token (modules) or a login (admin calls): before
	 * both go; cancels its calls: before the http client goes. */
	crab_auth_free(gw->auth);
	crab_admin_free(gw->admin);
	crab_http_server_free(gw->http);
	crab_registry_free(gw->modules); /* stop, fini, unload: before what they borrow */
	if (gw->http_client)
		crab_http_client_free(gw->http_client);
	crab_storeq_free(gw->storeq); /* closes the store */
	crab_router_free(gw->router);  /* the worker's last jobs used it */
	crab_lease_table_free(gw->leases);
	crab_peer_table_free(gw->peers);
	crab_identity_free(gw->identity);
	free(gw->name);
	if (gw->base)
		event_base_free(gw->base);
	crab_config_free(gw->cfg);
}

int crab_gateway_main(int argc, char **argv)
{
	struct crab_gateway gw = {0};
	enum crab_log_level level;
	struct crab_store *st;
	const char *config;
	char err[512];
	int rc = 1;

	if (parse_args(argc, argv, &config) != 0)
		return 2;
	if ((gw.cfg = crab_config_load(config, stderr)) == NULL)
		return 1;
	log_level_parse(gw.cfg->log_level, &level);
	log_init("gateway", level);
	gw.started_at_ms = crab_clock_now_ms();
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	/* Under load, glibc would give heap back to the kernel on many a free() (madvise and
	 * a TLB flush each time); the store worker trims once the gateway is idle instead. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	{
		char *dir = crab_config_resolve(gw.cfg, gw.cfg->data_dir);
		int ok = make_private_dir(dir, err, sizeof(err));
		free(dir);
		if (ok != 0)
			goto fail;
	}
	if (load_identity(&gw, err, sizeof(err)) != 0)
		goto fail;
	if ((st = open_store(gw.cfg, err, sizeof(err))) == NULL)
		goto fail;
	crab_strlcpy(gw.store_driver, crab_store_driver(st), sizeof(gw.store_driver));
	/* The file as it runs is a revision: turns record which one they used. */
	if (crab_config_record_start(st, gw.cfg, err, sizeof(err)) != 0) {
		crab_store_close(st);
		goto fail;
	}
	gw.config_revision = gw.cfg->revision;
	if (evthread_use_pthreads() != 0)
		fatalx("libevent has no pthreads support");
	gw.base = event_base_new();
	gw.leases = crab_lease_table_new();
	if (gateway_start(&gw, st, err, sizeof(err)) != 0)
		goto fail;
	log_info("crab %s ready: %s, admin socket %s, store %s", CRAB_VERSION, gw.listen_url,
	    gw.cfg->admin_socket, gw.store_driver);
	event_base_dispatch(gw.base);
	rc = 0;
	log_info("stopped");
	goto out;
fail:
	log_warnx("cannot start: %s", err);
out:
	gateway_release(&gw);
	libevent_global_shutdown();
	return rc;
}
