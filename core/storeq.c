/* storeq.c: one worker thread, a mutex-protected queue in, a done list out, and a libevent
 * event made active from the worker to wake the loop (libevent_pthreads makes that safe). */
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

struct crab_storeq {
	struct crab_store *store;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct crab_store_job *todo_head, **todo_tail;
	struct crab_store_job *done_head, **done_tail;
	struct event *done_ev;
	size_t pending; /* loop thread only */
	int stop;
};

static void run_batch(struct crab_store *st, struct crab_store_job *batch)
{
	struct crab_store_job *j;

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
		if (j->run(st, j) == 0) {
			j->status = CRAB_JOB_OK;
			if (crab_store_savepoint_release(st) != 0)
				j->status = CRAB_JOB_UNAVAILABLE;
		} else {
			j->status = CRAB_JOB_FAILED;
			if (crab_store_savepoint_rollback(st) != 0)
				j->status = CRAB_JOB_UNAVAILABLE;
		}
	}
	if (crab_store_commit(st) != 0) {
		log_warnx("store: commit failed: %s", crab_store_error(st));
		crab_store_rollback(st);
		for (j = batch; j != NULL; j = j->next)
			j->status = CRAB_JOB_UNAVAILABLE;
	}
}

/* Waits for work. After a burst the store's page cache stays full and malloc keeps what
 * the jobs freed (here and on the loop thread) for reuse; once nothing has come for
 * IDLE_TRIM_S both go back to the system, so that an idle gateway's private memory
 * stays small. Called and returns with the lock held. */
static void wait_for_work(struct crab_storeq *q, int *worked)
{
	struct timespec until;

	while (q->todo_head == NULL && !q->stop) {
		if (!*worked) {
			pthread_cond_wait(&q->wake, &q->lock);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += IDLE_TRIM_S;
		if (pthread_cond_timedwait(&q->wake, &q->lock, &until) == ETIMEDOUT &&
		    q->todo_head == NULL) {
			*worked = 0;
			pthread_mutex_unlock(&q->lock);
			crab_store_release_memory(q->store);
			malloc_trim(0);
			pthread_mutex_lock(&q->lock);
		}
	}
	*worked = 1;
}

static void *worker_main(void *arg)
{
	struct crab_storeq *q = arg;
	int worked = 0;

	for (;;) {
		struct crab_store_job *batch, **cut;
		int n = 0;

		pthread_mutex_lock(&q->lock);
		wait_for_work(q, &worked);
		if (q->todo_head == NULL) { /* stopping, and nothing left to do */
			pthread_mutex_unlock(&q->lock);
			return NULL;
		}
		batch = q->todo_head;
		for (cut = &q->todo_head; *cut != NULL && n < BATCH_MAX; cut = &(*cut)->next)
			n++;
		q->todo_head = *cut;
		*cut = NULL;
		if (q->todo_head == NULL)
			q->todo_tail = &q->todo_head;
		pthread_mutex_unlock(&q->lock);

		run_batch(q->store, batch);

		pthread_mutex_lock(&q->lock);
		*q->done_tail = batch;
		while (*q->done_tail != NULL)
			q->done_tail = &(*q->done_tail)->next;
		pthread_mutex_unlock(&q->lock);
		event_active(q->done_ev, EV_READ, 0);
	}
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_storeq *q = arg;
	struct crab_store_job *j, *next;
	(void)fd;
	(void)what;

	pthread_mutex_lock(&q->lock);
	j = q->done_head;
	q->done_head = NULL;
	q->done_tail = &q->done_head;
	pthread_mutex_unlock(&q->lock);
	for (; j != NULL; j = next) {
		next = j->next; /* done may free or resubmit the job */
		q->pending--;
		j->done(j, j->status);
	}
}

struct crab_storeq *crab_storeq_new(struct event_base *base, struct crab_store *st)
{
	struct crab_storeq *q = xcalloc(1, sizeof(*q));

	q->store = st;
	q->todo_tail = &q->todo_head;
	q->done_tail = &q->done_head;
	pthread_mutex_init(&q->lock, NULL);
	{
		pthread_condattr_t attr;
		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&q->wake, &attr);
		pthread_condattr_destroy(&attr);
	}
	q->done_ev = event_new(base, -1, 0, done_cb, q);
	if (pthread_create(&q->thread, NULL, worker_main, q) != 0)
		fatalx("cannot start the store worker thread");
	return q;
}

void crab_storeq_submit(struct crab_storeq *q, struct crab_store_job *job)
{
	job->next = NULL;
	q->pending++;
	pthread_mutex_lock(&q->lock);
	*q->todo_tail = job;
	q->todo_tail = &job->next;
	pthread_cond_signal(&q->wake);
	pthread_mutex_unlock(&q->lock);
}

size_t crab_storeq_pending(struct crab_storeq *q)
{
	return q->pending;
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
	if (q->pending != 0)
		log_warnx("store worker stopped with %zu jobs unanswered", q->pending);
	event_free(q->done_ev);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->wake);
	crab_store_close(q->store);
	free(q);
}
