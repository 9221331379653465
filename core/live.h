/* live.h: the gateway's WebSocket endpoint, GET /v1/ws (PROTOCOLS.md §2), and what it
 * sends live. A connection authenticated by a lease or a paired peer sends events
 * ({"op":"event"}, answered {"op":"accepted"} once stored, as POST /v1/events) and may
 * subscribe to its session's events ({"op":"subscribe"}): published events of that
 * session come as {"op":"deliver","delivery_id","event"} from the outbox, in seq
 * order, and the model's text as it streams as message.delta, which is never stored.
 * A lease's subscription belongs to the lease: deliveries not acknowledged
 * ({"op":"ack"}) are sent again when the lease subscribes again, and dropped when it
 * ends. A paired subscriber's belongs to the peer (its offers and grant, durable): while
 * its connection is open the dispatcher (dispatch.h) sends its deliveries there instead
 * of by POST, and what it did not acknowledge comes again after it reconnects. */
#ifndef CRAB_LIVE_H
#define CRAB_LIVE_H

#include <stddef.h>

struct crab_gateway;
struct crab_http_request;
struct crab_live;

struct crab_live *crab_live_new(struct crab_gateway *gw);
/* Closes every connection (1001): at drain. */
void crab_live_drain(struct crab_live *l);
void crab_live_free(struct crab_live *l);

/* GET /v1/ws, its credential already checked on the headers by ingress: the lease id
 * or the peer's fingerprint. Upgrades, or answers the error. */
void crab_live_accept(struct crab_live *l, struct crab_http_request *req,
    const char *lease_id, const char *peer_fp);

/* New outbox rows may have been written: subscribed sessions are looked up. */
void crab_live_outbox_moved(struct crab_live *l);
/* A piece of a turn's answer as the model streams it: message.delta to the session's
 * subscribers. */
void crab_live_delta(struct crab_live *l, const char *tenant_id, const char *agent_id,
    const char *session_id, const char *turn_id, const char *text, size_t len);
/* A lease ended (revoked, expired, its session closed): its connections close and its
 * pending deliveries are dropped. */
void crab_live_lease_gone(struct crab_live *l, const char *lease_id);
/* A peer was revoked: its connections close. */
void crab_live_peer_gone(struct crab_live *l, const char *fingerprint);
size_t crab_live_connections(struct crab_live *l);

#endif
