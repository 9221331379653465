/* config_policy.c: see config_view.h. Secrets, the agents' policy over the keyed view,
 * what config.get shows them, and what needs a restart. */
#include "config_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* Top-level sections no agent may change, and why. */
static const struct {
	const char *section, *why;
} closed[] = {
	{"gateway", "the gateway's own settings"},
	{"store", "the gateway's own settings"},
	{"modules", "the gateway's own settings"},
	{"tenants", "tenants and their identity mappings"},
	{"router", "the identity mapping's settings"},
	{"subscribers", "paired peers"},
	{"peers", "paired peers"},
};

static void add(struct crab_buf *b, const char *s)
{
	crab_buf_add(b, s, strlen(s));
}

/* ---- secrets ---- */

static int ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);
	return n > t && strcasecmp(s + n - t, tail) == 0;
}

int crab_config_secret_key(const char *key)
{
	static const char *const names[] = {"api_key", "token", "secret", "password",
		"client_secret", "authorization"};
	static const char *const tails[] = {"_key", "_token", "_secret", "_password"};
	static const char *const not_secret[] = {"isolation_key"};

	for (size_t i = 0; i < CRAB_ARRAY_LEN(not_secret); i++) {
		if (strcasecmp(key, not_secret[i]) == 0)
			return 0;
	}
	for (size_t i = 0; i < CRAB_ARRAY_LEN(names); i++) {
		if (strcasecmp(key, names[i]) == 0)
			return 1;
	}
	for (size_t i = 0; i < CRAB_ARRAY_LEN(tails); i++) {
		if (ends_with(key, tails[i]))
			return 1;
	}
	return 0;
}

int crab_config_secret_ref(const char *key)
{
	return ends_with(key, "_env") || ends_with(key, "_file");
}

static int find_secret(const json_t *v, struct crab_buf *path)
{
	size_t mark = path->len, i;
	const char *k;
	json_t *m;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m) {
			if (mark > 0)
				add(path, ".");
			add(path, k);
			if ((crab_config_secret_key(k) && json_is_string(m)) || find_secret(m, path))
				return 1;
			path->len = mark;
			if (path->data != NULL)
				path->data[mark] = '\0';
		}
	} else if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, m) {
			char idx[32];
			snprintf(idx, sizeof(idx), "%s%zu", mark > 0 ? "." : "", i);
			add(path, idx);
			if (find_secret(m, path))
				return 1;
			path->len = mark;
			if (path->data != NULL)
				path->data[mark] = '\0';
		}
	}
	return 0;
}

int crab_config_find_secret(const json_t *v, char *path, size_t pathlen)
{
	struct crab_buf b = {0};
	int found = find_secret(v, &b);

	if (found)
		crab_strlcpy(path, b.data ? b.data : "", pathlen);
	crab_buf_free(&b);
	return found;
}

void crab_config_redact(json_t *v, int refs)
{
	const char *k;
	json_t *m;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach(v, k, m) {
			if ((crab_config_secret_key(k) || (refs && crab_config_secret_ref(k))) &&
			    !json_is_object(m) && !json_is_array(m) && !json_is_null(m))
				json_object_set_new(v, k, json_string("***"));
			else
				crab_config_redact(m, refs);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, m)
			crab_config_redact(m, refs);
	}
}

/* ---- policy ---- */

/* Whether allowed (dotted text) is path or a prefix of it, key by key. */
static int under(const json_t *path, const char *allowed)
{
	const char *rest = allowed;
	size_t i;
	json_t *k;

	json_array_foreach((json_t *)path, i, k) {
		const char *key = json_string_value(k);
		size_t n = strlen(key);

		if (strcmp(rest, key) == 0)
			return 1;
		if (strncmp(rest, key, n) != 0 || rest[n] != '.')
			return 0;
		rest += n + 1;
	}
	return 0; /* the change is above the allowed path: it replaces more than that */
}

/* Whether v holds a config_policy or a secret key or reference anywhere (a list that
 * changed as a whole is looked into). */
