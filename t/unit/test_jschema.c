/* test_jschema.c: the JSON Schema subset against Debian's json-schema-test-suite (the
 * files of our keywords, in every draft the package ships from 4 on), then the messages
 * and paths, crab_jschema_check on bad schemas, the depth limits and hostile input. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/jschema.h"
#include "t/unit/unit.h"

#define SUITE_DIR "/usr/share/json-schema-test-suite/tests"

static const char *const drafts[] = {"draft4", "draft6", "draft7"};

/* The suite's files for the subset's keywords; const.json exists from draft 6 on. */
static const char *const keyword_files[] = {
	"type", "properties", "required", "additionalProperties", "items", "enum", "const",
	"minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern",
	"default",
};

static const char *const subset[] = {
	"type", "properties", "required", "additionalProperties", "items", "enum", "const",
	"minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern",
	"description", "default",
};

/* Keywords outside the subset that never change a result. */
static const char *const annotations[] = {"title", "$comment", "examples", "$schema"};

static int listed(const char *k, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(k, list[i]) == 0)
			return 1;
	return 0;
}

/* The first keyword in schema or its subschemas that is outside the subset and could
 * change a result, or NULL: a case whose schema has one is skipped, since the validator
 * ignores that keyword as it must. In the files run here that is patternProperties
 * (properties.json and additionalProperties.json: it adds constraints of its own and
 * changes which members count as additional). Others it would catch: $ref and
 * definitions (never resolved), additionalItems (bounds the tuple form's extra items),
 * format, draft 6's numeric exclusiveMinimum/exclusiveMaximum, allOf, anyOf, not. */
static const char *foreign(const json_t *s)
{
	const char *k, *why;
	json_t *v, *m;
	size_t i;

	if (!json_is_object(s))
		return NULL;
	json_object_foreach((json_t *)s, k, v) {
		if (listed(k, annotations, sizeof(annotations) / sizeof(annotations[0])))
			continue;
		/* draft 4's boolean form modifies minimum/maximum and is supported */
		if ((strcmp(k, "exclusiveMinimum") == 0 || strcmp(k, "exclusiveMaximum") == 0) &&
		    json_is_boolean(v))
			continue;
		if (!listed(k, subset, sizeof(subset) / sizeof(subset[0])))
			return k;
		if (strcmp(k, "properties") == 0 && json_is_object(v)) {
			const char *name;
			json_object_foreach(v, name, m)
				if ((why = foreign(m)) != NULL)
					return why;
		} else if ((strcmp(k, "items") == 0 || strcmp(k, "additionalProperties") == 0) &&
		    json_is_array(v)) {
			json_array_foreach(v, i, m)
				if ((why = foreign(m)) != NULL)
					return why;
		} else if (strcmp(k, "items") == 0 || strcmp(k, "additionalProperties") == 0) {
			if ((why = foreign(v)) != NULL)
				return why;
		}
	}
	return NULL;
}

