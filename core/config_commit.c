/* config_commit.c: the last steps of a change (config_apply.h): one store job writes the
 * revision and its config.applied event, then the file, atomically; once that has
 * committed the gateway swaps to the new config. And the list of revisions. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config_apply.h"
#include "config_int.h"
#include "gateway.h"
#include "log.h"
#include "outbox.h"
#include "storeq.h"
#include "util.h"

#define FILE_MAX ((1 << 20) + 1) /* a config file read back; the loader refuses more */

/* ---- steps 4 and 5: the file, the revision, the event ---- */

struct commit_job {
	struct crab_store_job job;
	struct creq *r;
	char *file;            /* the real path of the config file */
	const char *yaml;      /* r->text */
	size_t len;
	int write;             /* 0: the file is already this (a reload) */
	const char *expect;    /* an agent's change: the file must still be the running one */
	size_t expect_len;
	json_t *data;          /* config.applied's data, but the revision */
	/* results */
	int64_t revision;
	int wrote;             /* the file was replaced: a failed commit must put it back */
	char *old;             /* what it held */
	size_t old_len;
	const char *code;
	char why[512];
};

/* Worker thread: the revision and its event, then the file. A failure returns -1, and
 * the job's savepoint undoes the rows. */
static int commit_run(struct crab_store *st, struct crab_store_job *job)
{
	struct commit_job *j = (struct commit_job *)job;
	struct creq *r = j->r;
	/* PROTOCOLS.md §3: a revert is its own event type, with the same data. */
	const char *type = r->op == CRAB_CONFIG_REVERT ? "config.reverted" : "config.applied";
	char key[64], err[256], *data, *slash;
	int64_t seq, now = crab_clock_now_ms();
	int rc;

	if (crab_store_config_insert(st, r->actor, j->yaml, r->summary, now, &j->revision) != 0 ||
	    crab_store_stream_seq(st, &seq) != 0) {
		j->code = "store_unavailable";
		snprintf(j->why, sizeof(j->why), "the revision could not be stored");
		return -1;
	}
	json_object_set_new(j->data, "revision", json_integer(j->revision));
	data = json_dumps(j->data, JSON_COMPACT);
	snprintf(key, sizeof(key), "%s:%lld", type, (long long)j->revision);
	rc = crab_outbox_put(st, &(struct crab_outbox_event){
		.type = type, .idempotency_key = key, .seq = seq, .now_ms = now, .data = data,
	});
	free(data);
	if (rc != 0) {
		j->code = "store_unavailable";
		snprintf(j->why, sizeof(j->why), "the %s event could not be stored", type);
		return -1;
	}
	if (!j->write)
		return 0;
	j->old = crab_file_read(j->file, FILE_MAX, &j->old_len, err, sizeof(err));
	if (j->expect != NULL && (j->old == NULL || j->old_len != j->expect_len ||
				     memcmp(j->old, j->expect, j->old_len) != 0) &&
	    !(j->old != NULL && j->old_len == j->len && memcmp(j->old, j->yaml, j->len) == 0)) {
		j->code = "conflict";
		snprintf(j->why, sizeof(j->why), "the file '%s' is no longer the running "
		    "configuration (edited on disk?): apply or undo that edit first", j->file);
		return -1;
	}
	if (j->old != NULL && j->old_len == j->len && memcmp(j->old, j->yaml, j->len) == 0)
		return 0; /* already there: the operator applies the file they edited */
	slash = strrchr(j->file, '/');
	*slash = '\0';
	rc = crab_file_write_atomic(j->file[0] ? j->file : "/", slash + 1, j->yaml, j->len, 0,
	    err, sizeof(err));
	*slash = '/';
	if (rc != 0) {
		j->code = "write_failed";
		snprintf(j->why, sizeof(j->why), "%s", err);
		return -1;
	}
	j->wrote = 1;
	return 0;
}

static void commit_job_free(struct commit_job *j)
{
	free(j->file);
	free(j->old);
	json_decref(j->data);
	free(j);
}