static int holds_closed(const json_t *v)
{
	const char *k;
	json_t *m;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, m) {
			if (strcmp(k, "config_policy") == 0 || crab_config_secret_key(k) ||
			    crab_config_secret_ref(k) || holds_closed(m))
				return 1;
		}
	} else if (json_is_array(v)) {
		json_array_foreach((json_t *)v, i, m) {
			if (holds_closed(m))
				return 1;
		}
	}
	return 0;
}

static const json_t *at_path(const json_t *root, const json_t *path)
{
	size_t i;
	json_t *k;

	json_array_foreach((json_t *)path, i, k) {
		root = json_object_get(root, json_string_value(k));
		if (root == NULL)
			return NULL;
	}
	return root;
}

/* Why no agent may change path, or NULL. */
static const char *closed_why(const json_t *path, const json_t *before, const json_t *after)
{
	const char *top = json_string_value(json_array_get(path, 0));
	size_t i;
	json_t *k;

	for (i = 0; top != NULL && i < CRAB_ARRAY_LEN(closed); i++) {
		if (strcmp(top, closed[i].section) == 0)
			return closed[i].why;
	}
	json_array_foreach((json_t *)path, i, k) {
		const char *key = json_string_value(k);
		if (strcmp(key, "config_policy") == 0)
			return "a config_policy";
		if (crab_config_secret_key(key) || crab_config_secret_ref(key))
			return "a secret or a secret reference";
	}
	if (holds_closed(at_path(before, path)) || holds_closed(at_path(after, path)))
		return "a list holding a config_policy, a secret or a secret reference";
	return NULL;
}

int crab_config_policy_check(const json_t *before, const json_t *after,
    char *const *allowed, size_t nallowed, char *msg, size_t msglen)
{
	json_t *paths = crab_config_diff(before, after, 1), *p;
	size_t i;
	int rc = 0;

	json_array_foreach(paths, i, p) {
		char *text = crab_config_path_text(p);
		const char *why = closed_why(p, before, after);
		int ok = 0;

		for (size_t j = 0; why == NULL && !ok && j < nallowed; j++)
			ok = under(p, allowed[j]);
		if (why != NULL)
			snprintf(msg, msglen, "'%s' belongs to %s: no agent may change it", text, why);
		else if (!ok)
			snprintf(msg, msglen, "'%s' is outside this agent's config policy "
			    "(its paths: %s%s)", text, nallowed > 0 ? allowed[0] : "none",
			    nallowed > 1 ? ", ..." : "");
		free(text);
		if (why != NULL || !ok) {
			rc = -1;
			break;
		}
	}
	json_decref(paths);
	return rc;
}

/* The member of obj at the start of rest whose key matches up to a '.' or the end,
 * the longest such key: its value, and *next past it (NULL at the end). */
static json_t *step(const json_t *obj, const char *rest, const char **next, const char **key)
{
	const char *k, *best_key = NULL;
	json_t *m, *best = NULL;
	size_t best_len = 0;

	json_object_foreach((json_t *)obj, k, m) {
		size_t n = strlen(k);
		if (strncmp(rest, k, n) == 0 && (rest[n] == '\0' || rest[n] == '.') && n > best_len) {
			best = m;
			best_key = k;
			best_len = n;
		}
	}
	if (best != NULL) {
		*next = rest[best_len] == '.' ? rest + best_len + 1 : NULL;
		*key = best_key;
	}
	return best;
}

json_t *crab_config_view_select(const json_t *keyed, char *const *allowed, size_t nallowed)
{
	json_t *out = json_object();

	for (size_t i = 0; i < nallowed; i++) {
		const char *rest = allowed[i], *key = NULL;
		const json_t *src = keyed;
		json_t *dst = out;
		int open = 1;

		for (size_t c = 0; c < CRAB_ARRAY_LEN(closed); c++) {
			size_t n = strlen(closed[c].section);
			if (strncmp(rest, closed[c].section, n) == 0 &&
			    (rest[n] == '\0' || rest[n] == '.'))
				open = 0;
		}
		while (open && rest != NULL && json_is_object(src)) {
			const char *next = NULL;
			json_t *v = step(src, rest, &next, &key), *d;

			if (v == NULL)
				break;
			if (next == NULL) {
				json_t *copy = json_deep_copy(v);
				crab_config_redact(copy, 1);
				json_object_set_new(dst, key, copy);
				break;
			}
			d = json_object_get(dst, key);
			if (!json_is_object(d)) {
				d = json_object();
				json_object_set_new(dst, key, d);
			}
			dst = d;
			src = v;
			rest = next;
		}
	}
	return out;
}

