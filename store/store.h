/* store.h: the gateway's durable store. One interface, two backends with the same schema
 * and migrations: SQLite (default; WAL, synchronous=NORMAL with the WAL's fdatasync apart
 * from the commit, crab_store_sync) and PostgreSQL (libpq, synchronous_commit=on). Every query is parameterised; tenant-scoped tables carry
 * tenant_id and every tenant-scoped query names it.
 *
 * Threading: a crab_store is used by one thread at a time (the gateway's store worker,
 * core/storeq.c). Calls block on disk or on the database server; never call them on an
 * event loop thread.
 *
 * Errors: functions return 0 on success and -1 on failure unless they say otherwise;
 * on failure crab_store_error() holds one line for the log. Times are integer
 * milliseconds since the epoch, UTC. Output strings are copied into caller buffers of
 * the sizes below; ids fit CRAB_STORE_ID_MAX, names and keys fit CRAB_STORE_NAME_MAX. */
#ifndef CRAB_STORE_H
#define CRAB_STORE_H

#include <stddef.h>
#include <stdint.h>

#define CRAB_STORE_ID_MAX 64
#define CRAB_STORE_NAME_MAX 1024

struct crab_store;

struct crab_store_options {
	const char *driver;      /* "sqlite" or "postgres" */
	const char *sqlite_path; /* file path, for sqlite */
	const char *pg_dsn;      /* libpq connection string, for postgres (a secret: never logged) */
};

/* Opens the backend and runs pending migrations, each in its own transaction.
 * On failure returns NULL and writes one line into err. */
struct crab_store *crab_store_open(const struct crab_store_options *opts, char *err,
    size_t errlen);
void crab_store_close(struct crab_store *st);
const char *crab_store_error(struct crab_store *st);
const char *crab_store_driver(struct crab_store *st);
int crab_store_schema_version(struct crab_store *st, int *out);

/* Durability settings actually in force, read back from the backend. SQLite:
 * journal_mode "wal", synchronous "normal", acks "after fdatasync of the WAL".
 * PostgreSQL: journal_mode "wal", synchronous "on" (synchronous_commit), fsync "on",
 * acks "after the commit". */
struct crab_store_durability {
	char journal_mode[32];
	char synchronous[32];
	char fsync[32];
	char acks[32];
};
int crab_store_durability(struct crab_store *st, struct crab_store_durability *out);

/* Whether durability comes apart from the commit: 1 when a commit returns before the disk
 * has it and crab_store_sync makes it durable (SQLite), 0 when a commit returns once it is
 * durable (PostgreSQL). */
int crab_store_sync_apart(struct crab_store *st);
/* Makes every transaction committed before the call durable. The one call that may run
 * on another thread than the store's, concurrently with it. -1 with a line in err. */
int crab_store_sync(struct crab_store *st, char *err, size_t errlen);

/* Frees what the backend caches and can rebuild (SQLite's page cache); for an idle
 * store, outside a transaction. */
void crab_store_release_memory(struct crab_store *st);

/* Transactions. Savepoints nest inside a transaction: one per job of a group commit, so
 * one failing job rolls back only its own writes. */
int crab_store_begin(struct crab_store *st);
int crab_store_commit(struct crab_store *st);
int crab_store_rollback(struct crab_store *st);
int crab_store_savepoint(struct crab_store *st);
int crab_store_savepoint_release(struct crab_store *st);
/* Undoes the savepoint's writes and releases it. */
int crab_store_savepoint_rollback(struct crab_store *st);

/* Idempotency keys, per tenant, kept at least the retention period. */
struct crab_store_idem {
	char event_id[CRAB_STORE_ID_MAX];
	char session_id[CRAB_STORE_ID_MAX];
};
/* 1 when inserted, 0 when the key already existed (then *existing holds the first ids). */
int crab_store_idem_claim(struct crab_store *st, const char *tenant_id, const char *key,
    const char *event_id, const char *session_id, int64_t now_ms,
    struct crab_store_idem *existing);
