/* dispatch.c: see dispatch.h. Subscribers, sending and outcomes; the fan-out is in
 * dispatch_fanout.c, the memory path's queue in dispatch_fast.c. Store jobs here: heads
 * (the due rows of one subscriber), outcome (one attempt's result on a row) and spill
 * (the memory queue into rows, at a failed attempt). All are lazy: a commit a power
 * loss undoes is done again after the restart, and a delivery is at least once anyway. */
#include "dispatch_int.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "gateway.h"
#include "http_client.h"
#include "id.h"
#include "jsontext.h"
#include "log.h"
#include "outbox.h"
#include "peers.h"
#include "strmap.h"
#include "util.h"

#define MAX_INFLIGHT 32     /* deliveries on the wire per subscriber */
#define SEND_TIMEOUT_MS 10000
#define POLL_MS 1000        /* retries come due on the crab clock: looked at this often */
#define ERROR_MAX 200

struct send {
	struct sub *s;
	struct crab_fast_delivery *fast; /* from the memory queue; NULL: a row */
	char id[CRAB_ID_MAX];
	int64_t attempts;    /* before this one */
	int64_t retry_after; /* seconds, from a 429 or 503 answer */
	char *url, *body, *key_header;
	struct crab_tls_pin pin;
	struct crab_http_call *call;
	struct event *ack_timer; /* sent over the subscriber's WebSocket: waiting for its ack */
};

int64_t crab_delivery_backoff_ms(int64_t failed)
{
	int64_t ms = CRAB_DELIVERY_FIRST_BACKOFF_MS;

	while (--failed > 0 && ms < CRAB_DELIVERY_MAX_BACKOFF_MS)
		ms *= 2;
	return ms < CRAB_DELIVERY_MAX_BACKOFF_MS ? ms : CRAB_DELIVERY_MAX_BACKOFF_MS;
}

static void send_free(struct send *x)
{
	if (x->ack_timer != NULL)
		event_free(x->ack_timer);
	free(x->url);
	free(x->body);
	free(x->key_header);
	EVP_PKEY_free(x->pin.key);
	free(x);
}

/* ---- subscribers ---- */

static void sub_free(struct sub *s)
{
	crab_http_client_free(s->http); /* cancels without callbacks */
	while (crab_strmap_count(s->sending) > 0) {
		struct send *x = crab_strmap_any(s->sending);
		crab_strmap_del(s->sending, x->id);
		send_free(x);
	}
	crab_strmap_free(s->sending, NULL);
	crab_fastq_free(s->fq);
	free(s->endpoint);
	json_decref(s->types);
	json_decref(s->tenants);
	free(s);
}

struct sub *crab_dispatch_sub_find(struct crab_dispatch *d, const char *peer_id)
{
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		if (strcmp(s->peer_id, peer_id) == 0)
			return s;
	}
	return NULL;
}

/* A list (offers, a grant; NULL: everything) narrowed to the YAML's (NULL: no
 * narrowing): a new reference. */
static json_t *narrowed(json_t *list, char **only, size_t nonly)
{
	json_t *out;

	if (only == NULL)
		return json_incref(list);
	out = json_array();
	for (size_t k = 0; k < nonly; k++) {
		if (list == NULL || crab_json_list_has(list, only[k]))
			json_array_append_new(out, json_string(only[k]));
	}
	return out;
}

/* Subscribers are the live subscriber peers with an endpoint: their set is read again
 * from the peer index when it changed. A subscriber that went is freed once nothing of
 * it is in flight. */
