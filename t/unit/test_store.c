/* test_store.c: the same store suite against SQLite (a temporary file) and PostgreSQL
 * (the database named by CRAB_TEST_PG_DSN, which t/run.sh starts; unset is a failure,
 * not a skip). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/id.h"
#include "store/store.h"
#include "t/unit/test_store.h"
#include "t/unit/unit.h"

#define DAY_MS (24 * 3600 * 1000LL)

static const char *prefix;

/* "driver: what", for the TAP line; CHECK reads it once, before the next call. */
const char *name(const char *what)
{
	static char buf[256];
	snprintf(buf, sizeof(buf), "%s: %s", prefix, what);
	return buf;
}

static struct crab_store *open_store(const struct crab_store_options *o)
{
	char err[512] = "";
	struct crab_store *st = crab_store_open(o, err, sizeof(err));
	if (st == NULL)
		printf("# open: %s\n", err);
	return st;
}

static void make_session(struct crab_store_session *s, const char *tenant, const char *rk,
    int64_t now)
{
	memset(s, 0, sizeof(*s));
	crab_id_new("ses", s->id);
	snprintf(s->tenant_id, sizeof(s->tenant_id), "%s", tenant);
	snprintf(s->agent_id, sizeof(s->agent_id), "assistant");
	snprintf(s->runtime_key, sizeof(s->runtime_key), "%s", rk);
	snprintf(s->memory_key, sizeof(s->memory_key), "mem:%s", rk);
	snprintf(s->status, sizeof(s->status), "open");
	s->created_at = s->updated_at = now;
}

static int session_exists(struct crab_store *st, const char *tenant, const char *id)
{
	struct crab_store_session out;
	return crab_store_session_get(st, tenant, id, &out);
}

static void test_idempotency(struct crab_store *st, int64_t now)
{
	struct crab_store_idem ex;
	char e1[CRAB_ID_MAX], e2[CRAB_ID_MAX], s1[CRAB_ID_MAX], s2[CRAB_ID_MAX];
	int64_t n = -1;

	crab_id_new("evt", e1);
	crab_id_new("evt", e2);
	crab_id_new("ses", s1);
	crab_id_new("ses", s2);
	CHECK_INT(crab_store_idem_claim(st, "t1", "tg:1:981", e1, s1, now, &ex), 1,
	    name("idem claim: first is inserted"));
	memset(&ex, 0, sizeof(ex));
	CHECK_INT(crab_store_idem_claim(st, "t1", "tg:1:981", e2, s2, now, &ex), 0,
	    name("idem claim: second is a duplicate"));
	CHECK_STR(ex.event_id, e1, name("idem claim: duplicate gets the first event id"));
	CHECK_STR(ex.session_id, s1, name("idem claim: duplicate gets the first session id"));
	CHECK_INT(crab_store_idem_claim(st, "t2", "tg:1:981", e2, s2, now, &ex), 1,
	    name("idem claim: same key in another tenant is independent"));
	CHECK_INT(crab_store_idem_claim(st, "t1", "old", e2, s2, now - 8 * DAY_MS, &ex), 1,
	    name("idem claim: an old key"));
	CHECK_INT(crab_store_idem_claim(st, "t2", "old2", e2, s2, now - 9 * DAY_MS, &ex), 1,
	    name("idem claim: an older key"));
	CHECK_INT(crab_store_idem_prune(st, now - 7 * DAY_MS, 1, &n), 0, name("idem prune"));
	CHECK_INT(n, 1, name("idem prune: no more than the limit at once"));
	CHECK_INT(crab_store_idem_prune(st, now - 7 * DAY_MS, 1, &n), 0, name("idem prune again"));
	CHECK_INT(n, 1, name("idem prune: deletes only keys before the cutoff"));
	CHECK_INT(crab_store_idem_prune(st, now - 7 * DAY_MS, 1, &n), 0, name("idem prune, done"));
	CHECK_INT(n, 0, name("idem prune: nothing left before the cutoff"));
	CHECK(crab_store_count(st, "idempotency_keys", &n) == 0 && n == 2,
	    name("idem prune: the others remain"));
	CHECK_INT(crab_store_idem_claim(st, "t1", "old", e1, s1, now, &ex), 1,
	    name("idem claim: a pruned key can be claimed again"));
}

static void test_sessions(struct crab_store *st, int64_t now, struct crab_store_session *sa)
{
	struct crab_store_session out;
	struct crab_store_event ev = {0};
	char eid[CRAB_ID_MAX];
	int64_t n = -1;

	make_session(sa, "t1", "tg:chat1:42", now);
	CHECK_INT(crab_store_session_create(st, sa), 0, name("session create"));
	memset(&out, 0, sizeof(out));
	CHECK_INT(crab_store_session_get(st, "t1", sa->id, &out), 1, name("session get"));
	CHECK(strcmp(out.id, sa->id) == 0 && strcmp(out.tenant_id, "t1") == 0 &&
		  strcmp(out.agent_id, "assistant") == 0 &&
		  strcmp(out.runtime_key, "tg:chat1:42") == 0 &&
		  strcmp(out.memory_key, "mem:tg:chat1:42") == 0 &&
		  strcmp(out.status, "open") == 0 && out.created_at == now &&
		  out.updated_at == now,
	    name("session get: every field read back"));
	CHECK_INT(crab_store_session_get(st, "t2", sa->id, &out), 0,
	    name("session get: another tenant cannot see it"));
	CHECK_INT(crab_store_session_get(st, "t1", "ses_missing", &out), 0,
	    name("session get: unknown id"));
	CHECK_INT(crab_store_session_create(st, sa), -1, name("session create: duplicate id fails"));
	CHECK(crab_store_error(st)[0] != '\0', name("session create: error text set"));

	crab_id_new("evt", eid);
	ev.id = eid;
	ev.tenant_id = "t1";
	ev.agent_id = "assistant";
	ev.session_id = sa->id;
	ev.type = "channel.message.received";
	ev.idempotency_key = "tg:1:982";
	ev.producer = "peer:peer_01";
	ev.envelope_json = "{\"type\":\"channel.message.received\",\"text\":\"h\\u00e9\"}";
	ev.received_at = now;
	CHECK_INT(crab_store_event_insert(st, &ev), 0, name("event insert"));
	CHECK(crab_store_count(st, "inbox", &n) == 0 && n == 1, name("event insert: one row"));
	CHECK_INT(crab_store_event_insert(st, &ev), -1, name("event insert: duplicate id fails"));
}

