/* config_parse.h: the loader's machinery, private to core/config*.c.
 *
 * Every mapping of the file is read through a table of its known keys (struct table):
 * the table says each key's type, range, where its value goes in a struct, and whether
 * it is required, so unknown keys, wrong shapes, bad numbers and missing keys are found
 * the same way everywhere. Nested mappings are keys of type F_MAP in the same table
 * (their keys name them in .in), lists of entries are F_CUSTOM keys whose parser loads
 * each entry through the entry's own table.
 *
 * Loading keeps, for each key of each mapping it read, the YAML node of its value (the
 * "at" arrays), so that the semantic checks that run afterwards (references between
 * sections, duplicate ids) can report the place of the offending value. Errors are
 * collected, then printed sorted by position: every error, in file order. */
#ifndef CRAB_CONFIG_PARSE_H
#define CRAB_CONFIG_PARSE_H

#include <jansson.h>
#include <libfyaml.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct loader;

enum field_type {
	F_STRING,   /* any single value, kept as its text ("42" and 42 alike) */
	F_ID,       /* an id: 1 to 64 of [A-Za-z0-9_.-] */
	F_NAME,     /* a module name: 1 to 64 of [a-z0-9_-] */
	F_TEMPLATE, /* a template crab_template_check accepts */
	F_INT,      /* a whole number from min to max, int64_t */
	F_BOOL,     /* true or false, int */
	F_ENUM,     /* one of choices; its index is stored, as int */
	F_STRINGS,  /* a list of single values: char ** at offset, size_t at count_offset */
	F_MAP,      /* a mapping whose keys are the fields with .in = this field's index */
	F_CUSTOM,   /* parse() reads the value */
};

#define FL_REQUIRED 1u /* missing is an error */
#define FL_NONEMPTY 2u /* F_STRINGS: an empty list is an error */

#define TOP (-1) /* .in of the keys of the table's own mapping */

struct field {
	const char *name;
	enum field_type type;
	int in; /* index of the F_MAP field whose mapping holds this key, or TOP */
	unsigned flags;
	size_t offset;       /* where the value goes, in the table's struct */
	size_t count_offset; /* F_STRINGS: where the number of strings goes */
	int64_t min, max;    /* F_INT */
	const char *const *choices; /* F_ENUM: NULL-terminated */
	void (*parse)(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val);
};

/* FIELD(struct type, member, "key", type, parent, more designated initializers...) */
#define FIELD(T, member, key, ftype, parent, ...) \
	{.name = (key), .type = (ftype), .in = (parent), .offset = offsetof(T, member), __VA_ARGS__}
#define GROUP(key, parent) {.name = (key), .type = F_MAP, .in = (parent)}
#define CUSTOM(key, parent, fn, ...) \
	{.name = (key), .type = F_CUSTOM, .in = (parent), .parse = (fn), __VA_ARGS__}

struct table {
	const char *name; /* for messages: "unknown key 'x' in 'agents'"; NULL for the root */
	const struct field *fields;
	size_t nfields;
	int open; /* keys it does not know are allowed (a model's adapter keys) */
};

/* An identity a tenant claims: one actor or channel of a platform, or the platform. */
enum claim_kind { CLAIM_ACTOR, CLAIM_CHANNEL, CLAIM_PLATFORM };
struct claim {
	enum claim_kind kind;
	const char *platform, *value; /* borrowed from cfg; value NULL for CLAIM_PLATFORM */
	size_t tenant;                /* index in cfg->tenants */
	struct fy_node *at;
};

struct config_error;

struct loader {
	const char *path;
	struct crab_config *cfg;
	struct config_error *errors;
	size_t nerrors;
	const char *source; /* the file's bytes, for exact columns inside a value */
	size_t source_len;

	struct fy_node *root; /* the document's root mapping */
	/* Value nodes of every key read, table->nfields per mapping loaded with it. */
	struct fy_node **root_at;
	struct fy_node **model_at, **agent_at, **tenant_at, **route_at;
	struct fy_node *models_key, *agents_key; /* NULL when the section is absent */
	/* A section that is no list at all: references to it are not checked (each would
	 * only repeat that one error). */
	int models_broken, agents_broken, tenants_broken;
	struct claim *claims;
	size_t nclaims;
	struct fy_mark *marks; /* where each collection starts, in document order */
	size_t nmarks;
};

/* Notes where each mapping and list of the document starts (libfyaml's nodes know only
 * their scalars' places), so that an empty "{}" or "[]" can be reported at itself. */
void cfg_mark_collections(struct loader *ld, struct fy_node *root);

/* Records an error at node at (its first scalar; an empty value: its key; NULL: 1:1). */
void cfg_report(struct loader *ld, struct fy_node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same at an exact line and column (1-based). */
void cfg_report_at(struct loader *ld, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Prints the collected errors in file order and frees them; returns how many. */
size_t cfg_flush_errors(struct loader *ld, FILE *errf);

/* The 1-based line and column where cfg_report would place n (0, 0 when unknown). */
void cfg_node_place(struct fy_node *n, int *line, int *col);
int cfg_node_line(struct fy_node *n);

/* A scalar's text, malloc'd; NULL for a non-scalar or YAML's null (empty, ~, null). */
char *cfg_scalar_dup(struct fy_node *n);

/* Loads mapping map into base through tab, reporting what is wrong with it ("an entry
 * of 'tab' must be a mapping" when it is no mapping at all); at gets the value node of
 * each key read, tab->nfields of them, zeroed by the caller. */
void cfg_load_table(struct loader *ld, const struct table *tab, void *base,
    struct fy_node *map, struct fy_node **at);

/* The value node read for "key" or "group.key" of tab, or NULL when absent. A path the
 * table lacks is a programming error and aborts. */
struct fy_node *cfg_at(const struct table *tab, struct fy_node **at, const char *path);

/* Appends a zeroed row of tab->nfields nodes to *rows, which holds n rows; returns it. */
struct fy_node **cfg_at_grow(struct fy_node ***rows, size_t n, const struct table *tab);

/* Checks val is a list named name (reported at key otherwise); 0 if so. */
int cfg_expect_list(struct loader *ld, struct fy_node *key, struct fy_node *val,
    const char *name);

/* A YAML node as JSON: mappings, sequences, and scalars as strings, except plain scalars
 * that read as integers or booleans. */
json_t *cfg_yaml_to_json(struct fy_node *n);

/* The list sections (config_agents.c), F_CUSTOM parsers of the root table. */
void cfg_parse_models(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val);
void cfg_parse_agents(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val);
void cfg_parse_tenants(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val);
void cfg_parse_routes(struct loader *ld, void *base, struct fy_node *key, struct fy_node *val);
void cfg_parse_subscribers(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val);
extern const struct table cfg_model_table, cfg_agent_table, cfg_tenant_table, cfg_route_table;

/* A models: entry's auth: mapping, and the check that entries sharing a provider agree
 * (config_auth.c). */
void cfg_parse_model_auth(struct loader *ld, void *base, struct fy_node *key,
    struct fy_node *val);
void cfg_check_auth(struct loader *ld);

/* Fills what the file left out: the built-in echo model and default agent when there is
 * no agents section, a model's provider name (config_agents.c). */
void cfg_agents_defaults(struct loader *ld);
void cfg_agents_free(struct crab_config *cfg);

/* The semantic checks across sections (config_check.c); root is the root table. */
void cfg_check(struct loader *ld, const struct table *root);

#endif
