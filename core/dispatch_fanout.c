/* dispatch_fanout.c: the fan-out job turns new outbox rows into deliveries, for every
 * subscriber whose offers, grant and YAML filter select them: rows in the store (with
 * the cursor moved in the same transaction) for a subscriber on rows, deliveries in
 * memory for one on the memory path. A subscriber on rows with none left pending goes
 * back to memory. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch_int.h"
#include "gateway.h"
#include "jsontext.h"
#include "log.h"
#include "outbox.h"
#include "peers.h"
#include "storeq.h"
#include "util.h"

#define FANOUT_BATCH 2000 /* outbox rows per subscriber per fan-out job */

struct fan_sub {
	char peer_id[CRAB_ID_MAX];
	json_t *types, *tenants; /* the worker's own copies */
	int fast;
	int64_t from, limit;     /* fast: read after from (rows: after the stored cursor) */
	/* results */
	int64_t last, seen;      /* the position read up to, rows read */
	struct crab_fast_delivery **picks;
	size_t n, cap;
	int64_t made;            /* rows: deliveries written */
	int drained;             /* rows: none pending, none new */
};

struct fanout_job {
	struct crab_store_job job;
	struct crab_dispatch *d;
	struct fan_sub *subs;
	size_t nsubs;
	int more;
};

static int fan_collect(const struct crab_store_outbox *o, int64_t pos, void *arg)
{
	struct fan_sub *f = arg;

	f->last = pos;
	f->seen++;
	/* Gateway-wide events (no tenant) go only to subscribers of every tenant. */
	if (!crab_json_list_has(f->types, o->type) || (f->tenants != NULL &&
		(o->tenant_id == NULL || !crab_json_list_has(f->tenants, o->tenant_id))))
		return 0;
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 64;
		f->picks = xrealloc(f->picks, f->cap * sizeof(*f->picks));
	}
	f->picks[f->n++] = crab_fast_make(o, pos);
	return 0;
}

static int fanout_rows(struct crab_store *st, struct fan_sub *f, int64_t now)
{
	int64_t from;
	int rc = 0, found = crab_store_cursor_get(st, f->peer_id, &from);

	if (found < 0 || (found == 0 && (crab_store_outbox_last(st, &from) != 0 ||
		crab_store_cursor_set(st, f->peer_id, from) != 0)))
		return -1; /* a new subscriber starts from now */
	f->last = from;
	/* Deliveries name their event: its payload is read when it is sent. */
	if (crab_store_outbox_after(st, from, FANOUT_BATCH, 0, fan_collect, f) != 0)
		return -1;
	for (size_t i = 0; i < f->n && rc == 0; i++) {
		const struct crab_fast_delivery *m = f->picks[i];
		rc = crab_store_delivery_insert(st, &(struct crab_store_delivery){
			.id = m->id, .event_id = m->due.event_id, .subscriber = f->peer_id,
			.session_key = m->due.session_key, .seq = m->due.seq, .created_at = now,
		});
	}
	f->made = (int64_t)f->n;
	if (rc == 0 && f->last != from)
		rc = crab_store_cursor_set(st, f->peer_id, f->last);
	if (rc == 0 && f->n == 0 && f->seen < FANOUT_BATCH) {
		int64_t pending = 0;
		rc = crab_store_delivery_any(st, f->peer_id, &pending);
		f->drained = pending == 0;
	}
	return rc;
}

static int fanout_run(struct crab_store *st, struct crab_store_job *job)
{
	struct fanout_job *j = (struct fanout_job *)job;
	int64_t now = crab_clock_now_ms();

	for (size_t i = 0; i < j->nsubs; i++) {
		struct fan_sub *f = &j->subs[i];
		if (f->fast) {
			f->last = f->from; /* memory only: nothing written */
			if (f->limit > 0 && crab_store_outbox_after(st, f->from, f->limit, 1,
				fan_collect, f) != 0)
				return -1;
		} else if (fanout_rows(st, f, now) != 0) {
			return -1;
		}
		if (f->seen == FANOUT_BATCH)
			j->more = 1;
	}
	return 0;
}

