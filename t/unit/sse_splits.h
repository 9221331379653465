/* sse_splits.h: what the model adapters' assembler tests (test_openai_sse.c,
 * test_anthropic_sse.c) share. A stream must give the same sink calls however the
 * network cuts it, so each is fed whole, byte by byte, in fixed pieces, irregularly and
 * in random pieces: a recording sink (struct got), one run's result (struct run), the
 * pieces, and the check that every split gives what a check function wants. Include it
 * after t/unit/unit.h and jansson. */
#ifndef CRAB_SSE_SPLITS_H
#define CRAB_SSE_SPLITS_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* What the assembler told its sink; the test's struct oai_out or ant_out is
 * {g_text, g_call, g_usage}. */
struct got {
	char text[4096];
	size_t text_len;
	json_t *calls;
	int usage_calls;
	int64_t in, out;
	int order_ok; /* usage came after every tool call */
};

static void g_text(void *arg, const char *t, size_t n)
{
	struct got *g = arg;
	if (g->text_len + n < sizeof(g->text)) {
		memcpy(g->text + g->text_len, t, n);
		g->text_len += n;
		g->text[g->text_len] = '\0';
	}
}

static void g_call(void *arg, const char *c, size_t n)
{
	struct got *g = arg;
	json_t *j = json_loadb(c, n, 0, NULL);
	json_array_append_new(g->calls, j ? j : json_string("(not JSON)"));
	if (g->usage_calls > 0)
		g->order_ok = 0;
}

static void g_usage(void *arg, int64_t in, int64_t out)
{
	struct got *g = arg;
	g->usage_calls++;
	g->in = in;
	g->out = out;
}

struct run {
	struct got g;
	int rc; /* the assembler's finish */
	char code[32], message[512], stop[32];
	int retryable;
};

static void run_begin(struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->g.calls = json_array();
	r->g.order_ok = 1;
}

/* How the run ended: the error (code NULL: none) and the stop reason (NULL: none). */
static void run_record(struct run *r, const char *code, const char *message, const char *stop)
{
	if (code != NULL) {
		snprintf(r->code, sizeof(r->code), "%s", code);
		snprintf(r->message, sizeof(r->message), "%s", message);
	}
	if (stop != NULL)
		snprintf(r->stop, sizeof(r->stop), "%s", stop);
}

static void run_free(struct run *r)
{
	json_decref(r->g.calls);
}

/* The random pieces: the same for a seed, so that a failure can be run again. */
static uint32_t rnd_state;

static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

/* Feeds len bytes of sse to piece(s, ...) in pieces of step bytes (0: whole; -1:
 * irregular 1, 2, 3, 5, 8, ...; -2: random sizes from 1 to 40) while it returns 0 (the
 * assembler's MORE); when it returns 1 (END) with bytes left, those in one piece, which
 * it must ignore. */
static void splits_feed(int (*piece)(void *s, const char *p, size_t n), void *s,
    const char *sse, size_t len, long step)
{
	static const size_t odd[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 7, 4};
	size_t off = 0, k = 0;
	int rc = 0;

	while (off < len && rc == 0) {
		size_t n = step == 0 ? len : step > 0 ? (size_t)step : step == -1 ? odd[k++ % 12] :
		    1 + rnd() % 40;
		if (n > len - off)
			n = len - off;
		rc = piece(s, sse + off, n);
		off += n;
	}
	if (off < len && rc == 1)
		piece(s, sse + off, len - off);
}

/* The same result, check(run) true, for every split of steps (see splits_feed); the
 * random ones with a seed each. feed runs the assembler on one split. */
static int splits_same(void (*feed)(struct run *r, const char *sse, size_t len, long step),
    const long *steps, size_t nsteps, const char *sse, int (*check)(struct run *),
    const char *what)
{
	char name[256];
	int ok = 1;

	for (size_t i = 0; i < nsteps; i++) {
		struct run r;
		rnd_state = (uint32_t)i * 2654435761u;
		feed(&r, sse, strlen(sse), steps[i]);
		snprintf(name, sizeof(name), "%s (split %ld%s)", what, steps[i],
		    steps[i] == -2 ? ", random" : "");
		if (!CHECK(check(&r), name)) {
			printf("#   rc %d code '%s' message '%s' text '%s' stop '%s' calls %zu\n", r.rc,
			    r.code, r.message, r.g.text, r.stop, json_array_size(r.g.calls));
			ok = 0;
		}
		run_free(&r);
	}
	return ok;
}

#endif
