/* store_turns.c: the inbox's pending events, turns with their payloads, history and the
 * outbox (store.h, "Turns"). */
#include "store/store.h"

#include "store/store_int.h"

void crab_store_inbox_row_free(struct crab_store_inbox_row *r)
{
	free(r->envelope);
	free(r->target);
	r->envelope = r->target = NULL;
}

struct inbox_row {
	struct crab_store_inbox_row *out;
	int found, bad;
};

static int inbox_row(void *ud, int ncol, const char *const *v)
{
	struct inbox_row *r = ud;
	struct crab_store_inbox_row *o = r->out;

	(void)ncol;
	r->found = 1;
	if (copy_col(o->id, sizeof(o->id), v[0]) == -1 ||
	    copy_col(o->tenant_id, sizeof(o->tenant_id), v[1]) == -1 ||
	    copy_col(o->agent_id, sizeof(o->agent_id), v[2]) == -1 ||
	    copy_col(o->session_id, sizeof(o->session_id), v[3]) == -1 ||
	    copy_col(o->type, sizeof(o->type), v[4]) == -1 ||
	    copy_col(o->state, sizeof(o->state), v[5]) == -1 || int_col(&o->received_at, v[8]) == -1)
		r->bad = 1;
	o->envelope = dup_col(v[6]);
	o->target = dup_col(v[7]);
	return 1;
}

int crab_store_inbox_get(struct crab_store *st, const char *event_id,
    struct crab_store_inbox_row *out)
{
	static const char sql[] =
		"SELECT id, tenant_id, agent_id, session_id, type, state, envelope, target,"
		" received_at FROM inbox WHERE id = $1";
	const struct crab_db_param p[] = {CRAB_DB_T(event_id)};
	struct inbox_row r = {out, 0, 0};

	memset(out, 0, sizeof(*out));
	if (exec(st, "inbox_get", sql, 1, p, inbox_row, &r, NULL) == -1)
		return -1;
	if (r.bad) {
		crab_store_inbox_row_free(out);
		return fail_msg(st, "inbox_get", "stored value does not fit its field");
	}
	return r.found;
}

struct pending_walk {
	int (*cb)(void *arg, const char *event_id, const char *session_id);
	void *arg;
};

static int pending_row(void *ud, int ncol, const char *const *v)
{
	struct pending_walk *w = ud;

	(void)ncol;
	return w->cb(w->arg, v[0] ? v[0] : "", v[1] ? v[1] : "");
}

int crab_store_inbox_pending(struct crab_store *st, int64_t limit,
    int (*cb)(void *arg, const char *event_id, const char *session_id), void *arg)
{
	/* The partial index inbox_pending holds exactly these rows, in id order. */
	static const char sql[] =
		"SELECT id, session_id FROM inbox WHERE state = 'pending' ORDER BY id LIMIT $1";
	const struct crab_db_param p[] = {CRAB_DB_I(limit)};
	struct pending_walk w = {cb, arg};

	return exec(st, "inbox_pending", sql, 1, p, pending_row, &w, NULL);
}

int crab_store_inbox_others_pending(struct crab_store *st, const char *session_id,
    const char *event_id)
{
	static const char sql[] =
		"SELECT 1 FROM inbox WHERE session_id = $1 AND state = 'pending' AND id <> $2"
		" LIMIT 1";
	const struct crab_db_param p[] = {CRAB_DB_T(session_id), CRAB_DB_T(event_id)};
	int64_t found = 0;

	if (exec(st, "inbox_others_pending", sql, 2, p, crab_db_row_int, &found, NULL) == -1)
		return -1;
	return found == 1;
}

int crab_store_inbox_done(struct crab_store *st, const char *event_id)
{
	static const char sql[] = "UPDATE inbox SET state = 'done' WHERE id = $1";
	const struct crab_db_param p[] = {CRAB_DB_T(event_id)};

	return exec(st, "inbox_done", sql, 1, p, NULL, NULL, NULL);
}

void crab_store_turn_free_payloads(struct crab_store_turn *t)
{
	free(t->request);
	free(t->response);
	free(t->input);
	free(t->output);
	free(t->usage);
	free(t->error);
	t->request = t->response = t->input = t->output = t->usage = t->error = NULL;
}

