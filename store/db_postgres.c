/* db_postgres.c: the PostgreSQL backend of db.h. libpq with blocking calls (the caller
 * is the store worker thread), text-format parameters, synchronous_commit=on. The DSN is
 * a secret: it never appears in an error or the log. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/util.h"
#include "store/db.h"

#define PG_MIN_VERSION 120000
#define PG_CONNECT_TIMEOUT "10"

struct pg_conn {
	PGconn *pg;
	char password[256]; /* only to scrub it from messages; "" when the DSN has none */
	char err[CRAB_DB_ERR_MAX];
};

/* Keeps the first line of a libpq message, and never a password. */
static void set_err(struct pg_conn *c, const char *msg)
{
	size_t n = strcspn(msg, "\n");

	if (c->password[0] != '\0' && strstr(msg, c->password) != NULL) {
		crab_strlcpy(c->err, "error message withheld: it quotes the password",
		    sizeof(c->err));
		return;
	}
	if (n >= sizeof(c->err))
		n = sizeof(c->err) - 1;
	memcpy(c->err, msg, n);
	c->err[n] = '\0';
}

/* The error of a failed result: its primary message, without the "ERROR:  " tag. */
static void set_result_err(struct pg_conn *c, const PGresult *res)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;

	set_err(c, primary != NULL ? primary : PQerrorMessage(c->pg));
}

static void notice(void *arg, const char *msg)
{
	(void)arg;
	log_debug("postgres: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* Session settings, again after every reconnect. */
static int setup(struct pg_conn *c)
{
	PGresult *res;
	int ok;

	if (PQserverVersion(c->pg) < PG_MIN_VERSION) {
		snprintf(c->err, sizeof(c->err), "server version %d is older than 12",
		    PQserverVersion(c->pg));
		return -1;
	}
	PQsetNoticeProcessor(c->pg, notice, NULL);
	res = PQexec(c->pg, "SET synchronous_commit = on; SET client_encoding = 'UTF8'");
	ok = PQresultStatus(res) == PGRES_COMMAND_OK;
	if (!ok)
		set_result_err(c, res);
	PQclear(res);
	return ok ? 0 : -1;
}

/* Checks the DSN without echoing it (libpq's parse errors quote the offending part) and
 * remembers the password to scrub. */
static int parse_dsn(struct pg_conn *c, const char *dsn)
{
	PQconninfoOption *opts;

	/* a bare database name is valid too, and holds no password */
	if (strchr(dsn, '=') == NULL && strncmp(dsn, "postgres://", 11) != 0 &&
	    strncmp(dsn, "postgresql://", 13) != 0)
		return 0;
	if ((opts = PQconninfoParse(dsn, NULL)) == NULL)
		return -1;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL)
			crab_strlcpy(c->password, o->val, sizeof(c->password));
	}
	PQconninfoFree(opts);
	return 0;
}

