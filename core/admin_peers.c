/* admin_peers.c: pair.tool|subscriber|operator, peers.list|grant|revoke (SECURITY.md
 * "Pairing", PROTOCOLS.md §6 and §8). Pairing is the gateway's own call to the
 * component: TLS 1.3 presenting the gateway's certificate, the component's key read from
 * the handshake (and held to --expect), its signed answer checked against that key, and
 * only then the peer stored, with peer.paired, in one transaction. */
#include "admin_ops.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dispatch.h"
#include "gateway.h"
#include "http_client.h"
#include "id.h"
#include "identity.h"
#include "jsontext.h"
#include "live.h"
#include "log.h"
#include "outbox.h"
#include "peers.h"
#include "util.h"

#define PAIR_TIMEOUT_MS 15000
#define PAIR_MAX_ANSWER (64 << 10)
#define ENDPOINT_MAX 512
#define COMPONENT_ID_MAX 128
#define TENANTS_MAX 256

struct pair_op {
	struct pair_op *next, **prevp; /* gw->pair_ops */
	struct admin_call *call;
	struct crab_gateway *gw;
	enum crab_peer_type type;
	char *endpoint, *component_id, *expect;
	json_t *grant; /* {"tenants":[...]} or NULL */
	char nonce[64];
	struct crab_tls_pin pin;
	struct crab_http_call *http;
};

/* The store side of pairing, revoking and granting: the peer row and its event. */
struct peer_job {
	struct crab_store_job job;
	struct admin_call *call;
	struct crab_store_peer row;
	char replaced[CRAB_STORE_ID_MAX];
	int found;
	int with_revoked;
	json_t *list; /* peers.list {"all":true} */
};

static void pair_op_free(struct pair_op *op)
{
	if (op->prevp != NULL) {
		*op->prevp = op->next;
		if (op->next != NULL)
			op->next->prevp = op->prevp;
	}
	free(op->endpoint);
	free(op->component_id);
	free(op->expect);
	json_decref(op->grant);
	EVP_PKEY_free(op->pin.key);
	free(op);
}

static void peer_job_free(struct peer_job *j)
{
	crab_store_peer_free(&j->row);
	json_decref(j->list);
	free(j);
}

/* peer.paired / peer.revoked on the gateway-wide stream (PROTOCOLS.md §3). */
static int peer_event(struct crab_store *st, const char *type, const char *peer_id,
    const char *component_type, const char *component_id, int64_t now)
{
	struct crab_buf data = {0}, key = {0};
	int64_t seq;
	int rc;

	if (crab_store_stream_seq(st, &seq) != 0)
		return -1;
	crab_jobj_open(&data);
	crab_jobj_str(&data, "peer_id", peer_id);
	crab_jobj_str(&data, "component_type", component_type);
	crab_jobj_str(&data, "component_id", component_id);
	crab_jobj_close(&data);
	crab_buf_add(&key, type, strlen(type));
	crab_buf_add(&key, ":", 1);
	crab_buf_add(&key, peer_id, strlen(peer_id));
	rc = crab_outbox_put(st, &(struct crab_outbox_event){
		.type = type, .idempotency_key = key.data, .seq = seq, .now_ms = now,
		.data = data.data,
	});
	crab_buf_free(&data);
	crab_buf_free(&key);
	return rc;
}

/* Connections of a fingerprint that no live peer has any more are closed at once. */
static void drop_fingerprint_if_gone(struct crab_gateway *gw, const char *fp)
{
	size_t n;

	if (crab_peer_table_by_fingerprint(gw->peers, fp) != NULL)
		return;
	crab_live_peer_gone(gw->live, fp);
	n = crab_http_server_close_fingerprint(gw->http, fp);
	if (n > 0)
		log_info("closed %zu connection%s of a revoked peer", n, n == 1 ? "" : "s");
}

/* ---- pair.* ---- */

static int pair_store_run(struct crab_store *st, struct crab_store_job *job)
{
	struct peer_job *j = (struct peer_job *)job;

	int64_t from;

	if (crab_store_peer_insert(st, &j->row, j->replaced) != 0)
		return -1;
	/* A subscriber gets what is published from its pairing on. */
	if (strcmp(j->row.component_type, "subscriber") == 0 &&
	    (crab_store_outbox_last(st, &from) != 0 ||
		crab_store_cursor_set(st, j->row.id, from) != 0))
		return -1;
	if (j->replaced[0] != '\0' &&
	    peer_event(st, "peer.revoked", j->replaced, j->row.component_type,
		j->row.component_id, j->row.paired_at) != 0)
		return -1;
	return peer_event(st, "peer.paired", j->row.id, j->row.component_type,
	    j->row.component_id, j->row.paired_at);
}

