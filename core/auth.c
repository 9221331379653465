/* auth.c: the providers of auth.h from the config, their logins sealed in the store and
 * read back at start, the layer's life, and the token of a model entry (an api_key, or
 * its provider's). The one refresh at a time is in auth_flight.c, its requests in
 * auth_http.c, logins and logout in auth_login.c. */
#include "auth.h"
#include "auth_int.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "log.h"
#include "util.h"

#define KEY_FILE_MAX 8192

void auth_wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

const char *auth_spec_str(const json_t *spec, const char *key)
{
	return json_string_value(json_object_get(spec, key));
}

/* ---- the store ---- */

struct store_job {
	struct crab_store_job job;
	struct auth_provider *p;
	char provider[CRAB_STORE_NAME_MAX];
	char *sealed;
	const char *state;
	char reason[AUTH_REASON_MAX];
	int64_t at;
	void (*done)(struct auth_provider *p, int ok, void *ctx);
	void *ctx;
};

static int store_run(struct crab_store *st, struct crab_store_job *job)
{
	struct store_job *j = (struct store_job *)job;
	struct crab_store_auth row = {.provider = j->provider, .sealed = j->sealed,
		.state = j->state, .reason = j->reason[0] ? j->reason : NULL, .updated_at = j->at};

	return crab_store_auth_put(st, &row);
}

static void store_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct store_job *j = (struct store_job *)job;

	if (status != CRAB_JOB_OK)
		log_warnx("auth: provider %s: its login could not be stored (%s)", j->provider,
		    status == CRAB_JOB_FAILED ? "the store refused it" : "the store is unavailable");
	j->done(j->p, status == CRAB_JOB_OK, j->ctx);
	free(j->sealed);
	free(j);
}

/* The tokens of p, sealed (the empty object once the login has ended). */
static char *seal_tokens(struct auth_provider *p)
{
	json_t *t = json_object();
	char *plain, *sealed;

	if (p->state == AUTH_ACTIVE) {
		if (p->access != NULL)
			json_object_set_new(t, "access_token", json_string(p->access));
		if (p->refresh != NULL)
			json_object_set_new(t, "refresh_token", json_string(p->refresh));
		json_object_set_new(t, "expires_at", json_integer(p->expires_at));
		json_object_set_new(t, "refresh_at", json_integer(p->refresh_at));
		json_object_set_new(t, "issued_at", json_integer(p->issued_at));
	}
	plain = json_dumps(t, JSON_COMPACT);
	json_decref(t);
	sealed = crab_auth_seal(p->a->key, p->id, plain, strlen(plain));
	auth_wipe_free(plain);
	return sealed;
}

static const char *state_name(enum auth_state s)
{
	switch (s) {
	case AUTH_ACTIVE: return "active";
	case AUTH_REVOKED: return "revoked";
	case AUTH_LOGGED_OUT: return "logged_out";
	default: return "none";
	}
}

void auth_store_login(struct auth_provider *p, void (*done)(struct auth_provider *p, int ok,
    void *ctx), void *ctx)
{
	struct store_job *j = xcalloc(1, sizeof(*j));

	j->job.run = store_run;
	j->job.done = store_done;
	j->p = p;
	crab_strlcpy(j->provider, p->id, sizeof(j->provider));
	j->sealed = seal_tokens(p);
	j->state = state_name(p->state);
	crab_strlcpy(j->reason, p->reason, sizeof(j->reason));
	j->at = crab_clock_now_ms();
	j->done = done;
	j->ctx = ctx;
	if (j->sealed == NULL) { /* the cipher failed: nothing to store, said as a failure */
		log_warnx("auth: provider %s: cannot seal its tokens", p->id);
		done(p, 0, ctx);
		free(j);
		return;
	}
	crab_storeq_submit(p->a->storeq, &j->job);
}

/* ---- api_key ---- */

