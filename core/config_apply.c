/* config_apply.c: the change pipeline of config_apply.h. Changes wait in a queue and
 * run one at a time: each is checked against the config running when its turn comes.
 * The checks run on the loop (the loader, the views, the policy), the smoke test on
 * the loop through the model adapter, and the write of the file with the revision and
 * the event in one store job on the store worker, the one thread here that may block
 * on the disk. */
#include "config_apply.h"
#include "config_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_view.h"
#include "gateway.h"
#include "jsonpatch.h"
#include "log.h"
#include "storeq.h"
#include "util.h"

#define QUEUE_MAX 32             /* changes waiting; more are refused as busy */
#define MESSAGE_MAX 8192         /* of the loader's errors, in one answer */
#define SUMMARY_MAX 1000         /* diff_summary */
#define FILE_MAX ((1 << 20) + 1) /* a config file read back; the loader refuses more */

static void candidate(struct creq *r);

/* ---- answers ---- */

static void req_free(struct creq *r)
{
	free(r->actor);
	free(r->agent_id);
	free(r->text);
	json_decref(r->patch);
	crab_config_unref(r->cfg);
	json_decref(r->paths);
	free(r->summary);
	free(r);
}

void crab_config_req_fail(struct creq *r, const char *code, const char *step, const char *fmt, ...)
{
	struct crab_config_outcome o = {.code = code, .step = step};
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	o.message = msg ? msg : "(no memory for the message)";
	o.retryable = strcmp(code, "busy") == 0 || strcmp(code, "store_unavailable") == 0;
	log_info("config: a change by %s was refused at %s: %s: %.300s", r->actor, step, code,
	    o.message);
	crab_config_req_finish(r, &o);
	free(msg);
}

void crab_config_req_finish(struct creq *r, struct crab_config_outcome *o)
{
	struct crab_config_mgr *m = r->m;
	json_t *none = json_array();

	if (o->paths == NULL)
		o->paths = r->paths ? r->paths : none;
	o->reverted_to = r->op == CRAB_CONFIG_REVERT ? r->revert_to : 0;
	if (m != NULL && m->current == r) {
		m->current = NULL;
		if (m->head != NULL)
			event_active(m->kick, EV_TIMEOUT, 0);
	}
	r->done(r->arg, o);
	json_decref(none);
	req_free(r);
}

json_t *crab_config_outcome_json(const struct crab_config_outcome *o, int dry_run)
{
	json_t *r = json_pack("{s:I, s:b, s:O, s:s}", "revision", (json_int_t)o->revision,
	    "unchanged", o->unchanged, "paths", o->paths,
	    "diff_summary", o->diff_summary ? o->diff_summary : "");

	if (o->reverted_to > 0)
		json_object_set_new(r, "reverted_to", json_integer(o->reverted_to));
	if (dry_run)
		json_object_set_new(r, "validated", json_true());
	return r;
}

/* ---- the queue ---- */

static void start(struct creq *r);

static void kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_config_mgr *m = arg;
	struct creq *r;

	(void)fd;
	(void)what;
	if (m->current != NULL || (r = m->head) == NULL || m->gw->draining)
		return; /* draining: what waits is answered shutting_down at the end */
	m->head = r->next;
	if (m->head == NULL)
		m->tail = &m->head;
	m->queued--;
	m->current = r;
	start(r);
}

struct crab_config_mgr *crab_config_mgr_new(struct crab_gateway *gw)
{
	struct crab_config_mgr *m = xcalloc(1, sizeof(*m));

	m->gw = gw;
	m->tail = &m->head;
	m->kick = event_new(gw->base, -1, 0, kick_cb, m);
	return m;
}

void crab_config_mgr_free(struct crab_config_mgr *m)
{
	struct crab_config_outcome o = {.code = "shutting_down", .step = "request",
		.message = "the gateway stopped first: nothing was changed"};

	if (m == NULL)
		return;
	/* The gateway drains the store queue before it gets here: no job of ours is left
	 * in it. */
	if (m->current != NULL) {
		struct creq *r = m->current;
		m->current = NULL;
		crab_config_smoke_cancel(r->smoke);
		r->m = NULL;
		crab_config_req_finish(r, &o);
	}
	while (m->head != NULL) {
		struct creq *r = m->head;
		m->head = r->next;
		r->m = NULL;
		crab_config_req_finish(r, &o);
	}
	event_free(m->kick);
	free(m);
}