static void pair_store_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct peer_job *j = (struct peer_job *)job;
	struct crab_gateway *gw = j->call->gw;
	struct crab_peer *p;
	char old_fp[CRAB_FP_HEX] = "";
	json_t *r;

	if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the peer could not be stored");
		peer_job_free(j);
		return;
	}
	if ((p = crab_peer_from_row(&j->row)) == NULL) {
		crab_admin_reply_error(j->call, "internal", "the stored peer does not parse");
		peer_job_free(j);
		return;
	}
	if (j->replaced[0] != '\0') {
		struct crab_peer *old = crab_peer_table_by_id(gw->peers, j->replaced);
		if (old != NULL)
			crab_strlcpy(old_fp, old->fingerprint, sizeof(old_fp));
	}
	crab_peer_table_add(gw->peers, p); /* drops the replaced one */
	if (old_fp[0] != '\0' && strcmp(old_fp, p->fingerprint) != 0)
		drop_fingerprint_if_gone(gw, old_fp);
	p->health = "ok"; /* it has just answered */
	crab_gateway_peers_changed(gw);
	log_info("paired %s '%s' as %s (%s)%s%s", crab_peer_type_name(p->type),
	    p->component_id, p->id, p->endpoint, j->replaced[0] ? ", replacing " : "",
	    j->replaced);
	r = crab_peer_json(p);
	if (j->replaced[0] != '\0')
		json_object_set_new(r, "replaced", json_string(j->replaced));
	crab_admin_reply_ok(j->call, r);
	peer_job_free(j);
}

/* The component's answer, once the TLS peer key, the fingerprint and the signature
 * agree; -1 with the reason in why. */
static int check_answer(struct pair_op *op, json_t *a, char *why, size_t whylen)
{
	const char *fp = json_string_value(json_object_get(a, "fingerprint"));
	const char *cid = json_string_value(json_object_get(a, "component_id"));
	const char *sig = json_string_value(json_object_get(a, "signature"));
	unsigned char digest[32];

	if (!json_is_object(a) || fp == NULL || cid == NULL || sig == NULL ||
	    !json_is_object(json_object_get(a, "offers"))) {
		snprintf(why, whylen, "the component's answer lacks fingerprint, component_id, "
				      "offers or signature");
		return -1;
	}
	if (op->pin.key == NULL || strcmp(fp, op->pin.seen) != 0) {
		snprintf(why, whylen, "the fingerprint the component sent is not its TLS key's");
		return -1;
	}
	if (strcmp(cid, op->component_id) != 0) {
		snprintf(why, whylen, "the component answered as '%.64s', not '%.64s'", cid,
		    op->component_id);
		return -1;
	}
	crab_pair_transcript(op->gw->identity->fingerprint, fp, op->nonce,
	    crab_peer_type_name(op->type), op->component_id, digest);
	if (crab_signature_verify(op->pin.key, digest, sig) != 1) {
		snprintf(why, whylen, "the component's signature of the transcript does not verify");
		return -1;
	}
	return 0;
}

