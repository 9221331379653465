/* config_auth.c: a models: entry's `auth:` mapping (crab.yaml(5) AUTH, core/auth.h),
 * checked where it is written: its keys through a table like every other mapping, the
 * keys each kind needs, http(s) URLs, header names and values; and across entries, one
 * provider with one set of settings. The core reads the mapping back from the entry's
 * JSON; nothing here has a default endpoint or client id. */
#include "config_parse.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

enum { KIND_OAUTH, KIND_EXCHANGE, KIND_API_KEY };

static const char *const kinds[] = {"oauth", "token_exchange", "api_key", NULL};
static const char *const bodies[] = {"form", "json", NULL};

struct auth_cfg {
	int kind, body;
	char *provider, *authorize_url, *token_url, *revoke_url, *device_code_url;
	char *exchange_url, *client_id, *redirect_uri, *key_env, *key_file;
	char **scopes;
	size_t nscopes;
	int64_t margin_s, timeout_s;
};

static void parse_headers(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val);
static void parse_params(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val);

#define A(member, key, type, ...) FIELD(struct auth_cfg, member, key, type, TOP, __VA_ARGS__)

static const struct field auth_fields[] = {
	A(kind, "kind", F_ENUM, .flags = FL_REQUIRED, .choices = kinds),
	A(provider, "provider", F_ID),
	A(authorize_url, "authorize_url", F_STRING),
	A(token_url, "token_url", F_STRING),
	A(revoke_url, "revoke_url", F_STRING),
	A(device_code_url, "device_code_url", F_STRING),
	A(exchange_url, "exchange_url", F_STRING),
	A(client_id, "client_id", F_STRING),
	A(redirect_uri, "redirect_uri", F_STRING),
	A(scopes, "scopes", F_STRINGS, .count_offset = offsetof(struct auth_cfg, nscopes)),
	A(body, "token_body", F_ENUM, .choices = bodies),
	A(margin_s, "refresh_margin_s", F_INT, .min = 0, .max = 86400),
	A(timeout_s, "timeout_s", F_INT, .min = 1, .max = 300),
	A(key_env, "key_env", F_STRING),
	A(key_file, "key_file", F_STRING),
	CUSTOM("headers", TOP, parse_headers),
	CUSTOM("exchange_headers", TOP, parse_headers),
	CUSTOM("authorize_params", TOP, parse_params),
};

static const struct table auth_table = {"auth", auth_fields, CRAB_ARRAY_LEN(auth_fields), 0};

/* A header name: an HTTP token. */
static int header_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128)
		return 0;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
			(*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
			return 0;
	}
	return 1;
}

static int printable(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return 0;
	}
	return n <= max;
}

/* headers, exchange_headers: a mapping of header names to single values. */
static void parse_headers(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	struct fy_node_pair *pair;
	void *iter = NULL;
	char *name = cfg_scalar_dup(key);

	(void)base;
	if (val != NULL && fy_node_get_type(val) != FYNT_MAPPING) {
		cfg_report(ld, key, "'%s' must be a mapping of header names to values",
		    name ? name : "headers");
		free(name);
		return;
	}
	while (val != NULL && (pair = fy_node_mapping_iterate(val, &iter)) != NULL) {
		char *h = cfg_scalar_dup(fy_node_pair_key(pair));
		char *v = cfg_scalar_dup(fy_node_pair_value(pair));

		if (h == NULL || !header_name_ok(h))
			cfg_report(ld, fy_node_pair_key(pair), "'%s': '%.64s' is no header name",
			    name, h ? h : "");
		else if (v == NULL || fy_node_get_type(fy_node_pair_value(pair)) != FYNT_SCALAR)
			cfg_report(ld, fy_node_pair_key(pair), "'%s': header '%.64s' needs a single "
			    "value", name, h);
		else if (!printable(v, 4096))
			cfg_report(ld, fy_node_pair_value(pair), "'%s': header '%.64s' holds a control "
			    "character or is too long", name, h);
		else if (strcasecmp(h, "content-type") == 0 || strcasecmp(h, "content-length") == 0)
			cfg_report(ld, fy_node_pair_key(pair), "'%s': '%s' is set by the gateway "
			    "(token_body says the format)", name, h);
		free(h);
		free(v);
	}
	free(name);
}