/* Deletes at most limit keys created before cutoff_ms; *deleted gets the count. Bounded
 * so that one call never holds the writer long: call again while *deleted == limit. */
int crab_store_idem_prune(struct crab_store *st, int64_t cutoff_ms, int64_t limit,
    int64_t *deleted);

/* The inbox: every accepted event, stored before it is acknowledged. */
struct crab_store_event {
	const char *id;
	const char *tenant_id;
	const char *agent_id;
	const char *session_id;
	const char *type;
	const char *idempotency_key;
	const char *producer;      /* "lease:lea_..." or "peer:peer_..." */
	const char *envelope_json; /* the canonical envelope as stored */
	const char *target_json;   /* where the answer goes: {"platform","channel_id",
				    * "thread_id"}, or NULL: nowhere */
	int64_t received_at;
};
int crab_store_event_insert(struct crab_store *st, const struct crab_store_event *ev);

/* Sessions and the runtime-key bindings that point at each key's current open session. */
struct crab_store_session {
	char id[CRAB_STORE_ID_MAX];
	char tenant_id[CRAB_STORE_NAME_MAX];
	char agent_id[CRAB_STORE_NAME_MAX];
	char runtime_key[CRAB_STORE_NAME_MAX];
	char memory_key[CRAB_STORE_NAME_MAX];
	char status[16]; /* "open" or "closed" */
	int64_t created_at;
	int64_t updated_at;
};
int crab_store_session_create(struct crab_store *st, const struct crab_store_session *s);
/* 1 found, 0 not found (in that tenant), -1 error. */
int crab_store_session_get(struct crab_store *st, const char *tenant_id, const char *session_id,
    struct crab_store_session *out);

struct crab_store_binding {
	const char *tenant_id;
	const char *runtime_key;
	const char *agent_id;
	const char *platform;
	const char *channel_id;
	const char *actor_id;
	const char *isolation_key; /* NULL when the route sets none */
	const char *session_id;
	int64_t updated_at;
};
/* The current open session of a runtime key: 1 found (id in session_id), 0 none, -1 error. */
int crab_store_binding_current(struct crab_store *st, const char *tenant_id,
    const char *runtime_key, char session_id[CRAB_STORE_ID_MAX]);
/* Inserts or replaces the binding of (tenant_id, runtime_key). */
int crab_store_binding_set(struct crab_store *st, const struct crab_store_binding *b);

/* A session's row as the session manager lists it. Strings are malloc'd (free with
 * crab_store_session_info_free). */
struct crab_store_session_info {
	char *id, *tenant_id, *agent_id, *runtime_key, *memory_key, *status;
	char *last_active_channel; /* JSON or NULL */
	int64_t created_at, updated_at, closed_at, last_seq, turns;
};
void crab_store_session_info_free(struct crab_store_session_info *s);
/* Sessions, newest first; tenant_id and status NULL mean any. cb returning non-zero stops. */
int crab_store_session_list(struct crab_store *st, const char *tenant_id, const char *status,
    int64_t limit, int (*cb)(const struct crab_store_session_info *s, void *arg), void *arg);
/* 1 found, 0 not found. */
int crab_store_session_info(struct crab_store *st, const char *session_id,
    struct crab_store_session_info *out);
/* Closes an open session and drops the bindings that point at it, so the runtime key's
 * next event opens a new one. 1 closed, 0 not open (or not found), -1 error. */
int crab_store_session_close(struct crab_store *st, const char *session_id, int64_t now_ms);
/* Reserves n consecutive seq values of a session's events; *first gets the first. */
int crab_store_session_seq(struct crab_store *st, const char *session_id, int n,
    int64_t *first);

/* Where conversations last were: per session, per (tenant, agent, actor) and per
 * (tenant, agent) (actor_id ""). A channel is {"platform","channel_id","thread_id"}. */
