/* ingress.c: the public HTTP routes of PROTOCOLS.md §2. Route, authentication and rate
 * checks run on the headers, before the body is read; a valid event is handed to the
 * store worker and answered 202 only after its transaction has committed. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "envelope.h"
#include "id.h"
#include "log.h"
#include "util.h"

enum route { ROUTE_NONE, ROUTE_HEALTH, ROUTE_EVENTS };

static enum route route_of(struct crab_http_request *req)
{
	const char *path = crab_http_request_path(req);
	if (strcmp(path, "/v1/health") == 0)
		return ROUTE_HEALTH;
	if (strcmp(path, "/v1/events") == 0)
		return ROUTE_EVENTS;
	return ROUTE_NONE;
}

/* One event on its way to the store. Inputs are owned copies; outputs are set by run. */
struct ingest_job {
	struct crab_store_job job;
	struct crab_gateway *gw;
	crab_ingest_answer_fn answer; /* who hears the outcome: the HTTP request, a module */
	void *answer_arg;
	char event_id[CRAB_ID_MAX];
	char fresh_session_id[CRAB_ID_MAX]; /* used if a session must be created */
	char *tenant_id, *agent_id, *platform, *channel_id, *actor_id;
	char *runtime_key, *memory_key, *idempotency_key, *type, *producer;
	char *given_session_id; /* CRAB_SESSION_GIVEN */
	char *bind_lease_id;    /* a lease for a new session: its first event binds it */
	char *body;             /* the envelope as received */
	enum crab_session_mode mode;
	int64_t now;
	/* results */
	char session_id[CRAB_STORE_ID_MAX];
	char result_event_id[CRAB_STORE_ID_MAX];
	int duplicate;
	struct crab_error err;
	int failed;
};

static void ingest_job_free(struct ingest_job *j)
{
	free(j->tenant_id);
	free(j->agent_id);
	free(j->platform);
	free(j->channel_id);
	free(j->actor_id);
	free(j->runtime_key);
	free(j->memory_key);
	free(j->idempotency_key);
	free(j->type);
	free(j->producer);
	free(j->given_session_id);
	free(j->bind_lease_id);
	free(j->body);
	free(j);
}

/* "a/b/c" from parts, with '%' and '/' escaped so that distinct parts never collide. */
static char *join_key(const char *const *parts, size_t n)
{
	size_t cap = 1;
	char *out, *p;

	for (size_t i = 0; i < n; i++)
		cap += 3 * strlen(parts[i]) + 1;
	out = p = xmalloc(cap);
	for (size_t i = 0; i < n; i++) {
		for (const char *s = parts[i]; *s; s++) {
			if (*s == '%' || *s == '/')
				p += sprintf(p, "%%%02X", (unsigned char)*s);
			else
				*p++ = *s;
		}
		if (i + 1 < n)
			*p++ = '/';
	}
	*p = '\0';
	return out;
}

/* ---- worker side ---- */

static int session_create(struct crab_store *st, struct ingest_job *j)
{
	struct crab_store_session s = {0};
	struct crab_store_binding b = {
		.tenant_id = j->tenant_id, .runtime_key = j->runtime_key, .agent_id = j->agent_id,
		.platform = j->platform, .channel_id = j->channel_id, .actor_id = j->actor_id,
		.session_id = j->fresh_session_id, .updated_at = j->now,
	};

	crab_strlcpy(s.id, j->fresh_session_id, sizeof(s.id));
	crab_strlcpy(s.tenant_id, j->tenant_id, sizeof(s.tenant_id));
	crab_strlcpy(s.agent_id, j->agent_id, sizeof(s.agent_id));
	crab_strlcpy(s.runtime_key, j->runtime_key, sizeof(s.runtime_key));
	crab_strlcpy(s.memory_key, j->memory_key, sizeof(s.memory_key));
	crab_strlcpy(s.status, "open", sizeof(s.status));
	s.created_at = s.updated_at = j->now;
	if (crab_store_session_create(st, &s) != 0 || crab_store_binding_set(st, &b) != 0)
		return -1;
	crab_strlcpy(j->session_id, j->fresh_session_id, sizeof(j->session_id));
	return 0;
}

