/* store_deliveries.c: delivery to subscribers: outbox cursors, pending deliveries in
 * session order, and dead letters (store.h, PROTOCOLS.md §4). */
#include "store/store.h"

#include "store/store_int.h"

struct outbox_walk {
	int (*cb)(const struct crab_store_outbox *o, int64_t pos, void *arg);
	void *arg;
};

static int outbox_row(void *ud, int ncol, const char *const *v)
{
	struct outbox_walk *w = ud;
	struct crab_store_outbox o = {
		.id = v[0], .tenant_id = v[1], .session_id = v[2], .type = v[4],
		.idempotency_key = v[5], .payload = v[6],
	};
	int64_t pos;

	(void)ncol;
	int_col(&o.seq, v[3]);
	int_col(&o.created_at, v[7]);
	int_col(&pos, v[8]);
	return w->cb(&o, pos, w->arg);
}

int crab_store_outbox_after(struct crab_store *st, int64_t after, int64_t limit,
    int with_payload, int (*cb)(const struct crab_store_outbox *o, int64_t pos, void *arg),
    void *arg)
{
	static const char sql[] =
		"SELECT id, tenant_id, session_id, seq, type, idempotency_key, payload,"
		" created_at, pos FROM event_outbox WHERE pos > $1 ORDER BY pos LIMIT $2";
	static const char sql_no_payload[] =
		"SELECT id, tenant_id, session_id, seq, type, idempotency_key, NULL,"
		" created_at, pos FROM event_outbox WHERE pos > $1 ORDER BY pos LIMIT $2";
	const struct crab_db_param p[] = {CRAB_DB_I(after), CRAB_DB_I(limit)};
	struct outbox_walk w = {cb, arg};

	return exec(st, "outbox_after", with_payload ? sql : sql_no_payload, 2, p, outbox_row,
	    &w, NULL);
}

int crab_store_outbox_last(struct crab_store *st, int64_t *pos)
{
	static const char sql[] = "SELECT COALESCE(MAX(pos), 0) FROM event_outbox";

	*pos = 0;
	return exec(st, "outbox_last", sql, 0, NULL, crab_db_row_int, pos, NULL);
}

struct int_row {
	int64_t v;
	int found;
};

static int int_row(void *ud, int ncol, const char *const *v)
{
	struct int_row *r = ud;

	(void)ncol;
	r->found = 1;
	int_col(&r->v, v[0]);
	return 1;
}

int crab_store_cursor_get(struct crab_store *st, const char *subscriber, int64_t *pos)
{
	static const char sql[] = "SELECT pos FROM subscriber_cursors WHERE subscriber = $1";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber)};
	struct int_row r = {0, 0};

	if (exec(st, "cursor_get", sql, 1, p, int_row, &r, NULL) == -1)
		return -1;
	*pos = r.v;
	return r.found;
}

int crab_store_cursor_set(struct crab_store *st, const char *subscriber, int64_t pos)
{
	static const char sql[] =
		"INSERT INTO subscriber_cursors (subscriber, pos) VALUES ($1, $2)"
		" ON CONFLICT (subscriber) DO UPDATE SET pos = excluded.pos";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber), CRAB_DB_I(pos)};

	return exec(st, "cursor_set", sql, 2, p, NULL, NULL, NULL);
}

/* The head of a subscriber's session (migration 8) is its pending delivery with the
 * lowest seq. Rows come in seq order, so a new row is head only when its session has
 * none pending; one with a lower seq than the head would take over all the same. */
int crab_store_delivery_insert(struct crab_store *st, const struct crab_store_delivery *d)
{
	static const char sql[] =
		"INSERT INTO deliveries (id, event_id, subscriber, attempts, next_at, state,"
		" session_key, seq, replayed, created_at, head)"
		" VALUES ($1, $2, $3, 0, $4, 'pending', $5, $6, $7, $4, CASE WHEN EXISTS"
		" (SELECT 1 FROM deliveries WHERE subscriber = $3 AND session_key = $5"
		" AND state = 'pending' AND seq <= $6) THEN 0 ELSE 1 END) RETURNING head";
	static const char demote_sql[] =
		"UPDATE deliveries SET head = 0 WHERE subscriber = $1 AND session_key = $2"
		" AND state = 'pending' AND seq > $3 AND head = 1";
	const struct crab_db_param p[] = {CRAB_DB_T(d->id), CRAB_DB_T(d->event_id),
		CRAB_DB_T(d->subscriber), CRAB_DB_I(d->created_at), CRAB_DB_T(d->session_key),
		CRAB_DB_I(d->seq), CRAB_DB_I(d->replayed != 0)};
	const struct crab_db_param dp[] = {CRAB_DB_T(d->subscriber), CRAB_DB_T(d->session_key),
		CRAB_DB_I(d->seq)};

	int64_t head = 0;

	if (exec(st, "delivery_insert", sql, 7, p, crab_db_row_int, &head, NULL) == -1)
		return -1;
	return head ? exec(st, "delivery_insert", demote_sql, 3, dp, NULL, NULL, NULL) : 0;
}

