/* turn_run.c: one turn, start to end (turns.h): a begin job stores `turn.started` (or
 * finds the running turn a crash cut, to resume it under the same id) and reads the
 * session's history; the loop composes the context and calls the model adapter; a
 * finish job stores the payloads, the outbox rows and the event as done, in one
 * transaction, and starts the session's next turn in it when one waits. */
#include "turn_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "modules.h"
#include "jsontext.h"
#include "outbox.h"

#define STORE_RETRY_MS 500

struct turn_record;
static void record_free(struct turn_record *r);
static struct turn *turn_new(struct crab_turns *t, struct tsession *s, struct pending *p);

static void turn_free(struct turn *tr)
{
	if (tr->timeout != NULL)
		event_free(tr->timeout);
	if (tr->finish_ev != NULL)
		event_free(tr->finish_ev);
	*tr->prev_all = tr->next_all;
	if (tr->next_all != NULL)
		tr->next_all->prev_all = tr->prev_all;
	crab_store_inbox_row_free(&tr->ev);
	json_decref(tr->envelope);
	free(tr->history);
	free(tr->input);
	free(tr->reply_to);
	if (tr->record != NULL)
		record_free(tr->record);
	json_decref(tr->tool_calls);
	crab_turn_tools_clear_round(tr);
	json_decref(tr->offer);
	json_decref(tr->call_log);
	free(tr->req_rest);
	crab_buf_free(&tr->chain);
	crab_buf_free(&tr->text);
	free(tr->request);
	free(tr->error_message);
	crab_config_unref(tr->cfg);
	free(tr);
}

/* The turn leaves the executor: its session moves on. */
static void turn_end(struct turn *tr)
{
	struct crab_turns *t = tr->t;

	crab_turns_finished(t, tr);
	turn_free(tr);
}

void crab_turn_set_error(struct turn *tr, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (tr->error_code[0] != '\0')
		return; /* the first error is the one that counts */
	crab_strlcpy(tr->error_code, code, sizeof(tr->error_code));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tr->error_message = xstrdup(msg);
}

static void retry_later(struct turn *tr, event_callback_fn fn)
{
	struct timeval tv = {0, STORE_RETRY_MS * 1000};

	if (tr->timeout != NULL)
		event_free(tr->timeout);
	tr->timeout = evtimer_new(tr->t->gw->base, fn, tr);
	evtimer_add(tr->timeout, &tv);
}

/* ---- begin: worker side ---- */

/* History travels as stored text, never parsed: the stored input (a message object) and
 * output (an array of message objects) of each earlier turn are spliced into the
 * request's messages array. */
struct history_acc {
	char **parts; /* newest turn first: input, then output's messages without [ ] */
	size_t n, cap;
	int64_t budget;
};

static int history_row(void *arg, const char *input, const char *output)
{
	struct history_acc *h = arg;
	size_t in_len = strlen(input), out_len = strlen(output);

	if ((int64_t)(in_len + out_len) > h->budget)
		return 1; /* the budget is spent: older turns stay in the store only */
	if (in_len < 2 || input[0] != '{' || out_len < 2 || output[0] != '[' ||
	    output[out_len - 1] != ']')
		return 0; /* not a turn this code stored: left out */
	h->budget -= (int64_t)(in_len + out_len);
	if (h->n + 2 > h->cap) {
		h->cap = h->cap ? h->cap * 2 : 16;
		h->parts = xrealloc(h->parts, h->cap * sizeof(*h->parts));
	}
	h->parts[h->n++] = xstrndup(output + 1, out_len - 2);
	h->parts[h->n++] = xstrdup(input);
	return 0;
}

