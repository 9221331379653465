/* config.c: loading crab.yaml(5): the file read once, parsed by libfyaml, then every
 * section read through one table of known keys (config_fields.c), then the checks
 * across sections (config_check.c). Every error is collected with its position and all
 * of them are printed; a file with any error yields no config. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config_parse.h"
#include "log.h"
#include "util.h"

#define MAX_CONFIG_BYTES (1 << 20)

static void parse_module_load(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val);

static const char *const unmapped_choices[] = {"route", "refuse", NULL}; /* index = refuse */
static const char *const tls_choices[] = {"auto", "on", "off", NULL}; /* CRAB_TLS_* */

/* The groups first, so that their keys can name them. */
enum { R_GATEWAY, R_STORE, R_LIMITS, R_RETENTION, R_LOG, R_MODULES, R_ROUTER, R_TURNS,
	R_CONFIG, R_SMOKE, R_SMOKE_ROUTE };

#define C(member, key, type, parent, ...) \
	FIELD(struct crab_config, member, key, type, parent, __VA_ARGS__)

static const struct field root_fields[] = {
	[R_GATEWAY] = GROUP("gateway", TOP),
	[R_STORE] = GROUP("store", TOP),
	[R_LIMITS] = GROUP("limits", TOP),
	[R_RETENTION] = GROUP("retention", TOP),
	[R_LOG] = GROUP("log", TOP),
	[R_MODULES] = GROUP("modules", TOP),
	[R_ROUTER] = GROUP("router", TOP),
	[R_TURNS] = GROUP("turns", TOP),
	[R_CONFIG] = GROUP("config", TOP),
	[R_SMOKE] = GROUP("smoke_test", R_CONFIG),
	[R_SMOKE_ROUTE] = GROUP("route", R_SMOKE),

	C(listen, "listen", F_STRING, R_GATEWAY),
	C(data_dir, "data_dir", F_STRING, R_GATEWAY),
	C(admin_socket, "admin_socket", F_STRING, R_GATEWAY),
	C(default_agent, "default_agent", F_STRING, R_GATEWAY),
	C(insecure_plaintext, "insecure_plaintext", F_BOOL, R_GATEWAY),
	C(tls, "tls", F_ENUM, R_GATEWAY, .choices = tls_choices),
	C(name, "name", F_STRING, R_GATEWAY),

	C(store.driver, "driver", F_STRING, R_STORE),
	C(store.path, "path", F_STRING, R_STORE),
	C(store.dsn_env, "dsn_env", F_STRING, R_STORE),
	C(store.dsn_file, "dsn_file", F_STRING, R_STORE),

	C(limits.max_body_bytes, "max_body_bytes", F_INT, R_LIMITS, .min = 1024, .max = 64 << 20),
	C(limits.max_header_bytes, "max_header_bytes", F_INT, R_LIMITS, .min = 1024, .max = 1 << 20),
	C(limits.idle_timeout_s, "idle_timeout_s", F_INT, R_LIMITS, .min = 1, .max = 86400),
	C(limits.max_connections, "max_connections", F_INT, R_LIMITS, .min = 16, .max = 1000000),
	C(limits.rate_per_second, "rate_per_second", F_INT, R_LIMITS, .min = 0, .max = 10000000),
	C(limits.rate_burst, "rate_burst", F_INT, R_LIMITS, .min = 1, .max = 10000000),

	C(retention.idempotency_days, "idempotency_days", F_INT, R_RETENTION, .min = 7, .max = 3650),
	C(retention.interval_s, "interval_s", F_INT, R_RETENTION, .min = 1, .max = 86400),

	C(log_level, "level", F_STRING, R_LOG),

	CUSTOM("load", R_MODULES, parse_module_load),

	CUSTOM("models", TOP, cfg_parse_models),
	CUSTOM("agents", TOP, cfg_parse_agents),
	CUSTOM("tenants", TOP, cfg_parse_tenants),
	CUSTOM("routes", TOP, cfg_parse_routes),
	CUSTOM("subscribers", TOP, cfg_parse_subscribers),

	C(router.refuse_unmapped, "unmapped_actors", F_ENUM, R_ROUTER, .choices = unmapped_choices),
	C(router.unmapped_tenant, "unmapped_tenant", F_STRING, R_ROUTER),

	C(turns.max_concurrent, "max_concurrent", F_INT, R_TURNS, .min = 1, .max = 10000),
	C(turns.model_timeout_s, "model_timeout_s", F_INT, R_TURNS, .min = 1, .max = 86400),
	C(turns.queue_max, "queue_max", F_INT, R_TURNS, .min = 16, .max = 1000000),

	C(smoke_test.model_ping, "model_ping", F_ID, R_SMOKE),
	C(smoke_test.route_platform, "platform", F_STRING, R_SMOKE_ROUTE),
	C(smoke_test.route_channel_id, "channel_id", F_STRING, R_SMOKE_ROUTE),
	C(smoke_test.route_actor_id, "actor_id", F_STRING, R_SMOKE_ROUTE),
};

