/* jsonpatch.c: see jsonpatch.h. RFC 7396 §2's MergePatch, building a new value instead of
 * changing Target in place: members are deep-copied, so the result shares nothing with
 * either argument and the caller may change it freely. Target's members keep their
 * order; members only the patch has follow, in the patch's order. */
#include "jsonpatch.h"

#include <stddef.h>

json_t *crab_merge_patch(const json_t *target, const json_t *patch)
{
	const json_t *t = json_is_object(target) ? target : NULL; /* else Target = {} */
	const char *k;
	json_t *out, *v, *p;

	if (!json_is_object(patch))
		return json_deep_copy(patch);
	out = json_object();
	if (out == NULL)
		return NULL;
	if (t != NULL) {
		json_object_foreach((json_t *)t, k, v) {
			p = json_object_get(patch, k);
			if (p == NULL)
				json_object_set_new(out, k, json_deep_copy(v));
			else if (!json_is_null(p)) /* a null removes the member */
				json_object_set_new(out, k, crab_merge_patch(v, p));
		}
	}
	json_object_foreach((json_t *)patch, k, p) {
		if (json_is_null(p) || (t != NULL && json_object_get(t, k) != NULL))
			continue;
		/* MergePatch(undefined, Value): an object patch still loses its nulls */
		json_object_set_new(out, k, crab_merge_patch(NULL, p));
	}
	return out;
}
