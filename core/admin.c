/* admin.c: the admin socket server and its operations. Operations that touch the store
 * run as store jobs and answer when the job is done; a connection that closes meanwhile
 * is freed once its last call has answered. */
#include "admin.h"
#include "admin_ops.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "dispatch.h"
#include "tools.h"
#include "gateway.h"
#include "id.h"
#include "identity.h"
#include "live.h"
#include "log.h"
#include "turns.h"
#include "util.h"
#include "version.h"

struct crab_admin {
	struct crab_gateway *gw;
	struct evconnlistener *listener;
	char *path;
	struct admin_conn *conns;
};

struct admin_conn {
	struct crab_admin *admin;
	struct bufferevent *bev;
	struct admin_conn *next, **prevp;
	int calls; /* calls not yet answered */
	int closed;
};


/* ---- connections and replies ---- */

static void conn_free(struct admin_conn *c)
{
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
	bufferevent_free(c->bev);
	free(c);
}

static void conn_close(struct admin_conn *c)
{
	c->closed = 1;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	if (c->calls == 0)
		conn_free(c);
}

static void send_line(struct admin_conn *c, json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	struct evbuffer *out = bufferevent_get_output(c->bev);
	evbuffer_add(out, s, strlen(s));
	evbuffer_add(out, "\n", 1);
	free(s);
	json_decref(msg);
}

static void call_finish(struct admin_call *call, json_t *msg)
{
	struct admin_conn *c = call->conn;

	c->calls--;
	if (c->closed) {
		json_decref(msg);
		if (c->calls == 0)
			conn_free(c);
	} else {
		send_line(c, msg);
	}
	json_decref(call->id);
	free(call);
}

void crab_admin_reply_ok(struct admin_call *call, json_t *result)
{
	call_finish(call, json_pack("{s:O, s:b, s:o}", "id", call->id, "ok", 1, "result", result));
}

void crab_admin_reply_error(struct admin_call *call, const char *code, const char *fmt, ...)
{
	struct crab_error err;
	va_list ap;

	err.code = code;
	err.field[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err.message, sizeof(err.message), fmt, ap);
	va_end(ap);
	call_finish(call, json_pack("{s:O, s:b, s:o}", "id", call->id, "ok", 0, "error",
	    crab_error_json(&err)));
}

/* ---- operations ---- */

static json_t *gateway_summary(struct crab_gateway *gw)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "gateway", "crab", "version",
	    CRAB_VERSION, "name", gw->name, "listen", gw->listen_url, "fingerprint",
	    gw->identity->fingerprint, "short", gw->identity->short_fp, "uptime_s",
	    (json_int_t)((crab_clock_now_ms() - gw->started_at_ms) / 1000));
}

static void op_pair_test(struct admin_call *call, json_t *args)
{
	json_t *r = gateway_summary(call->gw);
	(void)args;
	json_object_set_new(r, "status", json_string(call->gw->draining ? "draining" : "ok"));
	crab_admin_reply_ok(call, r);
}

struct status_job {
	struct crab_store_job job;
	struct admin_call *call;
	struct crab_store_durability dur;
	int schema_version;
	int with_rows; /* counting rows scans whole tables: only when asked */
	int64_t counts[4];
	json_t *delivery; /* the dispatcher's figures; the worker adds each subscriber's lag */
};

static const char *const status_tables[] = {"inbox", "sessions", "idempotency_keys", "leases"};

/* Lag: the deliveries each subscriber has still to get. */
static int delivery_lag(struct crab_store *st, json_t *delivery)
{
	size_t i;
	json_t *sub;

	json_array_foreach(json_object_get(delivery, "subscribers"), i, sub) {
		int64_t n;
		if (crab_store_delivery_pending(st,
			json_string_value(json_object_get(sub, "peer_id")), &n) != 0)
			return -1;
		/* Rows, and what the memory path holds. */
		n += json_integer_value(json_object_get(sub, "queued"));
		json_object_set_new(sub, "pending", json_integer(n));
	}
	return 0;
}

static int status_run(struct crab_store *st, struct crab_store_job *job)
{
	struct status_job *j = (struct status_job *)job;

	if (crab_store_durability(st, &j->dur) != 0 ||
	    crab_store_schema_version(st, &j->schema_version) != 0)
		return -1;
	for (size_t i = 0; j->with_rows && i < CRAB_ARRAY_LEN(status_tables); i++) {
		if (crab_store_count(st, status_tables[i], &j->counts[i]) != 0)
			return -1;
	}
	return delivery_lag(st, j->delivery);
}

