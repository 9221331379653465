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

/* The rows the store worker's current group writes, kept (while collecting is on) for
 * the dispatcher, which gets them once the group is durable instead of reading them
 * back (storeq.h's tap). Store worker only, but crab_outbox_collect. */
struct crab_outbox_row {
	int64_t pos;
	struct crab_store_outbox o; /* strings in text[] */
	char text[];
};
struct crab_outbox_batch {
	struct crab_outbox_row **rows; /* in position order */
	size_t n;
};
/* On while some subscriber takes rows this way (any thread). */
void crab_outbox_collect(int on);
/* Before a job: a mark to roll back to if its savepoint is. */
size_t crab_outbox_mark(void *unused);
void crab_outbox_rollback(void *unused, size_t mark);
/* What the committed group wrote (NULL: nothing); the collection starts afresh. */
void *crab_outbox_take(void *unused);
void crab_outbox_batch_free(struct crab_outbox_batch *b);

#endif
