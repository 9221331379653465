/* db_sqlite.c: the SQLite backend of db.h. One writer connection in WAL mode,
 * statements prepared once and cached (the ingest path runs the same few thousands of
 * times a second), and a checkpointer thread with its own connection so that commits do
 * not pay for WAL checkpoints.
 *
 * Durability is apart from the commit (db.h, sync): the writer commits with
 * synchronous=NORMAL, which writes the WAL without waiting for the disk, and sq_sync,
 * from the store's sync thread, fdatasyncs the WAL through a descriptor of its own.
 * fdatasync covers every write made to the file before it is called, so it makes every
 * transaction committed before the call durable: the writer goes on with the next group
 * commit while the disk works, and what answers a producer waits for the sync. (With
 * synchronous=NORMAL SQLite itself syncs the WAL before each checkpoint and the database
 * after it, and the WAL header when the WAL restarts: a frame is overwritten only once
 * its page is durable in the database file.) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "store/db.h"

#define STMT_CACHE_MAX 64
#define CHECKPOINT_EVERY_MS 1000
/* A checkpoint copies each page the WAL holds once, however often it was written since
 * the last: spacing them by 16 MiB of WAL rather than 4 lets the hot pages (sessions,
 * the tails of the tables) be copied less often, 20 KB written per turn instead of 22. */
#define CHECKPOINT_WAL_BYTES (16 * 1024 * 1024)
/* Under constant writes a passive checkpoint never catches up with the end of the WAL, so
 * the WAL never restarts and grows without bound, and the checkpointer cannot win the
 * write lock from a writer that takes it back at once. Past this size the writer itself,
 * between transactions, finishes the checkpoint: only the short tail the checkpointer's
 * last pass left is copied then. */
#define RESTART_WAL_BYTES (64 * 1024 * 1024)
/* A checkpoint that makes the database file longer changes its size, and the sync after
 * it then waits for a filesystem journal commit too (6 to 11 ms here, on the writer when
 * it restarts the WAL, instead of 2): the file grows a chunk at a time. */
#define DB_CHUNK_BYTES (8 * 1024 * 1024)

struct stmt_entry {
	const char *sql; /* the caller's pointer: the cache key */
	sqlite3_stmt *stmt;
	int nparams;
	int index[CRAB_DB_MAX_PARAMS]; /* bind index of $1, $2, ... */
};

struct sq_conn {
	sqlite3 *db;
	struct stmt_entry cache[STMT_CACHE_MAX];
	int ncache;
	char err[CRAB_DB_ERR_MAX];

	/* The checkpointer: its own connection, woken by the timer or by wal_hook. */
	sqlite3 *ckpt_db;
	pthread_t ckpt_thread;
	int ckpt_running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, kick;
	int in_pass;     /* the checkpointer is copying frames */
	unsigned passes; /* passes finished */
	int restarting;  /* the writer is restarting the WAL: no pass may begin */
	int restart_due;       /* the writer's own: a restart waits for a pass to finish */
	unsigned restart_after; /* the writer's own: the pass count it waits for */
	int page_size, kick_pages;
	int wal_pages, restart_pages; /* the writer's own, no lock */

	/* The sync thread's own: the WAL's path and a descriptor to fdatasync it by. */
	char *wal_path;
	int wal_fd;
};

static void set_err(struct sq_conn *c, const char *msg)
{
	crab_strlcpy(c->err, msg, sizeof(c->err));
}

static void *checkpointer(void *arg)
{
	struct sq_conn *c = arg;
	struct timespec deadline;
	int logged = 0;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		if (!c->kick) {
			clock_gettime(CLOCK_MONOTONIC, &deadline);
			deadline.tv_sec += CHECKPOINT_EVERY_MS / 1000;
			pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
			if (c->stop)
				break;
		}
		while (c->restarting && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop)
			break;
		c->kick = 0;
		c->in_pass = 1;
		pthread_mutex_unlock(&c->mu);
		/* PASSIVE never waits for the writer or readers; what it cannot copy now it
		 * copies next time. */
		int rc = sqlite3_wal_checkpoint_v2(c->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
		    NULL, NULL);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && !logged) {
			log_warnx("sqlite: checkpoint failed: %s", sqlite3_errmsg(c->ckpt_db));
			logged = 1; /* once, not every second */
		}
		pthread_mutex_lock(&c->mu);
		c->in_pass = 0;
		c->passes++;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Runs on the writer after each commit: wakes the checkpointer early each time the WAL
 * grows by another CHECKPOINT_WAL_BYTES. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct sq_conn *c = arg;
	int crossed = pages / c->kick_pages > c->wal_pages / c->kick_pages;

	(void)db;
	(void)name;
	c->wal_pages = pages;
	if (crossed) {
		pthread_mutex_lock(&c->mu);
		c->kick = 1;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	return SQLITE_OK;
}

