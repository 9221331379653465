/* config_int.h: what core/config_apply.c and core/config_commit.c share: a change on
 * its way through the pipeline. Private to them. */
#ifndef CRAB_CONFIG_INT_H
#define CRAB_CONFIG_INT_H

#include "config_apply.h"

struct creq {
	struct creq *next;
	struct crab_config_mgr *m;
	enum crab_config_op op;
	int dry_run;
	char *actor, *agent_id;
	char *text; /* the new YAML */
	size_t len;
	json_t *patch;
	int64_t revert_to;
	crab_config_done_fn done;
	void *arg;
	/* the work */
	struct crab_config *cfg; /* the new config, once loaded */
	json_t *paths;           /* changed paths, dotted */
	char *summary;
	struct crab_config_smoke *smoke;
	int in_store;
};

struct crab_config_mgr {
	struct crab_gateway *gw;
	struct creq *head, **tail, *current;
	size_t queued;
	struct event *kick;
};

/* Ends r with a refusal (logged) or an outcome: done is called, r freed, the next
 * change started. */
void crab_config_req_fail(struct creq *r, const char *code, const char *step,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void crab_config_req_finish(struct creq *r, struct crab_config_outcome *o);
/* Steps 4 and 5 for a checked change (config_commit.c). */
void crab_config_commit(struct creq *r);

#endif
