/* turns.c: the executor's queue (turns.h). Each session with work has a FIFO of events;
 * a session whose head can run waits on the ready list for a slot; a finished turn lets
 * its session's next event go to the back of the ready list, so busy sessions take turns
 * fairly. Order within a session is acceptance order: the order ingest commits, which is
 * the order events are queued here and the order of their ids in the store. */
#include "turn_int.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"

static void dispatch(evutil_socket_t fd, short what, void *arg);

struct crab_turns *crab_turns_new(struct crab_gateway *gw)
{
	struct crab_turns *t = xcalloc(1, sizeof(*t));

	t->gw = gw;
	t->context = crab_context_new(gw->cfg);
	t->sessions = crab_strmap_new();
	t->waiters = crab_strmap_new();
	TAILQ_INIT(&t->ready);
	t->kick = event_new(gw->base, -1, 0, dispatch, t);
	t->queue_max = (size_t)gw->cfg->turns.queue_max; /* the config's range and default */
	t->max_running = (unsigned)gw->cfg->turns.max_concurrent;
	return t;
}

static void kick(struct crab_turns *t)
{
	if (!event_pending(t->kick, EV_TIMEOUT, NULL))
		event_active(t->kick, EV_TIMEOUT, 0);
}

void crab_turns_reconfigure(struct crab_turns *t)
{
	/* queue_max sizes store jobs in flight: it takes a restart (config_view.h). */
	crab_context_set_config(t->context, t->gw->cfg);
	t->max_running = (unsigned)t->gw->cfg->turns.max_concurrent;
	kick(t); /* more slots: start what waits */
}

static struct tsession *session_of(struct crab_turns *t, const char *id)
{
	struct tsession *s = crab_strmap_get(t->sessions, id);

	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		crab_strlcpy(s->id, id, sizeof(s->id));
		crab_strmap_put(t->sessions, id, s);
	}
	return s;
}

static void make_ready(struct crab_turns *t, struct tsession *s)
{
	if (!s->ready && s->running == NULL && s->head != NULL) {
		TAILQ_INSERT_TAIL(&t->ready, s, link);
		s->ready = 1;
	}
}

static struct pending *pending_new(const char *event_id, int fresh)
{
	struct pending *p = xcalloc(1, sizeof(*p));

	crab_strlcpy(p->event_id, event_id, sizeof(p->event_id));
	p->fresh = fresh;
	return p;
}

static void queue_event(struct crab_turns *t, const char *session_id, const char *event_id,
    int fresh)
{
	struct tsession *s = session_of(t, session_id);
	struct pending *p = pending_new(event_id, fresh);

	if (s->tail != NULL)
		s->tail->next = p;
	else
		s->head = p;
	s->tail = p;
	t->queued++;
	make_ready(t, s);
	kick(t);
}

void crab_turns_accepted(struct crab_turns *t, const char *session_id, const char *event_id)
{
	if (!t->overflow && t->queued >= t->queue_max)
		t->overflow = 1; /* a backlog: it stays in the store until the queue runs dry */
	if (t->overflow)
		return;
	queue_event(t, session_id, event_id, 1);
}

struct turn *crab_turns_reserve(struct crab_turns *t)
{
	if (t->draining || t->overflow || t->running >= t->max_running)
		return NULL;
	t->running++;
	return crab_turn_new_reserved(t);
}

void crab_turns_reserved_done(struct crab_turns *t, struct turn *tr, int started,
    const char *session_id, const char *event_id)
{
	struct tsession *s;

	if (!started) {
		t->running--;
		crab_turn_unreserve(tr);
		if (session_id != NULL)
			crab_turns_accepted(t, session_id, event_id);
		kick(t);
		return;
	}
	/* Its commit saw no other event of the session waiting, and every answer of the
	 * commits before it has run: the session is idle here too. */
	s = session_of(t, session_id);
	if (s->running != NULL || s->head != NULL)
		fatalx("turns: session %s started a turn at acceptance while busy", session_id);
	s->running = tr;
	crab_turn_adopt(tr, s, pending_new(event_id, 1));
}

/* Starts turns while there are slots and ready sessions. */
static void reload(struct crab_turns *t);

