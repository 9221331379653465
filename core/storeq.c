/* storeq.c: one worker thread, a mutex-protected queue in, a done list out, and a libevent
 * event made active from a thread to wake the loop (libevent_pthreads makes that safe).
 * Where the store syncs apart from its commits, a sync thread takes the jobs that must
 * wait for the disk from the worker, syncs once for all it has, and hands them on. */
#include "storeq.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define BATCH_MAX 4096 /* bounds one transaction's size and the loop's reply burst */
#define IDLE_TRIM_S 1  /* quiet this long after work, caches and free heap go back */
#define DONE_BURST 64  /* jobs answered in one go on the loop */

/* A singly linked list of jobs with a tail pointer. */
struct jobq {
	struct crab_store_job *head, **tail;
};

struct crab_storeq {
	struct crab_store *store;
	int sync_apart;
	pthread_t thread, sync_thread;
	pthread_mutex_t lock;
	pthread_cond_t wake, sync_wake;
	struct jobq todo, to_sync, done; /* under lock */
	struct event *done_ev, *more_ev;
	struct crab_storeq_stats stats; /* under lock */
	size_t pending; /* loop thread only */
	int stop, worker_stopped;
	void (*after_done)(void *arg); /* loop thread only */
	void *after_done_arg;
	struct crab_storeq_tap tap;     /* under lock; mark NULL: none */
};

/* A group's tap collection, on its way to the loop like a job that is not lazy. Only
 * these jobs have no run: they were never submitted, so they are not pending. */
struct tap_job {
	struct crab_store_job job;
	struct crab_storeq *q;
	void *taken;
};

