/* jschema.h: JSON Schema validation for tool arguments, the subset PROTOCOLS.md §5
 * names: type, properties, required, additionalProperties, items, enum, const, minimum,
 * maximum, minLength, maxLength, minItems, maxItems, pattern (POSIX extended regular
 * expressions), description and default (annotations, never checked). Any other keyword
 * is ignored, as a validator ignores keywords it does not know. Checked against the
 * cases for those keywords in Debian's json-schema-test-suite package. */
#ifndef CRAB_JSCHEMA_H
#define CRAB_JSCHEMA_H

#include <jansson.h>
#include <stddef.h>

#define CRAB_JSCHEMA_DEPTH_MAX 32 /* deeper schemas or instances are refused */

/* Whether a schema is well formed for this subset (every keyword of the subset with a
 * value of the right kind, a pattern that compiles): 0, or -1 with why in err. */
int crab_jschema_check(const json_t *schema, char *err, size_t errlen);

/* 0 when instance is valid against schema; -1 when not, with the first failure in err,
 * naming where ("arguments.items[2].name: ..."; at names the root). */
int crab_jschema_validate(const json_t *schema, const json_t *instance, const char *at,
    char *err, size_t errlen);

#endif
