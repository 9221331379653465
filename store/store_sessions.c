/* store_sessions.c: the session manager's queries: listing and closing sessions, their
 * seq counters, the last active channels, and config revisions (store.h). */
#include "store/store.h"

#include <jansson.h>

#include "store/store_int.h"

void crab_store_session_info_free(struct crab_store_session_info *s)
{
	free(s->id);
	free(s->tenant_id);
	free(s->agent_id);
	free(s->runtime_key);
	free(s->memory_key);
	free(s->status);
	free(s->last_active_channel);
	memset(s, 0, sizeof(*s));
}

#define SESSION_COLS \
	"s.id, s.tenant_id, s.agent_id, s.runtime_key, s.memory_key, s.status," \
	" s.last_active_channel, s.created_at, s.updated_at, s.closed_at, s.last_seq," \
	" s.turn_count"

static void session_fill(struct crab_store_session_info *s, const char *const *v)
{
	s->id = dup_col(v[0]);
	s->tenant_id = dup_col(v[1]);
	s->agent_id = dup_col(v[2]);
	s->runtime_key = dup_col(v[3]);
	s->memory_key = dup_col(v[4]);
	s->status = dup_col(v[5]);
	s->last_active_channel = dup_col(v[6]);
	int_col(&s->created_at, v[7]);
	int_col(&s->updated_at, v[8]);
	int_col(&s->closed_at, v[9]);
	int_col(&s->last_seq, v[10]);
	int_col(&s->turns, v[11]);
}

struct session_walk {
	int (*cb)(const struct crab_store_session_info *s, void *arg);
	void *arg;
};

static int session_list_row(void *ud, int ncol, const char *const *v)
{
	struct session_walk *w = ud;
	struct crab_store_session_info s = {0};
	int stop;

	(void)ncol;
	session_fill(&s, v);
	stop = w->cb(&s, w->arg);
	crab_store_session_info_free(&s);
	return stop;
}

int crab_store_session_list(struct crab_store *st, const char *tenant_id, const char *status,
    int64_t limit, int (*cb)(const struct crab_store_session_info *s, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT " SESSION_COLS " FROM sessions s"
		/* CAST: PostgreSQL cannot type a parameter that is only tested for NULL */
		" WHERE (CAST($1 AS TEXT) IS NULL OR s.tenant_id = $1)"
		" AND (CAST($2 AS TEXT) IS NULL OR s.status = $2)"
		" ORDER BY s.id DESC LIMIT $3";
	const struct crab_db_param p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(status),
		CRAB_DB_I(limit)};
	struct session_walk w = {cb, arg};

	return exec(st, "session_list", sql, 3, p, session_list_row, &w, NULL);
}

static int session_info_row(void *ud, int ncol, const char *const *v)
{
	(void)ncol;
	crab_store_session_info_free(ud);
	session_fill(ud, v);
	return 1;
}

int crab_store_session_info(struct crab_store *st, const char *session_id,
    struct crab_store_session_info *out)
{
	static const char sql[] = "SELECT " SESSION_COLS " FROM sessions s WHERE s.id = $1";
	const struct crab_db_param p[] = {CRAB_DB_T(session_id)};

	memset(out, 0, sizeof(*out));
	if (exec(st, "session_info", sql, 1, p, session_info_row, out, NULL) == -1)
		return -1;
	return out->id != NULL;
}

int crab_store_session_close(struct crab_store *st, const char *session_id, int64_t now_ms)
{
	static const char close_sql[] =
		"UPDATE sessions SET status = 'closed', closed_at = $2, updated_at = $2"
		" WHERE id = $1 AND status = 'open'";
	static const char unbind_sql[] = "DELETE FROM session_bindings WHERE session_id = $1";
	static const char leases_sql[] =
		"UPDATE leases SET revoked_at = $2 WHERE session_id = $1 AND revoked_at IS NULL";
	const struct crab_db_param p[] = {CRAB_DB_T(session_id), CRAB_DB_I(now_ms)};
	int64_t changes = 0;

	if (exec(st, "session_close", close_sql, 2, p, NULL, NULL, &changes) == -1)
		return -1;
	if (changes == 0)
		return 0;
	if (exec(st, "session_close", unbind_sql, 1, p, NULL, NULL, NULL) == -1 ||
	    exec(st, "session_close", leases_sql, 2, p, NULL, NULL, NULL) == -1)
		return -1;
	return 1;
}

