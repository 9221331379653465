/* store.c: store.h written once over db.h; the backends differ only below that line.
 * Every statement is a string literal with $n parameters: the SQLite backend caches
 * prepared statements by address, and no SQL is ever built from input. */
#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/util.h"
#include "store/db.h"
#include "store/store_int.h"

static const struct crab_db_ops *const backends[] = {&crab_db_sqlite, &crab_db_postgres};

int crab_db_row_int(void *ud, int ncol, const char *const *values)
{
	int64_t *out = ud;

	if (ncol < 1 || values[0] == NULL ||
	    crab_parse_int64(values[0], INT64_MIN, INT64_MAX, out) == -1)
		*out = 0;
	return 1;
}


struct crab_store *crab_store_open(const struct crab_store_options *opts, char *err,
    size_t errlen)
{
	const struct crab_db_ops *ops = NULL;
	struct crab_store *st;

	for (size_t i = 0; opts->driver != NULL && i < CRAB_ARRAY_LEN(backends); i++) {
		if (strcmp(opts->driver, backends[i]->name) == 0)
			ops = backends[i];
	}
	if (ops == NULL) {
		snprintf(err, errlen, "unknown store driver \"%.64s\" (want \"sqlite\" or \"postgres\")",
		    opts->driver != NULL ? opts->driver : "");
		return NULL;
	}
	st = xcalloc(1, sizeof(*st));
	st->db.ops = ops;
	if ((st->db.conn = ops->open(opts, err, errlen)) == NULL)
		goto fail;
	if (crab_schema_migrate(&st->db, crab_clock_now_ms()) == -1) {
		snprintf(err, errlen, "%s: %s", ops->name, st->db.err);
		goto fail;
	}
	return st;
fail:
	if (st->db.conn != NULL)
		ops->close(st->db.conn);
	free(st);
	return NULL;
}

void crab_store_close(struct crab_store *st)
{
	if (st == NULL)
		return;
	st->db.ops->close(st->db.conn);
	free(st);
}

const char *crab_store_error(struct crab_store *st)
{
	return st->db.err;
}

const char *crab_store_driver(struct crab_store *st)
{
	return st->db.ops->name;
}

int crab_store_schema_version(struct crab_store *st, int *out)
{
	return crab_schema_version(&st->db, out);
}

int crab_store_durability(struct crab_store *st, struct crab_store_durability *out)
{
	if (st->db.ops->durability(st->db.conn, out) == 0)
		return 0;
	return fail_msg(st, "durability", st->db.ops->error(st->db.conn));
}

int crab_store_sync_apart(struct crab_store *st)
{
	return st->db.ops->sync != NULL;
}

int crab_store_sync(struct crab_store *st, char *err, size_t errlen)
{
	return st->db.ops->sync != NULL ? st->db.ops->sync(st->db.conn, err, errlen) : 0;
}

void crab_store_release_memory(struct crab_store *st)
{
	if (st->db.ops->release_memory != NULL)
		st->db.ops->release_memory(st->db.conn);
}

/* Transactions and savepoints. The savepoint name is fixed: jobs take one at a time. */

int crab_store_begin(struct crab_store *st)
{
	if (st->db.ops->ready(st->db.conn) == -1)
		return fail_msg(st, "begin", st->db.ops->error(st->db.conn));
	return exec(st, "begin", st->db.ops->begin_sql, 0, NULL, NULL, NULL, NULL);
}

int crab_store_commit(struct crab_store *st)
{
	return exec(st, "commit", "COMMIT", 0, NULL, NULL, NULL, NULL);
}

int crab_store_rollback(struct crab_store *st)
{
	return exec(st, "rollback", "ROLLBACK", 0, NULL, NULL, NULL, NULL);
}

int crab_store_savepoint(struct crab_store *st)
{
	return exec(st, "savepoint", "SAVEPOINT job", 0, NULL, NULL, NULL, NULL);
}

int crab_store_savepoint_release(struct crab_store *st)
{
	return exec(st, "savepoint release", "RELEASE SAVEPOINT job", 0, NULL, NULL, NULL, NULL);
}

