/* config_tools.c: see config_tools.h. */
#include "config_tools.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_apply.h"
#include "config_view.h"
#include "gateway.h"
#include "util.h"

#define CALL_ID_MAX 256
#define TEXT_MAX (64 << 10) /* config.get's text for the model; data has it whole */
#define REVISIONS_DEFAULT 20
#define REVISIONS_MAX 100

#define PATCH_SCHEMA \
	"{\"type\":\"object\",\"properties\":{\"patch\":{\"type\":\"object\"," \
	"\"description\":\"An RFC 7396 JSON merge patch against the configuration as " \
	"config.get shows it: models, agents and tenants keyed by id, e.g. {\\\"agents\\\":" \
	"{\\\"assistant\\\":{\\\"max_tokens\\\":512}}}; null deletes a key.\"}}," \
	"\"required\":[\"patch\"],\"additionalProperties\":false}"

static const struct tool_def {
	const char *name, *description, *schema;
	int idempotent;
} tools[] = {
	{"config.get", "Shows the parts of the gateway's configuration this agent may change, "
	    "as JSON (models, agents and tenants keyed by id), with the running revision.",
	    "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}", 1},
	{"config.validate", "Checks a change without applying it: parse and schema, "
	    "semantics, this agent's policy and the configured smoke test. Nothing is written.",
	    PATCH_SCHEMA, 1},
	{"config.apply", "Applies a change to the configuration: checked like config.validate, "
	    "then written to the file, recorded as a new revision and in force at once.",
	    PATCH_SCHEMA, 0},
	{"config.revert", "Goes back to an earlier revision (a new revision with that "
	    "configuration), through the same checks as config.apply.",
	    "{\"type\":\"object\",\"properties\":{\"revision\":{\"type\":\"integer\","
	    "\"minimum\":1,\"description\":\"The revision to go back to.\"}},"
	    "\"required\":[\"revision\"],\"additionalProperties\":false}", 0},
	{"config.revisions", "Lists the configuration's revisions, newest first: revision, "
	    "actor, when, and what changed.",
	    "{\"type\":\"object\",\"properties\":{\"limit\":{\"type\":\"integer\",\"minimum\":1,"
	    "\"maximum\":100,\"default\":20}},\"additionalProperties\":false}", 1},
};

int crab_config_tool_known(const char *name)
{
	for (size_t i = 0; i < CRAB_ARRAY_LEN(tools); i++) {
		if (strcmp(tools[i].name, name) == 0)
			return 1;
	}
	return 0;
}

static int allowed(const struct crab_config_agent *a, const char *tool)
{
	for (size_t i = 0; a != NULL && i < a->npolicy_tools; i++) {
		if (strcmp(a->policy_tools[i], tool) == 0)
			return 1;
	}
	return 0;
}

json_t *crab_config_tools_list(struct crab_gateway *gw, const char *agent_id)
{
	const struct crab_config_agent *a = crab_config_agent_find(gw->cfg, agent_id);
	json_t *out = json_array();

	for (size_t i = 0; i < CRAB_ARRAY_LEN(tools); i++) {
		if (!allowed(a, tools[i].name))
			continue;
		json_array_append_new(out, json_pack("{s:s, s:s, s:o, s:b}", "name", tools[i].name,
		    "description", tools[i].description, "input_schema",
		    json_loads(tools[i].schema, 0, NULL), "idempotent", tools[i].idempotent));
	}
	return out;
}

/* ---- answers ---- */

struct tcall {
	char call_id[CALL_ID_MAX];
	char actor[96];
	const char *tool;
	void (*answer)(void *arg, const char *json, size_t len);
	void *arg;
};

static void reply(struct tcall *c, json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);

	c->answer(c->arg, text, strlen(text));
	free(text);
	json_decref(msg);
	free(c);
}

static void send_ok(struct tcall *c, const char *text, json_t *data)
{
	reply(c, json_pack("{s:s, s:b, s:[{s:s, s:s}], s:o}", "call_id", c->call_id, "ok", 1,
	    "content", "type", "text", "text", text, "data", data));
}