static void test_bindings(struct crab_store *st, int64_t now, const struct crab_store_session *sa)
{
	struct crab_store_session sb;
	struct crab_store_binding b = {"t1", "tg:chat1:42", "assistant", "telegram", "chat1",
		"42", NULL, sa->id, now};
	char cur[CRAB_STORE_ID_MAX] = "";
	int64_t n = -1;

	CHECK_INT(crab_store_binding_current(st, "t1", "tg:chat1:42", cur), 0,
	    name("binding current: none yet"));
	CHECK_INT(crab_store_binding_set(st, &b), 0, name("binding set"));
	CHECK_INT(crab_store_binding_current(st, "t1", "tg:chat1:42", cur), 1,
	    name("binding current: found"));
	CHECK_STR(cur, sa->id, name("binding current: the bound session"));
	CHECK_INT(crab_store_binding_current(st, "t2", "tg:chat1:42", cur), 0,
	    name("binding current: another tenant has none"));

	make_session(&sb, "t1", "tg:chat1:42", now + 1);
	crab_store_session_create(st, &sb);
	b.session_id = sb.id;
	b.isolation_key = "thread:7";
	b.updated_at = now + 1;
	CHECK_INT(crab_store_binding_set(st, &b), 0, name("binding set: replace"));
	CHECK_INT(crab_store_binding_current(st, "t1", "tg:chat1:42", cur), 1,
	    name("binding current: after replace"));
	CHECK_STR(cur, sb.id, name("binding current: the new session"));
	CHECK(crab_store_count(st, "session_bindings", &n) == 0 && n == 1,
	    name("binding set: replace keeps one row"));
	b.session_id = "ses_nonexistent";
	CHECK_INT(crab_store_binding_set(st, &b), -1,
	    name("binding set: unknown session refused"));
}

struct lease_seen {
	int n, stop_after;
	char ids[8][CRAB_STORE_ID_MAX];
	struct crab_store_lease first;
};

static int collect(const struct crab_store_lease *l, void *arg)
{
	struct lease_seen *s = arg;
	if (s->n == 0)
		s->first = *l;
	if (s->n < 8)
		snprintf(s->ids[s->n], CRAB_STORE_ID_MAX, "%s", l->id);
	s->n++;
	return s->stop_after != 0 && s->n >= s->stop_after;
}

static void make_lease(struct crab_store_lease *l, int64_t now, int64_t ttl)
{
	unsigned char raw[32];
	memset(l, 0, sizeof(*l));
	crab_id_new("lea", l->id);
	crab_random_bytes(raw, sizeof(raw));
	for (int i = 0; i < 32; i++)
		snprintf(l->token_hash + 2 * i, 3, "%02x", raw[i]);
	snprintf(l->tenant_id, sizeof(l->tenant_id), "t1");
	snprintf(l->scopes, sizeof(l->scopes), "produce,subscribe");
	l->connection_bound = 1;
	l->created_at = now;
	l->expires_at = now + ttl;
}