static void commit_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct commit_job *j = (struct commit_job *)job;
	struct creq *r = j->r;
	struct crab_gateway *gw = r->m->gw;
	struct crab_config_outcome o = {.ok = 1};
	char err[256];

	r->in_store = 0;
	if (status != CRAB_JOB_OK) {
		if (j->wrote) {
			/* The file went in but the transaction did not: the running config
			 * and the store say the old one, so the file does too. */
			char *slash = strrchr(j->file, '/');
			*slash = '\0';
			if (j->old == NULL || crab_file_write_atomic(j->file[0] ? j->file : "/",
				slash + 1, j->old, j->old_len, 0, err, sizeof(err)) != 0)
				log_warnx("config: '%s/%s' holds revision %lld, which the store "
				    "could not record, and could not be put back", j->file,
				    slash + 1, (long long)j->revision);
			*slash = '/';
		}
		if (status == CRAB_JOB_FAILED && j->code != NULL)
			crab_config_req_fail(r, j->code, strcmp(j->code, "store_unavailable") == 0 ? "store" :
			    "write", "%s; nothing was changed", j->why);
		else
			crab_config_req_fail(r, "store_unavailable", "store", "the store did not commit the "
			    "revision; nothing was changed");
		commit_job_free(j);
		return;
	}
	r->cfg->revision = j->revision;
	log_info("config: revision %lld applied by %s: %s", (long long)j->revision, r->actor,
	    r->summary);
	crab_gateway_config_swap(gw, r->cfg);
	r->cfg = NULL; /* the gateway's now */
	o.revision = j->revision;
	o.diff_summary = r->summary;
	commit_job_free(j);
	crab_config_req_finish(r, &o);
}

void crab_config_commit(struct creq *r)
{
	struct crab_gateway *gw = r->m->gw;
	struct commit_job *j = xcalloc(1, sizeof(*j));
	char real[PATH_MAX];

	j->job.run = commit_run;
	j->job.done = commit_done;
	j->r = r;
	j->yaml = r->text;
	j->len = r->len;
	j->write = r->op != CRAB_CONFIG_RELOAD;
	/* Written next to what it really is: a symbolic link stays one. */
	if (realpath(gw->cfg->path, real) != NULL) {
		j->file = xstrdup(real);
	} else if (strchr(gw->cfg->path, '/') != NULL) {
		j->file = xstrdup(gw->cfg->path);
	} else {
		size_t n = strlen(gw->cfg->path) + 3;
		j->file = xmalloc(n);
		snprintf(j->file, n, "./%s", gw->cfg->path);
	}
	if (r->agent_id != NULL) {
		j->expect = gw->cfg->source_text;
		j->expect_len = gw->cfg->source_len;
	}
	/* The worker's own copy: nothing of it is shared with the loop meanwhile. */
	j->data = json_pack("{s:s, s:o, s:s}", "actor", r->actor, "paths",
	    json_deep_copy(r->paths), "diff_summary", r->summary);
	if (r->op == CRAB_CONFIG_REVERT)
		json_object_set_new(j->data, "reverted_to", json_integer(r->revert_to));
	r->in_store = 1;
	crab_storeq_submit(gw->storeq, &j->job);
}

/* ---- the revisions ---- */

struct list_job {
	struct crab_store_job job;
	int64_t limit;
	json_t *list;
	void (*done)(void *arg, json_t *list, const char *why);
	void *arg;
};

static int list_row(const struct crab_store_config_rev *rev, void *arg)
{
	struct list_job *j = arg;
	char when[32];

	crab_clock_format(rev->applied_at, when, sizeof(when));
	json_array_append_new(j->list, json_pack("{s:I, s:s, s:s, s:s}", "revision",
	    (json_int_t)rev->revision, "actor", rev->actor ? rev->actor : "",
	    "applied_at", when, "diff_summary", rev->diff_summary ? rev->diff_summary : ""));
	return 0;
}

static int list_run(struct crab_store *st, struct crab_store_job *job)
{
	struct list_job *j = (struct list_job *)job;

	json_array_clear(j->list);
	return crab_store_config_list(st, j->limit, list_row, j);
}

static void list_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct list_job *j = (struct list_job *)job;

	if (status == CRAB_JOB_OK)
		j->done(j->arg, j->list, NULL);
	else
		j->done(j->arg, NULL, "the store did not answer");
	json_decref(j->list);
	free(j);
}

void crab_config_revisions(struct crab_gateway *gw, int64_t limit,
    void (*done)(void *arg, json_t *list, const char *why), void *arg)
{
	struct list_job *j = xcalloc(1, sizeof(*j));

	j->job.run = list_run;
	j->job.done = list_done;
	j->limit = limit;
	j->list = json_array();
	j->done = done;
	j->arg = arg;
	crab_storeq_submit(gw->storeq, &j->job);
}
