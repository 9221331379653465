/* config_agents.c: the list sections of crab.yaml(5): models, agents, tenants (with
 * their identities) and routes, each entry read through its table (config_parse.h). */
#include "config_parse.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* How one kind of list entry is read. */
struct list_kind {
	const struct table *tab;
	size_t size;                 /* of one entry */
	void (*init)(void *entry);   /* defaults, before the entry is read; may be NULL */
	void (*finish)(struct loader *ld, void *entry, struct fy_node *item,
	    struct fy_node **at);    /* after it is read; may be NULL */
};

/* Reads list val into the array at slot (a pointer to entries, *n of them). When rows
 * is not NULL, each entry's value nodes are kept there for the semantic checks. -1 when
 * val is no list. */
static int parse_list(struct loader *ld, const struct list_kind *kind, struct fy_node *key,
    struct fy_node *val, void *slot, size_t *n, struct fy_node ***rows)
{
	struct fy_node *item;
	void *iter = NULL;

	if (cfg_expect_list(ld, key, val, kind->tab->name) != 0)
		return -1;
	if (val == NULL || fy_node_get_type(val) != FYNT_SEQUENCE)
		return 0; /* "tenants:" with nothing under it */
	while ((item = fy_node_sequence_iterate(val, &iter)) != NULL) {
		struct fy_node **at = rows != NULL ? cfg_at_grow(rows, *n, kind->tab) :
		    xcalloc(kind->tab->nfields, sizeof(*at));
		char *items, *entry;

		memcpy(&items, slot, sizeof(items)); /* slot is a struct x **, of any x */
		items = xrealloc(items, (*n + 1) * kind->size);
		memcpy(slot, &items, sizeof(items));
		entry = items + *n * kind->size;
		memset(entry, 0, kind->size);
		if (kind->init != NULL)
			kind->init(entry);
		cfg_load_table(ld, kind->tab, entry, item, at);
		if (kind->finish != NULL)
			kind->finish(ld, entry, item, at);
		(*n)++;
		if (rows == NULL)
			free(at);
	}
	return 0;
}

/* ---- models ---- */

static const struct field model_fields[] = {
	FIELD(struct crab_config_model, id, "id", F_ID, TOP, .flags = FL_REQUIRED),
	FIELD(struct crab_config_model, adapter, "adapter", F_NAME, TOP, .flags = FL_REQUIRED),
	FIELD(struct crab_config_model, model, "model", F_STRING, TOP),
	CUSTOM("auth", TOP, cfg_parse_model_auth), /* read back from config by core/auth.c */
};

/* Open: the adapter's own keys (base_url, api_key_env, timeout_s, ...) are its business. */
const struct table cfg_model_table = {"models", model_fields, CRAB_ARRAY_LEN(model_fields), 1};

static void finish_model(struct loader *ld, void *entry, struct fy_node *item,
    struct fy_node **at)
{
	struct crab_config_model *m = entry;

	(void)ld;
	if (m->model == NULL && m->id != NULL)
		m->model = xstrdup(m->id);
	m->config = fy_node_get_type(item) == FYNT_MAPPING ? cfg_yaml_to_json(item) : json_object();
	cfg_node_place(cfg_at(&cfg_model_table, at, "adapter"), &m->adapter_line, &m->adapter_col);
}

static const struct list_kind model_kind = {&cfg_model_table, sizeof(struct crab_config_model),
	NULL, finish_model};

void cfg_parse_models(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val)
{
	struct crab_config *cfg = base;

	ld->models_key = key;
	ld->models_broken = parse_list(ld, &model_kind, key, val, &cfg->models, &cfg->nmodels,
	    &ld->model_at) != 0;
}

/* ---- agents ---- */

enum { AG_HISTORY, AG_CONTEXT, AG_TOOLS, AG_POLICY };

#define AG(member, key, type, parent, ...) \
	FIELD(struct crab_config_agent, member, key, type, parent, __VA_ARGS__)

