/* live.c: see live.h. The outbox tail is one store job at a time reading the rows after
 * the last position it saw, kept only for the sessions someone is subscribed to. */
#include "live.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch.h"
#include "gateway.h"
#include "http_server.h"
#include "id.h"
#include "jsontext.h"
#include "lease.h"
#include "log.h"
#include "outbox.h"
#include "peers.h"
#include "strmap.h"
#include "util.h"
#include "ws.h"

#define TAIL_BATCH 1000
#define UNACKED_MAX 1000 /* a lease's deliveries kept for a resend; older ones drop */
#define SWEEP_MS 1000    /* how often credentials of open connections are checked */

struct conn {
	struct conn *next, **prevp;
	struct crab_live *l;
	struct crab_ws *ws;    /* NULL once closed, while ingest answers are still due */
	char lease_id[CRAB_ID_MAX];
	char fp[CRAB_FP_HEX];
	char who[64];
	int answers;           /* events sent to ingest, not answered yet */
	int subscribed;
	int peer_subscribed;   /* a paired subscriber's: the dispatcher sends here */
	char session_id[CRAB_ID_MAX]; /* "" with a lease: the lease's, once it has one */
	json_t *types;         /* NULL: every type */
};

/* A lease's deliveries not acknowledged yet (live of them), in order: slots [head, n) of
 * the arrays, an acknowledged one a NULL frame until the head passes it or the slots
 * are squeezed, once full and at least half acknowledged. Acks come mostly in order:
 * the arrays are not shifted at every ack. */
struct unacked {
	struct unacked *next, **prevp; /* every lease's, for the sweep */
	char lease_id[CRAB_ID_MAX];
	char (*ids)[CRAB_ID_MAX];
	char **frames;
	size_t head, n, cap, live;
};

struct crab_live {
	struct crab_gateway *gw;
	struct conn *conns;
	size_t nconns;
	struct crab_strmap *unacked; /* lease id -> struct unacked */
	struct unacked *unacked_list;
	int64_t pos;                 /* the outbox tail's position; -1: start from the end */
	int tail_busy, tail_again;
	uint64_t outbox_seen;
	struct event *sweep;
};

/* ---- sending ---- */

static void send_json(struct conn *c, const char *text)
{
	if (c->ws != NULL)
		crab_ws_send(c->ws, 0, text, strlen(text));
}

static void send_error(struct conn *c, const struct crab_error *err)
{
	json_t *o = json_pack("{s:s, s:o}", "op", "error", "error", crab_error_json(err));
	char *text = json_dumps(o, JSON_COMPACT);

	send_json(c, text);
	free(text);
	json_decref(o);
}

/* The lease of that id while it has not expired, else NULL. */
static struct crab_lease *live_lease(struct crab_live *l, const char *lease_id)
{
	struct crab_lease *le;

	if (lease_id[0] == '\0')
		return NULL;
	le = crab_lease_table_by_id(l->gw->leases, lease_id);
	return le != NULL && le->expires_at > crab_clock_now_ms() ? le : NULL;
}

static struct crab_lease *conn_lease(struct conn *c)
{
	return live_lease(c->l, c->lease_id);
}

/* Whether a credential still stands: a lease alive, a peer still paired. */
static int conn_valid(struct conn *c)
{
	if (c->lease_id[0] != '\0')
		return conn_lease(c) != NULL;
	return crab_peer_table_by_fingerprint(c->l->gw->peers, c->fp) != NULL;
}

/* The session a subscription follows now ("" when its lease has none yet). */
static const char *conn_session(struct conn *c)
{
	struct crab_lease *le;

	if (c->session_id[0] != '\0')
		return c->session_id;
	le = conn_lease(c);
	return le != NULL && le->session_id != NULL ? le->session_id : "";
}

static int wants(struct conn *c, const char *session_id, const char *type)
{
	if (!c->subscribed || c->ws == NULL || session_id == NULL ||
	    strcmp(conn_session(c), session_id) != 0)
		return 0;
	return c->types == NULL || crab_json_list_has(c->types, type);
}