static int load_history(struct crab_store *st, struct turn *tr)
{
	struct history_acc h = {.budget = tr->agent->history_max_bytes};
	struct crab_buf b = {0};
	int rc = 0;

	if (tr->agent->history_max_turns > 0)
		rc = crab_store_history(st, tr->turn_id, tr->agent->history_max_turns,
		    history_row, &h);
	for (size_t i = h.n; i > 0; i--) { /* oldest first */
		const char *part = h.parts[i - 1];
		if (part[0] != '\0') {
			if (b.len > 0)
				crab_buf_add(&b, ",", 1);
			crab_buf_add(&b, part, strlen(part));
		}
		free(h.parts[i - 1]);
	}
	free(h.parts);
	tr->history = crab_buf_take(&b);
	return rc;
}

static int write_started(struct crab_store *st, struct turn *tr)
{
	int64_t now = crab_clock_now_ms(), seq;
	char key[CRAB_ID_MAX + 16], data[CRAB_ID_MAX + 32];
	struct crab_store_turn row = {.config_revision = tr->cfg->revision, .started_at = now};

	crab_strlcpy(row.id, tr->turn_id, sizeof(row.id));
	crab_strlcpy(row.tenant_id, tr->ev.tenant_id, sizeof(row.tenant_id));
	crab_strlcpy(row.agent_id, tr->ev.agent_id, sizeof(row.agent_id));
	crab_strlcpy(row.session_id, tr->ev.session_id, sizeof(row.session_id));
	crab_strlcpy(row.event_id, tr->ev.id, sizeof(row.event_id));
	crab_strlcpy(row.model, tr->model ? tr->model->id : "", sizeof(row.model));
	snprintf(key, sizeof(key), "%s:started", tr->turn_id);
	snprintf(data, sizeof(data), "{\"event_id\":\"%s\"}", tr->ev.id); /* a minted id */
	if (crab_store_turn_start(st, &row, &seq) != 0)
		return -1;
	return crab_outbox_put(st, &(struct crab_outbox_event){
		.type = "turn.started", .tenant_id = tr->ev.tenant_id, .agent_id = tr->ev.agent_id,
		.session_id = tr->ev.session_id, .turn_id = tr->turn_id, .idempotency_key = key,
		.seq = seq, .now_ms = now, .data = data,
	});
}

/* What the agent's turn reads besides the event: the history, and the session's memory
 * key when the agent may use tools (their context carries it). */
static int load_agent_needs(struct crab_store *st, struct turn *tr)
{
	struct crab_store_session s;

	tr->memory_key[0] = '\0';
	if (tr->agent->ntools_allow > 0 &&
	    crab_store_session_get(st, tr->ev.tenant_id, tr->ev.session_id, &s) == 1)
		crab_strlcpy(tr->memory_key, s.memory_key, sizeof(tr->memory_key));
	return load_history(st, tr);
}

/* A new turn of the event in tr->ev: its agent and model, turn.started, the history. */
static int begin_new(struct crab_store *st, struct turn *tr)
{
	const struct crab_config *cfg = tr->cfg;

	tr->agent = crab_config_agent_find(cfg, tr->ev.agent_id);
	tr->model = tr->agent ? crab_config_model_find(cfg, tr->agent->model) : NULL;
	if (write_started(st, tr) != 0)
		return -1;
	return tr->agent != NULL ? load_agent_needs(st, tr) : 0;
}

/* The store side of a turn's start: read the event, store turn.started (or find the turn
 * a crash cut), read the history. */
