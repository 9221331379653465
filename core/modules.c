/* modules.c: registration, checks and lifecycle of modules. Every check a .so can fail
 * is made before any of its code runs, except init itself. */
#include "modules.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "module_self.h"
#include "util.h"

/* The smallest descriptor the host accepts: everything up to and including fini. */
#define DESC_MIN_SIZE (offsetof(struct crab_module_v1, fini) + sizeof(void (*)(void *)))

/* Each kind: where the descriptor points to its operation table, and the operations
 * the host calls, which the table must cover and set. */
static const struct {
	uint32_t bit;
	const char *name;
	size_t slot;
	struct {
		const char *name;
		size_t off;
	} ops[2];
} kind_names[] = {
	{CRAB_KIND_MODEL_ADAPTER, "model_adapter", offsetof(struct crab_module_v1, model),
	    {{"start", offsetof(struct crab_model_ops_v1, start)},
		{"cancel", offsetof(struct crab_model_ops_v1, cancel)}}},
	{CRAB_KIND_TOOL_HOST, "tool_host", offsetof(struct crab_module_v1, tool),
	    {{"list", offsetof(struct crab_tool_ops_v1, list)},
		{"call", offsetof(struct crab_tool_ops_v1, call)}}},
	{CRAB_KIND_CHANNEL_LISTENER, "channel_listener", offsetof(struct crab_module_v1, channel),
	    {{"send", offsetof(struct crab_channel_ops_v1, send)}}},
	{CRAB_KIND_SUBSCRIBER, "subscriber", offsetof(struct crab_module_v1, subscriber),
	    {{"receive", offsetof(struct crab_subscriber_ops_v1, receive)}}},
};

struct crab_registry *crab_registry_new(struct event_base *base,
    const struct crab_registry_services *services)
{
	struct crab_registry *r = xcalloc(1, sizeof(*r));

	r->base = base;
	if (services != NULL)
		r->svc = *services;
	crab_module_host_init(r);
	return r;
}

static int refuse(char *err, size_t errlen, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char *err, size_t errlen, const char *who, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, errlen, "module %s: ", who);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < errlen)
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static int valid_name(const char *name)
{
	size_t len = name ? strlen(name) : 0;
	return len >= 1 && len <= 64 && strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") == len;
}

/* The operation table of kind i, which d declares: present, as large as the operations
 * the host calls, and those set. */
static int check_ops(const struct crab_module_v1 *d, size_t i, const char *who, char *err,
    size_t errlen)
{
	const char *kind = kind_names[i].name;
	const void *ops;
	uint32_t size;

	memcpy(&ops, (const char *)d + kind_names[i].slot, sizeof(ops));
	if (ops == NULL)
		return refuse(err, errlen, who, "declares kind %s but has no operation table", kind);
	memcpy(&size, ops, sizeof(size));
	for (size_t k = 0; k < CRAB_ARRAY_LEN(kind_names[i].ops) && kind_names[i].ops[k].name; k++) {
		size_t off = kind_names[i].ops[k].off;
		void (*fn)(void);

		if (size < off + sizeof(fn))
			return refuse(err, errlen, who, "declares kind %s but its operation table "
			    "(size %u) ends before %s", kind, size, kind_names[i].ops[k].name);
		memcpy(&fn, (const char *)ops + off, sizeof(fn));
		if (fn == NULL)
			return refuse(err, errlen, who, "declares kind %s but its operation %s is NULL",
			    kind, kind_names[i].ops[k].name);
	}
	return 0;
}

/* Checks a descriptor and copies it as far as its size goes. */
static int check_descriptor(const struct crab_module_v1 *in, struct crab_module_v1 *out,
    const char *who, char *err, size_t errlen)
{
	if (in->abi_major != CRAB_ABI_MAJOR)
		return refuse(err, errlen, who, "ABI major %u, this crab speaks %d (not binary "
		    "compatible)", in->abi_major, CRAB_ABI_MAJOR);
	if (in->size < DESC_MIN_SIZE)
		return refuse(err, errlen, who, "descriptor size %u is smaller than the smallest "
		    "v1 descriptor (%zu)", in->size, (size_t)DESC_MIN_SIZE);
	memset(out, 0, sizeof(*out));
	memcpy(out, in, in->size < sizeof(*out) ? in->size : sizeof(*out));
	if (!valid_name(out->name))
		return refuse(err, errlen, who, "name must be 1 to 64 of [a-z0-9_-]");
	if (out->version == NULL)
		return refuse(err, errlen, who, "version is NULL");
	if (out->init == NULL)
		return refuse(err, errlen, who, "required callback init is NULL");
	if (out->fini == NULL)
		return refuse(err, errlen, who, "required callback fini is NULL");
	if (out->kinds == 0 || (out->kinds & ~0xfu) != 0)
		return refuse(err, errlen, who, "kinds 0x%x names no known kind", out->kinds);
	for (size_t i = 0; i < CRAB_ARRAY_LEN(kind_names); i++) {
		if ((out->kinds & kind_names[i].bit) && check_ops(out, i, who, err, errlen) != 0)
			return -1;
	}
	return 0;
}