static void unacked_free(void *v)
{
	struct unacked *u = v;

	*u->prevp = u->next;
	if (u->next != NULL)
		u->next->prevp = u->prevp;
	for (size_t i = u->head; i < u->n; i++)
		free(u->frames[i]);
	free(u->frames);
	free(u->ids);
	free(u);
}

/* Delivery i goes. */
static void unacked_remove(struct unacked *u, size_t i)
{
	free(u->frames[i]);
	u->frames[i] = NULL;
	u->live--;
	while (u->head < u->n && u->frames[u->head] == NULL)
		u->head++;
}

/* Room for one more at the end: the acknowledged squeezed out when they are at least
 * half the slots (so each squeeze pays for as many adds), else more slots (at most
 * twice UNACKED_MAX, as live never passes it). */
static void unacked_room(struct unacked *u)
{
	size_t k = 0;

	if (u->n < u->cap)
		return;
	if (u->cap > 0 && u->live <= u->cap / 2) {
		for (size_t i = u->head; i < u->n; i++) {
			if (u->frames[i] == NULL)
				continue;
			u->frames[k] = u->frames[i];
			memcpy(u->ids[k], u->ids[i], sizeof(u->ids[0]));
			k++;
		}
		u->head = 0;
		u->n = k;
		return;
	}
	u->cap = u->cap ? 2 * u->cap : 16;
	u->frames = xrealloc(u->frames, u->cap * sizeof(*u->frames));
	u->ids = xrealloc(u->ids, u->cap * sizeof(*u->ids));
}

static void unacked_drop(struct crab_live *l, const char *lease_id)
{
	struct unacked *u = crab_strmap_del(l->unacked, lease_id);

	if (u != NULL)
		unacked_free(u);
}

static void unacked_add(struct crab_live *l, const char *lease_id, const char *id,
    const char *frame)
{
	struct unacked *u = crab_strmap_get(l->unacked, lease_id);

	if (u == NULL) {
		u = xcalloc(1, sizeof(*u));
		crab_strlcpy(u->lease_id, lease_id, sizeof(u->lease_id));
		crab_strmap_put(l->unacked, lease_id, u);
		u->next = l->unacked_list;
		if (u->next != NULL)
			u->next->prevp = &u->next;
		u->prevp = &l->unacked_list;
		l->unacked_list = u;
	}
	if (u->live == UNACKED_MAX) /* the oldest goes: the turns stay in the store */
		unacked_remove(u, u->head);
	unacked_room(u);
	u->frames[u->n] = xstrdup(frame);
	crab_strlcpy(u->ids[u->n], id, sizeof(u->ids[0]));
	u->n++;
	u->live++;
}

static void unacked_ack(struct crab_live *l, const char *lease_id, const char *id)
{
	struct unacked *u = crab_strmap_get(l->unacked, lease_id);

	if (u == NULL)
		return;
	for (size_t i = u->head; i < u->n; i++) {
		if (u->frames[i] != NULL && strcmp(u->ids[i], id) == 0) {
			unacked_remove(u, i);
			return;
		}
	}
}

/* A published event for a subscribed session: a delivery, kept until acknowledged. */
static void deliver(struct crab_live *l, const char *session_id, const char *type,
    const char *payload)
{
	for (struct conn *c = l->conns; c != NULL; c = c->next) {
		char id[CRAB_ID_MAX];
		struct crab_buf b = {0};

		if (!wants(c, session_id, type))
			continue;
		crab_id_new("dlv", id);
		crab_jobj_open(&b);
		crab_jobj_str(&b, "op", "deliver");
		crab_jobj_str(&b, "delivery_id", id);
		crab_jobj_raw(&b, "event", payload);
		crab_jobj_close(&b);
		send_json(c, b.data);
		if (c->lease_id[0] != '\0')
			unacked_add(l, c->lease_id, id, b.data);
		crab_buf_free(&b);
	}
}

