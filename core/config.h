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

/* models: one entry per model the agents may use; an instance of an adapter module. */
struct crab_config_model {
	char *id;       /* what agents name */
	char *adapter;  /* a model adapter module: "echo", "openai", or one a .so provides */
	char *model;    /* the provider's model name; default: id */
	json_t *config; /* the whole entry as JSON: the adapter's own keys (base_url,
			 * api_key_env, timeout_s, ...) are passed to its init */
	int adapter_line, adapter_col; /* where adapter is written, for startup errors */
};

/* agents: who answers. Context layers are path templates ({platform}, {channel_id},
 * {actor_id}, {tenant_id}, {agent_id}), resolved against the config's directory;
 * NULL = no such layer. */
struct crab_config_agent {
	char *id;
	char *model;            /* a models[] id */
	char *context_global;   /* the agent's own .md */
	char *context_platform; /* channel/platform-scoped layers, in this order */
	char *context_channel;
	char *context_actor;
	int64_t max_tokens;        /* the model's answer limit */
	int64_t history_max_turns; /* budget of earlier turns sent to the model */
	int64_t history_max_bytes;
	/* tools: which it may use, by name pattern (fnmatch: "memory.*"); none when no
	 * allow list; deny wins. At most max_rounds rounds of calls a turn, each call given
	 * deadline_ms. */
	char **tools_allow, **tools_deny;
	size_t ntools_allow, ntools_deny;
	int64_t tools_max_rounds, tools_deadline_ms;
	/* config_policy: the gateway's own config.* tools this agent may call (none by
	 * default), and the config paths its patches may change (NULL: its own section,
	 * agents.<id>). What no policy opens is in core/config_view.h. */
	char **policy_tools;
	size_t npolicy_tools;
	char **policy_paths;
	size_t npolicy_paths;
};

/* tenants[].identities: who belongs to a tenant. An entry with neither actors nor
 * channels maps the whole platform. */
struct crab_config_identity {
	char *platform;
	char **actors;
	size_t nactors;
	char **channels;
	size_t nchannels;
};

struct crab_config_tenant {
	char *id;
	struct crab_config_identity *identities;
	size_t nidentities;
};

/* routes: the first whose every given match key equals the event's picks the agent. */
struct crab_config_route {
	char *platform, *channel_id, *actor_id, *tenant; /* match keys; NULL = any */
	char *agent;
	char *isolation_key; /* a template, or NULL: memory scope "global" */
};

/* subscribers: the operator's filter on what a paired subscriber is sent, on top of
 * what it offered to subscribe to and its grant. */
struct crab_config_subscriber {
	char *component; /* the component id it was paired under */
	char **types;    /* only these event types; NULL: what it offered */
	size_t ntypes;
	char **tenants;  /* only these tenants; NULL: its grant */
	size_t ntenants;
};

enum { CRAB_TLS_AUTO, CRAB_TLS_ON, CRAB_TLS_OFF };

struct crab_config {
	char *path;          /* the file it came from */
	char *listen;        /* "host:port" of the public HTTP ingress */
	char *data_dir;      /* absolute or relative to the config file's directory */
	char *admin_socket;  /* default <data_dir>/admin.sock */
	char *default_agent; /* agent for events that name none, until routing decides */
	int insecure_plaintext;
	int tls;             /* CRAB_TLS_AUTO (TLS unless loopback), _ON or _OFF */
	char *name;          /* shown to components at pairing; default the host name */
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

	struct crab_config_model *models;
	size_t nmodels;
	struct crab_config_agent *agents;
	size_t nagents;
	struct crab_config_tenant *tenants;
	size_t ntenants;
	struct crab_config_route *routes;
	size_t nroutes;
	struct crab_config_subscriber *subscribers;
	size_t nsubscribers;

	struct {
		int refuse_unmapped;     /* unmapped_actors: refuse (default) or route */
		char *unmapped_tenant;   /* with route: the tenant unmapped actors get */
	} router;

	struct {
		int64_t max_concurrent;  /* turns running at once, across sessions */
		int64_t model_timeout_s; /* one model call, retries included */
		int64_t queue_max;       /* accepted events queued in memory; the rest wait in
					  * the store and are read back when the queue runs dry */
	} turns;

	/* config.smoke_test: what must work under a new config before it is applied
	 * (core/config_apply.c). */
	struct {
		char *model_ping;         /* a models[] id: one tiny request must succeed */
		int route;                /* route: given */
		char *route_platform;     /* route: an event from here must reach an agent */
		char *route_channel_id;
		char *route_actor_id;
	} smoke_test;

	char *source_text;      /* the file's bytes as loaded (config_revisions) */
	size_t source_len;
	int64_t revision;       /* its config_revisions row once recorded; 0 before */
	int refs;               /* crab_config_ref/unref: loop thread only */
};

/* Finds an entry by id, or NULL. */
const struct crab_config_model *crab_config_model_find(const struct crab_config *cfg,
    const char *id);
const struct crab_config_agent *crab_config_agent_find(const struct crab_config *cfg,
    const char *id);
const struct crab_config_tenant *crab_config_tenant_find(const struct crab_config *cfg,
    const char *id);
const struct crab_config_subscriber *crab_config_subscriber_find(
    const struct crab_config *cfg, const char *component);

/* Loads and validates path. Returns NULL after printing every error to errf, in file
 * order, each as "file:line:column: message". Without an agents section, it supplies the
 * built-in echo model and one agent, default_agent, on it. Context paths and isolation
 * keys are kept as written (templates): expand them, then crab_config_resolve the path. */
struct crab_config *crab_config_load(const char *path, FILE *errf);

/* Where a config failed to load, for whoever must say which step refused it. */
enum crab_config_stage {
	CRAB_CONFIG_LOADED = 0,
	CRAB_CONFIG_SYNTAX,   /* unreadable, not YAML, not a mapping, too large, not text */
	CRAB_CONFIG_SCHEMA,   /* unknown keys, wrong shapes, values out of range */
	CRAB_CONFIG_SEMANTIC, /* references between sections, duplicates, inline secrets */
};

/* crab_config_load of text (len bytes, copied) as if read from path: path names the
 * file in messages and relative paths are resolved against its directory. *stage (may
 * be NULL) says where it failed. */
struct crab_config *crab_config_parse(const char *path, const char *text, size_t len,
    FILE *errf, enum crab_config_stage *stage);

/* A loaded config starts with one reference. Running turns hold one on the config they
 * started under, the gateway one on the config in force, so a reload never frees what
 * a turn still reads. ref returns cfg; unref (and crab_config_free, the same) frees at
 * the last one. NULL is ignored. */
struct crab_config *crab_config_ref(struct crab_config *cfg);
void crab_config_unref(struct crab_config *cfg);
void crab_config_free(struct crab_config *cfg);

/* Resolves a path from the config: absolute stays, relative joins the config's dir.
 * Returns a malloc'd string. */
char *crab_config_resolve(const struct crab_config *cfg, const char *path);

/* Prints "file:line:col: message" about cfg's file, for what only a later stage can
 * check (a model's adapter, at its adapter_line/adapter_col; 0:0 for the built-in one).
 * Returns -1. */
int crab_config_report(const struct crab_config *cfg, int line, int col, FILE *errf,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* `crab config validate|apply|revert|revisions` (cli_config.c). */
int crab_cli_config_main(int argc, char **argv);

#endif
