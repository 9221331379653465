/* schema.c: the versioned migrations, one SQL script each, identical for SQLite and
 * PostgreSQL (a portable subset: TEXT, BIGINT, INTEGER; no AUTOINCREMENT/SERIAL, no
 * BLOB/BYTEA; booleans are INTEGER 0/1, JSON is TEXT, times are epoch milliseconds).
 * Migrations only ever append: an applied script is never edited. */
#include <stdio.h>

#include "core/util.h"
#include "store/db.h"

static const char *const migrations[] = {
	/* 1: the first schema. */
	"CREATE TABLE sessions ("
	" id TEXT PRIMARY KEY,"
	" tenant_id TEXT NOT NULL,"
	" agent_id TEXT NOT NULL,"
	" runtime_key TEXT NOT NULL,"
	" memory_key TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK (status IN ('open', 'closed')),"
	" last_active_channel TEXT,"
	" created_at BIGINT NOT NULL,"
	" updated_at BIGINT NOT NULL,"
	" closed_at BIGINT);"
	"CREATE INDEX sessions_tenant_runtime ON sessions (tenant_id, runtime_key);"

	"CREATE TABLE session_bindings ("
	" tenant_id TEXT NOT NULL,"
	" runtime_key TEXT NOT NULL,"
	" agent_id TEXT NOT NULL,"
	" platform TEXT NOT NULL,"
	" channel_id TEXT NOT NULL,"
	" actor_id TEXT NOT NULL,"
	" isolation_key TEXT,"
	" session_id TEXT NOT NULL REFERENCES sessions (id),"
	" updated_at BIGINT NOT NULL,"
	" PRIMARY KEY (tenant_id, runtime_key));"

	"CREATE TABLE inbox ("
	" id TEXT PRIMARY KEY,"
	" tenant_id TEXT NOT NULL,"
	" agent_id TEXT NOT NULL,"
	" session_id TEXT NOT NULL,"
	" type TEXT NOT NULL,"
	" idempotency_key TEXT NOT NULL,"
	" producer TEXT NOT NULL,"
	" envelope TEXT NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'pending',"
	" received_at BIGINT NOT NULL);"
	"CREATE INDEX inbox_session ON inbox (session_id, id);"

	"CREATE TABLE idempotency_keys ("
	" tenant_id TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" event_id TEXT NOT NULL,"
	" session_id TEXT NOT NULL,"
	" created_at BIGINT NOT NULL,"
	" PRIMARY KEY (tenant_id, key));"
	"CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);"

	"CREATE TABLE turns ("
	" id TEXT PRIMARY KEY,"
	" tenant_id TEXT NOT NULL,"
	" session_id TEXT NOT NULL REFERENCES sessions (id),"
	" event_id TEXT NOT NULL,"
	" status TEXT NOT NULL,"
	" model TEXT,"
	" config_revision BIGINT,"
	" request TEXT,"
	" response TEXT,"
	" error TEXT,"
	" usage TEXT,"
	" started_at BIGINT NOT NULL,"
	" finished_at BIGINT);"
	"CREATE INDEX turns_session ON turns (session_id);"

	"CREATE TABLE tool_calls ("
	" id TEXT PRIMARY KEY,"
	" tenant_id TEXT NOT NULL,"
	" turn_id TEXT NOT NULL REFERENCES turns (id),"
	" tool TEXT NOT NULL,"
	" arguments TEXT,"
	" result TEXT,"
	" error TEXT,"
	" started_at BIGINT NOT NULL,"
	" finished_at BIGINT);"
	"CREATE INDEX tool_calls_turn ON tool_calls (turn_id);"

	"CREATE TABLE config_revisions ("
	" revision BIGINT PRIMARY KEY,"
	" actor TEXT NOT NULL,"
	" yaml TEXT NOT NULL,"
	" diff_summary TEXT,"
	" applied_at BIGINT NOT NULL);"

	"CREATE TABLE event_outbox ("
	" id TEXT PRIMARY KEY,"
	" tenant_id TEXT,"
	" session_id TEXT,"
	" seq BIGINT NOT NULL,"
	" type TEXT NOT NULL,"
	" idempotency_key TEXT,"
	" payload TEXT NOT NULL,"
	" created_at BIGINT NOT NULL);"
	"CREATE INDEX event_outbox_session ON event_outbox (session_id, seq);"

	"CREATE TABLE deliveries ("
	" id TEXT PRIMARY KEY,"
	" event_id TEXT NOT NULL,"
	" subscriber TEXT NOT NULL,"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_at BIGINT,"
	" state TEXT NOT NULL,"
	" last_error TEXT,"
	" delivered_at BIGINT);"
	/* The delivery worker scans due rows by state and time. */
	"CREATE INDEX deliveries_due ON deliveries (state, next_at);"

	"CREATE TABLE dead_letters ("
	" id TEXT PRIMARY KEY,"
	" delivery_id TEXT NOT NULL,"
	" event_id TEXT NOT NULL,"
	" subscriber TEXT NOT NULL,"
	" attempts INTEGER NOT NULL,"
	" last_error TEXT,"
	" created_at BIGINT NOT NULL,"
	" replayed_at BIGINT);"

	"CREATE TABLE peers ("
	" id TEXT PRIMARY KEY,"
	" component_type TEXT NOT NULL,"
	" component_id TEXT NOT NULL,"
	" endpoint TEXT,"
	" fingerprint TEXT NOT NULL,"
	" offers TEXT,"
	" grants TEXT,"
	" paired_at BIGINT NOT NULL,"
	" revoked_at BIGINT);"

	"CREATE TABLE leases ("
	" id TEXT PRIMARY KEY,"
	" token_hash TEXT NOT NULL UNIQUE,"
	" tenant_id TEXT NOT NULL,"
	" agent_id TEXT,"
	" session_id TEXT,"
	" scopes TEXT NOT NULL,"
	" connection_bound INTEGER NOT NULL DEFAULT 0 CHECK (connection_bound IN (0, 1)),"
	" created_at BIGINT NOT NULL,"
	" expires_at BIGINT NOT NULL,"
	" revoked_at BIGINT);",

	/* 2: each module's small durable key-value area (the host table's kv_get/kv_put). */
	"CREATE TABLE module_kv ("
	" module TEXT NOT NULL,"
	" key TEXT NOT NULL,"
	" value TEXT NOT NULL,"
	" updated_at BIGINT NOT NULL,"
	" PRIMARY KEY (module, key));",

	/* 3: turns. The inbox keeps where an event's answer goes and which events still
	 * wait for their turn (in order, and per session, so that an event for an idle
	 * session starts its turn in the commit that accepts it). A session counts the seq
	 * of its events and its turns, and names its last turn: each turn names the one
	 * before it, so history and listings walk a session's turns backwards by primary key
	 * and no index by session is written per turn (it cost a random page per turn).
	 * last_active keeps the channel an actor (or anyone of a tenant, actor_id '') last
	 * used with an agent, where internal events without a target are answered
	 * (PROTOCOLS.md §1). */
	"ALTER TABLE inbox ADD COLUMN target TEXT;"
	"CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'pending';"
	"CREATE INDEX inbox_pending_session ON inbox (session_id) WHERE state = 'pending';"
	"ALTER TABLE sessions ADD COLUMN last_seq BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE sessions ADD COLUMN last_turn_id TEXT;"
	"ALTER TABLE sessions ADD COLUMN turn_count BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE turns ADD COLUMN agent_id TEXT;"
	"ALTER TABLE turns ADD COLUMN input TEXT;"
	"ALTER TABLE turns ADD COLUMN output TEXT;"
	"ALTER TABLE turns ADD COLUMN prev_turn_id TEXT;"
	"CREATE INDEX turns_event ON turns (event_id);"
	"CREATE TABLE last_active ("
	" tenant_id TEXT NOT NULL,"
	" agent_id TEXT NOT NULL,"
	" actor_id TEXT NOT NULL,"
	" platform TEXT NOT NULL,"
	" channel_id TEXT NOT NULL,"
	" thread_id TEXT,"
	" updated_at BIGINT NOT NULL,"
	" PRIMARY KEY (tenant_id, agent_id, actor_id));",

	/* 4: indexes no query uses cost a random page write per event: turns are walked
	 * by their chain, nothing reads the inbox by session but for pending events, and
	 * the outbox is read in id order. */
	"DROP INDEX turns_session;"
	"DROP INDEX inbox_session;"
	"DROP INDEX event_outbox_session;",

	/* 5: pairing. A re-pairing replaces the live row of its component type and id; the
	 * gateway-wide event stream (peer.*, config.*) counts its own seq. */
	"CREATE INDEX peers_live ON peers (component_type, component_id)"
	" WHERE revoked_at IS NULL;"
	"CREATE TABLE stream_seq ("
	" name TEXT PRIMARY KEY,"
	" seq BIGINT NOT NULL);"
	"INSERT INTO stream_seq (name, seq) VALUES ('gateway', 0);",

	/* 6: delivery. The outbox gets a position that only grows (ids follow the clock,
	 * which can step back), and each subscriber reads it from its own cursor; a delivery
	 * names its session and seq, so that a subscriber's next delivery of a session is
	 * the pending one with the lowest seq (sessions independent, each in order). A
	 * delivered row is deleted; a dead one stays, with its dead letter. */
	"ALTER TABLE deliveries ADD COLUMN session_key TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE deliveries ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE deliveries ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE deliveries ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;"
	"DROP INDEX deliveries_due;"
	"CREATE INDEX deliveries_pending ON deliveries (subscriber, session_key, seq)"
	" WHERE state = 'pending';"
	"CREATE INDEX dead_letters_subscriber ON dead_letters (subscriber, id);"
	"ALTER TABLE event_outbox ADD COLUMN pos BIGINT;"
	"UPDATE event_outbox SET pos ="
	" (SELECT COUNT(*) FROM event_outbox o WHERE o.id <= event_outbox.id);"
	"CREATE UNIQUE INDEX event_outbox_pos ON event_outbox (pos);"
	"CREATE TABLE subscriber_cursors ("
	" subscriber TEXT PRIMARY KEY,"
	" pos BIGINT NOT NULL);",

	/* 7: subscription logins (core/auth.h), one row per provider of `auth:`. sealed is
	 * the token JSON under AES-256-GCM with the data directory's auth.key, so a dump of
	 * the database alone holds no token; state is active, revoked or logged_out, and
	 * reason says why a login ended (an OAuth error code, never a token). */
	"CREATE TABLE auth_tokens ("
	" provider TEXT PRIMARY KEY,"
	" sealed TEXT NOT NULL,"
	" updated_at BIGINT NOT NULL,"
	" state TEXT NOT NULL,"
	" reason TEXT);",

	/* 8: a session's next delivery to a subscriber is marked (head = 1) as the rows
	 * change, instead of being found by grouping all its pending rows on every look:
	 * with a dead subscriber's backlog that look grew with the backlog (13 ms at 100,000
	 * pending) and its retries kept the store worker busy. Due heads are a range of the
	 * partial index, earliest due first. */
	"ALTER TABLE deliveries ADD COLUMN head INTEGER NOT NULL DEFAULT 0;"
	"UPDATE deliveries SET head = 1 WHERE state = 'pending' AND NOT EXISTS"
	" (SELECT 1 FROM deliveries e WHERE e.subscriber = deliveries.subscriber"
	" AND e.session_key = deliveries.session_key AND e.state = 'pending'"
	" AND e.seq < deliveries.seq);"
	"CREATE INDEX deliveries_heads ON deliveries (subscriber, next_at, id) WHERE head = 1;",
};

