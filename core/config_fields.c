/* config_fields.c: the table-driven part of the loader (see config_parse.h): positions,
 * collected errors, and one set_field for every key of every section. */
#include "config_parse.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "template.h"
#include "util.h"

struct config_error {
	int line, col;
	size_t seq; /* the order reported, for errors at the same place */
	char *msg;
};

/* Hands out ld->marks to the collections under n, in the parser's (pre-)order. */
static void mark_tree(struct loader *ld, struct fy_node *n, size_t *next)
{
	struct fy_node_pair *pair;
	struct fy_node *item;
	void *iter = NULL;

	if (n == NULL || fy_node_get_type(n) == FYNT_SCALAR)
		return;
	if (*next < ld->nmarks)
		fy_node_set_meta(n, &ld->marks[(*next)++]);
	if (fy_node_get_type(n) == FYNT_SEQUENCE) {
		while ((item = fy_node_sequence_iterate(n, &iter)) != NULL)
			mark_tree(ld, item, next);
		return;
	}
	while ((pair = fy_node_mapping_iterate(n, &iter)) != NULL) {
		mark_tree(ld, fy_node_pair_key(pair), next);
		mark_tree(ld, fy_node_pair_value(pair), next);
	}
}

void cfg_mark_collections(struct loader *ld, struct fy_node *root)
{
	struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET};
	struct fy_parser *fyp = fy_parser_create(&pcfg);
	struct fy_event *ev;
	size_t next = 0;
	int done = 0;

	if (fyp == NULL || fy_parser_set_string(fyp, ld->source, ld->source_len) != 0)
		goto out;
	/* The first document only: the one fy_document_build_from_string built. */
	while (!done && (ev = fy_parser_parse(fyp)) != NULL) {
		const struct fy_mark *m = fy_event_start_mark(ev);

		if ((ev->type == FYET_MAPPING_START || ev->type == FYET_SEQUENCE_START) && m) {
			ld->marks = xrealloc(ld->marks, (ld->nmarks + 1) * sizeof(*ld->marks));
			ld->marks[ld->nmarks++] = *m;
		}
		done = ev->type == FYET_DOCUMENT_END;
		fy_parser_event_free(fyp, ev);
	}
	mark_tree(ld, root, &next);
out:
	if (fyp != NULL)
		fy_parser_destroy(fyp);
}

/* The first token written for n: a scalar's own, a collection's start. */
static const struct fy_mark *node_mark(struct fy_node *n)
{
	struct fy_node_pair *pair;
	struct fy_token *tok;

	while (n != NULL) {
		if (fy_node_get_type(n) != FYNT_SCALAR && fy_node_get_meta(n) != NULL)
			return fy_node_get_meta(n);
		switch (fy_node_get_type(n)) {
		case FYNT_SCALAR:
			tok = fy_node_get_scalar_token(n);
			return tok != NULL ? fy_token_start_mark(tok) : NULL;
		case FYNT_MAPPING:
			if ((pair = fy_node_mapping_get_by_index(n, 0)) == NULL)
				return NULL;
			n = fy_node_pair_key(pair) ? fy_node_pair_key(pair) : fy_node_pair_value(pair);
			break;
		case FYNT_SEQUENCE:
			n = fy_node_sequence_get_by_index(n, 0);
			break;
		default:
			return NULL;
		}
	}
	return NULL;
}

/* Where to report n: its first token; an empty value has none, so its key's, or else
 * the nearest enclosing node's. */
static const struct fy_mark *place(struct fy_node *n)
{
	const struct fy_mark *m;

	while (n != NULL) {
		struct fy_node *parent = fy_node_get_parent(n);
		struct fy_node_pair *pair;
		void *iter = NULL;

		if ((m = node_mark(n)) != NULL)
			return m;
		if (parent != NULL && fy_node_get_type(parent) == FYNT_MAPPING) {
			while ((pair = fy_node_mapping_iterate(parent, &iter)) != NULL) {
				if (fy_node_pair_value(pair) == n &&
				    (m = node_mark(fy_node_pair_key(pair))) != NULL)
					return m;
			}
		}
		n = parent;
	}
	return NULL;
}

void cfg_node_place(struct fy_node *n, int *line, int *col)
{
	const struct fy_mark *m = place(n);

	*line = m != NULL ? m->line + 1 : 0;
	*col = m != NULL ? m->column + 1 : 0;
}

int cfg_node_line(struct fy_node *n)
{
	int line, col;

	cfg_node_place(n, &line, &col);
	return line;
}