void crab_config_submit(struct crab_config_mgr *m, const struct crab_config_req *q,
    crab_config_done_fn done, void *arg)
{
	struct creq *r = xcalloc(1, sizeof(*r));

	r->op = q->op;
	r->dry_run = q->dry_run;
	r->actor = xstrdup(q->actor ? q->actor : "operator");
	r->agent_id = q->agent_id ? xstrdup(q->agent_id) : NULL;
	r->revert_to = q->revision;
	r->done = done;
	r->arg = arg;
	if (q->op == CRAB_CONFIG_APPLY_YAML) {
		r->text = xmalloc(q->len + 1);
		memcpy(r->text, q->yaml, q->len);
		r->text[q->len] = '\0';
		r->len = q->len;
	}
	if (q->patch != NULL)
		r->patch = json_deep_copy(q->patch);
	if (m->gw->draining) {
		crab_config_req_fail(r, "shutting_down", "request", "the gateway is shutting down");
		return;
	}
	if (m->queued >= QUEUE_MAX) {
		crab_config_req_fail(r, "busy", "request", "%d configuration changes are waiting already",
		    QUEUE_MAX);
		return;
	}
	r->m = m;
	*m->tail = r;
	m->tail = &r->next;
	m->queued++;
	if (m->current == NULL)
		event_active(m->kick, EV_TIMEOUT, 0);
}

/* ---- step 0: the new YAML ---- */

struct fetch_job {
	struct crab_store_job job;
	struct creq *r;
	char *yaml;
	int found;
};

static int fetch_run(struct crab_store *st, struct crab_store_job *job)
{
	struct fetch_job *j = (struct fetch_job *)job;
	int rc = crab_store_config_get(st, j->r->revert_to, &j->yaml);

	j->found = rc == 1;
	return rc < 0 ? -1 : 0;
}

static void fetch_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct fetch_job *j = (struct fetch_job *)job;
	struct creq *r = j->r;

	r->in_store = 0;
	if (status != CRAB_JOB_OK) {
		crab_config_req_fail(r, "store_unavailable", "store", "the revisions could not be read");
	} else if (!j->found) {
		crab_config_req_fail(r, "not_found", "request", "no revision %lld", (long long)r->revert_to);
	} else {
		r->text = j->yaml;
		r->len = strlen(j->yaml);
		j->yaml = NULL;
		candidate(r);
	}
	free(j->yaml);
	free(j);
}

/* The running config's keyed view with the patch applied, as YAML. */
static int patched_text(struct creq *r)
{
	const struct crab_config *running = r->m->gw->cfg;
	char err[256];
	json_t *before, *after = NULL, *plain = NULL;
	int rc = -1;

	if (!json_is_object(r->patch)) {
		crab_config_req_fail(r, "invalid_args", "request", "the patch must be a JSON object (RFC 7396)");
		return -1;
	}
	before = crab_config_view(running->source_text, running->source_len, err, sizeof(err));
	if (before == NULL) {
		crab_config_req_fail(r, "internal", "request", "the running configuration: %s", err);
		return -1;
	}
	after = crab_merge_patch(before, r->patch);
	if (after == NULL || (plain = crab_config_view_unkeyed(after, err, sizeof(err))) == NULL) {
		crab_config_req_fail(r, "invalid_config", "schema", "%s",
		    after ? err : "the patch could not be applied");
		goto out;
	}
	r->text = crab_config_yaml_emit(plain, &r->len);
	rc = 0;
out:
	json_decref(before);
	json_decref(after);
	json_decref(plain);
	return rc;
}

static void start(struct creq *r)
{
	struct crab_gateway *gw = r->m->gw;
	char why[512];

	switch (r->op) {
	case CRAB_CONFIG_APPLY_YAML:
		break;
	case CRAB_CONFIG_APPLY_PATCH:
		if (patched_text(r) != 0)
			return;
		break;
	case CRAB_CONFIG_RELOAD:
		if ((r->text = crab_file_read(gw->cfg->path, FILE_MAX, &r->len, why,
			 sizeof(why))) == NULL) {
			crab_config_req_fail(r, "invalid_config", "parse", "%s", why);
			return;
		}
		break;
	case CRAB_CONFIG_REVERT: {
		struct fetch_job *j = xcalloc(1, sizeof(*j));

		if (r->revert_to < 1) {
			free(j);
			crab_config_req_fail(r, "invalid_args", "request", "revision must be 1 or more");
			return;
		}
		j->job.run = fetch_run;
		j->job.done = fetch_done;
		j->r = r;
		r->in_store = 1;
		crab_storeq_submit(gw->storeq, &j->job);
		return;
	}
	}
	candidate(r);
}

/* ---- steps 1 to 3 ---- */

static const char *stage_step(enum crab_config_stage s)
{
	switch (s) {
	case CRAB_CONFIG_SYNTAX: return "parse";
	case CRAB_CONFIG_SCHEMA: return "schema";
	default: return "semantic";
	}
}

