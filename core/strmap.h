/* strmap.h: a string-keyed hash map of pointers (chained, doubling), for the router's
 * identity index and the turn executor's sessions. Keys are copied; values are not. */
#ifndef CRAB_STRMAP_H
#define CRAB_STRMAP_H

#include <stddef.h>

struct crab_strmap;

struct crab_strmap *crab_strmap_new(void);
/* Frees the map and its keys; free_value (may be NULL) gets each value. */
void crab_strmap_free(struct crab_strmap *m, void (*free_value)(void *value));
void *crab_strmap_get(const struct crab_strmap *m, const char *key);
/* Sets key to value; returns the value it replaces, or NULL. */
void *crab_strmap_put(struct crab_strmap *m, const char *key, void *value);
/* Removes key; returns its value, or NULL. */
void *crab_strmap_del(struct crab_strmap *m, const char *key);
size_t crab_strmap_count(const struct crab_strmap *m);
/* Some value of the map, or NULL when empty (for draining a map entry by entry). */
void *crab_strmap_any(const struct crab_strmap *m);
/* fn(value, arg) for every value, in no order; fn must not change the map. */
void crab_strmap_each(const struct crab_strmap *m, void (*fn)(void *value, void *arg),
    void *arg);

#endif
