/* config.c: YAML (libfyaml) to struct crab_config through tables of known keys, so
 * unknown keys, wrong types and out-of-range numbers are all reported with positions. */
#include "config.h"

#include <libfyaml.h>
#include <limits.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

enum field_type { F_STRING, F_INT, F_BOOL };

struct field {
	const char *name;
	enum field_type type;
	size_t offset;
	int64_t min, max;
};

struct section {
	const char *name;
	const struct field *fields;
	size_t nfields;
};

#define STR(section, member) {#member, F_STRING, offsetof(struct crab_config, section member), 0, 0}
#define INT(section, member, lo, hi) {#member, F_INT, offsetof(struct crab_config, section member), lo, hi}
#define BOOL(section, member) {#member, F_BOOL, offsetof(struct crab_config, section member), 0, 1}

static const struct field gateway_fields[] = {
	STR(, listen),
	STR(, data_dir),
	STR(, admin_socket),
	STR(, default_agent),
	BOOL(, insecure_plaintext),
};
static const struct field store_fields[] = {
	STR(store., driver),
	STR(store., path),
	STR(store., dsn_env),
	STR(store., dsn_file),
};
static const struct field limits_fields[] = {
	INT(limits., max_body_bytes, 1024, 64 << 20),
	INT(limits., max_header_bytes, 1024, 1 << 20),
	INT(limits., idle_timeout_s, 1, 86400),
	INT(limits., max_connections, 16, 1000000),
	INT(limits., rate_per_second, 0, 10000000),
	INT(limits., rate_burst, 1, 10000000),
};
static const struct field retention_fields[] = {
	INT(retention., idempotency_days, 7, 3650),
	INT(retention., interval_s, 1, 86400),
};
static const struct field log_fields[] = {
	{"level", F_STRING, offsetof(struct crab_config, log_level), 0, 0},
};

#define SECTION(name, fields) {name, fields, CRAB_ARRAY_LEN(fields)}
static const struct section sections[] = {
	SECTION("gateway", gateway_fields),
	SECTION("store", store_fields),
	SECTION("limits", limits_fields),
	SECTION("retention", retention_fields),
	SECTION("log", log_fields),
};

struct loader {
	const char *path;
	FILE *errf;
	int errors;
	struct crab_config *cfg;
};

static void report(struct loader *ld, struct fy_node *at, const char *fmt, const char *a,
    const char *b)
{
	struct fy_token *tok = at ? fy_node_get_scalar_token(at) : NULL;
	const struct fy_mark *m = tok ? fy_token_start_mark(tok) : NULL;

	fprintf(ld->errf, "%s:%d:%d: ", ld->path, m ? m->line + 1 : 1, m ? m->column + 1 : 1);
	fprintf(ld->errf, fmt, a, b);
	fputc('\n', ld->errf);
	ld->errors++;
}

static char *scalar_dup(struct fy_node *n)
{
	size_t len;
	const char *s = fy_node_get_scalar(n, &len);
	return s ? xstrndup(s, len) : NULL;
}

static void set_field(struct loader *ld, const struct field *f, struct fy_node *key,
    struct fy_node *val)
{
	char *base = (char *)ld->cfg + f->offset;
	char *text;
	int64_t v;

	if (fy_node_get_type(val) != FYNT_SCALAR) {
		report(ld, key, "'%s' must be a single value%s", f->name, "");
		return;
	}
	text = scalar_dup(val);
	switch (f->type) {
	case F_STRING:
		free(*(char **)base);
		*(char **)base = text;
		return;
	case F_INT:
		if (crab_parse_int64(text, f->min, f->max, &v) != 0) {
			char range[64];
			snprintf(range, sizeof(range), "%lld to %lld", (long long)f->min,
			    (long long)f->max);
			report(ld, val, "'%s' must be a whole number from %s", f->name, range);
		} else {
			*(int64_t *)base = v;
		}
		break;
	case F_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
			*(int *)base = strcmp(text, "true") == 0;
		else
			report(ld, val, "'%s' must be true or false, not '%s'", f->name, text);
		break;
	}
	free(text);
}

