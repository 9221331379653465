/* auth_login.c: `crab auth login` and `crab auth logout` on the gateway's side (auth.h):
 * the paste-code flow (PKCE, the authorize URL, the code exchange), the device flow
 * (the code, then polling at the interval the provider asks), and logout (revoke at
 * the provider, best effort, then forget). */
#include "auth.h"
#include "auth_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "log.h"
#include "util.h"

#define PASTE_TTL_MS (10 * 60 * 1000)
#define PASTE_PER_PROVIDER 8
#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
#define DEVICE_DEFAULT_INTERVAL_S 5
#define DEVICE_DEFAULT_EXPIRES_S 900

static void reply(crab_auth_done_fn done, void *arg, json_t *result, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void reply(crab_auth_done_fn done, void *arg, json_t *result, const char *code,
    const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
	}
	done(arg, result, result ? NULL : code, result ? NULL : msg);
}

static struct auth_provider *find_or_reply(struct crab_auth *a, const char *provider,
    crab_auth_done_fn done, void *arg)
{
	struct auth_provider *p = auth_provider_find(a, provider);

	if (p == NULL)
		reply(done, arg, NULL, "not_found", "no auth provider '%.64s' in the config (a "
		    "models: entry's auth.provider, of kind oauth or token_exchange)", provider);
	return p;
}

static void add_waiter(struct auth_done **list, crab_auth_done_fn done, void *arg)
{
	struct auth_done *d = xcalloc(1, sizeof(*d));

	d->done = done;
	d->arg = arg;
	while (*list != NULL)
		list = &(*list)->next;
	*list = d;
}

/* Everyone waiting on list hears result (each a reference of its own) or the error. */
static void answer_all(struct auth_done **list, json_t *result, const char *code,
    const char *msg)
{
	struct auth_done *d = *list, *next;

	*list = NULL;
	for (; d != NULL; d = next) {
		next = d->next;
		d->done(d->arg, result ? json_incref(result) : NULL, code, msg);
		free(d);
	}
	json_decref(result);
}

void auth_login_free(struct auth_login *l, const char *why)
{
	if (l->timer != NULL)
		event_free(l->timer);
	auth_req_cancel(l->req);
	answer_all(&l->waiters, NULL, "unavailable", why);
	if (l->device_code != NULL) {
		OPENSSL_cleanse(l->device_code, strlen(l->device_code));
		free(l->device_code);
	}
	OPENSSL_cleanse(l->verifier, sizeof(l->verifier));
	free(l);
}

void auth_logins_release(struct crab_auth *a)
{
	while (a->pastes != NULL) {
		struct auth_login *l = a->pastes;
		a->pastes = l->next;
		auth_login_free(l, "the gateway is stopping");
	}
	for (struct auth_provider *p = a->providers; p != NULL; p = p->next) {
		if (p->device != NULL) {
			auth_login_free(p->device, "the gateway is stopping");
			p->device = NULL;
		}
	}
}

static void paste_unlink(struct crab_auth *a, struct auth_login *l)
{
	for (struct auth_login **pp = &a->pastes; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			return;
		}
	}
}

/* Drops paste logins past their ten minutes (not those exchanging their code), and the
 * oldest of p's beyond PASTE_PER_PROVIDER. */
static void paste_prune(struct crab_auth *a, struct auth_provider *p)
{
	int64_t now = crab_clock_now_ms();
	int mine = 0;

	for (struct auth_login **pp = &a->pastes; *pp != NULL;) {
		struct auth_login *l = *pp;
		int drop = l->req == NULL && l->waiters == NULL &&
		    (now > l->expires_at || (l->p == p && ++mine >= PASTE_PER_PROVIDER));
		if (drop) {
			*pp = l->next;
			auth_login_free(l, "expired");
		} else {
			pp = &l->next;
		}
	}
}

/* ---- the paste-code flow ---- */

static void add_param(struct crab_buf *b, const char *name, const char *value)
{
	crab_buf_add(b, b->len > 0 ? "&" : "", b->len > 0);
	crab_buf_add(b, name, strlen(name));
	crab_buf_add(b, "=", 1);
	auth_url_encode(b, value);
}

