/* dispatch_fast.h: the dispatcher's memory path. While a subscriber keeps up, the
 * fan-out hands its new deliveries to a queue in memory instead of writing rows, and a
 * delivery that succeeds first time costs the store nothing; the subscriber's cursor
 * (written now and then) stays below the oldest delivery not yet done, so a crash sends
 * again, never loses. The first failed attempt moves the queue into rows (dispatch.c),
 * and the subscriber stays on rows until they are drained.
 *
 * The queue keeps each session's deliveries in order and sends only a session's first
 * (as the rows do): sessions whose first may go wait in one ready list, oldest first. */
#ifndef CRAB_DISPATCH_FAST_H
#define CRAB_DISPATCH_FAST_H

#include <stddef.h>
#include <stdint.h>

#include "id.h"
#include "store/store.h"

struct crab_fast_session;

struct crab_fast_delivery {
	struct crab_fast_delivery *next; /* its session's queue */
	struct crab_fast_session *sess;
	int64_t pos;                     /* its event's outbox position */
	uint64_t slot;                   /* where the queue holds it */
	int inflight;
	struct crab_store_delivery_due due; /* strings in text[] */
	char id[CRAB_ID_MAX];
	char text[];
};

/* Any thread (the fan-out makes them on the store worker): a new delivery of the event
 * o at outbox position pos, with a new id; free() frees it. */
struct crab_fast_delivery *crab_fast_make(const struct crab_store_outbox *o, int64_t pos);

struct crab_fastq;
struct crab_fastq *crab_fastq_new(void);
void crab_fastq_free(struct crab_fastq *q);
/* Deliveries held, sent or not. */
#define CRAB_FASTQ_MAX 1024
size_t crab_fastq_count(const struct crab_fastq *q);
/* How many more it may take now: CRAB_FASTQ_MAX less the span from the oldest
 * delivery held to the newest (done ones in between still take their place, so that
 * one slow session's first holds the watermark without being overwritten). */
size_t crab_fastq_room(const struct crab_fastq *q);
/* Takes m, the newest (outbox positions only grow). Only when there is room. */
void crab_fastq_add(struct crab_fastq *q, struct crab_fast_delivery *m);
/* The oldest ready session's first delivery, now in flight; NULL: none may go. */
struct crab_fast_delivery *crab_fastq_next(struct crab_fastq *q);
/* m was delivered: it goes (freed), and its session's next may go. */
void crab_fastq_done(struct crab_fastq *q, struct crab_fast_delivery *m);
/* m was not sent after all: first of its session again. */
void crab_fastq_requeue(struct crab_fastq *q, struct crab_fast_delivery *m);
/* The outbox position the subscriber's cursor may store: below every delivery held, or
 * read_up_to when none is. */
int64_t crab_fastq_watermark(const struct crab_fastq *q, int64_t read_up_to);
/* Empties the queue: every delivery it held, oldest first, now the caller's (*n of
 * them, an array to free; NULL when none). */
struct crab_fast_delivery **crab_fastq_take_all(struct crab_fastq *q, size_t *n);

#endif