/* One suite file: every case of every group whose schema stays inside the subset. */
static void run_file(const char *dir, const char *draft, const char *name)
{
	char path[512], what[256], err[512];
	int run = 0, skipped = 0, failed = 0;
	json_t *root, *group, *c;
	json_error_t je;
	struct stat st;
	size_t i, j;

	snprintf(path, sizeof(path), "%s/%s/%s.json", dir, draft, name);
	if (strcmp(name, "const") == 0 && strcmp(draft, "draft4") == 0 && stat(path, &st) != 0)
		return; /* const is a draft 6 keyword */
	root = json_load_file(path, 0, &je);
	snprintf(what, sizeof(what), "%s/%s.json loads", draft, name);
	if (!CHECK(json_is_array(root), what)) {
		printf("#   %s: %s\n", path, je.text);
		json_decref(root);
		return;
	}
	json_array_foreach(root, i, group) {
		const json_t *schema = json_object_get(group, "schema");
		const json_t *cases = json_object_get(group, "tests");
		const char *gd = json_string_value(json_object_get(group, "description"));
		const char *why = foreign(schema);
		int schema_ok;

		if (why != NULL) {
			skipped += (int)json_array_size(cases);
			printf("# skip %s/%s.json: %s: uses %s\n", draft, name, gd, why);
			continue;
		}
		schema_ok = crab_jschema_check(schema, err, sizeof(err)) == 0;
		if (!schema_ok)
			printf("# FAIL %s/%s.json: %s: schema refused: %s\n", draft, name, gd, err);
		json_array_foreach(cases, j, c) {
			int want = json_is_true(json_object_get(c, "valid")), got = 0;
			const char *cd = json_string_value(json_object_get(c, "description"));

			run++;
			err[0] = '\0';
			if (schema_ok)
				got = crab_jschema_validate(schema, json_object_get(c, "data"), "data",
				    err, sizeof(err)) == 0;
			if (schema_ok && got == want)
				continue;
			failed++;
			printf("# FAIL %s/%s.json: %s: %s: want %s, got %s%s%s\n", draft, name, gd, cd,
			    want ? "valid" : "invalid", got ? "valid" : "invalid",
			    err[0] != '\0' ? ": " : "", err);
		}
	}
	snprintf(what, sizeof(what), "%s/%s.json: %d run, %d skipped, %d failed", draft, name,
	    run, skipped, failed);
	CHECK(failed == 0 && run > 0, what);
	json_decref(root);
}

static void test_suite(void)
{
	const char *dir = getenv("CRAB_JSON_SCHEMA_SUITE");
	char path[512];
	struct stat st;

	if (dir == NULL)
		dir = SUITE_DIR;
	snprintf(path, sizeof(path), "%s/draft4", dir);
	if (!CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode),
		"json-schema-test-suite is installed")) {
		printf("#   no %s: install it with apt-get install json-schema-test-suite\n", path);
		return;
	}
	for (size_t d = 0; d < sizeof(drafts) / sizeof(drafts[0]); d++) {
		snprintf(path, sizeof(path), "%s/%s", dir, drafts[d]);
		if (d > 0 && stat(path, &st) != 0) {
			printf("# %s: not in this version of the suite\n", drafts[d]);
			continue;
		}
		for (size_t f = 0; f < sizeof(keyword_files) / sizeof(keyword_files[0]); f++)
			run_file(dir, drafts[d], keyword_files[f]);
	}
}

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

static char err[512];

/* The message for instance against schema, or "valid". */
static const char *verdict(const char *schema, const char *instance, const char *at)
{
	json_t *s = parse(schema), *v = parse(instance);
	int rc = crab_jschema_validate(s, v, at, err, sizeof(err));

	json_decref(s);
	json_decref(v);
	return rc == 0 ? "valid" : err;
}

static const char *checked(const char *schema)
{
	json_t *s = parse(schema);
	int rc = crab_jschema_check(s, err, sizeof(err));

	json_decref(s);
	return rc == 0 ? "ok" : err;
}

#define ARGS_SCHEMA                                                                          \
	"{\"type\":\"object\",\"required\":[\"query\"],\"additionalProperties\":false,"       \
	"\"properties\":{\"query\":{\"type\":\"string\",\"minLength\":1,"                      \
	"\"description\":\"what to find\"},"                                                  \
	"\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100,\"default\":10},"       \
	"\"items\":{\"type\":\"array\",\"maxItems\":3,\"items\":{\"type\":\"object\","         \
	"\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"}}}},"           \
	"\"mode\":{\"enum\":[\"fast\",\"exact\"]},"                                           \
	"\"tag\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"},"                            \
	"\"when\":{\"type\":[\"string\",\"null\"]},\"a b\":{\"type\":\"boolean\"}}}"