static char *authorize_url(struct auth_provider *p, struct auth_login *l)
{
	json_t *extra = json_object_get(p->spec, "authorize_params"), *v;
	struct crab_buf q = {0}, url = {0};
	char challenge[CRAB_PKCE_LEN], num[32];
	const char *k, *s;
	char *query;

	crab_pkce_challenge(l->verifier, challenge);
	if (json_object_get(extra, "code") == NULL)
		add_param(&q, "code", "true"); /* the page shows the code to paste */
	add_param(&q, "client_id", p->client_id);
	add_param(&q, "response_type", "code");
	add_param(&q, "redirect_uri", p->redirect_uri);
	if (p->scope[0] != '\0')
		add_param(&q, "scope", p->scope);
	add_param(&q, "code_challenge", challenge);
	add_param(&q, "code_challenge_method", "S256");
	add_param(&q, "state", l->state);
	json_object_foreach(extra, k, v) {
		s = json_string_value(v);
		if (s == NULL && json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			s = num;
		} else if (s == NULL && json_is_boolean(v)) {
			s = json_is_true(v) ? "true" : "false";
		}
		if (s != NULL)
			add_param(&q, k, s);
	}
	query = crab_buf_take(&q);
	crab_buf_add(&url, p->authorize_url, strlen(p->authorize_url));
	crab_buf_add(&url, strchr(p->authorize_url, '?') ? "&" : "?", 1);
	crab_buf_add(&url, query, strlen(query));
	free(query);
	return crab_buf_take(&url);
}

static void paste_begin(struct auth_provider *p, crab_auth_done_fn done, void *arg)
{
	struct crab_auth *a = p->a;
	struct auth_login *l = xcalloc(1, sizeof(*l));
	char *url;

	l->p = p;
	if (crab_pkce_verifier(l->verifier) != 0 || crab_auth_random(l->state) != 0) {
		free(l);
		reply(done, arg, NULL, "unavailable", "no random bytes for the login");
		return;
	}
	paste_prune(a, p);
	l->expires_at = crab_clock_now_ms() + PASTE_TTL_MS;
	l->next = a->pastes;
	a->pastes = l;
	url = authorize_url(p, l);
	log_info("auth: provider %s: a login began (paste the code the page shows into crab "
	    "auth login)", p->id);
	reply(done, arg, json_pack("{s:s, s:s, s:s, s:i}", "provider", p->id, "flow", "paste",
	    "url", url, "expires_in", PASTE_TTL_MS / 1000), NULL, NULL);
	free(url);
}

static void paste_stored(void *arg, int ok)
{
	struct auth_login *l = arg;
	struct auth_provider *p = l->p;
	int64_t now = crab_clock_now_ms();
	json_t *r = json_pack("{s:s, s:s, s:b}", "provider", p->id, "state", "logged_in",
	    "stored", ok);

	if (p->expires_at > now)
		json_object_set_new(r, "expires_in", json_integer((p->expires_at - now) / 1000));
	paste_unlink(p->a, l);
	answer_all(&l->waiters, r, NULL, NULL);
	auth_login_free(l, "done");
}

static void code_done(struct auth_req *r, int status, json_t *body, const char *error)
{
	struct auth_login *l = r->ctx;
	struct auth_provider *p = l->p;
	const char *access = json_string_value(json_object_get(body, "access_token"));
	json_t *ein = json_object_get(body, "expires_in");
	char code[64], msg[512];

	l->req = NULL;
	if (status >= 200 && status < 300 && access != NULL && access[0] != '\0') {
		log_info("auth: provider %s: logged in", p->id);
		p->refusals = 0;
		auth_set_tokens(p, access, json_string_value(json_object_get(body, "refresh_token")),
		    json_is_integer(ein) && json_integer_value(ein) > 0 ?
		    crab_clock_now_ms() + json_integer_value(ein) * 1000 : 0, 0, paste_stored, l);
		return;
	}
	auth_error_code(body, code, sizeof(code));
	if (status == 0)
		snprintf(msg, sizeof(msg), "the token endpoint of provider %s did not answer: %.200s",
		    p->id, error ? error : "unknown error");
	else
		snprintf(msg, sizeof(msg), "the token endpoint of provider %s refused the code "
		    "(HTTP %d%s%s); run crab auth login %s again", p->id, status, code[0] ? " " : "",
		    code, p->id);
	log_warnx("auth: provider %s: the login failed: %s", p->id, msg);
	paste_unlink(p->a, l);
	answer_all(&l->waiters, NULL, "login_failed", msg);
	auth_login_free(l, "done");
}

