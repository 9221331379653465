/* tools.h: the gateway's tool client (PROTOCOLS.md §5). It lists the tools of every
 * paired tool host (GET /v1/tools over TLS pinned to the host's key, at start, when the
 * peers change, and every minute), adds the gateway's own config.* tools
 * (config_tools.h), shows each agent the ones its YAML allows under names a model
 * provider accepts (memory.search as memory__search), and calls them:
 * POST /v1/tools/call with the turn's tenant, agent and session as context and the time
 * left as deadline_ms. A tool the agent may not use is neither shown nor callable, even
 * when a model names it. Every failure (host down, past the deadline, an error, an
 * answer that is not JSON) comes back as a result with "ok":false, so the model hears
 * of it and the turn goes on. Only tools marked idempotent are tried again. */
#ifndef CRAB_TOOLS_H
#define CRAB_TOOLS_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"

struct crab_gateway;
struct crab_tools;
struct crab_tool_call;

#define CRAB_TOOL_ANSWER_MAX (1 << 20) /* a larger answer from a host is an error */

struct crab_tools *crab_tools_new(struct crab_gateway *gw);
/* Cancels calls in flight without their callbacks. */
void crab_tools_free(struct crab_tools *t);
/* Paired, revoked or granted: the hosts are read again and listed. */
void crab_tools_peers_changed(struct crab_tools *t);

/* What agent a may use in tenant, as models see it: [{"name","description",
 * "input_schema"}] (a new reference), NULL when nothing. */
json_t *crab_tools_offer(struct crab_tools *t, const struct crab_config_agent *a,
    const char *tenant_id);

struct crab_tool_call_args {
	const struct crab_config_agent *agent;
	const char *tenant_id, *session_id;
	const char *memory_key; /* the session's; NULL or "": none */
	const char *call_id;    /* <turn_id>:<n>: the same when a turn is run again */
	const char *name;       /* as the model named it */
	const char *arguments;  /* JSON text (an object) */
	int64_t deadline_ms;    /* time left */
};

/* done(arg, tool, result): tool is the real name ("memory.search"; the model's name
 * when none matched), result the answer {"call_id","ok",...} as JSON text, well formed
 * whatever the host sent. Called exactly once, never before crab_tools_call returns. */
typedef void (*crab_tool_done_fn)(void *arg, const char *tool, const char *result);
struct crab_tool_call *crab_tools_call(struct crab_tools *t,
    const struct crab_tool_call_args *a, crab_tool_done_fn done, void *arg);
/* The call is dropped: done is not called. */
void crab_tools_cancel(struct crab_tool_call *c);

/* {"hosts":[{"peer_id","host","tools":N,"error"}]} for status. */
json_t *crab_tools_status(struct crab_tools *t);

/* The name a model sees for a tool: '.' as "__", other bytes outside [A-Za-z0-9_-] as
 * '_', at most 64 bytes; into out (65 bytes). -1 when it does not fit. */
int crab_tool_model_name(const char *tool, char out[65]);

#endif