static void dispatch(evutil_socket_t fd, short what, void *arg)
{
	struct crab_turns *t = arg;
	struct tsession *s;

	(void)fd;
	(void)what;
	if (t->overflow && !t->reloading && t->queued == 0 && !t->draining)
		reload(t);
	while (!t->draining && t->running < t->max_running &&
	       (s = TAILQ_FIRST(&t->ready)) != NULL) {
		struct pending *p = crab_turns_next(t, s);

		t->running++;
		s->running = crab_turn_start(t, s, p);
	}
}

void crab_turns_finished(struct crab_turns *t, struct turn *tr)
{
	struct tsession *s = tr->s;
	struct pending *p = tr->p;

	t->running--;
	s->running = NULL;
	free(p);
	if (s->head == NULL) {
		crab_strmap_del(t->sessions, s->id);
		free(s);
	} else {
		make_ready(t, s);
	}
	kick(t);
}

struct pending *crab_turns_next(struct crab_turns *t, struct tsession *s)
{
	struct pending *p = s->head;

	if (p == NULL || t->draining)
		return NULL;
	s->head = p->next;
	if (s->head == NULL)
		s->tail = NULL;
	p->next = NULL;
	if (s->ready) { /* it waited for a slot: it has one now (dispatch, or a chained start) */
		TAILQ_REMOVE(&t->ready, s, link);
		s->ready = 0;
	}
	t->queued--;
	return p;
}

void crab_turns_requeue(struct crab_turns *t, struct tsession *s, struct pending *p)
{
	p->next = s->head;
	s->head = p;
	if (s->tail == NULL)
		s->tail = p;
	t->queued++;
}

void crab_turns_drain(struct crab_turns *t)
{
	t->draining = 1;
}

unsigned crab_turns_running(const struct crab_turns *t)
{
	return t->running;
}

/* ---- reading pending events back from the store: at start, and after an overflow ---- */

struct reload_job {
	struct crab_store_job job;
	struct crab_turns *t;
	size_t n;
	struct {
		char event_id[CRAB_ID_MAX];
		char session_id[CRAB_ID_MAX];
	} *events; /* queue_max of them */
};

static int reload_row(void *arg, const char *event_id, const char *session_id)
{
	struct reload_job *j = arg;

	crab_strlcpy(j->events[j->n].event_id, event_id, CRAB_ID_MAX);
	crab_strlcpy(j->events[j->n].session_id, session_id, CRAB_ID_MAX);
	j->n++;
	return 0;
}

static int reload_run(struct crab_store *st, struct crab_store_job *job)
{
	struct reload_job *j = (struct reload_job *)job;

	j->n = 0;
	return crab_store_inbox_pending(st, (int64_t)j->t->queue_max, reload_row, j);
}

/* A running turn's event is still pending in the store until its turn is stored. */
static int is_running(struct crab_turns *t, const char *session_id, const char *event_id)
{
	struct tsession *s = crab_strmap_get(t->sessions, session_id);

	for (struct turn *tr = s ? s->running : NULL; tr != NULL; tr = tr->next) {
		if (tr->p != NULL && strcmp(tr->p->event_id, event_id) == 0)
			return 1;
	}
	return 0;
}

static void reload_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct reload_job *j = (struct reload_job *)job;
	struct crab_turns *t = j->t;

	t->reloading = 0;
	if (status != CRAB_JOB_OK) {
		log_warnx("turns: could not read the pending events; trying again");
	} else {
		/* Fewer than asked for: the store holds no more than this. The events accepted
		 * after the read (their jobs come later) queue in memory again. */
		if (j->n < t->queue_max)
			t->overflow = 0;
		if (j->n > 0)
			log_info("turns: %zu accepted events read back from the store%s", j->n,
			    t->overflow ? ", more wait there" : "");
		for (size_t i = 0; i < j->n; i++) {
			if (!is_running(t, j->events[i].session_id, j->events[i].event_id))
				queue_event(t, j->events[i].session_id, j->events[i].event_id, 0);
		}
	}
	free(j->events);
	free(j);
	kick(t);
}

static void reload(struct crab_turns *t)
{
	struct reload_job *j = xcalloc(1, sizeof(*j));

	t->reloading = 1;
	j->t = t;
	j->events = xcalloc(t->queue_max, sizeof(*j->events));
	j->job.run = reload_run;
	j->job.done = reload_done;
	crab_storeq_submit(t->gw->storeq, &j->job);
}

