/* config_check.c: the checks across sections, once every section is read: each
 * reference names something defined, no id is defined twice, no identity belongs to two
 * tenants, and the router's settings agree. Each error is placed at the value at fault. */
#include "config_parse.h"

#include <stdlib.h>
#include <string.h>

#include "config_tools.h"
#include "config_view.h"
#include "util.h"

/* ids[i] (NULL: missing, reported already) must differ from every earlier one. */
static void check_unique(struct loader *ld, const char *what, const char **ids, size_t n,
    const struct table *tab, struct fy_node **rows)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; ids[i] != NULL && j < i; j++) {
			if (ids[j] == NULL || strcmp(ids[i], ids[j]) != 0)
				continue;
			cfg_report(ld, cfg_at(tab, rows + i * tab->nfields, "id"),
			    "duplicate %s id '%s' (first at line %d)", what, ids[i],
			    cfg_node_line(cfg_at(tab, rows + j * tab->nfields, "id")));
			break;
		}
	}
}

static void check_ids(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;
	size_t n = cfg->nmodels > cfg->nagents ? cfg->nmodels : cfg->nagents;
	const char **ids;

	n = n > cfg->ntenants ? n : cfg->ntenants;
	ids = xcalloc(n + 1, sizeof(*ids));
	for (size_t i = 0; i < cfg->nmodels; i++)
		ids[i] = cfg->models[i].id;
	check_unique(ld, "model", ids, cfg->nmodels, &cfg_model_table, ld->model_at);
	for (size_t i = 0; i < cfg->nagents; i++)
		ids[i] = cfg->agents[i].id;
	check_unique(ld, "agent", ids, cfg->nagents, &cfg_agent_table, ld->agent_at);
	for (size_t i = 0; i < cfg->ntenants; i++)
		ids[i] = cfg->tenants[i].id;
	check_unique(ld, "tenant", ids, cfg->ntenants, &cfg_tenant_table, ld->tenant_at);
	free(ids);
}

static void check_agents(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;

	if (ld->agents_key == NULL || ld->agents_broken)
		return; /* the built-in default, or reported already */
	if (cfg->nagents == 0)
		cfg_report(ld, ld->agents_key, "'agents' needs at least one agent");
	if (ld->models_key == NULL) {
		/* One error, not one per agent: every model reference dangles. */
		cfg_report(ld, ld->agents_key, "'agents' needs a 'models' section to name "
		    "their models in");
		return;
	}
	for (size_t i = 0; i < cfg->nagents && !ld->models_broken; i++) {
		const struct crab_config_agent *a = &cfg->agents[i];
		if (a->model != NULL && crab_config_model_find(cfg, a->model) == NULL)
			cfg_report(ld, cfg_at(&cfg_agent_table,
			    ld->agent_at + i * cfg_agent_table.nfields, "model"),
			    "agent '%s': no model named '%s' in 'models'", a->id ? a->id : "?",
			    a->model);
	}
}

static void check_routes(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;

	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct crab_config_route *r = &cfg->routes[i];
		struct fy_node **at = ld->route_at + i * cfg_route_table.nfields;

		if (r->agent != NULL && !ld->agents_broken && crab_config_agent_find(cfg, r->agent) == NULL)
			cfg_report(ld, cfg_at(&cfg_route_table, at, "agent"),
			    "route %zu: no agent named '%s' in 'agents'", i + 1, r->agent);
		if (r->tenant != NULL && !ld->tenants_broken && crab_config_tenant_find(cfg, r->tenant) == NULL)
			cfg_report(ld, cfg_at(&cfg_route_table, at, "match.tenant"),
			    "route %zu: no tenant named '%s' in 'tenants'", i + 1, r->tenant);
	}
}

static void check_router(struct loader *ld, const struct table *root)
{
	struct crab_config *cfg = ld->cfg;
	struct fy_node *tenant = cfg_at(root, ld->root_at, "router.unmapped_tenant");
	struct fy_node *agent = cfg_at(root, ld->root_at, "gateway.default_agent");

	if (cfg->router.refuse_unmapped && cfg->router.unmapped_tenant != NULL)
		cfg_report(ld, tenant, "'unmapped_tenant' is only used with 'unmapped_actors: route'");
	else if (!cfg->router.refuse_unmapped && cfg->router.unmapped_tenant == NULL)
		cfg_report(ld, cfg_at(root, ld->root_at, "router.unmapped_actors"),
		    "'unmapped_actors: route' needs 'unmapped_tenant', the tenant they get");
	else if (cfg->router.unmapped_tenant != NULL && !ld->tenants_broken &&
	    crab_config_tenant_find(cfg, cfg->router.unmapped_tenant) == NULL)
		cfg_report(ld, tenant, "unmapped_tenant: no tenant named '%s' in 'tenants'",
		    cfg->router.unmapped_tenant);
	if (!ld->agents_broken && crab_config_agent_find(cfg, cfg->default_agent) == NULL)
		cfg_report(ld, agent ? agent : ld->agents_key,
		    "default_agent: no agent named '%s' in 'agents'%s", cfg->default_agent,
		    agent ? "" : " (gateway.default_agent is not set: that is its default)");
}

