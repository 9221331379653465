/* jschema.c: see jschema.h. Two recursive walks, check (the schema alone) and valid (the
 * instance against it), each bounded by CRAB_JSCHEMA_DEPTH_MAX. Validation first runs
 * check and measures the instance's depth, so the walk proper meets only a well-formed
 * schema and an instance shallow enough; it still tests every kind it relies on, so a
 * path that check missed cannot crash it. Regular expressions are compiled where they
 * are used and freed at once: schemas are small, and nothing outlives a call. */
#include "jschema.h"

#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_LEN 512 /* where a message points: cut, not overflowed, past this */
#define SHOW_MAX 48  /* bytes of a value quoted in a message */
#define SHOW_LEN (SHOW_MAX + 8)
#define NUM_LEN 40

struct walk {
	char *err;
	size_t errlen;
	char path[PATH_LEN];
	size_t len;
};

static const char *const type_names[] = {
	"object", "array", "string", "number", "integer", "boolean", "null",
};

/* Drops a UTF-8 sequence cut short at the end of s: a truncated message stays valid
 * UTF-8, since it may end up in a JSON error body and jansson refuses invalid text. */
static void trim_utf8(char *s)
{
	size_t n = strlen(s), j = n, want;
	unsigned char lead;

	while (j > 0 && ((unsigned char)s[j - 1] & 0xc0) == 0x80)
		j--;
	if (j == 0)
		return;
	lead = (unsigned char)s[j - 1];
	want = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	if (n - (j - 1) < want)
		s[j - 1] = '\0';
}

static int fail(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct walk *w, const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	if (w->err == NULL || w->errlen == 0)
		return -1;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim_utf8(msg);
	if (w->len > 0)
		snprintf(w->err, w->errlen, "%s: %s", w->path, msg);
	else
		snprintf(w->err, w->errlen, "%s", msg);
	trim_utf8(w->err);
	return -1;
}

