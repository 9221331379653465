/* peers.c: the index of live peers and the authorization matrix's peer columns. A
 * gateway has tens of peers, not thousands: a list walked per request is enough. */
#include "peers.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct crab_peer_table {
	struct crab_peer *head, *tail;
};

static const char *const type_names[] = {
	[CRAB_PEER_OPERATOR] = "operator",
	[CRAB_PEER_TOOL] = "tool",
	[CRAB_PEER_SUBSCRIBER] = "subscriber",
};

const char *crab_peer_type_name(enum crab_peer_type t)
{
	return type_names[t];
}

int crab_peer_type_parse(const char *s, enum crab_peer_type *out)
{
	if (s == NULL)
		return -1;
	if (strcmp(s, "cli") == 0) {
		*out = CRAB_PEER_OPERATOR;
		return 0;
	}
	for (size_t i = 0; i < CRAB_ARRAY_LEN(type_names); i++) {
		if (strcmp(s, type_names[i]) == 0) {
			*out = (enum crab_peer_type)i;
			return 0;
		}
	}
	return -1;
}

int crab_json_list_has(json_t *list, const char *s)
{
	size_t i;
	json_t *v;

	json_array_foreach(list, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return 1;
	}
	return 0;
}

struct crab_peer *crab_peer_from_row(const struct crab_store_peer *row)
{
	struct crab_peer *p = xcalloc(1, sizeof(*p));
	json_t *grants = NULL;

	if (crab_peer_type_parse(row->component_type, &p->type) != 0 ||
	    crab_strlcpy(p->id, row->id, sizeof(p->id)) >= sizeof(p->id) ||
	    crab_strlcpy(p->fingerprint, row->fingerprint, sizeof(p->fingerprint)) !=
		CRAB_FP_HEX - 1)
		goto bad;
	p->offers = row->offers ? json_loads(row->offers, 0, NULL) : json_object();
	if (!json_is_object(p->offers))
		goto bad;
	if (row->grants != NULL) {
		grants = json_loads(row->grants, 0, NULL);
		p->tenants = json_incref(json_object_get(grants, "tenants"));
		json_decref(grants);
		if (!json_is_array(p->tenants))
			goto bad;
	}
	p->component_id = xstrdup(row->component_id ? row->component_id : "");
	p->endpoint = row->endpoint ? xstrdup(row->endpoint) : NULL;
	p->produce_internal = crab_json_list_has(json_object_get(p->offers, "produces"), "cron.job.fired");
	p->paired_at = row->paired_at;
	p->health = "unchecked";
	p->rate.tokens = -1;
	return p;
bad:
	log_warnx("peer %s: stored row does not parse, ignored", row->id);
	crab_peer_free(p);
	return NULL;
}

void crab_peer_free(struct crab_peer *p)
{
	if (p == NULL)
		return;
	free(p->component_id);
	free(p->endpoint);
	json_decref(p->offers);
	json_decref(p->tenants);
	free(p);
}

json_t *crab_peer_json(const struct crab_peer *p)
{
	char short_fp[CRAB_FP_SHORT];

	crab_fingerprint_short(p->fingerprint, short_fp);
	return json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:O, s:O?, s:I, s:s}",
	    "peer_id", p->id, "component_type", crab_peer_type_name(p->type),
	    "component_id", p->component_id, "endpoint", p->endpoint,
	    "fingerprint", p->fingerprint, "short", short_fp, "offers", p->offers,
	    "tenants", p->tenants, "paired_at", (json_int_t)p->paired_at,
	    "health", p->health);
}

struct crab_peer_table *crab_peer_table_new(void)
{
	return xcalloc(1, sizeof(struct crab_peer_table));
}

void crab_peer_table_free(struct crab_peer_table *t)
{
	struct crab_peer *p, *next;

	if (t == NULL)
		return;
	for (p = t->head; p != NULL; p = next) {
		next = p->next;
		crab_peer_free(p);
	}
	free(t);
}

