/* admin_sessions.c: admin operations of the session manager and the turns:
 * sessions.list, sessions.show, sessions.close, turns.show, turns.wait, and event.send
 * (an event from the local operator, who may name tenant, agent and actor, and produce
 * internal events; PROTOCOLS.md §1). */
#include "admin_ops.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gateway.h"
#include "lease.h"
#include "log.h"
#include "turns.h"
#include "util.h"

#define LIST_LIMIT_MAX 1000
#define WAIT_DEFAULT_MS 60000
#define WAIT_MAX_MS 3600000

/* One store job of an admin operation: run fills result or sets the error. */
struct admin_job {
	struct crab_store_job job;
	struct admin_call *call;
	char *a, *b;      /* the operation's string arguments */
	int64_t limit;
	json_t *result;   /* on success */
	const char *code; /* on refusal: not_found, ... */
	char message[256];
};

static void admin_job_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct admin_job *j = (struct admin_job *)job;

	if (status != CRAB_JOB_OK)
		crab_admin_reply_error(j->call, "store_unavailable", "the store did not answer");
	else if (j->code != NULL)
		crab_admin_reply_error(j->call, j->code, "%s", j->message);
	else {
		crab_admin_reply_ok(j->call, j->result); /* takes the result */
		j->result = NULL;
	}
	json_decref(j->result);
	free(j->a);
	free(j->b);
	free(j);
}

static void submit(struct admin_call *call, int (*run)(struct crab_store *, struct crab_store_job *),
    const char *a, const char *b, int64_t limit)
{
	struct admin_job *j = xcalloc(1, sizeof(*j));

	j->call = call;
	j->a = a ? xstrdup(a) : NULL;
	j->b = b ? xstrdup(b) : NULL;
	j->limit = limit;
	j->job.run = run;
	j->job.done = admin_job_done;
	crab_storeq_submit(call->gw->storeq, &j->job);
}

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* A JSON text column as JSON (null when absent or broken). */
static json_t *json_col(const char *text)
{
	json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
	return v ? v : json_null();
}

static json_t *session_json(const struct crab_store_session_info *s)
{
	char created[32], updated[32];

	crab_clock_format(s->created_at, created, sizeof(created));
	crab_clock_format(s->updated_at, updated, sizeof(updated));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:I}", "id", s->id,
	    "tenant_id", s->tenant_id, "agent_id", s->agent_id, "runtime_key", s->runtime_key,
	    "memory_key", s->memory_key, "status", s->status, "last_active_channel",
	    json_col(s->last_active_channel), "created_at", created, "updated_at", updated,
	    "last_seq", (json_int_t)s->last_seq, "turns", (json_int_t)s->turns);
}

static json_t *turn_json(const struct crab_store_turn *t, int payloads)
{
	char started[32], finished[32] = "";
	json_t *o;

	crab_clock_format(t->started_at, started, sizeof(started));
	if (t->finished_at > 0)
		crab_clock_format(t->finished_at, finished, sizeof(finished));
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s?, s:o, s:o, s:o, s:o}", "id", t->id,
	    "session_id", t->session_id, "event_id", t->event_id, "status", t->status, "model",
	    t->model, "config_revision", (json_int_t)t->config_revision, "started_at", started,
	    "finished_at", finished[0] ? finished : NULL, "input", json_col(t->input), "output",
	    json_col(t->output), "usage", json_col(t->usage), "error", json_col(t->error));
	if (payloads) {
		json_object_set_new(o, "request", json_col(t->request));
		json_object_set_new(o, "response", json_col(t->response));
	}
	return o;
}

/* ---- sessions.list {tenant_id?, status?, limit?} ---- */

static int list_row(const struct crab_store_session_info *s, void *arg)
{
	json_array_append_new(arg, session_json(s));
	return 0;
}

static int list_run(struct crab_store *st, struct crab_store_job *job)
{
	struct admin_job *j = (struct admin_job *)job;

	json_decref(j->result);
	j->result = json_pack("{s:[]}", "sessions");
	return crab_store_session_list(st, j->a, j->b, j->limit, list_row,
	    json_object_get(j->result, "sessions"));
}