static const struct table root_table = {NULL, root_fields, CRAB_ARRAY_LEN(root_fields), 0};

/* modules.load: each entry "path.so" or {path, required, config}. */
static void parse_module_config(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	struct crab_config_module *m = base;

	(void)key;
	json_decref(m->config);
	m->config = cfg_yaml_to_json(val);
	if (json_is_null(m->config)) {
		json_decref(m->config);
		m->config = json_object(); /* "config:" with nothing under it */
	} else if (!json_is_object(m->config)) {
		cfg_report(ld, val, "a module's config must be a mapping");
	}
}

static const struct field module_fields[] = {
	FIELD(struct crab_config_module, path, "path", F_STRING, TOP, .flags = FL_REQUIRED),
	FIELD(struct crab_config_module, required, "required", F_BOOL, TOP),
	CUSTOM("config", TOP, parse_module_config),
};

static const struct table module_table = {"modules.load", module_fields,
	CRAB_ARRAY_LEN(module_fields), 0};

static void parse_module_load(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val)
{
	struct crab_config *cfg = base;
	struct fy_node *item;
	void *iter = NULL;

	if (cfg_expect_list(ld, key, val, "modules.load") != 0)
		return;
	while (val != NULL && (item = fy_node_sequence_iterate(val, &iter)) != NULL) {
		struct fy_node *at[CRAB_ARRAY_LEN(module_fields)] = {0};
		struct crab_config_module *m;
		char *path;

		cfg->modules = xrealloc(cfg->modules, (cfg->nmodules + 1) * sizeof(*cfg->modules));
		m = &cfg->modules[cfg->nmodules++];
		memset(m, 0, sizeof(*m));
		if (fy_node_get_type(item) == FYNT_SCALAR) {
			if ((m->path = cfg_scalar_dup(item)) == NULL)
				cfg_report(ld, item, "a modules.load entry needs a path");
		} else {
			cfg_load_table(ld, &module_table, m, item, at);
		}
		if (m->config == NULL)
			m->config = json_object();
		if ((path = m->path) != NULL) {
			m->path = crab_config_resolve(cfg, path);
			free(path);
		}
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
	cfg->router.refuse_unmapped = 1;
	cfg->turns.max_concurrent = 64;
	cfg->turns.model_timeout_s = 300;
	cfg->turns.queue_max = 8192;
}

/* The gateway's own sections: values that are each well formed but do not fit. */
static void check_gateway(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;
	struct fy_node *driver = cfg_at(&root_table, ld->root_at, "store.driver");
	struct fy_node *listen = cfg_at(&root_table, ld->root_at, "gateway.listen");
	const char *colon = strrchr(cfg->listen, ':');
	enum crab_log_level level;

	if (strcmp(cfg->store.driver, "sqlite") != 0 && strcmp(cfg->store.driver, "postgres") != 0)
		cfg_report(ld, driver, "store driver must be sqlite or postgres, not '%s'",
		    cfg->store.driver);
	if (strcmp(cfg->store.driver, "postgres") == 0 &&
	    (cfg->store.dsn_env == NULL) == (cfg->store.dsn_file == NULL))
		cfg_report(ld, driver, "the postgres driver needs exactly one of dsn_env and dsn_file");
	if (colon == NULL || colon == cfg->listen || colon[1] == '\0')
		cfg_report(ld, listen, "gateway listen '%s' must be host:port", cfg->listen);
	if (cfg->limits.rate_burst < cfg->limits.rate_per_second)
		cfg_report(ld, cfg_at(&root_table, ld->root_at, "limits.rate_burst"),
		    "limits rate_burst must be at least rate_per_second");
	if (log_level_parse(cfg->log_level, &level) != 0)
		cfg_report(ld, cfg_at(&root_table, ld->root_at, "log.level"),
		    "log level must be debug, info, warn or error, not '%s'", cfg->log_level);
}

/* config.smoke_test: the model it pings must be one of models, and a route test needs
 * at least the platform the event would come from. */
static void check_smoke_test(struct loader *ld)
{
	struct crab_config *cfg = ld->cfg;
	struct fy_node *route = cfg_at(&root_table, ld->root_at, "config.smoke_test.route");
	struct fy_node *ping = cfg_at(&root_table, ld->root_at, "config.smoke_test.model_ping");

	if (cfg->smoke_test.model_ping != NULL && !ld->models_broken &&
	    crab_config_model_find(cfg, cfg->smoke_test.model_ping) == NULL)
		cfg_report(ld, ping, "smoke_test model_ping: no model named '%s' in 'models'",
		    cfg->smoke_test.model_ping);
	cfg->smoke_test.route = route != NULL;
	if (route != NULL && cfg->smoke_test.route_platform == NULL)
		cfg_report(ld, route, "smoke_test route needs a 'platform'");
}

/* The file's bytes, read once: what is parsed is what config_revisions records. */
static char *read_source(const char *path, size_t *len, FILE *errf)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (f == NULL) {
		fprintf(errf, "%s: cannot open: %m\n", path);
		return NULL;
	}
	buf = xmalloc(MAX_CONFIG_BYTES + 1);
	n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
	if (ferror(f)) {
		fprintf(errf, "%s: cannot read: %m\n", path);
		goto fail;
	}
	if (n > MAX_CONFIG_BYTES) {
		/* A config is small: a huge file is a mistake. */
		fprintf(errf, "%s: larger than 1 MiB, refusing to parse\n", path);
		goto fail;
	}
	fclose(f);
	buf = xrealloc(buf, n + 1);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

/* Loads text (NUL-terminated, len bytes, taken over) as the file path. */
static struct crab_config *load_text(const char *path, char *text, size_t len, FILE *errf,
    enum crab_config_stage *stage)
{
	struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG};
	struct loader ld = {.path = path};
	struct fy_document *doc = NULL;
	struct fy_diag_cfg dcfg;
	struct fy_diag *diag = NULL;
	struct fy_node *root;
	size_t schema_errors;

	*stage = CRAB_CONFIG_SYNTAX;
	ld.cfg = xcalloc(1, sizeof(*ld.cfg));
	ld.cfg->refs = 1;
	ld.cfg->path = xstrdup(path);
	ld.cfg->source_text = text;
	ld.cfg->source_len = len;
	ld.source = text;
	ld.source_len = len;
	set_defaults(ld.cfg);
	if (memchr(text, '\0', len) != NULL) {
		fprintf(errf, "%s: holds a NUL byte: a configuration is text\n", path);
		goto fail;
	}
	fy_diag_cfg_default(&dcfg);
	diag = fy_diag_create(&dcfg);
	fy_diag_set_collect_errors(diag, true);
	pcfg.diag = diag;
	doc = fy_document_build_from_string(&pcfg, text, len);
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
	ld.root = root;
	cfg_mark_collections(&ld, root);
	ld.root_at = xcalloc(root_table.nfields, sizeof(*ld.root_at));
	cfg_load_table(&ld, &root_table, ld.cfg, root, ld.root_at);
	cfg_agents_defaults(&ld);
	schema_errors = ld.nerrors;
	check_gateway(&ld);
	check_smoke_test(&ld);
	cfg_check(&ld, &root_table);
	*stage = schema_errors > 0 ? CRAB_CONFIG_SCHEMA : CRAB_CONFIG_SEMANTIC;
	if (cfg_flush_errors(&ld, errf) > 0)
		goto fail;
	*stage = CRAB_CONFIG_LOADED;
	if (ld.cfg->admin_socket == NULL) {
		char *dir = crab_config_resolve(ld.cfg, ld.cfg->data_dir);
		size_t n = strlen(dir) + sizeof("/admin.sock");
		ld.cfg->admin_socket = xmalloc(n);
		snprintf(ld.cfg->admin_socket, n, "%s/admin.sock", dir);
		free(dir);
	}
	goto done;
fail:
	crab_config_unref(ld.cfg);
	ld.cfg = NULL;
done:
	if (doc != NULL)
		fy_document_destroy(doc);
	if (diag != NULL) {
		/* Turning collection off frees the collected errors; unref alone leaks them. */
		fy_diag_set_collect_errors(diag, false);
		fy_diag_unref(diag);
	}
	free(ld.root_at);
	free(ld.model_at);
	free(ld.agent_at);
	free(ld.tenant_at);
	free(ld.route_at);
	free(ld.claims);
	free(ld.marks);
	return ld.cfg;
}