int crab_store_turn_start(struct crab_store *st, const struct crab_store_turn *t,
    int64_t *seq)
{
	/* The turn names the session's last turn before it; then it is the last. */
	static const char insert_sql[] =
		"INSERT INTO turns (id, tenant_id, agent_id, session_id, event_id, status, model,"
		" config_revision, started_at, prev_turn_id) VALUES ($1, $2, $3, $4, $5, 'running',"
		" $6, $7, $8, (SELECT last_turn_id FROM sessions WHERE id = $4))";
	static const char session_sql[] =
		"UPDATE sessions SET last_seq = last_seq + 1, last_turn_id = $2,"
		" turn_count = turn_count + 1 WHERE id = $1 RETURNING last_seq";
	const struct crab_db_param p[] = {CRAB_DB_T(t->id), CRAB_DB_T(t->tenant_id),
		CRAB_DB_T(t->agent_id), CRAB_DB_T(t->session_id), CRAB_DB_T(t->event_id),
		CRAB_DB_T(t->model), CRAB_DB_I(t->config_revision), CRAB_DB_I(t->started_at)};
	const struct crab_db_param sp[] = {CRAB_DB_T(t->session_id), CRAB_DB_T(t->id)};

	*seq = -1;
	if (exec(st, "turn_start", insert_sql, 8, p, NULL, NULL, NULL) == -1 ||
	    exec(st, "turn_start", session_sql, 2, sp, crab_db_row_int, seq, NULL) == -1)
		return -1;
	return *seq > 0 ? 0 : fail_msg(st, "turn_start", "no such session");
}

int crab_store_turn_finish(struct crab_store *st, const struct crab_store_turn *t)
{
	static const char sql[] =
		"UPDATE turns SET status = $2, request = $3, response = $4, input = $5,"
		" output = $6, usage = $7, error = $8, finished_at = $9, model = $10"
		" WHERE id = $1";
	const struct crab_db_param p[] = {CRAB_DB_T(t->id), CRAB_DB_T(t->status),
		CRAB_DB_T(t->request), CRAB_DB_T(t->response), CRAB_DB_T(t->input),
		CRAB_DB_T(t->output), CRAB_DB_T(t->usage), CRAB_DB_T(t->error),
		CRAB_DB_I(t->finished_at), CRAB_DB_T(t->model)};
	int64_t changes = 0;

	if (exec(st, "turn_finish", sql, 10, p, NULL, NULL, &changes) == -1)
		return -1;
	return changes == 1 ? 0 : fail_msg(st, "turn_finish", "no such turn");
}

#define TURN_COLS \
	"id, tenant_id, agent_id, session_id, event_id, status, model, config_revision," \
	" started_at, finished_at, request, response, input, output, usage, error"

struct turn_row {
	struct crab_store_turn *out;
	int found, bad;
};

static int turn_fill(struct crab_store_turn *t, const char *const *v)
{
	int bad = copy_col(t->id, sizeof(t->id), v[0]) == -1 ||
	    copy_col(t->tenant_id, sizeof(t->tenant_id), v[1]) == -1 ||
	    copy_col(t->agent_id, sizeof(t->agent_id), v[2]) == -1 ||
	    copy_col(t->session_id, sizeof(t->session_id), v[3]) == -1 ||
	    copy_col(t->event_id, sizeof(t->event_id), v[4]) == -1 ||
	    copy_col(t->status, sizeof(t->status), v[5]) == -1 ||
	    copy_col(t->model, sizeof(t->model), v[6]) == -1 ||
	    int_col(&t->config_revision, v[7]) == -1 || int_col(&t->started_at, v[8]) == -1 ||
	    int_col(&t->finished_at, v[9]) == -1;

	t->request = dup_col(v[10]);
	t->response = dup_col(v[11]);
	t->input = dup_col(v[12]);
	t->output = dup_col(v[13]);
	t->usage = dup_col(v[14]);
	t->error = dup_col(v[15]);
	return bad ? -1 : 0;
}

static int turn_row(void *ud, int ncol, const char *const *v)
{
	struct turn_row *r = ud;

	(void)ncol;
	r->found = 1;
	crab_store_turn_free_payloads(r->out);
	r->bad = turn_fill(r->out, v) == -1;
	return 1;
}

static int turn_query(struct crab_store *st, const char *what, const char *sql, const char *key,
    struct crab_store_turn *out)
{
	const struct crab_db_param p[] = {CRAB_DB_T(key)};
	struct turn_row r = {out, 0, 0};

