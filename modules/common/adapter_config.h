/* adapter_config.h: configuration values a model adapter reads from its models: entry
 * (the JSON its init is given) the same way as the others. jansson and libc. See
 * README.md for how this code is shared. */
#ifndef CRAB_ADAPTER_CONFIG_H
#define CRAB_ADAPTER_CONFIG_H

#include <jansson.h>
#include <stddef.h>

/* A string key, malloc'd: its value when a non-empty string, else def (NULL: none).
 * NULL out of memory too. */
char *adapter_config_str(json_t *cfg, const char *key, const char *def);

/* An integer key, or a string of one (YAML may quote it), within [min, max]; def when
 * absent or null. 0; or -1 with why ("<key> must be ...") for the log. */
int adapter_config_int(json_t *cfg, const char *key, long long def, long long min,
    long long max, long long *out, char *why, size_t whylen);

/* Appends the header line "name: value", malloc'd, to lines (*n used, room for max).
 * 0; -1 when the name or the value cannot go in a header line, or max are there
 * already; -2 out of memory. */
int adapter_header_add(char **lines, size_t *n, size_t max, const char *name,
    const char *value);

#endif
