/* builtin_modules.c: the modules linked into crab, registered through the same
 * descriptors and the same path as a loaded .so (see CRAB_MODULE in the ABI header). */
#include "modules.h"

extern const struct crab_module_v1 crab_builtin_echo;
extern const struct crab_module_v1 crab_builtin_openai;
extern const struct crab_module_v1 crab_builtin_anthropic;

const struct crab_module_v1 *const crab_builtin_modules[] = {
	&crab_builtin_echo,
	&crab_builtin_openai,
	&crab_builtin_anthropic,
	NULL,
};
