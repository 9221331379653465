/* test_store_deliveries.c: the store suite's delivery checks (test_store.c runs them on
 * each backend): each session's head as rows come and go, and the due heads. */
#include <stdio.h>
#include <string.h>

#include "store/store.h"
#include "t/unit/test_store.h"
#define UNIT_EXTRA_FILE
#include "t/unit/unit.h"

struct heads_seen {
	char ids[8][CRAB_STORE_ID_MAX];
	int n;
};

static int head_seen(const struct crab_store_delivery_due *d, void *arg)
{
	struct heads_seen *h = arg;

	if (h->n < 8)
		snprintf(h->ids[h->n], sizeof(h->ids[0]), "%s", d->id);
	h->n++;
	return 0;
}

/* The due heads at now (at most limit) as "id,id,..", and when the next one comes due. */
static const char *heads_at(struct crab_store *st, int64_t now, int64_t limit, int64_t *next)
{
	static char out[512];
	struct heads_seen h = {.n = 0};

	out[0] = '\0';
	if (crab_store_delivery_heads(st, "peer_heads", now, limit, head_seen, &h, next) != 0)
		return "(failed)";
	for (int i = 0; i < h.n && i < 8; i++)
		snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%s", i ? "," : "",
		    h.ids[i]);
	return out;
}

static void put_delivery(struct crab_store *st, const char *id, const char *session,
    int64_t seq, int64_t at)
{
	char event[CRAB_STORE_ID_MAX], key[CRAB_STORE_ID_MAX];
	int64_t pos;
	int rc;

	snprintf(event, sizeof(event), "evt_heads_%s", id);
	snprintf(key, sizeof(key), "key_%s", id);
	rc = crab_store_outbox_insert(st, &(struct crab_store_outbox){.id = event,
		.tenant_id = "t1", .session_id = session, .seq = seq, .type = "message.outbound",
		.idempotency_key = key, .payload = "{}", .created_at = at}, &pos);
	if (rc == 0)
		rc = crab_store_delivery_insert(st, &(struct crab_store_delivery){.id = id,
			.event_id = event, .subscriber = "peer_heads", .session_key = session,
			.seq = seq, .created_at = at});
	if (rc != 0)
		printf("# %s: %s\n", id, crab_store_error(st));
	CHECK_INT(rc, 0, name("delivery rows inserted"));
}

void test_deliveries(struct crab_store *st, int64_t now)
{
	int64_t next = -1;

	put_delivery(st, "dA1", "sesA", 1, now);
	put_delivery(st, "dA2", "sesA", 2, now + 2);
	put_delivery(st, "dB5", "sesB", 5, now + 1);
	CHECK_STR(heads_at(st, now + 10, 10, &next), "dA1,dB5",
	    name("heads: each session's lowest seq, the longest due first"));
	CHECK_INT(next, 0, name("heads: none waiting to come due"));
	CHECK_STR(heads_at(st, now + 10, 1, &next), "dA1", name("heads: at most the limit"));
	CHECK_STR(heads_at(st, now, 10, &next), "dA1", name("heads: only the due ones"));
	CHECK_INT(next, now + 1, name("heads: when the next comes due"));

	CHECK_INT(crab_store_delivery_done(st, "dA1"), 0, name("delivered: row gone"));
	CHECK_STR(heads_at(st, now + 10, 10, &next), "dB5,dA2",
	    name("delivered: the session's next row is its head"));
	CHECK_INT(crab_store_delivery_retry(st, "dB5", 1, now + 1000, "503"), 0,
	    name("retry stored"));
	CHECK_STR(heads_at(st, now + 10, 10, &next), "dA2",
	    name("retry: the head waits for its next attempt, the other session does not"));
	CHECK_INT(next, now + 1000, name("retry: its next attempt is the next due"));
	CHECK_INT(crab_store_delivery_dead(st, "dA2", "dlq_heads", 12, "gone", now), 0,
	    name("dead letter stored"));
	CHECK_STR(heads_at(st, now + 10, 10, &next), "", name("dead: no head left in its session"));
	CHECK_INT(crab_store_dlq_replay(st, "dlq_heads", "dR1", now + 20), 1,
	    name("dead letter replayed"));
	CHECK_STR(heads_at(st, now + 2000, 10, &next), "dR1,dB5",
	    name("a replay is a head of its own"));

	put_delivery(st, "dC10", "sesC", 10, now + 3);
	put_delivery(st, "dC7", "sesC", 7, now + 4);
	CHECK_STR(heads_at(st, now + 10, 10, &next), "dC7",
	    name("a lower seq inserted later takes the head over"));
	CHECK_INT(crab_store_delivery_done(st, "dC7"), 0, name("delivered: dC7"));
	CHECK_STR(heads_at(st, now + 10, 10, &next), "dC10",
	    name("and hands it back once delivered"));
}