static void add_error(struct loader *ld, int line, int col, const char *fmt, va_list ap)
{
	char msg[1024];
	struct config_error *e;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	ld->errors = xrealloc(ld->errors, (ld->nerrors + 1) * sizeof(*ld->errors));
	e = &ld->errors[ld->nerrors];
	e->line = line;
	e->col = col;
	e->seq = ld->nerrors++;
	e->msg = xstrdup(msg);
}

void cfg_report(struct loader *ld, struct fy_node *at, const char *fmt, ...)
{
	const struct fy_mark *m = place(at);
	va_list ap;

	va_start(ap, fmt);
	add_error(ld, m ? m->line + 1 : 1, m ? m->column + 1 : 1, fmt, ap);
	va_end(ap);
}

void cfg_report_at(struct loader *ld, int line, int col, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	add_error(ld, line, col, fmt, ap);
	va_end(ap);
}

static int error_cmp(const void *a, const void *b)
{
	const struct config_error *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

size_t cfg_flush_errors(struct loader *ld, FILE *errf)
{
	size_t n = ld->nerrors;

	if (n > 0)
		qsort(ld->errors, n, sizeof(*ld->errors), error_cmp);
	for (size_t i = 0; i < n; i++) {
		fprintf(errf, "%s:%d:%d: %s\n", ld->path, ld->errors[i].line, ld->errors[i].col,
		    ld->errors[i].msg);
		free(ld->errors[i].msg);
	}
	free(ld->errors);
	ld->errors = NULL;
	ld->nerrors = 0;
	return n;
}

char *cfg_scalar_dup(struct fy_node *n)
{
	size_t len;
	const char *s;

	if (n == NULL || fy_node_get_type(n) != FYNT_SCALAR ||
	    (s = fy_node_get_scalar(n, &len)) == NULL)
		return NULL;
	if (fy_node_get_style(n) == FYNS_PLAIN &&
	    (len == 0 || (len == 1 && s[0] == '~') ||
	     (len == 4 && (memcmp(s, "null", 4) == 0 || memcmp(s, "Null", 4) == 0 ||
			   memcmp(s, "NULL", 4) == 0))))
		return NULL; /* YAML's null: "key:" with nothing after it, ~ or null */
	return xstrndup(s, len);
}

static int is_null(struct fy_node *n)
{
	char *text;

	if (n == NULL)
		return 1;
	if (fy_node_get_type(n) != FYNT_SCALAR)
		return 0;
	text = cfg_scalar_dup(n);
	free(text);
	return text == NULL;
}

/* The name of the mapping that holds the keys with .in == parent: "agents.history". */
static const char *mapping_name(const struct table *tab, int parent, char *buf, size_t len)
{
	if (parent == TOP)
		return tab->name ? tab->name : "";
	if (tab->fields[parent].in == TOP && tab->name == NULL)
		return tab->fields[parent].name;
	snprintf(buf, len, "%s.%s", mapping_name(tab, tab->fields[parent].in, buf, len),
	    tab->fields[parent].name);
	return buf;
}

static int charset_ok(const char *s, const char *extra, int upper)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
			(upper && *s >= 'A' && *s <= 'Z') || strchr(extra, *s) != NULL))
			return 0;
	}
	return 1;
}

/* Characters (not bytes) in the first n bytes of UTF-8 s: libfyaml's columns count
 * characters. */
static int utf8_chars(const char *s, size_t n)
{
	int chars = 0;

	for (size_t i = 0; i < n && s[i]; i++)
		chars += ((unsigned char)s[i] & 0xC0) != 0x80;
	return chars;
}

/* Reports a template's fault at its exact column when the value is written on one line
 * as it reads (plain, or quoted without escapes); else at the value's start. */
static void report_template(struct loader *ld, const struct field *f, struct fy_node *val,
    const char *text, size_t off, const char *why)
{
	struct fy_token *tok = fy_node_get_scalar_token(val);
	const struct fy_mark *m = tok ? fy_token_start_mark(tok) : NULL;
	const struct fy_mark *e = tok ? fy_token_end_mark(tok) : NULL;
	size_t len = strlen(text);
	int col;

	if (m == NULL) {
		cfg_report(ld, val, "'%s': %s", f->name, why);
		return;
	}
	col = m->column + 1;
	if (e != NULL && e->line == m->line && e->input_pos >= m->input_pos &&
	    e->input_pos - m->input_pos == len && e->input_pos <= ld->source_len &&
	    memcmp(ld->source + m->input_pos, text, len) == 0)
		col += utf8_chars(text, off);
	cfg_report_at(ld, m->line + 1, col, "'%s': %s", f->name, why);
}

