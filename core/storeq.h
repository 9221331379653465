/* storeq.h: the store worker. The event loop never touches the store: it submits jobs,
 * one thread runs every job queued so far inside one transaction (group commit: one
 * fsync for many events), each job in its own savepoint so a failing job undoes only its
 * own writes, then hands the jobs back to the loop with their status.
 *
 * Where the store's durability comes apart from its commits (SQLite,
 * crab_store_sync_apart), a second thread syncs: a job is handed back only once its
 * commit is on disk, unless it is lazy. The worker meanwhile runs the next group, so
 * it never waits for the disk. A lazy job is handed back as soon as it commits: for work
 * whose commit a power loss may undo because it is done again after the restart (a
 * turn's progress), never for what a producer or a reader outside is told.
 *
 * A job's results may be acted on only when its status is CRAB_JOB_OK: a result computed
 * inside a transaction that did not commit is void. */
#ifndef CRAB_STOREQ_H
#define CRAB_STOREQ_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

enum crab_job_status {
	CRAB_JOB_OK = 0,          /* ran and committed */
	CRAB_JOB_FAILED = -1,     /* run returned -1: its writes were rolled back */
	CRAB_JOB_UNAVAILABLE = -2 /* the transaction could not begin or commit */
};

struct crab_store_job {
	/* Worker thread, inside the transaction: 0 keeps the job's writes, -1 undoes them. */
	int (*run)(struct crab_store *st, struct crab_store_job *job);
	/* Loop thread, after the commit; the job belongs to the caller again. */
	void (*done)(struct crab_store_job *job, enum crab_job_status status);
	enum crab_job_status status;
	int lazy; /* answered once committed, before its commit is on disk (see above) */
	struct crab_store_job *next; /* private to storeq */
};

/* What the worker has done since it started. */
struct crab_storeq_stats {
	uint64_t commits, jobs, syncs;
};

struct crab_storeq;

/* Starts the worker thread; the store belongs to the queue until crab_storeq_free. */
struct crab_storeq *crab_storeq_new(struct event_base *base, struct crab_store *st);
void crab_storeq_submit(struct crab_storeq *q, struct crab_store_job *job);
/* fn(arg) runs on the loop after each burst of done callbacks (the dispatcher looks
 * there for outbox rows to deliver). */
void crab_storeq_after_done(struct crab_storeq *q, void (*fn)(void *arg), void *arg);
/* A tap: what jobs leave for the loop besides their own results (the outbox rows a
 * group wrote). The worker marks it before each job and rolls it back to the mark when
 * the job's savepoint is (to 0 when the whole group is), takes it at the commit, and
 * the loop gets it by deliver once the group is durable, groups in commit order;
 * discard frees what shutdown leaves undelivered. */
struct crab_storeq_tap {
	size_t (*mark)(void *ctx);
	void (*rollback)(void *ctx, size_t mark);
	void *(*take)(void *ctx);             /* NULL: nothing this group */
	void (*deliver)(void *ctx, void *taken);
	void (*discard)(void *ctx, void *taken);
	void *ctx;
};
void crab_storeq_set_tap(struct crab_storeq *q, const struct crab_storeq_tap *tap);
/* Jobs submitted whose done callback has not run yet. */
size_t crab_storeq_pending(struct crab_storeq *q);
void crab_storeq_stats(struct crab_storeq *q, struct crab_storeq_stats *out);
/* Finishes queued jobs, stops the thread, closes the store. Call with no jobs pending
 * (their done callbacks would never run). */
void crab_storeq_free(struct crab_storeq *q);

#endif