static void test_messages(void)
{
	const char *s = ARGS_SCHEMA;

	CHECK_STR(checked(s), "ok", "a tool's schema passes check");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"limit\":50.0,\"items\":[{\"name\":\"a\"}],"
		"\"mode\":\"fast\",\"tag\":\"abc\",\"when\":null,\"a b\":true}", "arguments"),
	    "valid", "valid arguments pass (50.0 counts as an integer)");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"items\":[{\"name\":\"a\"},{\"name\":\"b\"},"
		"{\"name\":3}]}", "arguments"),
	    "arguments.items[2].name: expected a string, got integer", "a nested type error");
	CHECK_STR(verdict(s, "{}", "arguments"), "arguments: missing required property \"query\"",
	    "a missing required property");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"limit\":500}", "arguments"),
	    "arguments.limit: 500 is above the maximum 100", "above the maximum");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"limit\":0}", "arguments"),
	    "arguments.limit: 0 is below the minimum 1", "below the minimum");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"limit\":2.5}", "arguments"),
	    "arguments.limit: expected an integer, got number", "a fraction is not an integer");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"extra\":1}", "arguments"),
	    "arguments: unexpected property \"extra\"", "additionalProperties false");
	CHECK_STR(verdict(s, "{\"query\":\"\"}", "arguments"),
	    "arguments.query: string has 0 characters, fewer than the minimum 1", "minLength");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"mode\":\"slow\"}", "arguments"),
	    "arguments.mode: \"slow\" is not one of the allowed values", "enum");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"tag\":\"ABC\"}", "arguments"),
	    "arguments.tag: \"ABC\" does not match the pattern \"^[a-z]+$\"", "pattern");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"when\":5}", "arguments"),
	    "arguments.when: expected string or null, got integer", "a list of types");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"a b\":1}", "arguments"),
	    "arguments[\"a b\"]: expected a boolean, got integer", "an odd name is quoted");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"items\":[{\"name\":\"a\"},{\"name\":\"a\"},"
		"{\"name\":\"a\"},{\"name\":\"a\"}]}", "arguments"),
	    "arguments.items: array has 4 items, more than the maximum 3", "maxItems");
	CHECK_STR(verdict(s, "{}", NULL), "missing required property \"query\"",
	    "no root name: no path on a root error");
	CHECK_STR(verdict(s, "{\"query\":\"x\",\"limit\":101}", ""),
	    "limit: 101 is above the maximum 100", "no root name: the path starts at the member");
	CHECK_STR(verdict("{\"items\":[{\"type\":\"string\"}]}", "[1]", "args"),
	    "args[0]: expected a string, got integer", "tuple items name their index");
	CHECK_STR(verdict("{\"minimum\":1.1}", "1", "n"), "n: 1 is below the minimum 1.1",
	    "a real limit prints as written");
}