	memset(out, 0, sizeof(*out));
	if (exec(st, what, sql, 1, p, turn_row, &r, NULL) == -1)
		return -1;
	if (r.bad) {
		crab_store_turn_free_payloads(out);
		return fail_msg(st, what, "stored value does not fit its field");
	}
	return r.found;
}

int crab_store_turn_by_event(struct crab_store *st, const char *event_id,
    struct crab_store_turn *out)
{
	static const char sql[] =
		"SELECT " TURN_COLS " FROM turns WHERE event_id = $1 ORDER BY id DESC LIMIT 1";
	return turn_query(st, "turn_by_event", sql, event_id, out);
}

int crab_store_turn_get(struct crab_store *st, const char *turn_id, struct crab_store_turn *out)
{
	static const char sql[] = "SELECT " TURN_COLS " FROM turns WHERE id = $1";
	return turn_query(st, "turn_get", sql, turn_id, out);
}

struct history_walk {
	int (*cb)(void *arg, const char *input, const char *output);
	void *arg;
};

static int history_row(void *ud, int ncol, const char *const *v)
{
	struct history_walk *w = ud;

	(void)ncol;
	return w->cb(w->arg, v[0] ? v[0] : "", v[1] ? v[1] : "");
}

/* A session's turns walked backwards along their chain (prev_turn_id), by primary key:
 * chain(id, n) holds the n-th turn back, at most $2 of them. */
#define CHAIN_BACK(start) \
	"WITH RECURSIVE chain (id, n) AS (" start \
	" UNION ALL SELECT t.prev_turn_id, c.n + 1 FROM chain c JOIN turns t ON t.id = c.id" \
	" WHERE c.n < $2) "

/* One step of a walk: a turn's predecessor, and its history when completed. */
struct history_step {
	char prev[CRAB_STORE_ID_MAX];
	struct history_walk *w;
	int stop;
};

static int history_step_row(void *ud, int ncol, const char *const *v)
{
	struct history_step *h = ud;

	(void)ncol;
	if (copy_col(h->prev, sizeof(h->prev), v[0]) == -1)
		h->prev[0] = '\0'; /* not an id this code wrote: the walk ends */
	if (h->w != NULL && v[1] != NULL && strcmp(v[1], "completed") == 0)
		h->stop = h->w->cb(h->w->arg, v[2] ? v[2] : "", v[3] ? v[3] : "");
	return 1;
}

/* In SQLite each step is a cached statement run in this thread: cheaper than the
 * recursive query's work tables and sort. */
static int history_by_steps(struct crab_store *st, const char *turn_id, int64_t limit,
    struct history_walk *w)
{
	static const char sql[] =
		"SELECT prev_turn_id, status, input, output FROM turns WHERE id = $1";
	struct history_step h = {.w = NULL};
	char id[CRAB_STORE_ID_MAX];

	crab_strlcpy(id, turn_id, sizeof(id));
	for (int64_t n = 0; n <= limit && id[0] != '\0' && !h.stop; n++) {
		const struct crab_db_param p[] = {CRAB_DB_T(id)};
		h.prev[0] = '\0';
		h.w = n > 0 ? w : NULL; /* the turn itself is not its own history */
		if (exec(st, "history", sql, 1, p, history_step_row, &h, NULL) == -1)
			return -1;
		crab_strlcpy(id, h.prev, sizeof(id));
	}
	return 0;
}

int crab_store_history(struct crab_store *st, const char *turn_id, int64_t limit,
    int (*cb)(void *arg, const char *input, const char *output), void *arg)
{
	static const char sql[] =
		CHAIN_BACK("SELECT prev_turn_id, 1 FROM turns WHERE id = $1")
		"SELECT t.input, t.output FROM chain c JOIN turns t ON t.id = c.id"
		" WHERE t.status = 'completed' ORDER BY c.n";
	const struct crab_db_param p[] = {CRAB_DB_T(turn_id), CRAB_DB_I(limit)};
	struct history_walk w = {cb, arg};

	if (st->db.ops->embedded)
		return history_by_steps(st, turn_id, limit, &w);
	return exec(st, "history", sql, 2, p, history_row, &w, NULL);
}

struct turn_walk {
	int (*cb)(const struct crab_store_turn *t, void *arg);
	void *arg;
	int bad;
};