/* The component refused: its own error code, relayed. */
static void relay_refusal(struct pair_op *op, int status, const char *body, size_t len)
{
	json_t *b = body ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *e = json_object_get(b, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	crab_admin_reply_error(op->call, code ? code : "pairing_failed",
	    "the component refused (HTTP %d): %.200s", status, msg ? msg : "no reason given");
	json_decref(b);
}

static void pair_answered(void *arg, int status, const char *body, size_t len,
    const char *error)
{
	struct pair_op *op = arg;
	struct crab_gateway *gw = op->gw;
	char why[256], seen[CRAB_FP_SHORT];
	struct peer_job *j;
	json_t *a;

	op->http = NULL;
	if (error != NULL) {
		if (op->pin.mismatch) {
			crab_fingerprint_short(op->pin.seen, seen);
			log_warnx("pairing %s: the endpoint's key %s is not the expected %s",
			    op->endpoint, seen, op->expect);
			crab_admin_reply_error(op->call, "pin_mismatch",
			    "the endpoint presented key %s, not the expected %s", seen, op->expect);
		} else {
			crab_admin_reply_error(op->call, "peer_unreachable", "%s: %.200s",
			    op->endpoint, error);
		}
		pair_op_free(op);
		return;
	}
	if (status != 200) {
		relay_refusal(op, status, body, len);
		pair_op_free(op);
		return;
	}
	a = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	if (check_answer(op, a, why, sizeof(why)) != 0) {
		log_warnx("pairing %s refused: %s", op->endpoint, why);
		crab_admin_reply_error(op->call, "pin_mismatch", "%s", why);
		json_decref(a);
		pair_op_free(op);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->job.run = pair_store_run;
	j->job.done = pair_store_done;
	j->call = op->call;
	j->row.id = xmalloc(CRAB_ID_MAX);
	crab_id_new("peer", j->row.id);
	j->row.component_type = xstrdup(crab_peer_type_name(op->type));
	j->row.component_id = xstrdup(op->component_id);
	j->row.endpoint = xstrdup(op->endpoint);
	j->row.fingerprint = xstrdup(op->pin.seen);
	j->row.offers = json_dumps(json_object_get(a, "offers"), JSON_COMPACT | JSON_SORT_KEYS);
	j->row.grants = op->grant ? json_dumps(op->grant, JSON_COMPACT) : NULL;
	j->row.paired_at = crab_clock_now_ms();
	json_decref(a);
	pair_op_free(op);
	crab_storeq_submit(gw->storeq, &j->job);
}

/* {"tenants":[...]} from the args' tenants list, NULL for every tenant; -1 when bad. */
static int parse_grant(json_t *tenants, json_t **grant)
{
	size_t i;
	json_t *t;

	*grant = NULL;
	if (tenants == NULL || json_is_null(tenants))
		return 0;
	if (!json_is_array(tenants) || json_array_size(tenants) == 0 ||
	    json_array_size(tenants) > TENANTS_MAX)
		return -1;
	json_array_foreach(tenants, i, t) {
		if (!json_is_string(t) || json_string_length(t) == 0 ||
		    json_string_length(t) > 256)
			return -1;
	}
	*grant = json_pack("{s:O}", "tenants", tenants);
	return 0;
}

static void pair_start(struct admin_call *call, json_t *args, enum crab_peer_type type)
{
	struct crab_gateway *gw = call->gw;
	int bad = 0;
	const char *endpoint = crab_admin_arg_string(args, "endpoint", ENDPOINT_MAX, &bad);
	const char *cid = crab_admin_arg_string(args, "component_id", COMPONENT_ID_MAX, &bad);
	const char *expect = crab_admin_arg_string(args, "expect", 128, &bad);
	char url[ENDPOINT_MAX + 16];
	unsigned char raw[32];
	struct pair_op *op;
	json_t *grant, *body;
	char *text;
	static const char *const headers[] = {"Content-Type: application/json", NULL};

	if (endpoint == NULL || cid == NULL || bad || strncmp(endpoint, "https://", 8) != 0) {
		crab_admin_reply_error(call, "invalid_args", "endpoint (https://host:port) and "
		    "component_id are required");
		return;
	}
	if (expect != NULL && !crab_fingerprint_valid(expect)) {
		crab_admin_reply_error(call, "invalid_args", "expect must be a fingerprint, "
		    "full (64 hex digits) or short (xxxx-xxxx-xxxx-xxxx-xxxx)");
		return;
	}
	if (parse_grant(json_object_get(args, "tenants"), &grant) != 0) {
		crab_admin_reply_error(call, "invalid_args", "tenants must be a list of tenant ids");
		return;
	}
	op = xcalloc(1, sizeof(*op));
	op->call = call;
	op->gw = gw;
	op->type = type;
	op->endpoint = xstrdup(endpoint);
	while (strlen(op->endpoint) > 8 && op->endpoint[strlen(op->endpoint) - 1] == '/')
		op->endpoint[strlen(op->endpoint) - 1] = '\0';
	op->component_id = xstrdup(cid);
	op->expect = expect ? xstrdup(expect) : NULL;
	op->grant = grant;
	crab_random_bytes(raw, sizeof(raw));
	EVP_EncodeBlock((unsigned char *)op->nonce, raw, sizeof(raw));
	op->pin.id = gw->identity;
	op->pin.expect = op->expect;
	body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O?}", "gateway_id",
	    gw->identity->fingerprint, "gateway_name", gw->name, "component_type",
	    crab_peer_type_name(type), "component_id", cid, "nonce", op->nonce, "grant", grant);
	text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	snprintf(url, sizeof(url), "%s/v1/pair", op->endpoint);
	op->http = crab_http_client_start_pinned(gw->http_client,
	    &(struct crab_http_req_v1){.size = sizeof(struct crab_http_req_v1), .method = "POST",
		.url = url, .headers = headers, .body = text, .body_len = strlen(text),
		.timeout_ms = PAIR_TIMEOUT_MS, .max_response_bytes = PAIR_MAX_ANSWER},
	    &(struct crab_http_handler_v1){.size = sizeof(struct crab_http_handler_v1),
		.on_done = pair_answered},
	    op, &op->pin);
	free(text);
	if (op->http == NULL) {
		crab_admin_reply_error(call, "invalid_args", "cannot call '%.200s'", url);
		pair_op_free(op);
		return;
	}
	op->next = gw->pair_ops;
	if (op->next != NULL)
		op->next->prevp = &op->next;
	op->prevp = &gw->pair_ops;
	gw->pair_ops = op;
}