void crab_auth_login_code(struct crab_auth *a, const char *provider, const char *text,
    crab_auth_done_fn done, void *arg)
{
	struct auth_provider *p = find_or_reply(a, provider, done, arg);
	struct auth_login *l = NULL;
	char *code, *state = NULL, *end;
	json_t *fields;
	int64_t now = crab_clock_now_ms();

	if (p == NULL)
		return;
	if (p->device_code_url != NULL) {
		reply(done, arg, NULL, "invalid_args", "provider %s logs in with the device flow: "
		    "there is no code to paste", p->id);
		return;
	}
	code = xstrdup(text);
	for (end = code + strlen(code); end > code && (end[-1] == '\n' || end[-1] == '\r' ||
	    end[-1] == ' ' || end[-1] == '\t'); end--)
		end[-1] = '\0';
	while (*code == ' ' || *code == '\t') /* keeps the pointer freeable: shift */
		memmove(code, code + 1, strlen(code));
	if ((state = strchr(code, '#')) != NULL)
		*state++ = '\0';
	for (struct auth_login *c = a->pastes; c != NULL; c = c->next) {
		if (c->p == p && c->req == NULL && c->waiters == NULL && now <= c->expires_at &&
		    (state == NULL || strcmp(c->state, state) == 0)) {
			l = c; /* without a state: the newest */
			break;
		}
	}
	if (l == NULL || code[0] == '\0') {
		reply(done, arg, NULL, "login_unknown", "no login of provider %s waits for this "
		    "code (a login lasts %d minutes, and its code is good once): run crab auth "
		    "login %s again", p->id, PASTE_TTL_MS / 60000, p->id);
		goto out;
	}
	fields = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "grant_type", "authorization_code",
	    "client_id", p->client_id, "code", code, "state", l->state, "redirect_uri",
	    p->redirect_uri, "code_verifier", l->verifier);
	add_waiter(&l->waiters, done, arg);
	l->req = auth_request(p, "POST", p->token_url, 0, fields, p->form, NULL, code_done, l);
	json_decref(fields);
	if (l->req == NULL) {
		paste_unlink(a, l);
		answer_all(&l->waiters, NULL, "unavailable", "cannot start a request to the token "
		    "endpoint");
		auth_login_free(l, "done");
	}
out:
	OPENSSL_cleanse(code, strlen(code) + (state ? strlen(state) + 1 : 0));
	free(code);
}

/* ---- the device flow ---- */

static void device_end(struct auth_login *l, json_t *result, const char *code, const char *msg)
{
	struct auth_provider *p = l->p;

	if (p->device == l)
		p->device = NULL;
	answer_all(&l->waiters, result, code, msg);
	auth_login_free(l, "done");
}

static void device_poll(evutil_socket_t fd, short what, void *arg);

static void device_schedule(struct auth_login *l)
{
	struct timeval tv = {l->interval_ms / 1000, (l->interval_ms % 1000) * 1000};

	if (l->timer == NULL)
		l->timer = evtimer_new(l->p->a->base, device_poll, l);
	evtimer_add(l->timer, &tv);
}

static void device_stored(void *arg, int ok)
{
	struct auth_login *l = arg;

	device_end(l, json_pack("{s:s, s:s, s:b}", "provider", l->p->id, "state", "logged_in",
	    "stored", ok), NULL, NULL);
}

static void poll_done(struct auth_req *r, int status, json_t *body, const char *error)
{
	struct auth_login *l = r->ctx;
	struct auth_provider *p = l->p;
	const char *access = json_string_value(json_object_get(body, "access_token"));
	json_t *ein = json_object_get(body, "expires_in"), *iv = json_object_get(body, "interval");
	char code[64], msg[512];

	l->req = NULL;
	auth_error_code(body, code, sizeof(code));
	if (status >= 200 && status < 300 && access != NULL && access[0] != '\0' && code[0] == 0) {
		log_info("auth: provider %s: logged in (device flow)", p->id);
		p->refusals = 0;
		if (p->kind == AUTH_OAUTH)
			auth_set_tokens(p, access,
			    json_string_value(json_object_get(body, "refresh_token")),
			    json_is_integer(ein) && json_integer_value(ein) > 0 ?
			    crab_clock_now_ms() + json_integer_value(ein) * 1000 : 0, 0,
			    device_stored, l);
		else /* the long-lived login; the first ask exchanges it */
			auth_set_tokens(p, NULL, access, 0, 0, device_stored, l);
		return;
	}
	if (strcmp(code, "authorization_pending") == 0) {
		device_schedule(l);
	} else if (strcmp(code, "slow_down") == 0) {
		l->interval_ms = json_is_integer(iv) && json_integer_value(iv) > 0 &&
		    json_integer_value(iv) <= 600 ? json_integer_value(iv) * 1000 :
		    l->interval_ms + 5000;
		log_info("auth: provider %s: asked to poll slower, every %lld s", p->id,
		    (long long)(l->interval_ms / 1000));
		device_schedule(l);
	} else if (strcmp(code, "expired_token") == 0) {
		snprintf(msg, sizeof(msg), "the code of provider %s expired before it was entered: "
		    "run crab auth login %s again", p->id, p->id);
		device_end(l, NULL, "login_expired", msg);
	} else if (strcmp(code, "access_denied") == 0) {
		snprintf(msg, sizeof(msg), "the login of provider %s was denied at the provider",
		    p->id);
		device_end(l, NULL, "login_denied", msg);
	} else if (code[0] != '\0' && status > 0 && status < 500 && status != 429) {
		snprintf(msg, sizeof(msg), "the token endpoint of provider %s refused the login "
		    "(HTTP %d %s)", p->id, status, code);
		device_end(l, NULL, "login_failed", msg);
	} else { /* no answer, or a server error: try again at the next interval */
		log_warnx("auth: provider %s: polling for the login failed (%s %d); trying again",
		    p->id, status == 0 ? "no answer:" : "HTTP", status);
		(void)error;
		device_schedule(l);
	}
}