void crab_dispatch_refresh_subs(struct crab_dispatch *d)
{
	struct sub **pp;

	for (struct sub *s = d->subs; s != NULL; s = s->next)
		s->gone = 1;
	for (struct crab_peer *p = crab_peer_table_first(d->gw->peers); p != NULL; p = p->next) {
		const struct crab_config_subscriber *filter;
		struct sub *s;

		if (p->type != CRAB_PEER_SUBSCRIBER || p->endpoint == NULL)
			continue;
		filter = crab_config_subscriber_find(d->gw->cfg, p->component_id);
		if ((s = crab_dispatch_sub_find(d, p->id)) == NULL) {
			s = xcalloc(1, sizeof(*s));
			s->d = d;
			crab_strlcpy(s->peer_id, p->id, sizeof(s->peer_id));
			crab_strlcpy(s->fp, p->fingerprint, sizeof(s->fp));
			s->endpoint = xstrdup(p->endpoint);
			s->sending = crab_strmap_new();
			s->fq = crab_fastq_new();
			s->next = d->subs;
			d->subs = s;
			s->fresh = 1; /* what was pending before (a restart) goes at once */
		}
		s->gone = 0;
		json_decref(s->types);
		json_decref(s->tenants);
		s->types = narrowed(json_object_get(p->offers, "subscribes"),
		    filter ? filter->types : NULL, filter ? filter->ntypes : 0);
		s->tenants = narrowed(p->tenants, filter ? filter->tenants : NULL,
		    filter ? filter->ntenants : 0);
	}
	for (pp = &d->subs; *pp != NULL;) {
		struct sub *s = *pp;
		if (s->gone && s->inflight == 0 && !s->heads_busy) {
			*pp = s->next;
			sub_free(s);
		} else {
			pp = &s->next;
		}
	}
	d->peers_dirty = 0;
}

/* ---- sending ---- */

static int send_one(struct sub *s, const struct crab_store_delivery_due *due,
    struct crab_fast_delivery *fast);

struct head {
	struct crab_store_delivery_due due; /* strings below, owned */
	char *id, *event_id, *session_key, *key, *payload;
};

struct heads_job {
	struct crab_store_job job;
	struct sub *s;
	char sub_id[CRAB_ID_MAX];
	int64_t limit, next_ms;
	struct head *heads;
	size_t n;
};

static int head_take(const struct crab_store_delivery_due *due, void *arg)
{
	struct heads_job *j = arg;
	struct head *h;

	j->heads = xrealloc(j->heads, (j->n + 1) * sizeof(*j->heads));
	h = &j->heads[j->n++];
	h->due = *due;
	h->due.id = h->id = xstrdup(due->id);
	h->due.event_id = h->event_id = xstrdup(due->event_id);
	h->due.session_key = h->session_key = xstrdup(due->session_key);
	h->due.idempotency_key = h->key = xstrdup(due->idempotency_key ? due->idempotency_key : "");
	h->due.payload = h->payload = xstrdup(due->payload);
	return 0;
}

static int heads_run(struct crab_store *st, struct crab_store_job *job)
{
	struct heads_job *j = (struct heads_job *)job;

	return crab_store_delivery_heads(st, j->sub_id, crab_clock_now_ms(), j->limit, head_take,
	    j, &j->next_ms);
}

static void heads_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct heads_job *j = (struct heads_job *)job;
	struct sub *s = j->s;

	s->heads_busy = 0;
	if (status == CRAB_JOB_OK) {
		s->next_ms = j->next_ms;
		/* Rows all gone: a fan-out takes the subscriber back to the memory path. */
		if (!s->fast && j->n == 0 && j->next_ms == 0)
			crab_dispatch_kick_later(s->d);
		for (size_t i = 0; i < j->n; i++) {
			if (!s->gone && crab_strmap_get(s->sending, j->heads[i].id) == NULL &&
			    s->inflight < MAX_INFLIGHT)
				send_one(s, &j->heads[i].due, NULL);
		}
	}
	for (size_t i = 0; i < j->n; i++) {
		free(j->heads[i].id);
		free(j->heads[i].event_id);
		free(j->heads[i].session_key);
		free(j->heads[i].key);
		free(j->heads[i].payload);
	}
	free(j->heads);
	free(j);
	if (s->heads_again) {
		s->heads_again = 0;
		crab_dispatch_schedule_heads(s);
	}
}

