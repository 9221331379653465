/* admin_config.c: the operator's configuration operations (PROTOCOLS.md §6):
 * config.get, config.validate, config.apply, config.revert, config.revisions and
 * reload, each a change through the pipeline of config_apply.h with actor "operator". */
#include "admin_ops.h"

#include <stdlib.h>
#include <string.h>

#include "config_apply.h"
#include "config_tools.h"
#include "config_view.h"
#include "gateway.h"
#include "util.h"

#define REVISIONS_DEFAULT 20
#define REVISIONS_MAX 1000

struct op_ctx {
	struct admin_call *call;
	int dry_run;
};

static void answer(void *arg, const struct crab_config_outcome *o)
{
	struct op_ctx *c = arg;

	if (o->ok)
		crab_admin_reply_ok(c->call, crab_config_outcome_json(o, c->dry_run));
	else
		crab_admin_reply_error(c->call, o->code, "%s: %s", o->step, o->message);
	free(c);
}

static void submit(struct admin_call *call, const struct crab_config_req *r)
{
	struct op_ctx *c = xcalloc(1, sizeof(*c));

	c->call = call;
	c->dry_run = r->dry_run;
	crab_config_submit(call->gw->config_mgr, r, answer, c);
}

/* {"yaml": "the whole file"} */
static void yaml_op(struct admin_call *call, json_t *args, int dry_run)
{
	json_t *yaml = json_object_get(args, "yaml");
	struct crab_config_req r = {.op = CRAB_CONFIG_APPLY_YAML, .dry_run = dry_run,
		.actor = "operator"};

	if (!json_is_string(yaml)) {
		crab_admin_reply_error(call, "invalid_args", "yaml (the whole configuration, as "
		    "text) is required");
		return;
	}
	r.yaml = json_string_value(yaml);
	r.len = json_string_length(yaml);
	submit(call, &r);
}

void crab_admin_op_config_validate(struct admin_call *call, json_t *args)
{
	yaml_op(call, args, 1);
}

void crab_admin_op_config_apply(struct admin_call *call, json_t *args)
{
	yaml_op(call, args, 0);
}

void crab_admin_op_config_revert(struct admin_call *call, json_t *args)
{
	json_t *rev = json_object_get(args, "revision");
	struct crab_config_req r = {.op = CRAB_CONFIG_REVERT, .actor = "operator"};

	if (!json_is_integer(rev) || json_integer_value(rev) < 1) {
		crab_admin_reply_error(call, "invalid_args", "revision (a whole number, 1 or more) "
		    "is required");
		return;
	}
	r.revision = json_integer_value(rev);
	submit(call, &r);
}

void crab_admin_op_reload(struct admin_call *call, json_t *args)
{
	const struct crab_config_req r = {.op = CRAB_CONFIG_RELOAD, .actor = "operator"};

	(void)args;
	submit(call, &r);
}

void crab_admin_op_config_get(struct admin_call *call, json_t *args)
{
	const struct crab_config *cfg = call->gw->cfg;
	char err[256];
	json_t *view = crab_config_view(cfg->source_text, cfg->source_len, err, sizeof(err));

	(void)args;
	if (view == NULL) {
		crab_admin_reply_error(call, "internal", "the running configuration: %s", err);
		return;
	}
	/* The file holds no secret (the loader refuses them); redacted all the same. */
	crab_config_redact(view, 0);
	crab_admin_reply_ok(call, json_pack("{s:I, s:s, s:s%, s:o}", "revision",
	    (json_int_t)cfg->revision, "path", cfg->path, "yaml", cfg->source_text,
	    cfg->source_len, "config", view));
}

static void revisions_done(void *arg, json_t *list, const char *why)
{
	struct admin_call *call = arg;

	if (list == NULL)
		crab_admin_reply_error(call, "store_unavailable", "%s", why);
	else
		crab_admin_reply_ok(call, json_pack("{s:I, s:O}", "running",
		    (json_int_t)call->gw->cfg->revision, "revisions", list));
}

void crab_admin_op_config_revisions(struct admin_call *call, json_t *args)
{
	json_t *limit = json_object_get(args, "limit");
	int64_t n = REVISIONS_DEFAULT;

	if (limit != NULL) {
		if (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
		    json_integer_value(limit) > REVISIONS_MAX) {
			crab_admin_reply_error(call, "invalid_args", "limit must be a whole number "
			    "from 1 to %d", REVISIONS_MAX);
			return;
		}
		n = json_integer_value(limit);
	}
	crab_config_revisions(call->gw, n, revisions_done, call);
}

#ifdef CRAB_TEST_HOOKS
/* Test builds only: the agents' config tools as the tool client reaches them, so that
 * tests drive them without a model that calls tools. {"list":"<agent_id>"} answers
 * {"tools":[...]}; {"call":{...}} answers the call's reply, whatever it says. */
static void tool_answer(void *arg, const char *json, size_t len)
{
	struct admin_call *call = arg;
	json_t *reply = json_loadb(json, len, 0, NULL);

	if (reply == NULL)
		crab_admin_reply_error(call, "internal", "the tool answered no JSON");
	else
		crab_admin_reply_ok(call, reply);
}

void crab_admin_op_config_tool(struct admin_call *call, json_t *args)
{
	const char *agent = json_string_value(json_object_get(args, "list"));
	json_t *c = json_object_get(args, "call");
	char *text;

	if (agent != NULL) {
		crab_admin_reply_ok(call, json_pack("{s:o}", "tools",
		    crab_config_tools_list(call->gw, agent)));
		return;
	}
	if (!json_is_object(c)) {
		crab_admin_reply_error(call, "invalid_args", "list (an agent id) or call (an "
		    "object) is required");
		return;
	}
	text = json_dumps(c, JSON_COMPACT);
	crab_config_tools_call(call->gw, text, strlen(text), tool_answer, call);
	free(text);
}
#endif
