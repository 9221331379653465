/* store_config.c: config_revisions (store.h): one row per configuration the gateway has
 * run or applied, numbered from 1 without gaps. */
#include "store/store.h"

#include "store/store_int.h"

struct latest_row {
	int64_t revision;
	char *yaml;
};

static int latest_row(void *ud, int ncol, const char *const *v)
{
	struct latest_row *r = ud;

	(void)ncol;
	if (int_col(&r->revision, v[0]) != 0)
		r->revision = -1;
	free(r->yaml);
	r->yaml = dup_col(v[1]);
	return 1;
}

int crab_store_config_latest(struct crab_store *st, int64_t *revision, char **yaml)
{
	static const char sql[] =
		"SELECT revision, yaml FROM config_revisions ORDER BY revision DESC LIMIT 1";
	struct latest_row r = {0, NULL};

	if (exec(st, "config_latest", sql, 0, NULL, latest_row, &r, NULL) == -1)
		return -1;
	if (r.revision < 0) {
		free(r.yaml);
		return fail_msg(st, "config_latest", "a revision that is no number");
	}
	*revision = r.revision;
	if (yaml != NULL)
		*yaml = r.yaml;
	else
		free(r.yaml);
	return 0;
}

int crab_store_config_get(struct crab_store *st, int64_t revision, char **yaml)
{
	static const char sql[] =
		"SELECT revision, yaml FROM config_revisions WHERE revision = $1";
	const struct crab_db_param p[] = {CRAB_DB_I(revision)};
	struct latest_row r = {0, NULL};

	if (exec(st, "config_get", sql, 1, p, latest_row, &r, NULL) == -1)
		return -1;
	*yaml = r.yaml;
	return r.yaml != NULL;
}

int crab_store_config_insert(struct crab_store *st, const char *actor, const char *yaml,
    const char *diff_summary, int64_t now_ms, int64_t *revision)
{
	static const char max_sql[] = "SELECT COALESCE(MAX(revision), 0) FROM config_revisions";
	static const char insert_sql[] =
		"INSERT INTO config_revisions (revision, actor, yaml, diff_summary, applied_at)"
		" VALUES ($1, $2, $3, $4, $5)";
	int64_t last = -1;

	if (exec(st, "config_insert", max_sql, 0, NULL, crab_db_row_int, &last, NULL) == -1)
		return -1;
	if (last < 0)
		return fail_msg(st, "config_insert", "no revision count");
	{
		const struct crab_db_param p[] = {CRAB_DB_I(last + 1), CRAB_DB_T(actor),
			CRAB_DB_T(yaml), CRAB_DB_T(diff_summary), CRAB_DB_I(now_ms)};
		if (exec(st, "config_insert", insert_sql, 5, p, NULL, NULL, NULL) == -1)
			return -1;
	}
	*revision = last + 1;
	return 0;
}

struct list_walk {
	int (*cb)(const struct crab_store_config_rev *r, void *arg);
	void *arg;
	int bad;
};

static int list_row(void *ud, int ncol, const char *const *v)
{
	struct list_walk *w = ud;
	struct crab_store_config_rev r = {.actor = v[1], .diff_summary = v[2]};

	(void)ncol;
	if (int_col(&r.revision, v[0]) != 0 || int_col(&r.applied_at, v[3]) != 0) {
		w->bad = 1;
		return 1;
	}
	return w->cb(&r, w->arg);
}

int crab_store_config_list(struct crab_store *st, int64_t limit,
    int (*cb)(const struct crab_store_config_rev *r, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT revision, actor, diff_summary, applied_at FROM config_revisions"
		" ORDER BY revision DESC LIMIT $1";
	const struct crab_db_param p[] = {CRAB_DB_I(limit)};
	struct list_walk w = {cb, arg, 0};

	if (exec(st, "config_list", sql, 1, p, list_row, &w, NULL) == -1)
		return -1;
	return w.bad ? fail_msg(st, "config_list", "a stored number is no number") : 0;
}