static int turn_list_row(void *ud, int ncol, const char *const *v)
{
	struct turn_walk *w = ud;
	struct crab_store_turn t = {0};
	int stop;

	(void)ncol;
	if (turn_fill(&t, v) == -1) {
		crab_store_turn_free_payloads(&t);
		w->bad = 1;
		return 1;
	}
	stop = w->cb(&t, w->arg);
	crab_store_turn_free_payloads(&t);
	return stop;
}

int crab_store_turn_list(struct crab_store *st, const char *session_id, int64_t limit,
    int (*cb)(const struct crab_store_turn *t, void *arg), void *arg)
{
	static const char sql[] =
		CHAIN_BACK("SELECT last_turn_id, 1 FROM sessions WHERE id = $1")
		"SELECT t.id, t.tenant_id, t.agent_id, t.session_id, t.event_id, t.status, t.model,"
		" t.config_revision, t.started_at, t.finished_at, NULL, NULL, t.input, t.output,"
		" t.usage, t.error FROM chain c JOIN turns t ON t.id = c.id ORDER BY c.n DESC";
	const struct crab_db_param p[] = {CRAB_DB_T(session_id), CRAB_DB_I(limit)};
	struct turn_walk w = {cb, arg, 0};

	if (exec(st, "turn_list", sql, 2, p, turn_list_row, &w, NULL) == -1)
		return -1;
	return w.bad ? fail_msg(st, "turn_list", "stored value does not fit its field") : 0;
}

int crab_store_outbox_insert(struct crab_store *st, const struct crab_store_outbox *o,
    int64_t *pos)
{
	static const char sql[] =
		"INSERT INTO event_outbox (id, tenant_id, session_id, seq, type, idempotency_key,"
		" payload, created_at, pos) VALUES ($1, $2, $3, $4, $5, $6, $7, $8,"
		" (SELECT COALESCE(MAX(pos), 0) + 1 FROM event_outbox)) RETURNING pos";
	const struct crab_db_param p[] = {CRAB_DB_T(o->id), CRAB_DB_T(o->tenant_id),
		CRAB_DB_T(o->session_id), CRAB_DB_I(o->seq), CRAB_DB_T(o->type),
		CRAB_DB_T(o->idempotency_key), CRAB_DB_T(o->payload), CRAB_DB_I(o->created_at)};
	int64_t at = 0;

	if (exec(st, "outbox_insert", sql, 8, p, crab_db_row_int, &at, NULL) == -1)
		return -1;
	if (pos != NULL)
		*pos = at;
	return 0;
}

int crab_store_tool_call_insert(struct crab_store *st, const struct crab_store_tool_call *c)
{
	static const char sql[] =
		"INSERT INTO tool_calls (id, tenant_id, turn_id, tool, arguments, result, error,"
		" started_at, finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
		" ON CONFLICT (id) DO NOTHING";
	const struct crab_db_param p[] = {CRAB_DB_T(c->id), CRAB_DB_T(c->tenant_id),
		CRAB_DB_T(c->turn_id), CRAB_DB_T(c->tool), CRAB_DB_T(c->arguments),
		CRAB_DB_T(c->result), CRAB_DB_T(c->error), CRAB_DB_I(c->started_at),
		CRAB_DB_I(c->finished_at)};

	return exec(st, "tool_call_insert", sql, 9, p, NULL, NULL, NULL);
}

struct tool_call_walk {
	int (*cb)(const struct crab_store_tool_call *c, void *arg);
	void *arg;
};

static int tool_call_row(void *ud, int ncol, const char *const *v)
{
	struct tool_call_walk *w = ud;
	struct crab_store_tool_call c = {.id = v[0], .tenant_id = v[1], .turn_id = v[2],
		.tool = v[3], .arguments = v[4], .result = v[5], .error = v[6]};

	(void)ncol;
	int_col(&c.started_at, v[7]);
	int_col(&c.finished_at, v[8]);
	return w->cb(&c, w->arg);
}

int crab_store_tool_calls(struct crab_store *st, const char *turn_id,
    int (*cb)(const struct crab_store_tool_call *c, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT id, tenant_id, turn_id, tool, arguments, result, error, started_at,"
		" finished_at FROM tool_calls WHERE turn_id = $1 ORDER BY started_at, LENGTH(id), id";
	const struct crab_db_param p[] = {CRAB_DB_T(turn_id)};
	struct tool_call_walk w = {cb, arg};

	return exec(st, "tool_calls", sql, 1, p, tool_call_row, &w, NULL);
}
