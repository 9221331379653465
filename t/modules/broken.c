/* broken.c: the modules t2001 expects the loader to refuse, one fault per build:
 *
 *   -DFAULT_NO_SYMBOL     exports crab_module_v2 instead of crab_module_v1
 *   -DABI_MAJOR=2         a descriptor of another ABI major
 *   -DDESC_SIZE=16        a descriptor size below the smallest v1 descriptor
 *   -DFAULT_NO_INIT       init NULL
 *   -DFAULT_NO_FINI       fini NULL
 *   -DFAULT_NO_OPS        declares a model adapter with no operation table
 *   -DFAULT_NO_START      a model operation table whose start is NULL
 *   -DFAULT_INIT_FAILS    init allocates, frees, logs and returns -1
 *   -DNAME='"echo"'       any name (default "broken"; "echo" is the built-in's)
 *
 * With none it is a well-formed module that refuses every request. Its fini and its
 * unloading print a line to stderr, so the tests can see which ran. */
#include <stdio.h>
#include <stdlib.h>

#include "abi/crab_module_v1.h"

/* Which callbacks a fault leaves out varies. */
#define UNUSED_OK __attribute__((unused))

#ifndef NAME
#define NAME "broken"
#endif
#ifndef ABI_MAJOR
#define ABI_MAJOR CRAB_ABI_MAJOR
#endif
#ifndef DESC_SIZE
#define DESC_SIZE sizeof(struct crab_module_v1)
#endif

UNUSED_OK static int broken_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t len, void **ctx)
{
	(void)config;
	(void)len;
#ifdef FAULT_INIT_FAILS
	free(malloc(100)); /* what it took, it gives back */
	if (CRAB_HOST_HAS(host, log))
		host->log(self, CRAB_LOG_V1_ERROR, "init fails on purpose");
	*ctx = NULL;
	return -1;
#else
	(void)host;
	(void)self;
	*ctx = malloc(16);
	return *ctx ? 0 : -1;
#endif
}

UNUSED_OK static void broken_fini(void *ctx)
{
	fprintf(stderr, "broken module %s: fini called\n", NAME);
	free(ctx);
}

__attribute__((destructor)) static void broken_unloaded(void)
{
	fprintf(stderr, "broken module %s: unloaded\n", NAME);
}

UNUSED_OK static int broken_start(void *ctx, const char *req, size_t len, const struct crab_model_sink_v1 *sink,
    void *sink_arg, void **handle)
{
	(void)ctx, (void)req, (void)len, (void)sink, (void)sink_arg, (void)handle;
	return -1;
}

UNUSED_OK static void broken_cancel(void *ctx, void *handle)
{
	(void)ctx, (void)handle;
}

UNUSED_OK static const struct crab_model_ops_v1 broken_model = {
	.size = sizeof(struct crab_model_ops_v1),
#ifndef FAULT_NO_START
	.start = broken_start,
#endif
	.cancel = broken_cancel,
};

#ifdef FAULT_NO_SYMBOL
CRAB_MODULE_EXPORT const struct crab_module_v1 crab_module_v2 = {
#else
CRAB_MODULE(broken) = {
#endif
	.abi_major = ABI_MAJOR,
	.size = DESC_SIZE,
	.name = NAME,
	.version = "0.0.1",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
#ifndef FAULT_NO_INIT
	.init = broken_init,
#endif
#ifndef FAULT_NO_FINI
	.fini = broken_fini,
#endif
#ifndef FAULT_NO_OPS
	.model = &broken_model,
#endif
};
