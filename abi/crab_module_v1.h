/* crab_module_v1.h: the only header a Crabstack module includes.
 *
 * DRAFT: the descriptor's first fields are fixed; the per-kind operation tables and the
 * host functions are completed by the module-ABI work and may still change until the
 * ABI is frozen (see README, "Writing a module").
 *
 * A module is a shared object exporting one symbol, `crab_module_v1`, the address of a
 * const struct crab_module_v1. Built-in modules use the same descriptor and are linked
 * into `crab`. The rules, learnt from Redis and SQLite modules:
 *   - Both the descriptor and the host table begin with abi_major and their own size.
 *     A host loads a module whose descriptor is smaller than its own (older), reading
 *     only the fields that size covers; it refuses an unknown abi_major.
 *   - Structs only grow at the end. A field or host function beyond a struct's size, or
 *     NULL, does not exist: test with CRAB_HOST_HAS() before calling.
 *   - Only this header's types and serialized JSON (pointer + length) cross the
 *     boundary; no libevent, jansson or libcurl types.
 *   - Callbacks run on the role's event loop thread and must not block.
 *   - Whoever allocates frees.
 *   - Functions return 0 on success and -1 on failure.
 */
#ifndef CRAB_MODULE_V1_H
#define CRAB_MODULE_V1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRAB_ABI_MAJOR 1

/* What a module provides; a module may provide several. */
enum crab_module_kind {
	CRAB_KIND_MODEL_ADAPTER = 1u << 0,
	CRAB_KIND_TOOL_HOST = 1u << 1,
	CRAB_KIND_CHANNEL_LISTENER = 1u << 2,
	CRAB_KIND_SUBSCRIBER = 1u << 3,
};

enum crab_log_level_v1 {
	CRAB_LOG_V1_DEBUG,
	CRAB_LOG_V1_INFO,
	CRAB_LOG_V1_WARN,
	CRAB_LOG_V1_ERROR,
};

/* Functions the host lends to a module. Borrowed for the module's lifetime. */
struct crab_host_v1 {
	uint32_t abi_major; /* CRAB_ABI_MAJOR */
	uint32_t size;      /* sizeof(struct crab_host_v1) as the host was built */
	const char *host_version;

	/* Logs one line attributed to the module; never pass a secret. */
	void (*log)(void *module_ctx, enum crab_log_level_v1 level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
	/* Milliseconds since the epoch on the host's clock (test builds can move it). */
	int64_t (*now_ms)(void);

	/* New functions are appended here. */
};

/* True when the host table h is large enough to hold member fn and fn is set. */
#define CRAB_HOST_HAS(h, fn) \
	((h) != NULL && offsetof(struct crab_host_v1, fn) + sizeof((h)->fn) <= (h)->size && \
	    (h)->fn != NULL)

struct crab_module_v1 {
	uint32_t abi_major;   /* CRAB_ABI_MAJOR */
	uint32_t size;        /* sizeof(struct crab_module_v1) as the module was built */
	const char *name;     /* unique among loaded modules: [a-z0-9_-]+ */
	const char *version;  /* the module's own version string */
	uint32_t kinds;       /* enum crab_module_kind bits */

	/* Lifecycle, in order: init once (the module's YAML node as JSON text), start when
	 * the role's loop runs, stop before it ends, fini last. init returns the module's
	 * context in *ctx; a failing init (-1) unloads the module cleanly. */
	int (*init)(const struct crab_host_v1 *host, const char *config_json, size_t config_len,
	    void **ctx);
	int (*start)(void *ctx);
	void (*stop)(void *ctx);
	void (*fini)(void *ctx);

	/* Per-kind operation tables follow here (model adapter, tool host, channel listener,
	 * subscriber); a kind's table is set exactly when its bit is in kinds. */
};

/* How a module exports itself: CRAB_MODULE_EXPORT const struct crab_module_v1
 * crab_module_v1 = {...}; */
#define CRAB_MODULE_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
}
#endif

#endif