/* authorize_params: extra query parameters of the authorize URL, single values. */
static void parse_params(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	static const char *const own[] = {"client_id", "response_type", "redirect_uri", "scope",
		"code_challenge", "code_challenge_method", "state"};
	struct fy_node_pair *pair;
	void *iter = NULL;

	(void)base;
	if (val != NULL && fy_node_get_type(val) != FYNT_MAPPING) {
		cfg_report(ld, key, "'authorize_params' must be a mapping of names to values");
		return;
	}
	while (val != NULL && (pair = fy_node_mapping_iterate(val, &iter)) != NULL) {
		char *p = cfg_scalar_dup(fy_node_pair_key(pair));
		char *v = cfg_scalar_dup(fy_node_pair_value(pair));

		if (p == NULL || !printable(p, 128) || p[0] == '\0')
			cfg_report(ld, fy_node_pair_key(pair), "'authorize_params': a name must be "
			    "text");
		else if (v == NULL || !printable(v, 1024))
			cfg_report(ld, fy_node_pair_key(pair), "'authorize_params': '%.64s' needs a "
			    "single value", p);
		for (size_t i = 0; p != NULL && i < CRAB_ARRAY_LEN(own); i++) {
			if (strcmp(p, own[i]) == 0)
				cfg_report(ld, fy_node_pair_key(pair), "'authorize_params': '%s' is set "
				    "by the gateway from the other keys", p);
		}
		free(p);
		free(v);
	}
}

static void check_url(struct loader *ld, struct fy_node **at, const char *key, const char *url)
{
	if (url == NULL)
		return;
	if ((strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) ||
	    strlen(url) <= 8 || strchr(url, ' ') != NULL || !printable(url, 2048))
		cfg_report(ld, cfg_at(&auth_table, at, key), "'%s' must be an http:// or "
		    "https:// URL", key);
}

static void need(struct loader *ld, struct fy_node *map, struct fy_node **at, const char *key,
    const char *kind)
{
	if (cfg_at(&auth_table, at, key) == NULL)
		cfg_report(ld, map, "missing key '%s' in 'auth' (kind %s needs it)", key, kind);
}

static void unused(struct loader *ld, struct fy_node **at, const char *key, const char *kind)
{
	struct fy_node *n = cfg_at(&auth_table, at, key);

	if (n != NULL)
		cfg_report(ld, n, "'%s' is not used with kind %s", key, kind);
}

static void check_kind(struct loader *ld, struct auth_cfg *c, struct fy_node *map,
    struct fy_node **at)
{
	static const char *const oauth_only[] = {"authorize_url", "redirect_uri",
		"authorize_params"};
	static const char *const login[] = {"provider", "authorize_url", "token_url",
		"revoke_url", "device_code_url", "exchange_url", "client_id", "redirect_uri",
		"scopes", "token_body", "refresh_margin_s", "timeout_s", "headers",
		"exchange_headers", "authorize_params"};
	const char *kind = kinds[c->kind];