/* The module named name (its base record, not an instance). */
static struct crab_self_v1 *find(struct crab_registry *r, const char *name)
{
	for (struct crab_self_v1 *m = r->modules; m != NULL; m = m->next) {
		if (m->instance == NULL && strcmp(m->desc.name, name) == 0)
			return m;
	}
	return NULL;
}

static struct crab_self_v1 *find_instance(struct crab_registry *r, const char *instance)
{
	for (struct crab_self_v1 *m = r->modules; m != NULL; m = m->next) {
		if (m->instance != NULL && strcmp(m->instance, instance) == 0)
			return m;
	}
	return NULL;
}

static void append(struct crab_registry *r, struct crab_self_v1 *m)
{
	struct crab_self_v1 **pp = &r->modules;
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = m;
}

static void module_free(struct crab_self_v1 *m)
{
	json_decref(m->config);
	free(m->path);
	free(m->instance);
	free(m);
}

/* Runs init with m's config; 0, or -1 with the reason in err. */
static int module_init(struct crab_registry *r, struct crab_self_v1 *m, const char *who,
    char *err, size_t errlen)
{
	char *config_text = json_dumps(m->config, JSON_COMPACT);
	int rc = m->desc.init(&r->host, m, config_text, strlen(config_text), &m->ctx);

	free(config_text);
	if (rc != 0)
		return refuse(err, errlen, who, "init failed");
	m->state = MODULE_LOADED;
	return 0;
}

int crab_registry_add(struct crab_registry *r, const struct crab_module_v1 *desc,
    const char *path, json_t *config, char *err, size_t errlen)
{
	struct crab_self_v1 *m = xcalloc(1, sizeof(*m)), *other;
	const char *who = path ? path : (desc->name ? desc->name : "(built-in)");

	if (check_descriptor(desc, &m->desc, who, err, errlen) != 0)
		goto fail;
	if ((other = find(r, m->desc.name)) != NULL) {
		refuse(err, errlen, who, "a module named '%s' is already loaded (%s)", m->desc.name,
		    other->path ? other->path : "built-in");
		goto fail;
	}
	m->reg = r;
	m->path = path ? xstrdup(path) : NULL;
	m->config = config ? json_incref(config) : json_object();
	if (module_init(r, m, who, err, errlen) != 0)
		goto fail;
	append(r, m);
	log_info("module %s %s loaded (%s)", m->desc.name, m->desc.version,
	    m->path ? m->path : "built-in");
	return 0;
fail:
	module_free(m);
	return -1;
}

int crab_registry_instance(struct crab_registry *r, const char *module, const char *instance,
    json_t *config, char *err, size_t errlen)
{
	struct crab_self_v1 *base = find(r, module), *m;

	if (base == NULL || !(base->desc.kinds & CRAB_KIND_MODEL_ADAPTER))
		return refuse(err, errlen, module, "no model adapter module named '%s' is loaded",
		    module);
	if (base->state == MODULE_DISABLED)
		return refuse(err, errlen, module, "is disabled");
	if (find_instance(r, instance) != NULL)
		return refuse(err, errlen, module, "an instance '%s' exists already", instance);
	m = xcalloc(1, sizeof(*m));
	m->reg = r;
	m->desc = base->desc;
	m->path = base->path ? xstrdup(base->path) : NULL;
	m->instance = xstrdup(instance);
	m->config = config ? json_incref(config) : json_object();
	if (module_init(r, m, instance, err, errlen) != 0) {
		module_free(m);
		return -1;
	}
	append(r, m);
	return 0;
}

