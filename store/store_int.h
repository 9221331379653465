/* store_int.h: what the store's source files share (not for core/): the store struct
 * and the small column helpers of the row callbacks. */
#ifndef CRAB_STORE_INT_H
#define CRAB_STORE_INT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"
#include "store/db.h"

struct crab_store {
	struct crab_db db;
};

/* Copies a column into a fixed field; -1 when it does not fit (never truncates). */
static inline int copy_col(char *dst, size_t size, const char *v)
{
	return crab_strlcpy(dst, v != NULL ? v : "", size) < size ? 0 : -1;
}

static inline int int_col(int64_t *out, const char *v)
{
	*out = 0;
	return v == NULL ? 0 : crab_parse_int64(v, INT64_MIN, INT64_MAX, out);
}

static inline int exec(struct crab_store *st, const char *what, const char *sql, int nparams,
    const struct crab_db_param *params, crab_db_row_cb cb, void *ud, int64_t *changes)
{
	return crab_db_exec(&st->db, what, sql, nparams, params, cb, ud, changes);
}

static inline int fail_msg(struct crab_store *st, const char *what, const char *msg)
{
	snprintf(st->db.err, sizeof(st->db.err), "%s: %s", what, msg);
	return -1;
}

/* A malloc'd copy of a column, NULL for SQL NULL. */
static inline char *dup_col(const char *v)
{
	return v != NULL ? xstrdup(v) : NULL;
}

/* A row callback for one id column: the first row's into out. */
struct id_row {
	char *out; /* CRAB_STORE_ID_MAX bytes */
	int found, bad;
};

static inline int id_row(void *ud, int ncol, const char *const *v)
{
	struct id_row *r = ud;

	(void)ncol;
	r->found = 1;
	r->bad = copy_col(r->out, CRAB_STORE_ID_MAX, v[0]) == -1;
	return 1;
}

#endif