static void fan_sub_free(struct fan_sub *f, size_t from)
{
	for (size_t i = from; i < f->n; i++)
		free(f->picks[i]);
	free(f->picks);
	json_decref(f->types);
	json_decref(f->tenants);
}

/* The loop side of one subscriber's share of a fan-out. */
static void fanout_took(struct crab_dispatch *d, struct fan_sub *f)
{
	struct sub *s = crab_dispatch_sub_find(d, f->peer_id);
	size_t taken = 0;

	if (s == NULL || s->gone) {
		/* Its cursor has not moved past these: they come again if it does. */
	} else if (f->fast && s->fast) {
		/* What the durable groups handed over meanwhile is there already, and took
		 * room: what no longer fits is read again later. */
		int64_t upto = f->last;
		for (; taken < f->n; taken++) {
			struct crab_fast_delivery *m = f->picks[taken];
			if (m->pos <= s->read_pos) {
				free(m);
			} else if (crab_fastq_room(s->fq) == 0) {
				upto = m->pos - 1;
				s->behind = 1;
				break;
			} else {
				crab_fastq_add(s->fq, m);
			}
		}
		if (upto > s->read_pos)
			s->read_pos = upto;
		s->gap = 0;
		s->behind |= f->seen == f->limit && f->limit < FANOUT_BATCH;
		crab_dispatch_pump(s);
	} else if (f->fast) {
		/* An attempt failed while this was read: these go to rows as well. */
		crab_dispatch_spill(s, f->picks, f->n, f->last);
		f->picks = NULL;
		f->n = 0;
	} else {
		if (f->made > 0)
			crab_dispatch_schedule_heads(s);
		if (f->drained) {
			s->fast = 1;
			s->read_pos = s->cursor_stored = f->last;
			crab_outbox_collect(1);
		}
	}
	fan_sub_free(f, taken);
}

static void fanout_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct fanout_job *j = (struct fanout_job *)job;
	struct crab_dispatch *d = j->d;

	d->fanout_busy = 0;
	if (status != CRAB_JOB_OK) {
		log_warnx("delivery: could not read the outbox; trying again");
		d->fanout_again = 1;
		for (size_t i = 0; i < j->nsubs; i++)
			fan_sub_free(&j->subs[i], 0);
	} else {
		d->fanout_again |= j->more;
		for (size_t i = 0; i < j->nsubs; i++)
			fanout_took(d, &j->subs[i]);
	}
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		if (s->fresh) {
			s->fresh = 0;
			crab_dispatch_schedule_heads(s);
		}
	}
	free(j->subs);
	free(j);
	if (d->fanout_again)
		crab_dispatch_kick_later(d);
}

void crab_dispatch_fanout(struct crab_dispatch *d)
{
	struct fanout_job *j;
	size_t n = 0;

	if (d->gw->draining)
		return;
	if (d->fanout_busy) {
		d->fanout_again = 1;
		return;
	}
	if (d->peers_dirty)
		crab_dispatch_refresh_subs(d);
	d->fanout_again = 0;
	d->outbox_seen = crab_outbox_writes();
	for (struct sub *s = d->subs; s != NULL; s = s->next)
		n += !s->gone;
	if (n == 0)
		return;
	j = xcalloc(1, sizeof(*j));
	j->d = d;
	j->subs = xcalloc(n, sizeof(*j->subs));
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		struct fan_sub *f = &j->subs[j->nsubs];
		size_t room;

		if (s->gone)
			continue;
		crab_strlcpy(f->peer_id, s->peer_id, sizeof(f->peer_id));
		f->types = json_deep_copy(s->types);
		f->tenants = s->tenants ? json_deep_copy(s->tenants) : NULL;
		f->fast = s->fast;
		f->from = s->read_pos;
		room = crab_fastq_room(s->fq);
		f->limit = room < FANOUT_BATCH ? (int64_t)room : FANOUT_BATCH;
		j->nsubs++;
	}
	j->job.run = fanout_run;
	j->job.done = fanout_done;
	/* Not lazy: answered after a sync, so that nothing it read (a turn's reply, which
	 * commits lazily) is sent before it is on disk, where a power loss could undo it
	 * and a turn run again send a second, different one. */
	j->job.lazy = 0;
	d->fanout_busy = 1;
	crab_storeq_submit(d->gw->storeq, &j->job);
}

