/* ingress.c: the public HTTP routes of PROTOCOLS.md §2, over TLS 1.3 unless on loopback.
 * Route, authentication (a lease, or a paired peer's pinned certificate) and rate checks
 * run on the headers, before the body is read, and every refusal is logged with who was
 * refused and counted (PEER_AUTH_MODEL.md); a valid event goes to crab_ingest
 * (core/ingest.c), which answers 202 only after its transaction has committed. Nothing of
 * the control plane (pairing, peers, leases) has a route here: it is 404. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "envelope.h"
#include "id.h"
#include "live.h"
#include "log.h"
#include "peers.h"
#include "tls.h"
#include "util.h"

enum route { ROUTE_NONE, ROUTE_HEALTH, ROUTE_EVENTS, ROUTE_WS };

static enum route route_of(struct crab_http_request *req)
{
	const char *path = crab_http_request_path(req);
	if (strcmp(path, "/v1/health") == 0)
		return ROUTE_HEALTH;
	if (strcmp(path, "/v1/events") == 0)
		return ROUTE_EVENTS;
	if (strcmp(path, "/v1/ws") == 0)
		return ROUTE_WS;
	return ROUTE_NONE;
}

static void http_answer(void *arg, int status, const char *body, size_t len)
{
	crab_http_reply(arg, status, body, len);
}

/* Who presents the request: a lease (a bearer token) or a paired peer (a pinned client
 * certificate). Looked up on the headers and again once the body has arrived, since a
 * lease or a peer can be revoked while a body uploads. */
struct credential {
	struct crab_lease *lease;
	struct crab_peer *peer; /* the first live role of the certificate's key */
	const char *fp;
	char who[64];           /* for the log: never the token */
};

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

/* Fills c; -1 with err set (401) when the request has no valid credential. */
static int authenticate(struct crab_gateway *gw, struct crab_http_request *req,
    struct credential *c, struct crab_error *err)
{
	const char *token = bearer_token(req);
	char short_fp[CRAB_FP_SHORT];

	memset(c, 0, sizeof(*c));
	c->fp = crab_http_request_peer_fingerprint(req);
	if (token != NULL) {
		c->lease = crab_lease_table_find(gw->leases, token, crab_clock_now_ms());
		snprintf(c->who, sizeof(c->who), "%s", c->lease ? c->lease->id : "unknown lease");
		if (c->lease == NULL)
			crab_error_set(err, "unauthenticated", NULL,
			    "the lease is unknown, revoked or expired");
		return c->lease ? 0 : -1;
	}
	if (c->fp != NULL) {
		c->peer = crab_peer_table_by_fingerprint(gw->peers, c->fp);
		crab_fingerprint_short(c->fp, short_fp);
		snprintf(c->who, sizeof(c->who), "%s", c->peer ? c->peer->id : short_fp);
		if (c->peer == NULL)
			crab_error_set(err, "unauthenticated", NULL,
			    "the client certificate %s is not a paired peer's", short_fp);
		return c->peer ? 0 : -1;
	}
	snprintf(c->who, sizeof(c->who), "no credential");
	crab_error_set(err, "unauthenticated", NULL,
	    "a lease (Authorization: Bearer <token>) or a paired peer's certificate is required");
	return -1;
}

static void log_refusal(struct crab_http_request *req, const struct credential *c,
    const struct crab_error *err)
{
	log_info("refused %s (%s) on %s: %s: %s", crab_http_request_peer(req), c->who,
	    crab_http_request_path(req), err->code, err->message);
}

static void reject(struct crab_gateway *gw, struct crab_http_request *req,
    const struct credential *c, const struct crab_error *err)
{
	log_refusal(req, c, err);
	crab_ingest_answer_error(gw, http_answer, req, err);
}

int crab_credential_may_produce(struct crab_gateway *gw, const struct crab_lease *lease,
    const char *fp, struct crab_error *err)
{
	struct crab_peer *peer = lease ? NULL : crab_peer_table_by_fingerprint(gw->peers, fp);

	if (lease != NULL && !(lease->scopes & CRAB_LEASE_PRODUCE)) {
		crab_error_set(err, "forbidden", NULL, "this lease may not produce events");
		return -1;
	}
	if (peer != NULL && !crab_peer_produces(gw->peers, fp)) {
		crab_error_set(err, "forbidden", NULL,
		    "peer %s offered no event types to produce when it was paired", peer->id);
		return -1;
	}
	return 0;
}