void crab_live_delta(struct crab_live *l, const char *tenant_id, const char *agent_id,
    const char *session_id, const char *turn_id, const char *text, size_t len)
{
	struct crab_buf ev = {0}, data = {0}, b = {0};
	struct conn *c;
	char when[32];

	if (l == NULL)
		return;
	/* per delta of every turn: built only when someone follows this session */
	for (c = l->conns; c != NULL && !wants(c, session_id, "message.delta"); c = c->next)
		;
	if (c == NULL)
		return;
	crab_clock_format(crab_clock_now_ms(), when, sizeof(when));
	crab_jobj_open(&data);
	crab_jobj_strn(&data, "text", text, len);
	crab_jobj_close(&data);
	crab_jobj_open(&ev);
	crab_jobj_str(&ev, "type", "message.delta");
	crab_jobj_str(&ev, "tenant_id", tenant_id);
	crab_jobj_str(&ev, "agent_id", agent_id);
	crab_jobj_str(&ev, "session_id", session_id);
	crab_jobj_str(&ev, "turn_id", turn_id);
	crab_jobj_str(&ev, "occurred_at", when);
	crab_jobj_raw(&ev, "data", data.data);
	crab_jobj_close(&ev);
	crab_jobj_open(&b);
	crab_jobj_str(&b, "op", "deliver");
	crab_jobj_raw(&b, "delivery_id", NULL); /* live only: nothing to acknowledge */
	crab_jobj_raw(&b, "event", ev.data);
	crab_jobj_close(&b);
	for (; c != NULL; c = c->next) {
		if (wants(c, session_id, "message.delta"))
			send_json(c, b.data);
	}
	crab_buf_free(&data);
	crab_buf_free(&ev);
	crab_buf_free(&b);
}

/* ---- the outbox tail ---- */

struct tail_row {
	char *session_id, *type, *payload;
};

struct tail_job {
	struct crab_store_job job;
	struct crab_live *l;
	char **sessions;
	size_t nsessions;
	int64_t pos, last;
	struct tail_row *rows;
	size_t nrows;
};

static int tail_row(const struct crab_store_outbox *o, int64_t pos, void *arg)
{
	struct tail_job *j = arg;

	j->last = pos;
	for (size_t i = 0; o->session_id != NULL && i < j->nsessions; i++) {
		if (strcmp(j->sessions[i], o->session_id) != 0)
			continue;
		j->rows = xrealloc(j->rows, (j->nrows + 1) * sizeof(*j->rows));
		j->rows[j->nrows].session_id = xstrdup(o->session_id);
		j->rows[j->nrows].type = xstrdup(o->type);
		j->rows[j->nrows].payload = xstrdup(o->payload);
		j->nrows++;
		break;
	}
	return 0;
}

static int tail_run(struct crab_store *st, struct crab_store_job *job)
{
	struct tail_job *j = (struct tail_job *)job;

	if (j->pos < 0) /* the first subscriber: from now on */
		return crab_store_outbox_last(st, &j->last);
	j->last = j->pos;
	return crab_store_outbox_after(st, j->pos, TAIL_BATCH, 1, tail_row, j);
}

static void start_tail(struct crab_live *l);

static void tail_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct tail_job *j = (struct tail_job *)job;
	struct crab_live *l = j->l;

	l->tail_busy = 0;
	if (status == CRAB_JOB_OK) {
		for (size_t i = 0; i < j->nrows; i++)
			deliver(l, j->rows[i].session_id, j->rows[i].type, j->rows[i].payload);
		if (j->pos >= 0 && j->last - j->pos >= TAIL_BATCH)
			l->tail_again = 1;
		l->pos = j->last;
	}
	for (size_t i = 0; i < j->nrows; i++) {
		free(j->rows[i].session_id);
		free(j->rows[i].type);
		free(j->rows[i].payload);
	}
	for (size_t i = 0; i < j->nsessions; i++)
		free(j->sessions[i]);
	free(j->sessions);
	free(j->rows);
	free(j);
	if (l->tail_again)
		start_tail(l);
}

