/* outbox.c: see outbox.h. The frame is written as text around the data, which the
 * caller has encoded once (jsontext.h). */
#include "outbox.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"
#include "id.h"
#include "jsontext.h"

static atomic_uint_fast64_t writes;

uint64_t crab_outbox_writes(void)
{
	return atomic_load_explicit(&writes, memory_order_relaxed);
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
	rc = crab_store_outbox_insert(st, &(struct crab_store_outbox){
		.id = id, .tenant_id = ev->tenant_id, .session_id = ev->session_id,
		.seq = ev->seq, .type = ev->type, .idempotency_key = ev->idempotency_key,
		.payload = b.data, .created_at = ev->now_ms,
	});
	crab_buf_free(&b);
	atomic_fetch_add_explicit(&writes, 1, memory_order_relaxed);
	return rc;
}
