/* lease.h: temporary leases (SECURITY.md, "Temporary leases"): 256-bit random bearer
 * tokens that the gateway keeps only as SHA-256 hashes, bound to a tenant, optionally an
 * agent and a session, scopes and an expiry. The store is the record; this table is the
 * loop thread's index of the live ones, so checking a request costs one hash, not a
 * query. */
#ifndef CRAB_LEASE_H
#define CRAB_LEASE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "id.h"
#include "store/store.h"

#define CRAB_LEASE_PRODUCE 1u
#define CRAB_LEASE_SUBSCRIBE 2u
#define CRAB_LEASE_TOKEN_MAX 64

/* Token-bucket rate limit: 1 when one request may go, else 0 with *retry_after_s set.
 * rate 0 means unlimited. A bucket starts full: tokens < 0 until its first use. */
struct crab_rate {
	double tokens;
	int64_t refilled_at;
};
int crab_rate_take(struct crab_rate *r, int64_t now_ms, int64_t rate, int64_t burst,
    int *retry_after_s);

struct crab_lease {
	char id[CRAB_ID_MAX];
	unsigned char hash[32];
	char *tenant_id;  /* "*": derived from the identity mapping */
	char *agent_id;   /* NULL when unset */
	char *session_id; /* NULL when not bound to a session */
	int session_pending; /* made for a new session that its first event creates */
	unsigned scopes;
	int connection_bound;
	int64_t created_at, expires_at;
	struct crab_rate rate;
	struct crab_lease *next; /* hash chain */
};

struct crab_lease_table;

struct crab_lease_table *crab_lease_table_new(void);
void crab_lease_table_free(struct crab_lease_table *t);
/* Takes ownership of l. */
void crab_lease_table_add(struct crab_lease_table *t, struct crab_lease *l);
/* The live lease a bearer token names, or NULL (unknown, or expired: then dropped). */
struct crab_lease *crab_lease_table_find(struct crab_lease_table *t, const char *token,
    int64_t now_ms);
/* The live lease with that id, or NULL. */
struct crab_lease *crab_lease_table_by_id(struct crab_lease_table *t, const char *lease_id);
/* Drops the lease with that id; 1 when it was there. */
int crab_lease_table_remove(struct crab_lease_table *t, const char *lease_id);
/* Drops every lease expired at now_ms; returns how many. */
size_t crab_lease_table_expire(struct crab_lease_table *t, int64_t now_ms);
/* Drops the leases bound to a session (it was closed); returns how many. */
size_t crab_lease_table_drop_session(struct crab_lease_table *t, const char *session_id);
size_t crab_lease_table_count(const struct crab_lease_table *t);

/* A new random token (NUL-terminated, base64url) and the hex of its SHA-256. */
void crab_lease_token_new(char token[CRAB_LEASE_TOKEN_MAX], char hash_hex[65]);
void crab_lease_hash(const char *token, unsigned char out[32]);

struct crab_lease *crab_lease_from_row(const struct crab_store_lease *row);
void crab_lease_free(struct crab_lease *l);

/* ["produce","subscribe"] to bits; -1 for an empty list or an unknown scope. */
int crab_lease_scopes_parse(json_t *list, unsigned *out);
/* "produce,subscribe" style, for the store. */
void crab_lease_scopes_format(unsigned scopes, char *out, size_t outlen);


#endif