static void status_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct status_job *j = (struct status_job *)job;
	struct crab_gateway *gw = j->call->gw;
	const struct crab_gateway_counters *k = &gw->counters;
	struct crab_storeq_stats qs;
	json_t *r, *counts;

	if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the store did not answer");
		json_decref(j->delivery);
		free(j);
		return;
	}
	r = gateway_summary(gw);
	counts = j->with_rows ? json_object() : json_null();
	for (size_t i = 0; j->with_rows && i < CRAB_ARRAY_LEN(status_tables); i++)
		json_object_set_new(counts, status_tables[i], json_integer(j->counts[i]));
	json_object_set_new(r, "status", json_string(gw->draining ? "draining" : "ok"));
	crab_storeq_stats(gw->storeq, &qs);
	json_object_set_new(r, "store", json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:I,"
	    " s:o}", "driver", gw->store_driver, "schema_version", j->schema_version,
	    "journal_mode", j->dur.journal_mode, "synchronous", j->dur.synchronous,
	    "fsync", j->dur.fsync, "acks", j->dur.acks, "commits", (json_int_t)qs.commits,
	    "jobs", (json_int_t)qs.jobs, "syncs", (json_int_t)qs.syncs, "rows", counts));
	json_object_set_new(r, "counters", json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "events_accepted", (json_int_t)k->events_accepted,
	    "events_duplicate", (json_int_t)k->events_duplicate,
	    "requests_rejected", (json_int_t)k->requests_rejected,
	    "unauthenticated", (json_int_t)k->unauthenticated,
	    "forbidden", (json_int_t)k->forbidden,
	    "rate_limited", (json_int_t)k->rate_limited,
	    "store_unavailable", (json_int_t)k->store_unavailable));
	json_object_set_new(r, "http", json_pack("{s:I, s:I}",
	    "connections", (json_int_t)crab_http_server_connections(gw->http),
	    "inflight", (json_int_t)crab_http_server_inflight(gw->http)));
	json_object_set_new(r, "turns", crab_turns_status(gw->turns));
	json_object_set_new(r, "config", json_pack("{s:I, s:s}", "revision",
	    (json_int_t)gw->cfg->revision, "path", gw->cfg->path));
	json_object_set_new(r, "delivery", j->delivery);
	json_object_set_new(r, "tools", crab_tools_status(gw->tools));
	json_object_set_new(r, "websockets", json_integer((json_int_t)crab_live_connections(gw->live)));
	json_object_set_new(r, "leases_live", json_integer((json_int_t)crab_lease_table_count(gw->leases)));
	crab_admin_reply_ok(j->call, r);
	free(j);
}

static void op_status(struct admin_call *call, json_t *args)
{
	struct status_job *j = xcalloc(1, sizeof(*j));

	/* The store worker runs this between ingest batches: a full count of a large
	 * inbox would stall ingest, so row counts are for those who ask ({"rows":true}). */
	j->with_rows = json_is_true(json_object_get(args, "rows"));
	j->delivery = crab_dispatch_status(call->gw->dispatch);
	j->job.run = status_run;
	j->job.done = status_done;
	j->call = call;
	crab_storeq_submit(call->gw->storeq, &j->job);
}

struct lease_job {
	struct crab_store_job job;
	struct admin_call *call;
	struct crab_store_lease row;
	char token[CRAB_LEASE_TOKEN_MAX];
	int session_missing;
	int revoked;
};

static int lease_create_run(struct crab_store *st, struct crab_store_job *job)
{
	struct lease_job *j = (struct lease_job *)job;
	struct crab_store_session s;

	/* "new": the first event creates the session and binds the lease to it. */
	if (j->row.session_id[0] != '\0' && strcmp(j->row.session_id, "new") != 0) {
		int rc = crab_store_session_get(st, j->row.tenant_id, j->row.session_id, &s);
		if (rc <= 0) {
			j->session_missing = rc == 0;
			return -1;
		}
	}
	return crab_store_lease_insert(st, &j->row);
}

