/* store_auth.c: subscription logins, sealed (store.h, core/auth.h). */
#include "store/store.h"

#include "store/store_int.h"

int crab_store_auth_put(struct crab_store *st, const struct crab_store_auth *a)
{
	static const char sql[] =
		"INSERT INTO auth_tokens (provider, sealed, updated_at, state, reason)"
		" VALUES ($1, $2, $3, $4, $5)"
		" ON CONFLICT (provider) DO UPDATE SET sealed = excluded.sealed,"
		" updated_at = excluded.updated_at, state = excluded.state,"
		" reason = excluded.reason";
	const struct crab_db_param p[] = {CRAB_DB_T(a->provider), CRAB_DB_T(a->sealed),
		CRAB_DB_I(a->updated_at), CRAB_DB_T(a->state), CRAB_DB_T(a->reason)};

	return exec(st, "auth_put", sql, 5, p, NULL, NULL, NULL);
}

struct auth_walk {
	int (*cb)(const struct crab_store_auth *a, void *arg);
	void *arg;
};

static int auth_row(void *ud, int ncol, const char *const *v)
{
	struct auth_walk *w = ud;
	struct crab_store_auth a = {.provider = v[0], .sealed = v[1], .state = v[3],
		.reason = v[4]};

	(void)ncol;
	int_col(&a.updated_at, v[2]);
	return w->cb(&a, w->arg);
}

int crab_store_auth_list(struct crab_store *st,
    int (*cb)(const struct crab_store_auth *a, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT provider, sealed, updated_at, state, reason FROM auth_tokens"
		" ORDER BY provider";
	struct auth_walk w = {cb, arg};

	return exec(st, "auth_list", sql, 0, NULL, auth_row, &w, NULL);
}