void crab_dispatch_schedule_heads(struct sub *s)
{
	struct heads_job *j;

	if (s->gone || s->d->gw->draining || s->inflight >= MAX_INFLIGHT)
		return;
	if (s->heads_busy) {
		s->heads_again = 1;
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	crab_strlcpy(j->sub_id, s->peer_id, sizeof(j->sub_id));
	/* What is on the wire comes back too (it is still the head of its session). */
	j->limit = MAX_INFLIGHT;
	j->job.run = heads_run;
	j->job.done = heads_done;
	j->job.lazy = 1;
	s->heads_busy = 1;
	crab_storeq_submit(s->d->gw->storeq, &j->job);
}

/* ---- outcomes ---- */

enum outcome { DELIVERED, RETRY, DEAD };

struct outcome_job {
	struct crab_store_job job;
	struct sub *s;
	char id[CRAB_ID_MAX];
	enum outcome what;
	int64_t attempts, next_at;
	char error[ERROR_MAX + 64];
};

static int outcome_run(struct crab_store *st, struct crab_store_job *job)
{
	struct outcome_job *j = (struct outcome_job *)job;
	char letter[CRAB_ID_MAX];

	switch (j->what) {
	case DELIVERED:
		return crab_store_delivery_done(st, j->id);
	case RETRY:
		return crab_store_delivery_retry(st, j->id, j->attempts, j->next_at, j->error);
	case DEAD:
		crab_id_new("dlq", letter);
		return crab_store_delivery_dead(st, j->id, letter, j->attempts, j->error,
		    crab_clock_now_ms());
	}
	return -1;
}

/* An attempt is over and its result stored (or, on the memory path, needs no storing):
 * its send goes, and the subscriber may send more. */
static void finished(struct sub *s, const char *id, enum outcome what)
{
	struct crab_dispatch *d = s->d;

	send_free(crab_strmap_del(s->sending, id));
	s->inflight--;
	if (what == DELIVERED)
		d->delivered++;
	else if (what == RETRY)
		d->retried++;
	else
		d->dead_lettered++;
	if (s->gone && s->inflight == 0)
		d->peers_dirty = 1;
	crab_dispatch_pump(s);
	/* The heads are looked up again once half the window is free, not per outcome:
	 * a query per delivery was what the store worker spent its time on. */
	if (s->inflight <= MAX_INFLIGHT / 2)
		crab_dispatch_schedule_heads(s);
}

static void outcome_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct outcome_job *j = (struct outcome_job *)job;

	(void)status; /* a result not stored is found again: the delivery is still pending */
	finished(j->s, j->id, j->what);
	free(j);
}

/* ---- the memory path ---- */

void crab_dispatch_pump(struct sub *s)
{
	struct crab_fast_delivery *m;

	while (!s->gone && !s->d->gw->draining && s->inflight < MAX_INFLIGHT &&
	    (m = crab_fastq_next(s->fq)) != NULL) {
		if (send_one(s, &m->due, m) != 0)
			break;
	}
	if (s->behind && crab_fastq_room(s->fq) >= CRAB_FASTQ_MAX / 2) {
		s->behind = 0; /* room again: read on */
		crab_dispatch_kick_later(s->d);
	}
}

/* Rows for memory deliveries, the cursor moved past them, and the failed attempt that
 * made the subscriber leave the memory path, if any (o.id empty when not), in one
 * transaction. If it does not commit, the cursor has not moved: the fan-out writes
 * rows again from there. */
struct spill_job {
	struct outcome_job o;
	char sub_id[CRAB_ID_MAX];
	struct crab_fast_delivery **m;
	size_t n;
	int64_t pos;
};

