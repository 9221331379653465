/* modules.h: the module registry of a role. Built-in modules (linked in) and .so files
 * named in YAML go through one path: checked descriptor, init with the host table,
 * start, stop, fini. A refused module is one log line naming the file and the reason;
 * the role goes on without it, or stops when the YAML says required: true. */
#ifndef CRAB_MODULES_H
#define CRAB_MODULES_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>

#include "abi/crab_module_v1.h"

struct crab_registry;
struct crab_storeq;
struct crab_http_client;
struct crab_auth;

/* What the role lends to the host table; any may be NULL (the slot is then absent). */
struct crab_registry_services {
	struct crab_storeq *storeq;        /* kv_get, kv_put */
	struct crab_http_client *http;     /* http_start, http_cancel */
	/* emit_event: the role's ingress for trusted in-process producers. */
	int (*emit)(void *role, const char *module, const char *envelope, size_t len,
	    void (*done)(void *arg, int status, const char *answer, size_t len), void *arg);
	void *role;
	const char *role_name;
	struct crab_auth *auth;            /* auth_token (core/auth.h) */
};

struct crab_registry *crab_registry_new(struct event_base *base,
    const struct crab_registry_services *services);
/* Stops and finalises every module, unloads the .so files, frees the registry. */
void crab_registry_free(struct crab_registry *r);

/* Registers a descriptor: built-in when path is NULL. config is the module's YAML node
 * as JSON (NULL: {}). 0 when loaded and initialised; -1 when refused, with the reason
 * in err (one line naming the module or file). */
int crab_registry_add(struct crab_registry *r, const struct crab_module_v1 *desc,
    const char *path, json_t *config, char *err, size_t errlen);
/* dlopen()s path and registers its crab_module_v1. */
int crab_registry_load(struct crab_registry *r, const char *path, json_t *config, char *err,
    size_t errlen);
/* A model instance: the model adapter module called module initialised once more, for
 * one models: entry (instance = its id) with that entry's config. Started with the rest
 * by crab_registry_start. 0, or -1 with the reason in err. */
int crab_registry_instance(struct crab_registry *r, const char *module, const char *instance,
    json_t *config, char *err, size_t errlen);
/* Registers every built-in module. */
int crab_registry_add_builtins(struct crab_registry *r, char *err, size_t errlen);

/* Starts every module not started yet; a module whose start fails is disabled. */
void crab_registry_start(struct crab_registry *r);

/* [{"name","version","kinds":[...],"source":"built-in"|path,"state"}] */
json_t *crab_registry_list(struct crab_registry *r);

/* The model adapter named name, or NULL; *ctx gets its context. */
const struct crab_model_ops_v1 *crab_registry_model(struct crab_registry *r, const char *name,
    void **ctx);

/* The model instance of a models: entry, or NULL when it is not running. */
const struct crab_model_ops_v1 *crab_registry_model_instance(struct crab_registry *r,
    const char *instance, void **ctx);

/* The built-in descriptors, NULL-terminated (core/builtin_modules.c). */
extern const struct crab_module_v1 *const crab_builtin_modules[];

#endif