int crab_config_path_valid(const char *text)
{
	size_t n = strlen(text);

	if (n == 0 || n > CRAB_CONFIG_PATH_MAX || text[0] == '.' || text[n - 1] == '.' ||
	    strstr(text, "..") != NULL)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)text[i] < 0x20)
			return 0;
	}
	return 1;
}

size_t crab_config_policy_paths(const struct crab_config_agent *a, char ***out)
{
	char **paths;
	size_t n = a->npolicy_paths > 0 ? a->npolicy_paths : 1;

	paths = xcalloc(n, sizeof(*paths));
	if (a->npolicy_paths == 0) {
		size_t len = strlen("agents.") + strlen(a->id) + 1;
		paths[0] = xmalloc(len);
		snprintf(paths[0], len, "agents.%s", a->id);
	}
	for (size_t i = 0; i < a->npolicy_paths; i++)
		paths[i] = xstrdup(a->policy_paths[i]);
	*out = paths;
	return n;
}

void crab_config_policy_paths_free(char **paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* ---- what needs a restart ---- */

static int differ(const char *a, const char *b)
{
	return (a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0);
}

/* A model's entry without its provider name: what its adapter instance was made with. */
static json_t *instance_config(const json_t *config)
{
	json_t *c = json_deep_copy(config);
	json_object_del(c, "model");
	return c;
}

static int model_changed(const struct crab_config_model *a, const struct crab_config_model *b)
{
	json_t *x = instance_config(a->config), *y = instance_config(b->config);
	int changed = differ(a->adapter, b->adapter) || !json_equal(x, y);

	json_decref(x);
	json_decref(y);
	return changed;
}

int crab_config_restart_needed(const struct crab_config *r, const struct crab_config *n,
    char *path, size_t pathlen)
{
	const char *what = NULL;
	char buf[256];

	if (differ(r->listen, n->listen))
		what = "gateway.listen";
	else if (differ(r->data_dir, n->data_dir))
		what = "gateway.data_dir";
	else if (differ(r->admin_socket, n->admin_socket))
		what = "gateway.admin_socket";
	else if (differ(r->default_agent, n->default_agent))
		what = "gateway.default_agent";
	else if (r->insecure_plaintext != n->insecure_plaintext)
		what = "gateway.insecure_plaintext";
	else if (r->tls != n->tls)
		what = "gateway.tls";
	else if (differ(r->name, n->name))
		what = "gateway.name";
	else if (differ(r->store.driver, n->store.driver))
		what = "store.driver";
	else if (differ(r->store.path, n->store.path))
		what = "store.path";
	else if (differ(r->store.dsn_env, n->store.dsn_env))
		what = "store.dsn_env";
	else if (differ(r->store.dsn_file, n->store.dsn_file))
		what = "store.dsn_file";
	else if (r->turns.queue_max != n->turns.queue_max)
		what = "turns.queue_max";
	else if (r->nmodules != n->nmodules)
		what = "modules.load";
	for (size_t i = 0; what == NULL && i < r->nmodules; i++) {
		if (differ(r->modules[i].path, n->modules[i].path) ||
		    r->modules[i].required != n->modules[i].required ||
		    !json_equal(r->modules[i].config, n->modules[i].config))
			what = "modules.load";
	}
	for (size_t i = 0; what == NULL && i < r->nmodels; i++) {
		const struct crab_config_model *m = crab_config_model_find(n, r->models[i].id);
		if (m == NULL || model_changed(&r->models[i], m)) {
			snprintf(buf, sizeof(buf), "models.%s", r->models[i].id);
			what = buf;
		}
	}
	for (size_t i = 0; what == NULL && i < n->nmodels; i++) {
		if (crab_config_model_find(r, n->models[i].id) == NULL) {
			snprintf(buf, sizeof(buf), "models.%s", n->models[i].id);
			what = buf;
		}
	}
	if (what == NULL)
		return 0;
	crab_strlcpy(path, what, pathlen);
	return 1;
}