static void start_tail(struct crab_live *l)
{
	struct tail_job *j;

	if (l->gw->draining)
		return;
	if (l->tail_busy) {
		l->tail_again = 1;
		return;
	}
	l->tail_again = 0;
	l->outbox_seen = crab_outbox_writes();
	j = xcalloc(1, sizeof(*j));
	j->l = l;
	j->pos = l->pos;
	for (struct conn *c = l->conns; c != NULL; c = c->next) {
		const char *s = c->subscribed ? conn_session(c) : "";
		if (s[0] == '\0')
			continue;
		j->sessions = xrealloc(j->sessions, (j->nsessions + 1) * sizeof(*j->sessions));
		j->sessions[j->nsessions++] = xstrdup(s);
	}
	/* No session to look for: nothing to read now, but the tail keeps its place, so a
	 * lease that subscribes again gets what its session published meanwhile. Only the
	 * first subscription of a run starts it, at the end of the outbox. */
	if (j->nsessions == 0 && j->pos >= 0) {
		free(j);
		return;
	}
	j->job.run = tail_run;
	j->job.done = tail_done;
	j->job.lazy = 1; /* it writes nothing */
	l->tail_busy = 1;
	crab_storeq_submit(l->gw->storeq, &j->job);
}

void crab_live_outbox_moved(struct crab_live *l)
{
	if (l != NULL && l->conns != NULL && crab_outbox_writes() != l->outbox_seen)
		start_tail(l);
}

/* ---- frames in ---- */

struct answer {
	struct conn *c;
	json_t *ref; /* the client's "ref", echoed */
};

static void conn_free(struct conn *c);

static void event_answered(void *arg, int status, const char *body, size_t len)
{
	struct answer *a = arg;
	struct conn *c = a->c;
	json_t *b = json_loadb(body, len, 0, NULL), *o;
	char *text;

	c->answers--;
	if (status == 202 && json_is_object(b))
		o = json_pack("{s:s, s:O, s:O, s:O}", "op", "accepted", "event_id",
		    json_object_get(b, "event_id"), "session_id", json_object_get(b, "session_id"),
		    "duplicate", json_object_get(b, "duplicate"));
	else
		o = json_pack("{s:s, s:O?}", "op", "error", "error", json_object_get(b, "error"));
	if (a->ref != NULL)
		json_object_set(o, "ref", a->ref);
	text = json_dumps(o, JSON_COMPACT);
	send_json(c, text);
	free(text);
	json_decref(o);
	json_decref(b);
	json_decref(a->ref);
	free(a);
	if (c->ws == NULL && c->answers == 0)
		conn_free(c);
}

static void op_event(struct conn *c, json_t *msg)
{
	struct crab_gateway *gw = c->l->gw;
	json_t *ev = json_object_get(msg, "event");
	struct crab_ingest_producer p;
	struct crab_error err;
	char id[CRAB_ID_MAX + 8];
	struct answer *a;
	char *body;

	if (crab_credential_may_produce(gw, conn_lease(c), c->fp, &err) != 0) {
		send_error(c, &err);
		return;
	}
	if (!json_is_object(ev)) {
		crab_error_set(&err, "invalid_envelope", "event", "'event' must be an object");
		send_error(c, &err);
		return;
	}
	a = xcalloc(1, sizeof(*a));
	a->c = c;
	a->ref = json_incref(json_object_get(msg, "ref"));
	c->answers++;
	crab_credential_producer(gw, conn_lease(c), c->fp, &p, id, sizeof(id));
	body = json_dumps(ev, JSON_COMPACT);
	crab_ingest(gw, body, strlen(body), &p, event_answered, a);
	free(body);
}

static int peer_send(void *conn, const char *text, size_t len)
{
	struct conn *c = conn;

	return c->ws != NULL ? crab_ws_send(c->ws, 0, text, len) : -1;
}

