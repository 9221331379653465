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

struct crab_gateway_counters {
	uint64_t events_accepted;
	uint64_t events_duplicate;
	uint64_t requests_rejected;
	uint64_t unauthenticated;
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
	struct event *sig_term, *sig_int, *retention_timer, *drain_timer;
	char store_driver[16];
	char listen_url[128];
	int64_t started_at_ms;
	int64_t drain_deadline_ms;
	int draining;
	struct crab_gateway_counters counters;
};

int crab_gateway_main(int argc, char **argv);

/* Ingress: the public HTTP listener (core/ingress.c). */
int crab_ingress_start(struct crab_gateway *gw, char *err, size_t errlen);

/* Retention: prunes idempotency keys past the retention period and expired leases;
 * done(arg, pruned) runs on the loop when the store has committed (pruned < 0 on error). */
void crab_gateway_retention_run(struct crab_gateway *gw,
    void (*done)(void *arg, int64_t pruned), void *arg);

#endif