static void path_add(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void path_add(struct walk *w, const char *fmt, ...)
{
	size_t room = sizeof(w->path) - w->len;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(w->path + w->len, room, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < room) {
		w->len += (size_t)n;
		return;
	}
	/* cut to what fits, on a character boundary; what came before stays as it was */
	if (n < 0)
		w->path[w->len] = '\0';
	trim_utf8(w->path + w->len);
	w->len += strlen(w->path + w->len);
}

/* Back to a length an earlier push returned: always on a character boundary. */
static void path_pop(struct walk *w, size_t len)
{
	w->len = len;
	w->path[len] = '\0';
}

/* A member name as ".name" when it reads as one, else as ["quoted"]. */
static size_t push_key(struct walk *w, const char *k)
{
	size_t old = w->len;
	json_t *s;
	char *q;

	if (*k != '\0' && strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789_-$") == strlen(k)) {
		path_add(w, "%s%s", w->len > 0 ? "." : "", k);
		return old;
	}
	s = json_string(k);
	q = s != NULL ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
	path_add(w, "[%s]", q != NULL ? q : "\"?\"");
	free(q);
	json_decref(s);
	return old;
}

static size_t push_index(struct walk *w, size_t i)
{
	size_t old = w->len;

	path_add(w, "[%zu]", i);
	return old;
}

static void walk_init(struct walk *w, char *err, size_t errlen, const char *root)
{
	w->err = err;
	w->errlen = errlen;
	w->len = 0;
	w->path[0] = '\0';
	path_add(w, "%s", root != NULL ? root : "");
	if (err != NULL && errlen > 0)
		err[0] = '\0';
}

/* A whole number, as JSON Schema counts them: 1.0 is one. */
static int is_integral(const json_t *v)
{
	double d;

	if (json_is_integer(v))
		return 1;
	if (!json_is_real(v))
		return 0;
	d = json_real_value(v);
	/* every double of magnitude 2^53 or more is whole, and the cast below is defined */
	if (d >= 9007199254740992.0 || d <= -9007199254740992.0)
		return 1;
	return (double)(long long)d == d;
}

/* -1, 0 or 1 as a is below, equal to or above b: two integers exactly, else as doubles. */
static int num_cmp(const json_t *a, const json_t *b)
{
	double x, y;

	if (json_is_integer(a) && json_is_integer(b)) {
		json_int_t i = json_integer_value(a), j = json_integer_value(b);
		return (i > j) - (i < j);
	}
	x = json_number_value(a);
	y = json_number_value(b);
	return (x > y) - (x < y);
}

/* The shortest of %.15g..%.17g that reads back as the same double: 1.1, not 1.1000...1. */
static void fmt_num(const json_t *n, char *buf, size_t size)
{
	double d = json_number_value(n);

	if (json_is_integer(n)) {
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(n));
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
}

/* A value for a message: scalars as JSON cut to SHOW_MAX bytes, containers by kind. */
static const char *show(const json_t *v, char *buf, size_t size)
{
	char *s;

	if (json_is_object(v))
		return "an object";
	if (json_is_array(v))
		return "an array";
	if (json_is_number(v)) {
		fmt_num(v, buf, size);
		return buf;
	}
	s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (s == NULL)
		return "a value";
	if (strlen(s) > SHOW_MAX) {
		s[SHOW_MAX] = '\0';
		trim_utf8(s);
		snprintf(buf, size, "%s...", s);
	} else {
		snprintf(buf, size, "%s", s);
	}
	free(s);
	return buf;
}

static const char *kind_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
		return "integer";
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static const char *with_article(const char *type)
{
	static const char *const names[][2] = {
		{"object", "an object"}, {"array", "an array"}, {"string", "a string"},
		{"number", "a number"}, {"integer", "an integer"}, {"boolean", "a boolean"},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(type, names[i][0]) == 0)
			return names[i][1];
	return type;
}

static int known_type(const char *t)
{
	for (size_t i = 0; i < sizeof(type_names) / sizeof(type_names[0]); i++)
		if (strcmp(t, type_names[i]) == 0)
			return 1;
	return 0;
}

static int is_type(const json_t *v, const char *t)
{
	if (strcmp(t, "integer") == 0)
		return is_integral(v);
	if (strcmp(t, "number") == 0)
		return json_is_number(v);
	if (strcmp(t, "boolean") == 0)
		return json_is_boolean(v);
	return strcmp(t, kind_of(v)) == 0;
}

/* JSON equality where 1 and 1.0 are the same number; depth only guards the recursion
 * (the instance side was measured before). */
static int equal(const json_t *a, const json_t *b, int depth)
{
	const char *k;
	json_t *v;
	size_t i;

	if (json_is_number(a) && json_is_number(b))
		return num_cmp(a, b) == 0;
	if (json_typeof(a) != json_typeof(b) || depth > CRAB_JSCHEMA_DEPTH_MAX)
		return 0;
	switch (json_typeof(a)) {
	case JSON_OBJECT:
		if (json_object_size(a) != json_object_size(b))
			return 0;
		json_object_foreach((json_t *)a, k, v) {
			const json_t *o = json_object_get(b, k);
			if (o == NULL || !equal(v, o, depth + 1))
				return 0;
		}
		return 1;
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		json_array_foreach((json_t *)a, i, v)
			if (!equal(v, json_array_get(b, i), depth + 1))
				return 0;
		return 1;
	case JSON_STRING:
		return json_equal(a, b);
	default:
		return 1; /* true, false, null: the kind is the value */
	}
}

/* Fails when v holds containers nested more than CRAB_JSCHEMA_DEPTH_MAX deep; level is
 * v's own, 1 for the root. */
static int shallow(struct walk *w, const json_t *v, int level)
{
	const char *k;
	json_t *m;
	size_t i, old;

	if (!json_is_object(v) && !json_is_array(v))
		return 0;
	if (level > CRAB_JSCHEMA_DEPTH_MAX)
		return fail(w, "nested deeper than %d levels", CRAB_JSCHEMA_DEPTH_MAX);
	if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, m) {
			old = push_index(w, i);
			if (shallow(w, m, level + 1) != 0)
				return -1;
			path_pop(w, old);
		}
		return 0;
	}
	json_object_foreach((json_t *)v, k, m) {
		old = push_key(w, k);
		if (shallow(w, m, level + 1) != 0)
			return -1;
		path_pop(w, old);
	}
	return 0;
}

/* minLength and the like: a whole number, not negative. */
static int is_count(const json_t *v)
{
	return is_integral(v) && json_number_value(v) >= 0;
}

static int check_schema(struct walk *w, const json_t *s, int level);

static int check_type_kw(struct walk *w, const json_t *t)
{
	char buf[SHOW_LEN];
	const json_t *e;
	size_t i;

	if (json_is_string(t)) {
		if (!known_type(json_string_value(t)))
			return fail(w, "\"type\" names an unknown type %s", show(t, buf, sizeof(buf)));
		return 0;
	}
	if (!json_is_array(t) || json_array_size(t) == 0)
		return fail(w, "\"type\" must be a type name or an array of type names");
	for (i = 0; i < json_array_size(t); i++) {
		e = json_array_get(t, i);
		if (!json_is_string(e))
			return fail(w, "\"type\" must be a type name or an array of type names");
		if (!known_type(json_string_value(e)))
			return fail(w, "\"type\" names an unknown type %s", show(e, buf, sizeof(buf)));
	}
	return 0;
}