static void op_subscribe(struct conn *c, json_t *msg)
{
	struct crab_lease *le = conn_lease(c);
	json_t *types = json_object_get(msg, "types");
	const char *session = json_string_value(json_object_get(msg, "session_id"));
	struct unacked *u;
	struct crab_error err;
	size_t i;
	json_t *t;

	if (le == NULL) {
		/* A paired subscriber: its subscription is the peer's (its offers and grant),
		 * durable; the dispatcher sends over this connection while it is open. */
		if (crab_dispatch_attach(c->l->gw->dispatch, c->fp, c, peer_send) == 0) {
			crab_error_set(&err, "forbidden", NULL, "this peer is not a paired subscriber");
			send_error(c, &err);
			return;
		}
		c->peer_subscribed = 1;
		send_json(c, "{\"op\":\"subscribed\"}");
		return;
	}
	if (!(le->scopes & CRAB_LEASE_SUBSCRIBE)) {
		crab_error_set(&err, "forbidden", NULL, "this lease may not subscribe");
		send_error(c, &err);
		return;
	}
	if (session != NULL && (le->session_id == NULL || strcmp(session, le->session_id) != 0)) {
		crab_error_set(&err, "session_forbidden", "session_id",
		    "this lease may subscribe to its own session only");
		send_error(c, &err);
		return;
	}
	if (types != NULL && !json_is_null(types) && !json_is_array(types)) {
		crab_error_set(&err, "bad_request", "types", "types must be a list of event types");
		send_error(c, &err);
		return;
	}
	json_array_foreach(types, i, t) {
		if (!json_is_string(t)) {
			crab_error_set(&err, "bad_request", "types", "types must be strings");
			send_error(c, &err);
			return;
		}
	}
	json_decref(c->types);
	c->types = json_is_array(types) ? json_incref(types) : NULL;
	c->subscribed = 1;
	send_json(c, "{\"op\":\"subscribed\"}");
	/* What it was sent and did not acknowledge comes again, in order. */
	if ((u = crab_strmap_get(c->l->unacked, c->lease_id)) != NULL)
		for (i = u->head; i < u->n; i++)
			if (u->frames[i] != NULL)
				send_json(c, u->frames[i]);
	start_tail(c->l);
}

static void on_message(void *arg, struct crab_ws *ws, int binary, const char *data, size_t len)
{
	struct conn *c = arg;
	json_t *msg = binary ? NULL : json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
	const char *op = json_string_value(json_object_get(msg, "op"));
	struct crab_error err;

	(void)ws;
	if (!conn_valid(c)) {
		crab_ws_close(c->ws, 1008, "the lease or the pairing has ended");
	} else if (msg == NULL || op == NULL) {
		crab_error_set(&err, binary ? "unsupported_media_type" : "invalid_json", NULL,
		    "a frame is one JSON object with an \"op\", as text");
		send_error(c, &err);
	} else if (strcmp(op, "event") == 0) {
		op_event(c, msg);
	} else if (strcmp(op, "subscribe") == 0) {
		op_subscribe(c, msg);
	} else if (strcmp(op, "ack") == 0) {
		const char *id = json_string_value(json_object_get(msg, "delivery_id"));
		if (id != NULL && c->lease_id[0] != '\0')
			unacked_ack(c->l, c->lease_id, id);
		else if (id != NULL && c->peer_subscribed)
			crab_dispatch_ack(c->l->gw->dispatch, c, id);
	} else {
		crab_error_set(&err, "bad_request", "op", "unknown op '%.32s'", op);
		send_error(c, &err);
	}
	json_decref(msg);
}

/* ---- connections ---- */

static void conn_unlink(struct conn *c)
{
	if (c->prevp == NULL)
		return;
	*c->prevp = c->next;
	if (c->next != NULL)
		c->next->prevp = c->prevp;
	c->prevp = NULL;
	c->l->nconns--;
}

static void conn_free(struct conn *c)
{
	conn_unlink(c);
	json_decref(c->types);
	free(c);
}

static void on_close(void *arg, struct crab_ws *ws, int code, const char *reason)
{
	struct conn *c = arg;
	struct crab_live *l = c->l;
	struct crab_lease *le = conn_lease(c);

	(void)ws;
	log_debug("websocket of %s closed: %d %s", c->who, code, reason);
	c->ws = NULL;
	conn_unlink(c);
	if (c->peer_subscribed)
		crab_dispatch_detach(l->gw->dispatch, c);
	if (le != NULL && le->connection_bound)
		crab_lease_connection_ended(l->gw, c->lease_id);
	if (c->lease_id[0] != '\0' && conn_lease(c) == NULL)
		unacked_drop(l, c->lease_id); /* the lease ended: so do its deliveries */
	if (c->answers == 0)
		conn_free(c);
}

static const struct crab_ws_callbacks callbacks = {
	.on_message = on_message,
	.on_close = on_close,
};