static void device_poll(evutil_socket_t fd, short what, void *arg)
{
	struct auth_login *l = arg;
	struct auth_provider *p = l->p;
	json_t *fields;
	char msg[256];

	(void)fd;
	(void)what;
	if (crab_clock_now_ms() > l->expires_at) {
		snprintf(msg, sizeof(msg), "the code of provider %s expired before it was entered: "
		    "run crab auth login %s again", p->id, p->id);
		device_end(l, NULL, "login_expired", msg);
		return;
	}
	fields = json_pack("{s:s, s:s, s:s}", "client_id", p->client_id, "device_code",
	    l->device_code, "grant_type", DEVICE_GRANT);
	l->req = auth_request(p, "POST", p->token_url, 0, fields, 1, NULL, poll_done, l);
	json_decref(fields);
	if (l->req == NULL)
		device_schedule(l);
}

static void device_code_done(struct auth_req *r, int status, json_t *body, const char *error)
{
	struct auth_login *l = r->ctx;
	struct auth_provider *p = l->p;
	const char *dc = json_string_value(json_object_get(body, "device_code"));
	const char *uc = json_string_value(json_object_get(body, "user_code"));
	const char *uri = json_string_value(json_object_get(body, "verification_uri"));
	const char *full = json_string_value(json_object_get(body, "verification_uri_complete"));
	json_t *ein = json_object_get(body, "expires_in"), *iv = json_object_get(body, "interval");
	int64_t expires_s = json_is_integer(ein) && json_integer_value(ein) > 0 &&
	    json_integer_value(ein) <= 86400 ? json_integer_value(ein) : DEVICE_DEFAULT_EXPIRES_S;
	int64_t interval_s = json_is_integer(iv) && json_integer_value(iv) > 0 &&
	    json_integer_value(iv) <= 600 ? json_integer_value(iv) : DEVICE_DEFAULT_INTERVAL_S;
	crab_auth_done_fn done = l->waiters ? l->waiters->done : NULL;
	void *arg = l->waiters ? l->waiters->arg : NULL;
	json_t *result;
	char code[64];

	l->req = NULL;
	free(l->waiters); /* the begin call, answered here; later waiters are wait's */
	l->waiters = NULL;
	if (!(status >= 200 && status < 300) || dc == NULL || uc == NULL || uri == NULL) {
		auth_error_code(body, code, sizeof(code));
		if (p->device == l)
			p->device = NULL;
		if (status == 0)
			reply(done, arg, NULL, "login_failed", "the device-code endpoint of provider "
			    "%s did not answer: %.200s", p->id, error ? error : "unknown error");
		else
			reply(done, arg, NULL, "login_failed", "the device-code endpoint of provider "
			    "%s answered HTTP %d%s%s without a code", p->id, status, code[0] ? " " : "",
			    code);
		auth_login_free(l, "done");
		return;
	}
	l->device_code = xstrdup(dc);
	l->expires_at = crab_clock_now_ms() + expires_s * 1000;
	l->interval_ms = interval_s * 1000;
	device_schedule(l);
	log_info("auth: provider %s: a login began (device flow; polling every %lld s)", p->id,
	    (long long)interval_s);
	result = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "provider", p->id, "flow", "device",
	    "user_code", uc, "verification_uri", uri, "expires_in", (json_int_t)expires_s,
	    "interval", (json_int_t)interval_s);
	if (full != NULL)
		json_object_set_new(result, "verification_uri_complete", json_string(full));
	reply(done, arg, result, NULL, NULL);
}