static int session_forbidden(struct ingest_job *j, const char *why)
{
	crab_error_set(&j->err, "session_forbidden", "session_id", "%s", why);
	j->failed = 1;
	return -1;
}

/* A lease made for a new session: its first event creates the session and binds the
 * lease, in this transaction, so that of two racing first events only one creates it;
 * later events continue that session. */
static int resolve_lease_session(struct crab_store *st, struct ingest_job *j)
{
	char bound[CRAB_STORE_ID_MAX];
	int rc = crab_store_lease_session(st, j->bind_lease_id, bound);

	if (rc <= 0)
		return -1;
	if (strcmp(bound, "new") == 0) {
		if (j->mode == CRAB_SESSION_GIVEN)
			return session_forbidden(j, "this lease is for a new session");
		if (session_create(st, j) != 0 ||
		    crab_store_lease_bind_session(st, j->bind_lease_id, j->session_id) != 0)
			return -1;
		return 0;
	}
	if (j->mode == CRAB_SESSION_NEW ||
	    (j->mode == CRAB_SESSION_GIVEN && strcmp(j->given_session_id, bound) != 0))
		return session_forbidden(j, "this lease is bound to another session");
	free(j->given_session_id);
	j->given_session_id = xstrdup(bound);
	j->mode = CRAB_SESSION_GIVEN;
	free(j->bind_lease_id); /* bound already: nothing to bind */
	j->bind_lease_id = NULL;
	return 1;
}

static int resolve_session(struct crab_store *st, struct ingest_job *j)
{
	struct crab_store_session s;
	int rc;

	if (j->bind_lease_id != NULL && (rc = resolve_lease_session(st, j)) <= 0)
		return rc;

	switch (j->mode) {
	case CRAB_SESSION_GIVEN:
		rc = crab_store_session_get(st, j->tenant_id, j->given_session_id, &s);
		if (rc < 0)
			return -1;
		if (rc == 0)
			return session_forbidden(j, "the session is not one of this tenant's");
		crab_strlcpy(j->session_id, s.id, sizeof(j->session_id));
		return 0;
	case CRAB_SESSION_CURRENT:
		rc = crab_store_binding_current(st, j->tenant_id, j->runtime_key, j->session_id);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		/* no current session yet: create one */
		/* FALLTHROUGH */
	case CRAB_SESSION_NEW:
		return session_create(st, j);
	}
	return -1;
}

static int ingest_run(struct crab_store *st, struct crab_store_job *job)
{
	struct ingest_job *j = (struct ingest_job *)job;
	struct crab_store_idem first;
	struct crab_store_event ev;
	int rc;

	if (resolve_session(st, j) != 0)
		return -1;
	rc = crab_store_idem_claim(st, j->tenant_id, j->idempotency_key, j->event_id,
	    j->session_id, j->now, &first);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		/* Seen before: answer with the first event's ids and undo this job's writes
		 * (a session it may have created). */
		j->duplicate = 1;
		crab_strlcpy(j->result_event_id, first.event_id, sizeof(j->result_event_id));
		crab_strlcpy(j->session_id, first.session_id, sizeof(j->session_id));
		return -1;
	}
	ev = (struct crab_store_event){
		.id = j->event_id, .tenant_id = j->tenant_id, .agent_id = j->agent_id,
		.session_id = j->session_id, .type = j->type,
		.idempotency_key = j->idempotency_key, .producer = j->producer,
		.envelope_json = j->body, .received_at = j->now,
	};
	if (crab_store_event_insert(st, &ev) != 0)
		return -1;
	crab_strlcpy(j->result_event_id, j->event_id, sizeof(j->result_event_id));
	return 0;
}

/* ---- loop side ---- */

static void answer_json(crab_ingest_answer_fn answer, void *arg, int status, json_t *body)
{
	char *s = json_dumps(body, JSON_COMPACT);
	answer(arg, status, s, strlen(s));
	free(s);
	json_decref(body);
}