static int spill_run(struct crab_store *st, struct crab_store_job *job)
{
	struct spill_job *j = (struct spill_job *)job;
	int64_t now = crab_clock_now_ms();

	for (size_t i = 0; i < j->n; i++) {
		if (crab_store_delivery_insert(st, &(struct crab_store_delivery){
			.id = j->m[i]->id, .event_id = j->m[i]->due.event_id, .subscriber = j->sub_id,
			.session_key = j->m[i]->due.session_key, .seq = j->m[i]->due.seq,
			.created_at = now}) != 0)
			return -1;
	}
	if (crab_store_cursor_set(st, j->sub_id, j->pos) != 0)
		return -1;
	return j->o.id[0] != '\0' ? outcome_run(st, &j->o.job) : 0;
}

static void spill_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct spill_job *j = (struct spill_job *)job;

	(void)status;
	for (size_t i = 0; i < j->n; i++)
		free(j->m[i]);
	free(j->m);
	if (j->o.id[0] != '\0')
		finished(j->o.s, j->o.id, j->o.what);
	crab_dispatch_schedule_heads(j->o.s);
	free(j);
}

static void submit_spill(struct sub *s, struct spill_job *j)
{
	j->o.s = s;
	crab_strlcpy(j->sub_id, s->peer_id, sizeof(j->sub_id));
	j->o.job.run = spill_run;
	j->o.job.done = spill_done;
	j->o.job.lazy = 1;
	crab_storeq_submit(s->d->gw->storeq, &j->o.job);
}

void crab_dispatch_spill(struct sub *s, struct crab_fast_delivery **m, size_t n, int64_t pos)
{
	struct spill_job *j = xcalloc(1, sizeof(*j));

	j->m = m;
	j->n = n;
	j->pos = pos;
	submit_spill(s, j);
}

static void send_to_row(void *value, void *arg)
{
	(void)arg;
	((struct send *)value)->fast = NULL;
}

/* A memory delivery's attempt failed (outcome o, taken): everything the queue holds
 * becomes a row, the subscriber goes over to rows, and o is stored on its row. What is
 * still on the wire finishes on its row. */
static void leave_memory(struct sub *s, struct outcome_job *o)
{
	struct spill_job *j = xcalloc(1, sizeof(*j));

	j->o = *o;
	free(o);
	crab_strmap_each(s->sending, send_to_row, NULL);
	j->m = crab_fastq_take_all(s->fq, &j->n);
	j->pos = s->read_pos;
	s->fast = 0;
	s->behind = 0;
	submit_spill(s, j);
}

/* 2xx and 409: delivered; 408, 429, 5xx and no answer: again; other 4xx: dead now. */
static enum outcome judge(int status, const char *error)
{
	if (error != NULL)
		return RETRY;
	if ((status >= 200 && status < 300) || status == 409)
		return DELIVERED;
	if (status == 408 || status == 429 || status >= 500)
		return RETRY;
	return DEAD;
}

static void on_header(void *arg, int status, const char *line, size_t len)
{
	struct send *x = arg;
	const size_t n = sizeof("Retry-After:") - 1;
	char num[16];
	size_t skip;

	(void)status;
	if (len <= n || len - n >= sizeof(num) || strncasecmp(line, "Retry-After:", n) != 0)
		return;
	memcpy(num, line + n, len - n);
	num[len - n] = '\0';
	skip = strspn(num, " \t");
	if (crab_parse_int64(num + skip, 0, 3600, &x->retry_after) != 0)
		x->retry_after = 0; /* an HTTP date, or nonsense: the backoff decides */
}

static void on_sent(void *arg, int status, const char *body, size_t len, const char *error);

/* Over the subscriber's own WebSocket: done at its ack, or judged a timeout. */
static void ack_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	on_sent(arg, 0, NULL, 0, "no acknowledgement over the subscriber's WebSocket");
}

/* {"delivery_id","attempt"[,"replayed"],"event"}, as a push body, or a WebSocket
 * frame with "op":"deliver" first. */
