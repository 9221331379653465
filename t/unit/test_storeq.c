/* test_storeq.c: the store worker (core/storeq.c) on a real SQLite store and a real event
 * loop: every job answered once with its status, a group's failing job undoing only its
 * own writes, and a durable job answered only after a sync of the WAL that its commit
 * came before, while a lazy one is answered once it has committed; a tap's collection
 * reaching the loop after a sync, without what failing jobs left in it, and before the
 * answers of its group's durable jobs. */
#include <event2/event.h>
#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/storeq.h"
#include "store/store.h"
#include "unit.h"

#define JOBS 200

struct tjob {
	struct crab_store_job job;
	struct crab_storeq *q;
	struct tjob *first; /* jobs[0], for the index */
	int fail;
	int answered;
	enum crab_job_status status;
	uint64_t syncs_at_answer;
};

static int answered;
static struct event_base *base;

/* The tap: each job leaves its index (worker side), the loop counts what it is given. */
struct collected {
	int *idx;
	size_t n;
};
static struct collected tapped;   /* the worker's, for the group running */
static int delivered[JOBS];
static int delivered_unsynced;
static int delivered_after_answer; /* a durable job answered before its group's tap */
static struct crab_storeq *the_q;
static struct tjob *the_jobs;

static size_t tap_mark(void *ctx)
{
	(void)ctx;
	return tapped.n;
}

static void tap_rollback(void *ctx, size_t mark)
{
	(void)ctx;
	tapped.n = mark;
}

static void *tap_take(void *ctx)
{
	struct collected *c;

	(void)ctx;
	if (tapped.n == 0)
		return NULL;
	c = malloc(sizeof(*c));
	*c = tapped;
	tapped.idx = NULL;
	tapped.n = 0;
	return c;
}

static void tap_free(void *ctx, void *taken)
{
	struct collected *c = taken;

	(void)ctx;
	free(c->idx);
	free(c);
}

static void tap_deliver(void *ctx, void *taken)
{
	struct collected *c = taken;
	struct crab_storeq_stats s;

	crab_storeq_stats(the_q, &s);
	delivered_unsynced += s.syncs == 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct tjob *j = &the_jobs[c->idx[i]];
		delivered[c->idx[i]]++;
		delivered_after_answer += !j->job.lazy && j->answered;
	}
	tap_free(ctx, taken);
}

static int tjob_run(struct crab_store *st, struct crab_store_job *job)
{
	struct tjob *j = (struct tjob *)job;
	int64_t claimed;
	char key[32];
	struct crab_store_idem first;

	snprintf(key, sizeof(key), "k%p", (void *)j);
	claimed = crab_store_idem_claim(st, "t", key, "evt_x", "ses_x", 1, &first);
	tapped.idx = realloc(tapped.idx, (tapped.n + 1) * sizeof(*tapped.idx));
	tapped.idx[tapped.n++] = (int)(j - j->first);
	return j->fail || claimed != 1 ? -1 : 0;
}

static void tjob_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct tjob *j = (struct tjob *)job;
	struct crab_storeq_stats s;

	crab_storeq_stats(j->q, &s);
	j->answered++;
	j->status = status;
	j->syncs_at_answer = s.syncs;
	if (++answered == JOBS)
		event_base_loopbreak(base);
}

static void give_up(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char path[512], side[600];
	struct crab_store_options o = {"sqlite", path, NULL};
	struct tjob *jobs = the_jobs = calloc(JOBS, sizeof(*jobs));
	struct crab_storeq_stats s;
	struct crab_storeq *q;
	struct crab_store *st;
	char err[256];
	int once = 1, lazy_ok = 1, durable_synced = 1, failed_ok = 1;
	int64_t keys = -1;
	struct event *guard;
	struct timeval limit = {20, 0};

	evthread_use_pthreads();
	base = event_base_new();
	snprintf(path, sizeof(path), "%s/crab-test-storeq-%ld.db", tmp, (long)getpid());
	st = crab_store_open(&o, err, sizeof(err));
	if (!CHECK(st != NULL, "a SQLite store opens")) {
		printf("# %s\n", err);
		return unit_done();
	}
	CHECK(crab_store_sync_apart(st) == 1, "SQLite syncs apart from its commits");
	q = the_q = crab_storeq_new(base, st);
	crab_storeq_set_tap(q, &(struct crab_storeq_tap){.mark = tap_mark,
		.rollback = tap_rollback, .take = tap_take, .deliver = tap_deliver,
		.discard = tap_free});
	for (int i = 0; i < JOBS; i++) {
		jobs[i].first = jobs;
		jobs[i].job.run = tjob_run;
		jobs[i].job.done = tjob_done;
		jobs[i].job.lazy = i % 2;
		jobs[i].fail = i % 7 == 0;
		jobs[i].q = q;
		crab_storeq_submit(q, &jobs[i].job);
	}
	CHECK_INT(crab_storeq_pending(q), JOBS, "every job pending until answered");
	/* The loop runs until the last answer, or gives up after 20 s. */
	guard = evtimer_new(base, give_up, NULL);
	evtimer_add(guard, &limit);
	event_base_dispatch(base);
	event_free(guard);
	CHECK_INT(crab_storeq_pending(q), 0, "nothing pending once all are answered");
	for (int i = 0; i < JOBS; i++) {
		once &= jobs[i].answered == 1;
		if (jobs[i].fail)
			failed_ok &= jobs[i].status == CRAB_JOB_FAILED;
		else if (jobs[i].job.lazy)
			lazy_ok &= jobs[i].status == CRAB_JOB_OK;
		else
			durable_synced &= jobs[i].status == CRAB_JOB_OK && jobs[i].syncs_at_answer >= 1;
	}
	CHECK(once, "each job answered exactly once");
	CHECK(failed_ok, "a failing job is answered as failed");
	CHECK(lazy_ok, "lazy jobs commit");
	CHECK(durable_synced, "a durable job is answered only after a sync");
	{
		int tap_ok = 1;
		for (int i = 0; i < JOBS; i++)
			tap_ok &= delivered[i] == (jobs[i].fail ? 0 : 1);
		CHECK(tap_ok, "the tap gives the loop what each job left, once, none of a failed job's");
		CHECK_INT(delivered_unsynced, 0, "and only once its group is synced");
		CHECK_INT(delivered_after_answer, 0,
		    "and before the answers of its group's durable jobs");
	}
	crab_storeq_stats(q, &s);
	CHECK_INT(s.jobs, JOBS, "stats: every job counted");
	CHECK(s.commits >= 1 && s.commits <= JOBS, "stats: jobs grouped into commits");
	CHECK(s.syncs >= 1 && s.syncs <= s.commits, "stats: at most one sync a commit");
	crab_storeq_free(q); /* closes st */

	/* What the failing jobs wrote was undone, the rest kept: read back on a new store. */
	st = crab_store_open(&o, err, sizeof(err));
	CHECK(st != NULL && crab_store_count(st, "idempotency_keys", &keys) == 0, "reopened");
	CHECK_INT(keys, JOBS - (JOBS + 6) / 7, "only the failing jobs' writes were undone");
	crab_store_close(st);
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
	event_base_free(base);
	free(jobs);
	return unit_done();
}