static const struct field agent_fields[] = {
	[AG_HISTORY] = GROUP("history", TOP),
	[AG_CONTEXT] = GROUP("context", TOP),
	[AG_TOOLS] = GROUP("tools", TOP),
	[AG_POLICY] = GROUP("config_policy", TOP),
	AG(id, "id", F_ID, TOP, .flags = FL_REQUIRED),
	AG(model, "model", F_STRING, TOP, .flags = FL_REQUIRED),
	AG(max_tokens, "max_tokens", F_INT, TOP, .min = 1, .max = 1000000),
	AG(history_max_turns, "max_turns", F_INT, AG_HISTORY, .min = 0, .max = 100000),
	AG(history_max_bytes, "max_bytes", F_INT, AG_HISTORY, .min = 1024, .max = 64 << 20),
	AG(context_global, "global", F_TEMPLATE, AG_CONTEXT),
	AG(context_platform, "platform", F_TEMPLATE, AG_CONTEXT),
	AG(context_channel, "channel", F_TEMPLATE, AG_CONTEXT),
	AG(context_actor, "actor", F_TEMPLATE, AG_CONTEXT),
	AG(tools_allow, "allow", F_STRINGS, AG_TOOLS,
	    .count_offset = offsetof(struct crab_config_agent, ntools_allow)),
	AG(tools_deny, "deny", F_STRINGS, AG_TOOLS,
	    .count_offset = offsetof(struct crab_config_agent, ntools_deny)),
	AG(tools_max_rounds, "max_rounds", F_INT, AG_TOOLS, .min = 1, .max = 100),
	AG(tools_deadline_ms, "deadline_ms", F_INT, AG_TOOLS, .min = 100, .max = 600000),
	AG(policy_tools, "tools", F_STRINGS, AG_POLICY,
	    .count_offset = offsetof(struct crab_config_agent, npolicy_tools)),
	AG(policy_paths, "paths", F_STRINGS, AG_POLICY,
	    .count_offset = offsetof(struct crab_config_agent, npolicy_paths)),
};

const struct table cfg_agent_table = {"agents", agent_fields, CRAB_ARRAY_LEN(agent_fields), 0};

static void init_agent(void *entry)
{
	struct crab_config_agent *a = entry;

	a->max_tokens = 1024;
	a->history_max_turns = 50;
	a->history_max_bytes = 65536;
	a->tools_max_rounds = 8;
	a->tools_deadline_ms = 30000;
}

static const struct list_kind agent_kind = {&cfg_agent_table, sizeof(struct crab_config_agent),
	init_agent, NULL};

void cfg_parse_agents(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val)
{
	struct crab_config *cfg = base;

	ld->agents_key = key;
	ld->agents_broken = parse_list(ld, &agent_kind, key, val, &cfg->agents, &cfg->nagents,
	    &ld->agent_at) != 0;
}

/* ---- tenants and their identities ---- */

#define ID(member, key, type, ...) \
	FIELD(struct crab_config_identity, member, key, type, TOP, __VA_ARGS__)

static const struct field identity_fields[] = {
	ID(platform, "platform", F_STRING, .flags = FL_REQUIRED),
	ID(actors, "actors", F_STRINGS, .flags = FL_NONEMPTY,
	    .count_offset = offsetof(struct crab_config_identity, nactors)),
	ID(channels, "channels", F_STRINGS, .flags = FL_NONEMPTY,
	    .count_offset = offsetof(struct crab_config_identity, nchannels)),
};

static const struct table identity_table = {"tenants.identities", identity_fields,
	CRAB_ARRAY_LEN(identity_fields), 0};

static void claim(struct loader *ld, enum claim_kind kind, const char *platform,
    const char *value, struct fy_node *at)
{
	struct claim *c;

	ld->claims = xrealloc(ld->claims, (ld->nclaims + 1) * sizeof(*ld->claims));
	c = &ld->claims[ld->nclaims++];
	c->kind = kind;
	c->platform = platform;
	c->value = value;
	c->tenant = ld->cfg->ntenants; /* the tenant being read: counted once it is done */
	c->at = at;
}

/* The items of list node seq that were stored (the single values), in order, as claims. */
static void claim_list(struct loader *ld, enum claim_kind kind, const char *platform,
    char **values, size_t nvalues, struct fy_node *seq)
{
	struct fy_node *item;
	void *iter = NULL;
	size_t k = 0;

	if (seq == NULL || fy_node_get_type(seq) != FYNT_SEQUENCE)
		return;
	while (k < nvalues && (item = fy_node_sequence_iterate(seq, &iter)) != NULL) {
		char *text = cfg_scalar_dup(item);
		if (text != NULL)
			claim(ld, kind, platform, values[k++], item);
		free(text);
	}
}

static void finish_identity(struct loader *ld, void *entry, struct fy_node *item,
    struct fy_node **at)
{
	struct crab_config_identity *id = entry;
	struct fy_node *actors = cfg_at(&identity_table, at, "actors");
	struct fy_node *channels = cfg_at(&identity_table, at, "channels");

