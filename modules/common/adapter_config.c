/* adapter_config.c: configuration values, adapter_config.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup when built as a .so */
#endif
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/common/adapter_config.h"

char *adapter_config_str(json_t *cfg, const char *key, const char *def)
{
	const char *v = json_string_value(json_object_get(cfg, key));
	return (v != NULL && v[0] != '\0') ? strdup(v) : def ? strdup(def) : NULL;
}

int adapter_config_int(json_t *cfg, const char *key, long long def, long long min,
    long long max, long long *out, char *why, size_t whylen)
{
	json_t *v = json_object_get(cfg, key);
	char *end;

	*out = def;
	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
	} else {
		const char *str = json_string_value(v);
		*out = str ? strtoll(str, &end, 10) : min - 1;
		if (str == NULL || end == str || *end != '\0')
			*out = min - 1;
	}
	if (*out < min || *out > max) {
		snprintf(why, whylen, "%s must be an integer from %lld to %lld", key, min, max);
		return -1;
	}
	return 0;
}

int adapter_header_add(char **lines, size_t *n, size_t max, const char *name,
    const char *value)
{
	size_t len = strlen(name) + strlen(value) + 3;
	char *line;

	if (*n >= max || name[0] == '\0' || strpbrk(name, ": \t\r\n") != NULL ||
	    strpbrk(value, "\r\n") != NULL)
		return -1;
	if ((line = malloc(len)) == NULL)
		return -2;
	snprintf(line, len, "%s: %s", name, value);
	lines[(*n)++] = line;
	return 0;
}
