/* test_dispatch_fast.c: the dispatcher's memory queue (core/dispatch_fast.c): one
 * delivery in flight per session, sessions in the order they became ready, the cursor's
 * watermark below the oldest delivery held, and everything held handed over in order. */
#include <stdlib.h>

#include "core/dispatch_fast.h"
#include "unit.h"

static struct crab_fast_delivery *make(const char *id, const char *session, int64_t seq,
    int64_t pos)
{
	return crab_fast_make(&(struct crab_store_outbox){.id = id, .session_id = session,
		.seq = seq, .type = "message.outbound", .idempotency_key = "k",
		.payload = "{\"x\":1}"}, pos);
}

static void test_make(void)
{
	struct crab_fast_delivery *m = make("evt_1", "ses_a", 7, 42);
	struct crab_fast_delivery *g = crab_fast_make(&(struct crab_store_outbox){
		.id = "evt_2", .seq = 1, .type = "peer.paired"}, 43);

	CHECK(strncmp(m->id, "dlv_", 4) == 0 && strcmp(m->due.id, m->id) == 0,
	    "a delivery gets a new dlv_ id");
	CHECK_STR(m->due.event_id, "evt_1", "it names its event");
	CHECK_STR(m->due.session_key, "ses_a", "and its session");
	CHECK_STR(m->due.payload, "{\"x\":1}", "and carries the frame");
	CHECK(m->due.seq == 7 && m->pos == 42 && m->due.attempts == 0, "seq, position, attempt 0");
	CHECK(strcmp(g->due.session_key, "") == 0 && strcmp(g->due.idempotency_key, "") == 0 &&
	    strcmp(g->due.payload, "") == 0, "gateway-wide: the empty session, no key or payload");
	CHECK(strcmp(m->id, g->id) < 0, "ids grow");
	free(m);
	free(g);
}

static void test_order(void)
{
	struct crab_fastq *q = crab_fastq_new();
	struct crab_fast_delivery *a1 = make("a1", "a", 1, 10), *b1 = make("b1", "b", 1, 11);
	struct crab_fast_delivery *a2 = make("a2", "a", 2, 12), *c1 = make("c1", "c", 1, 13);
	struct crab_fast_delivery *x, *y, *z;

	CHECK_INT(crab_fastq_watermark(q, 9), 9, "empty: the watermark is what was read");
	crab_fastq_add(q, a1);
	crab_fastq_add(q, b1);
	crab_fastq_add(q, a2);
	crab_fastq_add(q, c1);
	CHECK_INT(crab_fastq_count(q), 4, "four held");
	CHECK_INT(crab_fastq_watermark(q, 13), 9, "the watermark stays below the oldest held");
	x = crab_fastq_next(q);
	y = crab_fastq_next(q);
	z = crab_fastq_next(q);
	CHECK(x == a1 && y == b1 && z == c1, "one per session, oldest first: a1, b1, c1");
	CHECK(crab_fastq_next(q) == NULL, "a2 waits while a1 is in flight");
	crab_fastq_done(q, b1);
	CHECK_INT(crab_fastq_watermark(q, 13), 9, "b1 done: a1 still holds the watermark");
	crab_fastq_done(q, a1);
	CHECK_INT(crab_fastq_watermark(q, 13), 11, "a1 done: the watermark moves to below a2");
	x = crab_fastq_next(q);
	CHECK(x == a2, "a1 done: a2 may go");
	crab_fastq_requeue(q, a2);
	CHECK(crab_fastq_next(q) == a2, "a2 not sent after all: it is first again");
	CHECK(crab_fastq_next(q) == NULL, "nothing else may go");
	crab_fastq_done(q, c1);
	crab_fastq_done(q, a2);
	CHECK_INT(crab_fastq_count(q), 0, "all done");
	CHECK_INT(crab_fastq_watermark(q, 13), 13, "all done: the watermark is what was read");
	crab_fastq_free(q);
}

