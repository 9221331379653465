/* module_self.h: the host's record of one module, private to modules.c and
 * module_host.c. To a module it is the opaque struct crab_self_v1. */
#ifndef CRAB_MODULE_SELF_H
#define CRAB_MODULE_SELF_H

#include <jansson.h>

#include "abi/crab_module_v1.h"
#include "modules.h"

enum module_state { MODULE_LOADED, MODULE_STARTED, MODULE_STOPPED, MODULE_DISABLED };

struct crab_self_v1 {
	struct crab_registry *reg;
	struct crab_module_v1 desc; /* the module's descriptor as far as its size goes, the
				     * rest zero: fields it does not know are NULL */
	void *dl;                   /* dlopen handle; NULL for a built-in */
	char *path;                 /* NULL for a built-in */
	json_t *config;             /* the module's YAML node */
	void *ctx;                  /* what init returned */
	char *instance;             /* a models: entry's id for a model instance, else NULL */
	enum module_state state;
	struct crab_self_v1 *next;
};

struct crab_registry {
	struct event_base *base;
	struct crab_registry_services svc;
	struct crab_host_v1 host;
	struct crab_self_v1 *modules; /* in load order */
};

/* Fills the host table (module_host.c). */
void crab_module_host_init(struct crab_registry *r);

#endif