static int start_checkpointer(struct sq_conn *c, const char *path, char *err, size_t errlen)
{
	pthread_condattr_t attr;
	int rc;

	rc = sqlite3_open_v2(path, &c->ckpt_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
	    NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: checkpointer \"%s\": %s", path,
		    c->ckpt_db ? sqlite3_errmsg(c->ckpt_db) : sqlite3_errstr(rc));
		return -1;
	}
	/* A connection learns the database is in WAL mode at its first read; until then
	 * sqlite3_wal_checkpoint_v2 does nothing and still returns SQLITE_OK. */
	if (sqlite3_exec(c->ckpt_db, "SELECT 1 FROM sqlite_schema LIMIT 1", NULL, NULL,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: checkpointer \"%s\": %s", path,
		    sqlite3_errmsg(c->ckpt_db));
		return -1;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &attr);
	pthread_condattr_destroy(&attr);
	pthread_mutex_init(&c->mu, NULL);
	if (pthread_create(&c->ckpt_thread, NULL, checkpointer, c) != 0) {
		snprintf(err, errlen, "sqlite: cannot start the checkpointer thread");
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		return -1;
	}
	pthread_setname_np(c->ckpt_thread, "crab-checkpoint");
	c->ckpt_running = 1;
	return 0;
}

static void stop_checkpointer(struct sq_conn *c)
{
	if (c->ckpt_running) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->ckpt_thread, NULL);
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		c->ckpt_running = 0;
	}
	sqlite3_close(c->ckpt_db);
	c->ckpt_db = NULL;
}

/* Creates the file owner-only before SQLite does (it would use 0644); the -wal and -shm
 * files take the database file's mode. */
static int create_private(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

	if (fd == -1) {
		snprintf(err, errlen, "sqlite: cannot create \"%s\": %s", path, strerror(errno));
		return -1;
	}
	close(fd);
	return 0;
}

static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

static int sq_durability(void *conn, struct crab_store_durability *out);

/* Before SQLite initializes: no memory statistics (nothing reads them), which take a
 * global mutex on every allocation of every connection. */
static pthread_once_t library_configured = PTHREAD_ONCE_INIT;