void crab_admin_op_pair_tool(struct admin_call *call, json_t *args)
{
	pair_start(call, args, CRAB_PEER_TOOL);
}

void crab_admin_op_pair_subscriber(struct admin_call *call, json_t *args)
{
	pair_start(call, args, CRAB_PEER_SUBSCRIBER);
}

void crab_admin_op_pair_operator(struct admin_call *call, json_t *args)
{
	pair_start(call, args, CRAB_PEER_OPERATOR);
}

void crab_admin_peers_release(struct crab_gateway *gw)
{
	while (gw->pair_ops != NULL) {
		struct pair_op *op = gw->pair_ops;
		crab_http_client_cancel(op->http);
		crab_admin_reply_error(op->call, "shutting_down", "the gateway stopped first");
		pair_op_free(op);
	}
}

/* ---- peers.list ---- */

static json_t *live_peers(struct crab_gateway *gw)
{
	json_t *list = json_array();

	for (struct crab_peer *p = crab_peer_table_first(gw->peers); p != NULL; p = p->next)
		json_array_append_new(list, crab_peer_json(p));
	return list;
}

static int list_row(const struct crab_store_peer *row, void *arg)
{
	struct peer_job *j = arg;
	struct crab_peer *p = crab_peer_from_row(row);
	json_t *o;

	if (p == NULL)
		return 0;
	o = crab_peer_json(p);
	json_object_del(o, "health");
	if (row->revoked_at != 0)
		json_object_set_new(o, "revoked_at", json_integer(row->revoked_at));
	json_array_append_new(j->list, o);
	crab_peer_free(p);
	return 0;
}

static int list_all_run(struct crab_store *st, struct crab_store_job *job)
{
	struct peer_job *j = (struct peer_job *)job;

	json_array_clear(j->list);
	return crab_store_peer_list(st, 1, list_row, j);
}

static void list_all_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct peer_job *j = (struct peer_job *)job;

	if (status != CRAB_JOB_OK)
		crab_admin_reply_error(j->call, "store_unavailable", "the peers could not be read");
	else
		crab_admin_reply_ok(j->call, json_pack("{s:O}", "peers", j->list));
	peer_job_free(j);
}

static void checked(void *arg)
{
	struct admin_call *call = arg;
	crab_admin_reply_ok(call, json_pack("{s:o}", "peers", live_peers(call->gw)));
}

void crab_admin_op_peers_list(struct admin_call *call, json_t *args)
{
	struct peer_job *j;

	if (json_is_true(json_object_get(args, "check"))) {
		crab_peer_check_all(call->gw, checked, call);
		return;
	}
	if (!json_is_true(json_object_get(args, "all"))) {
		checked(call);
		return;
	}
	j = xcalloc(1, sizeof(*j));
	j->job.run = list_all_run;
	j->job.done = list_all_done;
	j->call = call;
	j->list = json_array();
	crab_storeq_submit(call->gw->storeq, &j->job);
}

/* ---- peers.revoke, peers.grant ---- */

static int revoke_run(struct crab_store *st, struct crab_store_job *job)
{
	struct peer_job *j = (struct peer_job *)job;
	int rc = crab_store_peer_revoke(st, j->row.id, crab_clock_now_ms());

	if (rc <= 0)
		return rc;
	j->found = 1;
	return peer_event(st, "peer.revoked", j->row.id, j->row.component_type,
	    j->row.component_id, crab_clock_now_ms());
}