static void test_leases(struct crab_store *st, int64_t now, const struct crab_store_session *sa)
{
	struct crab_store_lease live, expired, revoked, more;
	struct lease_seen seen;

	make_lease(&live, now, 3600 * 1000);
	make_lease(&expired, now - 2000, 1000);
	make_lease(&revoked, now + 1, 3600 * 1000);
	snprintf(revoked.agent_id, sizeof(revoked.agent_id), "assistant");
	CHECK(crab_store_lease_insert(st, &live) == 0 && crab_store_lease_insert(st, &expired) == 0 &&
		  crab_store_lease_insert(st, &revoked) == 0,
	    name("lease insert"));
	CHECK_INT(crab_store_lease_insert(st, &live), -1, name("lease insert: duplicate fails"));
	memset(&seen, 0, sizeof(seen));
	CHECK_INT(crab_store_lease_foreach_live(st, now, collect, &seen), 0,
	    name("lease foreach_live"));
	CHECK(seen.n == 2 && strcmp(seen.ids[0], live.id) == 0 &&
		  strcmp(seen.ids[1], revoked.id) == 0,
	    name("lease foreach_live: the expired one is excluded"));
	CHECK(strcmp(seen.first.token_hash, live.token_hash) == 0 &&
		  strcmp(seen.first.tenant_id, "t1") == 0 && seen.first.agent_id[0] == '\0' &&
		  seen.first.session_id[0] == '\0' &&
		  strcmp(seen.first.scopes, "produce,subscribe") == 0 &&
		  seen.first.connection_bound == 1 && seen.first.created_at == now &&
		  seen.first.expires_at == live.expires_at,
	    name("lease foreach_live: fields read back, unset ones empty"));

	CHECK_INT(crab_store_lease_revoke(st, revoked.id, now), 1, name("lease revoke"));
	CHECK_INT(crab_store_lease_revoke(st, revoked.id, now), 0,
	    name("lease revoke: twice is not a live lease"));
	CHECK_INT(crab_store_lease_revoke(st, expired.id, now), 0,
	    name("lease revoke: an expired lease is not live"));
	CHECK_INT(crab_store_lease_revoke(st, "lea_missing", now), 0,
	    name("lease revoke: unknown id"));

	{
		struct crab_store_lease pending;
		char bound[CRAB_STORE_ID_MAX];

		make_lease(&pending, now, 3600 * 1000);
		snprintf(pending.session_id, sizeof(pending.session_id), "new");
		CHECK(crab_store_lease_insert(st, &pending) == 0 &&
		    crab_store_lease_session(st, pending.id, bound) == 1 && strcmp(bound, "new") == 0,
		    name("lease session: a lease for a new session holds \"new\""));
		CHECK(crab_store_lease_bind_session(st, pending.id, sa->id) == 0 &&
		    crab_store_lease_session(st, pending.id, bound) == 1 &&
		    strcmp(bound, sa->id) == 0, name("lease session: its first event binds it"));
		CHECK_INT(crab_store_lease_bind_session(st, pending.id, "ses_other"), -1,
		    name("lease session: bound once, for good"));
		CHECK_INT(crab_store_lease_session(st, "lea_missing", bound), 0,
		    name("lease session: unknown lease"));
		CHECK_INT(crab_store_lease_revoke(st, pending.id, now), 1,
		    name("lease session: the pending lease revokes like any"));
	}
	CHECK_INT(crab_store_lease_bind_session(st, live.id, sa->id), 0,
	    name("lease bind_session"));
	CHECK_INT(crab_store_lease_bind_session(st, live.id, "ses_other"), -1,
	    name("lease bind_session: a bound lease keeps its session"));
	memset(&seen, 0, sizeof(seen));
	crab_store_lease_foreach_live(st, now, collect, &seen);
	CHECK(seen.n == 1 && strcmp(seen.ids[0], live.id) == 0,
	    name("lease foreach_live: the revoked one is excluded"));
	CHECK_STR(seen.first.session_id, sa->id, name("lease foreach_live: bound session"));

	make_lease(&more, now + 2, 3600 * 1000);
	crab_store_lease_insert(st, &more);
	memset(&seen, 0, sizeof(seen));
	seen.stop_after = 1;
	CHECK(crab_store_lease_foreach_live(st, now, collect, &seen) == 0 && seen.n == 1,
	    name("lease foreach_live: callback stops the walk"));
	memset(&seen, 0, sizeof(seen));
	crab_store_lease_foreach_live(st, now + 3600 * 1000, collect, &seen);
	CHECK_INT(seen.n, 1, name("lease foreach_live: expiry follows now_ms"));

	{
		struct crab_store_lease unbound;
		int64_t n = -1;

		make_lease(&unbound, now + 3, 3600 * 1000);
		unbound.connection_bound = 0;
		crab_store_lease_insert(st, &unbound);
		CHECK(crab_store_lease_revoke_bound(st, now, &n) == 0 && n == 2,
		    name("lease revoke_bound: the live connection-bound ones, at start"));
		memset(&seen, 0, sizeof(seen));
		crab_store_lease_foreach_live(st, now, collect, &seen);
		CHECK(seen.n == 1 && strcmp(seen.ids[0], unbound.id) == 0,
		    name("lease revoke_bound: a lease not bound to a connection lives on"));
	}
}

struct peer_seen {
	int n, revoked;
	char ids[4][CRAB_STORE_ID_MAX];
	char grants[4][64];
};

static int peer_collect(const struct crab_store_peer *p, void *arg)
{
	struct peer_seen *s = arg;

	if (s->n < 4) {
		snprintf(s->ids[s->n], sizeof(s->ids[0]), "%s", p->id);
		snprintf(s->grants[s->n], sizeof(s->grants[0]), "%s", p->grants ? p->grants : "");
	}
	s->n++;
	s->revoked += p->revoked_at != 0;
	return 0;
}