static int parse_limit(struct admin_call *call, json_t *args, int64_t *limit)
{
	json_t *l = json_object_get(args, "limit");

	*limit = 100;
	if (l == NULL)
		return 0;
	if (!json_is_integer(l) || json_integer_value(l) < 1 ||
	    json_integer_value(l) > LIST_LIMIT_MAX) {
		crab_admin_reply_error(call, "invalid_args", "limit must be 1 to %d", LIST_LIMIT_MAX);
		return -1;
	}
	*limit = json_integer_value(l);
	return 0;
}

void crab_admin_op_sessions_list(struct admin_call *call, json_t *args)
{
	const char *status = arg_str(args, "status");
	int64_t limit;

	if (parse_limit(call, args, &limit) != 0)
		return;
	if (status != NULL && strcmp(status, "open") != 0 && strcmp(status, "closed") != 0) {
		crab_admin_reply_error(call, "invalid_args", "status must be open or closed");
		return;
	}
	submit(call, list_run, arg_str(args, "tenant_id"), status, limit);
}

/* ---- sessions.show {session_id, limit?} ---- */

static int show_turn_row(const struct crab_store_turn *t, void *arg)
{
	json_array_append_new(arg, turn_json(t, 0));
	return 0;
}

static int show_run(struct crab_store *st, struct crab_store_job *job)
{
	struct admin_job *j = (struct admin_job *)job;
	struct crab_store_session_info s;
	int rc = crab_store_session_info(st, j->a, &s);

	if (rc <= 0) {
		j->code = "not_found";
		snprintf(j->message, sizeof(j->message), "no session '%.64s'", j->a);
		return rc;
	}
	json_decref(j->result);
	j->result = json_pack("{s:o, s:[]}", "session", session_json(&s), "turns");
	crab_store_session_info_free(&s);
	return crab_store_turn_list(st, j->a, j->limit, show_turn_row,
	    json_object_get(j->result, "turns"));
}

static const char *require(struct admin_call *call, json_t *args, const char *key)
{
	const char *v = arg_str(args, key);

	if (v != NULL && v[0] != '\0' && strlen(v) < CRAB_STORE_ID_MAX)
		return v;
	crab_admin_reply_error(call, "invalid_args", "%s (an id) is required", key);
	return NULL;
}

void crab_admin_op_sessions_show(struct admin_call *call, json_t *args)
{
	const char *id = require(call, args, "session_id");
	int64_t limit;

	if (id != NULL && parse_limit(call, args, &limit) == 0)
		submit(call, show_run, id, NULL, limit);
}

/* ---- sessions.close {session_id} ---- */

static int close_run(struct crab_store *st, struct crab_store_job *job)
{
	struct admin_job *j = (struct admin_job *)job;
	int rc = crab_store_session_close(st, j->a, crab_clock_now_ms());

	if (rc == 0) {
		j->code = "not_found";
		snprintf(j->message, sizeof(j->message), "no open session '%.64s'", j->a);
	}
	return rc < 0 ? -1 : 0;
}

static void close_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct admin_job *j = (struct admin_job *)job;
	struct crab_gateway *gw = j->call->gw;

	if (status == CRAB_JOB_OK && j->code == NULL) {
		/* The store revoked its leases in the same transaction; the index follows. */
		size_t n = crab_lease_table_drop_session(gw->leases, j->a);
		log_info("session %s closed (%zu leases revoked)", j->a, n);
		j->result = json_pack("{s:s, s:b, s:I}", "session_id", j->a, "closed", 1,
		    "leases_revoked", (json_int_t)n);
	}
	admin_job_done(job, status);
}

void crab_admin_op_sessions_close(struct admin_call *call, json_t *args)
{
	const char *id = require(call, args, "session_id");
	struct admin_job *j;

	if (id == NULL)
		return;
	j = xcalloc(1, sizeof(*j));
	j->call = call;
	j->a = xstrdup(id);
	j->job.run = close_run;
	j->job.done = close_done;
	crab_storeq_submit(call->gw->storeq, &j->job);
}

/* ---- turns.show {turn_id} ---- */