int crab_registry_load(struct crab_registry *r, const char *path, json_t *config, char *err,
    size_t errlen)
{
	const struct crab_module_v1 *desc;
	struct crab_self_v1 *m;
	size_t n = strlen(path) + 3;
	char *file = xmalloc(n);
	void *dl;

	/* dlopen() looks a name without a slash up in the library path (LD_LIBRARY_PATH,
	 * /usr/lib, ...): a module is always the file named, here "./name". */
	snprintf(file, n, "%s%s", strchr(path, '/') ? "" : "./", path);
	dl = dlopen(file, RTLD_NOW | RTLD_LOCAL);
	free(file);
	if (dl == NULL) {
		const char *e = dlerror();
		return refuse(err, errlen, path, "cannot load: %s", e ? e : "unknown error");
	}
	desc = dlsym(dl, "crab_module_v1");
	if (desc == NULL) {
		dlclose(dl);
		return refuse(err, errlen, path, "exports no crab_module_v1 symbol");
	}
	if (crab_registry_add(r, desc, path, config, err, errlen) != 0) {
		dlclose(dl);
		return -1;
	}
	for (m = r->modules; m->next != NULL; m = m->next)
		;
	m->dl = dl;
	return 0;
}

int crab_registry_add_builtins(struct crab_registry *r, char *err, size_t errlen)
{
	for (size_t i = 0; crab_builtin_modules[i] != NULL; i++) {
		if (crab_registry_add(r, crab_builtin_modules[i], NULL, NULL, err, errlen) != 0)
			return -1;
	}
	return 0;
}

void crab_registry_start(struct crab_registry *r)
{
	for (struct crab_self_v1 *m = r->modules; m != NULL; m = m->next) {
		if (m->state != MODULE_LOADED)
			continue;
		if (m->desc.start != NULL && m->desc.start(m->ctx) != 0) {
			log_warnx("module %s: start failed, disabled", m->desc.name);
			m->state = MODULE_DISABLED;
			continue;
		}
		m->state = MODULE_STARTED;
	}
}

void crab_registry_free(struct crab_registry *r)
{
	struct crab_self_v1 *m, *next;

	if (r == NULL)
		return;
	for (m = r->modules; m != NULL; m = m->next) {
		if (m->state == MODULE_STARTED && m->desc.stop != NULL)
			m->desc.stop(m->ctx);
		m->state = MODULE_STOPPED;
	}
	/* Every fini before any dlclose: a model instance runs the code of its module's .so. */
	for (m = r->modules; m != NULL; m = m->next)
		m->desc.fini(m->ctx);
	for (m = r->modules; m != NULL; m = next) {
		next = m->next;
		if (m->dl != NULL)
			dlclose(m->dl);
		module_free(m);
	}
	free(r);
}

json_t *crab_registry_list(struct crab_registry *r)
{
	static const char *states[] = {"loaded", "started", "stopped", "disabled"};
	json_t *list = json_array();

	for (struct crab_self_v1 *m = r->modules; m != NULL; m = m->next) {
		json_t *kinds = json_array();
		for (size_t i = 0; i < CRAB_ARRAY_LEN(kind_names); i++) {
			if (m->desc.kinds & kind_names[i].bit)
				json_array_append_new(kinds, json_string(kind_names[i].name));
		}
		json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:s, s:s, s:s?}", "name",
		    m->desc.name, "version", m->desc.version, "kinds", kinds, "source",
		    m->path ? m->path : "built-in", "state", states[m->state], "instance",
		    m->instance));
	}
	return list;
}

const struct crab_model_ops_v1 *crab_registry_model(struct crab_registry *r, const char *name,
    void **ctx)
{
	struct crab_self_v1 *m = find(r, name);

	if (m == NULL || m->state != MODULE_STARTED || !(m->desc.kinds & CRAB_KIND_MODEL_ADAPTER))
		return NULL;
	*ctx = m->ctx;
	return m->desc.model;
}

const struct crab_model_ops_v1 *crab_registry_model_instance(struct crab_registry *r,
    const char *instance, void **ctx)
{
	struct crab_self_v1 *m = find_instance(r, instance);

	if (m == NULL || m->state != MODULE_STARTED || !(m->desc.kinds & CRAB_KIND_MODEL_ADAPTER))
		return NULL;
	*ctx = m->ctx;
	return m->desc.model;
}
