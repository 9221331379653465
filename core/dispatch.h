/* dispatch.h: delivery of published events to paired subscribers (PROTOCOLS.md §4).
 *
 * Each subscriber reads the outbox from its own durable cursor: a fan-out job (on the
 * store worker) turns the new rows its offers and grant select into pending deliveries
 * and moves the cursor, in one transaction. The dispatcher then sends, per subscriber,
 * the first pending delivery of each session (so a session's events go in seq order,
 * each waiting until the one before is delivered or dead-lettered, and sessions never
 * wait for each other), by POST /v1/deliver over pinned TLS with the event's idempotency
 * key. 2xx or 409: delivered (the row goes). 408, 429 (Retry-After), 5xx, a timeout or
 * no connection: again later, 1 s doubling to 5 min with jitter, 12 attempts, then a
 * dead letter; any other 4xx: a dead letter at once. Everything it knows is in the
 * store, so it survives restarts: at least once, never lost. Each subscriber has its own
 * HTTP client (its connections carry its pin only) and its own limit in flight, so a
 * slow or dead one delays no other. */
#ifndef CRAB_DISPATCH_H
#define CRAB_DISPATCH_H

#include <jansson.h>
#include <stdint.h>

struct crab_gateway;
struct crab_dispatch;

#define CRAB_DELIVERY_MAX_ATTEMPTS 12
#define CRAB_DELIVERY_FIRST_BACKOFF_MS 1000
#define CRAB_DELIVERY_MAX_BACKOFF_MS (5 * 60 * 1000)

struct crab_dispatch *crab_dispatch_new(struct crab_gateway *gw);
/* Cancels what is in flight (it is sent again after the next start). */
void crab_dispatch_free(struct crab_dispatch *d);
/* The peers changed (paired, revoked, granted): subscribers are read again. */
void crab_dispatch_peers_changed(struct crab_dispatch *d);
/* After each burst of store answers: new outbox rows mean a fan-out. */
void crab_dispatch_outbox_moved(struct crab_dispatch *d);
/* The outbox rows a durable group wrote (storeq's tap, outbox.h): taken and freed. */
struct crab_outbox_batch;
void crab_dispatch_published(struct crab_dispatch *d, struct crab_outbox_batch *b);
/* Look now, not at the next poll: after clock.advance in tests, after a replay. */
void crab_dispatch_kick(struct crab_dispatch *d);
/* The gateway drains: the memory path's cursors are stored (one last store job). */
void crab_dispatch_drain(struct crab_dispatch *d);
/* {"delivered","retried","dead_lettered","inflight","subscribers":[{peer_id,...}]} */
json_t *crab_dispatch_status(struct crab_dispatch *d);

/* A paired subscriber's own WebSocket (PROTOCOLS.md §2): while attached, its deliveries
 * go there as {"op":"deliver"} frames, each done when acknowledged
 * (crab_dispatch_ack), tried again after a timeout; detaching puts what was not
 * acknowledged back, so it comes again (by push, or on the next connection), in order.
 * attach returns how many subscriber roles the key holds (0: none, refuse it). */
int crab_dispatch_attach(struct crab_dispatch *d, const char *fingerprint, void *conn,
    int (*send)(void *conn, const char *text, size_t len));
void crab_dispatch_ack(struct crab_dispatch *d, void *conn, const char *delivery_id);
void crab_dispatch_detach(struct crab_dispatch *d, void *conn);

/* The backoff before attempt n+1 after n failed ones (n >= 1), without jitter. */
int64_t crab_delivery_backoff_ms(int64_t failed_attempts);

#endif