static void jobq_init(struct jobq *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void jobq_push(struct jobq *l, struct crab_store_job *j)
{
	j->next = NULL;
	*l->tail = j;
	l->tail = &j->next;
}

/* Takes the first max jobs off the list (all with max < 0), as a NULL-ended list. */
static struct crab_store_job *jobq_take(struct jobq *l, int max)
{
	struct crab_store_job *first = l->head, **cut = &l->head;

	for (int n = 0; *cut != NULL && n != max; n++)
		cut = &(*cut)->next;
	l->head = *cut;
	*cut = NULL;
	if (l->head == NULL)
		l->tail = &l->head;
	return first;
}

/* Appends a NULL-ended list. */
static void jobq_append(struct jobq *l, struct crab_store_job *jobs)
{
	*l->tail = jobs;
	while (*l->tail != NULL)
		l->tail = &(*l->tail)->next;
}

static void tap_delivered(struct crab_store_job *job, enum crab_job_status status)
{
	struct tap_job *t = (struct tap_job *)job;

	(void)status;
	t->q->tap.deliver(t->q->tap.ctx, t->taken);
	free(t);
}

/* After run_batch: the group's collection, as one more job at the head of the batch
 * (returned), so that its rows go out before the loop answers the group's own jobs,
 * which may be thousands. Groups stay in commit order. */
static struct crab_store_job *tap_take(const struct crab_storeq_tap *tap,
    struct crab_storeq *q, struct crab_store_job *batch)
{
	struct tap_job *t;
	void *taken = tap->take(tap->ctx);

	if (taken == NULL)
		return batch;
	t = xcalloc(1, sizeof(*t));
	t->job.done = tap_delivered;
	t->job.status = CRAB_JOB_OK;
	t->job.next = batch;
	t->q = q;
	t->taken = taken;
	return &t->job;
}

static void run_batch(struct crab_store *st, struct crab_store_job *batch,
    const struct crab_storeq_tap *tap)
{
	struct crab_store_job *j;
	size_t mark = 0;

	if (crab_store_begin(st) != 0) {
		log_warnx("store: cannot begin a transaction: %s", crab_store_error(st));
		for (j = batch; j != NULL; j = j->next)
			j->status = CRAB_JOB_UNAVAILABLE;
		return;
	}
	for (j = batch; j != NULL; j = j->next) {
		if (crab_store_savepoint(st) != 0) {
			j->status = CRAB_JOB_UNAVAILABLE;
			continue;
		}
		if (tap->mark != NULL)
			mark = tap->mark(tap->ctx);
		if (j->run(st, j) == 0) {
			j->status = CRAB_JOB_OK;
			if (crab_store_savepoint_release(st) != 0)
				j->status = CRAB_JOB_UNAVAILABLE;
		} else {
			j->status = CRAB_JOB_FAILED;
			if (crab_store_savepoint_rollback(st) != 0)
				j->status = CRAB_JOB_UNAVAILABLE;
		}
		if (j->status != CRAB_JOB_OK && tap->mark != NULL)
			tap->rollback(tap->ctx, mark);
	}
	if (crab_store_commit(st) != 0) {
		log_warnx("store: commit failed: %s", crab_store_error(st));
		crab_store_rollback(st);
		for (j = batch; j != NULL; j = j->next)
			j->status = CRAB_JOB_UNAVAILABLE;
		if (tap->mark != NULL)
			tap->rollback(tap->ctx, 0);
	}
}

/* Waits for work. After a burst the store's page cache stays full and malloc keeps what
 * the jobs freed (here and on the loop thread) for reuse; once nothing has come for
 * IDLE_TRIM_S both go back to the system, so that an idle gateway's private memory
 * stays small. Called and returns with the lock held. */
static void wait_for_work(struct crab_storeq *q, int *worked)
{
	struct timespec until;

	while (q->todo.head == NULL && !q->stop) {
		if (!*worked) {
			pthread_cond_wait(&q->wake, &q->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += IDLE_TRIM_S;
		if (pthread_cond_timedwait(&q->wake, &q->lock, &until) == ETIMEDOUT &&
		    q->todo.head == NULL) {
			*worked = 0;
			pthread_mutex_unlock(&q->lock);
			crab_store_release_memory(q->store);
			malloc_trim(0);
			pthread_mutex_lock(&q->lock);
		}
	}
	*worked = 1;
}

/* A group that has run: lazy jobs go to the loop at once, the others through the sync
 * thread first (a failed job too: a duplicate's answer names an event that may have
 * committed in this very group). */
static void hand_on(struct crab_storeq *q, struct crab_store_job *batch)
{
	struct crab_store_job *j, *next;
	int to_loop = 0, to_sync = 0;

	pthread_mutex_lock(&q->lock);
	for (j = batch; j != NULL; j = next) {
		next = j->next;
		q->stats.jobs += j->run != NULL;
		if (q->sync_apart && !j->lazy) {
			jobq_push(&q->to_sync, j);
			to_sync = 1;
		} else {
			jobq_push(&q->done, j);
			to_loop = 1;
		}
	}
	q->stats.commits++;
	if (to_sync)
		pthread_cond_signal(&q->sync_wake);
	pthread_mutex_unlock(&q->lock);
	if (to_loop)
		event_active(q->done_ev, EV_READ, 0);
}

static void *worker_main(void *arg)
{
	struct crab_storeq *q = arg;
	int worked = 0;

	for (;;) {
		struct crab_store_job *batch;
		struct crab_storeq_tap tap;

		pthread_mutex_lock(&q->lock);
		wait_for_work(q, &worked);
		if (q->todo.head == NULL) { /* stopping, and nothing left to do */
			q->worker_stopped = 1;
			pthread_cond_signal(&q->sync_wake);
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		batch = jobq_take(&q->todo, BATCH_MAX);
		tap = q->tap;
		pthread_mutex_unlock(&q->lock);

		run_batch(q->store, batch, &tap);
		if (tap.mark != NULL)
			batch = tap_take(&tap, q, batch);
		hand_on(q, batch);
	}
}

/* The sync thread: one sync for every job that has come since the last one began. A
 * failed sync leaves committed data of unknown durability behind, which no answer could
 * describe truthfully: the gateway stops, and a restart recovers from what the disk has
 * (as PostgreSQL does after a failed fsync). */
static void *sync_main(void *arg)
{
	struct crab_storeq *q = arg;
	char err[256];

	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct crab_store_job *jobs;

		while (q->to_sync.head == NULL && !q->worker_stopped)
			pthread_cond_wait(&q->sync_wake, &q->lock);
		if (q->to_sync.head == NULL)
			break; /* the worker has stopped and nothing is left */
		jobs = jobq_take(&q->to_sync, -1);
		pthread_mutex_unlock(&q->lock);
		if (crab_store_sync(q->store, err, sizeof(err)) != 0)
			fatalx("store: %s: stopping, as what was committed may not be on disk", err);
		pthread_mutex_lock(&q->lock);
		q->stats.syncs++;
		jobq_append(&q->done, jobs);
		pthread_mutex_unlock(&q->lock);
		event_active(q->done_ev, EV_READ, 0);
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Answers DONE_BURST jobs at a time: a group commit can hand back thousands, and
 * answering them all at once would keep the loop from its sockets meanwhile. The rest
 * waits for a timer of 0, which runs after the loop has looked at its sockets again. */
static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	static const struct timeval now = {0, 0};
	struct crab_storeq *q = arg;
	struct crab_store_job *j, *next;
	(void)fd;
	(void)what;

	pthread_mutex_lock(&q->lock);
	j = jobq_take(&q->done, DONE_BURST);
	if (q->done.head != NULL)
		evtimer_add(q->more_ev, &now);
	pthread_mutex_unlock(&q->lock);
	for (; j != NULL; j = next) {
		next = j->next; /* done may free or resubmit the job */
		if (j->run != NULL)
			q->pending--;
		j->done(j, j->status);
	}
	if (q->after_done != NULL)
		q->after_done(q->after_done_arg);
}

void crab_storeq_after_done(struct crab_storeq *q, void (*fn)(void *arg), void *arg)
{
	q->after_done = fn;
	q->after_done_arg = arg;
}

static void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(c, &attr);
	pthread_condattr_destroy(&attr);
}

struct crab_storeq *crab_storeq_new(struct event_base *base, struct crab_store *st)
{
	struct crab_storeq *q = xcalloc(1, sizeof(*q));

	q->store = st;
	q->sync_apart = crab_store_sync_apart(st);
	jobq_init(&q->todo);
	jobq_init(&q->to_sync);
	jobq_init(&q->done);
	pthread_mutex_init(&q->lock, NULL);
	cond_init_monotonic(&q->wake);
	pthread_cond_init(&q->sync_wake, NULL);
	q->done_ev = event_new(base, -1, 0, done_cb, q);
	q->more_ev = evtimer_new(base, done_cb, q);
	if (pthread_create(&q->thread, NULL, worker_main, q) != 0)
		fatalx("cannot start the store worker thread");
	pthread_setname_np(q->thread, "crab-store"); /* as top -H and ps -L show it */
	if (q->sync_apart) {
		if (pthread_create(&q->sync_thread, NULL, sync_main, q) != 0)
			fatalx("cannot start the store sync thread");
		pthread_setname_np(q->sync_thread, "crab-sync");
	}
	return q;
}

void crab_storeq_submit(struct crab_storeq *q, struct crab_store_job *job)
{
	q->pending++;
	pthread_mutex_lock(&q->lock);
	jobq_push(&q->todo, job);
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

void crab_storeq_set_tap(struct crab_storeq *q, const struct crab_storeq_tap *tap)
{
	pthread_mutex_lock(&q->lock);
	q->tap = *tap;
	pthread_mutex_unlock(&q->lock);
}

size_t crab_storeq_pending(struct crab_storeq *q)
{
	return q->pending;
}

void crab_storeq_stats(struct crab_storeq *q, struct crab_storeq_stats *out)
{
	pthread_mutex_lock(&q->lock);
	*out = q->stats;
	pthread_mutex_unlock(&q->lock);
}

void crab_storeq_free(struct crab_storeq *q)
{
	if (q == NULL)
		return;
	pthread_mutex_lock(&q->lock);
	q->stop = 1;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	if (q->sync_apart)
		pthread_join(q->sync_thread, NULL); /* it syncs what the worker left it first */
	if (q->pending != 0)
		log_warnx("store worker stopped with %zu jobs unanswered", q->pending);
	/* Collections never delivered (the loop has stopped): jobs here were answered. */
	for (struct crab_store_job *j = jobq_take(&q->done, -1), *next; j != NULL; j = next) {
		next = j->next;
		if (j->run == NULL) {
			q->tap.discard(q->tap.ctx, ((struct tap_job *)j)->taken);
			free(j);
		}
	}
	event_free(q->done_ev);
	event_free(q->more_ev);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	pthread_cond_destroy(&q->sync_wake);
	crab_store_close(q->store);
	free(q);
}