struct crab_store_channel {
	char platform[CRAB_STORE_NAME_MAX];
	char channel_id[CRAB_STORE_NAME_MAX];
	char thread_id[CRAB_STORE_NAME_MAX]; /* "" when none */
};
/* A channel as JSON text (malloc'd): {"channel_id","platform","thread_id"}, thread_id
 * null when NULL or "". The one format of inbox targets and last active channels. */
char *crab_store_channel_json(const char *platform, const char *channel_id,
    const char *thread_id);
/* Records that a message arrived on ch in session_id: all three levels. */
int crab_store_last_active_set(struct crab_store *st, const char *tenant_id,
    const char *agent_id, const char *actor_id, const char *session_id,
    const struct crab_store_channel *ch, int64_t now_ms);
/* The last channel of (tenant, agent, actor), actor "" for anyone of the tenant.
 * 1 found, 0 none, -1 error. */
int crab_store_last_active_get(struct crab_store *st, const char *tenant_id,
    const char *agent_id, const char *actor_id, struct crab_store_channel *out);
/* The last channel of a session of that tenant: 1 found, 0 none, -1 error. */
int crab_store_session_channel(struct crab_store *st, const char *tenant_id,
    const char *session_id, struct crab_store_channel *out);

/* Turns. An accepted event waits in the inbox ('pending') until the transaction that
 * stores its finished turn marks it done. */
struct crab_store_inbox_row {
	char id[CRAB_STORE_ID_MAX];
	char tenant_id[CRAB_STORE_NAME_MAX];
	char agent_id[CRAB_STORE_NAME_MAX];
	char session_id[CRAB_STORE_ID_MAX];
	char type[64];
	char state[16];
	char *envelope; /* malloc'd */
	char *target;   /* malloc'd JSON, or NULL */
	int64_t received_at;
};
void crab_store_inbox_row_free(struct crab_store_inbox_row *r);
/* 1 found, 0 not found, -1 error. */
int crab_store_inbox_get(struct crab_store *st, const char *event_id,
    struct crab_store_inbox_row *out);
/* The first limit pending events in acceptance order: cb(arg, event_id, session_id);
 * non-zero stops. */
int crab_store_inbox_pending(struct crab_store *st, int64_t limit,
    int (*cb)(void *arg, const char *event_id, const char *session_id), void *arg);
int crab_store_inbox_done(struct crab_store *st, const char *event_id);
/* 1 when another event than event_id of the session is pending, 0 when none is. */
int crab_store_inbox_others_pending(struct crab_store *st, const char *session_id,
    const char *event_id);

struct crab_store_turn {
	char id[CRAB_STORE_ID_MAX];
	char tenant_id[CRAB_STORE_NAME_MAX];
	char agent_id[CRAB_STORE_NAME_MAX];
	char session_id[CRAB_STORE_ID_MAX];
	char event_id[CRAB_STORE_ID_MAX];
	char status[16]; /* running, completed, failed */
	char model[CRAB_STORE_NAME_MAX];
	int64_t config_revision;
	int64_t started_at, finished_at;
	/* Payloads, malloc'd or NULL: filled by turn_get, written by turn_finish. */
	char *request, *response, *input, *output, *usage, *error;
};
void crab_store_turn_free_payloads(struct crab_store_turn *t);

/* One tool call of a turn (tool_calls): arguments and result as JSON text, error the
 * result's error object when it failed (else NULL). */
struct crab_store_tool_call {
	const char *id, *tenant_id, *turn_id, *tool, *arguments, *result, *error;
	int64_t started_at, finished_at;
};
int crab_store_tool_call_insert(struct crab_store *st, const struct crab_store_tool_call *c);
/* A turn's tool calls in the order they were made: cb non-zero stops. */
int crab_store_tool_calls(struct crab_store *st, const char *turn_id,
    int (*cb)(const struct crab_store_tool_call *c, void *arg), void *arg);