static void set_strings(struct loader *ld, const struct field *f, char *p,
    struct fy_node *key, struct fy_node *val)
{
	char ***list = (char ***)p;
	size_t *count = (size_t *)((char *)p - f->offset + f->count_offset);
	struct fy_node *item;
	void *iter = NULL;

	if (!is_null(val) && fy_node_get_type(val) != FYNT_SEQUENCE) {
		cfg_report(ld, key, "'%s' must be a list", f->name);
		return;
	}
	while (val != NULL && (item = fy_node_sequence_iterate(val, &iter)) != NULL) {
		char *text = cfg_scalar_dup(item);
		if (text == NULL) {
			cfg_report(ld, item, "each of '%s' must be a single value", f->name);
			continue;
		}
		*list = xrealloc(*list, (*count + 1) * sizeof(**list));
		(*list)[(*count)++] = text;
	}
	if ((f->flags & FL_NONEMPTY) && *count == 0 && (is_null(val) ||
	    fy_node_sequence_item_count(val) == 0))
		cfg_report(ld, key, "'%s' must not be an empty list", f->name);
}

static void set_choice(struct loader *ld, const struct field *f, int *out,
    struct fy_node *val, const char *text)
{
	char list[256] = "";
	size_t n;

	for (n = 0; f->choices[n] != NULL; n++) {
		if (strcmp(f->choices[n], text) == 0) {
			*out = (int)n;
			return;
		}
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ", f->choices[i]);
	}
	cfg_report(ld, val, "'%s' must be %s, not '%s'", f->name, list, text);
}

static void load_level(struct loader *ld, const struct table *tab, int parent, void *base,
    struct fy_node *map, struct fy_node **at);

/* One key of tab: the value, checked and stored in base; its node kept in at. */
static void set_field(struct loader *ld, const struct table *tab, size_t i, void *base,
    struct fy_node *key, struct fy_node *val, struct fy_node **at)
{
	const struct field *f = &tab->fields[i];
	char *p = (char *)base + f->offset;
	char why[256], name[128];
	size_t off;
	int64_t v;
	char *text;

	at[i] = val != NULL ? val : key;
	switch (f->type) {
	case F_MAP:
		if (is_null(val))
			return; /* "history:" with nothing under it: all defaults */
		if (fy_node_get_type(val) != FYNT_MAPPING)
			cfg_report(ld, key, "'%s' must be a mapping",
			    mapping_name(tab, (int)i, name, sizeof(name)));
		else
			load_level(ld, tab, (int)i, base, val, at);
		return;
	case F_CUSTOM:
		f->parse(ld, base, key, val);
		return;
	case F_STRINGS:
		set_strings(ld, f, p, key, val);
		return;
	default:
		break;
	}
	if (val != NULL && fy_node_get_type(val) != FYNT_SCALAR) {
		cfg_report(ld, key, "'%s' must be a single value", f->name);
		return;
	}
	if ((text = cfg_scalar_dup(val)) == NULL) {
		cfg_report(ld, key, "'%s' needs a value", f->name);
		return;
	}
	switch (f->type) {
	case F_ID:
	case F_NAME:
		/* Kept even when bad, so that references to it do not fail as well. */
		if (!charset_ok(text, f->type == F_ID ? "_.-" : "_-", f->type == F_ID))
			cfg_report(ld, val, "'%s' must be 1 to 64 characters of %s, not '%.80s'",
			    f->name, f->type == F_ID ? "A-Z a-z 0-9 _ . -" : "a-z 0-9 _ -", text);
		/* fall through */
	case F_STRING:
		free(*(char **)p);
		*(char **)p = text;
		return;
	case F_TEMPLATE:
		if (crab_template_check(text, &off, why, sizeof(why)) != 0)
			report_template(ld, f, val, text, off, why);
		free(*(char **)p);
		*(char **)p = text;
		return;
	case F_INT:
		if (crab_parse_int64(text, f->min, f->max, &v) != 0)
			cfg_report(ld, val, "'%s' must be a whole number from %lld to %lld", f->name,
			    (long long)f->min, (long long)f->max);
		else
			*(int64_t *)p = v;
		break;
	case F_BOOL:
		if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
			*(int *)p = strcmp(text, "true") == 0;
		else
			cfg_report(ld, val, "'%s' must be true or false, not '%s'", f->name, text);
		break;
	case F_ENUM:
		set_choice(ld, f, (int *)p, val, text);
		break;
	default:
		break;
	}
	free(text);
}