int crab_store_session_seq(struct crab_store *st, const char *session_id, int n,
    int64_t *first)
{
	/* One statement: RETURNING is in SQLite since 3.35 and in PostgreSQL. */
	static const char sql[] =
		"UPDATE sessions SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq";
	const struct crab_db_param p[] = {CRAB_DB_T(session_id), CRAB_DB_I(n)};
	int64_t last = -1;

	if (exec(st, "session_seq", sql, 2, p, crab_db_row_int, &last, NULL) == -1)
		return -1;
	if (last < 0)
		return fail_msg(st, "session_seq", "no such session");
	*first = last - n + 1;
	return 0;
}

/* Sorted keys: one channel is always the same text, so that recording an unchanged
 * channel writes nothing. */
char *crab_store_channel_json(const char *platform, const char *channel_id,
    const char *thread_id)
{
	json_t *o = json_pack("{s:s, s:s, s:s?}", "platform", platform, "channel_id", channel_id,
	    "thread_id", thread_id != NULL && thread_id[0] != '\0' ? thread_id : NULL);
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(o);
	return s;
}

static int channel_parse(const char *text, struct crab_store_channel *out)
{
	json_t *o = text ? json_loads(text, 0, NULL) : NULL;
	const char *thread = json_string_value(json_object_get(o, "thread_id"));
	int ok = json_is_string(json_object_get(o, "platform")) &&
	    json_is_string(json_object_get(o, "channel_id")) &&
	    copy_col(out->platform, sizeof(out->platform),
		json_string_value(json_object_get(o, "platform"))) == 0 &&
	    copy_col(out->channel_id, sizeof(out->channel_id),
		json_string_value(json_object_get(o, "channel_id"))) == 0 &&
	    copy_col(out->thread_id, sizeof(out->thread_id), thread) == 0;

	json_decref(o);
	return ok ? 0 : -1;
}

int crab_store_last_active_set(struct crab_store *st, const char *tenant_id,
    const char *agent_id, const char *actor_id, const char *session_id,
    const struct crab_store_channel *ch, int64_t now_ms)
{
	/* Written only when the channel changed: most messages arrive where the last did,
	 * and a write that changes nothing would still dirty pages. */
	static const char upsert_sql[] =
		"INSERT INTO last_active (tenant_id, agent_id, actor_id, platform, channel_id,"
		" thread_id, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
		" ON CONFLICT (tenant_id, agent_id, actor_id) DO UPDATE SET"
		" platform = excluded.platform, channel_id = excluded.channel_id,"
		" thread_id = excluded.thread_id, updated_at = excluded.updated_at"
		" WHERE last_active.platform <> excluded.platform"
		" OR last_active.channel_id <> excluded.channel_id"
		" OR COALESCE(last_active.thread_id, '') <> COALESCE(excluded.thread_id, '')";
	static const char session_sql[] =
		"UPDATE sessions SET last_active_channel = $2 WHERE id = $1"
		" AND (last_active_channel IS NULL OR last_active_channel <> $2)";
	const char *thread = ch->thread_id[0] ? ch->thread_id : NULL;
	const struct crab_db_param actor_p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(agent_id),
		CRAB_DB_T(actor_id), CRAB_DB_T(ch->platform), CRAB_DB_T(ch->channel_id),
		CRAB_DB_T(thread), CRAB_DB_I(now_ms)};
	const struct crab_db_param tenant_p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(agent_id),
		CRAB_DB_T(""), CRAB_DB_T(ch->platform), CRAB_DB_T(ch->channel_id),
		CRAB_DB_T(thread), CRAB_DB_I(now_ms)};
	char *json = crab_store_channel_json(ch->platform, ch->channel_id, ch->thread_id);
	const struct crab_db_param session_p[] = {CRAB_DB_T(session_id), CRAB_DB_T(json)};
	int rc = 0;

	if (exec(st, "last_active", upsert_sql, 7, actor_p, NULL, NULL, NULL) == -1 ||
	    exec(st, "last_active", upsert_sql, 7, tenant_p, NULL, NULL, NULL) == -1 ||
	    exec(st, "last_active", session_sql, 2, session_p, NULL, NULL, NULL) == -1)
		rc = -1;
	free(json);
	return rc;
}

