/* config_view.c: see config_view.h. The views, the YAML emitter and the diff; secrets,
 * the agents' policy and restarts are in config_policy.c. */
#include "config_view.h"

#include <ctype.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_parse.h"
#include "util.h"

/* The sections whose entries are keyed by id. */
static const char *const keyed_sections[] = {"models", "agents", "tenants"};

/* ---- views ---- */

json_t *crab_config_view_plain(const char *text, size_t len, char *err, size_t errlen)
{
	struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG};
	struct fy_diag_cfg dcfg;
	struct fy_diag *diag;
	struct fy_document *doc;
	struct fy_node *root;
	json_t *out = NULL;

	/* Errors are the loader's to report, with their places: collected, not printed. */
	fy_diag_cfg_default(&dcfg);
	diag = fy_diag_create(&dcfg);
	if (diag != NULL)
		fy_diag_set_collect_errors(diag, true);
	pcfg.diag = diag;
	doc = fy_document_build_from_string(&pcfg, text, len);
	root = doc ? fy_document_root(doc) : NULL;

	if (root == NULL || fy_node_get_type(root) != FYNT_MAPPING)
		snprintf(err, errlen, "the configuration is %s", doc ? "no mapping" : "not YAML");
	else
		out = cfg_yaml_to_json(root);
	if (doc != NULL)
		fy_document_destroy(doc);
	if (diag != NULL) {
		fy_diag_set_collect_errors(diag, false);
		fy_diag_unref(diag);
	}
	return out;
}

static int is_keyed_section(const char *key)
{
	for (size_t i = 0; i < CRAB_ARRAY_LEN(keyed_sections); i++) {
		if (strcmp(keyed_sections[i], key) == 0)
			return 1;
	}
	return 0;
}

/* A list whose every entry is a mapping with a string id, no id twice. */
static int keyable(const json_t *list)
{
	json_t *seen, *e;
	size_t i;
	int ok = 1;

	if (!json_is_array(list))
		return 0;
	seen = json_object();
	json_array_foreach(list, i, e) {
		const char *id = json_string_value(json_object_get(e, "id"));
		if (!json_is_object(e) || id == NULL || json_object_get(seen, id) != NULL) {
			ok = 0;
			break;
		}
		json_object_set_new(seen, id, json_true());
	}
	json_decref(seen);
	return ok;
}

json_t *crab_config_view_keyed(const json_t *plain)
{
	json_t *out = json_deep_copy(plain), *v;
	const char *key;

	json_object_foreach(out, key, v) {
		json_t *obj, *e;
		size_t i;

		if (!is_keyed_section(key) || !keyable(v))
			continue;
		obj = json_object();
		json_array_foreach(v, i, e) {
			json_t *entry = json_deep_copy(e);
			const char *id = json_string_value(json_object_get(e, "id"));
			json_object_del(entry, "id");
			json_object_set_new(obj, id, entry);
		}
		json_object_set_new(out, key, obj); /* replacing a member keeps the walk valid */
	}
	return out;
}

json_t *crab_config_view_unkeyed(const json_t *keyed, char *err, size_t errlen)
{
	json_t *out = json_deep_copy(keyed), *v;
	const char *key;

	if (!json_is_object(out)) {
		snprintf(err, errlen, "the configuration must be a mapping");
		json_decref(out);
		return NULL;
	}
	json_object_foreach(out, key, v) {
		const char *id;
		json_t *list, *e;

		if (!is_keyed_section(key) || !json_is_object(v))
			continue;
		list = json_array();
		json_object_foreach(v, id, e) {
			json_t *entry, *given = json_object_get(e, "id"), *m;
			const char *k;

			if (!json_is_object(e)) {
				snprintf(err, errlen, "'%s.%s' must be a mapping", key, id);
				goto fail;
			}
			if (given != NULL && !(json_is_string(given) &&
						 strcmp(json_string_value(given), id) == 0)) {
				snprintf(err, errlen, "'%s.%s.id' must be '%s' (its key) or left out",
				    key, id, id);
				goto fail;
			}
			entry = json_pack("{s:s}", "id", id);
			json_object_foreach(e, k, m) {
				if (strcmp(k, "id") != 0)
					json_object_set(entry, k, m);
			}
			json_array_append_new(list, entry);
		}
		json_object_set_new(out, key, list);
		continue;
fail:
		json_decref(list);
		json_decref(out);
		return NULL;
	}
	return out;
}