/* Loads r->text as the running config's file; NULL after failing r. */
static struct crab_config *load(struct creq *r)
{
	const struct crab_config *running = r->m->gw->cfg;
	enum crab_config_stage stage = CRAB_CONFIG_SYNTAX;
	struct crab_config *cfg;
	char *msg = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&msg, &size);

	if (f == NULL)
		fatal("open_memstream");
	cfg = crab_config_parse(running->path, r->text, r->len, f, &stage);
	fclose(f);
	if (cfg == NULL) {
		while (size > 0 && msg[size - 1] == '\n')
			msg[--size] = '\0';
		if (size > MESSAGE_MAX)
			snprintf(msg + MESSAGE_MAX - 32, 32, "\n... (more errors)");
		crab_config_req_fail(r, "invalid_config", stage_step(stage), "%s", msg);
	}
	free(msg);
	return cfg;
}

/* An agent's change: the agent is in the running config and every path it changes is
 * open to it. 0, or -1 after failing r. */
static int check_policy(struct creq *r, const json_t *before, const json_t *after)
{
	const struct crab_config_agent *a = crab_config_agent_find(r->m->gw->cfg, r->agent_id);
	char msg[512], **paths;
	size_t n;
	int rc;

	if (a == NULL) {
		crab_config_req_fail(r, "forbidden", "policy", "no agent '%.64s' in the running configuration",
		    r->agent_id);
		return -1;
	}
	if (after == NULL) {
		crab_config_req_fail(r, "invalid_config", "parse", "the new configuration is no YAML mapping");
		return -1;
	}
	n = crab_config_policy_paths(a, &paths);
	rc = crab_config_policy_check(before, after, paths, n, msg, sizeof(msg));
	crab_config_policy_paths_free(paths, n);
	if (rc != 0)
		crab_config_req_fail(r, "forbidden", "policy", "%s: nothing was changed", msg);
	return rc;
}

static void after_smoke(void *arg, const char *why);

static void candidate(struct creq *r)
{
	const struct crab_config *running = r->m->gw->cfg;
	char err[256], path[256];
	json_t *before, *after;
	const char *prefix = NULL;
	struct crab_config *cfg;
	char revert_prefix[64];
	int bad = 0;

	before = crab_config_view(running->source_text, running->source_len, err, sizeof(err));
	after = crab_config_view(r->text, r->len, err, sizeof(err));
	if (before == NULL) {
		crab_config_req_fail(r, "internal", "request", "the running configuration cannot be read back");
		bad = 1;
	} else if (r->agent_id != NULL && check_policy(r, before, after) != 0) {
		bad = 1;
	} else if ((cfg = load(r)) == NULL) {
		bad = 1; /* r is gone */
	} else if ((r->cfg = cfg) != NULL &&
	    crab_config_restart_needed(running, cfg, path, sizeof(path))) {
		crab_config_req_fail(r, "restart_required", "semantic", "'%s' changed: that takes a restart of the "
		    "gateway (edit the file, then restart); nothing was changed", path);
		bad = 1;
	}
	if (!bad) {
		r->paths = after ? crab_config_diff_text(before, after) : json_array();
		if (r->op == CRAB_CONFIG_REVERT) {
			snprintf(revert_prefix, sizeof(revert_prefix), "revert to %lld: ",
			    (long long)r->revert_to);
			prefix = revert_prefix;
		}
		r->summary = crab_config_diff_summary(prefix, r->paths, SUMMARY_MAX);
	}
	json_decref(before);
	json_decref(after);
	if (bad)
		return;
	if (r->len == running->source_len && memcmp(r->text, running->source_text, r->len) == 0) {
		struct crab_config_outcome o = {.ok = 1, .unchanged = 1,
			.revision = running->revision, .diff_summary = "unchanged"};
		crab_config_req_finish(r, &o);
		return;
	}
	r->smoke = crab_config_smoke_start(r->m->gw, r->cfg, after_smoke, r);
	if (r->smoke == NULL)
		after_smoke(r, NULL);
}

static void after_smoke(void *arg, const char *why)
{
	struct creq *r = arg;

	r->smoke = NULL;
	if (why != NULL) {
		crab_config_req_fail(r, "smoke_test_failed", "smoke_test", "%s; nothing was changed", why);
		return;
	}
	if (r->dry_run) {
		struct crab_config_outcome o = {.ok = 1, .revision = r->m->gw->cfg->revision,
			.diff_summary = r->summary};
		crab_config_req_finish(r, &o);
		return;
	}
	crab_config_commit(r);
}