static void configure_library(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* See DB_CHUNK_BYTES; on each connection, as each has its own file handle. */
static void grow_by_chunks(sqlite3 *db)
{
	int chunk = DB_CHUNK_BYTES;

	sqlite3_file_control(db, "main", SQLITE_FCNTL_CHUNK_SIZE, &chunk);
}

static void *sq_open(const struct crab_store_options *opts, char *err, size_t errlen)
{
	static const char setup[] =
		"PRAGMA journal_mode = WAL;"
		/* commits do not wait for the disk: sq_sync does, apart (see the top) */
		"PRAGMA synchronous = NORMAL;"
		"PRAGMA foreign_keys = ON;"
		"PRAGMA busy_timeout = 5000;"
		/* checkpoints belong to the checkpointer thread, never to a commit */
		"PRAGMA wal_autocheckpoint = 0;"
		/* A WAL that once grew past twice RESTART_WAL_BYTES is cut back after the next
		 * restart; one of the usual size is not: cutting it from 64 MiB to 32 took the
		 * writer 10 ms at each restart, and growing it again made the syncs after wait
		 * for filesystem journal commits. */
		"PRAGMA journal_size_limit = 134217728;"
		/* A group commit's transaction holds many jobs, each in a savepoint: keep the
		 * savepoints' statement journals in memory (a temp file costs a write per page
		 * first touched in each job) and dirty pages in the cache until the commit
		 * (spilling them to the WAL early writes some twice). The idle trim frees both. */
		"PRAGMA cache_spill = OFF;"
		"PRAGMA temp_store = MEMORY;";
	struct crab_store_durability dur;
	struct sq_conn *c;
	char *msg = NULL;
	int page_size = 4096, rc;

	if (opts->sqlite_path == NULL || opts->sqlite_path[0] == '\0') {
		snprintf(err, errlen, "sqlite: no database path set");
		return NULL;
	}
	pthread_once(&library_configured, configure_library);
	if (!sqlite3_threadsafe()) { /* the checkpointer is a second thread */
		snprintf(err, errlen, "sqlite: library built without thread support");
		return NULL;
	}
	if (create_private(opts->sqlite_path, err, errlen) == -1)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	rc = sqlite3_open_v2(opts->sqlite_path, &c->db,
	    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: cannot open \"%s\": %s", opts->sqlite_path,
		    c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		goto fail;
	}
	if (sqlite3_exec(c->db, setup, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "sqlite: \"%s\": %s", opts->sqlite_path,
		    msg ? msg : sqlite3_errmsg(c->db));
		goto fail;
	}
	c->wal_fd = -1;
	if (sq_durability(c, &dur) == -1 || strcmp(dur.journal_mode, "wal") != 0 ||
	    strcmp(dur.synchronous, "normal") != 0) {
		snprintf(err, errlen, "sqlite: \"%s\": cannot set WAL with synchronous=NORMAL",
		    opts->sqlite_path);
		goto fail;
	}
	pragma_int(c->db, "PRAGMA page_size", &page_size);
	if (page_size <= 0)
		page_size = 4096;
	c->page_size = page_size;
	c->kick_pages = CHECKPOINT_WAL_BYTES / page_size;
	c->restart_pages = RESTART_WAL_BYTES / page_size;
	if (start_checkpointer(c, opts->sqlite_path, err, errlen) == -1)
		goto fail;
	/* The WAL exists now: the checkpointer's first read made it. */
	if (asprintf(&c->wal_path, "%s-wal", opts->sqlite_path) < 0)
		fatalx("sqlite: out of memory");
	if ((c->wal_fd = open(c->wal_path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "sqlite: cannot open \"%s\": %s", c->wal_path,
		    strerror(errno));
		goto fail;
	}
	/* Replaces SQLite's own auto-checkpoint hook, which wal_autocheckpoint=0 disabled. */
	sqlite3_wal_hook(c->db, wal_hook, c);
	grow_by_chunks(c->db);
	grow_by_chunks(c->ckpt_db);
	return c;
fail:
	sqlite3_free(msg);
	stop_checkpointer(c);
	sqlite3_close(c->db);
	if (c->wal_fd != -1)
		close(c->wal_fd);
	free(c->wal_path);
	free(c);
	return NULL;
}

static void sq_close(void *conn)
{
	struct sq_conn *c = conn;

	if (c == NULL)
		return;
	stop_checkpointer(c);
	for (int i = 0; i < c->ncache; i++)
		sqlite3_finalize(c->cache[i].stmt);
	/* A clean close leaves an empty WAL behind. */
	sqlite3_wal_hook(c->db, NULL, NULL);
	sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (sqlite3_close(c->db) != SQLITE_OK)
		log_warnx("sqlite: close: %s", sqlite3_errmsg(c->db));
	if (c->wal_fd != -1)
		close(c->wal_fd);
	free(c->wal_path);
	free(c);
}

/* The sync thread's: makes every transaction committed before the call durable. SQLite
 * unlinks the WAL only when the last connection closes (ours stay open), but an operator's
 * tool could still do it; a WAL unlinked was checkpointed in full first, and the new one
 * is opened again. */
static int sq_sync(void *conn, char *err, size_t errlen)
{
	struct sq_conn *c = conn;
	struct stat sb;

	if (fstat(c->wal_fd, &sb) == 0 && sb.st_nlink == 0) {
		int fd = open(c->wal_path, O_RDONLY | O_CLOEXEC);
		if (fd != -1) {
			close(c->wal_fd);
			c->wal_fd = fd;
		}
	}
	if (fdatasync(c->wal_fd) == 0)
		return 0;
	snprintf(err, errlen, "sqlite: fdatasync \"%s\": %s", c->wal_path, strerror(errno));
	return -1;
}

static int sq_ready(void *conn)
{
	struct sq_conn *c = conn;
	int rc;

	if (c->wal_pages < c->restart_pages)
		return 0;
	/* See RESTART_WAL_BYTES. The restart waits until a checkpointer pass that began
	 * after now has finished, so that only what was committed during that pass is left
	 * to copy, and it never overlaps a pass (one of the two would fail with
	 * SQLITE_BUSY, and a restart that fails is put off by another RESTART_WAL_BYTES). */
	pthread_mutex_lock(&c->mu);
	if (!c->restart_due) {
		c->restart_due = 1;
		c->restart_after = c->passes + 1 + (unsigned)c->in_pass;
		c->kick = 1;
		pthread_cond_signal(&c->cv);
	}
	if (c->in_pass || (int)(c->passes - c->restart_after) < 0) {
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	c->restarting = 1;
	pthread_mutex_unlock(&c->mu);
	/* After RESTART the next transaction writes the WAL from its start again. */
	rc = sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
	pthread_mutex_lock(&c->mu);
	c->restarting = 0;
	c->restart_due = 0;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (rc == SQLITE_OK) {
		c->wal_pages = 0;
		c->restart_pages = RESTART_WAL_BYTES / c->page_size;
	} else {
		/* not fatal: try again after as much growth again */
		log_warnx("sqlite: checkpoint: %s", sqlite3_errmsg(c->db));
		c->restart_pages += RESTART_WAL_BYTES / c->page_size;
	}
	return 0;
}

/* Prepares sql and maps $1..$n to bind indexes; the statement must use exactly those. */
static int prepare(struct sq_conn *c, const char *sql, int nparams, unsigned flags,
    struct stmt_entry *e)
{
	char name[16];

	memset(e, 0, sizeof(*e));
	if (nparams < 0 || nparams > CRAB_DB_MAX_PARAMS) {
		set_err(c, "too many parameters");
		return -1;
	}
	if (sqlite3_prepare_v3(c->db, sql, -1, flags, &e->stmt, NULL) != SQLITE_OK) {
		set_err(c, sqlite3_errmsg(c->db));
		return -1;
	}
	if (sqlite3_bind_parameter_count(e->stmt) != nparams)
		goto mismatch;
	for (int i = 0; i < nparams; i++) {
		snprintf(name, sizeof(name), "$%d", i + 1);
		e->index[i] = sqlite3_bind_parameter_index(e->stmt, name);
		if (e->index[i] == 0)
			goto mismatch;
	}
	e->sql = sql;
	e->nparams = nparams;
	return 0;
mismatch:
	set_err(c, "statement parameters do not match $1..$n");
	sqlite3_finalize(e->stmt);
	e->stmt = NULL;
	return -1;
}

/* The cached statement for sql, keyed by address and checked by text, or an uncached
 * one (owned by the caller) when the cache is full. */
static struct stmt_entry *lookup(struct sq_conn *c, const char *sql, int nparams,
    struct stmt_entry *spare)
{
	for (int i = 0; i < c->ncache; i++) {
		struct stmt_entry *e = &c->cache[i];
		if (e->sql == sql && e->nparams == nparams &&
		    strcmp(sqlite3_sql(e->stmt), sql) == 0)
			return e;
	}
	if (c->ncache < STMT_CACHE_MAX) {
		struct stmt_entry *e = &c->cache[c->ncache];
		if (prepare(c, sql, nparams, SQLITE_PREPARE_PERSISTENT, e) == -1)
			return NULL;
		c->ncache++;
		return e;
	}
	return prepare(c, sql, nparams, 0, spare) == 0 ? spare : NULL;
}

static int bind(struct sq_conn *c, struct stmt_entry *e, const struct crab_db_param *params)
{
	for (int i = 0; i < e->nparams; i++) {
		const struct crab_db_param *p = &params[i];
		int rc;

		if (p->type == CRAB_DB_INT)
			rc = sqlite3_bind_int64(e->stmt, e->index[i], p->i);
		else if (p->type == CRAB_DB_TEXT && p->text != NULL)
			/* static: the caller's text outlives the statement's use below */
			rc = sqlite3_bind_text(e->stmt, e->index[i], p->text, -1, SQLITE_STATIC);
		else
			rc = sqlite3_bind_null(e->stmt, e->index[i]);
		if (rc != SQLITE_OK) {
			set_err(c, sqlite3_errmsg(c->db));
			return -1;
		}
	}
	return 0;
}

static int sq_exec(void *conn, const char *sql, int nparams, const struct crab_db_param *params,
    crab_db_row_cb cb, void *ud, int64_t *changes)
{
	struct sq_conn *c = conn;
	const char *values[CRAB_DB_MAX_COLS];
	struct stmt_entry spare, *e;
	int rc, ncol, ret = -1;

	if ((e = lookup(c, sql, nparams, &spare)) == NULL)
		return -1;
	if (bind(c, e, params) == -1)
		goto done;
	ncol = sqlite3_column_count(e->stmt);
	if (ncol > CRAB_DB_MAX_COLS) {
		set_err(c, "too many result columns");
		goto done;
	}
	while ((rc = sqlite3_step(e->stmt)) == SQLITE_ROW) {
		if (cb == NULL)
			continue;
		for (int i = 0; i < ncol; i++)
			values[i] = (const char *)sqlite3_column_text(e->stmt, i);
		if (cb(ud, ncol, values) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		set_err(c, sqlite3_errmsg(c->db));
		goto done;
	}
	if (changes != NULL)
		*changes = sqlite3_changes64(c->db);
	ret = 0;
done:
	sqlite3_reset(e->stmt);
	sqlite3_clear_bindings(e->stmt);
	if (e == &spare)
		sqlite3_finalize(spare.stmt);
	return ret;
}

static int sq_script(void *conn, const char *sql)
{
	struct sq_conn *c = conn;
	char *msg = NULL;

	if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	set_err(c, msg ? msg : sqlite3_errmsg(c->db));
	sqlite3_free(msg);
	return -1;
}

static const char *sq_error(void *conn)
{
	return ((struct sq_conn *)conn)->err;
}

static void sq_release_memory(void *conn)
{
	sqlite3_db_release_memory(((struct sq_conn *)conn)->db);
}

static int sq_durability(void *conn, struct crab_store_durability *out)
{
	static const char *const levels[] = {"off", "normal", "full", "extra"};
	struct sq_conn *c = conn;
	sqlite3_stmt *st = NULL;
	int sync;

	memset(out, 0, sizeof(*out));
	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		set_err(c, sqlite3_errmsg(c->db));
		sqlite3_finalize(st);
		return -1;
	}
	crab_strlcpy(out->journal_mode, (const char *)sqlite3_column_text(st, 0),
	    sizeof(out->journal_mode));
	sqlite3_finalize(st);
	if (pragma_int(c->db, "PRAGMA synchronous", &sync) == -1) {
		set_err(c, sqlite3_errmsg(c->db));
		return -1;
	}
	crab_strlcpy(out->synchronous, sync >= 0 && sync <= 3 ? levels[sync] : "unknown",
	    sizeof(out->synchronous));
	/* SQLite syncs unless synchronous is off; what is acknowledged waits for sq_sync. */
	crab_strlcpy(out->fsync, sync > 0 ? "on" : "off", sizeof(out->fsync));
	crab_strlcpy(out->acks, "after fdatasync of the WAL", sizeof(out->acks));
	return 0;
}

const struct crab_db_ops crab_db_sqlite = {
	.name = "sqlite",
	/* takes the write lock at once: no deadlock upgrading a read transaction */
	.begin_sql = "BEGIN IMMEDIATE",
	.schema_lock_sql = NULL,
	.embedded = 1,
	.open = sq_open,
	.close = sq_close,
	.ready = sq_ready,
	.exec = sq_exec,
	.script = sq_script,
	.error = sq_error,
	.durability = sq_durability,
	.release_memory = sq_release_memory,
	.sync = sq_sync,
};