/* Writes a running turn (no payloads) as its session's last, after the one that was,
 * and reserves one seq of the session for its turn.started: *seq. */
int crab_store_turn_start(struct crab_store *st, const struct crab_store_turn *t,
    int64_t *seq);
/* Stores the finished turn: status, payloads, finished_at. */
int crab_store_turn_finish(struct crab_store *st, const struct crab_store_turn *t);
/* The turn of an event (the latest), or of an id: 1 found, 0 none, -1 error. */
int crab_store_turn_by_event(struct crab_store *st, const char *event_id,
    struct crab_store_turn *out);
int crab_store_turn_get(struct crab_store *st, const char *turn_id, struct crab_store_turn *out);
/* Of the limit turns before turn_id in its session, the completed ones, newest first:
 * cb(arg, input, output); non-zero stops. */
int crab_store_history(struct crab_store *st, const char *turn_id, int64_t limit,
    int (*cb)(void *arg, const char *input, const char *output), void *arg);
/* A session's latest limit turns, oldest first (no payloads except input, output, usage
 * and error). */
int crab_store_turn_list(struct crab_store *st, const char *session_id, int64_t limit,
    int (*cb)(const struct crab_store_turn *t, void *arg), void *arg);

/* The outbox: published events, written in the transaction of what they report. */
struct crab_store_outbox {
	const char *id;
	const char *tenant_id;  /* NULL for gateway-wide events */
	const char *session_id; /* NULL for gateway-wide events */
	int64_t seq;
	const char *type;
	const char *idempotency_key;
	const char *payload; /* the whole event frame, PROTOCOLS.md §3 */
	int64_t created_at;
};
/* *pos (may be NULL) gets the row's outbox position. */
int crab_store_outbox_insert(struct crab_store *st, const struct crab_store_outbox *o,
    int64_t *pos);

/* Delivery to subscribers (PROTOCOLS.md §4). Every outbox row has a position that only
 * grows. A subscriber reads the outbox from its cursor: the rows after position after,
 * in order, at most limit, their payloads only when asked (NULL otherwise); cb(o, pos,
 * arg) non-zero stops. */
int crab_store_outbox_after(struct crab_store *st, int64_t after, int64_t limit,
    int with_payload, int (*cb)(const struct crab_store_outbox *o, int64_t pos, void *arg),
    void *arg);
/* The last position written (0 for an empty outbox). */
int crab_store_outbox_last(struct crab_store *st, int64_t *pos);
/* A subscriber's cursor: the last position it has taken. 1 found, 0 none, -1 error. */
int crab_store_cursor_get(struct crab_store *st, const char *subscriber, int64_t *pos);
int crab_store_cursor_set(struct crab_store *st, const char *subscriber, int64_t pos);

struct crab_store_delivery {
	const char *id;          /* dlv_... */
	const char *event_id;    /* the outbox row */
	const char *subscriber;  /* its peer id */
	const char *session_key; /* the session, "" for the gateway-wide stream, or a replay's
				  * own key (replays wait for nothing) */
	int64_t seq;
	int replayed;
	int64_t created_at;
};
int crab_store_delivery_insert(struct crab_store *st, const struct crab_store_delivery *d);

/* A delivery that may go now, with its event. Strings are borrowed for the callback. */
struct crab_store_delivery_due {
	const char *id, *event_id, *session_key, *idempotency_key, *payload;
	int64_t attempts, seq;
	int replayed;
};
/* For each session of a subscriber, its first pending delivery (lowest seq), if due at
 * now_ms: at most limit, the longest due first; *next_ms gets the earliest next attempt
 * of any such delivery not due yet (0 when none). */
int crab_store_delivery_heads(struct crab_store *st, const char *subscriber, int64_t now_ms,
    int64_t limit, int (*cb)(const struct crab_store_delivery_due *d, void *arg), void *arg,
    int64_t *next_ms);
