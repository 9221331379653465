/* jsonpatch.h: JSON Merge Patch (RFC 7396): how an agent changes configuration. */
#ifndef CRAB_JSONPATCH_H
#define CRAB_JSONPATCH_H

#include <jansson.h>

/* target patched by patch, as RFC 7396 §2 MergePatch(target, patch): a new reference;
 * neither argument is changed. null members of patch delete, objects merge, anything
 * else replaces. */
json_t *crab_merge_patch(const json_t *target, const json_t *patch);

#endif