int crab_store_savepoint_rollback(struct crab_store *st)
{
	/* ROLLBACK TO keeps the savepoint; release it so a group of failing jobs does not
	 * stack them up. */
	if (exec(st, "savepoint rollback", "ROLLBACK TO SAVEPOINT job", 0, NULL, NULL, NULL,
		NULL) == -1)
		return -1;
	return crab_store_savepoint_release(st);
}

/* Idempotency keys. */

struct idem_row {
	struct crab_store_idem *out;
	int found, bad;
};

static int idem_row(void *ud, int ncol, const char *const *v)
{
	struct idem_row *r = ud;

	(void)ncol;
	r->found = 1;
	if (r->out != NULL &&
	    (copy_col(r->out->event_id, sizeof(r->out->event_id), v[0]) == -1 ||
		copy_col(r->out->session_id, sizeof(r->out->session_id), v[1]) == -1))
		r->bad = 1;
	return 1;
}

int crab_store_idem_claim(struct crab_store *st, const char *tenant_id, const char *key,
    const char *event_id, const char *session_id, int64_t now_ms,
    struct crab_store_idem *existing)
{
	/* ON CONFLICT DO NOTHING waits for a racing insert of the same key, in this or in
	 * another process, and then inserts nothing: exactly one claim wins. */
	static const char insert_sql[] =
		"INSERT INTO idempotency_keys (tenant_id, key, event_id, session_id, created_at)"
		" VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, key) DO NOTHING";
	static const char select_sql[] =
		"SELECT event_id, session_id FROM idempotency_keys"
		" WHERE tenant_id = $1 AND key = $2";
	const struct crab_db_param p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(key),
		CRAB_DB_T(event_id), CRAB_DB_T(session_id), CRAB_DB_I(now_ms)};
	struct idem_row r = {existing, 0, 0};
	int64_t changes = 0;

	if (exec(st, "idem_claim", insert_sql, 5, p, NULL, NULL, &changes) == -1)
		return -1;
	if (changes == 1)
		return 1;
	if (exec(st, "idem_claim", select_sql, 2, p, idem_row, &r, NULL) == -1)
		return -1;
	if (!r.found)
		return fail_msg(st, "idem_claim", "key vanished after a conflict");
	if (r.bad)
		return fail_msg(st, "idem_claim", "stored ids too long");
	return 0;
}

int crab_store_idem_prune(struct crab_store *st, int64_t cutoff_ms, int64_t limit,
    int64_t *deleted)
{
	/* Row values and a LIMIT in a subquery: portable to both backends (SQLite has no
	 * DELETE ... LIMIT unless built for it). The created_at index finds the oldest. */
	static const char sql[] =
		"DELETE FROM idempotency_keys WHERE (tenant_id, key) IN"
		" (SELECT tenant_id, key FROM idempotency_keys WHERE created_at < $1"
		" ORDER BY created_at LIMIT $2)";
	const struct crab_db_param p[] = {CRAB_DB_I(cutoff_ms), CRAB_DB_I(limit)};
	int64_t n = 0;

	if (exec(st, "idem_prune", sql, 2, p, NULL, NULL, &n) == -1)
		return -1;
	if (deleted != NULL)
		*deleted = n;
	return 0;
}

/* The inbox. */

int crab_store_event_insert(struct crab_store *st, const struct crab_store_event *ev)
{
	static const char sql[] =
		"INSERT INTO inbox (id, tenant_id, agent_id, session_id, type, idempotency_key,"
		" producer, envelope, target, received_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
	const struct crab_db_param p[] = {CRAB_DB_T(ev->id), CRAB_DB_T(ev->tenant_id),
		CRAB_DB_T(ev->agent_id), CRAB_DB_T(ev->session_id), CRAB_DB_T(ev->type),
		CRAB_DB_T(ev->idempotency_key), CRAB_DB_T(ev->producer),
		CRAB_DB_T(ev->envelope_json), CRAB_DB_T(ev->target_json),
		CRAB_DB_I(ev->received_at)};

	return exec(st, "event_insert", sql, 10, p, NULL, NULL, NULL);
}

/* Sessions and bindings. */

