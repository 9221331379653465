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

/* An event was accepted (committed): queue its turn. */
void crab_turns_accepted(struct crab_turns *t, const char *session_id, const char *event_id);

/* A turn may start in the commit that accepts its event, when its session has nothing
 * else waiting: one commit fewer before the model is called. Ingest reserves a slot before
 * it submits the event (NULL: none free, or draining); the accepting job, on the store
 * worker, calls crab_turn_begin_accepted once the event is stored: 1 when it started the
 * turn, 0 when the session was busy, -1 on a store error. Its answer, on the loop, hands
 * the slot back with crab_turns_reserved_done: started (and committed) calls the model;
 * otherwise the slot is freed and, with a session_id, the event is queued as accepted. */
struct turn;
struct crab_store;
struct crab_store_event;
struct turn *crab_turns_reserve(struct crab_turns *t);
int crab_turn_begin_accepted(struct crab_store *st, struct turn *tr,
    const struct crab_store_event *ev);
void crab_turns_reserved_done(struct crab_turns *t, struct turn *tr, int started,
    const char *session_id, const char *event_id);
/* The envelope as ingest parsed it, kept (a reference) for the reserved turn's model
 * call, which would otherwise parse the stored text again. */
void crab_turn_keep_envelope(struct turn *tr, json_t *envelope);

/* The gateway's config changed (a reload): turns.max_concurrent and the context's
 * config are read again. Running turns keep the config they started under. */
void crab_turns_reconfigure(struct crab_turns *t);

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
