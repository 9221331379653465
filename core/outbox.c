/* outbox.c: see outbox.h. The frame is written as text around the data, which the
 * caller has encoded once (jsontext.h). */
#include "outbox.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "id.h"
#include "jsontext.h"
#include "util.h"

static atomic_uint_fast64_t writes;
static atomic_int collecting;
static struct crab_outbox_batch *group; /* the store worker's own */
static size_t group_cap;

uint64_t crab_outbox_writes(void)
{
	return atomic_load_explicit(&writes, memory_order_relaxed);
}

static const char *put(char **p, const char *s)
{
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(*p, s, n);
	*p += n;
	return *p - n;
}

static size_t len0(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static void keep(const struct crab_store_outbox *o, int64_t pos)
{
	struct crab_outbox_row *r = xmalloc(sizeof(*r) + len0(o->id) + len0(o->tenant_id) +
	    len0(o->session_id) + len0(o->type) + len0(o->idempotency_key) + len0(o->payload));
	char *p = r->text;

	r->pos = pos;
	r->o = *o;
	r->o.id = put(&p, o->id);
	r->o.tenant_id = put(&p, o->tenant_id);
	r->o.session_id = put(&p, o->session_id);
	r->o.type = put(&p, o->type);
	r->o.idempotency_key = put(&p, o->idempotency_key);
	r->o.payload = put(&p, o->payload);
	if (group == NULL) {
		group = xcalloc(1, sizeof(*group));
		group_cap = 0;
	}
	if (group->n == group_cap) {
		group_cap = group_cap ? 2 * group_cap : 64;
		group->rows = xrealloc(group->rows, group_cap * sizeof(*group->rows));
	}
	group->rows[group->n++] = r;
}

void crab_outbox_collect(int on)
{
	atomic_store_explicit(&collecting, on, memory_order_relaxed);
}

size_t crab_outbox_mark(void *unused)
{
	(void)unused;
	return group ? group->n : 0;
}

void crab_outbox_rollback(void *unused, size_t mark)
{
	(void)unused;
	while (group != NULL && group->n > mark)
		free(group->rows[--group->n]);
}

void *crab_outbox_take(void *unused)
{
	struct crab_outbox_batch *b = group;

	(void)unused;
	if (b == NULL || b->n == 0)
		return NULL;
	group = NULL;
	return b;
}

void crab_outbox_batch_free(struct crab_outbox_batch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->rows[i]);
	free(b->rows);
	free(b);
}

int crab_outbox_put(struct crab_store *st, const struct crab_outbox_event *ev)
{
	char id[CRAB_ID_MAX], when[32];
	struct crab_buf b = {0};
	int rc;

	crab_id_new("evt", id);
	crab_clock_format(ev->now_ms, when, sizeof(when));
	crab_jobj_open(&b);
	crab_jobj_str(&b, "id", id);
	crab_jobj_str(&b, "type", ev->type);
	crab_jobj_str(&b, "tenant_id", ev->tenant_id);
	crab_jobj_str(&b, "agent_id", ev->agent_id);
	crab_jobj_str(&b, "session_id", ev->session_id);
	crab_jobj_str(&b, "turn_id", ev->turn_id);
	crab_jobj_int(&b, "seq", ev->seq);
	crab_jobj_str(&b, "idempotency_key", ev->idempotency_key);
	crab_jobj_str(&b, "occurred_at", when);
	crab_jobj_raw(&b, "data", ev->data ? ev->data : "{}");
	crab_jobj_close(&b);
	const struct crab_store_outbox o = {
		.id = id, .tenant_id = ev->tenant_id, .session_id = ev->session_id,
		.seq = ev->seq, .type = ev->type, .idempotency_key = ev->idempotency_key,
		.payload = b.data, .created_at = ev->now_ms,
	};
	int64_t pos;

	rc = crab_store_outbox_insert(st, &o, &pos);
	if (rc == 0 && atomic_load_explicit(&collecting, memory_order_relaxed))
		keep(&o, pos);
	crab_buf_free(&b);
	atomic_fetch_add_explicit(&writes, 1, memory_order_relaxed);
	return rc;
}