static void test_peers(struct crab_store *st, int64_t now)
{
	char a[CRAB_ID_MAX], b[CRAB_ID_MAX], c[CRAB_ID_MAX], replaced[CRAB_STORE_ID_MAX];
	char tool[] = "tool", subscriber[] = "subscriber", memory[] = "memory";
	char endpoint[] = "https://127.0.0.1:1", fp_a[] = "aa", fp_b[] = "bb";
	char offers[] = "{\"tools\":true}";
	struct crab_store_peer p = {
		.component_type = tool, .component_id = memory, .endpoint = endpoint,
		.fingerprint = fp_a, .offers = offers, .paired_at = now,
	};
	struct peer_seen seen = {0};
	int64_t s1 = 0, s2 = 0;

	crab_id_new("peer", a);
	crab_id_new("peer", b);
	crab_id_new("peer", c);
	p.id = a;
	CHECK(crab_store_peer_insert(st, &p, replaced) == 0 && replaced[0] == '\0',
	    name("peer stored, replacing none"));
	p.id = b;
	p.component_type = subscriber;
	CHECK(crab_store_peer_insert(st, &p, replaced) == 0 && replaced[0] == '\0',
	    name("another role of the same component is another peer"));
	p.id = c;
	p.component_type = tool;
	p.fingerprint = fp_b;
	CHECK(crab_store_peer_insert(st, &p, replaced) == 0 && strcmp(replaced, a) == 0,
	    name("pairing the same tool again replaces the live one, by id"));
	CHECK(crab_store_peer_list(st, 0, peer_collect, &seen) == 0 && seen.n == 2 &&
		  seen.revoked == 0 && strcmp(seen.ids[0], b) == 0 && strcmp(seen.ids[1], c) == 0,
	    name("the live peers, in pairing order"));
	memset(&seen, 0, sizeof(seen));
	CHECK(crab_store_peer_list(st, 1, peer_collect, &seen) == 0 && seen.n == 3 &&
		  seen.revoked == 1, name("with the revoked ones when asked"));
	CHECK_INT(crab_store_peer_set_grants(st, b, "{\"tenants\":[\"acme\"]}"), 1,
	    name("a grant is set on a live peer"));
	CHECK_INT(crab_store_peer_set_grants(st, a, NULL), 0, name("not on a revoked one"));
	memset(&seen, 0, sizeof(seen));
	CHECK(crab_store_peer_list(st, 0, peer_collect, &seen) == 0 &&
		  strcmp(seen.grants[0], "{\"tenants\":[\"acme\"]}") == 0 && seen.grants[1][0] == '\0',
	    name("grants read back; none means every tenant"));
	CHECK_INT(crab_store_peer_revoke(st, b, now), 1, name("revoke a live peer"));
	CHECK_INT(crab_store_peer_revoke(st, b, now), 0, name("revoking twice finds none"));
	CHECK(crab_store_stream_seq(st, &s1) == 0 && crab_store_stream_seq(st, &s2) == 0 &&
		  s2 == s1 + 1, name("the gateway-wide stream counts its own seq"));
}

static void test_counts(struct crab_store *st)
{
	int64_t n = -1;

	CHECK(crab_store_count(st, "sessions", &n) == 0 && n == 2, name("count sessions"));
	CHECK(crab_store_count(st, "leases", &n) == 0 && n == 6, name("count leases"));
	CHECK(crab_store_count(st, "turns", &n) == 0 && n == 0, name("count turns"));
	CHECK(crab_store_count(st, "peers", &n) == 0 && n == 3, name("count peers"));
	CHECK_INT(crab_store_count(st, "nosuch", &n), -1, name("count: unknown table refused"));
	CHECK(strstr(crab_store_error(st), "unknown table") != NULL,
	    name("count: error names the problem"));
	CHECK_INT(crab_store_count(st, "sessions; DROP TABLE leases", &n), -1,
	    name("count: no SQL from the name"));
}

static void test_transactions(struct crab_store *st, int64_t now)
{
	struct crab_store_session c, d, e, f;
	int64_t before = -1, after = -1;

	crab_store_count(st, "sessions", &before);
	make_session(&c, "t1", "rk:c", now);
	make_session(&d, "t1", "rk:d", now);
	make_session(&e, "t1", "rk:e", now);
	CHECK_INT(crab_store_begin(st), 0, name("begin"));
	CHECK(crab_store_savepoint(st) == 0 && crab_store_session_create(st, &c) == 0 &&
		  crab_store_savepoint_release(st) == 0,
	    name("job 1 in a savepoint"));
	CHECK(crab_store_savepoint(st) == 0 && crab_store_session_create(st, &d) == 0 &&
		  crab_store_savepoint_rollback(st) == 0,
	    name("job 2 rolled back to its savepoint"));
	CHECK(crab_store_savepoint(st) == 0 && crab_store_session_create(st, &c) == -1 &&
		  crab_store_savepoint_rollback(st) == 0,
	    name("job 3 fails and is rolled back"));
	CHECK(crab_store_savepoint(st) == 0 && crab_store_session_create(st, &e) == 0 &&
		  crab_store_savepoint_release(st) == 0,
	    name("job 4 after a failed job"));
	CHECK_INT(crab_store_commit(st), 0, name("commit"));
	CHECK(session_exists(st, "t1", c.id) == 1 && session_exists(st, "t1", e.id) == 1,
	    name("savepoint: the other jobs' writes are committed"));
	CHECK_INT(session_exists(st, "t1", d.id), 0,
	    name("savepoint rollback: only that job's write is undone"));
	crab_store_count(st, "sessions", &after);
	CHECK_INT(after - before, 2, name("savepoint: exactly two sessions added"));

	make_session(&f, "t1", "rk:f", now);
	CHECK(crab_store_begin(st) == 0 && crab_store_session_create(st, &f) == 0,
	    name("write in a transaction"));
	CHECK_INT(session_exists(st, "t1", f.id), 1, name("visible inside the transaction"));
	CHECK_INT(crab_store_rollback(st), 0, name("rollback"));
	CHECK_INT(session_exists(st, "t1", f.id), 0, name("rollback undoes the transaction"));
	CHECK_INT(crab_store_begin(st), 0, name("begin again after a rollback"));
	CHECK_INT(crab_store_commit(st), 0, name("empty commit"));
}

/* A child process of the race below: opens its own store, waits for the start, claims
 * the key in a transaction; the exit code says what it got. */