static void test_semantics(void)
{
	CHECK_STR(verdict("{\"maxLength\":1}", "\"\xc3\xa9\"", "s"), "valid",
	    "maxLength counts characters, not bytes");
	CHECK_STR(verdict("{\"maxLength\":2}", "\"\xe6\x97\xa5\xe6\x9c\xac\"", "s"), "valid",
	    "two CJK characters are two");
	CHECK_STR(verdict("{\"minLength\":2}", "\"\xf0\x9f\x92\xa9\"", "s"),
	    "s: string has 1 character, fewer than the minimum 2",
	    "a character outside the BMP is one, not two");
	CHECK_STR(verdict("{\"pattern\":\"a+\"}", "\"xxaxx\"", "s"), "valid",
	    "a pattern searches, unanchored");
	CHECK_STR(verdict("{\"pattern\":\"^a*$\"}", "\"ab\"", "s"),
	    "s: \"ab\" does not match the pattern \"^a*$\"", "anchors anchor");
	CHECK_STR(verdict("{\"pattern\":\"^a\"}", "5", "s"), "valid",
	    "pattern applies to strings only");
	CHECK_STR(verdict("{\"enum\":[1]}", "1.0", "v"), "valid", "enum: 1.0 equals 1");
	CHECK_STR(verdict("{\"const\":1.0}", "1", "v"), "valid", "const: 1 equals 1.0");
	CHECK_STR(verdict("{\"const\":{\"a\":[1,2]}}", "{\"a\":[1.0,2]}", "v"), "valid",
	    "numbers compare as numbers deep inside");
	CHECK_STR(verdict("{\"enum\":[true]}", "1", "v"), "v: 1 is not one of the allowed values",
	    "true is not 1");
	CHECK_STR(verdict("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":2}", "v"),
	    "v: an object is not the one allowed value", "const: an extra member differs");
	CHECK_STR(verdict("{\"type\":\"integer\"}", "1.0", "v"), "valid", "1.0 is an integer");
	CHECK_STR(verdict("{\"type\":\"integer\"}", "1e300", "v"), "valid",
	    "a huge whole double is an integer");
	CHECK_STR(verdict("true", "{\"x\":[1]}", "v"), "valid", "the schema true allows anything");
	CHECK_STR(verdict("false", "1", "v"), "v: no value is allowed here",
	    "the schema false allows nothing");
	CHECK_STR(verdict("{\"properties\":{\"x\":false}}", "{\"x\":1}", "v"),
	    "v.x: no value is allowed here", "false as a member's schema");
	CHECK_STR(verdict("{\"additionalProperties\":{\"type\":\"string\"}}", "{\"x\":1}", "v"),
	    "v.x: expected a string, got integer", "additionalProperties as a schema");
	CHECK_STR(verdict("{\"maximum\":3,\"exclusiveMaximum\":true}", "3", "v"),
	    "v: 3 is not below the exclusive maximum 3", "draft 4's exclusiveMaximum");
	CHECK_STR(verdict("{\"minimum\":3,\"exclusiveMinimum\":true}", "3", "v"),
	    "v: 3 is not above the exclusive minimum 3", "draft 4's exclusiveMinimum");
	CHECK_STR(verdict("{\"maximum\":3,\"exclusiveMaximum\":2}", "3", "v"), "valid",
	    "draft 6's numeric exclusiveMaximum is not ours, so ignored");
	CHECK_STR(verdict("{\"minProperties\":5,\"format\":\"email\",\"$ref\":\"#/x\"}",
		"{\"a\":\"b\"}", "v"), "valid", "unknown keywords are ignored");
	CHECK_STR(verdict("{\"minItems\":2.0}", "[1]", "v"),
	    "v: array has 1 item, fewer than the minimum 2", "a count may be written 2.0");
}

/* {"properties":{"a":{"properties":{"a": ... {}}}}}, levels deep. */
static json_t *deep_schema(int levels)
{
	json_t *s = json_object();

	for (int i = 1; i < levels; i++) {
		json_t *outer = json_object(), *props = json_object();
		json_object_set_new(props, "a", s);
		json_object_set_new(outer, "properties", props);
		s = outer;
	}
	return s;
}

/* [[[...]]], levels arrays deep. */
static json_t *deep_array(int levels)
{
	json_t *v = json_array();

	for (int i = 1; i < levels; i++) {
		json_t *outer = json_array();
		json_array_append_new(outer, v);
		v = outer;
	}
	return v;
}