static char *delivery_json(const struct crab_store_delivery_due *due, int frame)
{
	struct crab_buf b = {0};

	crab_jobj_open(&b);
	if (frame)
		crab_jobj_str(&b, "op", "deliver");
	crab_jobj_str(&b, "delivery_id", due->id);
	crab_jobj_int(&b, "attempt", due->attempts + 1);
	if (due->replayed)
		crab_jobj_bool(&b, "replayed", 1);
	crab_jobj_raw(&b, "event", due->payload);
	crab_jobj_close(&b);
	return crab_buf_take(&b);
}

static int send_ws(struct sub *s, struct send *x, const struct crab_store_delivery_due *due)
{
	struct timeval tv = {SEND_TIMEOUT_MS / 1000, (SEND_TIMEOUT_MS % 1000) * 1000};
	char *frame = delivery_json(due, 1);
	int rc;

	rc = s->ws_send(s->ws, frame, strlen(frame));
	free(frame);
	if (rc != 0)
		return -1;
	x->ack_timer = evtimer_new(s->d->gw->base, ack_timeout, x);
	evtimer_add(x->ack_timer, &tv);
	return 0;
}

static void on_sent(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct send *x = arg;
	struct sub *s = x->s;
	struct crab_dispatch *d = s->d;
	struct outcome_job *j;
	enum outcome what = judge(status, error);
	int64_t now = crab_clock_now_ms(), wait;

	(void)body;
	(void)len;
	x->call = NULL;
	if (x->ack_timer != NULL) {
		event_free(x->ack_timer);
		x->ack_timer = NULL;
	}
	if (d->gw->draining) { /* it stays pending: sent again after the next start */
		send_free(crab_strmap_del(s->sending, x->id));
		s->inflight--;
		return;
	}
	if (what == DELIVERED && x->fast != NULL) { /* the memory path: nothing to store */
		crab_fastq_done(s->fq, x->fast);
		finished(s, x->id, DELIVERED);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->s = s;
	crab_strlcpy(j->id, x->id, sizeof(j->id));
	j->what = what;
	j->attempts = x->attempts + 1;
	if (error != NULL)
		snprintf(j->error, sizeof(j->error), "%.*s", ERROR_MAX,
		    x->pin.mismatch ? "pin_mismatch: the subscriber's key is not its pin" : error);
	else if (j->what != DELIVERED)
		snprintf(j->error, sizeof(j->error), "HTTP %d", status);
	if (j->what == RETRY && j->attempts >= CRAB_DELIVERY_MAX_ATTEMPTS)
		j->what = DEAD;
	if (j->what == RETRY) {
		/* Full backoff, then up to half of it taken off at random: retries of many
		 * deliveries that failed together spread out. */
		wait = crab_delivery_backoff_ms(j->attempts);
		wait -= (int64_t)(random() % (wait / 2 + 1));
		if (x->retry_after * 1000 > wait)
			wait = x->retry_after * 1000;
		j->next_at = now + wait;
	}
	if (j->what != DELIVERED)
		log_info("delivery %s to %s: %s (attempt %lld)%s", x->id, s->peer_id, j->error,
		    (long long)j->attempts, j->what == DEAD ? ": dead letter" : "");
	if (x->fast != NULL) {
		leave_memory(s, j);
		return;
	}
	j->job.run = outcome_run;
	j->job.done = outcome_done;
	j->job.lazy = 1;
	crab_storeq_submit(d->gw->storeq, &j->job);
}

/* x did not go after all (or its WebSocket went before the ack): as if never sent. */
static void unsent(struct sub *s, struct send *x)
{
	if (x->fast != NULL)
		crab_fastq_requeue(s->fq, x->fast);
	send_free(crab_strmap_del(s->sending, x->id));
	s->inflight--;
}

/* 0 on the wire, -1 not (the poll tries again). */
static int send_one(struct sub *s, const struct crab_store_delivery_due *due,
    struct crab_fast_delivery *fast)
{
	struct crab_dispatch *d = s->d;
	struct send *x = xcalloc(1, sizeof(*x));
	struct crab_buf b = {0};
	const char *headers[3];

	x->s = s;
	x->fast = fast;
	crab_strlcpy(x->id, due->id, sizeof(x->id));
	x->attempts = due->attempts;
	if (s->ws != NULL) {
		crab_strmap_put(s->sending, x->id, x);
		s->inflight++;
		if (send_ws(s, x, due) != 0) {
			unsent(s, x);
			return -1;
		}
		return 0;
	}
	x->body = delivery_json(due, 0);
	crab_buf_add(&b, "Idempotency-Key: ", 17);
	crab_buf_add(&b, due->idempotency_key, strcspn(due->idempotency_key, "\r\n"));
	x->key_header = crab_buf_take(&b);
	x->url = xmalloc(strlen(s->endpoint) + sizeof("/v1/deliver"));
	sprintf(x->url, "%s/v1/deliver", s->endpoint);
	headers[0] = "Content-Type: application/json";
	headers[1] = x->key_header;
	headers[2] = NULL;
	x->pin.id = d->gw->identity;
	x->pin.expect = s->fp;
	x->pin.reuse = 1; /* this client carries this subscriber's pin only */
	if (s->http == NULL)
		s->http = crab_http_client_new(d->gw->base);
	crab_strmap_put(s->sending, x->id, x);
	s->inflight++;
	x->call = crab_http_client_start_pinned(s->http,
	    &(struct crab_http_req_v1){.size = sizeof(struct crab_http_req_v1), .method = "POST",
		.url = x->url, .headers = headers, .body = x->body, .body_len = strlen(x->body),
		.timeout_ms = SEND_TIMEOUT_MS, .max_response_bytes = 64 << 10},
	    &(struct crab_http_handler_v1){.size = sizeof(struct crab_http_handler_v1),
		.on_header = on_header, .on_done = on_sent},
	    x, &x->pin);
	if (x->call == NULL) { /* cannot even start (the client is full) */
		unsent(s, x);
		return -1;
	}
	return 0;
}

/* ---- a subscriber's own WebSocket ---- */

int crab_dispatch_attach(struct crab_dispatch *d, const char *fingerprint, void *conn,
    int (*send)(void *conn, const char *text, size_t len))
{
	int n = 0;

	if (d->peers_dirty)
		crab_dispatch_refresh_subs(d);
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		if (s->gone || strcmp(s->fp, fingerprint) != 0)
			continue;
		s->ws = conn;
		s->ws_send = send;
		s->next_ms = 0;
		crab_dispatch_pump(s);
		crab_dispatch_schedule_heads(s);
		n++;
	}
	return n;
}