int crab_store_session_create(struct crab_store *st, const struct crab_store_session *s)
{
	static const char sql[] =
		"INSERT INTO sessions (id, tenant_id, agent_id, runtime_key, memory_key, status,"
		" created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
	const struct crab_db_param p[] = {CRAB_DB_T(s->id), CRAB_DB_T(s->tenant_id),
		CRAB_DB_T(s->agent_id), CRAB_DB_T(s->runtime_key), CRAB_DB_T(s->memory_key),
		CRAB_DB_T(s->status[0] != '\0' ? s->status : "open"), CRAB_DB_I(s->created_at),
		CRAB_DB_I(s->updated_at)};

	return exec(st, "session_create", sql, 8, p, NULL, NULL, NULL);
}

struct session_row {
	struct crab_store_session *out;
	int found, bad;
};

static int session_row(void *ud, int ncol, const char *const *v)
{
	struct session_row *r = ud;
	struct crab_store_session *s = r->out;

	(void)ncol;
	r->found = 1;
	if (copy_col(s->id, sizeof(s->id), v[0]) == -1 ||
	    copy_col(s->tenant_id, sizeof(s->tenant_id), v[1]) == -1 ||
	    copy_col(s->agent_id, sizeof(s->agent_id), v[2]) == -1 ||
	    copy_col(s->runtime_key, sizeof(s->runtime_key), v[3]) == -1 ||
	    copy_col(s->memory_key, sizeof(s->memory_key), v[4]) == -1 ||
	    copy_col(s->status, sizeof(s->status), v[5]) == -1 ||
	    int_col(&s->created_at, v[6]) == -1 || int_col(&s->updated_at, v[7]) == -1)
		r->bad = 1;
	return 1;
}

int crab_store_session_get(struct crab_store *st, const char *tenant_id, const char *session_id,
    struct crab_store_session *out)
{
	static const char sql[] =
		"SELECT id, tenant_id, agent_id, runtime_key, memory_key, status, created_at,"
		" updated_at FROM sessions WHERE tenant_id = $1 AND id = $2";
	const struct crab_db_param p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(session_id)};
	struct session_row r = {out, 0, 0};

	if (exec(st, "session_get", sql, 2, p, session_row, &r, NULL) == -1)
		return -1;
	if (r.bad)
		return fail_msg(st, "session_get", "stored value does not fit its field");
	return r.found;
}

int crab_store_binding_current(struct crab_store *st, const char *tenant_id,
    const char *runtime_key, char session_id[CRAB_STORE_ID_MAX])
{
	static const char sql[] =
		"SELECT b.session_id FROM session_bindings b"
		" JOIN sessions s ON s.id = b.session_id AND s.tenant_id = b.tenant_id"
		" WHERE b.tenant_id = $1 AND b.runtime_key = $2 AND s.status = 'open'";
	const struct crab_db_param p[] = {CRAB_DB_T(tenant_id), CRAB_DB_T(runtime_key)};
	struct id_row r = {session_id, 0, 0};

	if (exec(st, "binding_current", sql, 2, p, id_row, &r, NULL) == -1)
		return -1;
	if (r.bad)
		return fail_msg(st, "binding_current", "stored session id too long");
	return r.found;
}

int crab_store_binding_set(struct crab_store *st, const struct crab_store_binding *b)
{
	static const char sql[] =
		"INSERT INTO session_bindings (tenant_id, runtime_key, agent_id, platform,"
		" channel_id, actor_id, isolation_key, session_id, updated_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
		" ON CONFLICT (tenant_id, runtime_key) DO UPDATE SET"
		" agent_id = excluded.agent_id, platform = excluded.platform,"
		" channel_id = excluded.channel_id, actor_id = excluded.actor_id,"
		" isolation_key = excluded.isolation_key, session_id = excluded.session_id,"
		" updated_at = excluded.updated_at";
	const struct crab_db_param p[] = {CRAB_DB_T(b->tenant_id), CRAB_DB_T(b->runtime_key),
		CRAB_DB_T(b->agent_id), CRAB_DB_T(b->platform), CRAB_DB_T(b->channel_id),
		CRAB_DB_T(b->actor_id), CRAB_DB_T(b->isolation_key), CRAB_DB_T(b->session_id),
		CRAB_DB_I(b->updated_at)};

	return exec(st, "binding_set", sql, 9, p, NULL, NULL, NULL);
}

/* Leases. Unset agent and session are NULL in the table and "" in the struct. */

static const char *empty_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