/* After a head has gone (delivered or dead): its session's next pending row is head. */
static int promote_next(struct crab_store *st, const char *subscriber, const char *session_key)
{
	static const char sql[] =
		"UPDATE deliveries SET head = 1 WHERE id = (SELECT id FROM deliveries"
		" WHERE subscriber = $1 AND session_key = $2 AND state = 'pending'"
		" ORDER BY seq LIMIT 1)";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber), CRAB_DB_T(session_key)};

	return exec(st, "delivery_promote", sql, 2, p, NULL, NULL, NULL);
}

struct row_session {
	char subscriber[CRAB_STORE_ID_MAX], session_key[CRAB_STORE_NAME_MAX];
	int found;
};

static int row_session(void *ud, int ncol, const char *const *v)
{
	struct row_session *r = ud;

	(void)ncol;
	r->found = copy_col(r->subscriber, sizeof(r->subscriber), v[0]) == 0 &&
	    copy_col(r->session_key, sizeof(r->session_key), v[1]) == 0;
	return 1;
}

struct heads_walk {
	int (*cb)(const struct crab_store_delivery_due *d, void *arg);
	void *arg;
	int64_t taken;
};

static int head_row(void *ud, int ncol, const char *const *v)
{
	struct heads_walk *w = ud;
	struct crab_store_delivery_due d = {
		.id = v[0], .event_id = v[1], .session_key = v[2], .idempotency_key = v[6],
		.payload = v[7],
	};
	int64_t replayed;

	(void)ncol;
	int_col(&d.seq, v[3]);
	int_col(&d.attempts, v[4]);
	int_col(&replayed, v[8]);
	d.replayed = replayed != 0;
	w->taken++;
	return w->cb(&d, w->arg);
}

int crab_store_delivery_heads(struct crab_store *st, const char *subscriber, int64_t now_ms,
    int64_t limit, int (*cb)(const struct crab_store_delivery_due *d, void *arg), void *arg,
    int64_t *next_ms)
{
	/* The heads of the subscriber's sessions that are due, the longest due first so that
	 * no session starves, at most limit: a range of the partial index; only then their
	 * events, payloads and all. */
	static const char sql[] =
		"SELECT d.id, d.event_id, d.session_key, d.seq, d.attempts, d.next_at,"
		" o.idempotency_key, o.payload, d.replayed"
		" FROM (SELECT id, next_at FROM deliveries WHERE subscriber = $1 AND head = 1"
		"  AND next_at <= $2 ORDER BY next_at, id LIMIT $3) x"
		" JOIN deliveries d ON d.id = x.id"
		" JOIN event_outbox o ON o.id = d.event_id"
		" ORDER BY x.next_at, x.id";
	/* With room left: when the next head comes due. */
	static const char next_sql[] =
		"SELECT COALESCE(MIN(next_at), 0) FROM deliveries"
		" WHERE subscriber = $1 AND head = 1 AND next_at > $2";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber), CRAB_DB_I(now_ms),
		CRAB_DB_I(limit)};
	struct heads_walk w = {cb, arg, 0};

	*next_ms = 0;
	if (exec(st, "delivery_heads", sql, 3, p, head_row, &w, NULL) == -1)
		return -1;
	if (w.taken < limit &&
	    exec(st, "delivery_next", next_sql, 2, p, crab_db_row_int, next_ms, NULL) == -1)
		return -1;
	return 0;
}

int crab_store_delivery_done(struct crab_store *st, const char *delivery_id)
{
	static const char sql[] =
		"DELETE FROM deliveries WHERE id = $1 RETURNING subscriber, session_key";
	const struct crab_db_param p[] = {CRAB_DB_T(delivery_id)};
	struct row_session r = {.found = 0};

	if (exec(st, "delivery_done", sql, 1, p, row_session, &r, NULL) == -1)
		return -1;
	return r.found ? promote_next(st, r.subscriber, r.session_key) : 0;
}

int crab_store_delivery_retry(struct crab_store *st, const char *delivery_id, int64_t attempts,
    int64_t next_at, const char *last_error)
{
	static const char sql[] =
		"UPDATE deliveries SET attempts = $2, next_at = $3, last_error = $4"
		" WHERE id = $1 AND state = 'pending'";
	const struct crab_db_param p[] = {CRAB_DB_T(delivery_id), CRAB_DB_I(attempts),
		CRAB_DB_I(next_at), CRAB_DB_T(last_error)};

	return exec(st, "delivery_retry", sql, 4, p, NULL, NULL, NULL);
}

