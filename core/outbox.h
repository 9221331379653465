/* outbox.h: published events (PROTOCOLS.md §3) written into event_outbox inside the
 * store transaction of what they report. Store worker side. */
#ifndef CRAB_OUTBOX_H
#define CRAB_OUTBOX_H

#include <stdint.h>

#include "store/store.h"

struct crab_outbox_event {
	const char *type;
	const char *tenant_id;  /* NULL for gateway-wide events */
	const char *agent_id;
	const char *session_id; /* NULL for gateway-wide events */
	const char *turn_id;    /* NULL when no turn */
	const char *idempotency_key;
	int64_t seq;
	int64_t now_ms;
	const char *data; /* the data member, a JSON object as text; NULL for {} */
};

/* Mints the event id, writes the frame into event_outbox; 0 or -1 (store error). */
int crab_outbox_put(struct crab_store *st, const struct crab_outbox_event *ev);
/* How many frames have been written since the start (any thread): the dispatcher looks
 * for new ones when this has moved. */
uint64_t crab_outbox_writes(void);

#endif