static int read_key_file(const char *path, char *out, size_t outlen)
{
	char buf[KEY_FILE_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, KEY_FILE_MAX + 1);
	int rc = -1;

	if (fd >= 0)
		close(fd);
	if (n > 0 && n <= KEY_FILE_MAX) {
		while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
			n--;
		buf[n] = '\0';
		rc = n > 0 && crab_strlcpy(out, buf, outlen) < outlen ? 0 : -1;
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}

static int api_key(const char *model, const json_t *spec, crab_auth_answer_fn answer, void *arg)
{
	const char *env = auth_spec_str(spec, "key_env");
	const char *file = auth_spec_str(spec, "key_file");
	char key[KEY_FILE_MAX + 1], msg[512];
	const char *v;
	int rc = -1;

	if (env != NULL && (v = getenv(env)) != NULL && v[0] != '\0')
		rc = crab_strlcpy(key, v, sizeof(key)) < sizeof(key) ? 0 : -1;
	else if (env == NULL && file != NULL)
		rc = read_key_file(file, key, sizeof(key));
	if (rc == 0) {
		answer(arg, key, NULL);
	} else {
		snprintf(msg, sizeof(msg), "auth_unavailable: the key of model %s (%s %.200s) is not "
		    "set or cannot be read", model ? model : "?", env ? "key_env" : "key_file",
		    env ? env : file ? file : "?");
		answer(arg, NULL, msg);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return 0;
}

int crab_auth_token(struct crab_auth *a, const char *model, const json_t *config,
    const char *stale, crab_auth_answer_fn answer, void *arg)
{
	const json_t *spec = json_object_get(config, "auth");
	const char *kind = auth_spec_str(spec, "kind"), *id = auth_spec_str(spec, "provider");
	struct auth_provider *p;
	char msg[256];

	if (a == NULL || answer == NULL || !json_is_object(spec) || kind == NULL)
		return -1;
	if (strcmp(kind, "api_key") == 0)
		return api_key(model, spec, answer, arg);
	if (id == NULL || (p = auth_provider_find(a, id)) == NULL) {
		snprintf(msg, sizeof(msg), "auth_unavailable: auth provider %.64s of model %.64s is "
		    "not running (the gateway needs a restart for new auth: settings)",
		    id ? id : "?", model ? model : "?");
		answer(arg, NULL, msg);
		return 0;
	}
	return auth_provider_ask(p, stale, answer, arg);
}

/* ---- providers ---- */

struct auth_provider *auth_provider_find(struct crab_auth *a, const char *id)
{
	for (struct auth_provider *p = a != NULL ? a->providers : NULL; p != NULL; p = p->next) {
		if (strcmp(p->id, id) == 0)
			return p;
	}
	return NULL;
}

static char **header_lines(const json_t *map)
{
	char **lines = xcalloc(json_object_size(map) + 1, sizeof(*lines));
	const char *name;
	json_t *v;
	size_t n = 0;

	json_object_foreach((json_t *)map, name, v) {
		char num[32];
		const char *s = json_string_value(v);
		size_t len;

		if (s == NULL && json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			s = num;
		}
		if (s == NULL)
			continue;
		len = strlen(name) + strlen(s) + 3;
		lines[n] = xmalloc(len);
		snprintf(lines[n++], len, "%s: %s", name, s);
	}
	return lines;
}

static void free_lines(char **lines)
{
	for (size_t i = 0; lines != NULL && lines[i] != NULL; i++)
		free(lines[i]);
	free(lines);
}

static struct auth_provider *provider_new(struct crab_auth *a, const json_t *spec)
{
	struct auth_provider *p = xcalloc(1, sizeof(*p));
	const json_t *scopes = json_object_get(spec, "scopes"), *v;
	json_t *margin = json_object_get(spec, "refresh_margin_s");
	json_t *timeout = json_object_get(spec, "timeout_s");
	struct crab_buf b = {0};
	const char *body;
	size_t i;

	p->a = a;
	p->spec = json_deep_copy(spec);
	p->id = xstrdup(auth_spec_str(spec, "provider"));
	p->kind = strcmp(auth_spec_str(spec, "kind"), "oauth") == 0 ? AUTH_OAUTH : AUTH_EXCHANGE;
	p->authorize_url = auth_spec_str(p->spec, "authorize_url");
	p->token_url = auth_spec_str(p->spec, "token_url");
	p->revoke_url = auth_spec_str(p->spec, "revoke_url");
	p->device_code_url = auth_spec_str(p->spec, "device_code_url");
	p->exchange_url = auth_spec_str(p->spec, "exchange_url");
	p->client_id = auth_spec_str(p->spec, "client_id");
	p->redirect_uri = auth_spec_str(p->spec, "redirect_uri");
	json_array_foreach(scopes, i, v) {
		if (!json_is_string(v))
			continue;
		if (b.len > 0)
			crab_buf_add(&b, " ", 1);
		crab_buf_add(&b, json_string_value(v), json_string_length(v));
	}
	p->scope = crab_buf_take(&b);
	body = auth_spec_str(spec, "token_body");
	p->form = body == NULL || strcmp(body, "form") == 0;
	p->margin_ms = (json_is_integer(margin) ? json_integer_value(margin) : 300) * 1000;
	p->timeout_ms = (json_is_integer(timeout) ? json_integer_value(timeout) : 30) * 1000;
	p->headers = header_lines(json_object_get(spec, "headers"));
	p->xheaders = header_lines(json_object_get(spec, "exchange_headers"));
	p->wtail = &p->waiters;
	return p;
}

static void provider_free(struct auth_provider *p)
{
	char msg[256];

	auth_req_cancel(p->flight);
	auth_req_cancel(p->revoke);
	snprintf(msg, sizeof(msg), "auth_unavailable: the gateway is stopping");
	auth_fail_waiters(p, msg);
	for (struct auth_done *d = p->logout_waiters, *next; d != NULL; d = next) {
		next = d->next;
		d->done(d->arg, NULL, "unavailable", "the gateway is stopping");
		free(d);
	}
	auth_wipe_free(p->access);
	auth_wipe_free(p->refresh);
	free(p->scope);
	free_lines(p->headers);
	free_lines(p->xheaders);
	json_decref(p->spec);
	free(p->id);
	free(p);
}

static int load_row(const struct crab_store_auth *row, void *arg)
{
	struct crab_auth *a = arg;
	struct auth_provider *p = auth_provider_find(a, row->provider);
	json_t *t;
	char *plain;
	size_t len;

	if (p == NULL)
		return 0; /* a provider no model names any more: kept, unused */
	crab_strlcpy(p->reason, row->reason ? row->reason : "", sizeof(p->reason));
	if (strcmp(row->state, "revoked") == 0) {
		p->state = AUTH_REVOKED;
		return 0;
	}
	if (strcmp(row->state, "logged_out") == 0) {
		p->state = AUTH_LOGGED_OUT;
		return 0;
	}
	if (strcmp(row->state, "active") != 0)
		return 0;
	if ((plain = crab_auth_open(a->key, p->id, row->sealed, &len)) == NULL) {
		log_warnx("auth: provider %s: its stored login cannot be opened with %s (another "
		    "data directory's key, or changed): run crab auth login %s", p->id,
		    CRAB_AUTH_KEY_FILE, p->id);
		crab_strlcpy(p->reason, "unreadable", sizeof(p->reason));
		return 0;
	}
	t = json_loadb(plain, len, 0, NULL);
	OPENSSL_cleanse(plain, len);
	free(plain);
	if (!json_is_object(t)) {
		json_decref(t);
		crab_strlcpy(p->reason, "unreadable", sizeof(p->reason));
		return 0;
	}
	p->state = AUTH_ACTIVE;
	p->reason[0] = '\0';
	if (auth_spec_str(t, "access_token") != NULL)
		p->access = xstrdup(auth_spec_str(t, "access_token"));
	if (auth_spec_str(t, "refresh_token") != NULL)
		p->refresh = xstrdup(auth_spec_str(t, "refresh_token"));
	p->expires_at = json_integer_value(json_object_get(t, "expires_at"));
	p->refresh_at = json_integer_value(json_object_get(t, "refresh_at"));
	p->issued_at = json_integer_value(json_object_get(t, "issued_at"));
	json_decref(t); /* jansson's copies are not wiped: they were never logged either */
	return 0;
}

struct crab_auth *crab_auth_new(struct event_base *base, const struct crab_config *cfg,
    const char *dir, struct crab_store *st, char *err, size_t errlen)
{
	struct crab_auth *a = xcalloc(1, sizeof(*a));
	struct auth_provider **tail = &a->providers;
	char why[512];

	a->base = base;
	for (size_t i = 0; i < cfg->nmodels; i++) {
		const json_t *spec = json_object_get(cfg->models[i].config, "auth");
		const char *kind = auth_spec_str(spec, "kind");
		const char *id = auth_spec_str(spec, "provider");

		if (kind == NULL || id == NULL || strcmp(kind, "api_key") == 0 ||
		    auth_provider_find(a, id) != NULL)
			continue;
		*tail = provider_new(a, spec);
		tail = &(*tail)->next;
	}
	if (a->providers == NULL)
		return a; /* nothing to keep: no key, no rows */
	if (crab_auth_key_load(dir, 1, a->key, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "auth: %s", why);
		crab_auth_free(a);
		return NULL;
	}
	a->have_key = 1;
	if (crab_store_auth_list(st, load_row, a) != 0) {
		snprintf(err, errlen, "auth: cannot read the logins: %s", crab_store_error(st));
		crab_auth_free(a);
		return NULL;
	}
	for (struct auth_provider *p = a->providers; p != NULL; p = p->next)
		log_info("auth: provider %s (%s): %s", p->id, p->kind == AUTH_OAUTH ? "oauth" :
		    "token_exchange", p->state == AUTH_ACTIVE ? "logged in" :
		    p->state == AUTH_REVOKED ? "revoked: log in again" :
		    p->state == AUTH_LOGGED_OUT ? "logged out" : "not logged in");
	return a;
}

void crab_auth_start(struct crab_auth *a, struct crab_storeq *q, struct crab_http_client *http)
{
	a->storeq = q;
	a->http = http;
}

void crab_auth_free(struct crab_auth *a)
{
	if (a == NULL)
		return;
	a->freeing = 1;
	auth_logins_release(a);
	while (a->providers != NULL) {
		struct auth_provider *p = a->providers;
		a->providers = p->next;
		provider_free(p);
	}
	OPENSSL_cleanse(a->key, sizeof(a->key));
	free(a);
}

/* ---- status ---- */

json_t *crab_auth_status(struct crab_auth *a)
{
	json_t *list = json_array();
	int64_t now = crab_clock_now_ms();

	for (struct auth_provider *p = a != NULL ? a->providers : NULL; p != NULL; p = p->next) {
		json_t *o = json_pack("{s:s, s:s, s:s}", "provider", p->id, "kind",
		    p->kind == AUTH_OAUTH ? "oauth" : "token_exchange", "flow",
		    p->device_code_url != NULL ? "device" : "paste");
		char msg[512];

		switch (p->state) {
		case AUTH_ACTIVE:
			json_object_set_new(o, "state", json_string("logged_in"));
			json_object_set_new(o, "access_token", json_boolean(p->access != NULL &&
			    !p->refused));
			json_object_set_new(o, "refresh_token", json_boolean(p->refresh != NULL));
			if (p->access != NULL && p->expires_at != 0)
				json_object_set_new(o, "expires_in_s",
				    json_integer((p->expires_at - now) / 1000));
			if (p->access == NULL || p->refused)
				snprintf(msg, sizeof(msg), "logged in (no %s token in hand: the next "
				    "request gets one)", p->kind == AUTH_OAUTH ? "access" : "short-lived");
			else if (p->expires_at == 0)
				snprintf(msg, sizeof(msg), "logged in (the access token has no known "
				    "expiry)");
			else if (p->expires_at > now)
				snprintf(msg, sizeof(msg), "logged in (%s token expires in %lld s)",
				    p->kind == AUTH_OAUTH ? "access" : "short-lived",
				    (long long)((p->expires_at - now) / 1000));
			else
				snprintf(msg, sizeof(msg), "logged in (the %s token expired %lld s ago; "
				    "the next request renews it)", p->kind == AUTH_OAUTH ? "access" :
				    "short-lived", (long long)((now - p->expires_at) / 1000));
			if (p->next_try_at > now)
				snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), "; renewing failed "
				    "(%s), next attempt in %lld s", p->last_error,
				    (long long)((p->next_try_at - now + 999) / 1000));
			break;
		case AUTH_REVOKED:
			json_object_set_new(o, "state", json_string("revoked"));
			snprintf(msg, sizeof(msg), "log in again: the login was revoked (%s); run crab "
			    "auth login %s", p->reason[0] ? p->reason : "refused", p->id);
			break;
		case AUTH_LOGGED_OUT:
			json_object_set_new(o, "state", json_string("logged_out"));
			snprintf(msg, sizeof(msg), "logged out; run crab auth login %s", p->id);
			break;
		default:
			json_object_set_new(o, "state", json_string("not_logged_in"));
			if (p->reason[0] != '\0')
				snprintf(msg, sizeof(msg), "log in again: the stored login cannot be read "
				    "(%s); run crab auth login %s", p->reason, p->id);
			else
				snprintf(msg, sizeof(msg), "not logged in; run crab auth login %s", p->id);
			break;
		}
		json_object_set_new(o, "message", json_string(msg));
		if (p->reason[0] != '\0')
			json_object_set_new(o, "reason", json_string(p->reason));
		if (p->last_error[0] != '\0')
			json_object_set_new(o, "last_error", json_string(p->last_error));
		if (p->next_try_at > now)
			json_object_set_new(o, "retry_in_s",
			    json_integer((p->next_try_at - now + 999) / 1000));
		json_object_set_new(o, "refreshes", json_integer((json_int_t)p->refreshes));
		json_object_set_new(o, "failures", json_integer((json_int_t)p->failures));
		json_object_set_new(o, "requests", json_integer((json_int_t)p->requests));
		json_object_set_new(o, "waiting", json_integer((json_int_t)p->nwaiters));
		if (p->device != NULL)
			json_object_set_new(o, "login_pending", json_string("device"));
		json_array_append_new(list, o);
	}
	return json_pack("{s:o}", "providers", list);
}