static void test_take_all(void)
{
	struct crab_fastq *q = crab_fastq_new();
	struct crab_fast_delivery **all;
	size_t n = 0;
	int ordered = 1;

	for (int i = 0; i < CRAB_FASTQ_MAX; i++) {
		char id[16], ses[16];
		snprintf(id, sizeof(id), "e%d", i);
		snprintf(ses, sizeof(ses), "s%d", i % 7);
		crab_fastq_add(q, make(id, ses, i, 100 + i));
	}
	crab_fastq_done(q, crab_fastq_next(q)); /* e0 */
	crab_fastq_next(q);                      /* e1, in flight */
	all = crab_fastq_take_all(q, &n);
	CHECK_INT(n, CRAB_FASTQ_MAX - 1, "everything not done is handed over, in flight or not");
	for (size_t i = 0; i < n; i++)
		ordered &= all[i]->pos == (int64_t)(101 + i);
	CHECK(ordered, "oldest first");
	CHECK(crab_fastq_count(q) == 0 && crab_fastq_next(q) == NULL, "the queue is empty after");
	for (size_t i = 0; i < n; i++)
		free(all[i]);
	free(all);
	crab_fastq_add(q, make("again", "s1", 1, 5000));
	CHECK(crab_fastq_next(q) != NULL, "and takes new deliveries");
	crab_fastq_free(q); /* frees what it holds: ASan would say */
}

/* One session's first stays in flight while the others are done: the room is what lies
 * between it and the newest, so the ring never wraps onto it and the watermark stays
 * below it however many come and go after it. */
static void test_slow_first(void)
{
	struct crab_fastq *q = crab_fastq_new();
	struct crab_fast_delivery *slow = make("slow", "stuck", 1, 1);
	int64_t pos = 2;
	int held = 1;

	crab_fastq_add(q, slow);
	CHECK(crab_fastq_next(q) == slow, "the slow one goes first");
	while (crab_fastq_room(q) > 0) {
		char id[16];
		struct crab_fast_delivery *m;
		snprintf(id, sizeof(id), "e%lld", (long long)pos);
		crab_fastq_add(q, make(id, id, 1, pos++));
		m = crab_fastq_next(q);
		crab_fastq_done(q, m);
		held &= crab_fastq_watermark(q, pos) == 0;
	}
	CHECK_INT(pos, CRAB_FASTQ_MAX + 1, "room for CRAB_FASTQ_MAX in all, the slow one counted");
	CHECK_INT(crab_fastq_count(q), 1, "only the slow one is held");
	CHECK(held, "the watermark stayed below the slow one throughout");
	crab_fastq_done(q, slow);
	CHECK_INT(crab_fastq_room(q), CRAB_FASTQ_MAX, "it done: all the room again");
	CHECK_INT(crab_fastq_watermark(q, pos - 1), pos - 1, "and the watermark is what was read");
	crab_fastq_free(q);
}

/* Random adds, sends, requeues and completions: the watermark never passes a delivery
 * not done, and the room never goes below zero. */
static void test_random(void)
{
	struct crab_fastq *q = crab_fastq_new();
	struct crab_fast_delivery *flying[64];
	size_t nflying = 0;
	int64_t pos = 0, read = 0;
	int ok = 1;

	srandom(7);
	for (int step = 0; step < 200000 && ok; step++) {
		long r = random() % 10;
		if (r < 4 && crab_fastq_room(q) > 0) {
			char id[16], ses[16];
			snprintf(id, sizeof(id), "e%lld", (long long)++pos);
			snprintf(ses, sizeof(ses), "s%ld", random() % 50);
			crab_fastq_add(q, make(id, ses, pos, pos));
			read = pos;
		} else if (r < 7 && nflying < 64) {
			struct crab_fast_delivery *m = crab_fastq_next(q);
			if (m != NULL)
				flying[nflying++] = m;
		} else if (nflying > 0) {
			size_t k = (size_t)random() % nflying;
			struct crab_fast_delivery *m = flying[k];
			flying[k] = flying[--nflying];
			if (r == 9)
				crab_fastq_requeue(q, m);
			else
				crab_fastq_done(q, m);
		}
		for (size_t i = 0; i < nflying; i++)
			ok &= crab_fastq_watermark(q, read) < flying[i]->pos;
		ok &= crab_fastq_room(q) <= CRAB_FASTQ_MAX;
	}
	CHECK(ok, "200,000 random steps: the watermark never passed a delivery in flight");
	crab_fastq_free(q);
}

int main(void)
{
	test_make();
	test_order();
	test_take_all();
	test_slow_first();
	test_random();
	return unit_done();
}