static const char create_migrations_sql[] =
	"CREATE TABLE IF NOT EXISTS schema_migrations ("
	" version BIGINT PRIMARY KEY,"
	" applied_at BIGINT NOT NULL)";
static const char version_sql[] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
static const char record_sql[] =
	"INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)";

int crab_schema_version(struct crab_db *db, int *out)
{
	int64_t v = 0;

	if (crab_db_exec(db, "schema version", version_sql, 0, NULL, crab_db_row_int, &v,
		NULL) == -1)
		return -1;
	*out = (int)v;
	return 0;
}

/* Runs a statement of a migration's transaction; on failure the transaction is undone. */
static int run(struct crab_db *db, const char *what, const char *sql, int nparams,
    const struct crab_db_param *params)
{
	if (crab_db_exec(db, what, sql, nparams, params, NULL, NULL, NULL) == 0)
		return 0;
	db->ops->exec(db->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL);
	return -1;
}

/* Begins a transaction that holds the schema lock, so that of several processes opening
 * one database at once exactly one applies each migration. */
static int begin_locked(struct crab_db *db)
{
	if (crab_db_exec(db, "migrations begin", db->ops->begin_sql, 0, NULL, NULL, NULL,
		NULL) == -1)
		return -1;
	if (db->ops->schema_lock_sql != NULL &&
	    run(db, "migrations lock", db->ops->schema_lock_sql, 0, NULL) == -1)
		return -1;
	return 0;
}