static struct crab_peer *unlink_if(struct crab_peer_table *t,
    int (*match)(const struct crab_peer *p, const void *key), const void *key)
{
	struct crab_peer **pp, *prev = NULL;

	for (pp = &t->head; *pp != NULL; prev = *pp, pp = &(*pp)->next) {
		struct crab_peer *p = *pp;
		if (!match(p, key))
			continue;
		*pp = p->next;
		if (t->tail == p)
			t->tail = prev;
		return p;
	}
	return NULL;
}

static int same_role(const struct crab_peer *p, const void *key)
{
	const struct crab_peer *q = key;
	return p->type == q->type && strcmp(p->component_id, q->component_id) == 0;
}

static int same_id(const struct crab_peer *p, const void *key)
{
	return strcmp(p->id, key) == 0;
}

void crab_peer_table_add(struct crab_peer_table *t, struct crab_peer *p)
{
	crab_peer_free(unlink_if(t, same_role, p));
	p->next = NULL;
	if (t->tail != NULL)
		t->tail->next = p;
	else
		t->head = p;
	t->tail = p;
}

struct crab_peer *crab_peer_table_by_id(struct crab_peer_table *t, const char *peer_id)
{
	for (struct crab_peer *p = t->head; p != NULL; p = p->next) {
		if (strcmp(p->id, peer_id) == 0)
			return p;
	}
	return NULL;
}

int crab_peer_table_remove(struct crab_peer_table *t, const char *peer_id)
{
	struct crab_peer *p = unlink_if(t, same_id, peer_id);

	crab_peer_free(p);
	return p != NULL;
}

struct crab_peer *crab_peer_table_first(struct crab_peer_table *t)
{
	return t->head;
}

struct crab_peer *crab_peer_table_by_fingerprint(struct crab_peer_table *t, const char *fp)
{
	if (fp == NULL)
		return NULL;
	for (struct crab_peer *p = t->head; p != NULL; p = p->next) {
		if (strcmp(p->fingerprint, fp) == 0)
			return p;
	}
	return NULL;
}

static int serves_tenant(const struct crab_peer *p, const char *tenant)
{
	return p->tenants == NULL || tenant == NULL || crab_json_list_has(p->tenants, tenant);
}

int crab_peer_may_produce(struct crab_peer_table *t, const char *fp, const char *type,
    const char *tenant, struct crab_error *err)
{
	const struct crab_peer *named = NULL;
	int offered = 0;

	for (struct crab_peer *p = t->head; p != NULL; p = p->next) {
		if (strcmp(p->fingerprint, fp) != 0)
			continue;
		named = named ? named : p;
		if (p->type == CRAB_PEER_OPERATOR)
			return 1;
		if (!crab_json_list_has(json_object_get(p->offers, "produces"), type))
			continue;
		offered = 1;
		if (serves_tenant(p, tenant))
			return 1;
	}
	if (named == NULL)
		crab_error_set(err, "unauthenticated", NULL, "this peer is no longer paired");
	else if (!offered)
		crab_error_set(err, "forbidden", "type",
		    "peer %s did not offer to produce '%.64s' when it was paired", named->id, type);
	else
		crab_error_set(err, "forbidden", "tenant_id",
		    "tenant '%.64s' is not in the grant of peer %s", tenant, named->id);
	return 0;
}

int crab_peer_names_tenant(struct crab_peer_table *t, const char *fp)
{
	for (struct crab_peer *p = t->head; p != NULL; p = p->next) {
		if (strcmp(p->fingerprint, fp) == 0 &&
		    (p->type == CRAB_PEER_OPERATOR || p->produce_internal))
			return 1;
	}
	return 0;
}

int crab_peer_produces(struct crab_peer_table *t, const char *fp)
{
	for (struct crab_peer *p = t->head; p != NULL; p = p->next) {
		if (strcmp(p->fingerprint, fp) == 0 &&
		    (p->type == CRAB_PEER_OPERATOR ||
			json_array_size(json_object_get(p->offers, "produces")) > 0))
			return 1;
	}
	return 0;
}