static void send_error(struct tcall *c, const char *code, const char *step, int retryable,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_error(struct tcall *c, const char *code, const char *step, int retryable,
    const char *fmt, ...)
{
	char msg[2048];
	json_t *err;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err = json_pack("{s:s, s:s, s:b}", "code", code, "message", msg, "retryable", retryable);
	if (step != NULL)
		json_object_set_new(err, "step", json_string(step));
	reply(c, json_pack("{s:s, s:b, s:o}", "call_id", c->call_id, "ok", 0, "error", err));
}

/* ---- the tools ---- */

static void changed(void *arg, const struct crab_config_outcome *o)
{
	struct tcall *c = arg;
	int dry = strcmp(c->tool, "config.validate") == 0;
	json_t *data;
	char text[1536];

	if (!o->ok) {
		send_error(c, o->code, o->step, o->retryable, "%s", o->message);
		return;
	}
	data = crab_config_outcome_json(o, dry);
	if (o->unchanged)
		snprintf(text, sizeof(text), "nothing to change: revision %lld is that "
		    "configuration already", (long long)o->revision);
	else if (dry)
		snprintf(text, sizeof(text), "valid; applying it would change: %.1400s",
		    o->diff_summary ? o->diff_summary : "");
	else
		snprintf(text, sizeof(text), "applied as revision %lld: %.1400s",
		    (long long)o->revision, o->diff_summary ? o->diff_summary : "");
	send_ok(c, text, data);
}

static void tool_get(struct crab_gateway *gw, struct tcall *c, const struct crab_config_agent *a)
{
	const struct crab_config *cfg = gw->cfg;
	char err[256], **paths, *text;
	json_t *view = crab_config_view(cfg->source_text, cfg->source_len, err, sizeof(err)), *sel;
	size_t n;

	if (view == NULL) {
		send_error(c, "internal", NULL, 0, "the running configuration: %s", err);
		return;
	}
	n = crab_config_policy_paths(a, &paths);
	sel = crab_config_view_select(view, paths, n);
	text = json_dumps(sel, JSON_COMPACT | JSON_SORT_KEYS);
	if (strlen(text) > TEXT_MAX)
		snprintf(text + TEXT_MAX - 32, 32, "... (cut; see data)");
	{
		json_t *allowed_paths = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(allowed_paths, json_string(paths[i]));
		send_ok(c, text, json_pack("{s:I, s:o, s:o}", "revision", (json_int_t)cfg->revision,
		    "paths", allowed_paths, "config", sel));
	}
	free(text);
	json_decref(view);
	crab_config_policy_paths_free(paths, n);
}

static void revisions_done(void *arg, json_t *list, const char *why)
{
	struct tcall *c = arg;
	struct crab_buf b = {0};
	size_t i;
	json_t *r;
	char *text;

	if (list == NULL) {
		send_error(c, "store_unavailable", "store", 1, "%s", why);
		return;
	}
	json_array_foreach(list, i, r) {
		char line[1400];
		int n = snprintf(line, sizeof(line), "%s%lld %s %s: %.1200s", i ? "\n" : "",
		    (long long)json_integer_value(json_object_get(r, "revision")),
		    json_string_value(json_object_get(r, "applied_at")),
		    json_string_value(json_object_get(r, "actor")),
		    json_string_value(json_object_get(r, "diff_summary")));
		crab_buf_add(&b, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
	}
	text = crab_buf_take(&b);
	send_ok(c, text[0] ? text : "no revisions", json_pack("{s:O}", "revisions", list));
	free(text);
}

/* The arguments against the tool's input schema (the subset it uses). */
static int check_args(struct tcall *c, json_t *args, const char *allowed_key)
{
	const char *k;
	json_t *v;

	json_object_foreach(args, k, v) {
		if (allowed_key == NULL || strcmp(k, allowed_key) != 0) {
			send_error(c, "invalid_arguments", NULL, 0, "%s takes no argument '%.64s'",
			    c->tool, k);
			return -1;
		}
	}
	return 0;
}

void crab_config_tools_call(struct crab_gateway *gw, const char *call_json, size_t len,
    void (*answer)(void *arg, const char *json, size_t len), void *arg)
{
	struct tcall *c = xcalloc(1, sizeof(*c));
	json_t *call = json_loadb(call_json, len, 0, NULL);
	json_t *args = json_object_get(call, "arguments");
	const char *tool = json_string_value(json_object_get(call, "tool"));
	const char *call_id = json_string_value(json_object_get(call, "call_id"));
	const char *agent_id = json_string_value(json_object_get(json_object_get(call, "context"),
	    "agent_id"));
	const struct crab_config_agent *a;
	struct crab_config_req req = {0};

	c->answer = answer;
	c->arg = arg;
	crab_strlcpy(c->call_id, call_id ? call_id : "", sizeof(c->call_id));
	for (size_t i = 0; tool != NULL && i < CRAB_ARRAY_LEN(tools); i++) {
		if (strcmp(tools[i].name, tool) == 0)
			c->tool = tools[i].name; /* static: outlives the call's JSON */
	}
	if (!json_is_object(call) || call_id == NULL || agent_id == NULL) {
		send_error(c, "invalid_request", NULL, 0, "a call needs call_id, tool, arguments "
		    "and context.agent_id");
		goto out;
	}
	if (c->tool == NULL) {
		send_error(c, "not_found", NULL, 0, "no gateway tool '%.64s'", tool ? tool : "");
		goto out;
	}
	a = crab_config_agent_find(gw->cfg, agent_id);
	if (!allowed(a, c->tool)) {
		send_error(c, "forbidden", "policy", 0, "agent '%.64s' may not use %s: its "
		    "config_policy does not name it", agent_id, c->tool);
		goto out;
	}
	if (args != NULL && !json_is_object(args)) {
		send_error(c, "invalid_arguments", NULL, 0, "arguments must be an object");
		goto out;
	}
	snprintf(c->actor, sizeof(c->actor), "agent:%.64s", agent_id);
	req.actor = c->actor;
	req.agent_id = agent_id;
	if (strcmp(c->tool, "config.get") == 0) {
		if (check_args(c, args, NULL) == 0)
			tool_get(gw, c, a);
	} else if (strcmp(c->tool, "config.revisions") == 0) {
		json_t *limit = json_object_get(args, "limit");
		if (check_args(c, args, "limit") != 0)
			goto out;
		if (limit != NULL && (!json_is_integer(limit) || json_integer_value(limit) < 1 ||
					 json_integer_value(limit) > REVISIONS_MAX)) {
			send_error(c, "invalid_arguments", NULL, 0, "limit must be a whole number from "
			    "1 to %d", REVISIONS_MAX);
			goto out;
		}
		crab_config_revisions(gw, limit ? json_integer_value(limit) : REVISIONS_DEFAULT,
		    revisions_done, c);
	} else if (strcmp(c->tool, "config.revert") == 0) {
		json_t *rev = json_object_get(args, "revision");
		if (check_args(c, args, "revision") != 0)
			goto out;
		if (!json_is_integer(rev) || json_integer_value(rev) < 1) {
			send_error(c, "invalid_arguments", NULL, 0, "revision (a whole number, 1 or "
			    "more) is required");
			goto out;
		}
		req.op = CRAB_CONFIG_REVERT;
		req.revision = json_integer_value(rev);
		crab_config_submit(gw->config_mgr, &req, changed, c);
	} else {
		json_t *patch = json_object_get(args, "patch");
		if (check_args(c, args, "patch") != 0)
			goto out;
		if (!json_is_object(patch)) {
			send_error(c, "invalid_arguments", NULL, 0, "patch (an object: an RFC 7396 "
			    "merge patch) is required");
			goto out;
		}
		req.op = CRAB_CONFIG_APPLY_PATCH;
		req.dry_run = strcmp(c->tool, "config.validate") == 0;
		req.patch = patch;
		crab_config_submit(gw->config_mgr, &req, changed, c);
	}
out:
	json_decref(call);
}
