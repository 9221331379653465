/* config_view.h: the configuration seen as JSON, for the config pipeline
 * (config_apply.h) and the agents' config tools (config_tools.h). Pure functions: no
 * gateway, no store, no loop.
 *
 * The plain view is the YAML document as JSON (scalars as the loader reads them). The
 * keyed view turns the lists whose entries have an id (models, agents, tenants) into
 * objects keyed by that id, the id member left out: {"agents":{"assistant":{...}}};
 * other lists stay lists. Agents send RFC 7396 merge patches against the keyed view,
 * and paths name its members with dots: agents.assistant.max_tokens. A path is
 * matched key by key, so an id with a dot in it is still one key. */
#ifndef CRAB_CONFIG_VIEW_H
#define CRAB_CONFIG_VIEW_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"

#define CRAB_CONFIG_PATH_MAX 256 /* a path in a policy; longer ones are refused */

/* YAML text as the plain view: NULL with one line in err when it is no YAML mapping. */
json_t *crab_config_view_plain(const char *text, size_t len, char *err, size_t errlen);
/* plain -> keyed (a new value; plain is not changed). */
json_t *crab_config_view_keyed(const json_t *plain);
/* keyed -> plain: each keyed entry back into its list, its key as its id, first. NULL
 * with err when a keyed section holds an entry that is no mapping, or an id that
 * differs from its key. */
json_t *crab_config_view_unkeyed(const json_t *keyed, char *err, size_t errlen);
/* The keyed view of YAML text: view_plain then view_keyed. */
json_t *crab_config_view(const char *text, size_t len, char *err, size_t errlen);

/* The plain view as YAML, block style, two spaces a level (malloc'd, NUL-terminated,
 * length in *len). Strings that would read back as anything else are double-quoted;
 * what the loader reads from the result equals what it read from plain. Comments are
 * not kept: they are not in the view. */
char *crab_config_yaml_emit(const json_t *plain, size_t *len);

/* Where two views differ: an array of paths, each an array of keys, in document
 * order. With leaves 0 an added or removed member is one path; with leaves 1 every
 * leaf under it is (a scalar, a list, an empty mapping), as the policy needs. A list
 * that changed is one path, whatever changed in it. */
json_t *crab_config_diff(const json_t *before, const json_t *after, int leaves);
/* A path (array of keys) as dotted text: malloc'd. */
char *crab_config_path_text(const json_t *path);
/* The diff as an array of dotted strings (leaves 0). */
json_t *crab_config_diff_text(const json_t *before, const json_t *after);
/* One line for config_revisions.diff_summary: prefix (may be NULL), then the paths
 * joined by ", ", at most about max bytes ("and N more"); "no change to the settings
 * (comments or layout only)" when there is none. malloc'd. */
char *crab_config_diff_summary(const char *prefix, const json_t *paths, size_t max);

/* Secrets. A secret key: api_key, token, secret, password, client_secret,
 * authorization, or a name ending in _key, _token, _secret or _password (any case),
 * except the config's own non-secret keys (isolation_key). A secret reference: a key
 * ending in _env or _file, which names where a secret comes from. */
int crab_config_secret_key(const char *key);
int crab_config_secret_ref(const char *key);
/* The first secret key holding a literal string anywhere in v (mappings and lists):
 * 1 with its dotted path in path, else 0. */
int crab_config_find_secret(const json_t *v, char *path, size_t pathlen);
/* Replaces in place the value of every secret key (and with refs, every secret
 * reference) by "***". */
void crab_config_redact(json_t *v, int refs);

/* The policy check of an agent's change: 0 when every path where before and after
 * (keyed views) differ is under one of allowed (dotted paths) and in no area closed to
 * agents; else -1 with a message naming the first path at fault. Closed whatever the
 * policy says: gateway, store, modules, tenants, router, subscribers and peers (the
 * gateway's own settings, identity mappings, paired peers), every config_policy, and
 * every secret key or secret reference. */
int crab_config_policy_check(const json_t *before, const json_t *after,
    char *const *allowed, size_t nallowed, char *msg, size_t msglen);
/* What config.get shows an agent: the subtrees of keyed at the allowed paths that
 * exist, outside the closed top-level sections, with secrets and secret references
 * redacted. A new value ({} when nothing). */
json_t *crab_config_view_select(const json_t *keyed, char *const *allowed, size_t nallowed);
/* Whether text is a well-formed path: 1 to CRAB_CONFIG_PATH_MAX bytes, no empty key. */
int crab_config_path_valid(const char *text);
/* The allowed paths of agent a: its policy's, or its own section agents.<id>. Returns
 * how many; *out points at them (free with crab_config_policy_paths_free). */
size_t crab_config_policy_paths(const struct crab_config_agent *a, char ***out);
void crab_config_policy_paths_free(char **paths, size_t n);

/* Whether going from running to next needs a restart: 1 with the first such setting's
 * path in path (gateway.*, store.*, modules.*, turns.queue_max, a model added, removed,
 * or changed in anything but its provider name `model`), else 0. */
int crab_config_restart_needed(const struct crab_config *running,
    const struct crab_config *next, char *path, size_t pathlen);

#endif
