/* strmap.c: see strmap.h. FNV-1a hashing; the table doubles past a load of 1 and
 * shrinks back when it empties, so a burst of sessions does not keep its memory. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define MIN_BUCKETS 16

struct entry {
	struct entry *next;
	uint64_t hash;
	void *value;
	char key[]; /* NUL-terminated */
};

struct crab_strmap {
	struct entry **buckets;
	size_t nbuckets, count;
};

static uint64_t hash_of(const char *s)
{
	uint64_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

struct crab_strmap *crab_strmap_new(void)
{
	struct crab_strmap *m = xcalloc(1, sizeof(*m));
	m->nbuckets = MIN_BUCKETS;
	m->buckets = xcalloc(m->nbuckets, sizeof(*m->buckets));
	return m;
}

void crab_strmap_free(struct crab_strmap *m, void (*free_value)(void *value))
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			if (free_value != NULL)
				free_value(e->value);
			free(e);
		}
	}
	free(m->buckets);
	free(m);
}

static void resize(struct crab_strmap *m, size_t nbuckets)
{
	struct entry **nb = xcalloc(nbuckets, sizeof(*nb));

	for (size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			e->next = nb[e->hash & (nbuckets - 1)];
			nb[e->hash & (nbuckets - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->nbuckets = nbuckets;
}

static struct entry **slot(const struct crab_strmap *m, const char *key, uint64_t h)
{
	struct entry **pp = &m->buckets[h & (m->nbuckets - 1)];
	while (*pp != NULL && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

void *crab_strmap_get(const struct crab_strmap *m, const char *key)
{
	struct entry *e = *slot(m, key, hash_of(key));
	return e != NULL ? e->value : NULL;
}

void *crab_strmap_put(struct crab_strmap *m, const char *key, void *value)
{
	uint64_t h = hash_of(key);
	struct entry **pp = slot(m, key, h), *e;
	size_t len;

	if (*pp != NULL) {
		void *old = (*pp)->value;
		(*pp)->value = value;
		return old;
	}
	len = strlen(key) + 1;
	e = xmalloc(sizeof(*e) + len);
	memcpy(e->key, key, len);
	e->hash = h;
	e->value = value;
	e->next = NULL;
	*pp = e;
	if (++m->count > m->nbuckets)
		resize(m, m->nbuckets * 2);
	return NULL;
}

void *crab_strmap_del(struct crab_strmap *m, const char *key)
{
	struct entry **pp = slot(m, key, hash_of(key)), *e = *pp;
	void *value;

	if (e == NULL)
		return NULL;
	*pp = e->next;
	value = e->value;
	free(e);
	if (--m->count < m->nbuckets / 8 && m->nbuckets > MIN_BUCKETS)
		resize(m, m->nbuckets / 2);
	return value;
}

size_t crab_strmap_count(const struct crab_strmap *m)
{
	return m->count;
}

void *crab_strmap_any(const struct crab_strmap *m)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		if (m->buckets[i] != NULL)
			return m->buckets[i]->value;
	}
	return NULL;
}

void crab_strmap_each(const struct crab_strmap *m, void (*fn)(void *value, void *arg),
    void *arg)
{
	for (size_t i = 0; i < m->nbuckets; i++) {
		for (struct entry *e = m->buckets[i]; e != NULL; e = e->next)
			fn(e->value, arg);
	}
}
