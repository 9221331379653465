/* config.h: the gateway's YAML configuration (crab.yaml(5)). Loading validates the whole
 * file and reports every error as "file:line:column: message"; a file with any error
 * yields no config at all, so a bad file never replaces a good running one. */
#ifndef CRAB_CONFIG_H
#define CRAB_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One entry of modules.load: a .so to load, and its own YAML node as JSON. */
struct crab_config_module {
	char *path;     /* resolved against the config file's directory */
	int required;   /* refusing it stops the role */
	json_t *config; /* the entry's config: node ({} when none) */
};

struct crab_config {
	char *path;          /* the file it came from */
	char *listen;        /* "host:port" of the public HTTP ingress */
	char *data_dir;      /* absolute or relative to the config file's directory */
	char *admin_socket;  /* default <data_dir>/admin.sock */
	char *default_agent; /* agent for events that name none, until routing decides */
	int insecure_plaintext;
	char *log_level;

	struct {
		char *driver;   /* sqlite | postgres */
		char *path;     /* sqlite file, relative to data_dir */
		char *dsn_env;  /* postgres: environment variable holding the DSN */
		char *dsn_file; /* postgres: file holding the DSN */
	} store;

	struct {
		int64_t max_body_bytes;
		int64_t max_header_bytes;
		int64_t idle_timeout_s;
		int64_t max_connections;
		int64_t rate_per_second; /* per peer or lease; 0 = unlimited */
		int64_t rate_burst;
	} limits;

	struct {
		int64_t idempotency_days;
		int64_t interval_s;
	} retention;

	struct crab_config_module *modules;
	size_t nmodules;
};

/* Loads and validates path. Returns NULL after printing every error to errf. */
struct crab_config *crab_config_load(const char *path, FILE *errf);
void crab_config_free(struct crab_config *cfg);

/* Resolves a path from the config: absolute stays, relative joins the config's dir.
 * Returns a malloc'd string. */
char *crab_config_resolve(const struct crab_config *cfg, const char *path);

#endif