/* Delivered: the row goes. */
int crab_store_delivery_done(struct crab_store *st, const char *delivery_id);
/* Failed again: attempts and the next try. */
int crab_store_delivery_retry(struct crab_store *st, const char *delivery_id, int64_t attempts,
    int64_t next_at, const char *last_error);
/* Given up: the row is dead (its session goes on) and a dead letter names it. */
int crab_store_delivery_dead(struct crab_store *st, const char *delivery_id,
    const char *dead_letter_id, int64_t attempts, const char *last_error, int64_t now_ms);
/* How many deliveries of a subscriber are pending (lag, for status). */
int crab_store_delivery_pending(struct crab_store *st, const char *subscriber, int64_t *n);
/* Whether a subscriber has any pending delivery: *any 1 or 0 (cheap however many). */
int crab_store_delivery_any(struct crab_store *st, const char *subscriber, int64_t *any);

/* Dead letters, newest first, of one subscriber or all (NULL). Strings borrowed. */
struct crab_store_dead_letter {
	const char *id, *delivery_id, *event_id, *subscriber, *last_error, *type;
	int64_t attempts, created_at, replayed_at;
};
int crab_store_dlq_list(struct crab_store *st, const char *subscriber, int64_t limit,
    int (*cb)(const struct crab_store_dead_letter *d, void *arg), void *arg);
/* Sends a dead letter again: a new pending delivery, marked replayed, that waits for no
 * other; the dead letter records when. new_delivery_id is the new delivery's id.
 * 1 done, 0 no such dead letter, -1 error. */
int crab_store_dlq_replay(struct crab_store *st, const char *dead_letter_id,
    const char *new_delivery_id, int64_t now_ms);

/* Config revisions: records yaml as a new revision unless it equals the latest one;
 * *revision gets the revision in force. */
int crab_store_config_revision(struct crab_store *st, const char *yaml, const char *actor,
    const char *diff_summary, int64_t now_ms, int64_t *revision);
/* The latest revision (0 when none) and, when yaml is not NULL, its YAML (malloc'd, NULL
 * when none). */
int crab_store_config_latest(struct crab_store *st, int64_t *revision, char **yaml);
/* The YAML of one revision (malloc'd): 1 found, 0 no such revision, -1 error. */
int crab_store_config_get(struct crab_store *st, int64_t revision, char **yaml);
/* Records a new revision, the latest + 1, whatever its YAML: *revision gets it. */
int crab_store_config_insert(struct crab_store *st, const char *actor, const char *yaml,
    const char *diff_summary, int64_t now_ms, int64_t *revision);
/* Revisions newest first, at most limit, without their YAML; strings borrowed for the
 * callback, which stops the walk by returning non-zero. */
struct crab_store_config_rev {
	int64_t revision, applied_at;
	const char *actor, *diff_summary;
};
int crab_store_config_list(struct crab_store *st, int64_t limit,
    int (*cb)(const struct crab_store_config_rev *r, void *arg), void *arg);

/* Leases: bearer tokens stored only as SHA-256 hex hashes. */
struct crab_store_lease {
	char id[CRAB_STORE_ID_MAX];
	char token_hash[65];
	char tenant_id[CRAB_STORE_NAME_MAX];
	char agent_id[CRAB_STORE_NAME_MAX];   /* "" when unset */
	char session_id[CRAB_STORE_ID_MAX];   /* "" when unset, "new" until the first event */
	char scopes[64];                      /* "produce", "subscribe" or "produce,subscribe" */
	int connection_bound;
	int64_t created_at;
	int64_t expires_at;
};
int crab_store_lease_insert(struct crab_store *st, const struct crab_store_lease *l);
/* 1 revoked, 0 no such live lease, -1 error. */
int crab_store_lease_revoke(struct crab_store *st, const char *lease_id, int64_t now_ms);
/* Sets the session of a lease created for a new session, at its first event. */
int crab_store_lease_bind_session(struct crab_store *st, const char *lease_id,
    const char *session_id);