static void lease_create_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct lease_job *j = (struct lease_job *)job;
	struct crab_gateway *gw = j->call->gw;
	char expires[32];
	json_t *r;

	if (j->session_missing) {
		crab_admin_reply_error(j->call, "session_forbidden", "session '%s' is not one of tenant '%s'",
		    j->row.session_id, j->row.tenant_id);
	} else if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the lease could not be stored");
	} else {
		struct crab_lease *l = crab_lease_from_row(&j->row);
		if (l != NULL)
			crab_lease_table_add(gw->leases, l);
		crab_clock_format(j->row.expires_at, expires, sizeof(expires));
		r = json_pack("{s:s, s:s, s:s, s:s}", "lease_id", j->row.id, "token", j->token,
		    "tenant_id", j->row.tenant_id, "expires_at", expires);
		if (j->row.agent_id[0])
			json_object_set_new(r, "agent_id", json_string(j->row.agent_id));
		if (j->row.session_id[0])
			json_object_set_new(r, "session_id", json_string(j->row.session_id));
		log_info("lease %s created for tenant %s", j->row.id, j->row.tenant_id);
		crab_admin_reply_ok(j->call, r);
	}
	OPENSSL_cleanse(j->token, sizeof(j->token)); /* the only copy of the secret */
	free(j);
}

const char *crab_admin_arg_string(json_t *args, const char *name, size_t max, int *bad)
{
	json_t *v = json_object_get(args, name);
	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max) {
		*bad = 1;
		return NULL;
	}
	return json_string_value(v);
}

static void op_lease_create(struct admin_call *call, json_t *args)
{
	struct lease_job *j;
	const char *tenant, *agent, *session;
	json_t *ttl = json_object_get(args, "ttl_s");
	json_t *bound = json_object_get(args, "connection_bound");
	unsigned scopes;
	int bad = 0;
	int64_t ttl_s = 600;

	tenant = crab_admin_arg_string(args, "tenant_id", 256, &bad);
	agent = crab_admin_arg_string(args, "agent_id", 256, &bad);
	session = crab_admin_arg_string(args, "session_id", 64, &bad);
	if (tenant == NULL || bad) {
		crab_admin_reply_error(call, "invalid_args", "tenant_id (a tenant or \"*\") is required; "
		    "agent_id and session_id are optional strings");
		return;
	}
	if (crab_lease_scopes_parse(json_object_get(args, "scopes"), &scopes) != 0) {
		crab_admin_reply_error(call, "invalid_args", "scopes must list \"produce\" and/or \"subscribe\"");
		return;
	}
	if (ttl != NULL && (!json_is_integer(ttl) || json_integer_value(ttl) < 1 ||
			       json_integer_value(ttl) > 30 * 86400)) {
		crab_admin_reply_error(call, "invalid_args", "ttl_s must be a whole number of seconds, 1 to 2592000");
		return;
	}
	if (bound != NULL && !json_is_boolean(bound)) {
		crab_admin_reply_error(call, "invalid_args", "connection_bound must be true or false");
		return;
	}
	if (ttl != NULL)
		ttl_s = json_integer_value(ttl);
	j = xcalloc(1, sizeof(*j));
	j->job.run = lease_create_run;
	j->job.done = lease_create_done;
	j->call = call;
	crab_id_new("lea", j->row.id);
	crab_lease_token_new(j->token, j->row.token_hash);
	crab_strlcpy(j->row.tenant_id, tenant, sizeof(j->row.tenant_id));
	crab_strlcpy(j->row.agent_id, agent ? agent : "", sizeof(j->row.agent_id));
	crab_strlcpy(j->row.session_id, session ? session : "", sizeof(j->row.session_id));
	crab_lease_scopes_format(scopes, j->row.scopes, sizeof(j->row.scopes));
	j->row.connection_bound = bound != NULL && json_is_true(bound);
	j->row.created_at = crab_clock_now_ms();
	j->row.expires_at = j->row.created_at + ttl_s * 1000;
	crab_storeq_submit(call->gw->storeq, &j->job);
}

static int lease_revoke_run(struct crab_store *st, struct crab_store_job *job)
{
	struct lease_job *j = (struct lease_job *)job;
	int rc = crab_store_lease_revoke(st, j->row.id, crab_clock_now_ms());
	j->revoked = rc == 1;
	return rc < 0 ? -1 : 0;
}

