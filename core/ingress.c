/* ingress.c: the public HTTP routes of PROTOCOLS.md §2. Route, authentication and rate
 * checks run on the headers, before the body is read; a valid event goes to crab_ingest
 * (core/ingest.c), which answers 202 only after its transaction has committed. */
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

static void http_answer(void *arg, int status, const char *body, size_t len)
{
	crab_http_reply(arg, status, body, len);
}

static void reject(struct crab_gateway *gw, struct crab_http_request *req,
    const struct crab_error *err)
{
	crab_ingest_answer_error(gw, http_answer, req, err);
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
