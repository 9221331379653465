/* outbox.c: see outbox.h. */
#include "outbox.h"

#include <stdlib.h>

#include "clock.h"
#include "id.h"

int crab_outbox_put(struct crab_store *st, struct crab_outbox_event *ev)
{
	char id[CRAB_ID_MAX], when[32];
	json_t *frame;
	char *payload;
	int rc;

	crab_id_new("evt", id);
	crab_clock_format(ev->now_ms, when, sizeof(when));
	frame = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:I, s:s, s:s, s:o}", "id", id,
	    "type", ev->type, "tenant_id", ev->tenant_id, "agent_id", ev->agent_id,
	    "session_id", ev->session_id, "turn_id", ev->turn_id, "seq", (json_int_t)ev->seq,
	    "idempotency_key", ev->idempotency_key, "occurred_at", when, "data",
	    ev->data ? ev->data : json_object());
	ev->data = NULL;
	payload = json_dumps(frame, JSON_COMPACT);
	json_decref(frame);
	rc = crab_store_outbox_insert(st, &(struct crab_store_outbox){
		.id = id, .tenant_id = ev->tenant_id, .session_id = ev->session_id,
		.seq = ev->seq, .type = ev->type, .idempotency_key = ev->idempotency_key,
		.payload = payload, .created_at = ev->now_ms,
	});
	free(payload);
	return rc;
}