void crab_turns_recover(struct crab_turns *t)
{
	t->overflow = 1; /* what waits in the store is read like a backlog */
	kick(t);
}

/* ---- waiters ---- */

struct turn_waiter {
	struct turn_waiter *next;
	struct crab_turns *t;
	char event_id[CRAB_ID_MAX];
	crab_turn_wait_fn fn;
	void *arg;
	struct event *timer;
	int answered;
	int looking; /* a store lookup holds this waiter */
};

static void waiter_unlink(struct crab_turns *t, struct turn_waiter *w)
{
	struct turn_waiter *head = crab_strmap_get(t->waiters, w->event_id), **pp;

	for (pp = &head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	if (head == NULL)
		crab_strmap_del(t->waiters, w->event_id);
	else
		crab_strmap_put(t->waiters, w->event_id, head);
}

/* Answers once; frees when nothing else holds the waiter. */
static void waiter_answer(struct turn_waiter *w, const struct crab_turn_outcome *o)
{
	if (!w->answered) {
		w->answered = 1;
		waiter_unlink(w->t, w);
		event_free(w->timer);
		w->timer = NULL;
		w->fn(w->arg, o);
	}
	if (!w->looking)
		free(w);
}

static void answer_waiters(struct crab_turns *t, const struct crab_turn_outcome *o)
{
	struct turn_waiter *w;

	while ((w = crab_strmap_get(t->waiters, o->event_id)) != NULL)
		waiter_answer(w, o);
}

/* A turn's finish commits lazily: a waiter hears of it only once a sync has made it
 * durable, so that no answer shown is undone by a power loss. The barrier is a job with
 * nothing to write that is not lazy: the store answers it after a sync. */
struct barrier_job {
	struct crab_store_job job;
	struct crab_turns *t;
	char *status, *event_id, *turn_id, *session_id, *text, *error_code, *error_message;
};

static int barrier_run(struct crab_store *st, struct crab_store_job *job)
{
	(void)st;
	(void)job;
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void barrier_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct barrier_job *j = (struct barrier_job *)job;
	struct crab_turn_outcome o = {
		.status = j->status, .event_id = j->event_id, .turn_id = j->turn_id,
		.session_id = j->session_id, .text = j->text, .error_code = j->error_code,
		.error_message = j->error_message,
	};

	(void)status; /* nothing to commit: the sync before it is what counts */
	answer_waiters(j->t, &o);
	free(j->status);
	free(j->event_id);
	free(j->turn_id);
	free(j->session_id);
	free(j->text);
	free(j->error_code);
	free(j->error_message);
	free(j);
}

void crab_turns_notify(struct crab_turns *t, const struct crab_turn_outcome *o)
{
	struct barrier_job *j;

	if (crab_strmap_get(t->waiters, o->event_id) == NULL)
		return;
	j = xcalloc(1, sizeof(*j));
	j->t = t;
	j->status = dup_or_null(o->status);
	j->event_id = dup_or_null(o->event_id);
	j->turn_id = dup_or_null(o->turn_id);
	j->session_id = dup_or_null(o->session_id);
	j->text = dup_or_null(o->text);
	j->error_code = dup_or_null(o->error_code);
	j->error_message = dup_or_null(o->error_message);
	j->job.run = barrier_run;
	j->job.done = barrier_done;
	crab_storeq_submit(t->gw->storeq, &j->job);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct turn_waiter *w = arg;
	struct crab_turn_outcome o = {.status = "timeout", .event_id = w->event_id};

	(void)fd;
	(void)what;
	waiter_answer(w, &o);
}

/* The turn may have finished before anyone waited: the store knows. */
struct lookup_job {
	struct crab_store_job job;
	struct turn_waiter *w;
	struct crab_store_turn turn;
	int found;
};

static int lookup_run(struct crab_store *st, struct crab_store_job *job)
{
	struct lookup_job *j = (struct lookup_job *)job;
	j->found = crab_store_turn_by_event(st, j->w->event_id, &j->turn);
	return j->found < 0 ? -1 : 0;
}

/* The answer text of a stored turn's output: its last assistant content. */
static char *output_text(const char *output)
{
	json_t *o = output ? json_loads(output, 0, NULL) : NULL;
	const char *text = NULL;
	size_t i;
	json_t *m;
	char *s;

	json_array_foreach(o, i, m) {
		if (json_is_string(json_object_get(m, "content")))
			text = json_string_value(json_object_get(m, "content"));
	}
	s = text ? xstrdup(text) : NULL;
	json_decref(o);
	return s;
}

static void lookup_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct lookup_job *j = (struct lookup_job *)job;
	struct turn_waiter *w = j->w;

	w->looking = 0;
	if (status == CRAB_JOB_OK && j->found == 1 && strcmp(j->turn.status, "running") != 0) {
		json_t *err = j->turn.error ? json_loads(j->turn.error, 0, NULL) : NULL;
		char *text = output_text(j->turn.output);
		struct crab_turn_outcome o = {
			.status = j->turn.status, .event_id = j->turn.event_id,
			.turn_id = j->turn.id, .session_id = j->turn.session_id, .text = text,
			.error_code = json_string_value(json_object_get(err, "code")),
			.error_message = json_string_value(json_object_get(err, "message")),
		};
		waiter_answer(w, &o);
		free(text);
		json_decref(err);
	} else if (w->answered) {
		free(w);
	}
	crab_store_turn_free_payloads(&j->turn);
	free(j);
}