static void *pg_open(const struct crab_store_options *opts, char *err, size_t errlen)
{
	/* dbname comes last and is expanded: the DSN's own settings override these */
	static const char *const keys[] = {"connect_timeout", "fallback_application_name",
		"dbname", NULL};
	const char *vals[] = {PG_CONNECT_TIMEOUT, "crab", opts->pg_dsn, NULL};
	struct pg_conn *c;

	if (opts->pg_dsn == NULL || opts->pg_dsn[0] == '\0') {
		snprintf(err, errlen, "postgres: no connection string set");
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	if (parse_dsn(c, opts->pg_dsn) == -1) {
		snprintf(err, errlen, "postgres: invalid connection string (not shown)");
		goto fail;
	}
	c->pg = PQconnectdbParams(keys, vals, 1);
	if (c->pg == NULL) {
		snprintf(err, errlen, "postgres: out of memory connecting");
		goto fail;
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_err(c, PQerrorMessage(c->pg));
		snprintf(err, errlen, "postgres: %s", c->err);
		goto fail;
	}
	if (setup(c) == -1) {
		snprintf(err, errlen, "postgres: %s", c->err);
		goto fail;
	}
	return c;
fail:
	PQfinish(c->pg);
	free(c);
	return NULL;
}

static void pg_close(void *conn)
{
	struct pg_conn *c = conn;

	if (c == NULL)
		return;
	PQfinish(c->pg);
	explicit_bzero(c->password, sizeof(c->password));
	free(c);
}

/* A connection found broken by an earlier call is reset once, between transactions,
 * where no work can be lost by it. */
static int pg_ready(void *conn)
{
	struct pg_conn *c = conn;

	if (PQstatus(c->pg) == CONNECTION_OK)
		return 0;
	log_warnx("postgres: connection lost, reconnecting");
	PQreset(c->pg);
	if (PQstatus(c->pg) != CONNECTION_OK) {
		set_err(c, PQerrorMessage(c->pg));
		return -1;
	}
	return setup(c);
}

static int pg_exec(void *conn, const char *sql, int nparams, const struct crab_db_param *params,
    crab_db_row_cb cb, void *ud, int64_t *changes)
{
	struct pg_conn *c = conn;
	const char *vals[CRAB_DB_MAX_PARAMS];
	const char *row[CRAB_DB_MAX_COLS];
	char ints[CRAB_DB_MAX_PARAMS][24];
	PGresult *res;
	int ret = -1;

	if (nparams < 0 || nparams > CRAB_DB_MAX_PARAMS) {
		set_err(c, "too many parameters");
		return -1;
	}
	for (int i = 0; i < nparams; i++) {
		if (params[i].type == CRAB_DB_INT) {
			snprintf(ints[i], sizeof(ints[i]), "%lld", (long long)params[i].i);
			vals[i] = ints[i];
		} else {
			vals[i] = params[i].type == CRAB_DB_TEXT ? params[i].text : NULL;
		}
	}
	res = PQexecParams(c->pg, sql, nparams, NULL, vals, NULL, NULL, 0);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
		/* COMMIT of a transaction that had an error answers "ROLLBACK", not an error */
		if (strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
			set_err(c, "transaction had failed and was rolled back");
			goto done;
		}
		break;
	case PGRES_TUPLES_OK:
		break;
	default:
		set_result_err(c, res);
		goto done;
	}
	if (cb != NULL) {
		int nrows = PQntuples(res), ncol = PQnfields(res);
		if (ncol > CRAB_DB_MAX_COLS) {
			set_err(c, "too many result columns");
			goto done;
		}
		for (int r = 0; r < nrows; r++) {
			for (int i = 0; i < ncol; i++)
				row[i] = PQgetisnull(res, r, i) ? NULL : PQgetvalue(res, r, i);
			if (cb(ud, ncol, row) != 0)
				break;
		}
	}
	if (changes != NULL) {
		const char *n = PQcmdTuples(res); /* "" for statements without a count */
		*changes = n[0] != '\0' ? strtoll(n, NULL, 10) : 0;
	}
	ret = 0;
done:
	PQclear(res);
	return ret;
}

static int pg_script(void *conn, const char *sql)
{
	struct pg_conn *c = conn;
	PGresult *res = PQexec(c->pg, sql);
	ExecStatusType st = PQresultStatus(res);
	int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

	if (!ok)
		set_result_err(c, res);
	PQclear(res);
	return ok ? 0 : -1;
}

static const char *pg_error(void *conn)
{
	return ((struct pg_conn *)conn)->err;
}

static int show(struct pg_conn *c, const char *sql, char *out, size_t outlen)
{
	PGresult *res = PQexec(c->pg, sql);
	int ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

	if (ok)
		crab_strlcpy(out, PQgetvalue(res, 0, 0), outlen);
	else
		set_result_err(c, res);
	PQclear(res);
	return ok ? 0 : -1;
}

static int pg_durability(void *conn, struct crab_store_durability *out)
{
	struct pg_conn *c = conn;

	memset(out, 0, sizeof(*out));
	crab_strlcpy(out->journal_mode, "wal", sizeof(out->journal_mode));
	crab_strlcpy(out->acks, "after the commit", sizeof(out->acks));
	if (show(c, "SHOW synchronous_commit", out->synchronous, sizeof(out->synchronous)) == -1)
		return -1;
	return show(c, "SHOW fsync", out->fsync, sizeof(out->fsync));
}

const struct crab_db_ops crab_db_postgres = {
	.name = "postgres",
	.begin_sql = "BEGIN",
	/* one fixed key: migrations of processes sharing the database run one at a time */
	.schema_lock_sql = "SELECT pg_advisory_xact_lock(7262830001)",
	.open = pg_open,
	.close = pg_close,
	.ready = pg_ready,
	.exec = pg_exec,
	.script = pg_script,
	.error = pg_error,
	.durability = pg_durability,
};