int crab_store_lease_insert(struct crab_store *st, const struct crab_store_lease *l)
{
	static const char sql[] =
		"INSERT INTO leases (id, token_hash, tenant_id, agent_id, session_id, scopes,"
		" connection_bound, created_at, expires_at)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
	const struct crab_db_param p[] = {CRAB_DB_T(l->id), CRAB_DB_T(l->token_hash),
		CRAB_DB_T(l->tenant_id), CRAB_DB_T(empty_null(l->agent_id)),
		CRAB_DB_T(empty_null(l->session_id)), CRAB_DB_T(l->scopes),
		CRAB_DB_I(l->connection_bound != 0), CRAB_DB_I(l->created_at),
		CRAB_DB_I(l->expires_at)};

	return exec(st, "lease_insert", sql, 9, p, NULL, NULL, NULL);
}

int crab_store_lease_revoke(struct crab_store *st, const char *lease_id, int64_t now_ms)
{
	static const char sql[] =
		"UPDATE leases SET revoked_at = $2"
		" WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2";
	const struct crab_db_param p[] = {CRAB_DB_T(lease_id), CRAB_DB_I(now_ms)};
	int64_t changes = 0;

	if (exec(st, "lease_revoke", sql, 2, p, NULL, NULL, &changes) == -1)
		return -1;
	return changes > 0;
}

int crab_store_lease_bind_session(struct crab_store *st, const char *lease_id,
    const char *session_id)
{
	/* Binding is once: a lease already bound to another session keeps it. A lease made
	 * for a new session holds "new" until its first event binds it. */
	static const char sql[] =
		"UPDATE leases SET session_id = $2"
		" WHERE id = $1 AND (session_id IS NULL OR session_id = 'new' OR session_id = $2)";
	const struct crab_db_param p[] = {CRAB_DB_T(lease_id), CRAB_DB_T(session_id)};
	int64_t changes = 0;

	if (exec(st, "lease_bind_session", sql, 2, p, NULL, NULL, &changes) == -1)
		return -1;
	if (changes == 0)
		return fail_msg(st, "lease_bind_session",
		    "no such lease, or bound to another session");
	return 0;
}

struct lease_walk {
	int (*cb)(const struct crab_store_lease *l, void *arg);
	void *arg;
	int bad;
};

int crab_store_lease_session(struct crab_store *st, const char *lease_id,
    char session_id[CRAB_STORE_ID_MAX])
{
	static const char sql[] = "SELECT COALESCE(session_id, '') FROM leases WHERE id = $1";
	const struct crab_db_param p[] = {CRAB_DB_T(lease_id)};
	struct id_row r = {session_id, 0, 0};

	session_id[0] = '\0';
	if (exec(st, "lease_session", sql, 1, p, id_row, &r, NULL) == -1)
		return -1;
	if (r.bad)
		return fail_msg(st, "lease_session", "stored session id too long");
	return r.found;
}

static int lease_row(void *ud, int ncol, const char *const *v)
{
	struct lease_walk *w = ud;
	struct crab_store_lease l;
	int64_t bound;

	(void)ncol;
	memset(&l, 0, sizeof(l));
	if (copy_col(l.id, sizeof(l.id), v[0]) == -1 ||
	    copy_col(l.token_hash, sizeof(l.token_hash), v[1]) == -1 ||
	    copy_col(l.tenant_id, sizeof(l.tenant_id), v[2]) == -1 ||
	    copy_col(l.agent_id, sizeof(l.agent_id), v[3]) == -1 ||
	    copy_col(l.session_id, sizeof(l.session_id), v[4]) == -1 ||
	    copy_col(l.scopes, sizeof(l.scopes), v[5]) == -1 || int_col(&bound, v[6]) == -1 ||
	    int_col(&l.created_at, v[7]) == -1 || int_col(&l.expires_at, v[8]) == -1) {
		w->bad = 1;
		return 1;
	}
	l.connection_bound = bound != 0;
	return w->cb(&l, w->arg);
}

int crab_store_lease_revoke_bound(struct crab_store *st, int64_t now_ms, int64_t *n)
{
	static const char sql[] =
		"UPDATE leases SET revoked_at = $1"
		" WHERE connection_bound = 1 AND revoked_at IS NULL AND expires_at > $1";
	const struct crab_db_param p[] = {CRAB_DB_I(now_ms)};
	int64_t changes = 0;

	if (exec(st, "lease_revoke_bound", sql, 1, p, NULL, NULL, &changes) == -1)
		return -1;
	if (n != NULL)
		*n = changes;
	return 0;
}