	(void)item;
	if (id->platform == NULL)
		return;
	claim_list(ld, CLAIM_ACTOR, id->platform, id->actors, id->nactors, actors);
	claim_list(ld, CLAIM_CHANNEL, id->platform, id->channels, id->nchannels, channels);
	if (actors == NULL && channels == NULL)
		claim(ld, CLAIM_PLATFORM, id->platform, NULL, cfg_at(&identity_table, at, "platform"));
}

static const struct list_kind identity_kind = {&identity_table,
	sizeof(struct crab_config_identity), NULL, finish_identity};

static void parse_identities(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	struct crab_config_tenant *t = base;

	(void)parse_list(ld, &identity_kind, key, val, &t->identities, &t->nidentities, NULL);
}

static const struct field tenant_fields[] = {
	FIELD(struct crab_config_tenant, id, "id", F_ID, TOP, .flags = FL_REQUIRED),
	CUSTOM("identities", TOP, parse_identities),
};

const struct table cfg_tenant_table = {"tenants", tenant_fields, CRAB_ARRAY_LEN(tenant_fields), 0};

static const struct list_kind tenant_kind = {&cfg_tenant_table,
	sizeof(struct crab_config_tenant), NULL, NULL};

void cfg_parse_tenants(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val)
{
	struct crab_config *cfg = base;

	ld->tenants_broken = parse_list(ld, &tenant_kind, key, val, &cfg->tenants,
	    &cfg->ntenants, &ld->tenant_at) != 0;
}

/* ---- routes ---- */

enum { RT_MATCH };

#define RT(member, key, type, parent, ...) \
	FIELD(struct crab_config_route, member, key, type, parent, __VA_ARGS__)

static const struct field route_fields[] = {
	[RT_MATCH] = GROUP("match", TOP),
	RT(platform, "platform", F_STRING, RT_MATCH),
	RT(channel_id, "channel_id", F_STRING, RT_MATCH),
	RT(actor_id, "actor_id", F_STRING, RT_MATCH),
	RT(tenant, "tenant", F_STRING, RT_MATCH),
	RT(agent, "agent", F_STRING, TOP, .flags = FL_REQUIRED),
	RT(isolation_key, "isolation_key", F_TEMPLATE, TOP),
};

const struct table cfg_route_table = {"routes", route_fields, CRAB_ARRAY_LEN(route_fields), 0};

static const struct list_kind route_kind = {&cfg_route_table, sizeof(struct crab_config_route),
	NULL, NULL};

void cfg_parse_routes(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val)
{
	struct crab_config *cfg = base;

	(void)parse_list(ld, &route_kind, key, val, &cfg->routes, &cfg->nroutes, &ld->route_at);
}

/* ---- subscribers ---- */

#define SUB(member, key, type, ...) \
	FIELD(struct crab_config_subscriber, member, key, type, TOP, __VA_ARGS__)

static const struct field subscriber_fields[] = {
	SUB(component, "component", F_ID, .flags = FL_REQUIRED),
	SUB(types, "types", F_STRINGS, .flags = FL_NONEMPTY,
	    .count_offset = offsetof(struct crab_config_subscriber, ntypes)),
	SUB(tenants, "tenants", F_STRINGS, .flags = FL_NONEMPTY,
	    .count_offset = offsetof(struct crab_config_subscriber, ntenants)),
};

static const struct table subscriber_table = {"subscribers", subscriber_fields,
	CRAB_ARRAY_LEN(subscriber_fields), 0};

static const struct list_kind subscriber_kind = {&subscriber_table,
	sizeof(struct crab_config_subscriber), NULL, NULL};

void cfg_parse_subscribers(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	struct crab_config *cfg = base;

	(void)parse_list(ld, &subscriber_kind, key, val, &cfg->subscribers, &cfg->nsubscribers,
	    NULL);
}

/* ---- defaults, lookups, free ---- */

/* Without an agents section, an old minimal config keeps working: the built-in echo
 * model (unless models names one "echo") and one agent, gateway.default_agent, on it.
 * Their rows of nodes stay empty: nothing in them can be wrong. */
