/* fuzz_jschema.c: libFuzzer target for the JSON Schema subset (core/jschema.c): the first
 * line is a schema (a tool host's), the rest an instance (a model's arguments); both are
 * hostile in real life. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/jschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *nl = memchr(text, '\n', size);
	json_t *schema, *instance;
	char err[256];

	if (nl == NULL)
		return 0;
	schema = json_loadb(text, (size_t)(nl - text), JSON_DECODE_ANY, NULL);
	instance = json_loadb(nl + 1, size - (size_t)(nl - text) - 1, JSON_DECODE_ANY, NULL);
	if (schema != NULL && instance != NULL) {
		if (crab_jschema_check(schema, err, sizeof(err)) == 0)
			(void)crab_jschema_validate(schema, instance, "arguments", err, sizeof(err));
	}
	json_decref(schema);
	json_decref(instance);
	return 0;
}