int crab_store_lease_foreach_live(struct crab_store *st, int64_t now_ms,
    int (*cb)(const struct crab_store_lease *l, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT id, token_hash, tenant_id, agent_id, session_id, scopes, connection_bound,"
		" created_at, expires_at FROM leases"
		" WHERE revoked_at IS NULL AND expires_at > $1 ORDER BY created_at, id";
	const struct crab_db_param p[] = {CRAB_DB_I(now_ms)};
	struct lease_walk w = {cb, arg, 0};

	if (exec(st, "lease_foreach_live", sql, 1, p, lease_row, &w, NULL) == -1)
		return -1;
	if (w.bad)
		return fail_msg(st, "lease_foreach_live", "stored value does not fit its field");
	return 0;
}

/* Counts: the table name only selects one of these fixed statements. */

#define COUNT_SQL(t) {#t, "SELECT COUNT(*) FROM " #t}
/* Modules' key-value areas. */

struct kv_row {
	char *value;
	size_t len;
};

static int kv_row(void *ud, int ncol, const char *const *v)
{
	struct kv_row *r = ud;

	(void)ncol;
	r->len = strlen(v[0]);
	r->value = xstrndup(v[0], r->len);
	return 1;
}

int crab_store_kv_get(struct crab_store *st, const char *module, const char *key, char **value,
    size_t *len)
{
	static const char sql[] = "SELECT value FROM module_kv WHERE module = $1 AND key = $2";
	const struct crab_db_param p[] = {CRAB_DB_T(module), CRAB_DB_T(key)};
	struct kv_row r = {NULL, 0};

	if (exec(st, "kv_get", sql, 2, p, kv_row, &r, NULL) == -1) {
		free(r.value);
		return -1;
	}
	*value = r.value;
	*len = r.len;
	return r.value != NULL;
}

int crab_store_kv_put(struct crab_store *st, const char *module, const char *key,
    const char *value, size_t len, int64_t now_ms)
{
	static const char upsert_sql[] =
		"INSERT INTO module_kv (module, key, value, updated_at) VALUES ($1, $2, $3, $4)"
		" ON CONFLICT (module, key) DO UPDATE SET value = excluded.value,"
		" updated_at = excluded.updated_at";
	static const char delete_sql[] = "DELETE FROM module_kv WHERE module = $1 AND key = $2";
	const struct crab_db_param p[] = {CRAB_DB_T(module), CRAB_DB_T(key), CRAB_DB_T(value),
		CRAB_DB_I(now_ms)};

	if (value == NULL)
		return exec(st, "kv_put", delete_sql, 2, p, NULL, NULL, NULL);
	if (memchr(value, '\0', len) != NULL || strlen(value) != len)
		return fail_msg(st, "kv_put", "a value must be text without NUL bytes");
	return exec(st, "kv_put", upsert_sql, 4, p, NULL, NULL, NULL);
}

static const struct {
	const char *table;
	const char *sql;
} count_sql[] = {
	COUNT_SQL(schema_migrations),
	COUNT_SQL(sessions),
	COUNT_SQL(session_bindings),
	COUNT_SQL(inbox),
	COUNT_SQL(idempotency_keys),
	COUNT_SQL(turns),
	COUNT_SQL(tool_calls),
	COUNT_SQL(config_revisions),
	COUNT_SQL(event_outbox),
	COUNT_SQL(deliveries),
	COUNT_SQL(dead_letters),
	COUNT_SQL(peers),
	COUNT_SQL(leases),
	COUNT_SQL(module_kv),
	COUNT_SQL(last_active),
};

int crab_store_count(struct crab_store *st, const char *table, int64_t *out)
{
	for (size_t i = 0; table != NULL && i < CRAB_ARRAY_LEN(count_sql); i++) {
		if (strcmp(table, count_sql[i].table) == 0) {
			*out = 0;
			return exec(st, "count", count_sql[i].sql, 0, NULL, crab_db_row_int, out,
			    NULL);
		}
	}
	snprintf(st->db.err, sizeof(st->db.err), "count: unknown table \"%.64s\"",
	    table != NULL ? table : "");
	return -1;
}
