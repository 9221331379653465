/* lease.c: the in-memory index of live leases. */
#include "lease.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "id.h"
#include "log.h"
#include "util.h"

#define NBUCKETS 256

struct crab_lease_table {
	struct crab_lease *buckets[NBUCKETS];
	size_t count;
};

struct crab_lease_table *crab_lease_table_new(void)
{
	return xcalloc(1, sizeof(struct crab_lease_table));
}

void crab_lease_free(struct crab_lease *l)
{
	if (l == NULL)
		return;
	free(l->tenant_id);
	free(l->agent_id);
	free(l->session_id);
	free(l);
}

void crab_lease_table_free(struct crab_lease_table *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < NBUCKETS; i++) {
		struct crab_lease *l = t->buckets[i], *next;
		for (; l != NULL; l = next) {
			next = l->next;
			crab_lease_free(l);
		}
	}
	free(t);
}

void crab_lease_table_add(struct crab_lease_table *t, struct crab_lease *l)
{
	struct crab_lease **b = &t->buckets[l->hash[0]];
	l->next = *b;
	*b = l;
	t->count++;
}

static void unlink_lease(struct crab_lease_table *t, struct crab_lease **pp)
{
	struct crab_lease *l = *pp;
	*pp = l->next;
	crab_lease_free(l);
	t->count--;
}

struct crab_lease *crab_lease_table_find(struct crab_lease_table *t, const char *token,
    int64_t now_ms)
{
	unsigned char hash[32];
	struct crab_lease **pp;

	crab_lease_hash(token, hash);
	for (pp = &t->buckets[hash[0]]; *pp != NULL; pp = &(*pp)->next) {
		if (CRYPTO_memcmp((*pp)->hash, hash, sizeof(hash)) != 0)
			continue;
		if ((*pp)->expires_at <= now_ms) {
			unlink_lease(t, pp);
			return NULL;
		}
		return *pp;
	}
	return NULL;
}

struct crab_lease *crab_lease_table_by_id(struct crab_lease_table *t, const char *lease_id)
{
	for (int i = 0; i < NBUCKETS; i++) {
		for (struct crab_lease *l = t->buckets[i]; l != NULL; l = l->next) {
			if (strcmp(l->id, lease_id) == 0)
				return l;
		}
	}
	return NULL;
}

int crab_lease_table_remove(struct crab_lease_table *t, const char *lease_id)
{
	for (int i = 0; i < NBUCKETS; i++) {
		for (struct crab_lease **pp = &t->buckets[i]; *pp != NULL; pp = &(*pp)->next) {
			if (strcmp((*pp)->id, lease_id) == 0) {
				unlink_lease(t, pp);
				return 1;
			}
		}
	}
	return 0;
}

/* Drops every lease drop() picks; returns how many. */
static size_t drop_where(struct crab_lease_table *t, int (*drop)(const struct crab_lease *l,
    const void *arg), const void *arg)
{
	size_t n = 0;

	for (int i = 0; i < NBUCKETS; i++) {
		struct crab_lease **pp = &t->buckets[i];
		while (*pp != NULL) {
			if (drop(*pp, arg)) {
				unlink_lease(t, pp);
				n++;
			} else {
				pp = &(*pp)->next;
			}
		}
	}
	return n;
}

static int expired(const struct crab_lease *l, const void *now_ms)
{
	return l->expires_at <= *(const int64_t *)now_ms;
}

size_t crab_lease_table_expire(struct crab_lease_table *t, int64_t now_ms)
{
	return drop_where(t, expired, &now_ms);
}

static int of_session(const struct crab_lease *l, const void *session_id)
{
	return l->session_id != NULL && strcmp(l->session_id, session_id) == 0;
}

size_t crab_lease_table_drop_session(struct crab_lease_table *t, const char *session_id)
{
	return drop_where(t, of_session, session_id);
}

size_t crab_lease_table_count(const struct crab_lease_table *t)
{
	return t->count;
}

void crab_lease_hash(const char *token, unsigned char out[32])
{
	unsigned int len = 32;
	if (EVP_Digest(token, strlen(token), out, &len, EVP_sha256(), NULL) != 1)
		fatalx("sha-256 failed");
}