static int apply(struct crab_db *db, int version, int64_t now_ms)
{
	const struct crab_db_param p[] = {CRAB_DB_I(version), CRAB_DB_I(now_ms)};
	char what[64];
	int current;

	if (begin_locked(db) == -1)
		return -1;
	if (crab_schema_version(db, &current) == -1)
		goto fail;
	if (current >= version) /* another process applied it meanwhile */
		return run(db, "migrations commit", "COMMIT", 0, NULL);
	snprintf(what, sizeof(what), "migration %d", version);
	if (db->ops->script(db->conn, migrations[version - 1]) == -1) {
		snprintf(db->err, sizeof(db->err), "%s: %s", what, db->ops->error(db->conn));
		goto fail;
	}
	if (run(db, what, record_sql, 2, p) == -1)
		return -1;
	return run(db, what, "COMMIT", 0, NULL);
fail:
	db->ops->exec(db->conn, "ROLLBACK", 0, NULL, NULL, NULL, NULL);
	return -1;
}

int crab_schema_migrate(struct crab_db *db, int64_t now_ms)
{
	const int latest = (int)CRAB_ARRAY_LEN(migrations);
	int current;

	if (begin_locked(db) == -1)
		return -1;
	if (run(db, "schema_migrations", create_migrations_sql, 0, NULL) == -1)
		return -1;
	if (run(db, "schema_migrations", "COMMIT", 0, NULL) == -1)
		return -1;
	if (crab_schema_version(db, &current) == -1)
		return -1;
	if (current > latest) {
		snprintf(db->err, sizeof(db->err),
		    "database schema version %d is newer than this build knows (%d)", current,
		    latest);
		return -1;
	}
	for (int v = current + 1; v <= latest; v++) {
		if (apply(db, v, now_ms) == -1)
			return -1;
	}
	return 0;
}