/* The keys of one mapping: those of tab whose .in is parent. */
static void load_level(struct loader *ld, const struct table *tab, int parent, void *base,
    struct fy_node *map, struct fy_node **at)
{
	struct fy_node_pair *pair;
	void *iter = NULL;
	char name[128];

	while ((pair = fy_node_mapping_iterate(map, &iter)) != NULL) {
		struct fy_node *key = fy_node_pair_key(pair);
		char *k = cfg_scalar_dup(key);
		size_t i;

		for (i = 0; k != NULL && i < tab->nfields; i++) {
			if (tab->fields[i].in == parent && strcmp(tab->fields[i].name, k) == 0)
				break;
		}
		if (k != NULL && i < tab->nfields)
			set_field(ld, tab, i, base, key, fy_node_pair_value(pair), at);
		else if (parent == TOP && tab->name == NULL)
			cfg_report(ld, key, "unknown section '%s'", k ? k : "?");
		else if (!(parent == TOP && tab->open))
			cfg_report(ld, key, "unknown key '%s' in '%s'", k ? k : "?",
			    mapping_name(tab, parent, name, sizeof(name)));
		free(k);
	}
	for (size_t i = 0; i < tab->nfields; i++) {
		if (tab->fields[i].in == parent && (tab->fields[i].flags & FL_REQUIRED) &&
		    at[i] == NULL)
			cfg_report(ld, map, "missing key '%s' in '%s'", tab->fields[i].name,
			    mapping_name(tab, parent, name, sizeof(name)));
	}
}

void cfg_load_table(struct loader *ld, const struct table *tab, void *base,
    struct fy_node *map, struct fy_node **at)
{
	if (map == NULL || fy_node_get_type(map) != FYNT_MAPPING) {
		cfg_report(ld, map, "an entry of '%s' must be a mapping", tab->name);
		return;
	}
	load_level(ld, tab, TOP, base, map, at);
}

struct fy_node *cfg_at(const struct table *tab, struct fy_node **at, const char *path)
{
	const char *dot = strchr(path, '.');
	int parent = TOP;

	for (size_t i = 0; i < tab->nfields; i++) {
		const struct field *f = &tab->fields[i];
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		if (f->in != parent || strlen(f->name) != len || memcmp(f->name, path, len) != 0)
			continue;
		if (dot == NULL)
			return at[i];
		parent = (int)i;
		path = dot + 1;
		dot = strchr(path, '.');
		i = (size_t)-1; /* the group's keys may come before it in the table */
	}
	abort(); /* a path the table does not have: a bug in the caller */
}

struct fy_node **cfg_at_grow(struct fy_node ***rows, size_t n, const struct table *tab)
{
	struct fy_node **row;

	*rows = xrealloc(*rows, (n + 1) * tab->nfields * sizeof(**rows));
	row = *rows + n * tab->nfields;
	memset(row, 0, tab->nfields * sizeof(*row));
	return row;
}

int cfg_expect_list(struct loader *ld, struct fy_node *key, struct fy_node *val,
    const char *name)
{
	if (val != NULL && fy_node_get_type(val) == FYNT_SEQUENCE)
		return 0;
	if (is_null(val))
		return 0; /* "tenants:" with nothing under it: none */
	cfg_report(ld, key, "'%s' must be a list", name);
	return -1;
}

json_t *cfg_yaml_to_json(struct fy_node *n)
{
	struct fy_node_pair *pair;
	struct fy_node *item;
	void *iter = NULL;
	json_t *out;
	char *text;
	int64_t v;

	if (n == NULL)
		return json_null();
	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING:
		out = json_object();
		while ((pair = fy_node_mapping_iterate(n, &iter)) != NULL) {
			char *key = cfg_scalar_dup(fy_node_pair_key(pair));
			if (key != NULL)
				json_object_set_new(out, key,
				    cfg_yaml_to_json(fy_node_pair_value(pair)));
			free(key);
		}
		return out;
	case FYNT_SEQUENCE:
		out = json_array();
		while ((item = fy_node_sequence_iterate(n, &iter)) != NULL)
			json_array_append_new(out, cfg_yaml_to_json(item));
		return out;
	default:
		if ((text = cfg_scalar_dup(n)) == NULL)
			return json_null();
		if (fy_node_get_style(n) == FYNS_PLAIN) {
			if (crab_parse_int64(text, INT64_MIN, INT64_MAX, &v) == 0)
				out = json_integer(v);
			else if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0)
				out = json_boolean(text[0] == 't');
			else
				out = json_string(text);
		} else {
			out = json_string(text);
		}
		free(text);
		return out ? out : json_null();
	}
}
