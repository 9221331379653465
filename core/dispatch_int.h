/* dispatch_int.h: what dispatch.c (subscribers, sending, outcomes) and
 * dispatch_fanout.c (outbox to deliveries, cursors) share. Loop thread only, except
 * where a job's run says otherwise. */
#ifndef CRAB_DISPATCH_INT_H
#define CRAB_DISPATCH_INT_H

#include <jansson.h>
#include <stdint.h>

#include "dispatch.h"
#include "dispatch_fast.h"
#include "id.h"
#include "identity.h"

struct sub {
	struct sub *next;
	struct crab_dispatch *d;
	char peer_id[CRAB_ID_MAX];
	char fp[CRAB_FP_HEX];
	char *endpoint;
	json_t *types, *tenants;
	struct crab_http_client *http; /* this subscriber's connections only */
	struct crab_strmap *sending;   /* delivery id -> struct send */
	int inflight;
	int heads_busy, heads_again;
	int64_t next_ms;               /* the earliest retry not yet due, 0: none */
	int gone;                      /* no longer a live subscriber */
	int fresh;                     /* new: its pending deliveries not looked at yet */
	void *ws;                      /* its own WebSocket, while attached */
	int (*ws_send)(void *conn, const char *text, size_t len);
	/* The memory path (dispatch_fast.h): while fast, new deliveries are held in fq and
	 * the stored cursor trails them; otherwise the fan-out writes rows. */
	int fast;
	struct crab_fastq *fq;
	int64_t read_pos;              /* fast: the outbox position fq is filled up to */
	int64_t cursor_stored;         /* fast: the cursor as last written */
	int behind;                    /* fast: the last fan-out stopped for want of room */
	int gap;                       /* fast: rows handed over skipped some: read them */
};

struct crab_dispatch {
	struct crab_gateway *gw;
	struct sub *subs;
	struct event *kick_ev, *poll_ev;
	uint64_t outbox_seen;
	int fanout_busy, fanout_again, peers_dirty;
	uint64_t delivered, retried, dead_lettered;
};

struct sub *crab_dispatch_sub_find(struct crab_dispatch *d, const char *peer_id);
void crab_dispatch_refresh_subs(struct crab_dispatch *d);
void crab_dispatch_kick_later(struct crab_dispatch *d);
/* What s may send now: due rows (a store job) / the memory queue. */
void crab_dispatch_schedule_heads(struct sub *s);
void crab_dispatch_pump(struct sub *s);
/* Rows for the memory deliveries m[0..n) (taken, freed later) and the cursor at pos:
 * for deliveries the fan-out read for a subscriber that has meanwhile left the memory
 * path. */
void crab_dispatch_spill(struct sub *s, struct crab_fast_delivery **m, size_t n,
    int64_t pos);

/* dispatch_fanout.c */
void crab_dispatch_fanout(struct crab_dispatch *d);
/* Stores the cursors of fast subscribers that moved (each second, and when draining). */
void crab_dispatch_store_cursors(struct crab_dispatch *d);

#endif
