/* admin_dlq.c: dlq.list and dlq.replay (PROTOCOLS.md §4, §6): the deliveries given up
 * on, and sending them again. */
#include "admin_ops.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch.h"
#include "gateway.h"
#include "id.h"
#include "util.h"

#define LIST_MAX 1000

struct dlq_job {
	struct crab_store_job job;
	struct admin_call *call;
	char *subscriber;  /* list: NULL for all */
	char *letter;      /* replay: one, or NULL for every one not replayed yet */
	int64_t limit, replayed;
	json_t *list;
};

static void dlq_job_free(struct dlq_job *j)
{
	free(j->subscriber);
	free(j->letter);
	json_decref(j->list);
	free(j);
}

static int list_row(const struct crab_store_dead_letter *d, void *arg)
{
	struct dlq_job *j = arg;
	char when[32], replayed[32];

	crab_clock_format(d->created_at, when, sizeof(when));
	if (d->replayed_at)
		crab_clock_format(d->replayed_at, replayed, sizeof(replayed));
	json_array_append_new(j->list, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:s?, s:s, s:s?}",
	    "dead_letter_id", d->id, "delivery_id", d->delivery_id, "event_id", d->event_id,
	    "subscriber", d->subscriber, "type", d->type, "attempts", (json_int_t)d->attempts,
	    "last_error", d->last_error, "created_at", when,
	    "replayed_at", d->replayed_at ? replayed : NULL));
	return 0;
}

static int list_run(struct crab_store *st, struct crab_store_job *job)
{
	struct dlq_job *j = (struct dlq_job *)job;

	json_array_clear(j->list);
	return crab_store_dlq_list(st, j->subscriber, j->limit, list_row, j);
}

static void list_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct dlq_job *j = (struct dlq_job *)job;

	if (status != CRAB_JOB_OK)
		crab_admin_reply_error(j->call, "store_unavailable", "the dead letters could not be read");
	else
		crab_admin_reply_ok(j->call, json_pack("{s:O}", "dead_letters", j->list));
	dlq_job_free(j);
}

void crab_admin_op_dlq_list(struct admin_call *call, json_t *args)
{
	int bad = 0;
	const char *sub = crab_admin_arg_string(args, "subscriber", CRAB_ID_MAX - 1, &bad);
	json_t *limit = json_object_get(args, "limit");
	struct dlq_job *j;

	if (bad || (limit != NULL && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
					 json_integer_value(limit) > LIST_MAX))) {
		crab_admin_reply_error(call, "invalid_args",
		    "subscriber is a peer id; limit 1 to %d", LIST_MAX);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->call = call;
	j->subscriber = sub ? xstrdup(sub) : NULL;
	j->limit = limit ? json_integer_value(limit) : 100;
	j->list = json_array();
	j->job.run = list_run;
	j->job.done = list_done;
	crab_storeq_submit(call->gw->storeq, &j->job);
}

/* Every dead letter not replayed yet: their ids first, then one replay each. */
static int collect_unreplayed(const struct crab_store_dead_letter *d, void *arg)
{
	struct dlq_job *j = arg;

	if (d->replayed_at == 0)
		json_array_append_new(j->list, json_string(d->id));
	return 0;
}

static int replay_run(struct crab_store *st, struct crab_store_job *job)
{
	struct dlq_job *j = (struct dlq_job *)job;
	int64_t now = crab_clock_now_ms();
	size_t i;
	json_t *id;

	json_array_clear(j->list);
	j->replayed = 0;
	if (j->letter != NULL)
		json_array_append_new(j->list, json_string(j->letter));
	else if (crab_store_dlq_list(st, j->subscriber, LIST_MAX, collect_unreplayed, j) != 0)
		return -1;
	json_array_foreach(j->list, i, id) {
		char dlv[CRAB_ID_MAX];
		int rc;

		crab_id_new("dlv", dlv);
		if ((rc = crab_store_dlq_replay(st, json_string_value(id), dlv, now)) < 0)
			return -1;
		j->replayed += rc;
	}
	return 0;
}

static void replay_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct dlq_job *j = (struct dlq_job *)job;

	if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the replay could not be stored");
	} else if (j->letter != NULL && j->replayed == 0) {
		crab_admin_reply_error(j->call, "not_found", "no dead letter '%.64s'", j->letter);
	} else {
		crab_dispatch_kick(j->call->gw->dispatch);
		crab_admin_reply_ok(j->call, json_pack("{s:I}", "replayed", (json_int_t)j->replayed));
	}
	dlq_job_free(j);
}

void crab_admin_op_dlq_replay(struct admin_call *call, json_t *args)
{
	int bad = 0;
	const char *letter = crab_admin_arg_string(args, "dead_letter_id", CRAB_ID_MAX - 1, &bad);
	const char *sub = crab_admin_arg_string(args, "subscriber", CRAB_ID_MAX - 1, &bad);
	int all = json_is_true(json_object_get(args, "all"));
	struct dlq_job *j;

	if (bad || (letter == NULL) == !all) {
		crab_admin_reply_error(call, "invalid_args",
		    "name a dead_letter_id, or all: true (with an optional subscriber)");
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->call = call;
	j->letter = letter ? xstrdup(letter) : NULL;
	j->subscriber = sub ? xstrdup(sub) : NULL;
	j->list = json_array();
	j->job.run = replay_run;
	j->job.done = replay_done;
	crab_storeq_submit(call->gw->storeq, &j->job);
}