static int begin_work(struct crab_store *st, struct turn *tr)
{
	const struct crab_config *cfg = tr->cfg;
	struct crab_store_turn prior = {0};
	int rc;

	tr->skip = 0;
	crab_store_inbox_row_free(&tr->ev);
	free(tr->history);
	tr->history = NULL;
	rc = crab_store_inbox_get(st, tr->p->event_id, &tr->ev);
	if (rc <= 0 || strcmp(tr->ev.state, "pending") != 0) {
		tr->skip = 1;
		return rc < 0 ? -1 : 0;
	}
	/* Only an event from before this start can have a turn already: one accepted since
	 * gets its first turn here (a begin that failed rolled its turn back). */
	rc = tr->p->fresh ? 0 : crab_store_turn_by_event(st, tr->ev.id, &prior);
	crab_store_turn_free_payloads(&prior);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return begin_new(st, tr);
	if (strcmp(prior.status, "running") != 0) {
		/* finished before, its event not marked: repair, never run twice */
		tr->skip = 1;
		return crab_store_inbox_done(st, tr->ev.id);
	}
	crab_strlcpy(tr->turn_id, prior.id, sizeof(tr->turn_id)); /* a crash cut it */
	tr->agent = crab_config_agent_find(cfg, tr->ev.agent_id);
	tr->model = tr->agent ? crab_config_model_find(cfg, tr->agent->model) : NULL;
	return tr->agent != NULL ? load_agent_needs(st, tr) : 0;
}

int crab_turn_begin_accepted(struct crab_store *st, struct turn *tr,
    const struct crab_store_event *ev)
{
	int rc = crab_store_inbox_others_pending(st, ev->session_id, ev->id);

	if (rc != 0)
		return rc < 0 ? -1 : 0; /* the session is busy: the event waits its turn */
	crab_store_inbox_row_free(&tr->ev);
	memset(&tr->ev, 0, sizeof(tr->ev));
	if (crab_strlcpy(tr->ev.id, ev->id, sizeof(tr->ev.id)) >= sizeof(tr->ev.id) ||
	    crab_strlcpy(tr->ev.tenant_id, ev->tenant_id, sizeof(tr->ev.tenant_id)) >=
		sizeof(tr->ev.tenant_id) ||
	    crab_strlcpy(tr->ev.agent_id, ev->agent_id, sizeof(tr->ev.agent_id)) >=
		sizeof(tr->ev.agent_id) ||
	    crab_strlcpy(tr->ev.session_id, ev->session_id, sizeof(tr->ev.session_id)) >=
		sizeof(tr->ev.session_id) ||
	    crab_strlcpy(tr->ev.type, ev->type, sizeof(tr->ev.type)) >= sizeof(tr->ev.type))
		return 0; /* cannot happen with what ingest accepts; the queue would read it back */
	crab_strlcpy(tr->ev.state, "pending", sizeof(tr->ev.state));
	tr->ev.envelope = xstrdup(ev->envelope_json);
	tr->ev.target = ev->target_json ? xstrdup(ev->target_json) : NULL;
	tr->ev.received_at = ev->received_at;
	free(tr->history);
	tr->history = NULL;
	return begin_new(st, tr) == 0 ? 1 : -1;
}

static int begin_run(struct crab_store *st, struct crab_store_job *job)
{
	return begin_work(st, (struct turn *)((char *)job - offsetof(struct turn, job)));
}

/* ---- finish: worker side ---- */

/* What the finish job writes, encoded on the loop before it is submitted, so that the
 * store worker only stores it (the worker is the one thread every turn waits for). */
struct turn_record {
	char *response, *output, *usage, *error; /* the turns row's payloads, with tr->input */
	char *event_data;     /* turn.completed's or turn.failed's data */
	char *outbound_data;  /* message.outbound's data; NULL when nothing goes out */
	int64_t finished_at;
};

static void record_free(struct turn_record *r)
{
	free(r->response);
	free(r->output);
	free(r->usage);
	free(r->error);
	free(r->event_data);
	free(r->outbound_data);
	free(r);
}

/* Why a completed turn sends nothing out, or NULL when it does. */
static const char *no_outbound_reason(struct turn *tr)
{
	if (tr->ev.target == NULL || tr->ev.target[0] != '{')
		return "no target: the event named none and no channel was active";
	if (tr->text.len == 0)
		return "the model answered no text";
	return NULL;
}