static void load_section(struct loader *ld, const struct section *sec, struct fy_node *map,
    struct fy_node *at)
{
	struct fy_node_pair *pair;
	void *iter = NULL;

	if (fy_node_get_type(map) != FYNT_MAPPING) {
		report(ld, at, "'%s' must be a mapping%s", sec->name, "");
		return;
	}
	while ((pair = fy_node_mapping_iterate(map, &iter)) != NULL) {
		struct fy_node *key = fy_node_pair_key(pair), *val = fy_node_pair_value(pair);
		char *name = scalar_dup(key);
		size_t i;

		for (i = 0; name && i < sec->nfields; i++) {
			if (strcmp(sec->fields[i].name, name) == 0)
				break;
		}
		if (name == NULL || i == sec->nfields)
			report(ld, key, "unknown key '%s' in '%s'", name ? name : "?", sec->name);
		else
			set_field(ld, &sec->fields[i], key, val);
		free(name);
	}
}

/* A YAML node as JSON: mappings, sequences, and scalars as strings, except plain
 * scalars that read as integers or booleans. Modules get their config this way. */
static json_t *yaml_to_json(struct fy_node *n)
{
	struct fy_node_pair *pair;
	struct fy_node *item;
	void *iter = NULL;
	json_t *out;
	char *text;
	int64_t v;

	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING:
		out = json_object();
		while ((pair = fy_node_mapping_iterate(n, &iter)) != NULL) {
			char *key = scalar_dup(fy_node_pair_key(pair));
			if (key != NULL)
				json_object_set_new(out, key, yaml_to_json(fy_node_pair_value(pair)));
			free(key);
		}
		return out;
	case FYNT_SEQUENCE:
		out = json_array();
		while ((item = fy_node_sequence_iterate(n, &iter)) != NULL)
			json_array_append_new(out, yaml_to_json(item));
		return out;
	default:
		if ((text = scalar_dup(n)) == NULL)
			return json_null();
		if (fy_node_get_style(n) == FYNS_PLAIN) {
			if (crab_parse_int64(text, INT64_MIN, INT64_MAX, &v) == 0)
				out = json_integer(v);
			else if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
				out = json_boolean(text[0] == 't');
			else
				out = json_string(text);
		} else {
			out = json_string(text);
		}
		free(text);
		return out ? out : json_null();
	}
}

/* One modules.load entry: "path.so" or {path, required, config}. */
static void load_module_entry(struct loader *ld, struct fy_node *n)
{
	struct crab_config *cfg = ld->cfg;
	struct crab_config_module *m;
	struct fy_node *path = n, *req = NULL, *conf = NULL;
	struct fy_node_pair *pair;
	void *iter = NULL;
	char *text;

	if (fy_node_get_type(n) == FYNT_MAPPING) {
		path = NULL;
		while ((pair = fy_node_mapping_iterate(n, &iter)) != NULL) {
			struct fy_node *key = fy_node_pair_key(pair);
			char *name = scalar_dup(key);
			if (name != NULL && strcmp(name, "path") == 0)
				path = fy_node_pair_value(pair);
			else if (name != NULL && strcmp(name, "required") == 0)
				req = fy_node_pair_value(pair);
			else if (name != NULL && strcmp(name, "config") == 0)
				conf = fy_node_pair_value(pair);
			else
				report(ld, key, "unknown key '%s' in a modules.load entry%s",
				    name ? name : "?", "");
			free(name);
		}
	}
	if (path == NULL || fy_node_get_type(path) != FYNT_SCALAR) {
		report(ld, n, "a modules.load entry needs a path%s%s", "", "");
		return;
	}
	cfg->modules = xrealloc(cfg->modules, (cfg->nmodules + 1) * sizeof(*cfg->modules));
	m = &cfg->modules[cfg->nmodules++];
	text = scalar_dup(path);
	m->path = crab_config_resolve(cfg, text);
	free(text);
	m->required = 0;
	if (req != NULL) {
		text = scalar_dup(req);
		if (text != NULL && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0))
			m->required = text[0] == 't';
		else
			report(ld, req, "'required' must be true or false, not '%s'%s", text ? text : "?", "");
		free(text);
	}
	m->config = conf != NULL ? yaml_to_json(conf) : json_object();
	if (!json_is_object(m->config))
		report(ld, conf, "a module's config must be a mapping%s%s", "", "");
}

