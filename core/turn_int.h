/* turn_int.h: the executor's parts (core/turns.c schedules, core/turn_run.c runs one
 * turn), private to them. */
#ifndef CRAB_TURN_INT_H
#define CRAB_TURN_INT_H

#include <event2/event.h>
#include <sys/queue.h>

#include "context.h"
#include "gateway.h"
#include "hist.h"
#include "id.h"
#include "storeq.h"
#include "strmap.h"
#include "turns.h"
#include "util.h"

#define CRAB_TURN_TEXT_MAX (4 << 20) /* the longest answer kept */

/* An accepted event waiting for its turn. */
struct pending {
	struct pending *next;
	int fresh; /* accepted since this start (else read back: it may have a turn already) */
	char event_id[CRAB_ID_MAX];
};

/* A session with work: queued events and at most one running turn. */
struct tsession {
	char id[CRAB_ID_MAX];
	struct pending *head, *tail;
	struct turn *running;
	int ready; /* on t->ready */
	TAILQ_ENTRY(tsession) link;
};
TAILQ_HEAD(tsession_list, tsession);

struct turn_waiter;
struct turn_call;

struct crab_turns {
	struct crab_gateway *gw;
	struct crab_context *context;
	struct crab_strmap *sessions;  /* id -> struct tsession, while it has work */
	struct tsession_list ready;    /* sessions waiting for a slot, first come first */
	struct crab_strmap *waiters;   /* event id -> struct turn_waiter list */
	struct event *kick;            /* runs dispatch after the current callback */
	unsigned running, max_running;
	uint64_t queued, completed, failed;
	int draining;
	/* The queue in memory holds at most queue_max events (turns.queue_max). Past that,
	 * accepted events wait in the store only (overflow), and are read back from it,
	 * oldest first, whenever the queue in memory has run dry (reloading). */
	size_t queue_max;
	int overflow, reloading;
	struct turn *all;              /* running turns, for shutdown */
	struct crab_hist overhead_us, model_us;
};

/* One running turn (core/turn_run.c). */
struct turn {
	struct crab_turns *t;
	struct tsession *s;
	struct pending *p;
	struct turn *next_all, **prev_all;
	struct crab_store_job job;
	int64_t begin_us, model_start_us, model_us;
	/* what the begin job read */
	char turn_id[CRAB_ID_MAX];
	struct crab_store_inbox_row ev;
	json_t *envelope; /* ev.envelope parsed, when ingest handed it over */
	char *history;   /* earlier turns' messages, oldest first, comma-joined JSON text */
	struct crab_config *cfg; /* the config it started under: a reference */
	const struct crab_config_agent *agent;
	const struct crab_config_model *model;
	int skip;        /* the event has its finished turn already */
	/* the model call */
	const struct crab_model_ops_v1 *ops;
	void *ctx, *handle;
	int calling;     /* between start and the sink's last word */
	struct event *timeout, *finish_ev;
	char *request;   /* sent to the model adapter */
	char *input;     /* the user's message, JSON text */
	char *reply_to;  /* the message id the event came with, or NULL */
	struct crab_buf text;
	json_t *tool_calls;
	int64_t usage_in, usage_out;
	char stop_reason[32];
	char error_code[64];
	char *error_message;
	/* tools (turn_tools.c) */
	char memory_key[CRAB_STORE_NAME_MAX]; /* the session's, for tool calls' context */
	json_t *offer;         /* the tools the model is shown; NULL: none */
	char *req_rest;        /* the request's members after its messages, "...}" */
	struct crab_buf chain; /* this turn's messages after its input: calls and results */
	int64_t rounds, ncalls;
	struct turn_call *round; /* the calls of the round in flight */
	size_t nround, nleft;
	json_t *call_log;      /* every call of the turn, for tool_calls */
	void (*tools_then)(struct turn *tr);
	/* the finish job */
	struct turn_record *record; /* what it writes, encoded on the loop */
	int failed;
	int store_tries;
	int in_store; /* a store job of this turn is queued or running */
	struct turn *next; /* the session's next turn, started in this one's finish job */
};

/* turn_run.c */
struct turn *crab_turn_start(struct crab_turns *t, struct tsession *s, struct pending *p);
void crab_turn_cancel(struct turn *tr);
/* A turn for a reserved slot, before its event is accepted (turns.h); in_store until
 * adopted (its accepting job started it: call the model) or unreserved (freed). */
struct turn *crab_turn_new_reserved(struct crab_turns *t);
void crab_turn_adopt(struct turn *tr, struct tsession *s, struct pending *p);
void crab_turn_unreserve(struct turn *tr);

/* turn_run.c, for turn_call.c and turn_tools.c */
/* The turn's error, unless it has one already (the first is the one that counts). */
void crab_turn_set_error(struct turn *tr, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The call is over: the finish job stores what it came to. */
void crab_turn_finish(struct turn *tr);

/* turn_call.c */
/* Composes the request and calls the model; the sink's last word finishes the turn, or
 * runs its tools and calls the model again. */
void crab_turn_call_model(struct turn *tr);
/* Cancels the model call in flight, if any. */
void crab_turn_end_call(struct turn *tr);

/* turn_tools.c */
void crab_turn_tools_offer(struct turn *tr);
/* The model stopped to use tools, and no error came. */
int crab_turn_tools_wanted(const struct turn *tr);
/* Runs the round's calls; then(tr) once all are answered (the chain grown, ready for the
 * model again), or at once with tr's error set when the turn may not go on. */
void crab_turn_tools_run(struct turn *tr, void (*then)(struct turn *tr));
/* Cancels the round in flight, if any, and frees it. */
void crab_turn_tools_clear_round(struct turn *tr);
/* The turn's calls into tool_calls (its finish job). */
int crab_turn_tools_write(struct crab_store *st, const struct turn *tr);

/* turns.c: the turn has ended (stored, skipped, or dropped at shutdown with its event
 * still pending in the store): its session moves on. */
void crab_turns_finished(struct crab_turns *t, struct turn *tr);
/* The session's next event, taken off its queue to start in the same commit as the
 * turn finishing now; NULL when none (or draining). */
struct pending *crab_turns_next(struct crab_turns *t, struct tsession *s);
/* Puts p back at the head of its session's queue (its chained start did not commit). */
void crab_turns_requeue(struct crab_turns *t, struct tsession *s, struct pending *p);
/* The turn of event_id ended: its waiters hear of it once a sync has made it durable. */
void crab_turns_notify(struct crab_turns *t, const struct crab_turn_outcome *o);

#endif