/* [this turn's calls and results..., {"role":"assistant","content","tool_calls"}] */
static char *output_text(struct turn *tr, const char *calls)
{
	struct crab_buf b = {0};

	crab_buf_add(&b, "[", 1);
	if (tr->chain.len > 0) {
		crab_buf_add(&b, tr->chain.data, tr->chain.len);
		crab_buf_add(&b, ",", 1);
	}
	crab_jobj_open(&b);
	crab_jobj_str(&b, "role", "assistant");
	crab_jobj_strn(&b, "content", tr->text.len ? tr->text.data : NULL, tr->text.len);
	if (json_array_size(tr->tool_calls) > 0)
		crab_jobj_raw(&b, "tool_calls", calls);
	crab_jobj_close(&b);
	crab_buf_add(&b, "]", 1);
	return crab_buf_take(&b);
}

static struct turn_record *record_new(struct turn *tr)
{
	struct turn_record *r = xcalloc(1, sizeof(*r));
	const char *reason = tr->failed ? "the turn failed" : no_outbound_reason(tr);
	char *calls = json_dumps(tr->tool_calls, JSON_COMPACT);
	struct crab_buf b = {0};

	r->finished_at = crab_clock_now_ms();
	r->output = output_text(tr, calls);
	crab_jobj_open(&b);
	crab_jobj_int(&b, "input_tokens", tr->usage_in);
	crab_jobj_int(&b, "output_tokens", tr->usage_out);
	crab_jobj_close(&b);
	r->usage = crab_buf_take(&b);
	crab_jobj_open(&b);
	crab_jobj_strn(&b, "text", tr->text.len ? tr->text.data : NULL, tr->text.len);
	crab_jobj_raw(&b, "tool_calls", calls);
	crab_jobj_str(&b, "stop_reason", tr->stop_reason);
	crab_jobj_raw(&b, "usage", r->usage);
	crab_jobj_close(&b);
	r->response = crab_buf_take(&b);
	if (tr->failed) {
		crab_jobj_open(&b);
		crab_jobj_str(&b, "code", tr->error_code);
		crab_jobj_str(&b, "message", tr->error_message ? tr->error_message : "");
		crab_jobj_close(&b);
		r->error = crab_buf_take(&b);
	}
	crab_jobj_open(&b);
	crab_jobj_str(&b, "event_id", tr->ev.id);
	if (tr->failed) {
		crab_jobj_raw(&b, "error", r->error);
	} else {
		crab_jobj_raw(&b, "input", tr->input);
		crab_jobj_raw(&b, "output", r->output);
		crab_jobj_str(&b, "model", tr->model ? tr->model->id : "");
		crab_jobj_raw(&b, "usage", r->usage);
		crab_jobj_int(&b, "config_revision", tr->cfg->revision);
		crab_jobj_bool(&b, "outbound", reason == NULL);
		if (reason != NULL)
			crab_jobj_str(&b, "no_outbound_reason", reason);
	}
	crab_jobj_close(&b);
	r->event_data = crab_buf_take(&b);
	if (reason == NULL) {
		crab_jobj_open(&b);
		crab_jobj_strn(&b, "text", tr->text.data, tr->text.len);
		crab_jobj_raw(&b, "target", tr->ev.target);
		crab_jobj_str(&b, "reply_to", tr->reply_to);
		crab_jobj_close(&b);
		r->outbound_data = crab_buf_take(&b);
	}
	free(calls);
	return r;
}