static void answer_error(struct crab_gateway *gw, crab_ingest_answer_fn answer, void *arg,
    const struct crab_error *err)
{
	char *body = crab_error_body(err);

	gw->counters.requests_rejected++;
	if (strcmp(err->code, "store_unavailable") == 0)
		gw->counters.store_unavailable++;
	answer(arg, crab_error_status(err->code), body, strlen(body));
	free(body);
}

/* The store has bound a lease made for a new session: the index follows. */
static void lease_bound(struct crab_gateway *gw, const char *lease_id, const char *session_id)
{
	struct crab_lease *l = crab_lease_table_by_id(gw->leases, lease_id);

	if (l != NULL && l->session_pending) {
		l->session_pending = 0;
		l->session_id = xstrdup(session_id);
	}
}

static void ingest_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct ingest_job *j = (struct ingest_job *)job;
	struct crab_gateway *gw = j->gw;
	struct crab_error err;

	if (status == CRAB_JOB_UNAVAILABLE || (status == CRAB_JOB_FAILED && !j->duplicate &&
						 !j->failed)) {
		crab_error_set(&err, "store_unavailable", NULL,
		    "the event could not be stored; send it again");
		answer_error(gw, j->answer, j->answer_arg, &err);
	} else if (j->failed) {
		answer_error(gw, j->answer, j->answer_arg, &j->err);
	} else {
		if (j->duplicate)
			gw->counters.events_duplicate++;
		else
			gw->counters.events_accepted++;
		if (j->bind_lease_id != NULL && !j->duplicate)
			lease_bound(gw, j->bind_lease_id, j->session_id);
		answer_json(j->answer, j->answer_arg, 202, json_pack("{s:s, s:s, s:b}", "event_id",
		    j->result_event_id, "session_id", j->session_id, "duplicate", j->duplicate));
	}
	ingest_job_free(j);
}

/* Fills tenant, agent and session mode from the producer and the envelope, or sets err. */
static int apply_producer(struct crab_gateway *gw, const struct crab_ingest_producer *p,
    const struct crab_envelope *env, struct ingest_job *j, struct crab_error *err)
{
	const char *tenant = p->trusted ? env->tenant_id : p->tenant_id;
	const char *agent = p->trusted ? env->agent_id : p->agent_id;

	if (env->internal) {
		/* Where an internal event runs comes from last_active_channel, which arrives
		 * with routing; leases may never produce them. */
		crab_error_set(err, "forbidden", "type", "'%s' cannot be produced here yet%s",
		    env->type, p->trusted ? "" : " (a lease never may)");
		return -1;
	}
	if (tenant == NULL || strcmp(tenant, "*") == 0) {
		/* The identity mapping that would resolve it arrives with routing. */
		crab_error_set(err, "unknown_identity", "source.actor_id",
		    "actor '%.64s' on '%.32s' maps to no tenant", env->actor_id, env->platform);
		return -1;
	}
	j->tenant_id = xstrdup(tenant);
	j->agent_id = xstrdup(agent ? agent : gw->cfg->default_agent);
	j->mode = env->session_mode;
	if (p->session_pending) {
		/* decided in the store, where the binding is: resolve_lease_session */
		j->bind_lease_id = xstrdup(p->lease_id);
		if (env->session_mode == CRAB_SESSION_GIVEN)
			j->given_session_id = xstrdup(env->session_id);
	} else if (p->session_id != NULL) {
		if (env->session_mode == CRAB_SESSION_NEW ||
		    (env->session_mode == CRAB_SESSION_GIVEN &&
			strcmp(env->session_id, p->session_id) != 0)) {
			crab_error_set(err, "session_forbidden", "session_id",
			    "this lease is bound to another session");
			return -1;
		}
		j->mode = CRAB_SESSION_GIVEN;
		j->given_session_id = xstrdup(p->session_id);
	} else if (env->session_mode == CRAB_SESSION_GIVEN) {
		j->given_session_id = xstrdup(env->session_id);
	}
	return 0;
}