static int claim_cmp(const void *a, const void *b)
{
	const struct claim *x = *(const struct claim *const *)a;
	const struct claim *y = *(const struct claim *const *)b;
	int c;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if ((c = strcmp(x->platform, y->platform)) != 0)
		return c;
	if (x->value != NULL && y->value != NULL && (c = strcmp(x->value, y->value)) != 0)
		return c;
	return x < y ? -1 : x > y; /* the same identity: the one written first, first */
}

/* An actor, a channel or a whole platform belongs to one tenant, listed once. */
static void check_claims(struct loader *ld)
{
	const struct claim **sorted;
	size_t i, first = 0;

	if (ld->nclaims == 0)
		return;
	sorted = xcalloc(ld->nclaims, sizeof(*sorted));
	for (i = 0; i < ld->nclaims; i++)
		sorted[i] = &ld->claims[i];
	qsort(sorted, ld->nclaims, sizeof(*sorted), claim_cmp);
	for (i = 1; i < ld->nclaims; i++) {
		const struct claim *c = sorted[i], *f = sorted[first];
		const char *tenant;
		int line;

		if (c->kind != f->kind || strcmp(c->platform, f->platform) != 0 ||
		    (c->value != NULL && strcmp(c->value, f->value) != 0)) {
			first = i;
			continue;
		}
		tenant = ld->cfg->tenants[f->tenant].id ? ld->cfg->tenants[f->tenant].id : "?";
		line = cfg_node_line(f->at);
		if (c->kind == CLAIM_PLATFORM)
			cfg_report(ld, c->at, "platform '%s' as a whole is already mapped to "
			    "tenant '%s' (line %d)", c->platform, tenant, line);
		else
			cfg_report(ld, c->at, "%s '%s' on '%s' is already mapped to tenant '%s' "
			    "(line %d)", c->kind == CLAIM_ACTOR ? "actor" : "channel", c->value,
			    c->platform, tenant, line);
	}
	free(sorted);
}

/* agents[].config_policy: tools the gateway has, paths that are paths. */
static void check_policies(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;

	for (size_t i = 0; ld->agent_at != NULL && i < cfg->nagents; i++) {
		const struct crab_config_agent *a = &cfg->agents[i];
		struct fy_node **at = ld->agent_at + i * cfg_agent_table.nfields;

		for (size_t k = 0; k < a->npolicy_tools; k++) {
			if (!crab_config_tool_known(a->policy_tools[k]))
				cfg_report(ld, cfg_at(&cfg_agent_table, at, "config_policy.tools"),
				    "agent '%s': config_policy tool '%.80s' is none of config.get, "
				    "config.validate, config.apply, config.revert, config.revisions",
				    a->id ? a->id : "?", a->policy_tools[k]);
		}
		for (size_t k = 0; k < a->npolicy_paths; k++) {
			if (!crab_config_path_valid(a->policy_paths[k]))
				cfg_report(ld, cfg_at(&cfg_agent_table, at, "config_policy.paths"),
				    "agent '%s': config_policy path '%.80s' is no dotted path",
				    a->id ? a->id : "?", a->policy_paths[k]);
		}
	}
}

/* A literal string, as opposed to YAML's null, a number or a boolean. */
static int literal_string(struct fy_node *n)
{
	char *text = cfg_scalar_dup(n);
	int64_t v;
	int literal = text != NULL;

	if (literal && fy_node_get_style(n) == FYNS_PLAIN &&
	    (crab_parse_int64(text, INT64_MIN, INT64_MAX, &v) == 0 ||
		strcmp(text, "true") == 0 || strcmp(text, "false") == 0))
		literal = 0;
	free(text);
	return literal;
}

/* Secrets are named (api_key_env, api_key_file), never written in the file: it is
 * recorded in config_revisions and shown to operators and agents (SECURITY.md). */
static void check_secrets(struct loader *ld, struct fy_node *n, int depth)
{
	struct fy_node_pair *pair;
	struct fy_node *item;
	void *iter = NULL;

	if (n == NULL || depth > 64)
		return;
	if (fy_node_get_type(n) == FYNT_SEQUENCE) {
		while ((item = fy_node_sequence_iterate(n, &iter)) != NULL)
			check_secrets(ld, item, depth + 1);
		return;
	}
	if (fy_node_get_type(n) != FYNT_MAPPING)
		return;
	while ((pair = fy_node_mapping_iterate(n, &iter)) != NULL) {
		struct fy_node *val = fy_node_pair_value(pair);
		char *key = cfg_scalar_dup(fy_node_pair_key(pair));

		if (key != NULL && crab_config_secret_key(key) && val != NULL &&
		    fy_node_get_type(val) == FYNT_SCALAR && literal_string(val))
			cfg_report(ld, val, "'%.64s' holds a secret written inline: name where it "
			    "comes from instead, with %.64s_env (an environment variable) or "
			    "%.64s_file", key, key, key);
		free(key);
		check_secrets(ld, val, depth + 1);
	}
}

void cfg_check(struct loader *ld, const struct table *root)
{
	check_policies(ld);
	check_secrets(ld, ld->root, 0);
	check_ids(ld);
	cfg_check_auth(ld);
	check_agents(ld);
	check_routes(ld);
	check_router(ld, root);
	check_claims(ld);
}