int crab_store_delivery_dead(struct crab_store *st, const char *delivery_id,
    const char *dead_letter_id, int64_t attempts, const char *last_error, int64_t now_ms)
{
	static const char dead_sql[] =
		"UPDATE deliveries SET state = 'dead', head = 0, attempts = $2, last_error = $3"
		" WHERE id = $1 AND state = 'pending' RETURNING subscriber, session_key";
	static const char letter_sql[] =
		"INSERT INTO dead_letters (id, delivery_id, event_id, subscriber, attempts,"
		" last_error, created_at)"
		" SELECT $1, id, event_id, subscriber, attempts, last_error, $3"
		" FROM deliveries WHERE id = $2";
	const struct crab_db_param dp[] = {CRAB_DB_T(delivery_id), CRAB_DB_I(attempts),
		CRAB_DB_T(last_error)};
	const struct crab_db_param lp[] = {CRAB_DB_T(dead_letter_id), CRAB_DB_T(delivery_id),
		CRAB_DB_I(now_ms)};

	struct row_session r = {.found = 0};

	if (exec(st, "delivery_dead", dead_sql, 3, dp, row_session, &r, NULL) == -1 ||
	    (r.found && promote_next(st, r.subscriber, r.session_key) == -1))
		return -1;
	return exec(st, "dead_letter", letter_sql, 3, lp, NULL, NULL, NULL);
}

int crab_store_delivery_pending(struct crab_store *st, const char *subscriber, int64_t *n)
{
	static const char sql[] =
		"SELECT COUNT(*) FROM deliveries WHERE subscriber = $1 AND state = 'pending'";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber)};

	*n = 0;
	return exec(st, "delivery_pending", sql, 1, p, crab_db_row_int, n, NULL);
}

int crab_store_delivery_any(struct crab_store *st, const char *subscriber, int64_t *any)
{
	static const char sql[] =
		"SELECT COUNT(*) FROM (SELECT 1 FROM deliveries"
		" WHERE subscriber = $1 AND state = 'pending' LIMIT 1) x";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber)};

	*any = 0;
	return exec(st, "delivery_any", sql, 1, p, crab_db_row_int, any, NULL);
}

struct dlq_walk {
	int (*cb)(const struct crab_store_dead_letter *d, void *arg);
	void *arg;
};

static int dlq_row(void *ud, int ncol, const char *const *v)
{
	struct dlq_walk *w = ud;
	struct crab_store_dead_letter d = {
		.id = v[0], .delivery_id = v[1], .event_id = v[2], .subscriber = v[3],
		.last_error = v[5], .type = v[8],
	};

	(void)ncol;
	int_col(&d.attempts, v[4]);
	int_col(&d.created_at, v[6]);
	int_col(&d.replayed_at, v[7]);
	return w->cb(&d, w->arg);
}

int crab_store_dlq_list(struct crab_store *st, const char *subscriber, int64_t limit,
    int (*cb)(const struct crab_store_dead_letter *d, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT l.id, l.delivery_id, l.event_id, l.subscriber, l.attempts, l.last_error,"
		" l.created_at, l.replayed_at, o.type"
		" FROM dead_letters l LEFT JOIN event_outbox o ON o.id = l.event_id"
		" WHERE $1 IS NULL OR l.subscriber = $1 ORDER BY l.id DESC LIMIT $2";
	const struct crab_db_param p[] = {CRAB_DB_T(subscriber), CRAB_DB_I(limit)};
	struct dlq_walk w = {cb, arg};

	return exec(st, "dlq_list", sql, 2, p, dlq_row, &w, NULL);
}

int crab_store_dlq_replay(struct crab_store *st, const char *dead_letter_id,
    const char *new_delivery_id, int64_t now_ms)
{
	/* The replay's session key is its own: it waits for nothing and holds nothing up. */
	static const char insert_sql[] =
		"INSERT INTO deliveries (id, event_id, subscriber, attempts, next_at, state,"
		" session_key, seq, replayed, created_at, head)"
		" SELECT $2, event_id, subscriber, 0, $3, 'pending', 'replay:' || $2, 0, 1, $3, 1"
		" FROM dead_letters WHERE id = $1";
	static const char mark_sql[] = "UPDATE dead_letters SET replayed_at = $2 WHERE id = $1";
	const struct crab_db_param ip[] = {CRAB_DB_T(dead_letter_id), CRAB_DB_T(new_delivery_id),
		CRAB_DB_I(now_ms)};
	const struct crab_db_param mp[] = {CRAB_DB_T(dead_letter_id), CRAB_DB_I(now_ms)};
	int64_t changes = 0;

	if (exec(st, "dlq_replay", insert_sql, 3, ip, NULL, NULL, &changes) == -1)
		return -1;
	if (changes == 0)
		return 0;
	return exec(st, "dlq_replayed", mark_sql, 2, mp, NULL, NULL, NULL) == -1 ? -1 : 1;
}