struct crab_config *crab_config_load(const char *path, FILE *errf)
{
	enum crab_config_stage stage;
	char *text;
	size_t len;

	if ((text = read_source(path, &len, errf)) == NULL)
		return NULL;
	return load_text(path, text, len, errf, &stage);
}

struct crab_config *crab_config_parse(const char *path, const char *text, size_t len,
    FILE *errf, enum crab_config_stage *stage)
{
	enum crab_config_stage ignored;
	char *copy;

	if (stage == NULL)
		stage = &ignored;
	if (len > MAX_CONFIG_BYTES) {
		*stage = CRAB_CONFIG_SYNTAX;
		fprintf(errf, "%s: larger than 1 MiB, refusing to parse\n", path);
		return NULL;
	}
	copy = xmalloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	return load_text(path, copy, len, errf, stage);
}

int crab_config_report(const struct crab_config *cfg, int line, int col, FILE *errf,
    const char *fmt, ...)
{
	va_list ap;

	fprintf(errf, "%s:%d:%d: ", cfg->path, line, col);
	va_start(ap, fmt);
	vfprintf(errf, fmt, ap);
	va_end(ap);
	fputc('\n', errf);
	return -1;
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

struct crab_config *crab_config_ref(struct crab_config *cfg)
{
	if (cfg != NULL)
		cfg->refs++;
	return cfg;
}

void crab_config_free(struct crab_config *cfg)
{
	crab_config_unref(cfg);
}

void crab_config_unref(struct crab_config *cfg)
{
	if (cfg == NULL || --cfg->refs > 0)
		return;
	free(cfg->path);
	free(cfg->listen);
	free(cfg->name);
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
	cfg_agents_free(cfg);
	free(cfg->router.unmapped_tenant);
	free(cfg->smoke_test.model_ping);
	free(cfg->smoke_test.route_platform);
	free(cfg->smoke_test.route_channel_id);
	free(cfg->smoke_test.route_actor_id);
	free(cfg->source_text);
	free(cfg);
}