json_t *crab_config_view(const char *text, size_t len, char *err, size_t errlen)
{
	json_t *plain = crab_config_view_plain(text, len, err, errlen), *keyed;

	if (plain == NULL)
		return NULL;
	keyed = crab_config_view_keyed(plain);
	json_decref(plain);
	return keyed;
}

/* ---- YAML ---- */

static void add(struct crab_buf *b, const char *s)
{
	crab_buf_add(b, s, strlen(s));
}

static void indent(struct crab_buf *b, int level)
{
	for (int i = 0; i < level; i++)
		add(b, "  ");
}

/* Whether s may be written plain and read back as the same string by the loader: a
 * conservative set (a letter or '_' or '/' first, then [A-Za-z0-9_./-]), and none of
 * YAML's words for null, booleans and special numbers. */
static int plain_safe(const char *s, size_t len)
{
	static const char *const words[] = {"null", "true", "false", "yes", "no", "on", "off",
		"y", "n", "nan", "inf"};

	if (len == 0 || len > 200 || strlen(s) != len)
		return 0;
	if (!isalpha((unsigned char)s[0]) && s[0] != '_' && s[0] != '/')
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '/' && c != '-')
			return 0;
	}
	for (size_t i = 0; i < CRAB_ARRAY_LEN(words); i++) {
		if (strcasecmp(s, words[i]) == 0)
			return 0;
	}
	return 1;
}

/* A double-quoted YAML scalar: JSON's escapes are YAML's too. */
static void quoted(struct crab_buf *b, const char *s, size_t len)
{
	char esc[8];

	add(b, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': add(b, "\\\""); break;
		case '\\': add(b, "\\\\"); break;
		case '\n': add(b, "\\n"); break;
		case '\t': add(b, "\\t"); break;
		case '\r': add(b, "\\r"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof(esc), "\\x%02x", c);
				add(b, esc);
			} else {
				crab_buf_add(b, (const char *)&c, 1);
			}
		}
	}
	add(b, "\"");
}

static void string(struct crab_buf *b, const char *s, size_t len)
{
	if (plain_safe(s, len))
		crab_buf_add(b, s, len);
	else
		quoted(b, s, len);
}

static void scalar(struct crab_buf *b, const json_t *v)
{
	char num[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		add(b, num);
		break;
	case JSON_REAL:
		/* The loader reads it as the string it is written as. */
		snprintf(num, sizeof(num), "%.15g", json_real_value(v));
		add(b, num);
		break;
	case JSON_TRUE: add(b, "true"); break;
	case JSON_FALSE: add(b, "false"); break;
	default: add(b, "null"); break;
	}
}

static int is_collection(const json_t *v)
{
	return (json_is_object(v) && json_object_size(v) > 0) ||
	       (json_is_array(v) && json_array_size(v) > 0);
}

static void emit_value(struct crab_buf *b, const json_t *v, int level);

/* Members of a mapping, the first one's indentation already written when first_done. */
static void emit_members(struct crab_buf *b, const json_t *obj, int level, int first_done)
{
	const char *k;
	json_t *v;
	int first = 1;

	json_object_foreach((json_t *)obj, k, v) {
		if (!(first && first_done))
			indent(b, level);
		first = 0;
		string(b, k, strlen(k));
		add(b, ":");
		if (is_collection(v)) {
			add(b, "\n");
			emit_value(b, v, json_is_array(v) ? level : level + 1);
		} else {
			add(b, " ");
			emit_value(b, v, level + 1);
			add(b, "\n");
		}
	}
}

static void emit_value(struct crab_buf *b, const json_t *v, int level)
{
	size_t i;
	json_t *e;

	if (json_is_object(v) && json_object_size(v) > 0) {
		emit_members(b, v, level, 0);
	} else if (json_is_array(v) && json_array_size(v) > 0) {
		json_array_foreach(v, i, e) {
			indent(b, level);
			add(b, "- ");
			if (json_is_object(e) && json_object_size(e) > 0) {
				emit_members(b, e, level + 1, 1);
			} else if (json_is_array(e) && json_array_size(e) > 0) {
				add(b, "\n");
				emit_value(b, e, level + 1);
			} else {
				emit_value(b, e, level + 1);
				add(b, "\n");
			}
		}
	} else if (json_is_object(v)) {
		add(b, "{}");
	} else if (json_is_array(v)) {
		add(b, "[]");
	} else {
		scalar(b, v);
	}
}