void crab_lease_token_new(char token[CRAB_LEASE_TOKEN_MAX], char hash_hex[65])
{
	static const char b64url[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	unsigned char raw[33], hash[32]; /* 256 bits, padded to a multiple of 3 bytes */
	char *p = token;

	crab_random_bytes(raw, 32);
	raw[32] = 0;
	p += snprintf(p, CRAB_LEASE_TOKEN_MAX, "crab_");
	for (int i = 0; i < 33; i += 3) {
		unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
		*p++ = b64url[(v >> 18) & 63];
		*p++ = b64url[(v >> 12) & 63];
		*p++ = b64url[(v >> 6) & 63];
		if (i + 3 < 33)
			*p++ = b64url[v & 63];
	}
	*p = '\0';
	crab_lease_hash(token, hash);
	crab_hex(hash, sizeof(hash), hash_hex);
	OPENSSL_cleanse(raw, sizeof(raw));
}

static unsigned scopes_from_text(const char *s)
{
	unsigned bits = 0;
	if (strstr(s, "produce") != NULL)
		bits |= CRAB_LEASE_PRODUCE;
	if (strstr(s, "subscribe") != NULL)
		bits |= CRAB_LEASE_SUBSCRIBE;
	return bits;
}

struct crab_lease *crab_lease_from_row(const struct crab_store_lease *row)
{
	struct crab_lease *l = xcalloc(1, sizeof(*l));

	if (crab_unhex(row->token_hash, l->hash, sizeof(l->hash)) != 0) {
		log_warnx("lease %s has a malformed token hash, ignored", row->id);
		free(l);
		return NULL;
	}
	crab_strlcpy(l->id, row->id, sizeof(l->id));
	l->tenant_id = xstrdup(row->tenant_id);
	l->agent_id = row->agent_id[0] ? xstrdup(row->agent_id) : NULL;
	l->session_pending = strcmp(row->session_id, "new") == 0;
	l->session_id = row->session_id[0] && !l->session_pending ? xstrdup(row->session_id) : NULL;
	l->scopes = scopes_from_text(row->scopes);
	l->connection_bound = row->connection_bound;
	l->created_at = row->created_at;
	l->expires_at = row->expires_at;
	l->rate.tokens = -1; /* a full bucket at first use */
	return l;
}

int crab_lease_scopes_parse(json_t *list, unsigned *out)
{
	size_t i;
	json_t *v;

	*out = 0;
	if (!json_is_array(list) || json_array_size(list) == 0)
		return -1;
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);
		if (s != NULL && strcmp(s, "produce") == 0)
			*out |= CRAB_LEASE_PRODUCE;
		else if (s != NULL && strcmp(s, "subscribe") == 0)
			*out |= CRAB_LEASE_SUBSCRIBE;
		else
			return -1;
	}
	return 0;
}

void crab_lease_scopes_format(unsigned scopes, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s%s%s", scopes & CRAB_LEASE_PRODUCE ? "produce" : "",
	    (scopes & CRAB_LEASE_PRODUCE) && (scopes & CRAB_LEASE_SUBSCRIBE) ? "," : "",
	    scopes & CRAB_LEASE_SUBSCRIBE ? "subscribe" : "");
}

int crab_rate_take(struct crab_rate *r, int64_t now_ms, int64_t rate, int64_t burst,
    int *retry_after_s)
{
	if (rate <= 0)
		return 1;
	if (r->tokens < 0) {
		r->tokens = (double)burst;
		r->refilled_at = now_ms;
	}
	if (now_ms > r->refilled_at) {
		r->tokens += (double)(now_ms - r->refilled_at) * (double)rate / 1000.0;
		if (r->tokens > (double)burst)
			r->tokens = (double)burst;
		r->refilled_at = now_ms;
	}
	if (r->tokens >= 1.0) {
		r->tokens -= 1.0;
		return 1;
	}
	*retry_after_s = (int)((1.0 - r->tokens) / (double)rate) + 1;
	return 0;
}