static void load_modules(struct loader *ld, struct fy_node *map, struct fy_node *at)
{
	struct fy_node_pair *pair;
	void *iter = NULL;

	if (fy_node_get_type(map) != FYNT_MAPPING) {
		report(ld, at, "'modules' must be a mapping%s%s", "", "");
		return;
	}
	while ((pair = fy_node_mapping_iterate(map, &iter)) != NULL) {
		struct fy_node *key = fy_node_pair_key(pair), *val = fy_node_pair_value(pair);
		char *name = scalar_dup(key);
		struct fy_node *item;
		void *it = NULL;

		if (name == NULL || strcmp(name, "load") != 0)
			report(ld, key, "unknown key '%s' in 'modules'%s", name ? name : "?", "");
		else if (fy_node_get_type(val) != FYNT_SEQUENCE)
			report(ld, key, "'modules.load' must be a list%s%s", "", "");
		else
			while ((item = fy_node_sequence_iterate(val, &it)) != NULL)
				load_module_entry(ld, item);
		free(name);
	}
}

static void set_defaults(struct crab_config *cfg)
{
	cfg->listen = xstrdup("127.0.0.1:8640");
	cfg->data_dir = xstrdup("crab-data");
	cfg->default_agent = xstrdup("assistant");
	cfg->log_level = xstrdup("info");
	cfg->store.driver = xstrdup("sqlite");
	cfg->store.path = xstrdup("crab.db");
	cfg->limits.max_body_bytes = 1 << 20;
	cfg->limits.max_header_bytes = 16 << 10;
	cfg->limits.idle_timeout_s = 60;
	cfg->limits.max_connections = 4096;
	cfg->limits.rate_per_second = 1000;
	cfg->limits.rate_burst = 2000;
	cfg->retention.idempotency_days = 7;
	cfg->retention.interval_s = 3600;
}

static void check_semantics(struct loader *ld, struct fy_node *root)
{
	struct crab_config *cfg = ld->cfg;
	enum crab_log_level level;
	struct fy_node *store = fy_node_mapping_lookup_by_string(root, "store", -1);
	struct fy_node *at = store ? fy_node_mapping_lookup_by_string(store, "driver", -1) : NULL;
	const char *colon = strrchr(cfg->listen, ':');

	if (strcmp(cfg->store.driver, "sqlite") != 0 && strcmp(cfg->store.driver, "postgres") != 0)
		report(ld, at, "store driver must be sqlite or postgres, not '%s'%s",
		    cfg->store.driver, "");
	if (strcmp(cfg->store.driver, "postgres") == 0 &&
	    (cfg->store.dsn_env == NULL) == (cfg->store.dsn_file == NULL))
		report(ld, at, "the postgres driver needs exactly one of %s and %s", "dsn_env",
		    "dsn_file");
	if (colon == NULL || colon == cfg->listen || colon[1] == '\0')
		report(ld, NULL, "gateway listen '%s' must be host:port%s", cfg->listen, "");
	if (cfg->limits.rate_burst < cfg->limits.rate_per_second)
		report(ld, NULL, "limits rate_burst must be at least rate_per_second%s%s", "", "");
	if (log_level_parse(cfg->log_level, &level) != 0)
		report(ld, NULL, "log level must be debug, info, warn or error, not '%s'%s",
		    cfg->log_level, "");
}