static void device_begin(struct auth_provider *p, crab_auth_done_fn done, void *arg)
{
	struct auth_login *l;
	json_t *fields;

	if (p->device != NULL) { /* a new login replaces the one under way */
		auth_login_free(p->device, "a newer login of the provider replaced it");
		p->device = NULL;
	}
	l = xcalloc(1, sizeof(*l));
	l->p = p;
	l->device = 1;
	add_waiter(&l->waiters, done, arg);
	fields = p->scope[0] != '\0' ?
	    json_pack("{s:s, s:s}", "client_id", p->client_id, "scope", p->scope) :
	    json_pack("{s:s}", "client_id", p->client_id);
	l->req = auth_request(p, "POST", p->device_code_url, 0, fields, 1, NULL,
	    device_code_done, l);
	json_decref(fields);
	if (l->req == NULL) {
		answer_all(&l->waiters, NULL, "unavailable", "cannot start a request to the "
		    "device-code endpoint");
		auth_login_free(l, "done");
		return;
	}
	p->device = l;
}

void crab_auth_login_begin(struct crab_auth *a, const char *provider, crab_auth_done_fn done,
    void *arg)
{
	struct auth_provider *p = find_or_reply(a, provider, done, arg);

	if (p == NULL)
		return;
	if (p->device_code_url != NULL)
		device_begin(p, done, arg);
	else
		paste_begin(p, done, arg);
}

void crab_auth_login_wait(struct crab_auth *a, const char *provider, crab_auth_done_fn done,
    void *arg)
{
	struct auth_provider *p = find_or_reply(a, provider, done, arg);

	if (p == NULL)
		return;
	if (p->device != NULL && p->device->device_code != NULL)
		add_waiter(&p->device->waiters, done, arg);
	else if (p->state == AUTH_ACTIVE && p->storing == 0)
		reply(done, arg, json_pack("{s:s, s:s}", "provider", p->id, "state", "logged_in"),
		    NULL, NULL);
	else
		reply(done, arg, NULL, "login_unknown", "no device login of provider %s is under "
		    "way: run crab auth login %s", p->id, p->id);
}

/* ---- logout ---- */

static void logout_stored(void *arg, int ok)
{
	struct auth_provider *p = arg;

	answer_all(&p->logout_waiters, json_pack("{s:s, s:s, s:b, s:b}", "provider", p->id,
	    "state", "logged_out", "revoked_at_provider", p->revoked_at_provider, "stored", ok),
	    NULL, NULL);
}

static void logout_finish(struct auth_provider *p, int revoked)
{
	if (p->device != NULL) {
		auth_login_free(p->device, "the provider was logged out");
		p->device = NULL;
	}
	p->revoked_at_provider = revoked;
	log_info("auth: provider %s: logged out%s", p->id, revoked ? " (the refresh token was "
	    "revoked at the provider)" : "");
	auth_end_login(p, AUTH_LOGGED_OUT, "logout", logout_stored, p);
}

static void revoke_done(struct auth_req *r, int status, json_t *body, const char *error)
{
	struct auth_provider *p = r->p;

	(void)body;
	p->revoke = NULL;
	if (!(status >= 200 && status < 300))
		log_warnx("auth: provider %s: revoking the refresh token failed (%s %d); the login "
		    "is forgotten here all the same", p->id, error ? "no answer:" : "HTTP", status);
	logout_finish(p, status >= 200 && status < 300);
}

void crab_auth_logout(struct crab_auth *a, const char *provider, crab_auth_done_fn done,
    void *arg)
{
	struct auth_provider *p = find_or_reply(a, provider, done, arg);
	json_t *fields;

	if (p == NULL)
		return;
	add_waiter(&p->logout_waiters, done, arg);
	if (p->revoke != NULL)
		return; /* a logout is under way: this one hears its end too */
	if (p->revoke_url != NULL && p->refresh != NULL && p->state == AUTH_ACTIVE) {
		fields = json_pack("{s:s, s:s, s:s}", "token", p->refresh, "token_type_hint",
		    p->kind == AUTH_OAUTH ? "refresh_token" : "access_token", "client_id",
		    p->client_id);
		p->revoke = auth_request(p, "POST", p->revoke_url, 0, fields, p->form, NULL,
		    revoke_done, NULL);
		json_decref(fields);
		if (p->revoke != NULL)
			return;
	}
	logout_finish(p, 0);
}