void crab_credential_producer(struct crab_gateway *gw, const struct crab_lease *lease,
    const char *fp, struct crab_ingest_producer *p, char *id, size_t idlen)
{
	*p = (struct crab_ingest_producer){.id = id};
	if (lease != NULL) {
		p->tenant_id = lease->tenant_id;
		p->agent_id = lease->agent_id;
		p->session_id = lease->session_id;
		p->lease_id = lease->id;
		p->session_pending = lease->session_pending;
		snprintf(id, idlen, "lease:%s", lease->id);
	} else {
		p->trusted = crab_peer_names_tenant(gw->peers, fp);
		p->peer_fp = fp;
		snprintf(id, idlen, "peer:%s", crab_peer_table_by_fingerprint(gw->peers, fp)->id);
	}
}

static int may_post_events(struct crab_gateway *gw, const struct credential *c,
    struct crab_error *err)
{
	return crab_credential_may_produce(gw, c->lease, c->fp, err);
}

static void handle_event(struct crab_gateway *gw, struct crab_http_request *req,
    const struct credential *c)
{
	char id[CRAB_ID_MAX + 8];
	struct crab_ingest_producer p;
	const char *body;
	size_t len;

	crab_credential_producer(gw, c->lease, c->fp, &p, id, sizeof(id));
	body = crab_http_request_body(req, &len);
	crab_ingest(gw, body, len, &p, http_answer, req);
}

static int check_events_head(struct crab_gateway *gw, struct crab_http_request *req,
    struct credential *c, struct crab_error *err)
{
	struct crab_rate *rate;
	int retry_after;
	char value[16];

	if (strcmp(crab_http_request_method(req), "POST") != 0) {
		crab_error_set(err, "method_not_allowed", NULL, "use POST on /v1/events");
		return -1;
	}
	if (authenticate(gw, req, c, err) != 0 || may_post_events(gw, c, err) != 0)
		return -1;
	if (c->lease != NULL && c->lease->connection_bound) {
		char tag[CRAB_ID_MAX + 8];
		snprintf(tag, sizeof(tag), "lease:%s", c->lease->id);
		crab_http_request_tag_connection(req, tag);
	}
	if (!content_type_is_json(crab_http_request_header(req, "Content-Type"))) {
		crab_error_set(err, "unsupported_media_type", NULL,
		    "the body must be application/json");
		return -1;
	}
	rate = c->lease ? &c->lease->rate : &c->peer->rate;
	if (!crab_rate_take(rate, crab_clock_now_ms(), gw->cfg->limits.rate_per_second,
		gw->cfg->limits.rate_burst, &retry_after)) {
		gw->counters.rate_limited++;
		snprintf(value, sizeof(value), "%d", retry_after);
		crab_http_reply_header(req, "Retry-After", value);
		crab_error_set(err, "rate_limited", NULL, "too many requests for this %s",
		    c->lease ? "lease" : "peer");
		return -1;
	}
	return 0;
}

static int on_head(struct crab_http_request *req, void *arg, struct crab_error *err)
{
	struct crab_gateway *gw = arg;
	struct credential c = {.who = "no credential"};
	int rc = 0;

	switch (route_of(req)) {
	case ROUTE_HEALTH:
		if (strcmp(crab_http_request_method(req), "GET") != 0) {
			crab_error_set(err, "method_not_allowed", NULL, "use GET on /v1/health");
			rc = -1;
		}
		break;
	case ROUTE_EVENTS:
		rc = check_events_head(gw, req, &c, err);
		break;
	case ROUTE_WS:
		if (strcmp(crab_http_request_method(req), "GET") != 0) {
			crab_error_set(err, "method_not_allowed", NULL, "use GET on /v1/ws");
			rc = -1;
		} else {
			rc = authenticate(gw, req, &c, err);
		}
		break;
	case ROUTE_NONE:
		crab_error_set(err, "not_found", NULL, "no route for '%.100s'",
		    crab_http_request_path(req));
		rc = -1;
		break;
	}
	if (rc != 0) {
		crab_gateway_count_refusal(gw, err);
		if (crab_error_status(err->code) == 401 || crab_error_status(err->code) == 403)
			log_refusal(req, &c, err);
	}
	return rc;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	static const char health[] = "{\"status\":\"ok\"}";
	struct crab_gateway *gw = arg;
	struct credential c;
	struct crab_error err;

	/* on_head let only these routes through. */
	if (route_of(req) == ROUTE_HEALTH) {
		crab_http_reply(req, 200, health, sizeof(health) - 1);
		return;
	}
	if (route_of(req) == ROUTE_WS) {
		if (authenticate(gw, req, &c, &err) != 0) {
			reject(gw, req, &c, &err);
			return;
		}
		crab_live_accept(gw->live, req, c.lease ? c.lease->id : NULL, c.fp);
		return;
	}
	if (authenticate(gw, req, &c, &err) != 0 || may_post_events(gw, &c, &err) != 0) {
		reject(gw, req, &c, &err);
		return;
	}
	handle_event(gw, req, &c);
}

