/* store_peers.c: paired peers and the gateway-wide event stream's seq (store.h). */
#include "store/store.h"

#include "store/store_int.h"

void crab_store_peer_free(struct crab_store_peer *p)
{
	free(p->id);
	free(p->component_type);
	free(p->component_id);
	free(p->endpoint);
	free(p->fingerprint);
	free(p->offers);
	free(p->grants);
	memset(p, 0, sizeof(*p));
}

int crab_store_peer_insert(struct crab_store *st, const struct crab_store_peer *p,
    char replaced[CRAB_STORE_ID_MAX])
{
	static const char revoke_sql[] =
		"UPDATE peers SET revoked_at = $3"
		" WHERE component_type = $1 AND component_id = $2 AND revoked_at IS NULL"
		" RETURNING id";
	static const char insert_sql[] =
		"INSERT INTO peers (id, component_type, component_id, endpoint, fingerprint,"
		" offers, grants, paired_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
	const struct crab_db_param rp[] = {CRAB_DB_T(p->component_type),
		CRAB_DB_T(p->component_id), CRAB_DB_I(p->paired_at)};
	const struct crab_db_param ip[] = {CRAB_DB_T(p->id), CRAB_DB_T(p->component_type),
		CRAB_DB_T(p->component_id), CRAB_DB_T(p->endpoint), CRAB_DB_T(p->fingerprint),
		CRAB_DB_T(p->offers), CRAB_DB_T(p->grants), CRAB_DB_I(p->paired_at)};
	struct id_row r = {replaced, 0, 0};

	replaced[0] = '\0';
	if (exec(st, "peer_replace", revoke_sql, 3, rp, id_row, &r, NULL) == -1)
		return -1;
	return exec(st, "peer_insert", insert_sql, 8, ip, NULL, NULL, NULL);
}

int crab_store_peer_revoke(struct crab_store *st, const char *peer_id, int64_t now_ms)
{
	static const char sql[] =
		"UPDATE peers SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
	const struct crab_db_param p[] = {CRAB_DB_T(peer_id), CRAB_DB_I(now_ms)};
	int64_t changes = 0;

	if (exec(st, "peer_revoke", sql, 2, p, NULL, NULL, &changes) == -1)
		return -1;
	return changes > 0;
}

int crab_store_peer_set_grants(struct crab_store *st, const char *peer_id, const char *grants)
{
	static const char sql[] =
		"UPDATE peers SET grants = $2 WHERE id = $1 AND revoked_at IS NULL";
	const struct crab_db_param p[] = {CRAB_DB_T(peer_id), CRAB_DB_T(grants)};
	int64_t changes = 0;

	if (exec(st, "peer_grant", sql, 2, p, NULL, NULL, &changes) == -1)
		return -1;
	return changes > 0;
}

struct peer_walk {
	int (*cb)(const struct crab_store_peer *p, void *arg);
	void *arg;
};

static int peer_row(void *ud, int ncol, const char *const *v)
{
	struct peer_walk *w = ud;
	struct crab_store_peer p = {
		.id = dup_col(v[0]), .component_type = dup_col(v[1]),
		.component_id = dup_col(v[2]), .endpoint = dup_col(v[3]),
		.fingerprint = dup_col(v[4]), .offers = dup_col(v[5]), .grants = dup_col(v[6]),
	};
	int stop;

	(void)ncol;
	int_col(&p.paired_at, v[7]);
	int_col(&p.revoked_at, v[8]);
	stop = w->cb(&p, w->arg);
	crab_store_peer_free(&p);
	return stop;
}

int crab_store_peer_list(struct crab_store *st, int with_revoked,
    int (*cb)(const struct crab_store_peer *p, void *arg), void *arg)
{
	static const char sql[] =
		"SELECT id, component_type, component_id, endpoint, fingerprint, offers, grants,"
		" paired_at, revoked_at FROM peers"
		" WHERE $1 = 1 OR revoked_at IS NULL ORDER BY id";
	const struct crab_db_param p[] = {CRAB_DB_I(with_revoked != 0)};
	struct peer_walk w = {cb, arg};

	return exec(st, "peer_list", sql, 1, p, peer_row, &w, NULL);
}

int crab_store_stream_seq(struct crab_store *st, int64_t *seq)
{
	static const char sql[] =
		"UPDATE stream_seq SET seq = seq + 1 WHERE name = 'gateway' RETURNING seq";
	int64_t v = -1;

	if (exec(st, "stream_seq", sql, 0, NULL, crab_db_row_int, &v, NULL) == -1)
		return -1;
	if (v < 0)
		return fail_msg(st, "stream_seq", "no gateway stream row");
	*seq = v;
	return 0;
}