static int write_finished(struct crab_store *st, struct turn *tr)
{
	const struct turn_record *r = tr->record;
	int64_t seq;
	char key[CRAB_ID_MAX + 16];
	struct crab_store_turn row = {
		.request = tr->request, .response = r->response, .input = tr->input,
		.output = r->output, .usage = r->usage, .error = r->error,
		.finished_at = r->finished_at,
	};

	crab_strlcpy(row.id, tr->turn_id, sizeof(row.id));
	crab_strlcpy(row.status, tr->failed ? "failed" : "completed", sizeof(row.status));
	crab_strlcpy(row.model, tr->model ? tr->model->id : "", sizeof(row.model));
	if (crab_store_turn_finish(st, &row) != 0 || crab_turn_tools_write(st, tr) != 0 ||
	    crab_store_session_seq(st, tr->ev.session_id, r->outbound_data ? 2 : 1, &seq) != 0)
		return -1;
	snprintf(key, sizeof(key), "%s:%s", tr->turn_id, tr->failed ? "failed" : "completed");
	if (crab_outbox_put(st, &(struct crab_outbox_event){
		.type = tr->failed ? "turn.failed" : "turn.completed", .tenant_id = tr->ev.tenant_id,
		.agent_id = tr->ev.agent_id, .session_id = tr->ev.session_id,
		.turn_id = tr->turn_id, .idempotency_key = key, .seq = seq,
		.now_ms = r->finished_at, .data = r->event_data}) != 0)
		return -1;
	if (r->outbound_data != NULL) {
		snprintf(key, sizeof(key), "%s:out:0", tr->turn_id);
		if (crab_outbox_put(st, &(struct crab_outbox_event){
			.type = "message.outbound", .tenant_id = tr->ev.tenant_id,
			.agent_id = tr->ev.agent_id, .session_id = tr->ev.session_id,
			.turn_id = tr->turn_id, .idempotency_key = key, .seq = seq + 1,
			.now_ms = r->finished_at, .data = r->outbound_data}) != 0)
			return -1;
	}
	return crab_store_inbox_done(st, tr->ev.id);
}

/* The finished turn, and the start of the session's next one when it has one: one
 * commit between two turns of a busy session instead of two. */
static int finish_run(struct crab_store *st, struct crab_store_job *job)
{
	struct turn *tr = (struct turn *)((char *)job - offsetof(struct turn, job));

	if (write_finished(st, tr) != 0)
		return -1;
	return tr->next != NULL ? begin_work(st, tr->next) : 0;
}

/* ---- loop side ---- */

static void submit(struct turn *tr, int (*run)(struct crab_store *, struct crab_store_job *),
    void (*done)(struct crab_store_job *, enum crab_job_status))
{
	/* lazy: a crash before the next sync at worst runs the turn again (storeq.h) */
	tr->job = (struct crab_store_job){.run = run, .done = done, .lazy = 1};
	tr->in_store = 1;
	crab_storeq_submit(tr->t->gw->storeq, &tr->job);
}

static void finish_done(struct crab_store_job *job, enum crab_job_status status);

static void finish_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	submit(arg, finish_run, finish_done);
}

static void begin_ready(struct turn *tr);

/* The chained start did not commit: its event goes back to the head of the session. */
static void unchain(struct turn *tr)
{
	struct turn *next = tr->next;

	if (next == NULL)
		return;
	tr->next = NULL;
	crab_turns_requeue(tr->t, next->s, next->p);
	next->p = NULL;
	turn_free(next);
}

static void finish_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct turn *tr = (struct turn *)((char *)job - offsetof(struct turn, job));
	struct crab_turns *t = tr->t;
	struct turn *next = tr->next;
	struct crab_turn_outcome o;

	tr->in_store = 0;
	if (status != CRAB_JOB_OK) {
		unchain(tr);
		if (t->draining) {
			turn_end(tr); /* the event stays pending: it runs again after a restart */
			return;
		}
		if (tr->store_tries++ == 0)
			log_warnx("turn %s: could not be stored, retrying", tr->turn_id);
		retry_later(tr, finish_retry);
		return;
	}
	if (tr->failed)
		t->failed++;
	else
		t->completed++;
	crab_hist_add(&t->model_us, tr->model_us);
	if (tr->p->fresh)
		crab_hist_add(&t->overhead_us, crab_monotonic_us() - tr->begin_us - tr->model_us);
	o = (struct crab_turn_outcome){
		.status = tr->failed ? "failed" : "completed", .event_id = tr->ev.id,
		.turn_id = tr->turn_id, .session_id = tr->ev.session_id,
		.text = tr->text.len ? tr->text.data : NULL,
		.error_code = tr->failed ? tr->error_code : NULL,
		.error_message = tr->failed ? tr->error_message : NULL,
	};
	crab_turns_notify(t, &o);
	if (next == NULL) {
		turn_end(tr);
		return;
	}
	/* The session's next turn has started in the same commit: it takes over the slot. */
	tr->next = NULL;
	tr->s->running = next;
	free(tr->p);
	turn_free(tr);
	next->in_store = 0;
	begin_ready(next);
}

