/* config_tools.h: the gateway's own tools config.get, config.validate, config.apply,
 * config.revert and config.revisions, served by the gateway itself in the shapes of
 * PROTOCOLS.md §5, for one agent under its config_policy (crab.yaml(5)): the tools its
 * policy names, changes only inside its paths and never in the areas closed to agents
 * (config_view.h), every change through the pipeline of config_apply.h with actor
 * "agent:<agent_id>".
 *
 * Arguments: config.get {}; config.validate {"patch":{...}} (steps 1 to 3, nothing
 * written); config.apply {"patch":{...}}; config.revert {"revision":N};
 * config.revisions {"limit":N}. A patch is an RFC 7396 merge patch against the keyed
 * view. Loop thread only. */
#ifndef CRAB_CONFIG_TOOLS_H
#define CRAB_CONFIG_TOOLS_H

#include <jansson.h>
#include <stddef.h>

struct crab_gateway;

/* 1 when name is one of the config tools above (what a config_policy may name). */
int crab_config_tool_known(const char *name);

/* A new reference: [{"name","description","input_schema","idempotent"}] for the tools
 * this agent's policy allows ([] when none, or no such agent). */
json_t *crab_config_tools_list(struct crab_gateway *gw, const char *agent_id);

/* call_json: {"call_id","tool","arguments":{...},"context":{"tenant_id","agent_id",
 * "session_id","deadline_ms"}}. Answers exactly once (maybe later, maybe before
 * returning) {"call_id","ok":true,"content":[{"type":"text","text":...}],"data":{...}}
 * or {"call_id","ok":false,"error":{"code","message","retryable",("step")}}. The agent is
 * context.agent_id; a tool its policy does not allow is refused (code "forbidden"). */
void crab_config_tools_call(struct crab_gateway *gw, const char *call_json, size_t len,
    void (*answer)(void *arg, const char *json, size_t len), void *arg);

#endif