void cfg_agents_defaults(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;
	struct crab_config_agent *a;

	if (ld->agents_key != NULL)
		return;
	if (crab_config_model_find(cfg, "echo") == NULL) {
		struct crab_config_model *m;

		cfg_at_grow(&ld->model_at, cfg->nmodels, &cfg_model_table);
		cfg->models = xrealloc(cfg->models, (cfg->nmodels + 1) * sizeof(*cfg->models));
		m = &cfg->models[cfg->nmodels++];
		memset(m, 0, sizeof(*m));
		m->id = xstrdup("echo");
		m->adapter = xstrdup("echo");
		m->model = xstrdup("echo");
		m->config = json_pack("{ssss}", "id", "echo", "adapter", "echo");
	}
	cfg_at_grow(&ld->agent_at, cfg->nagents, &cfg_agent_table);
	cfg->agents = xrealloc(cfg->agents, (cfg->nagents + 1) * sizeof(*cfg->agents));
	a = &cfg->agents[cfg->nagents++];
	memset(a, 0, sizeof(*a));
	init_agent(a);
	a->id = xstrdup(cfg->default_agent);
	a->model = xstrdup("echo");
}

const struct crab_config_model *crab_config_model_find(const struct crab_config *cfg,
    const char *id)
{
	for (size_t i = 0; id != NULL && i < cfg->nmodels; i++) {
		if (cfg->models[i].id != NULL && strcmp(cfg->models[i].id, id) == 0)
			return &cfg->models[i];
	}
	return NULL;
}

const struct crab_config_agent *crab_config_agent_find(const struct crab_config *cfg,
    const char *id)
{
	for (size_t i = 0; id != NULL && i < cfg->nagents; i++) {
		if (cfg->agents[i].id != NULL && strcmp(cfg->agents[i].id, id) == 0)
			return &cfg->agents[i];
	}
	return NULL;
}

const struct crab_config_tenant *crab_config_tenant_find(const struct crab_config *cfg,
    const char *id)
{
	for (size_t i = 0; id != NULL && i < cfg->ntenants; i++) {
		if (cfg->tenants[i].id != NULL && strcmp(cfg->tenants[i].id, id) == 0)
			return &cfg->tenants[i];
	}
	return NULL;
}

static void free_strings(char **s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i]);
	free(s);
}

void cfg_agents_free(struct crab_config *cfg)
{
	for (size_t i = 0; i < cfg->nmodels; i++) {
		free(cfg->models[i].id);
		free(cfg->models[i].adapter);
		free(cfg->models[i].model);
		json_decref(cfg->models[i].config);
	}
	free(cfg->models);
	for (size_t i = 0; i < cfg->nagents; i++) {
		struct crab_config_agent *a = &cfg->agents[i];
		free(a->id);
		free(a->model);
		free(a->context_global);
		free(a->context_platform);
		free(a->context_channel);
		free(a->context_actor);
		free_strings(a->tools_allow, a->ntools_allow);
		free_strings(a->tools_deny, a->ntools_deny);
		free_strings(a->policy_tools, a->npolicy_tools);
		free_strings(a->policy_paths, a->npolicy_paths);
	}
	free(cfg->agents);
	for (size_t i = 0; i < cfg->ntenants; i++) {
		struct crab_config_tenant *t = &cfg->tenants[i];
		for (size_t j = 0; j < t->nidentities; j++) {
			free(t->identities[j].platform);
			free_strings(t->identities[j].actors, t->identities[j].nactors);
			free_strings(t->identities[j].channels, t->identities[j].nchannels);
		}
		free(t->identities);
		free(t->id);
	}
	free(cfg->tenants);
	for (size_t i = 0; i < cfg->nroutes; i++) {
		struct crab_config_route *r = &cfg->routes[i];
		free(r->platform);
		free(r->channel_id);
		free(r->actor_id);
		free(r->tenant);
		free(r->agent);
		free(r->isolation_key);
	}
	free(cfg->routes);
	for (size_t i = 0; i < cfg->nsubscribers; i++) {
		free(cfg->subscribers[i].component);
		free_strings(cfg->subscribers[i].types, cfg->subscribers[i].ntypes);
		free_strings(cfg->subscribers[i].tenants, cfg->subscribers[i].ntenants);
	}
	free(cfg->subscribers);
}

const struct crab_config_subscriber *crab_config_subscriber_find(
    const struct crab_config *cfg, const char *component)
{
	for (size_t i = 0; component != NULL && i < cfg->nsubscribers; i++) {
		if (cfg->subscribers[i].component != NULL &&
		    strcmp(cfg->subscribers[i].component, component) == 0)
			return &cfg->subscribers[i];
	}
	return NULL;
}
