/* test_jsonpatch.c: JSON Merge Patch on every example of RFC 7396 (§3 and Appendix A),
 * each also checking that neither input changed and that the result shares nothing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonpatch.h"
#include "t/unit/unit.h"

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &je);

	if (j == NULL) {
		printf("# bad JSON in the test: %s: %s\n", text, je.text);
		exit(1);
	}
	return j;
}

static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
}

/* One example: the result equal to want, in want's member order, inputs untouched. */
static void example(const char *target, const char *patch, const char *want)
{
	json_t *t = parse(target), *p = parse(patch), *w = parse(want), *r;
	char *t0 = dump(t), *p0 = dump(p), *t1, *p1, *rs, *ws = dump(w);
	char what[256];

	r = crab_merge_patch(t, p);
	rs = r != NULL ? dump(r) : NULL;
	snprintf(what, sizeof(what), "MergePatch(%s, %s) is %s", target, patch, want);
	if (!CHECK(r != NULL && json_equal(r, w) && strcmp(rs, ws) == 0, what))
		printf("#   got %s\n", rs != NULL ? rs : "NULL");
	/* the caller owns the result: changing it must not reach an input */
	if (json_is_object(r))
		json_object_set_new(r, "zz-added", json_true());
	t1 = dump(t);
	p1 = dump(p);
	snprintf(what, sizeof(what), "  and leaves %s and %s as they were", target, patch);
	CHECK(strcmp(t0, t1) == 0 && strcmp(p0, p1) == 0, what);
	free(t0);
	free(p0);
	free(t1);
	free(p1);
	free(rs);
	free(ws);
	json_decref(r);
	json_decref(t);
	json_decref(p);
	json_decref(w);
}

/* RFC 7396 §3: a whole document, where member order is visible. */
static void test_section3(void)
{
	example("{\"title\":\"Goodbye!\",\"author\":{\"givenName\":\"John\",\"familyName\":\"Doe\"},"
		"\"tags\":[\"example\",\"sample\"],\"content\":\"This will be unchanged\"}",
	    "{\"title\":\"Hello!\",\"phoneNumber\":\"+01-123-456-7890\","
		"\"author\":{\"familyName\":null},\"tags\":[\"example\"]}",
	    "{\"title\":\"Hello!\",\"author\":{\"givenName\":\"John\"},\"tags\":[\"example\"],"
		"\"content\":\"This will be unchanged\",\"phoneNumber\":\"+01-123-456-7890\"}");
}

static void test_appendix_a(void)
{
	example("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	example("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
	example("{\"a\":\"b\"}", "{\"a\":null}", "{}");
	example("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
	example("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
	example("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
	example("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}", "{\"a\":{\"b\":\"d\"}}");
	example("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
	example("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
	example("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
	example("{\"a\":\"foo\"}", "null", "null");
	example("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
	example("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
	example("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
	example("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

/* Past the RFC's table: a nested value the patch replaces is a copy, not the patch's. */
static void test_copies(void)
{
	json_t *t = parse("{\"a\":{\"x\":1}}"), *p = parse("{\"a\":{\"y\":[1,2]},\"b\":[3]}");
	json_t *r = crab_merge_patch(t, p);

	CHECK(r != NULL && r != t && r != p, "the result is a new value");
	CHECK(json_object_get(r, "b") != json_object_get(p, "b") &&
		json_object_get(json_object_get(r, "a"), "y") !=
		    json_object_get(json_object_get(p, "a"), "y"),
	    "members taken from the patch are copies");
	CHECK(json_object_get(json_object_get(r, "a"), "x") !=
		json_object_get(json_object_get(t, "a"), "x"),
	    "members kept from the target are copies");
	json_array_append_new(json_object_get(r, "b"), json_integer(4));
	CHECK_INT(json_array_size(json_object_get(p, "b")), 1, "changing the result leaves the patch");
	json_decref(r);
	json_decref(t);
	json_decref(p);
}

int main(void)
{
	test_section3();
	test_appendix_a();
	test_copies();
	return unit_done();
}