void crab_live_accept(struct crab_live *l, struct crab_http_request *req,
    const char *lease_id, const char *peer_fp)
{
	const struct crab_config *cfg = l->gw->cfg;
	struct crab_ws_limits limits = {
		.max_message = (size_t)cfg->limits.max_body_bytes,
		.idle_timeout_s = (int)cfg->limits.idle_timeout_s,
		/* pinged well within the idle limit, so a quiet but healthy client stays */
		.ping_interval_s = cfg->limits.idle_timeout_s > 2 ?
		    (int)cfg->limits.idle_timeout_s / 2 : 1,
	};
	struct conn *c;
	struct crab_error err;

	if (l->nconns >= (size_t)cfg->limits.max_connections) {
		crab_error_set(&err, "rate_limited", NULL, "too many WebSocket connections");
		crab_http_reply_error(req, &err);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->l = l;
	if (lease_id != NULL) {
		crab_strlcpy(c->lease_id, lease_id, sizeof(c->lease_id));
		crab_strlcpy(c->who, lease_id, sizeof(c->who));
	} else {
		crab_strlcpy(c->fp, peer_fp, sizeof(c->fp));
		crab_strlcpy(c->who, crab_peer_table_by_fingerprint(l->gw->peers, peer_fp)->id,
		    sizeof(c->who));
	}
	if ((c->ws = crab_ws_accept(req, &limits, &callbacks, c)) == NULL) {
		free(c);
		return;
	}
	c->next = l->conns;
	if (c->next != NULL)
		c->next->prevp = &c->next;
	c->prevp = &l->conns;
	l->conns = c;
	l->nconns++;
}

static void close_where(struct crab_live *l, int (*gone)(struct conn *c, const void *key),
    const void *key, const char *why)
{
	for (struct conn *c = l->conns; c != NULL; c = c->next) {
		if (c->ws != NULL && gone(c, key))
			crab_ws_close(c->ws, 1008, why);
	}
}

static int of_lease(struct conn *c, const void *key)
{
	return strcmp(c->lease_id, key) == 0;
}

static int of_peer(struct conn *c, const void *key)
{
	return c->lease_id[0] == '\0' && strcmp(c->fp, key) == 0;
}

static int invalid(struct conn *c, const void *key)
{
	(void)key;
	return !conn_valid(c);
}

void crab_live_lease_gone(struct crab_live *l, const char *lease_id)
{
	close_where(l, of_lease, lease_id, "the lease has ended");
	unacked_drop(l, lease_id);
}

void crab_live_peer_gone(struct crab_live *l, const char *fingerprint)
{
	close_where(l, of_peer, fingerprint, "the pairing was revoked");
}

/* Leases expire, sessions close: whatever ended a credential closes its connections. */
static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_live *l = arg;
	struct unacked *u, *next;

	(void)fd;
	(void)what;
	close_where(l, invalid, NULL, "the lease or the pairing has ended");
	for (u = l->unacked_list; u != NULL; u = next) {
		next = u->next;
		if (live_lease(l, u->lease_id) == NULL)
			unacked_drop(l, u->lease_id); /* the lease ended: so do its deliveries */
	}
	crab_live_outbox_moved(l);
}

struct crab_live *crab_live_new(struct crab_gateway *gw)
{
	struct crab_live *l = xcalloc(1, sizeof(*l));
	struct timeval every = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};

	l->gw = gw;
	l->pos = -1;
	l->unacked = crab_strmap_new();
	l->sweep = event_new(gw->base, -1, EV_PERSIST, sweep_cb, l);
	event_add(l->sweep, &every);
	return l;
}

void crab_live_drain(struct crab_live *l)
{
	for (struct conn *c = l->conns; c != NULL; c = c->next) {
		if (c->ws != NULL)
			crab_ws_close(c->ws, CRAB_WS_GOING_AWAY, "the gateway is stopping");
	}
}

void crab_live_free(struct crab_live *l)
{
	if (l == NULL)
		return;
	while (l->conns != NULL) {
		struct conn *c = l->conns;
		crab_ws_free(c->ws);
		c->ws = NULL;
		conn_free(c);
	}
	crab_strmap_free(l->unacked, unacked_free);
	event_free(l->sweep);
	free(l);
}

size_t crab_live_connections(struct crab_live *l)
{
	return l->nconns;
}