	switch (c->kind) {
	case KIND_OAUTH:
		need(ld, map, at, "provider", kind);
		need(ld, map, at, "token_url", kind);
		need(ld, map, at, "client_id", kind);
		if (c->device_code_url == NULL) {
			need(ld, map, at, "authorize_url", kind);
			need(ld, map, at, "redirect_uri", kind);
		}
		unused(ld, at, "exchange_url", kind);
		unused(ld, at, "exchange_headers", kind);
		unused(ld, at, "key_env", kind);
		unused(ld, at, "key_file", kind);
		break;
	case KIND_EXCHANGE:
		need(ld, map, at, "provider", kind);
		need(ld, map, at, "device_code_url", kind);
		need(ld, map, at, "token_url", kind);
		need(ld, map, at, "client_id", kind);
		need(ld, map, at, "exchange_url", kind);
		for (size_t i = 0; i < CRAB_ARRAY_LEN(oauth_only); i++)
			unused(ld, at, oauth_only[i], kind);
		unused(ld, at, "key_env", kind);
		unused(ld, at, "key_file", kind);
		break;
	default:
		if ((c->key_env == NULL) == (c->key_file == NULL))
			cfg_report(ld, map, "'auth' of kind api_key needs one of 'key_env' (an "
			    "environment variable) or 'key_file'");
		for (size_t i = 0; i < CRAB_ARRAY_LEN(login); i++) {
			if (strcmp(login[i], "provider") != 0)
				unused(ld, at, login[i], kind);
		}
		break;
	}
	check_url(ld, at, "authorize_url", c->authorize_url);
	check_url(ld, at, "token_url", c->token_url);
	check_url(ld, at, "revoke_url", c->revoke_url);
	check_url(ld, at, "device_code_url", c->device_code_url);
	check_url(ld, at, "exchange_url", c->exchange_url);
	if (c->redirect_uri != NULL && (strchr(c->redirect_uri, ' ') != NULL ||
	    !printable(c->redirect_uri, 2048) || strstr(c->redirect_uri, "://") == NULL))
		cfg_report(ld, cfg_at(&auth_table, at, "redirect_uri"), "'redirect_uri' must be "
		    "an absolute URI");
	if (c->client_id != NULL && (c->client_id[0] == '\0' || !printable(c->client_id, 512)))
		cfg_report(ld, cfg_at(&auth_table, at, "client_id"), "'client_id' must be text "
		    "without control characters");
	for (size_t i = 0; i < c->nscopes; i++) {
		if (c->scopes[i][0] == '\0' || strchr(c->scopes[i], ' ') != NULL ||
		    !printable(c->scopes[i], 256))
			cfg_report(ld, cfg_at(&auth_table, at, "scopes"), "each of 'scopes' is one "
			    "scope, without spaces");
	}
}

static void auth_cfg_release(struct auth_cfg *c)
{
	char **strs[] = {&c->provider, &c->authorize_url, &c->token_url, &c->revoke_url,
		&c->device_code_url, &c->exchange_url, &c->client_id, &c->redirect_uri,
		&c->key_env, &c->key_file};

	for (size_t i = 0; i < CRAB_ARRAY_LEN(strs); i++)
		free(*strs[i]);
	for (size_t i = 0; i < c->nscopes; i++)
		free(c->scopes[i]);
	free(c->scopes);
}

void cfg_parse_model_auth(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	struct fy_node *at[CRAB_ARRAY_LEN(auth_fields)] = {0};
	struct auth_cfg c = {.kind = -1};

	char *text = NULL;

	(void)base;
	if (val == NULL)
		return;
	if (fy_node_get_type(val) == FYNT_SCALAR && (text = cfg_scalar_dup(val)) == NULL)
		return; /* "auth:" with nothing: none */
	if (fy_node_get_type(val) != FYNT_MAPPING) {
		free(text);
		cfg_report(ld, key, "'auth' must be a mapping (kind: oauth, token_exchange or "
		    "api_key, and its keys)");
		return;
	}
	cfg_load_table(ld, &auth_table, &c, val, at);
	if (c.kind >= 0)
		check_kind(ld, &c, val, at);
	auth_cfg_release(&c);
}

/* One provider, one login: entries that share a provider must say the same of it. */
void cfg_check_auth(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;

	for (size_t i = 0; ld->model_at != NULL && i < cfg->nmodels; i++) {
		json_t *a = json_object_get(cfg->models[i].config, "auth");
		const char *p = json_string_value(json_object_get(a, "provider"));

		for (size_t j = 0; p != NULL && j < i; j++) {
			json_t *b = json_object_get(cfg->models[j].config, "auth");
			const char *q = json_string_value(json_object_get(b, "provider"));

			if (q == NULL || strcmp(p, q) != 0)
				continue;
			if (!json_equal(a, b))
				cfg_report(ld, cfg_at(&cfg_model_table,
				    ld->model_at + i * cfg_model_table.nfields, "auth"),
				    "model '%s': auth provider '%s' is set up differently in model "
				    "'%s' (line %d): entries sharing a provider share one login and "
				    "must say the same of it", cfg->models[i].id ? cfg->models[i].id : "?",
				    p, cfg->models[j].id ? cfg->models[j].id : "?",
				    cfg_node_line(cfg_at(&cfg_model_table,
					ld->model_at + j * cfg_model_table.nfields, "auth")));
			break;
		}
	}
}