void crab_ingest(struct crab_gateway *gw, const char *body, size_t len,
    const struct crab_ingest_producer *producer, crab_ingest_answer_fn answer, void *arg)
{
	struct ingest_job *j;
	struct crab_envelope env;
	struct crab_error err;

	if (crab_envelope_parse(body, len, &env, &err) != 0) {
		answer_error(gw, answer, arg, &err);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	if (apply_producer(gw, producer, &env, j, &err) != 0) {
		crab_envelope_release(&env);
		ingest_job_free(j);
		answer_error(gw, answer, arg, &err);
		return;
	}
	j->job.run = ingest_run;
	j->job.done = ingest_done;
	j->gw = gw;
	j->answer = answer;
	j->answer_arg = arg;
	j->now = crab_clock_now_ms();
	crab_id_new("evt", j->event_id);
	crab_id_new("ses", j->fresh_session_id);
	j->platform = xstrdup(env.platform);
	j->channel_id = xstrdup(env.channel_id);
	j->actor_id = xstrdup(env.actor_id);
	j->type = xstrdup(env.type);
	j->idempotency_key = xstrdup(env.idempotency_key ? env.idempotency_key : j->event_id);
	{
		const char *rk[] = {j->tenant_id, j->agent_id, j->platform, j->channel_id, j->actor_id};
		const char *mk[] = {j->tenant_id, j->agent_id, "global"};
		j->runtime_key = join_key(rk, CRAB_ARRAY_LEN(rk));
		j->memory_key = join_key(mk, CRAB_ARRAY_LEN(mk));
	}
	j->producer = xstrdup(producer->id);
	/* The envelope is stored as received (validated); the defaulted idempotency key
	 * lives in its own column. */
	j->body = xstrndup(body, len);
	crab_envelope_release(&env);
	crab_storeq_submit(gw->storeq, &j->job);
}

static void http_answer(void *arg, int status, const char *body, size_t len)
{
	crab_http_reply(arg, status, body, len);
}

static void reject(struct crab_gateway *gw, struct crab_http_request *req,
    const struct crab_error *err)
{
	answer_error(gw, http_answer, req, err);
}

static void handle_event(struct crab_gateway *gw, struct crab_http_request *req,
    struct crab_lease *lease)
{
	char id[CRAB_ID_MAX + 8];
	struct crab_ingest_producer p = {
		.id = id, .tenant_id = lease->tenant_id, .agent_id = lease->agent_id,
		.session_id = lease->session_id, .lease_id = lease->id,
		.session_pending = lease->session_pending,
	};
	struct crab_error err;
	const char *body;
	size_t len;

	if (!(lease->scopes & CRAB_LEASE_PRODUCE)) {
		crab_error_set(&err, "forbidden", NULL, "this lease may not produce events");
		reject(gw, req, &err);
		return;
	}
	snprintf(id, sizeof(id), "lease:%s", lease->id);
	body = crab_http_request_body(req, &len);
	crab_ingest(gw, body, len, &p, http_answer, req);
}

static int content_type_is_json(const char *ct)
{
	size_t n = strlen("application/json");
	return ct != NULL && strncasecmp(ct, "application/json", n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Bearer token from the Authorization header, or NULL. */
static const char *bearer_token(struct crab_http_request *req)
{
	const char *auth = crab_http_request_header(req, "Authorization");
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return NULL;
	auth += 7;
	while (*auth == ' ')
		auth++;
	return *auth && strlen(auth) < CRAB_LEASE_TOKEN_MAX ? auth : NULL;
}

/* The live lease the request presents, or NULL with err set. Looked up again when the
 * body has arrived, since a lease can be revoked while a body uploads. */
static struct crab_lease *request_lease(struct crab_gateway *gw, struct crab_http_request *req,
    struct crab_error *err)
{
	const char *token = bearer_token(req);
	struct crab_lease *lease;

	lease = token ? crab_lease_table_find(gw->leases, token, crab_clock_now_ms()) : NULL;
	if (lease == NULL) {
		gw->counters.unauthenticated++;
		log_info("refused %s: %s lease", crab_http_request_peer(req),
		    token ? "unknown or expired" : "no");
		crab_error_set(err, "unauthenticated", NULL,
		    token ? "the lease is unknown, revoked or expired" :
			    "a lease is required: Authorization: Bearer <token>");
	}
	return lease;
}

static int check_events_head(struct crab_gateway *gw, struct crab_http_request *req,
    struct crab_error *err)
{
	struct crab_lease *lease;
	int retry_after;
	char value[16];

	if (strcmp(crab_http_request_method(req), "POST") != 0) {
		crab_error_set(err, "method_not_allowed", NULL, "use POST on /v1/events");
		return -1;
	}
	if ((lease = request_lease(gw, req, err)) == NULL)
		return -1;
	if (!content_type_is_json(crab_http_request_header(req, "Content-Type"))) {
		crab_error_set(err, "unsupported_media_type", NULL,
		    "the body must be application/json");
		return -1;
	}
	if (!crab_lease_rate_take(lease, crab_clock_now_ms(), gw->cfg->limits.rate_per_second,
		gw->cfg->limits.rate_burst, &retry_after)) {
		gw->counters.rate_limited++;
		snprintf(value, sizeof(value), "%d", retry_after);
		crab_http_reply_header(req, "Retry-After", value);
		crab_error_set(err, "rate_limited", NULL, "too many requests for this lease");
		return -1;
	}
	return 0;
}

static int on_head(struct crab_http_request *req, void *arg, struct crab_error *err)
{
	struct crab_gateway *gw = arg;
	int rc = 0;

	switch (route_of(req)) {
	case ROUTE_HEALTH:
		if (strcmp(crab_http_request_method(req), "GET") != 0) {
			crab_error_set(err, "method_not_allowed", NULL, "use GET on /v1/health");
			rc = -1;
		}
		break;
	case ROUTE_EVENTS:
		rc = check_events_head(gw, req, err);
		break;
	case ROUTE_NONE:
		crab_error_set(err, "not_found", NULL, "no route for '%.100s'",
		    crab_http_request_path(req));
		rc = -1;
		break;
	}
	if (rc != 0)
		gw->counters.requests_rejected++;
	return rc;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	static const char health[] = "{\"status\":\"ok\"}";
	struct crab_gateway *gw = arg;
	struct crab_lease *lease;
	struct crab_error err;

	/* on_head let only the two routes through. */
	if (route_of(req) == ROUTE_HEALTH) {
		crab_http_reply(req, 200, health, sizeof(health) - 1);
		return;
	}
	if ((lease = request_lease(gw, req, &err)) == NULL) {
		reject(gw, req, &err);
		return;
	}
	handle_event(gw, req, lease);
}

int crab_ingress_start(struct crab_gateway *gw, char *err, size_t errlen)
{
	const struct crab_config *cfg = gw->cfg;
	struct crab_http_limits limits = {
		.max_header_bytes = (size_t)cfg->limits.max_header_bytes,
		.max_body_bytes = (size_t)cfg->limits.max_body_bytes,
		.idle_timeout_s = (int)cfg->limits.idle_timeout_s,
		.max_connections = (int)cfg->limits.max_connections,
	};
	int loopback;

	gw->http = crab_http_server_new(gw->base, &limits, on_head, on_request, gw);
	if (crab_http_server_listen(gw->http, cfg->listen, &loopback, err, errlen) != 0)
		return -1;
	if (!loopback && !cfg->insecure_plaintext) {
		snprintf(err, errlen,
		    "refusing plain HTTP on non-loopback address '%s': TLS is required there "
		    "(set gateway.insecure_plaintext: true to override)", cfg->listen);
		return -1;
	}
	if (!loopback)
		log_warnx("INSECURE: plain HTTP on non-loopback address %s "
			  "(gateway.insecure_plaintext is true)", cfg->listen);
	snprintf(gw->listen_url, sizeof(gw->listen_url), "http://%s", cfg->listen);
	/* With port 0 the kernel chose: report the real one. */
	{
		char *colon = strrchr(gw->listen_url, ':');
		snprintf(colon + 1, sizeof(gw->listen_url) - (size_t)(colon + 1 - gw->listen_url),
		    "%d", crab_http_server_port(gw->http));
	}
	return 0;
}
