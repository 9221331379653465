/* config_apply.h: the one way a configuration changes while the gateway runs (the
 * seed's "Config management and safety"). Every change, whoever asks (an operator's
 * config.apply, config.revert, SIGHUP, an agent's config tool), goes through the same
 * steps, one change at a time, in the order asked:
 *
 *   1. parse and schema: the loader on the new YAML (file:line:col errors);
 *   2. semantics: the loader's checks across sections, inline secrets refused, an
 *      agent's change held to its config_policy, and changes that cannot be applied
 *      hot refused with restart_required (crab_config_restart_needed);
 *   3. the smoke test the new config names (config.smoke_test): a model ping, a route;
 *   4. the file written atomically (temporary file in its directory, fsync, rename,
 *      fsync of the directory) and
 *   5. the revision (last + 1, actor, YAML, changed paths) and the config.applied event
 *      recorded, in the store transaction that writes the file; then the gateway swaps
 *      to the new config (crab_gateway_config_swap).
 *
 * A change refused at any step changes nothing: not the file, not the running config,
 * not the store. Loop thread only. */
#ifndef CRAB_CONFIG_APPLY_H
#define CRAB_CONFIG_APPLY_H

#include <event2/util.h>
#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "store/store.h"

struct crab_gateway;
struct crab_config_mgr;

enum crab_config_op {
	CRAB_CONFIG_APPLY_YAML,  /* a whole new file */
	CRAB_CONFIG_APPLY_PATCH, /* an RFC 7396 merge patch against the keyed view */
	CRAB_CONFIG_REVERT,      /* the YAML of an earlier revision */
	CRAB_CONFIG_RELOAD,      /* the file as it is on disk now (SIGHUP, reload) */
};

/* A change asked for; everything is copied by crab_config_submit. */
struct crab_config_req {
	enum crab_config_op op;
	int dry_run;          /* steps 1 to 3 only: config.validate */
	const char *actor;    /* "operator", "sighup", "agent:<id>" */
	const char *agent_id; /* an agent's change: held to this agent's config_policy */
	const char *yaml;     /* APPLY_YAML: the text, len bytes */
	size_t len;
	const json_t *patch;  /* APPLY_PATCH */
	int64_t revision;     /* REVERT: the revision to go back to */
};

/* How it went; everything borrowed for the callback. */
struct crab_config_outcome {
	int ok;
	const char *code;    /* when not ok: invalid_config, restart_required, forbidden,
			      * smoke_test_failed, conflict, write_failed, not_found,
			      * store_unavailable, busy, shutting_down, invalid_args */
	const char *step;    /* when not ok: parse, schema, semantic, policy, smoke_test,
			      * write, store, or request */
	const char *message; /* what and why, for a person; never a secret's value */
	int retryable;
	int64_t revision;    /* the new revision; the running one when unchanged or dry */
	int64_t reverted_to; /* a revert's target, else 0 */
	int unchanged;       /* the new YAML is the running one: nothing was done */
	const json_t *paths; /* the changed paths, dotted (an array; empty when none) */
	const char *diff_summary;
};

typedef void (*crab_config_done_fn)(void *arg, const struct crab_config_outcome *o);

struct crab_config_mgr *crab_config_mgr_new(struct crab_gateway *gw);
/* Answers every change still waiting or running with shutting_down, and frees. */
void crab_config_mgr_free(struct crab_config_mgr *m);

/* Queues a change; done is called exactly once, maybe before this returns. */
void crab_config_submit(struct crab_config_mgr *m, const struct crab_config_req *r,
    crab_config_done_fn done, void *arg);

/* The revisions, newest first, at most limit: done(arg, list, NULL) with
 * [{"revision","actor","applied_at","diff_summary"}] (borrowed), or done(arg, NULL,
 * why) when the store failed. */
void crab_config_revisions(struct crab_gateway *gw, int64_t limit,
    void (*done)(void *arg, json_t *list, const char *why), void *arg);

/* The outcome as the result of an admin operation or a tool's data: {"revision",
 * "unchanged","paths","diff_summary"[,"reverted_to"][,"validated"]}. */
json_t *crab_config_outcome_json(const struct crab_config_outcome *o, int dry_run);

/* ---- config_smoke.c ---- */

struct crab_config_smoke;
/* Runs cfg's config.smoke_test on the running gateway: done(arg, NULL) when it passed,
 * done(arg, why) when not; always later, on the loop. NULL (and no call) when cfg names
 * no smoke test. */
struct crab_config_smoke *crab_config_smoke_start(struct crab_gateway *gw,
    const struct crab_config *cfg, void (*done)(void *arg, const char *why), void *arg);
/* Stops it: done is not called. */
void crab_config_smoke_cancel(struct crab_config_smoke *s);

/* ---- config_reload.c ---- */

/* At start, on the store before the worker runs: records cfg as a revision with actor
 * "file" unless the latest revision has the same YAML; sets cfg->revision. 0, or -1
 * with one line in err. */
int crab_config_record_start(struct crab_store *st, struct crab_config *cfg, char *err,
    size_t errlen);

/* Makes cfg (the caller's reference, now the gateway's) the running config: the
 * router rebuilt, turns settings, context, HTTP limits, retention, log level and the
 * subscribers' filters read again. What the store worker may still read of the old
 * router and config goes only after every job queued before the swap has run. */
void crab_gateway_config_swap(struct crab_gateway *gw, struct crab_config *cfg);

/* SIGHUP: the file reloaded through the pipeline, actor "sighup". */
void crab_config_sighup_cb(evutil_socket_t sig, short what, void *gw);

#endif
