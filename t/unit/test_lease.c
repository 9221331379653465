/* test_lease.c: tokens, the live-lease index, scopes and the rate bucket. */
#include <string.h>

#include "core/lease.h"
#include "t/unit/unit.h"

static struct crab_lease *lease_for(const char *id, const char *hash_hex, int64_t expires)
{
	struct crab_store_lease row = {0};

	strcpy(row.id, id);
	strcpy(row.token_hash, hash_hex);
	strcpy(row.tenant_id, "family");
	strcpy(row.scopes, "produce");
	row.expires_at = expires;
	return crab_lease_from_row(&row);
}

static void test_tokens(void)
{
	char t1[CRAB_LEASE_TOKEN_MAX], t2[CRAB_LEASE_TOKEN_MAX], h1[65], h2[65];

	crab_lease_token_new(t1, h1);
	crab_lease_token_new(t2, h2);
	CHECK(strncmp(t1, "crab_", 5) == 0 && strlen(t1) == 5 + 43,
	    "a token is crab_ and 256 bits in base64url");
	CHECK(strcmp(t1, t2) != 0 && strcmp(h1, h2) != 0, "two tokens differ");
	CHECK(strlen(h1) == 64 && strspn(h1, "0123456789abcdef") == 64, "the hash is SHA-256 hex");
	CHECK(strstr(h1, t1) == NULL, "the hash does not contain the token");
}

static void test_table(void)
{
	struct crab_lease_table *t = crab_lease_table_new();
	char tok[CRAB_LEASE_TOKEN_MAX], hash[65], tok2[CRAB_LEASE_TOKEN_MAX], hash2[65];
	struct crab_lease *l;

	crab_lease_token_new(tok, hash);
	crab_lease_token_new(tok2, hash2);
	crab_lease_table_add(t, lease_for("lea_1", hash, 1000));
	crab_lease_table_add(t, lease_for("lea_2", hash2, 5000));
	l = crab_lease_table_find(t, tok, 500);
	CHECK(l != NULL && strcmp(l->id, "lea_1") == 0, "a live token finds its lease");
	CHECK(l != NULL && l->scopes == CRAB_LEASE_PRODUCE, "the scopes come from the row");
	CHECK(crab_lease_table_find(t, "crab_wrong", 500) == NULL, "an unknown token finds nothing");
	CHECK(crab_lease_table_find(t, tok, 1000) == NULL, "a lease is dead at its expiry");
	CHECK_INT(crab_lease_table_count(t), 1, "the expired lease is dropped from the index");
	CHECK_INT(crab_lease_table_remove(t, "lea_2"), 1, "a lease is removed by id");
	CHECK(crab_lease_table_find(t, tok2, 500) == NULL, "a removed lease finds nothing");
	CHECK_INT(crab_lease_table_remove(t, "lea_2"), 0, "removing it twice finds nothing");
	crab_lease_table_add(t, lease_for("lea_3", hash, 100));
	crab_lease_table_add(t, lease_for("lea_4", hash2, 9000));
	CHECK_INT(crab_lease_table_expire(t, 200), 1, "expire drops exactly the expired ones");
	CHECK_INT(crab_lease_table_count(t), 1, "one live lease is left");
	CHECK(lease_for("lea_bad", "zz", 1) == NULL, "a malformed stored hash is refused");
	crab_lease_table_free(t);
}

static void test_scopes(void)
{
	json_t *both = json_pack("[s,s]", "produce", "subscribe");
	json_t *bad = json_pack("[s]", "admin");
	json_t *empty = json_array();
	unsigned s;
	char text[64];

	CHECK(crab_lease_scopes_parse(both, &s) == 0 &&
	    s == (CRAB_LEASE_PRODUCE | CRAB_LEASE_SUBSCRIBE), "both scopes parse");
	CHECK(crab_lease_scopes_parse(bad, &s) != 0, "an unknown scope is refused");
	CHECK(crab_lease_scopes_parse(empty, &s) != 0, "an empty scope list is refused");
	crab_lease_scopes_format(CRAB_LEASE_PRODUCE | CRAB_LEASE_SUBSCRIBE, text, sizeof(text));
	CHECK_STR(text, "produce,subscribe", "scopes format for the store");
	json_decref(both);
	json_decref(bad);
	json_decref(empty);
}

static void test_rate(void)
{
	struct crab_rate l = {.tokens = -1};
	int retry = 0, allowed = 0;

	for (int i = 0; i < 10; i++)
		allowed += crab_rate_take(&l, 1000, 2, 5, &retry);
	CHECK_INT(allowed, 5, "a burst of 5 lets exactly 5 through at once");
	CHECK(retry >= 1, "a refusal says when to retry");
	CHECK(crab_rate_take(&l, 1500, 2, 5, &retry) == 1,
	    "half a second at 2/s refills one request");
	CHECK(crab_rate_take(&l, 1500, 2, 5, &retry) == 0, "but only one");
	CHECK(crab_rate_take(&l, 1500, 0, 5, &retry) == 1, "rate 0 means unlimited");
}

int main(void)
{
	test_tokens();
	test_table();
	test_scopes();
	test_rate();
	return unit_done();
}
