/* db.h: the store's internal SQL layer (not for core/). Each backend is a plain struct of
 * function pointers, so the domain functions of store.c and the migrations of schema.c
 * are written once. SQL uses $1, $2 ... placeholders for both backends, and every value
 * crosses as text (NULL for SQL NULL), which both backends convert by column type. */
#ifndef CRAB_STORE_DB_H
#define CRAB_STORE_DB_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store/store.h"

#define CRAB_DB_MAX_PARAMS 16
#define CRAB_DB_MAX_COLS 32
#define CRAB_DB_ERR_MAX 512

enum crab_db_type { CRAB_DB_NULL, CRAB_DB_TEXT, CRAB_DB_INT };

/* A bound value; CRAB_DB_TEXT with text == NULL binds SQL NULL. */
struct crab_db_param {
	enum crab_db_type type;
	const char *text;
	int64_t i;
};

#define CRAB_DB_T(s) {.type = CRAB_DB_TEXT, .text = (s), .i = 0}
#define CRAB_DB_I(v) {.type = CRAB_DB_INT, .text = NULL, .i = (v)}

/* One result row; values are borrowed until the callback returns, NULL for SQL NULL.
 * Returning non-zero stops the walk (exec still returns 0). The callback must not call
 * back into the same connection. */
typedef int (*crab_db_row_cb)(void *ud, int ncol, const char *const *values);

struct crab_db_ops {
	const char *name;
	/* SQL that opens a write transaction. */
	const char *begin_sql;
	/* SQL run right after begin_sql by migrations to serialise them between processes
	 * sharing one database; NULL when the transaction alone is enough. */
	const char *schema_lock_sql;
	/* 1 when a statement is a call into this process (SQLite), 0 when it is a round trip
	 * to a server: a walk of many small steps is cheaper as steps in the first case and
	 * as one recursive query in the second. */
	int embedded;
	/* Returns a connection or NULL with one line in err (never a secret). */
	void *(*open)(const struct crab_store_options *opts, char *err, size_t errlen);
	void (*close)(void *conn);
	/* Called before each transaction: may reconnect a lost connection. */
	int (*ready)(void *conn);
	/* One statement. sql should have static storage: backends may cache by address.
	 * changes (may be NULL) gets the rows an INSERT, UPDATE or DELETE touched. */
	int (*exec)(void *conn, const char *sql, int nparams, const struct crab_db_param *params,
	    crab_db_row_cb cb, void *ud, int64_t *changes);
	/* Several statements without parameters (migrations), not cached. */
	int (*script)(void *conn, const char *sql);
	/* The last error, one line. */
	const char *(*error)(void *conn);
	int (*durability)(void *conn, struct crab_store_durability *out);
	/* Optional (NULL: nothing to do): frees caches the connection can rebuild. */
	void (*release_memory)(void *conn);
	/* Optional. NULL: a COMMIT returns once the transaction is durable (PostgreSQL with
	 * synchronous_commit=on). Else commits return before the disk has them, and sync,
	 * called from another thread while the connection goes on, makes every transaction
	 * committed before the call durable; -1 with one line in err. */
	int (*sync)(void *conn, char *err, size_t errlen);
};

extern const struct crab_db_ops crab_db_sqlite;
extern const struct crab_db_ops crab_db_postgres;

/* A connection with its backend and the last error, as store.c and schema.c use it. */
struct crab_db {
	const struct crab_db_ops *ops;
	void *conn;
	char err[CRAB_DB_ERR_MAX];
};

/* exec, and on failure "what: backend error" into db->err. */
static inline int crab_db_exec(struct crab_db *db, const char *what, const char *sql,
    int nparams, const struct crab_db_param *params, crab_db_row_cb cb, void *ud,
    int64_t *changes)
{
	if (db->ops->exec(db->conn, sql, nparams, params, cb, ud, changes) == 0)
		return 0;
	snprintf(db->err, sizeof(db->err), "%s: %s", what, db->ops->error(db->conn));
	return -1;
}

/* Row callback that reads one integer column into *(int64_t *)ud. */
int crab_db_row_int(void *ud, int ncol, const char *const *values);

/* schema.c: creates schema_migrations and runs every pending migration, each in its own
 * transaction with its schema_migrations row. */
int crab_schema_migrate(struct crab_db *db, int64_t now_ms);
/* The highest applied migration, 0 for an empty database. */
int crab_schema_version(struct crab_db *db, int *out);

#endif
