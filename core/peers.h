/* peers.h: the gateway's index of live paired peers (SECURITY.md "Pairing",
 * PEER_AUTH_MODEL.md). The store is the record; this index, loaded at start and kept in
 * step by the pairing operations, answers per request what a TLS client's fingerprint
 * may do. The loop thread's only. */
#ifndef CRAB_PEERS_H
#define CRAB_PEERS_H

#include <jansson.h>
#include <stdint.h>

#include "errors.h"
#include "id.h"
#include "identity.h"
#include "lease.h"
#include "store/store.h"

enum crab_peer_type { CRAB_PEER_OPERATOR, CRAB_PEER_TOOL, CRAB_PEER_SUBSCRIBER };

/* One role paired: a component with several roles has one peer per role, all under the
 * same fingerprint. */
struct crab_peer {
	char id[CRAB_ID_MAX];
	enum crab_peer_type type;
	char *component_id;
	char *endpoint;   /* where the gateway reaches it (its pairing endpoint) */
	char fingerprint[CRAB_FP_HEX];
	json_t *offers;   /* what it offered at pairing: {"tools","subscribes","produces",...} */
	json_t *tenants;  /* its grant: an array of tenant ids, or NULL for every tenant */
	int produce_internal; /* it offered an internal event: it names tenant, agent, actor */
	int64_t paired_at;
	const char *health;   /* the last check of its endpoint: see crab_peer_check */
	int64_t checked_at;
	struct crab_rate rate;
	struct crab_peer *next;
};

/* Whether a JSON list of strings (offers, grants, subscriptions; NULL: none) has s. */
int crab_json_list_has(json_t *list, const char *s);

const char *crab_peer_type_name(enum crab_peer_type t);
/* "operator", "tool", "subscriber" (and "cli" for operator, the CLI's word); 0 or -1. */
int crab_peer_type_parse(const char *s, enum crab_peer_type *out);

/* A peer from its store row; NULL when the row does not parse (logged). */
struct crab_peer *crab_peer_from_row(const struct crab_store_peer *row);
void crab_peer_free(struct crab_peer *p);
/* {"peer_id","component_type","component_id","endpoint","fingerprint","short",
 *  "offers","tenants","paired_at","health"}: what peers.list shows. */
json_t *crab_peer_json(const struct crab_peer *p);

struct crab_peer_table;
struct crab_peer_table *crab_peer_table_new(void);
void crab_peer_table_free(struct crab_peer_table *t);
/* Takes p. A live peer of the same type and component id is dropped: pairing again
 * replaces it. */
void crab_peer_table_add(struct crab_peer_table *t, struct crab_peer *p);
struct crab_peer *crab_peer_table_by_id(struct crab_peer_table *t, const char *peer_id);
/* Drops a peer; 1 when it was there. */
int crab_peer_table_remove(struct crab_peer_table *t, const char *peer_id);
/* Iteration in pairing order: first, then p->next. */
struct crab_peer *crab_peer_table_first(struct crab_peer_table *t);
/* A live peer with that fingerprint, or NULL. */
struct crab_peer *crab_peer_table_by_fingerprint(struct crab_peer_table *t, const char *fp);

/* What a peer may do on the public listener (PEER_AUTH_MODEL.md's matrix), over all its
 * roles. may_produce: 1 when the peer with fingerprint fp may post an event of type for
 * tenant (tenant NULL: not known yet, only the type is checked); else 0 with err set
 * (403 forbidden). names_tenant: 1 when it may name tenant_id, agent_id and actor_id in
 * its envelopes (an operator peer, or produce_internal). */
int crab_peer_may_produce(struct crab_peer_table *t, const char *fp, const char *type,
    const char *tenant, struct crab_error *err);
int crab_peer_names_tenant(struct crab_peer_table *t, const char *fp);
/* 1 when some role of fp may produce at all (checked on the headers, before the body). */
int crab_peer_produces(struct crab_peer_table *t, const char *fp);

#endif
