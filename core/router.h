/* router.h: who an event belongs to and who answers it (ARCHITECTURE.md, data flow 2-3).
 * The tenant comes from the operator's identity mapping, never from the chat user's
 * input; the agent from the first matching route; then the runtime key
 * tenant/agent/platform/channel/actor and the memory key tenant/agent/(isolation|global).
 * A router is built from one config and is read-only afterwards, so the store worker may
 * use it too. */
#ifndef CRAB_ROUTER_H
#define CRAB_ROUTER_H

#include "config.h"
#include "errors.h"
#include "template.h"

struct crab_router;

struct crab_router *crab_router_new(const struct crab_config *cfg);
void crab_router_free(struct crab_router *r);

/* The decision; every string is malloc'd (crab_route_release). */
struct crab_route {
	char *tenant_id;
	char *agent_id;
	char *isolation_key; /* NULL: memory scope "global" */
	char *runtime_key;
	char *memory_key;
};

/* Routes an event: in's tenant_id and agent_id are set when the producer fixes them (a
 * lease, a trusted producer), NULL lets the router decide. 0 with out filled; -1 with err
 * set (unknown_identity for an unmapped actor the config refuses). */
int crab_router_resolve(const struct crab_router *r, const struct crab_event_fields *in,
    struct crab_route *out, struct crab_error *err);
void crab_route_release(struct crab_route *rt);

/* The tenant an actor or channel maps to, or NULL. */
const char *crab_router_tenant(const struct crab_router *r, const char *platform,
    const char *channel_id, const char *actor_id);

/* "a/b/c" from parts, '%' and '/' escaped so that distinct parts never collide. */
char *crab_router_join_key(const char *const *parts, size_t n);

#endif