static void test_check(void)
{
	json_t *s, *v;

	CHECK(strncmp(checked("{\"pattern\":\"(\"}"), "schema: \"pattern\" \"(\" does not compile",
		  38) == 0, "a pattern that does not compile is refused");
	printf("#   %s\n", err);
	CHECK_STR(checked("{\"type\":5}"),
	    "schema: \"type\" must be a type name or an array of type names", "\"type\": 5");
	CHECK_STR(checked("{\"type\":\"strng\"}"), "schema: \"type\" names an unknown type \"strng\"",
	    "an unknown type name");
	CHECK_STR(checked("{\"type\":[]}"),
	    "schema: \"type\" must be a type name or an array of type names", "an empty type list");
	CHECK_STR(checked("{\"required\":\"x\"}"),
	    "schema: \"required\" must be an array of property names", "\"required\": \"x\"");
	CHECK_STR(checked("{\"required\":[1]}"),
	    "schema: \"required\" must be an array of property names", "\"required\": [1]");
	CHECK_STR(checked("{\"minLength\":-1}"),
	    "schema: \"minLength\" must be a whole number, not negative", "a negative minLength");
	CHECK_STR(checked("{\"maxItems\":1.5}"),
	    "schema: \"maxItems\" must be a whole number, not negative", "a fractional maxItems");
	CHECK_STR(checked("{\"maximum\":\"9\"}"), "schema: \"maximum\" must be a number",
	    "a maximum in a string");
	CHECK_STR(checked("{\"enum\":{}}"), "schema: \"enum\" must be an array", "enum not an array");
	CHECK_STR(checked("{\"description\":7}"), "schema: \"description\" must be a string",
	    "a description that is no text");
	CHECK_STR(checked("{\"properties\":{\"a\":5}}"),
	    "schema.properties.a: a schema must be an object or a boolean, not integer",
	    "a member's schema that is a number");
	CHECK_STR(checked("{\"properties\":[]}"), "schema: \"properties\" must be an object",
	    "properties as an array");
	CHECK_STR(checked("{\"items\":[{},\"x\"]}"),
	    "schema.items[1]: a schema must be an object or a boolean, not string",
	    "a tuple position that is no schema");
	CHECK_STR(checked("{\"additionalProperties\":1}"),
	    "schema: \"additionalProperties\" must be a boolean or a schema",
	    "additionalProperties a number");
	CHECK(strstr(checked("{\"items\":{\"properties\":{\"x\":{\"pattern\":\"[\"}}}}"),
		  "schema.items.properties.x: \"pattern\" \"[\" does not compile") == err,
	    "a bad pattern deep inside is found, and its place named");
	CHECK_STR(checked("{\"format\":5,\"minProperties\":\"x\",\"exclusiveMinimum\":\"y\"}"), "ok",
	    "keywords outside the subset are not checked");
	CHECK_STR(checked("true"), "ok", "true is a schema");
	CHECK_STR(checked("false"), "ok", "false is a schema");
	CHECK_STR(checked("5"), "schema: a schema must be an object or a boolean, not integer",
	    "5 is not a schema");
	CHECK_STR(checked("null"), "schema: a schema must be an object or a boolean, not null",
	    "null is not a schema");
	CHECK_STR(checked("[{}]"), "schema: a schema must be an object or a boolean, not array",
	    "an array is not a schema");
	CHECK(crab_jschema_check(NULL, err, sizeof(err)) != 0, "no schema at all is refused");

	s = deep_schema(40);
	CHECK(crab_jschema_check(s, err, sizeof(err)) != 0 && strstr(err, "deeper than 32"),
	    "a schema 40 levels deep is refused");
	printf("#   %.100s...\n", err);
	v = json_object();
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) != 0,
	    "  and validation against it refuses too");
	json_decref(s);
	s = deep_schema(32);
	CHECK(crab_jschema_check(s, err, sizeof(err)) == 0, "a schema 32 levels deep passes");
	json_decref(s);
	s = deep_schema(33);
	CHECK(crab_jschema_check(s, err, sizeof(err)) != 0, "a schema 33 levels deep is refused");
	json_decref(s);
	s = json_object();
	json_object_set_new(s, "enum", deep_array(40));
	CHECK(crab_jschema_check(s, err, sizeof(err)) != 0 && strstr(err, "deeper than 32"),
	    "an enum value 40 levels deep is refused");
	json_decref(s);
	json_decref(v);
	s = json_object();
	json_object_set_new(s, "pattern", json_stringn("a\0b", 3));
	CHECK_STR(crab_jschema_check(s, err, sizeof(err)) == 0 ? "ok" : err,
	    "schema: \"pattern\" holds a NUL character", "a pattern with a NUL is refused");
	json_decref(s);
}