static void revoke_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct peer_job *j = (struct peer_job *)job;
	struct crab_gateway *gw = j->call->gw;

	if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the peer could not be revoked");
	} else if (!j->found) {
		crab_admin_reply_error(j->call, "not_found", "no live peer '%s'", j->row.id);
	} else {
		crab_peer_table_remove(gw->peers, j->row.id);
		drop_fingerprint_if_gone(gw, j->row.fingerprint);
		crab_gateway_peers_changed(gw);
		log_info("peer %s (%s '%s') revoked", j->row.id, j->row.component_type,
		    j->row.component_id);
		crab_admin_reply_ok(j->call, json_pack("{s:s, s:b}", "peer_id", j->row.id,
		    "revoked", 1));
	}
	peer_job_free(j);
}

/* The live peer an operation names, or NULL after answering not_found. */
static struct crab_peer *named_peer(struct admin_call *call, json_t *args)
{
	int bad = 0;
	const char *id = crab_admin_arg_string(args, "peer_id", CRAB_ID_MAX - 1, &bad);
	struct crab_peer *p = id && !bad ? crab_peer_table_by_id(call->gw->peers, id) : NULL;

	if (id == NULL || bad)
		crab_admin_reply_error(call, "invalid_args", "peer_id is required");
	else if (p == NULL)
		crab_admin_reply_error(call, "not_found", "no live peer '%.64s'", id);
	return p;
}

static struct peer_job *peer_job_of(struct admin_call *call, const struct crab_peer *p)
{
	struct peer_job *j = xcalloc(1, sizeof(*j));

	j->call = call;
	j->row.id = xstrdup(p->id);
	j->row.component_type = xstrdup(crab_peer_type_name(p->type));
	j->row.component_id = xstrdup(p->component_id);
	j->row.fingerprint = xstrdup(p->fingerprint);
	return j;
}

void crab_admin_op_peers_revoke(struct admin_call *call, json_t *args)
{
	struct crab_peer *p = named_peer(call, args);
	struct peer_job *j;

	if (p == NULL)
		return;
	j = peer_job_of(call, p);
	j->job.run = revoke_run;
	j->job.done = revoke_done;
	crab_storeq_submit(call->gw->storeq, &j->job);
}

static int grant_run(struct crab_store *st, struct crab_store_job *job)
{
	struct peer_job *j = (struct peer_job *)job;
	int rc = crab_store_peer_set_grants(st, j->row.id, j->row.grants);

	j->found = rc == 1;
	return rc < 0 ? -1 : 0;
}

static void grant_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct peer_job *j = (struct peer_job *)job;
	struct crab_peer *p = crab_peer_table_by_id(j->call->gw->peers, j->row.id);

	if (status != CRAB_JOB_OK) {
		crab_admin_reply_error(j->call, "store_unavailable", "the grant could not be stored");
	} else if (!j->found || p == NULL) {
		crab_admin_reply_error(j->call, "not_found", "no live peer '%s'", j->row.id);
	} else {
		json_t *g = j->row.grants ? json_loads(j->row.grants, 0, NULL) : NULL;
		json_decref(p->tenants);
		p->tenants = json_incref(json_object_get(g, "tenants"));
		json_decref(g);
		log_info("peer %s now serves %s", p->id, p->tenants ? "the tenants granted" :
								      "every tenant");
		crab_gateway_peers_changed(j->call->gw);
		crab_admin_reply_ok(j->call, crab_peer_json(p));
	}
	peer_job_free(j);
}

void crab_admin_op_peers_grant(struct admin_call *call, json_t *args)
{
	struct crab_peer *p;
	struct peer_job *j;
	json_t *grant;

	if (parse_grant(json_object_get(args, "tenants"), &grant) != 0) {
		crab_admin_reply_error(call, "invalid_args",
		    "tenants must be a list of tenant ids, or null for every tenant");
		return;
	}
	if ((p = named_peer(call, args)) == NULL) {
		json_decref(grant);
		return;
	}
	j = peer_job_of(call, p);
	j->row.grants = grant ? json_dumps(grant, JSON_COMPACT) : NULL;
	json_decref(grant);
	j->job.run = grant_run;
	j->job.done = grant_done;
	crab_storeq_submit(call->gw->storeq, &j->job);
}