static void lease_revoke_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct lease_job *j = (struct lease_job *)job;

	if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the lease could not be revoked");
	} else if (!j->revoked) {
		crab_admin_reply_error(j->call, "not_found", "no live lease '%s'", j->row.id);
	} else {
		crab_lease_table_remove(j->call->gw->leases, j->row.id);
		crab_live_lease_gone(j->call->gw->live, j->row.id);
		log_info("lease %s revoked", j->row.id);
		crab_admin_reply_ok(j->call, json_pack("{s:s, s:b}", "lease_id", j->row.id, "revoked", 1));
	}
	free(j);
}

static void op_lease_revoke(struct admin_call *call, json_t *args)
{
	int bad = 0;
	const char *id = crab_admin_arg_string(args, "lease_id", CRAB_STORE_ID_MAX - 1, &bad);
	struct lease_job *j;

	if (id == NULL || bad) {
		crab_admin_reply_error(call, "invalid_args", "lease_id is required");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->job.run = lease_revoke_run;
	j->job.done = lease_revoke_done;
	j->call = call;
	crab_strlcpy(j->row.id, id, sizeof(j->row.id));
	crab_storeq_submit(call->gw->storeq, &j->job);
}

static void retention_done(void *arg, int64_t pruned)
{
	struct admin_call *call = arg;
	if (pruned < 0)
		crab_admin_reply_error(call, "store_unavailable", "retention could not run");
	else
		crab_admin_reply_ok(call, json_pack("{s:I}", "pruned_idempotency_keys", (json_int_t)pruned));
}

static void op_retention_run(struct admin_call *call, json_t *args)
{
	(void)args;
	crab_gateway_retention_run(call->gw, retention_done, call);
}

#ifdef CRAB_TEST_HOOKS
/* Test builds only: moves the one clock forward so expiry tests never sleep. */
static void op_clock_advance(struct admin_call *call, json_t *args)
{
	json_t *ms = json_object_get(args, "ms");
	char now[32];

	if (!json_is_integer(ms) || json_integer_value(ms) < 0) {
		crab_admin_reply_error(call, "invalid_args", "ms must be a non-negative whole number");
		return;
	}
	crab_clock_advance(json_integer_value(ms));
	crab_clock_format(crab_clock_now_ms(), now, sizeof(now));
	crab_admin_reply_ok(call, json_pack("{s:s}", "now", now));
}
#endif

static const struct {
	const char *name;
	void (*fn)(struct admin_call *call, json_t *args);
} ops[] = {
	{"pair.test", op_pair_test},
	{"status", op_status},
	{"pair.tool", crab_admin_op_pair_tool},
	{"pair.subscriber", crab_admin_op_pair_subscriber},
	{"pair.operator", crab_admin_op_pair_operator},
	{"peers.list", crab_admin_op_peers_list},
	{"peers.grant", crab_admin_op_peers_grant},
	{"peers.revoke", crab_admin_op_peers_revoke},
	{"dlq.list", crab_admin_op_dlq_list},
	{"dlq.replay", crab_admin_op_dlq_replay},
	{"lease.create", op_lease_create},
	{"lease.revoke", op_lease_revoke},
	{"retention.run", op_retention_run},
	{"modules.list", crab_admin_op_modules_list},
	{"model.test", crab_admin_op_model_test},
	{"sessions.list", crab_admin_op_sessions_list},
	{"sessions.show", crab_admin_op_sessions_show},
	{"sessions.close", crab_admin_op_sessions_close},
	{"turns.show", crab_admin_op_turns_show},
	{"turns.wait", crab_admin_op_turns_wait},
	{"event.send", crab_admin_op_event_send},
	{"config.get", crab_admin_op_config_get},
	{"config.validate", crab_admin_op_config_validate},
	{"config.apply", crab_admin_op_config_apply},
	{"config.revert", crab_admin_op_config_revert},
	{"config.revisions", crab_admin_op_config_revisions},
	{"reload", crab_admin_op_reload},
	{"auth.status", crab_admin_op_auth_status},
	{"auth.login", crab_admin_op_auth_login},
	{"auth.login.wait", crab_admin_op_auth_login_wait},
	{"auth.logout", crab_admin_op_auth_logout},
#ifdef CRAB_TEST_HOOKS
	{"clock.advance", op_clock_advance},
	{"config.tool", crab_admin_op_config_tool},
	{"auth.token", crab_admin_op_auth_token},
#endif
};

/* ---- the socket ---- */

static void handle_line(struct admin_conn *c, const char *line, size_t len)
{
	struct admin_call *call = xcalloc(1, sizeof(*call));
	json_error_t jerr;
	json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *args;
	const char *op;

	call->conn = c;
	call->gw = c->admin->gw;
	c->calls++;
	if (msg == NULL || !json_is_object(msg)) {
		call->id = json_null();
		crab_admin_reply_error(call, "invalid_json", "each line must be one JSON object");
		json_decref(msg);
		return;
	}
	call->id = json_incref(json_object_get(msg, "id") ? json_object_get(msg, "id") : json_null());
	op = json_string_value(json_object_get(msg, "op"));
	args = json_object_get(msg, "args");
	if (args != NULL && !json_is_object(args)) {
		crab_admin_reply_error(call, "invalid_args", "args must be an object");
		goto out;
	}
	for (size_t i = 0; op != NULL && i < CRAB_ARRAY_LEN(ops); i++) {
		if (strcmp(ops[i].name, op) == 0) {
			json_t *empty = json_object();
			ops[i].fn(call, args ? args : empty);
			json_decref(empty);
			goto out;
		}
	}
	crab_admin_reply_error(call, "unknown_op", "unknown operation '%.64s'", op ? op : "(none)");
out:
	json_decref(msg);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	while (!c->closed && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len > CRAB_ADMIN_LINE_MAX) {
			free(line);
			conn_close(c);
			return;
		}
		if (len > 0)
			handle_line(c, line, len);
		free(line);
	}
	if (!c->closed && evbuffer_get_length(in) > CRAB_ADMIN_LINE_MAX) {
		log_warnx("admin: a line longer than %d bytes, closing", CRAB_ADMIN_LINE_MAX);
		conn_close(c);
	}
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_close(arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct crab_admin *a = arg;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct admin_conn *c;
	(void)l;
	(void)sa;
	(void)salen;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
	    (cred.uid != geteuid() && cred.uid != 0)) {
		log_warnx("admin: refused a connection from uid %d", (int)cred.uid);
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->admin = a;
	c->bev = bufferevent_socket_new(a->gw->base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->next = a->conns;
	if (c->next != NULL)
		c->next->prevp = &c->next;
	c->prevp = &a->conns;
	a->conns = c;
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/* Removes a stale socket file, but refuses when a gateway still answers on it. */
static int clear_stale_socket(const struct sockaddr_un *sun, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int live = fd >= 0 && connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0;

	if (fd >= 0)
		close(fd);
	if (live) {
		snprintf(err, errlen, "another gateway is running on admin socket '%s'", sun->sun_path);
		return -1;
	}
	if (unlink(sun->sun_path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove stale '%s': %s", sun->sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

struct crab_admin *crab_admin_new(struct crab_gateway *gw, const char *path, char *err,
    size_t errlen)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct crab_admin *a;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "admin socket path '%s' is too long", path);
		return NULL;
	}
	crab_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (clear_stale_socket(&sun, err, errlen) != 0)
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return NULL;
	}
	old = umask(0177); /* the socket is born 0600: no window where others may connect */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		umask(old);
		snprintf(err, errlen, "cannot bind admin socket '%s': %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	a = xcalloc(1, sizeof(*a));
	a->gw = gw;
	a->path = xstrdup(path);
	a->listener = evconnlistener_new(gw->base, accept_cb, a,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64, fd);
	if (a->listener == NULL) {
		snprintf(err, errlen, "cannot listen on admin socket '%s'", path);
		close(fd);
		crab_admin_free(a);
		return NULL;
	}
	return a;
}

void crab_admin_drain(struct crab_admin *a)
{
	if (a != NULL && a->listener != NULL)
		evconnlistener_disable(a->listener);
}

void crab_admin_free(struct crab_admin *a)
{
	if (a == NULL)
		return;
	while (a->conns != NULL)
		conn_free(a->conns);
	if (a->listener != NULL) {
		evconnlistener_free(a->listener);
		unlink(a->path);
	}
	free(a->path);
	free(a);
}