static void test_depth(void)
{
	json_t *s = json_object(), *t = json_true(), *v;

	v = deep_array(40);
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) != 0 &&
		strstr(err, "nested deeper than 32 levels") != NULL,
	    "an instance 40 levels deep is refused");
	printf("#   %.100s...\n", err);
	CHECK(crab_jschema_validate(t, v, "v", err, sizeof(err)) != 0,
	    "  even by the schema true");
	json_decref(v);
	v = deep_array(33);
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) != 0,
	    "an instance 33 levels deep is refused");
	json_decref(v);
	v = deep_array(32);
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) == 0,
	    "an instance 32 levels deep passes");
	json_decref(v);
	/* 2000 levels: the depth walk stops at 33 whatever lies below */
	v = deep_array(2000);
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) != 0,
	    "an instance 2000 levels deep is refused without recursing through it");
	json_decref(v);
	json_decref(s);
	json_decref(t);
}

static void test_hostile(void)
{
	json_t *s = parse("{\"pattern\":\"^a*$\"}");
	json_t *v = json_stringn("aa\0b", 4), *k, *deep;
	char small[8], key[1201];

	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) != 0 &&
		strstr(err, "does not match") != NULL,
	    "a pattern sees a string whole, past a NUL");
	printf("#   %s\n", err);
	json_decref(v);
	json_decref(s);
	s = parse("{\"pattern\":\"^a\",\"maxLength\":3}");
	v = json_stringn("a\0bc", 4);
	CHECK_STR(crab_jschema_validate(s, v, "v", err, sizeof(err)) == 0 ? "valid" : err,
	    "v: string has 4 characters, more than the maximum 3", "a NUL counts as a character");
	json_decref(v);
	v = json_stringn("a\0b", 3);
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) == 0,
	    "  and an unanchored match still finds its start");
	json_decref(v);
	v = json_string("abcdef");
	CHECK(crab_jschema_validate(s, v, "v", small, sizeof(small)) != 0 &&
		strlen(small) == sizeof(small) - 1, "a small error buffer is filled and ended");
	CHECK(crab_jschema_validate(s, v, "v", NULL, 0) != 0, "no error buffer at all");
	CHECK(crab_jschema_validate(s, NULL, "v", err, sizeof(err)) != 0, "no instance");
	CHECK(crab_jschema_validate(NULL, v, "v", err, sizeof(err)) != 0, "no schema");
	json_decref(v);
	json_decref(s);

	/* a long path of two-byte characters: cut to its buffer on a character boundary */
	for (size_t i = 0; i + 1 < sizeof(key); i += 2)
		memcpy(key + i, "\xc3\xa9", 2);
	key[sizeof(key) - 1] = '\0';
	s = parse("{\"additionalProperties\":{\"additionalProperties\":{\"type\":\"string\"}}}");
	deep = json_object();
	json_object_set_new(deep, key, json_integer(1));
	v = json_object();
	json_object_set_new(v, key, deep);
	CHECK(crab_jschema_validate(s, v, "v", err, sizeof(err)) != 0, "a long path fails");
	k = json_string(err);
	CHECK(k != NULL && strlen(err) < sizeof(err), "  with a message cut to valid UTF-8");
	json_decref(k);
	CHECK(crab_jschema_validate(s, v, "v", small, sizeof(small)) != 0 &&
		(k = json_string(small)) != NULL, "  even in 8 bytes");
	json_decref(k);
	json_decref(v);
	json_decref(s);

	CHECK_STR(verdict("{\"items\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}", "[\"a\"]",
		"v"), "valid", "a tuple longer than the array");
	CHECK_STR(verdict("{\"required\":[\"a\"],\"type\":\"string\"}", "\"x\"", "v"), "valid",
	    "required applies to objects only");
	CHECK_STR(verdict("{\"properties\":{\"a\":{\"type\":\"string\"}}}", "[1]", "v"), "valid",
	    "properties applies to objects only");
}

int main(void)
{
	test_suite();
	test_messages();
	test_semantics();
	test_check();
	test_depth();
	test_hostile();
	return unit_done();
}