void crab_dispatch_ack(struct crab_dispatch *d, void *conn, const char *delivery_id)
{
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		struct send *x = s->ws == conn ? crab_strmap_get(s->sending, delivery_id) : NULL;
		if (x != NULL && x->ack_timer != NULL) {
			on_sent(x, 200, NULL, 0, NULL);
			return;
		}
	}
}

struct ws_sends {
	struct send **sends;
	size_t *n;
};

static void collect_ws_sends(void *value, void *arg)
{
	struct send *x = value;
	struct ws_sends *w = arg;

	if (x->ack_timer != NULL)
		w->sends[(*w->n)++] = x;
}

void crab_dispatch_detach(struct crab_dispatch *d, void *conn)
{
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		struct send **waiting;
		size_t n = 0;

		if (s->ws != conn)
			continue;
		s->ws = NULL;
		/* Not acknowledged: back to pending as it was (no attempt counted), so it
		 * goes again, first of its session. A push in flight stays. */
		waiting = xcalloc(crab_strmap_count(s->sending) + 1, sizeof(*waiting));
		crab_strmap_each(s->sending, collect_ws_sends, &(struct ws_sends){waiting, &n});
		for (size_t i = 0; i < n; i++)
			unsent(s, waiting[i]);
		free(waiting);
		crab_dispatch_pump(s);
		crab_dispatch_schedule_heads(s);
	}
}

