/* fuzz_envelope.c: libFuzzer target for envelope parsing and validation. */
#include <stddef.h>
#include <stdint.h>

#include "core/envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crab_envelope env;
	struct crab_error err;

	if (crab_envelope_parse((const char *)data, size, &env, &err) == 0)
		crab_envelope_release(&env);
	return 0;
}