char *crab_config_yaml_emit(const json_t *plain, size_t *len)
{
	struct crab_buf b = {0};
	char *out;

	if (json_is_object(plain) && json_object_size(plain) > 0)
		emit_members(&b, plain, 0, 0);
	else
		add(&b, "{}\n");
	*len = b.len;
	out = crab_buf_take(&b);
	return out;
}

/* ---- diff ---- */

static json_t *path_plus(const json_t *path, const char *key)
{
	json_t *p = json_copy((json_t *)path);
	json_array_append_new(p, json_string(key));
	return p;
}

static void add_path(json_t *out, const json_t *path)
{
	size_t i;
	json_t *p;

	json_array_foreach(out, i, p) {
		if (json_equal(p, (json_t *)path))
			return;
	}
	json_array_append(out, (json_t *)path);
}

static void leaves_of(json_t *out, const json_t *v, const json_t *path)
{
	const char *k;
	json_t *m;

	if (!json_is_object(v) || json_object_size(v) == 0) {
		add_path(out, path);
		return;
	}
	json_object_foreach((json_t *)v, k, m) {
		json_t *p = path_plus(path, k);
		leaves_of(out, m, p);
		json_decref(p);
	}
}

static void diff(json_t *out, const json_t *b, const json_t *a, const json_t *path, int leaves)
{
	const char *k;
	json_t *m;

	if (json_is_object(b) && json_is_object(a)) {
		json_object_foreach((json_t *)b, k, m) {
			json_t *p = path_plus(path, k), *other = json_object_get(a, k);
			if (other != NULL)
				diff(out, m, other, p, leaves);
			else if (leaves)
				leaves_of(out, m, p);
			else
				add_path(out, p);
			json_decref(p);
		}
		json_object_foreach((json_t *)a, k, m) {
			json_t *p;
			if (json_object_get(b, k) != NULL)
				continue;
			p = path_plus(path, k);
			if (leaves)
				leaves_of(out, m, p);
			else
				add_path(out, p);
			json_decref(p);
		}
		return;
	}
	if (json_equal((json_t *)b, (json_t *)a))
		return;
	if (!leaves) {
		add_path(out, path);
		return;
	}
	if (b != NULL)
		leaves_of(out, b, path);
	if (a != NULL)
		leaves_of(out, a, path);
}

json_t *crab_config_diff(const json_t *before, const json_t *after, int leaves)
{
	json_t *out = json_array(), *root = json_array();

	diff(out, before, after, root, leaves);
	json_decref(root);
	return out;
}

char *crab_config_path_text(const json_t *path)
{
	struct crab_buf b = {0};
	size_t i;
	json_t *k;

	json_array_foreach((json_t *)path, i, k) {
		if (i > 0)
			add(&b, ".");
		add(&b, json_string_value(k) ? json_string_value(k) : "?");
	}
	return crab_buf_take(&b);
}

json_t *crab_config_diff_text(const json_t *before, const json_t *after)
{
	json_t *paths = crab_config_diff(before, after, 0), *out = json_array(), *p;
	size_t i;

	json_array_foreach(paths, i, p) {
		char *t = crab_config_path_text(p);
		json_array_append_new(out, json_string(t));
		free(t);
	}
	json_decref(paths);
	return out;
}

char *crab_config_diff_summary(const char *prefix, const json_t *paths, size_t max)
{
	struct crab_buf b = {0};
	size_t i, n = json_array_size(paths);
	json_t *p;
	char more[64];

	if (prefix != NULL)
		add(&b, prefix);
	if (n == 0) {
		add(&b, "no change to the settings (comments or layout only)");
		return crab_buf_take(&b);
	}
	json_array_foreach((json_t *)paths, i, p) {
		const char *t = json_string_value(p);
		if (i > 0 && b.len + strlen(t) + 2 > max) {
			snprintf(more, sizeof(more), " and %zu more", n - i);
			add(&b, more);
			break;
		}
		if (i > 0)
			add(&b, ", ");
		add(&b, t);
	}
	return crab_buf_take(&b);
}