void crab_turn_finish(struct turn *tr)
{
	tr->model_us = tr->model_start_us ? crab_monotonic_us() - tr->model_start_us : 0;
	tr->failed = tr->error_code[0] != '\0';
	if (tr->failed)
		log_info("turn %s failed: %s: %s", tr->turn_id, tr->error_code,
		    tr->error_message ? tr->error_message : "");
	if (tr->next == NULL) {
		struct pending *p = crab_turns_next(tr->t, tr->s);
		if (p != NULL)
			tr->next = turn_new(tr->t, tr->s, p);
	}
	if (tr->record == NULL)
		tr->record = record_new(tr);
	submit(tr, finish_run, finish_done);
}

static void begin_done(struct crab_store_job *job, enum crab_job_status status);

static void begin_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	submit(arg, begin_run, begin_done);
}

/* A committed start: call the model, or end a turn that has nothing to do. */
static void begin_ready(struct turn *tr)
{
	if (tr->t->draining || tr->skip) {
		turn_end(tr);
		return;
	}
	tr->store_tries = 0;
	crab_turn_call_model(tr);
}

static void begin_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct turn *tr = (struct turn *)((char *)job - offsetof(struct turn, job));

	tr->in_store = 0;
	if (status != CRAB_JOB_OK && !tr->t->draining) {
		if (tr->store_tries++ == 0)
			log_warnx("turn of %s: could not begin, retrying", tr->p->event_id);
		retry_later(tr, begin_retry);
		return;
	}
	begin_ready(tr);
}

static struct turn *turn_new(struct crab_turns *t, struct tsession *s, struct pending *p)
{
	struct turn *tr = xcalloc(1, sizeof(*tr));

	tr->t = t;
	tr->s = s;
	tr->p = p;
	tr->begin_us = crab_monotonic_us();
	tr->cfg = crab_config_ref(t->gw->cfg); /* a reload never frees it under the turn */
	tr->tool_calls = json_array();
	tr->call_log = json_array();
	tr->next_all = t->all;
	if (t->all != NULL)
		t->all->prev_all = &tr->next_all;
	tr->prev_all = &t->all;
	t->all = tr;
	tr->in_store = 1; /* until its start has committed */
	crab_id_new("trn", tr->turn_id);
	return tr;
}

struct turn *crab_turn_start(struct crab_turns *t, struct tsession *s, struct pending *p)
{
	struct turn *tr = turn_new(t, s, p);

	submit(tr, begin_run, begin_done);
	return tr;
}

struct turn *crab_turn_new_reserved(struct crab_turns *t)
{
	return turn_new(t, NULL, NULL);
}

void crab_turn_adopt(struct turn *tr, struct tsession *s, struct pending *p)
{
	tr->s = s;
	tr->p = p;
	tr->begin_us = crab_monotonic_us(); /* accepted now: the turn's time begins */
	tr->in_store = 0;
	begin_ready(tr);
}

void crab_turn_unreserve(struct turn *tr)
{
	turn_free(tr);
}

void crab_turn_keep_envelope(struct turn *tr, json_t *envelope)
{
	json_decref(tr->envelope);
	tr->envelope = json_incref(envelope);
}

void crab_turn_cancel(struct turn *tr)
{
	if (tr->in_store)
		return; /* its store job will end it */
	crab_turn_end_call(tr);
	crab_turn_tools_clear_round(tr);
	turn_end(tr);
}