/* ---- rows handed over by their durable group ---- */

/* Whether a fast subscriber takes row r (its offers, grant and YAML filter). */
static int selects(const struct sub *s, const struct crab_store_outbox *o)
{
	return crab_json_list_has(s->types, o->type) && (s->tenants == NULL ||
		(o->tenant_id != NULL && crab_json_list_has(s->tenants, o->tenant_id)));
}

void crab_dispatch_published(struct crab_dispatch *d, struct crab_outbox_batch *b)
{
	int read_on = 0;

	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		if (!s->fast || s->gone)
			continue;
		for (size_t i = 0; i < b->n; i++) {
			const struct crab_outbox_row *r = b->rows[i];
			if (r->pos <= s->read_pos)
				continue; /* a fan-out read it already */
			if (r->pos != s->read_pos + 1) {
				s->gap = 1; /* written before it took rows this way: read them */
				break;
			}
			if (crab_fastq_room(s->fq) == 0) {
				s->behind = 1; /* read on once there is room */
				break;
			}
			if (selects(s, &r->o))
				crab_fastq_add(s->fq, crab_fast_make(&r->o, r->pos));
			s->read_pos = r->pos;
		}
		read_on |= s->gap;
		crab_dispatch_pump(s);
	}
	crab_outbox_batch_free(b);
	if (read_on)
		crab_dispatch_kick_later(d);
}

/* ---- cursors of the memory path ---- */

struct cursor_job {
	struct crab_store_job job;
	size_t n;
	struct {
		char peer_id[CRAB_ID_MAX];
		int64_t pos;
	} c[];
};

static int cursors_run(struct crab_store *st, struct crab_store_job *job)
{
	struct cursor_job *j = (struct cursor_job *)job;

	for (size_t i = 0; i < j->n; i++) {
		if (crab_store_cursor_set(st, j->c[i].peer_id, j->c[i].pos) != 0)
			return -1;
	}
	return 0;
}

static void cursors_done(struct crab_store_job *job, enum crab_job_status status)
{
	(void)status; /* not stored: more is sent again after a crash, nothing is lost */
	free(job);
}

/* The cursor a fast subscriber may store now, or -1 when it has not moved. */
static int64_t cursor_due(const struct sub *s)
{
	int64_t pos = s->fast ? crab_fastq_watermark(s->fq, s->read_pos) : -1;

	return pos == s->cursor_stored ? -1 : pos;
}

void crab_dispatch_store_cursors(struct crab_dispatch *d)
{
	struct cursor_job *j;
	size_t n = 0;

	for (struct sub *s = d->subs; s != NULL; s = s->next)
		n += cursor_due(s) >= 0;
	if (n == 0)
		return; /* the usual second: nothing moved, nothing to allocate */
	j = xcalloc(1, sizeof(*j) + n * sizeof(j->c[0]));
	for (struct sub *s = d->subs; s != NULL; s = s->next) {
		int64_t pos = cursor_due(s);
		if (pos < 0)
			continue;
		crab_strlcpy(j->c[j->n].peer_id, s->peer_id, sizeof(j->c[0].peer_id));
		j->c[j->n++].pos = s->cursor_stored = pos;
	}
	j->job.run = cursors_run;
	j->job.done = cursors_done;
	j->job.lazy = 1;
	crab_storeq_submit(d->gw->storeq, &j->job);
}