static int check_pattern(struct walk *w, const json_t *p)
{
	char buf[SHOW_LEN], why[128];
	regex_t re;
	int rc;

	if (!json_is_string(p))
		return fail(w, "\"pattern\" must be a string");
	if (strlen(json_string_value(p)) != json_string_length(p))
		return fail(w, "\"pattern\" holds a NUL character");
	rc = regcomp(&re, json_string_value(p), REG_EXTENDED | REG_NOSUB);
	if (rc != 0) {
		regerror(rc, &re, why, sizeof(why));
		return fail(w, "\"pattern\" %s does not compile: %s", show(p, buf, sizeof(buf)), why);
	}
	regfree(&re);
	return 0;
}

/* The subschemas: properties' members, additionalProperties, items. */
static int check_children(struct walk *w, const json_t *s, int level)
{
	const json_t *p = json_object_get(s, "properties");
	const json_t *a = json_object_get(s, "additionalProperties");
	const json_t *it = json_object_get(s, "items");
	const char *k;
	json_t *m;
	size_t i, old, old2;

	if (p != NULL) {
		if (!json_is_object(p))
			return fail(w, "\"properties\" must be an object");
		old = push_key(w, "properties");
		json_object_foreach((json_t *)p, k, m) {
			old2 = push_key(w, k);
			if (check_schema(w, m, level + 1) != 0)
				return -1;
			path_pop(w, old2);
		}
		path_pop(w, old);
	}
	if (a != NULL) {
		if (!json_is_boolean(a) && !json_is_object(a))
			return fail(w, "\"additionalProperties\" must be a boolean or a schema");
		old = push_key(w, "additionalProperties");
		if (check_schema(w, a, level + 1) != 0)
			return -1;
		path_pop(w, old);
	}
	if (it != NULL && json_is_array(it)) {
		json_array_foreach((json_t *)it, i, m) {
			old = push_key(w, "items");
			push_index(w, i);
			if (check_schema(w, m, level + 1) != 0)
				return -1;
			path_pop(w, old);
		}
	} else if (it != NULL) {
		if (!json_is_boolean(it) && !json_is_object(it))
			return fail(w, "\"items\" must be a schema or an array of schemas");
		old = push_key(w, "items");
		if (check_schema(w, it, level + 1) != 0)
			return -1;
		path_pop(w, old);
	}
	return 0;
}

static int check_schema(struct walk *w, const json_t *s, int level)
{
	static const char *const counts[] = {"minLength", "maxLength", "minItems", "maxItems"};
	const json_t *v;
	size_t i, old;
	json_t *e;

	if (json_is_boolean(s))
		return 0;
	if (!json_is_object(s))
		return fail(w, "a schema must be an object or a boolean, not %s", kind_of(s));
	if (level > CRAB_JSCHEMA_DEPTH_MAX)
		return fail(w, "schemas nested deeper than %d levels", CRAB_JSCHEMA_DEPTH_MAX);
	if ((v = json_object_get(s, "type")) != NULL && check_type_kw(w, v) != 0)
		return -1;
	if ((v = json_object_get(s, "required")) != NULL) {
		if (!json_is_array(v))
			return fail(w, "\"required\" must be an array of property names");
		json_array_foreach((json_t *)v, i, e)
			if (!json_is_string(e))
				return fail(w, "\"required\" must be an array of property names");
	}
	if ((v = json_object_get(s, "enum")) != NULL) {
		if (!json_is_array(v))
			return fail(w, "\"enum\" must be an array");
		old = push_key(w, "enum");
		if (shallow(w, v, 1) != 0)
			return -1;
		path_pop(w, old);
	}
	if ((v = json_object_get(s, "const")) != NULL) {
		old = push_key(w, "const");
		if (shallow(w, v, 1) != 0)
			return -1;
		path_pop(w, old);
	}
	if ((v = json_object_get(s, "minimum")) != NULL && !json_is_number(v))
		return fail(w, "\"minimum\" must be a number");
	if ((v = json_object_get(s, "maximum")) != NULL && !json_is_number(v))
		return fail(w, "\"maximum\" must be a number");
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
		if ((v = json_object_get(s, counts[i])) != NULL && !is_count(v))
			return fail(w, "\"%s\" must be a whole number, not negative", counts[i]);
	if ((v = json_object_get(s, "pattern")) != NULL && check_pattern(w, v) != 0)
		return -1;
	if ((v = json_object_get(s, "description")) != NULL && !json_is_string(v))
		return fail(w, "\"description\" must be a string");
	return check_children(w, s, level);
}