/* ---- waking up ---- */

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_dispatch *d = arg;

	(void)fd;
	(void)what;
	crab_dispatch_fanout(d);
}

void crab_dispatch_kick_later(struct crab_dispatch *d)
{
	static const struct timeval now = {0, 0};

	if (!d->gw->draining)
		event_add(d->kick_ev, &now);
}

void crab_dispatch_kick(struct crab_dispatch *d)
{
	/* A replay, a moved clock: what is pending may go now. */
	for (struct sub *s = d->subs; s != NULL; s = s->next)
		crab_dispatch_schedule_heads(s);
	crab_dispatch_kick_later(d);
}

void crab_dispatch_peers_changed(struct crab_dispatch *d)
{
	d->peers_dirty = 1;
	crab_dispatch_kick_later(d);
}

/* Only subscribers on rows read the outbox for each commit: those on the memory path
 * get the rows from their durable group (crab_dispatch_published). */
void crab_dispatch_outbox_moved(struct crab_dispatch *d)
{
	if (d == NULL || crab_outbox_writes() == d->outbox_seen)
		return;
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		if (!s->gone && (!s->fast || s->gap)) {
			crab_dispatch_kick_later(d);
			return;
		}
	}
}

/* Retries come due on the crab clock, which tests move: looked at every second, as are
 * sends that could not start and the memory path's cursors. */
static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_dispatch *d = arg;
	int64_t now = crab_clock_now_ms();
	int fast = 0;

	(void)fd;
	(void)what;
	if (d->gw->draining)
		return;
	if (d->peers_dirty)
		crab_dispatch_kick_later(d);
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		crab_dispatch_pump(s);
		if (s->next_ms != 0 && s->next_ms <= now)
			crab_dispatch_schedule_heads(s);
		fast |= s->fast && !s->gone;
	}
	crab_outbox_collect(fast); /* rows are kept for no one else */
	crab_dispatch_store_cursors(d);
}

void crab_dispatch_drain(struct crab_dispatch *d)
{
	crab_dispatch_store_cursors(d); /* what was delivered is not sent again */
}

struct crab_dispatch *crab_dispatch_new(struct crab_gateway *gw)
{
	struct crab_dispatch *d = xcalloc(1, sizeof(*d));
	struct timeval every = {POLL_MS / 1000, (POLL_MS % 1000) * 1000};

	d->gw = gw;
	d->peers_dirty = 1;
	d->kick_ev = evtimer_new(gw->base, kick_cb, d);
	d->poll_ev = event_new(gw->base, -1, EV_PERSIST, poll_cb, d);
	event_add(d->poll_ev, &every);
	crab_dispatch_kick_later(d);
	return d;
}

void crab_dispatch_free(struct crab_dispatch *d)
{
	if (d == NULL)
		return;
	event_free(d->kick_ev);
	event_free(d->poll_ev);
	while (d->subs != NULL) {
		struct sub *s = d->subs;
		d->subs = s->next;
		sub_free(s);
	}
	free(d);
}

json_t *crab_dispatch_status(struct crab_dispatch *d)
{
	json_t *subs = json_array();
	int inflight = 0;

	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		inflight += s->inflight;
		json_array_append_new(subs, json_pack("{s:s, s:i, s:I, s:I, s:b}", "peer_id",
		    s->peer_id, "inflight", s->inflight, "next_retry_at", (json_int_t)s->next_ms,
		    "queued", (json_int_t)crab_fastq_count(s->fq), "memory_path", s->fast));
	}
	return json_pack("{s:I, s:I, s:I, s:i, s:o}", "delivered", (json_int_t)d->delivered,
	    "retried", (json_int_t)d->retried, "dead_lettered", (json_int_t)d->dead_lettered,
	    "inflight", inflight, "subscribers", subs);
}
