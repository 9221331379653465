/* dispatch_fast.c: see dispatch_fast.h. */
#include "dispatch_fast.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "strmap.h"
#include "util.h"

struct crab_fast_session {
	struct crab_fast_delivery *head, *tail;
	struct crab_fast_session *ready_next;
	int ready; /* on the ready list: its head may go */
	char key[];
};

struct crab_fastq {
	struct crab_strmap *sessions;    /* session key -> struct crab_fast_session */
	struct crab_fast_session *ready, *ready_tail;
	/* Every delivery held, by outbox position; a done one leaves a NULL behind until
	 * everything older is done too. slot(k) is ring[k % CRAB_FASTQ_MAX]. */
	struct crab_fast_delivery *ring[CRAB_FASTQ_MAX];
	uint64_t first, end;
	size_t count;
};

static char *put(char **p, const char *s)
{
	char *at = *p;
	size_t n = strlen(s) + 1;

	memcpy(at, s, n);
	*p += n;
	return at;
}

struct crab_fast_delivery *crab_fast_make(const struct crab_store_outbox *o, int64_t pos)
{
	const char *session = o->session_id ? o->session_id : "";
	const char *key = o->idempotency_key ? o->idempotency_key : "";
	const char *payload = o->payload ? o->payload : "";
	struct crab_fast_delivery *m = xcalloc(1, sizeof(*m) + strlen(o->id) + strlen(session) +
	    strlen(key) + strlen(payload) + 4);
	char *p = m->text;

	m->pos = pos;
	crab_id_new("dlv", m->id);
	m->due.id = m->id;
	m->due.event_id = put(&p, o->id);
	m->due.session_key = put(&p, session);
	m->due.idempotency_key = put(&p, key);
	m->due.payload = put(&p, payload);
	m->due.seq = o->seq;
	return m;
}

struct crab_fastq *crab_fastq_new(void)
{
	struct crab_fastq *q = xcalloc(1, sizeof(*q));

	q->sessions = crab_strmap_new();
	return q;
}

void crab_fastq_free(struct crab_fastq *q)
{
	struct crab_fast_delivery **all;
	size_t n;

	if (q == NULL)
		return;
	all = crab_fastq_take_all(q, &n);
	for (size_t i = 0; i < n; i++)
		free(all[i]);
	free(all);
	crab_strmap_free(q->sessions, NULL);
	free(q);
}

size_t crab_fastq_count(const struct crab_fastq *q)
{
	return q->count;
}

static void ready_push(struct crab_fastq *q, struct crab_fast_session *s)
{
	s->ready = 1;
	s->ready_next = NULL;
	if (q->ready_tail != NULL)
		q->ready_tail->ready_next = s;
	else
		q->ready = s;
	q->ready_tail = s;
}

void crab_fastq_add(struct crab_fastq *q, struct crab_fast_delivery *m)
{
	struct crab_fast_session *s = crab_strmap_get(q->sessions, m->due.session_key);

	/* The ring would wrap onto a delivery not done: the watermark would pass it. */
	if (crab_fastq_room(q) == 0)
		fatalx("dispatch: the memory queue overflowed");

	if (s == NULL) {
		size_t len = strlen(m->due.session_key) + 1;
		s = xcalloc(1, sizeof(*s) + len);
		memcpy(s->key, m->due.session_key, len);
		crab_strmap_put(q->sessions, s->key, s);
	}
	m->sess = s;
	m->next = NULL;
	if (s->tail != NULL) {
		s->tail->next = m;
	} else {
		s->head = m;
		ready_push(q, s);
	}
	s->tail = m;
	m->slot = q->end++;
	q->ring[m->slot % CRAB_FASTQ_MAX] = m;
	q->count++;
}

size_t crab_fastq_room(const struct crab_fastq *q)
{
	return CRAB_FASTQ_MAX - (size_t)(q->end - q->first);
}

struct crab_fast_delivery *crab_fastq_next(struct crab_fastq *q)
{
	struct crab_fast_session *s = q->ready;

	if (s == NULL)
		return NULL;
	q->ready = s->ready_next;
	if (q->ready == NULL)
		q->ready_tail = NULL;
	s->ready = 0;
	s->head->inflight = 1;
	return s->head;
}

void crab_fastq_requeue(struct crab_fastq *q, struct crab_fast_delivery *m)
{
	m->inflight = 0;
	if (!m->sess->ready)
		ready_push(q, m->sess);
}

void crab_fastq_done(struct crab_fastq *q, struct crab_fast_delivery *m)
{
	struct crab_fast_session *s = m->sess;

	/* Only a session's first is ever sent, so m is its head. */
	s->head = m->next;
	if (s->head != NULL) {
		ready_push(q, s);
	} else {
		s->tail = NULL;
		crab_strmap_del(q->sessions, s->key);
		free(s);
	}
	q->ring[m->slot % CRAB_FASTQ_MAX] = NULL;
	while (q->first < q->end && q->ring[q->first % CRAB_FASTQ_MAX] == NULL)
		q->first++;
	q->count--;
	free(m);
}

int64_t crab_fastq_watermark(const struct crab_fastq *q, int64_t read_up_to)
{
	return q->first < q->end ? q->ring[q->first % CRAB_FASTQ_MAX]->pos - 1 : read_up_to;
}

struct crab_fast_delivery **crab_fastq_take_all(struct crab_fastq *q, size_t *n)
{
	struct crab_fast_delivery **all = q->count ? xcalloc(q->count, sizeof(*all)) : NULL;

	*n = 0;
	for (uint64_t k = q->first; k < q->end; k++) {
		if (q->ring[k % CRAB_FASTQ_MAX] != NULL)
			all[(*n)++] = q->ring[k % CRAB_FASTQ_MAX];
	}
	while (crab_strmap_count(q->sessions) > 0)
		free(crab_strmap_del(q->sessions,
		    ((struct crab_fast_session *)crab_strmap_any(q->sessions))->key));
	q->ready = q->ready_tail = NULL;
	q->first = q->end = 0;
	q->count = 0;
	return all;
}
