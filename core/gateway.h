/* gateway.h: the gateway role's one root struct, shared by its parts (ingress, admin
 * socket, retention) and owned by core/gateway.c. */
#ifndef CRAB_GATEWAY_H
#define CRAB_GATEWAY_H

#include <event2/event.h>
#include <stdint.h>

#include "config.h"
#include "http_server.h"
#include "lease.h"
#include "storeq.h"

struct crab_admin;
struct crab_registry;
struct crab_router;
struct crab_turns;
struct crab_http_client;
struct model_test;
struct pair_op;
struct crab_dispatch;
struct crab_tools;
struct crab_live;
struct peer_checks;
struct crab_identity;
struct crab_peer_table;
struct crab_config_mgr;
struct crab_auth;

struct crab_gateway_counters {
	uint64_t events_accepted;
	uint64_t events_duplicate;
	uint64_t requests_rejected;
	uint64_t unauthenticated;
	uint64_t forbidden;
	uint64_t rate_limited;
	uint64_t store_unavailable;
};

struct crab_gateway {
	struct event_base *base;
	struct crab_config *cfg;
	struct crab_storeq *storeq;
	struct crab_http_server *http;
	struct crab_admin *admin;
	struct crab_lease_table *leases;
	struct crab_registry *modules;
	struct crab_router *router;   /* read-only once built: the store worker uses it too */
	struct crab_turns *turns;     /* the turn executor */
	int64_t config_revision;      /* the config_revisions row of the running config */
	struct crab_http_client *http_client;
	struct event *sig_term, *sig_int, *retention_timer, *drain_timer;
	char store_driver[16];
	char listen_url[128];
	int64_t started_at_ms;
	int64_t drain_deadline_ms;
	int draining;
	struct crab_gateway_counters counters;
	struct model_test *model_tests; /* admin model.test requests still running */
	struct crab_identity *identity; /* this gateway's key and certificate */
	char *name;                     /* shown to components at pairing */
	struct crab_peer_table *peers;  /* live paired peers */
	struct pair_op *pair_ops;       /* pairings still talking to their components */
	struct peer_checks *peer_checks; /* health checks of the peers' endpoints */
	struct event *peer_check_timer;
	struct crab_dispatch *dispatch; /* delivery to subscribers */
	struct crab_tools *tools;       /* the tool client */
	struct crab_live *live;         /* WebSocket connections */
	struct crab_config_mgr *config_mgr; /* configuration changes (config_apply.h) */
	struct event *sig_hup;          /* reloads the config file */
	struct crab_auth *auth;         /* subscription logins of models' auth: */
};

int crab_gateway_main(int argc, char **argv);

/* Cancels the admin model.test requests still running (core/admin_modules.c): at
 * shutdown, before the admin socket and the modules go. */
void crab_admin_modules_release(struct crab_gateway *gw);

/* Peers (core/peer_check.c): checks every peer's endpoint (GET /v1/health, pinned) now;
 * done(arg) runs once every answer is in. */
void crab_peer_check_all(struct crab_gateway *gw, void (*done)(void *arg), void *arg);
/* Starts the periodic checks; the first runs at once. */
void crab_peer_check_start(struct crab_gateway *gw);
/* Cancels the checks running: at shutdown. */
void crab_peer_check_release(struct crab_gateway *gw);

/* Ingress: the public HTTP listener (core/ingress.c). */
int crab_ingress_start(struct crab_gateway *gw, char *err, size_t errlen);

/* Who produces an event, as ingress sees it. */
struct crab_ingest_producer {
	const char *id;         /* "lease:lea_..." or "module:name", stored with the event */
	const char *tenant_id;  /* fixed by a lease */
	const char *agent_id;   /* fixed by a lease, or NULL */
	const char *session_id; /* a lease's session binding, or NULL */
	const char *lease_id;   /* with session_pending: the lease the first event binds */
	int session_pending;    /* a lease made for a new session, not bound yet */
	int trusted;            /* names tenant_id and agent_id in the envelope itself (modules) */
	/* A paired peer's fingerprint: the event's type and tenant must be of its offers and
	 * grant (crab_peer_may_produce), checked once the tenant is known. NULL: no check. */
	const char *peer_fp;
};

/* A lease's or a paired peer's (fingerprint fp) right to post events at all: 0, or -1
 * with err set (403). Its producer for crab_ingest, its id written into id. */
int crab_credential_may_produce(struct crab_gateway *gw, const struct crab_lease *lease,
    const char *fp, struct crab_error *err);
void crab_credential_producer(struct crab_gateway *gw, const struct crab_lease *lease,
    const char *fp, struct crab_ingest_producer *p, char *id, size_t idlen);
/* The connection that used a connection-bound lease has ended: the lease dies. */
void crab_lease_connection_ended(struct crab_gateway *gw, const char *lease_id);

/* Hears the outcome of one event: 202 {event_id, session_id, duplicate} or an error body. */
typedef void (*crab_ingest_answer_fn)(void *arg, int status, const char *body, size_t len);

/* Validates an envelope, stores it durably and then answers, from any producer. */
void crab_ingest(struct crab_gateway *gw, const char *body, size_t len,
    const struct crab_ingest_producer *producer, crab_ingest_answer_fn answer, void *arg);

/* Counts a refused request by its code: requests_rejected, and unauthenticated (401),
 * forbidden (403) or store_unavailable (core/ingest.c). */
void crab_gateway_count_refusal(struct crab_gateway *gw, const struct crab_error *err);

/* Answers an error body with its status, counted (core/ingest.c). */
void crab_ingest_answer_error(struct crab_gateway *gw, crab_ingest_answer_fn answer, void *arg,
    const struct crab_error *err);

/* Retention: prunes idempotency keys past the retention period and expired leases;
 * done(arg, pruned) runs on the loop when the store has committed (pruned < 0 on error). */
/* The peers changed (paired, revoked, granted): delivery and the tool client look again. */
void crab_gateway_peers_changed(struct crab_gateway *gw);
void crab_gateway_retention_run(struct crab_gateway *gw,
    void (*done)(void *arg, int64_t pruned), void *arg);

#endif