/* The session a lease is bound to: "" unbound, "new" waiting for its first event, else
 * the session id. 1 found, 0 no such lease, -1 error. */
int crab_store_lease_session(struct crab_store *st, const char *lease_id,
    char session_id[CRAB_STORE_ID_MAX]);
/* Revokes every live connection-bound lease: at start, no connection is left to hold
 * one. *n (may be NULL) gets how many. */
int crab_store_lease_revoke_bound(struct crab_store *st, int64_t now_ms, int64_t *n);
/* Calls cb for every lease neither revoked nor expired at now_ms; cb returning
 * non-zero stops the walk. */
int crab_store_lease_foreach_live(struct crab_store *st, int64_t now_ms,
    int (*cb)(const struct crab_store_lease *l, void *arg), void *arg);

/* Peers (PEER_AUTH_MODEL.md): one row per role paired, so a component holding several
 * roles has several rows under one fingerprint. Strings are malloc'd (free with
 * crab_store_peer_free). */
struct crab_store_peer {
	char *id, *component_type, *component_id, *endpoint, *fingerprint;
	char *offers; /* JSON text: what the component offered at pairing */
	char *grants; /* JSON text {"tenants":[...]}, or NULL: every tenant */
	int64_t paired_at;
	int64_t revoked_at; /* 0 while live */
};
void crab_store_peer_free(struct crab_store_peer *p);
/* Stores a pairing. A live row of the same component type and id is revoked by it (pairing
 * again replaces the pin): its id into replaced, "" when there was none. */
int crab_store_peer_insert(struct crab_store *st, const struct crab_store_peer *p,
    char replaced[CRAB_STORE_ID_MAX]);
/* 1 revoked, 0 no such live peer, -1 error. */
int crab_store_peer_revoke(struct crab_store *st, const char *peer_id, int64_t now_ms);
/* Replaces a live peer's grants (NULL: every tenant): 1 done, 0 no such live peer. */
int crab_store_peer_set_grants(struct crab_store *st, const char *peer_id, const char *grants);
/* Peers in pairing order, the revoked ones too when asked; cb non-zero stops. */
int crab_store_peer_list(struct crab_store *st, int with_revoked,
    int (*cb)(const struct crab_store_peer *p, void *arg), void *arg);
/* The next seq of the gateway-wide event stream (events of no session). */
int crab_store_stream_seq(struct crab_store *st, int64_t *seq);

/* Modules' key-value areas: values are text (no NUL bytes). kv_get: 1 found (*value
 * malloc'd, the caller frees), 0 not found, -1 error. kv_put with value NULL deletes. */
int crab_store_kv_get(struct crab_store *st, const char *module, const char *key, char **value,
    size_t *len);
int crab_store_kv_put(struct crab_store *st, const char *module, const char *key,
    const char *value, size_t len, int64_t now_ms);

/* Subscription logins (core/auth.h): one row per provider. sealed is opaque text (the
 * tokens under the data directory's key); state "active", "revoked" or "logged_out";
 * reason NULL or a short word of why (an OAuth error code). put inserts or replaces. */
struct crab_store_auth {
	const char *provider;
	const char *sealed;
	const char *state;
	const char *reason;
	int64_t updated_at;
};
int crab_store_auth_put(struct crab_store *st, const struct crab_store_auth *a);
/* Every row, by provider; the strings are borrowed until cb returns, non-zero stops. */
int crab_store_auth_list(struct crab_store *st,
    int (*cb)(const struct crab_store_auth *a, void *arg), void *arg);

/* Row counts for status and tests: table is one of the schema's table names. */
int crab_store_count(struct crab_store *st, const char *table, int64_t *out);

#endif