struct crab_config *crab_config_load(const char *path, FILE *errf)
{
	struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG};
	struct loader ld = {.path = path, .errf = errf};
	struct fy_document *doc = NULL;
	struct fy_diag_cfg dcfg;
	struct fy_diag *diag = NULL;
	struct fy_node *root;
	struct fy_node_pair *pair;
	void *iter = NULL;
	FILE *f;

	/* Read through our own bounded check first: a config is small, a huge file is a mistake. */
	if ((f = fopen(path, "re")) == NULL) {
		fprintf(errf, "%s: cannot open: %m\n", path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	if (ftell(f) > (1 << 20)) {
		fprintf(errf, "%s: larger than 1 MiB, refusing to parse\n", path);
		fclose(f);
		return NULL;
	}
	fclose(f);

	ld.cfg = xcalloc(1, sizeof(*ld.cfg));
	ld.cfg->path = xstrdup(path);
	set_defaults(ld.cfg);
	fy_diag_cfg_default(&dcfg);
	diag = fy_diag_create(&dcfg);
	fy_diag_set_collect_errors(diag, true);
	pcfg.diag = diag;
	doc = fy_document_build_from_file(&pcfg, path);
	if (doc == NULL) {
		/* Syntax errors were collected with their positions instead of printed. */
		struct fy_diag_error *de;
		void *it = NULL;
		/* libfyaml's collected positions are 1-based already. */
		while ((de = fy_diag_errors_iterate(diag, &it)) != NULL)
			fprintf(errf, "%s:%d:%d: %s\n", path, de->line, de->column, de->msg);
		fprintf(errf, "%s: not valid YAML\n", path);
		goto fail;
	}
	root = fy_document_root(doc);
	if (root == NULL || fy_node_get_type(root) != FYNT_MAPPING) {
		fprintf(errf, "%s:1:1: the configuration must be a mapping\n", path);
		goto fail;
	}
	while ((pair = fy_node_mapping_iterate(root, &iter)) != NULL) {
		struct fy_node *key = fy_node_pair_key(pair);
		char *name = scalar_dup(key);
		size_t i;

		for (i = 0; name && i < CRAB_ARRAY_LEN(sections); i++) {
			if (strcmp(sections[i].name, name) == 0)
				break;
		}
		if (name != NULL && strcmp(name, "modules") == 0)
			load_modules(&ld, fy_node_pair_value(pair), key);
		else if (name == NULL || i == CRAB_ARRAY_LEN(sections))
			report(&ld, key, "unknown section '%s'%s", name ? name : "?", "");
		else
			load_section(&ld, &sections[i], fy_node_pair_value(pair), key);
		free(name);
	}
	check_semantics(&ld, root);
	if (ld.errors > 0)
		goto fail;
	if (ld.cfg->admin_socket == NULL) {
		char *dir = crab_config_resolve(ld.cfg, ld.cfg->data_dir);
		size_t n = strlen(dir) + sizeof("/admin.sock");
		ld.cfg->admin_socket = xmalloc(n);
		snprintf(ld.cfg->admin_socket, n, "%s/admin.sock", dir);
		free(dir);
	}
	fy_document_destroy(doc);
	fy_diag_unref(diag);
	return ld.cfg;
fail:
	if (doc != NULL)
		fy_document_destroy(doc);
	if (diag != NULL) {
		/* Turning collection off frees the collected errors; unref alone leaks them. */
		fy_diag_set_collect_errors(diag, false);
		fy_diag_unref(diag);
	}
	crab_config_free(ld.cfg);
	return NULL;
}

char *crab_config_resolve(const struct crab_config *cfg, const char *path)
{
	const char *slash = strrchr(cfg->path, '/');
	size_t dirlen, n;
	char *out;

	if (path[0] == '/' || slash == NULL)
		return xstrdup(path);
	dirlen = (size_t)(slash - cfg->path);
	n = dirlen + 1 + strlen(path) + 1;
	out = xmalloc(n);
	snprintf(out, n, "%.*s/%s", (int)dirlen, cfg->path, path);
	return out;
}

void crab_config_free(struct crab_config *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->path);
	free(cfg->listen);
	free(cfg->data_dir);
	free(cfg->admin_socket);
	free(cfg->default_agent);
	free(cfg->log_level);
	free(cfg->store.driver);
	free(cfg->store.path);
	free(cfg->store.dsn_env);
	free(cfg->store.dsn_file);
	for (size_t i = 0; i < cfg->nmodules; i++) {
		free(cfg->modules[i].path);
		json_decref(cfg->modules[i].config);
	}
	free(cfg->modules);
	free(cfg);
}