static int check_instance_type(struct walk *w, const json_t *t, const json_t *v)
{
	char list[160] = "";
	size_t n = 0, len = 0, i;
	const json_t *e;

	if (json_is_string(t)) {
		if (is_type(v, json_string_value(t)))
			return 0;
		return fail(w, "expected %s, got %s", with_article(json_string_value(t)),
		    kind_of(v));
	}
	n = json_array_size(t);
	for (i = 0; i < n; i++) {
		e = json_array_get(t, i);
		if (json_is_string(e) && is_type(v, json_string_value(e)))
			return 0;
	}
	for (i = 0; i < n && len < sizeof(list); i++) {
		e = json_array_get(t, i);
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ",
		    json_is_string(e) ? json_string_value(e) : "?");
	}
	return fail(w, "expected %s, got %s", list, kind_of(v));
}

static int check_number(struct walk *w, const json_t *s, const json_t *v)
{
	const json_t *lim;
	char a[NUM_LEN], b[NUM_LEN];
	int c, excl;

	if ((lim = json_object_get(s, "minimum")) != NULL && json_is_number(lim)) {
		c = num_cmp(v, lim);
		/* draft 4's boolean form; a number here is draft 6's own keyword, not ours */
		excl = json_is_true(json_object_get(s, "exclusiveMinimum"));
		fmt_num(v, a, sizeof(a));
		fmt_num(lim, b, sizeof(b));
		if (c < 0)
			return fail(w, "%s is below the minimum %s", a, b);
		if (c == 0 && excl)
			return fail(w, "%s is not above the exclusive minimum %s", a, b);
	}
	if ((lim = json_object_get(s, "maximum")) != NULL && json_is_number(lim)) {
		c = num_cmp(v, lim);
		excl = json_is_true(json_object_get(s, "exclusiveMaximum"));
		fmt_num(v, a, sizeof(a));
		fmt_num(lim, b, sizeof(b));
		if (c > 0)
			return fail(w, "%s is above the maximum %s", a, b);
		if (c == 0 && excl)
			return fail(w, "%s is not below the exclusive maximum %s", a, b);
	}
	return 0;
}

/* n against a count keyword: -1 below it, 1 above, 0 otherwise or when absent. */
static int count_cmp(size_t n, const json_t *s, const char *kw, char *lim, size_t limlen)
{
	const json_t *v = json_object_get(s, kw);

	if (v == NULL || !json_is_number(v))
		return 0;
	fmt_num(v, lim, limlen);
	if ((double)n < json_number_value(v))
		return -1;
	return (double)n > json_number_value(v);
}

static int check_string(struct walk *w, const json_t *s, const json_t *v)
{
	const char *str = json_string_value(v);
	size_t len = json_string_length(v), chars = 0;
	char lim[NUM_LEN], a[SHOW_LEN], b[SHOW_LEN];
	const json_t *p;
	regmatch_t m;
	regex_t re;
	int rc;

	/* code points, not bytes: every byte that does not continue a sequence starts one */
	for (size_t i = 0; i < len; i++)
		chars += ((unsigned char)str[i] & 0xc0) != 0x80;
	if (count_cmp(chars, s, "minLength", lim, sizeof(lim)) < 0)
		return fail(w, "string has %zu character%s, fewer than the minimum %s", chars,
		    chars == 1 ? "" : "s", lim);
	if (count_cmp(chars, s, "maxLength", lim, sizeof(lim)) > 0)
		return fail(w, "string has %zu characters, more than the maximum %s", chars, lim);
	p = json_object_get(s, "pattern");
	if (!json_is_string(p))
		return 0;
	if (regcomp(&re, json_string_value(p), REG_EXTENDED | REG_NOSUB) != 0)
		return fail(w, "\"pattern\" %s does not compile", show(p, b, sizeof(b)));
	if (len > 0x7fffffff) {
		regfree(&re);
		return fail(w, "string too long to match a pattern");
	}
	/* REG_STARTEND: the whole string even past a NUL; regexec searches, as ECMA does */
	m.rm_so = 0;
	m.rm_eo = (regoff_t)len;
	rc = regexec(&re, str, 1, &m, REG_STARTEND);
	regfree(&re);
	if (rc == REG_NOMATCH)
		return fail(w, "%s does not match the pattern %s", show(v, a, sizeof(a)),
		    show(p, b, sizeof(b)));
	if (rc != 0)
		return fail(w, "the pattern %s could not be run", show(p, b, sizeof(b)));
	return 0;
}

