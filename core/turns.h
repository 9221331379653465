/* turns.h: the turn executor (ARCHITECTURE.md, data flow 4-5). Turns of one session run
 * strictly one at a time, in acceptance order; different sessions run concurrently up
 * to turns.max_concurrent. A turn: `turn.started` is stored, the context is composed,
 * the model is called, and the finished turn's payloads are stored in one transaction
 * with `turn.completed` (or `turn.failed`), `message.outbound` and the event marked done.
 * Pending events and turns cut by a crash are found in the store at start and run then.
 * Loop thread only. */
#ifndef CRAB_TURNS_H
#define CRAB_TURNS_H

#include <jansson.h>
#include <stdint.h>

struct crab_gateway;
struct crab_turns;

struct crab_turns *crab_turns_new(struct crab_gateway *gw);
/* Cancels running model calls (their events stay pending in the store), answers every
 * waiter, frees everything. */
void crab_turns_free(struct crab_turns *t);

/* Loads the events still pending in the store and queues them (at start). */
void crab_turns_recover(struct crab_turns *t);

/* An event was accepted (committed): queue its turn. arrived_us is when ingress got it
 * (crab_monotonic_us), for the overhead figures. */
void crab_turns_accepted(struct crab_turns *t, const char *session_id, const char *event_id,
    int64_t arrived_us);

/* Stops starting turns (shutdown); running ones go on until they finish or are freed. */
void crab_turns_drain(struct crab_turns *t);
/* Turns running now. */
unsigned crab_turns_running(const struct crab_turns *t);

/* How a turn ended, for whoever waits on its event. */
struct crab_turn_outcome {
	const char *status;     /* "completed", "failed", or "timeout" (nobody finished in time) */
	const char *event_id;
	const char *turn_id;    /* NULL with "timeout" */
	const char *session_id;
	const char *text;       /* the answer, or NULL */
	const char *error_code; /* with "failed" */
	const char *error_message;
};
typedef void (*crab_turn_wait_fn)(void *arg, const struct crab_turn_outcome *o);

/* Calls fn once: when the turn of event_id finishes (at once if it has), or with status
 * "timeout" after timeout_ms. */
void crab_turns_wait(struct crab_turns *t, const char *event_id, int64_t timeout_ms,
    crab_turn_wait_fn fn, void *arg);

/* {"running","queued","sessions_waiting","completed","failed","overhead_us":{p50,p99,max,
 * count},"model_us":{...}} */
json_t *crab_turns_status(const struct crab_turns *t);

#endif