/* ---- connection-bound leases ---- */

struct bound_revoke {
	struct crab_store_job job;
	char lease_id[CRAB_ID_MAX];
};

static int bound_revoke_run(struct crab_store *st, struct crab_store_job *job)
{
	struct bound_revoke *j = (struct bound_revoke *)job;
	return crab_store_lease_revoke(st, j->lease_id, crab_clock_now_ms()) < 0 ? -1 : 0;
}

static void bound_revoke_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct bound_revoke *j = (struct bound_revoke *)job;

	/* The index dropped it already; a row left live is revoked at the next start. */
	if (status != CRAB_JOB_OK)
		log_warnx("lease %s: its connection ended, but the store could not record it",
		    j->lease_id);
	free(j);
}

void crab_lease_connection_ended(struct crab_gateway *gw, const char *lease_id)
{
	struct bound_revoke *j;

	if (!crab_lease_table_remove(gw->leases, lease_id))
		return;
	log_info("lease %s revoked: its connection ended", lease_id);
	j = xcalloc(1, sizeof(*j));
	crab_strlcpy(j->lease_id, lease_id, sizeof(j->lease_id));
	j->job.run = bound_revoke_run;
	j->job.done = bound_revoke_done;
	crab_storeq_submit(gw->storeq, &j->job);
}

/* A connection that used a connection-bound lease has closed: the lease dies with it. */
static void connection_closed(void *arg, const char *tag)
{
	if (strncmp(tag, "lease:", 6) == 0)
		crab_lease_connection_ended(arg, tag + 6);
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
	int loopback, tls;

	gw->http = crab_http_server_new(gw->base, &limits, on_head, on_request, gw);
	crab_http_server_on_close(gw->http, connection_closed, gw);
	if (crab_http_server_listen(gw->http, cfg->listen, &loopback, err, errlen) != 0)
		return -1;
	tls = cfg->tls == CRAB_TLS_ON || (cfg->tls == CRAB_TLS_AUTO && !loopback);
	if (!tls && !loopback && !cfg->insecure_plaintext) {
		snprintf(err, errlen,
		    "refusing plain HTTP on non-loopback address '%s': TLS is required there "
		    "(set gateway.insecure_plaintext: true to override)", cfg->listen);
		return -1;
	}
	if (!tls && !loopback)
		log_warnx("INSECURE: plain HTTP on non-loopback address %s "
			  "(gateway.insecure_plaintext is true)", cfg->listen);
	if (tls) {
		/* A client certificate is optional here: leases and /v1/health need none. */
		SSL_CTX *ctx = crab_tls_server_ctx(gw->identity, 0, err, errlen);
		if (ctx == NULL || crab_http_server_set_tls(gw->http, ctx) != 0) {
			if (ctx != NULL)
				snprintf(err, errlen, "cannot set up TLS on %s", cfg->listen);
			SSL_CTX_free(ctx);
			return -1;
		}
		SSL_CTX_free(ctx); /* the server holds its own reference */
	}
	/* With port 0 the kernel chose: report the real one. */
	snprintf(gw->listen_url, sizeof(gw->listen_url), "%s://%.*s:%d", tls ? "https" : "http",
	    (int)(strrchr(cfg->listen, ':') - cfg->listen), cfg->listen,
	    crab_http_server_port(gw->http));
	return 0;
}
