/* test_peers.c: the peer index and the peer columns of PEER_AUTH_MODEL.md's matrix. */
#include <stdio.h>
#include <string.h>

#include "core/peers.h"
#include "t/unit/unit.h"

#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FP_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static struct crab_peer *peer(const char *id, const char *type, const char *cid,
    const char *fp, const char *offers, const char *grants)
{
	char buf[6][256];
	struct crab_store_peer row = {buf[0], buf[1], buf[2], NULL, buf[3], buf[4],
		grants ? buf[5] : NULL, 1000, 0};

	snprintf(buf[0], sizeof(buf[0]), "%s", id);
	snprintf(buf[1], sizeof(buf[1]), "%s", type);
	snprintf(buf[2], sizeof(buf[2]), "%s", cid);
	snprintf(buf[3], sizeof(buf[3]), "%s", fp);
	snprintf(buf[4], sizeof(buf[4]), "%s", offers);
	snprintf(buf[5], sizeof(buf[5]), "%s", grants ? grants : "");
	return crab_peer_from_row(&row);
}

int main(void)
{
	struct crab_peer_table *t = crab_peer_table_new();
	struct crab_error err;
	enum crab_peer_type type;
	struct crab_peer *p;

	CHECK(crab_peer_type_parse("cli", &type) == 0 && type == CRAB_PEER_OPERATOR,
	    "cli is the operator type");
	CHECK(crab_peer_type_parse("root", &type) == -1, "an unknown type is refused");
	CHECK(peer("peer_x", "tool", "m", "short", "{}", NULL) == NULL,
	    "a row with a malformed fingerprint is not loaded");
	CHECK(peer("peer_x", "tool", "m", FP_A, "[1]", NULL) == NULL,
	    "a row whose offers are not an object is not loaded");

	/* A: a listener (subscriber) that relays chat; the memory service is tool and
	 * subscriber under one key (B); C: the cron service; and an operator. */
	crab_peer_table_add(t, peer("peer_1", "subscriber", "telegram", FP_A,
	    "{\"produces\":[\"channel.message.received\"]}", "{\"tenants\":[\"family\"]}"));
	crab_peer_table_add(t, peer("peer_2", "tool", "memory", FP_B, "{\"tools\":true}", NULL));
	crab_peer_table_add(t, peer("peer_3", "subscriber", "memory", FP_B,
	    "{\"subscribes\":[\"turn.completed\"]}", NULL));
	crab_peer_table_add(t, peer("peer_4", "tool", "cron", FP_C,
	    "{\"produces\":[\"cron.job.fired\"]}", NULL));

	CHECK(crab_peer_may_produce(t, FP_A, "channel.message.received", "family", &err) == 1,
	    "a subscriber produces what it offered, in its grant");
	CHECK(crab_peer_may_produce(t, FP_A, "channel.message.received", "acme", &err) == 0 &&
		  strcmp(err.code, "forbidden") == 0 && strcmp(err.field, "tenant_id") == 0,
	    "but not for a tenant outside its grant: 403 forbidden, tenant_id");
	CHECK(crab_peer_may_produce(t, FP_A, "cron.job.fired", "family", &err) == 0 &&
		  strcmp(err.field, "type") == 0, "nor a type it did not offer: field type");
	CHECK(!crab_peer_names_tenant(t, FP_A), "a subscriber never names the tenant");
	CHECK(!crab_peer_produces(t, FP_B), "the memory service produces nothing");
	CHECK(crab_peer_produces(t, FP_C) && crab_peer_names_tenant(t, FP_C),
	    "the cron service produces, and names the tenant (produce_internal)");
	CHECK(crab_peer_may_produce(t, FP_C, "cron.job.fired", "anyone", &err) == 1,
	    "without a grant, every tenant");
	CHECK(crab_peer_may_produce(t, FP_C, "channel.message.received", NULL, &err) == 0,
	    "the cron service may not relay chat");

	crab_peer_table_add(t, peer("peer_5", "operator", "laptop", FP_A, "{}", NULL));
	CHECK(crab_peer_names_tenant(t, FP_A) &&
		  crab_peer_may_produce(t, FP_A, "cron.job.fired", "acme", &err) == 1,
	    "an operator role under the same key may do anything on the data plane");
	CHECK(crab_peer_table_remove(t, "peer_5") == 1 && !crab_peer_names_tenant(t, FP_A),
	    "removing that role takes it back");

	/* Pairing the same role again replaces it, under a new key. */
	crab_peer_table_add(t, peer("peer_6", "tool", "cron", FP_A,
	    "{\"produces\":[\"cron.job.fired\"]}", NULL));
	CHECK(crab_peer_table_by_id(t, "peer_4") == NULL &&
		  crab_peer_table_by_fingerprint(t, FP_C) == NULL,
	    "re-pairing a role drops the old peer and its key");
	CHECK(crab_peer_may_produce(t, FP_C, "cron.job.fired", "family", &err) == 0 &&
		  strcmp(err.code, "unauthenticated") == 0, "the old key is unknown now: 401");

	p = crab_peer_table_by_fingerprint(t, FP_B);
	CHECK(p != NULL && strcmp(p->id, "peer_2") == 0, "a key finds its first role");
	crab_peer_table_remove(t, "peer_2");
	crab_peer_table_remove(t, "peer_3");
	CHECK(crab_peer_table_by_fingerprint(t, FP_B) == NULL, "all roles revoked: no peer");
	CHECK_INT(crab_peer_table_remove(t, "peer_3"), 0, "removing twice finds none");
	{
		json_t *j = crab_peer_json(crab_peer_table_by_id(t, "peer_1"));
		CHECK(j != NULL && strcmp(json_string_value(json_object_get(j, "short")),
				       "aaaa-aaaa-aaaa-aaaa-aaaa") == 0 &&
			  json_array_size(json_object_get(j, "tenants")) == 1,
		    "peers.list shows the short fingerprint and the grant");
		json_decref(j);
	}
	crab_peer_table_free(t);
	return unit_done();
}