static void race_child(const struct crab_store_options *o, int ready, int go, int64_t now)
{
	char err[256], eid[CRAB_ID_MAX], sid[CRAB_ID_MAX], b = 0;
	struct crab_store_idem ex;
	struct crab_store *st = crab_store_open(o, err, sizeof(err));
	int r = -1;

	crab_id_new("evt", eid);
	crab_id_new("ses", sid);
	(void)!write(ready, &b, 1);
	(void)!read(go, &b, 1); /* EOF: the parent let everyone go */
	if (st != NULL && crab_store_begin(st) == 0) {
		r = crab_store_idem_claim(st, "t9", "race", eid, sid, now, &ex);
		usleep(20 * 1000); /* hold the claim uncommitted while the others try */
		if (crab_store_commit(st) == -1)
			r = -1;
	}
	crab_store_close(st);
	_exit(r == 1 ? 11 : r == 0 ? 10 : 9);
}

/* Several processes claim one key at once: exactly one wins, the others see it. */
static void test_race(const struct crab_store_options *o, int64_t now)
{
	enum { N = 6 };
	int ready[2], go[2], won = 0, dup = 0, status;
	char b;

	if (pipe(ready) == -1 || pipe(go) == -1)
		return;
	for (int i = 0; i < N; i++) {
		if (fork() == 0) {
			close(ready[0]);
			close(go[1]);
			race_child(o, ready[1], go[0], now);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (int i = 0; i < N && read(ready[0], &b, 1) == 1; i++)
		;
	close(go[1]);
	close(ready[0]);
	while (wait(&status) > 0) {
		if (WIFEXITED(status) && WEXITSTATUS(status) == 11)
			won++;
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 10)
			dup++;
	}
	CHECK(won == 1 && dup == N - 1, name("idem claim: of racing processes exactly one wins"));
}

/* Ends the store's server connections (libpq's fallback_application_name "crab") to the
 * test database from another connection, as a server restart or a network cut would. */
static int pg_kill_store(const char *dsn)
{
	static const char sql[] =
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
		" WHERE application_name = 'crab' AND datname = current_database()"
		" AND pid <> pg_backend_pid()";
	PGconn *c = PQconnectdb(dsn);
	PGresult *r = PQexec(c, sql);
	int ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1;

	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static void test_pg_only(struct crab_store *st, const struct crab_store_options *o,
    struct crab_store_session *sa)
{
	struct crab_store_durability dur;
	int64_t n = -1;

	/* PostgreSQL answers COMMIT of a failed transaction with ROLLBACK, not an error:
	 * the store must report it. */
	crab_store_begin(st);
	crab_store_session_create(st, sa);
	CHECK_INT(crab_store_commit(st), -1, name("commit of a failed transaction fails"));
	CHECK(crab_store_begin(st) == 0 && crab_store_commit(st) == 0,
	    name("the connection is usable afterwards"));

	CHECK_INT(pg_kill_store(o->pg_dsn), 0, name("server ends the store's connection"));
	CHECK_INT(crab_store_count(st, "sessions", &n), -1, name("a lost connection fails"));
	CHECK_INT(crab_store_begin(st), 0, name("the next begin reconnects"));
	CHECK(crab_store_count(st, "sessions", &n) == 0 && n > 0 && crab_store_commit(st) == 0,
	    name("work goes on after reconnecting"));
	CHECK(crab_store_durability(st, &dur) == 0 && strcmp(dur.synchronous, "on") == 0,
	    name("synchronous_commit is on again after reconnecting"));
}

/* The suite every backend passes; returns with the store closed. */
static void test_kv(struct crab_store *st, int64_t now)
{
	char *v = NULL;
	size_t len = 0;

	CHECK_INT(crab_store_kv_get(st, "mod_a", "k", &v, &len), 0, name("kv: a missing key"));
	CHECK_INT(crab_store_kv_put(st, "mod_a", "k", "one", 3, now), 0, name("kv: put"));
	CHECK(crab_store_kv_get(st, "mod_a", "k", &v, &len) == 1 && len == 3 &&
	    strcmp(v, "one") == 0, name("kv: get what was put"));
	free(v);
	CHECK_INT(crab_store_kv_put(st, "mod_a", "k", "second", 6, now), 0, name("kv: replace"));
	CHECK(crab_store_kv_get(st, "mod_a", "k", &v, &len) == 1 && strcmp(v, "second") == 0,
	    name("kv: the newer value wins"));
	free(v);
	CHECK_INT(crab_store_kv_get(st, "mod_b", "k", &v, &len), 0,
	    name("kv: another module does not see it"));
	CHECK_INT(crab_store_kv_put(st, "mod_a", "bin", "a\0b", 3, now), -1,
	    name("kv: a value with a NUL byte is refused"));
	CHECK_INT(crab_store_kv_put(st, "mod_a", "k", NULL, 0, now), 0, name("kv: delete"));
	CHECK_INT(crab_store_kv_get(st, "mod_a", "k", &v, &len), 0, name("kv: deleted is gone"));
}

/* Appends the pending ids of this test ("evt_turns_N") as "N", in order. */
static int pending_row(void *arg, const char *event_id, const char *session_id)
{
	char *out = arg;
	(void)session_id;
	if (strncmp(event_id, "evt_turns_", 10) == 0)
		strncat(out, event_id + 10, 1);
	return 0;
}

static int history_row(void *arg, const char *input, const char *output)
{
	char *out = arg;
	(void)output;
	strncat(out, input, 16);
	return 0;
}

static void insert_event(struct crab_store *st, const char *id, const char *session,
    int64_t now)
{
	const struct crab_store_event ev = {.id = id, .tenant_id = "t1", .agent_id = "assistant",
		.session_id = session, .type = "channel.message.received", .idempotency_key = id,
		.producer = "test", .envelope_json = "{\"text\":\"hi\"}",
		.target_json = "{\"platform\":\"cli\"}", .received_at = now};
	crab_store_event_insert(st, &ev);
}

/* Turns: the inbox's pending events, turn rows with payloads, history, seq, outbox. */
/* Appends the last digit of each listed turn's id. */
static int list_turn(const struct crab_store_turn *t, void *arg)
{
	char *order = arg;
	size_t n = strlen(order);

	order[n] = t->id[strlen(t->id) - 1];
	order[n + 1] = '\0';
	return 0;
}

static void test_turns(struct crab_store *st, int64_t now)
{
	struct crab_store_session s;
	struct crab_store_inbox_row row;
	struct crab_store_turn t = {0}, got;
	char pending[16] = "", hist[64] = "";
	int64_t first = 0, n = -1;
	char ev[3][CRAB_STORE_ID_MAX];
	char in_a[] = "{\"in\":\"A\"}", in_b[] = "{\"in\":\"B\"}", out[] = "[]";
	char req[] = "{\"model\":\"x\"}";

	make_session(&s, "t1", "rk-turns", now);
	crab_store_session_create(st, &s);
	for (int i = 0; i < 3; i++) {
		snprintf(ev[i], sizeof(ev[i]), "evt_turns_%d", i);
		insert_event(st, ev[i], s.id, now);
	}
	CHECK(crab_store_inbox_pending(st, 1000, pending_row, pending) == 0,
	    name("pending events are listed"));
	CHECK_STR(pending, "012", name("pending events come in acceptance order"));
	CHECK(crab_store_inbox_get(st, ev[1], &row) == 1 && strcmp(row.state, "pending") == 0 &&
		strcmp(row.envelope, "{\"text\":\"hi\"}") == 0 && row.target != NULL,
	    name("an inbox row reads back with its envelope and target"));
	crab_store_inbox_row_free(&row);
	CHECK(crab_store_inbox_done(st, ev[0]) == 0 && crab_store_inbox_get(st, ev[0], &row) == 1 &&
		strcmp(row.state, "done") == 0, name("an event marked done"));
	crab_store_inbox_row_free(&row);
	pending[0] = '\0';
	crab_store_inbox_pending(st, 1000, pending_row, pending);
	CHECK_STR(pending, "12", name("a done event is no longer pending"));
	pending[0] = '\0';
	crab_store_inbox_pending(st, 1, pending_row, pending);
	CHECK(strlen(pending) <= 1, name("pending events are read at most limit at a time"));

	CHECK(crab_store_session_seq(st, s.id, 1, &first) == 0 && first == 1,
	    name("a session's first seq is 1"));
	CHECK(crab_store_session_seq(st, s.id, 2, &first) == 0 && first == 2,
	    name("seq values are reserved in a block, without gaps"));
	CHECK(crab_store_session_seq(st, "ses_none", 1, &first) == -1,
	    name("seq of a missing session is an error"));

	for (int i = 0; i < 3; i++) {
		memset(&t, 0, sizeof(t));
		snprintf(t.id, sizeof(t.id), "trn_turns_%d", i);
		snprintf(t.tenant_id, sizeof(t.tenant_id), "t1");
		snprintf(t.agent_id, sizeof(t.agent_id), "assistant");
		snprintf(t.session_id, sizeof(t.session_id), "%s", s.id);
		snprintf(t.event_id, sizeof(t.event_id), "%s", ev[i]);
		snprintf(t.model, sizeof(t.model), "echo");
		t.config_revision = 3;
		t.started_at = now;
		CHECK(crab_store_turn_start(st, &t, &first) == 0 && first == 4 + i,
		    name("a running turn is stored with the seq of its turn.started"));
		if (i == 2)
			break; /* the last one stays running */
		snprintf(t.status, sizeof(t.status), "completed");
		t.input = i == 0 ? in_a : in_b;
		t.output = out;
		t.request = req;
		t.finished_at = now + 1;
		CHECK(crab_store_turn_finish(st, &t) == 0, name("a finished turn is stored"));
	}
	CHECK(crab_store_turn_by_event(st, ev[2], &got) == 1 && strcmp(got.status, "running") == 0 &&
		strcmp(got.id, "trn_turns_2") == 0, name("the running turn of an event is found"));
	crab_store_turn_free_payloads(&got);
	CHECK(crab_store_turn_get(st, "trn_turns_0", &got) == 1 && got.config_revision == 3 &&
		got.request != NULL && strcmp(got.request, "{\"model\":\"x\"}") == 0 &&
		strcmp(got.model, "echo") == 0, name("a turn reads back with model, revision, request"));
	crab_store_turn_free_payloads(&got);
	CHECK(crab_store_history(st, "trn_turns_2", 10, history_row, hist) == 0 &&
		strstr(hist, "B") < strstr(hist, "A") && strstr(hist, "B") != NULL,
	    name("history: completed turns before this one, newest first"));
	hist[0] = '\0';
	crab_store_history(st, "trn_turns_2", 1, history_row, hist);
	CHECK(strstr(hist, "B") != NULL && strstr(hist, "A") == NULL, name("history honours its limit"));
	hist[0] = '\0';
	crab_store_history(st, "trn_turns_1", 10, history_row, hist);
	CHECK(strstr(hist, "A") != NULL && strstr(hist, "B") == NULL,
	    name("history holds only turns before the given one"));
	hist[0] = '\0';
	crab_store_history(st, "trn_turns_0", 10, history_row, hist);
	CHECK(hist[0] == '\0', name("a session's first turn has no history"));
	{
		struct crab_store_session_info info;
		char order[64] = "";
		CHECK(crab_store_turn_list(st, s.id, 10, list_turn, order) == 0 &&
			strcmp(order, "012") == 0, name("a session's turns listed oldest first"));
		order[0] = '\0';
		CHECK(crab_store_turn_list(st, s.id, 2, list_turn, order) == 0 &&
			strcmp(order, "12") == 0, name("a limited listing has the latest turns"));
		CHECK(crab_store_session_info(st, s.id, &info) == 1 && info.turns == 3 &&
			info.last_seq == 6, name("a session counts its turns and seq"));
		crab_store_session_info_free(&info);
	}

	{
		const struct crab_store_outbox o = {.id = "evt_out_1", .tenant_id = "t1",
			.session_id = s.id, .seq = 4, .type = "turn.completed",
			.idempotency_key = "trn_turns_0:completed", .payload = "{}", .created_at = now};
		int64_t pos = 0;
		CHECK(crab_store_outbox_insert(st, &o, &pos) == 0 && pos > 0,
		    name("an outbox row is stored, its position told"));
		CHECK(crab_store_outbox_insert(st, &o, NULL) == -1, name("an outbox id is stored once"));
	}
	CHECK(crab_store_count(st, "event_outbox", &n) == 0 && n >= 1, name("outbox counted"));
}

static int list_row(const struct crab_store_session_info *s, void *arg)
{
	int *n = arg;
	(*n)++;
	return strcmp(s->status, "open") != 0 && strcmp(s->status, "closed") != 0;
}

/* The session manager: last active channels, listing, closing, config revisions. */
static void test_session_manager(struct crab_store *st, int64_t now)
{
	struct crab_store_session s;
	struct crab_store_channel a = {"telegram", "-100", ""}, b = {"telegram", "-200", "t9"}, got;
	struct crab_store_session_info info;
	struct crab_store_lease l = {0};
	char bound[CRAB_STORE_ID_MAX];
	int64_t rev1 = 0, rev2 = 0, rev3 = 0;
	int n = 0;

	make_session(&s, "t2", "rk-manager", now);
	crab_store_session_create(st, &s);
	crab_store_binding_set(st, &(struct crab_store_binding){.tenant_id = "t2",
	    .runtime_key = "rk-manager", .agent_id = "assistant", .platform = "telegram",
	    .channel_id = "-100", .actor_id = "42", .session_id = s.id, .updated_at = now});
	CHECK(crab_store_last_active_get(st, "t2", "assistant", "42", &got) == 0,
	    name("no last channel before any message"));
	CHECK(crab_store_last_active_set(st, "t2", "assistant", "42", s.id, &a, now) == 0,
	    name("a message's channel is recorded"));
	CHECK(crab_store_last_active_set(st, "t2", "assistant", "43", s.id, &b, now) == 0,
	    name("another actor's channel is recorded"));
	CHECK(crab_store_last_active_get(st, "t2", "assistant", "42", &got) == 1 &&
		strcmp(got.channel_id, "-100") == 0, name("the actor's last channel"));
	CHECK(crab_store_last_active_get(st, "t2", "assistant", "", &got) == 1 &&
		strcmp(got.channel_id, "-200") == 0 && strcmp(got.thread_id, "t9") == 0,
	    name("the tenant's last channel is the latest of anyone's, with its thread"));
	CHECK(crab_store_session_channel(st, "t2", s.id, &got) == 1 &&
		strcmp(got.channel_id, "-200") == 0, name("the session's last channel"));
	CHECK(crab_store_session_channel(st, "t1", s.id, &got) == 0,
	    name("another tenant cannot read the session's channel"));

	if (crab_store_session_list(st, "t2", "open", 10, list_row, &n) != 0)
		printf("# session_list: %s\n", crab_store_error(st));
	if (!CHECK(n == 1, name("listing filters by tenant and status")))
		printf("#   %d sessions listed\n", n);
	CHECK(crab_store_session_info(st, s.id, &info) == 1 && strcmp(info.tenant_id, "t2") == 0 &&
		info.last_active_channel != NULL, name("a session's details"));
	crab_store_session_info_free(&info);

	crab_id_new("lea", l.id);
	snprintf(l.token_hash, sizeof(l.token_hash), "%064d", 7);
	snprintf(l.tenant_id, sizeof(l.tenant_id), "t2");
	snprintf(l.session_id, sizeof(l.session_id), "%s", s.id);
	snprintf(l.scopes, sizeof(l.scopes), "produce");
	l.created_at = now;
	l.expires_at = now + DAY_MS;
	crab_store_lease_insert(st, &l);
	CHECK(crab_store_session_close(st, s.id, now + 5) == 1, name("an open session closes"));
	CHECK(crab_store_session_close(st, s.id, now + 6) == 0, name("closing it again does nothing"));
	CHECK(crab_store_binding_current(st, "t2", "rk-manager", bound) == 0,
	    name("a closed session is no runtime key's current one"));
	CHECK(crab_store_lease_revoke(st, l.id, now + 7) == 0,
	    name("closing revoked the session's lease"));

	CHECK(crab_store_config_revision(st, "a: 1\n", "file", NULL, now, &rev1) == 0 && rev1 >= 1,
	    name("a config is recorded as a revision"));
	CHECK(crab_store_config_revision(st, "a: 1\n", "file", NULL, now, &rev2) == 0 && rev2 == rev1,
	    name("the same config again is the same revision"));
	CHECK(crab_store_config_revision(st, "a: 2\n", "file", NULL, now, &rev3) == 0 &&
		rev3 == rev1 + 1, name("a changed config is the next revision"));
}

static void suite(const struct crab_store_options *o)
{
	struct crab_store_durability dur;
	struct crab_store_session sa;
	struct crab_store *st;
	char errbuf[256];
	int64_t now = crab_clock_now_ms(), n = -1;
	int version = -1, again = -1;
	int pg = strcmp(o->driver, "postgres") == 0;

	prefix = o->driver;
	st = open_store(o);
	if (!CHECK(st != NULL, name("open runs the migrations")))
		return;
	CHECK_STR(crab_store_driver(st), o->driver, name("driver name"));
	CHECK(crab_store_schema_version(st, &version) == 0 && version >= 1,
	    name("schema version after open"));
	crab_store_close(st);
	st = open_store(o);
	if (!CHECK(st != NULL, name("reopen")))
		return;
	CHECK(crab_store_schema_version(st, &again) == 0 && again == version,
	    name("reopen: same schema version"));
	CHECK(crab_store_count(st, "schema_migrations", &n) == 0 && n == version,
	    name("reopen: no migration ran twice"));

	CHECK_INT(crab_store_durability(st, &dur), 0, name("durability read-back"));
	CHECK_STR(dur.journal_mode, "wal", name("durability: journal_mode"));
	CHECK_STR(dur.synchronous, pg ? "on" : "normal", name("durability: synchronous"));
	CHECK_STR(dur.fsync, "on", name("durability: fsync"));
	CHECK_STR(dur.acks, pg ? "after the commit" : "after fdatasync of the WAL",
	    name("durability: what an acknowledgement waits for"));
	CHECK_INT(crab_store_sync_apart(st), !pg, name("durability apart from the commit"));
	CHECK_INT(crab_store_sync(st, errbuf, sizeof(errbuf)), 0, name("sync"));

	test_idempotency(st, now);
	test_sessions(st, now, &sa);
	test_bindings(st, now, &sa);
	test_leases(st, now, &sa);
	test_peers(st, now);
	test_counts(st);
	test_transactions(st, now);
	test_kv(st, now);
	test_turns(st, now);
	test_session_manager(st, now);
	test_deliveries(st, now);
	if (pg)
		test_pg_only(st, o, &sa);
	crab_store_close(st);
	/* after the close: a child must not inherit a live SQLite connection */
	test_race(o, now);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Leaves the PostgreSQL test database without the store's tables. */
static int pg_clean(const char *dsn)
{
	/* The whole schema, not a list of tables that each migration would have to extend. */
	static const char sql[] = "DROP SCHEMA public CASCADE; CREATE SCHEMA public";
	PGconn *c = PQconnectdb(dsn);
	PGresult *r = NULL;
	int ok = PQstatus(c) == CONNECTION_OK;

	if (ok) {
		PQsetNoticeProcessor(c, quiet, NULL);
		r = PQexec(c, sql);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	}
	if (!ok)
		printf("# pg clean: %s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static void test_open_errors(void)
{
	struct crab_store_options o = {"mysql", NULL, NULL};
	char err[512] = "";

	prefix = "open";
	CHECK(crab_store_open(&o, err, sizeof(err)) == NULL && strstr(err, "\"mysql\"") != NULL,
	    name("unknown driver refused by name"));
	o.driver = "postgres";
	o.pg_dsn = "host=/nonexistent-crab dbname=x user=u password=hunter2secret "
		   "connect_timeout=2";
	err[0] = '\0';
	CHECK(crab_store_open(&o, err, sizeof(err)) == NULL && err[0] != '\0' &&
		  strstr(err, "hunter2") == NULL,
	    name("postgres connect error without the password"));
	o.pg_dsn = "host=/x password=hunter2secret hunter2bogus";
	err[0] = '\0';
	CHECK(crab_store_open(&o, err, sizeof(err)) == NULL && err[0] != '\0' &&
		  strstr(err, "hunter2") == NULL,
	    name("postgres malformed DSN error does not quote it"));
	o.driver = "sqlite";
	o.sqlite_path = "/nonexistent-crab/dir/db.sqlite";
	CHECK(crab_store_open(&o, err, sizeof(err)) == NULL && strstr(err, "nonexistent") != NULL,
	    name("sqlite bad path refused with the path"));
}

int main(void)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	const char *dsn = getenv("CRAB_TEST_PG_DSN");
	char path[512], side[600];
	struct crab_store_options o = {"sqlite", path, NULL};
	struct stat sb;

	test_open_errors();

	snprintf(path, sizeof(path), "%s/crab-test-store-%ld.db", tmp, (long)getpid());
	suite(&o);
	prefix = "sqlite";
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	    name("database file is owner-only"));
	unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);

	prefix = "postgres";
	if (CHECK(dsn != NULL && dsn[0] != '\0', name("CRAB_TEST_PG_DSN is set")) &&
	    CHECK(pg_clean(dsn) == 0, name("test database cleaned"))) {
		o.driver = "postgres";
		o.pg_dsn = dsn;
		suite(&o);
	}
	return unit_done();
}