static int turn_show_run(struct crab_store *st, struct crab_store_job *job)
{
	struct admin_job *j = (struct admin_job *)job;
	struct crab_store_turn t;
	int rc = crab_store_turn_get(st, j->a, &t);

	if (rc <= 0) {
		j->code = "not_found";
		snprintf(j->message, sizeof(j->message), "no turn '%.64s'", j->a);
		return rc;
	}
	json_decref(j->result);
	j->result = json_pack("{s:o}", "turn", turn_json(&t, 1));
	crab_store_turn_free_payloads(&t);
	return 0;
}

void crab_admin_op_turns_show(struct admin_call *call, json_t *args)
{
	const char *id = require(call, args, "turn_id");

	if (id != NULL)
		submit(call, turn_show_run, id, NULL, 0);
}

/* ---- turns.wait {event_id, timeout_ms?} ---- */

static void wait_answer(void *arg, const struct crab_turn_outcome *o)
{
	struct admin_call *call = arg;

	if (strcmp(o->status, "timeout") == 0) {
		crab_admin_reply_error(call, "timeout", "the turn of %s has not finished", o->event_id);
		return;
	}
	crab_admin_reply_ok(call, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s?}", "status",
	    o->status, "event_id", o->event_id, "turn_id", o->turn_id, "session_id", o->session_id,
	    "text", o->text, "error_code", o->error_code, "error_message", o->error_message));
}

static int parse_timeout(struct admin_call *call, json_t *args, int64_t *ms)
{
	json_t *t = json_object_get(args, "timeout_ms");

	*ms = WAIT_DEFAULT_MS;
	if (t == NULL)
		return 0;
	if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > WAIT_MAX_MS) {
		crab_admin_reply_error(call, "invalid_args", "timeout_ms must be 1 to %d", WAIT_MAX_MS);
		return -1;
	}
	*ms = json_integer_value(t);
	return 0;
}

void crab_admin_op_turns_wait(struct admin_call *call, json_t *args)
{
	const char *id = require(call, args, "event_id");
	int64_t ms;

	if (id != NULL && parse_timeout(call, args, &ms) == 0)
		crab_turns_wait(call->gw->turns, id, ms, wait_answer, call);
}

/* ---- event.send {event, wait?, timeout_ms?} ---- */

struct send_call {
	struct admin_call *call;
	int wait;
	int64_t timeout_ms;
};

static void send_answer(void *arg, int status, const char *body, size_t len)
{
	struct send_call *s = arg;
	json_t *r = json_loadb(body, len, 0, NULL);
	const char *event_id = json_string_value(json_object_get(r, "event_id"));

	if (status != 202) {
		json_t *e = json_object_get(r, "error");
		crab_admin_reply_error(s->call, json_string_value(json_object_get(e, "code")) ?
		    json_string_value(json_object_get(e, "code")) : "internal", "%s",
		    json_string_value(json_object_get(e, "message")) ?
		    json_string_value(json_object_get(e, "message")) : "refused");
	} else if (s->wait && event_id != NULL) {
		crab_turns_wait(s->call->gw->turns, event_id, s->timeout_ms, wait_answer, s->call);
	} else {
		crab_admin_reply_ok(s->call, json_incref(r));
	}
	json_decref(r);
	free(s);
}

void crab_admin_op_event_send(struct admin_call *call, json_t *args)
{
	static const struct crab_ingest_producer operator = {.id = "operator:admin", .trusted = 1};
	json_t *event = json_object_get(args, "event");
	struct send_call *s;
	char *body;

	if (!json_is_object(event)) {
		crab_admin_reply_error(call, "invalid_args", "event (an envelope object) is required");
		return;
	}
	if (call->gw->draining) {
		crab_admin_reply_error(call, "unavailable", "the gateway is shutting down");
		return;
	}
	s = xcalloc(1, sizeof(*s));
	s->call = call;
	s->wait = json_is_true(json_object_get(args, "wait"));
	if (parse_timeout(call, args, &s->timeout_ms) != 0) {
		free(s);
		return;
	}
	body = json_dumps(event, JSON_COMPACT);
	crab_ingest(call->gw, body, strlen(body), &operator, send_answer, s);
	free(body);
}