static int valid(struct walk *w, const json_t *s, const json_t *v, int level);

static int check_array(struct walk *w, const json_t *s, const json_t *v, int level)
{
	size_t n = json_array_size(v), i, old;
	const json_t *items = json_object_get(s, "items");
	char lim[NUM_LEN];

	if (count_cmp(n, s, "minItems", lim, sizeof(lim)) < 0)
		return fail(w, "array has %zu item%s, fewer than the minimum %s", n,
		    n == 1 ? "" : "s", lim);
	if (count_cmp(n, s, "maxItems", lim, sizeof(lim)) > 0)
		return fail(w, "array has %zu items, more than the maximum %s", n, lim);
	if (items == NULL)
		return 0;
	for (i = 0; i < n; i++) {
		/* the tuple form checks its positions only: additionalItems is not ours */
		const json_t *sub = json_is_array(items) ? json_array_get(items, i) : items;
		if (sub == NULL)
			break;
		old = push_index(w, i);
		if (valid(w, sub, json_array_get(v, i), level + 1) != 0)
			return -1;
		path_pop(w, old);
	}
	return 0;
}

static int check_object(struct walk *w, const json_t *s, const json_t *v, int level)
{
	const json_t *req = json_object_get(s, "required");
	const json_t *props = json_object_get(s, "properties");
	const json_t *addl = json_object_get(s, "additionalProperties");
	char buf[SHOW_LEN];
	const char *k;
	json_t *e;
	size_t i, old;

	json_array_foreach((json_t *)req, i, e)
		if (json_is_string(e) && json_object_get(v, json_string_value(e)) == NULL)
			return fail(w, "missing required property %s", show(e, buf, sizeof(buf)));
	json_object_foreach((json_t *)v, k, e) {
		const json_t *sub = json_is_object(props) ? json_object_get(props, k) : NULL;
		if (sub == NULL) {
			if (addl == NULL || json_is_true(addl))
				continue;
			if (json_is_false(addl)) {
				json_t *name = json_string(k);
				fail(w, "unexpected property %s", name != NULL ?
				    show(name, buf, sizeof(buf)) : "\"?\"");
				json_decref(name);
				return -1;
			}
			sub = addl;
		}
		old = push_key(w, k);
		if (valid(w, sub, e, level + 1) != 0)
			return -1;
		path_pop(w, old);
	}
	return 0;
}

static int valid(struct walk *w, const json_t *s, const json_t *v, int level)
{
	const json_t *k, *e;
	char a[SHOW_LEN];
	size_t i;

	if (json_is_true(s))
		return 0;
	if (json_is_false(s))
		return fail(w, "no value is allowed here");
	if (!json_is_object(s))
		return fail(w, "a schema must be an object or a boolean, not %s", kind_of(s));
	if (level > CRAB_JSCHEMA_DEPTH_MAX)
		return fail(w, "nested deeper than %d levels", CRAB_JSCHEMA_DEPTH_MAX);
	if ((k = json_object_get(s, "type")) != NULL && check_instance_type(w, k, v) != 0)
		return -1;
	if ((k = json_object_get(s, "enum")) != NULL && json_is_array(k)) {
		for (i = 0; i < json_array_size(k); i++)
			if (equal(json_array_get(k, i), v, 0))
				break;
		if (i == json_array_size(k))
			return fail(w, "%s is not one of the allowed values", show(v, a, sizeof(a)));
	}
	if ((e = json_object_get(s, "const")) != NULL && !equal(e, v, 0))
		return fail(w, "%s is not the one allowed value", show(v, a, sizeof(a)));
	if (json_is_number(v))
		return check_number(w, s, v);
	if (json_is_string(v))
		return check_string(w, s, v);
	if (json_is_array(v))
		return check_array(w, s, v, level);
	if (json_is_object(v))
		return check_object(w, s, v, level);
	return 0;
}

int crab_jschema_check(const json_t *schema, char *err, size_t errlen)
{
	struct walk w;

	walk_init(&w, err, errlen, "schema");
	if (schema == NULL)
		return fail(&w, "no schema");
	return check_schema(&w, schema, 1);
}

int crab_jschema_validate(const json_t *schema, const json_t *instance, const char *at,
    char *err, size_t errlen)
{
	struct walk w;

	if (crab_jschema_check(schema, err, errlen) != 0)
		return -1;
	walk_init(&w, err, errlen, at);
	if (instance == NULL)
		return fail(&w, "no value");
	if (shallow(&w, instance, 1) != 0)
		return -1;
	return valid(&w, schema, instance, 1);
}