void crab_turns_wait(struct crab_turns *t, const char *event_id, int64_t timeout_ms,
    crab_turn_wait_fn fn, void *arg)
{
	struct turn_waiter *w = xcalloc(1, sizeof(*w));
	struct lookup_job *j = xcalloc(1, sizeof(*j));
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	w->t = t;
	crab_strlcpy(w->event_id, event_id, sizeof(w->event_id));
	w->fn = fn;
	w->arg = arg;
	w->next = crab_strmap_get(t->waiters, event_id);
	crab_strmap_put(t->waiters, event_id, w);
	w->timer = evtimer_new(t->gw->base, waiter_timeout, w);
	evtimer_add(w->timer, &tv);
	w->looking = 1;
	j->w = w;
	j->job.run = lookup_run;
	j->job.done = lookup_done;
	crab_storeq_submit(t->gw->storeq, &j->job);
}

/* ---- status and shutdown ---- */

static json_t *hist_json(const struct crab_hist *h)
{
	return json_pack("{s:I, s:I, s:I, s:I}", "count", (json_int_t)h->count, "p50",
	    (json_int_t)crab_hist_percentile(h, 50), "p99", (json_int_t)crab_hist_percentile(h, 99),
	    "max", (json_int_t)h->max);
}

json_t *crab_turns_status(const struct crab_turns *t)
{
	return json_pack("{s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:o, s:o, s:I}", "running",
	    (json_int_t)t->running, "max_running", (json_int_t)t->max_running, "queued",
	    (json_int_t)t->queued, "backlog_in_store", t->overflow, "sessions_with_work", (json_int_t)crab_strmap_count(t->sessions),
	    "completed", (json_int_t)t->completed, "failed", (json_int_t)t->failed, "overhead_us",
	    hist_json(&t->overhead_us), "model_us", hist_json(&t->model_us), "context_file_reads",
	    (json_int_t)crab_context_reads(t->context));
}

static void session_free(void *p)
{
	struct tsession *s = p;
	struct pending *q, *next;

	for (q = s->head; q != NULL; q = next) {
		next = q->next;
		free(q);
	}
	free(s);
}

void crab_turns_free(struct crab_turns *t)
{
	struct turn_waiter *w;
	struct crab_turn_outcome gone = {.status = "timeout"};

	if (t == NULL)
		return;
	t->draining = 1;
	/* The store worker has finished every job: no turn waits on one. */
	for (struct turn *tr = t->all, *next; tr != NULL; tr = next) {
		next = tr->next_all;
		crab_turn_cancel(tr);
	}
	/* Waiters still waiting hear "timeout": the gateway is going away. */
	while ((w = crab_strmap_any(t->waiters)) != NULL) {
		gone.event_id = w->event_id;
		waiter_answer(w, &gone);
	}
	crab_strmap_free(t->waiters, NULL);
	crab_strmap_free(t->sessions, session_free);
	event_free(t->kick);
	crab_context_free(t->context);
	free(t);
}