struct channel_row {
	struct crab_store_channel *out;
	int found, bad;
};

static int last_active_row(void *ud, int ncol, const char *const *v)
{
	struct channel_row *r = ud;

	(void)ncol;
	r->found = 1;
	r->bad = copy_col(r->out->platform, sizeof(r->out->platform), v[0]) == -1 ||
	    copy_col(r->out->channel_id, sizeof(r->out->channel_id), v[1]) == -1 ||
	    copy_col(r->out->thread_id, sizeof(r->out->thread_id), v[2]) == -1;
	return 1;
}

int crab_store_last_active_get(struct crab_store *st, const char *tenant_id,
    const char *agent_id, const char *actor_id, struct crab_store_channel *out)
{
	static const char sql[] =
		"SELECT platform, channel_id, thread_id FROM last_active"
		" WHERE tenant_id = $1 AND agent_id = $2 AND actor_id = $3";
	const struct crab_db_param p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(agent_id),
		CRAB_DB_T(actor_id)};
	struct channel_row r = {out, 0, 0};

	if (exec(st, "last_active_get", sql, 3, p, last_active_row, &r, NULL) == -1)
		return -1;
	if (r.bad)
		return fail_msg(st, "last_active_get", "stored value does not fit its field");
	return r.found;
}

static int text_row(void *ud, int ncol, const char *const *v)
{
	char **out = ud;

	(void)ncol;
	free(*out);
	*out = dup_col(v[0]);
	return 1;
}

int crab_store_session_channel(struct crab_store *st, const char *tenant_id,
    const char *session_id, struct crab_store_channel *out)
{
	static const char sql[] =
		"SELECT last_active_channel FROM sessions WHERE tenant_id = $1 AND id = $2";
	const struct crab_db_param p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(session_id)};
	char *text = NULL;
	int rc;

	if (exec(st, "session_channel", sql, 2, p, text_row, &text, NULL) == -1)
		return -1;
	rc = text != NULL && channel_parse(text, out) == 0;
	free(text);
	return rc;
}

struct revision_row {
	int64_t revision;
	char *yaml;
};

static int revision_row(void *ud, int ncol, const char *const *v)
{
	struct revision_row *r = ud;

	(void)ncol;
	int_col(&r->revision, v[0]);
	r->yaml = dup_col(v[1]);
	return 1;
}

int crab_store_config_revision(struct crab_store *st, const char *yaml, const char *actor,
    const char *diff_summary, int64_t now_ms, int64_t *revision)
{
	static const char latest_sql[] =
		"SELECT revision, yaml FROM config_revisions ORDER BY revision DESC LIMIT 1";
	static const char insert_sql[] =
		"INSERT INTO config_revisions (revision, actor, yaml, diff_summary, applied_at)"
		" VALUES ($1, $2, $3, $4, $5)";
	struct revision_row latest = {0, NULL};
	int same;

	if (exec(st, "config_revision", latest_sql, 0, NULL, revision_row, &latest, NULL) == -1)
		return -1;
	same = latest.yaml != NULL && strcmp(latest.yaml, yaml) == 0;
	free(latest.yaml);
	if (same) {
		*revision = latest.revision;
		return 0;
	}
	{
		const struct crab_db_param p[] = {CRAB_DB_I(latest.revision + 1), CRAB_DB_T(actor),
			CRAB_DB_T(yaml), CRAB_DB_T(diff_summary), CRAB_DB_I(now_ms)};
		if (exec(st, "config_revision", insert_sql, 5, p, NULL, NULL, NULL) == -1)
			return -1;
	}
	*revision = latest.revision + 1;
	return 0;
}
