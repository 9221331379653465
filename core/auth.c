/* auth.c: the providers of auth.h, their tokens in memory and in the store, and the
 * one refresh (or exchange) at a time that every asker of a provider waits on. Logins
 * and logout are in auth_login.c. */
#include "auth.h"
#include "auth_int.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "clock.h"
#include "log.h"
#include "util.h"

#define KEY_FILE_MAX 8192
#define HEADERS_MAX 48

static void wipe_free(char *s)
{
	if (s != NULL) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

static const char *spec_str(const json_t *spec, const char *key)
{
	return json_string_value(json_object_get(spec, key));
}

/* ---- requests to the provider's endpoints ---- */

static void url_encode(struct crab_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			crab_buf_add(b, (const char *)&c, 1);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			crab_buf_add(b, esc, 3);
		}
	}
}

/* k=v&k=v of an object of strings. */
static char *form_body(json_t *fields)
{
	struct crab_buf b = {0};
	const char *k;
	json_t *v;

	json_object_foreach(fields, k, v) {
		if (!json_is_string(v))
			continue;
		if (b.len > 0)
			crab_buf_add(&b, "&", 1);
		url_encode(&b, k);
		crab_buf_add(&b, "=", 1);
		url_encode(&b, json_string_value(v));
	}
	return crab_buf_take(&b);
}

static void req_header(void *arg, int status, const char *line, size_t len)
{
	struct auth_req *r = arg;
	char num[16];
	size_t n;

	(void)status;
	if (len < 12 || strncasecmp(line, "retry-after:", 12) != 0)
		return;
	for (line += 12, len -= 12; len > 0 && *line == ' '; line++, len--)
		;
	n = len < sizeof(num) - 1 ? len : sizeof(num) - 1;
	memcpy(num, line, n);
	num[n] = '\0';
	if (crab_parse_int64(num, 0, 3600, &r->retry_after_s) != 0)
		r->retry_after_s = 0;
}

static void req_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct auth_req *r = arg;
	json_t *j = NULL;

	r->call = NULL;
	if (error == NULL && body != NULL && len > 0)
		j = json_loadb(body, len, 0, NULL);
	r->done(r, error != NULL ? 0 : status, json_is_object(j) ? j : NULL, error);
	json_decref(j);
	free(r);
}

struct auth_req *auth_request(struct auth_provider *p, const char *method, const char *url,
    int exchange_headers, json_t *fields, int form, const char *bearer, auth_req_fn done,
    void *ctx)
{
	static const struct crab_http_handler_v1 h = {
		.size = sizeof(struct crab_http_handler_v1),
		.on_header = req_header,
		.on_done = req_done,
	};
	const char *hdrs[HEADERS_MAX + 1];
	char **extra = exchange_headers ? p->xheaders : p->headers;
	char *body = NULL, *auth_line = NULL;
	struct crab_http_req_v1 req = {.size = sizeof(req), .method = method, .url = url,
		.timeout_ms = p->timeout_ms, .max_response_bytes = AUTH_RESPONSE_MAX};
	struct auth_req *r;
	size_t n = 0;

	if (p->a->http == NULL)
		return NULL;
	if (fields != NULL) {
		body = form ? form_body(fields) : json_dumps(fields, JSON_COMPACT);
		hdrs[n++] = form ? "Content-Type: application/x-www-form-urlencoded" :
		    "Content-Type: application/json";
		req.body = body;
		req.body_len = strlen(body);
	}
	hdrs[n++] = "Accept: application/json";
	if (bearer != NULL) {
		size_t len = strlen(bearer) + sizeof("Authorization: Bearer ");
		auth_line = xmalloc(len);
		snprintf(auth_line, len, "Authorization: Bearer %s", bearer);
		hdrs[n++] = auth_line;
	}
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < HEADERS_MAX; i++)
		hdrs[n++] = extra[i];
	hdrs[n] = NULL;
	req.headers = hdrs;
	r = xcalloc(1, sizeof(*r));
	r->p = p;
	r->done = done;
	r->ctx = ctx;
	r->call = crab_http_client_start(p->a->http, &req, &h, r);
	wipe_free(body);
	wipe_free(auth_line);
	if (r->call == NULL) {
		log_warnx("auth: provider %s: cannot start a request to its endpoint", p->id);
		free(r);
		return NULL;
	}
	p->requests++;
	return r;
}

void auth_req_cancel(struct auth_req *r)
{
	if (r == NULL)
		return;
	crab_http_client_cancel(r->call);
	free(r);
}

void auth_error_code(json_t *body, char *out, size_t outlen)
{
	json_t *e = json_object_get(body, "error");
	const char *s = json_string_value(e);
	size_t n = 0;

	if (s == NULL && json_is_object(e))
		s = json_string_value(json_object_get(e, "code")) ?: json_string_value(json_object_get(e, "type"));
	if (s == NULL)
		s = json_string_value(json_object_get(body, "code"));
	out[0] = '\0';
	for (; s != NULL && s[n] != '\0' && n + 1 < outlen && n < 48; n++) {
		char c = s[n];
		out[n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-' ? c : '_';
	}
	if (s != NULL)
		out[n] = '\0';
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
	wipe_free(plain);
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

static void store_login(struct auth_provider *p, void (*done)(struct auth_provider *p, int ok,
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

/* ---- answers ---- */

/* The effective margin: the configured one, at most half the token's life, so that a
 * token shorter-lived than the margin is not refreshed on every ask. */
static int64_t margin_of(const struct auth_provider *p)
{
	int64_t life = p->expires_at - p->issued_at;

	return p->issued_at > 0 && life > 0 && life / 2 < p->margin_ms ? life / 2 : p->margin_ms;
}

static int usable(const struct auth_provider *p, int64_t now)
{
	return p->state == AUTH_ACTIVE && p->access != NULL && !p->refused &&
	    (p->expires_at == 0 || now < p->expires_at);
}

static int fresh(const struct auth_provider *p, int64_t now)
{
	return usable(p, now) && (p->expires_at == 0 || now + margin_of(p) < p->expires_at) &&
	    (p->refresh_at == 0 || now < p->refresh_at);
}

void auth_login_required(struct auth_provider *p, char *out, size_t outlen)
{
	switch (p->state) {
	case AUTH_REVOKED:
		snprintf(out, outlen, "login_required: the login of provider %s was revoked (%s); "
		    "run crab auth login %s", p->id, p->reason[0] ? p->reason : "refused", p->id);
		break;
	case AUTH_LOGGED_OUT:
		snprintf(out, outlen, "login_required: provider %s was logged out; run crab auth "
		    "login %s", p->id, p->id);
		break;
	case AUTH_ACTIVE: /* expired, and nothing to renew it with */
		snprintf(out, outlen, "login_required: the access token of provider %s expired and "
		    "there is no refresh token; run crab auth login %s", p->id, p->id);
		break;
	default:
		if (p->reason[0] != '\0')
			snprintf(out, outlen, "login_required: the stored login of provider %s cannot "
			    "be read (%s); run crab auth login %s", p->id, p->reason, p->id);
		else
			snprintf(out, outlen, "login_required: provider %s is not logged in; run crab "
			    "auth login %s", p->id, p->id);
		break;
	}
}

static void unavailable(struct auth_provider *p, int64_t now, char *out, size_t outlen)
{
	snprintf(out, outlen, "auth_unavailable: provider %s has no usable token now (%s); next "
	    "attempt in %lld s", p->id, p->last_error[0] ? p->last_error : "no answer",
	    (long long)((p->next_try_at - now + 999) / 1000));
}

static struct auth_waiter *take_waiters(struct auth_provider *p)
{
	struct auth_waiter *w = p->waiters;

	p->waiters = NULL;
	p->wtail = &p->waiters;
	p->nwaiters = 0;
	return w;
}

/* Everyone waiting gets error. */
static void fail_waiters(struct auth_provider *p, const char *error)
{
	for (struct auth_waiter *w = take_waiters(p), *next; w != NULL; w = next) {
		next = w->next;
		w->answer(w->arg, NULL, error);
		free(w);
	}
}

static int provider_ask(struct auth_provider *p, const char *stale, crab_auth_answer_fn answer,
    void *arg);

/* Everyone waiting asks again: the tokens changed. Those who still cannot be answered
 * queue again, behind one new refresh at most. */
static void reask_waiters(struct auth_provider *p)
{
	for (struct auth_waiter *w = take_waiters(p), *next; w != NULL; w = next) {
		next = w->next;
		provider_ask(p, NULL, w->answer, w->arg);
		free(w);
	}
}

static void enqueue(struct auth_provider *p, crab_auth_answer_fn answer, void *arg)
{
	struct auth_waiter *w;
	char msg[256];

	if (p->nwaiters >= AUTH_WAITERS_MAX) {
		snprintf(msg, sizeof(msg), "auth_unavailable: too many requests wait for the token "
		    "of provider %s", p->id);
		answer(arg, NULL, msg);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->answer = answer;
	w->arg = arg;
	*p->wtail = w;
	p->wtail = &w->next;
	p->nwaiters++;
}

/* ---- refresh and exchange ---- */

static void flight_failed(struct auth_provider *p, int64_t retry_after_s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void flight_failed(struct auth_provider *p, int64_t retry_after_s, const char *fmt, ...)
{
	int64_t now = crab_clock_now_ms();
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->last_error, sizeof(p->last_error), fmt, ap);
	va_end(ap);
	p->failures++;
	p->backoff_ms = p->backoff_ms == 0 ? AUTH_BACKOFF_MIN_MS :
	    p->backoff_ms * 2 > AUTH_BACKOFF_MAX_MS ? AUTH_BACKOFF_MAX_MS : p->backoff_ms * 2;
	if (retry_after_s * 1000 > p->backoff_ms)
		p->backoff_ms = retry_after_s * 1000 > 10 * AUTH_BACKOFF_MAX_MS ?
		    10 * AUTH_BACKOFF_MAX_MS : retry_after_s * 1000;
	p->next_try_at = now + p->backoff_ms;
	log_warnx("auth: provider %s: %s; next attempt in %lld ms", p->id, p->last_error,
	    (long long)p->backoff_ms);
	if (usable(p, now)) {
		reask_waiters(p); /* the token in hand is still good: they take it */
		return;
	}
	unavailable(p, now, msg, sizeof(msg));
	fail_waiters(p, msg);
}

static int revoked_code(const char *code)
{
	static const char *const codes[] = {"invalid_grant", "refresh_token_expired",
		"refresh_token_reused", "refresh_token_invalidated", "invalid_token"};

	for (size_t i = 0; i < CRAB_ARRAY_LEN(codes); i++) {
		if (strcmp(code, codes[i]) == 0)
			return 1;
	}
	return 0;
}

static void describe(char *out, size_t outlen, int status, const char *code, const char *error)
{
	if (status == 0)
		snprintf(out, outlen, "no answer: %.200s", error ? error : "unknown error");
	else if (code[0] != '\0')
		snprintf(out, outlen, "HTTP %d %s", status, code);
	else
		snprintf(out, outlen, "HTTP %d", status);
}

static void refresh_done(struct auth_req *r, int status, json_t *body, const char *error)
{
	struct auth_provider *p = r->p;
	const char *access = spec_str(body, "access_token");
	json_t *ein = json_object_get(body, "expires_in");
	char code[64], what[256];
	int64_t now = crab_clock_now_ms(), expires_at = 0;

	p->flight = NULL;
	auth_error_code(body, code, sizeof(code));
	if (status >= 200 && status < 300 && access != NULL && access[0] != '\0') {
		if (json_is_integer(ein) && json_integer_value(ein) > 0)
			expires_at = now + json_integer_value(ein) * 1000;
		p->refreshes++;
		log_info("auth: provider %s: access token refreshed (expires in %lld s)", p->id,
		    expires_at ? (long long)json_integer_value(ein) : -1LL);
		auth_set_tokens(p, access, spec_str(body, "refresh_token") ?: p->refresh, expires_at,
		    0, NULL, NULL);
		p->from_refusal = p->flight_for_refusal;
		return;
	}
	describe(what, sizeof(what), status, code, error);
	if ((status == 400 || status == 401) && revoked_code(code)) {
		log_warnx("auth: provider %s: the refresh token was refused (%s): the login is over; "
		    "run crab auth login %s", p->id, code, p->id);
		auth_end_login(p, AUTH_REVOKED, code, NULL, NULL);
		return;
	}
	if (status >= 200 && status < 300)
		snprintf(what, sizeof(what), "HTTP %d without an access_token", status);
	flight_failed(p, status == 429 || status == 503 ? r->retry_after_s : 0,
	    "refreshing the access token failed: %s", what);
}

static void exchange_done(struct auth_req *r, int status, json_t *body, const char *error)
{
	struct auth_provider *p = r->p;
	const char *token = spec_str(body, "token");
	json_t *exp = json_object_get(body, "expires_at"), *rin = json_object_get(body, "refresh_in");
	char code[64], what[256];
	int64_t now = crab_clock_now_ms(), expires_at = 0, refresh_at = 0;

	p->flight = NULL;
	auth_error_code(body, code, sizeof(code));
	if (status >= 200 && status < 300 && token != NULL && token[0] != '\0') {
		if (json_is_integer(exp) && json_integer_value(exp) > 0)
			expires_at = json_integer_value(exp) * 1000;
		if (json_is_integer(rin) && json_integer_value(rin) > 0)
			refresh_at = now + json_integer_value(rin) * 1000;
		if (expires_at != 0 && expires_at <= now + 1000) {
			/* expires_at is the provider's clock: this host's is ahead of it. Going by
			 * it would exchange on every ask; refresh_in (relative) says when instead,
			 * and a 401 says when it really ended. */
			log_warnx("auth: provider %s: the short-lived token expires before this host's "
			    "clock says now: is the clock off? renewing it by refresh_in", p->id);
			expires_at = 0;
			if (refresh_at == 0)
				refresh_at = now + 60000;
		}
		p->refreshes++;
		log_info("auth: provider %s: short-lived token exchanged", p->id);
		auth_set_tokens(p, token, p->refresh, expires_at, refresh_at, NULL, NULL);
		p->from_refusal = p->flight_for_refusal;
		return;
	}
	describe(what, sizeof(what), status, code, error);
	if (status == 401) {
		log_warnx("auth: provider %s: the token exchange refused the login (HTTP 401): the "
		    "login is over; run crab auth login %s", p->id, p->id);
		auth_end_login(p, AUTH_REVOKED, "exchange_refused", NULL, NULL);
		return;
	}
	if (status >= 200 && status < 300)
		snprintf(what, sizeof(what), "HTTP %d without a token", status);
	flight_failed(p, status == 429 || status == 503 ? r->retry_after_s : 0,
	    "the token exchange failed: %s", what);
}

static void start_flight(struct auth_provider *p)
{
	json_t *fields;

	p->flight_for_refusal = p->refused;
	if (p->kind == AUTH_OAUTH) {
		fields = json_pack("{s:s, s:s, s:s}", "grant_type", "refresh_token", "refresh_token",
		    p->refresh, "client_id", p->client_id);
		p->flight = auth_request(p, "POST", p->token_url, 0, fields, p->form, NULL,
		    refresh_done, NULL);
		json_decref(fields);
	} else {
		p->flight = auth_request(p, "GET", p->exchange_url, 1, NULL, 0, p->refresh,
		    exchange_done, NULL);
	}
	if (p->flight == NULL)
		flight_failed(p, 0, "cannot start a request to the %s endpoint",
		    p->kind == AUTH_OAUTH ? "token" : "exchange");
	else
		log_info("auth: provider %s: %s", p->id, p->kind == AUTH_OAUTH ?
		    "refreshing the access token" : "exchanging the login for a short-lived token");
}

/* The API refused the current token (a 401). It is renewed, but a token that a renewal
 * for a refusal gave and that is refused again soon after (the API refuses more than an
 * expired token) waits before the next renewal, 1 s doubling to 60 s: one renewal per
 * request would otherwise follow, and rotate the login every time. */
static void refused(struct auth_provider *p, int64_t now)
{
	int64_t wait;

	p->refused = 1;
	if (p->from_refusal && now - p->issued_at < AUTH_BACKOFF_MAX_MS)
		p->refusals++;
	else
		p->refusals = 0;
	if (p->refusals == 0) {
		log_info("auth: provider %s: the API refused its %s token; renewing it", p->id,
		    p->kind == AUTH_OAUTH ? "access" : "short-lived");
		return;
	}
	wait = p->refusals > 6 ? AUTH_BACKOFF_MAX_MS : AUTH_BACKOFF_MIN_MS << (p->refusals - 1);
	if (now - p->issued_at >= wait || p->flight != NULL)
		return;
	p->failures++;
	p->next_try_at = p->issued_at + wait;
	snprintf(p->last_error, sizeof(p->last_error), "the API refused the token renewed %lld "
	    "ms before", (long long)(now - p->issued_at));
	log_warnx("auth: provider %s: %s; next attempt in %lld ms", p->id, p->last_error,
	    (long long)(p->next_try_at - now));
}

static int provider_ask(struct auth_provider *p, const char *stale, crab_auth_answer_fn answer,
    void *arg)
{
	int64_t now = crab_clock_now_ms();
	char msg[512];

	if (stale != NULL && p->access != NULL && !p->refused && strcmp(stale, p->access) == 0)
		refused(p, now);
	if (p->state != AUTH_ACTIVE) {
		auth_login_required(p, msg, sizeof(msg));
		answer(arg, NULL, msg);
		return 0;
	}
	if (fresh(p, now)) {
		answer(arg, p->access, NULL);
		return 0;
	}
	if (p->flight != NULL || p->storing > 0) {
		if (usable(p, now)) /* within the margin: the one renewing is under way */
			answer(arg, p->access, NULL);
		else
			enqueue(p, answer, arg);
		return 0;
	}
	if (now < p->next_try_at) { /* backing off: no request now */
		if (usable(p, now)) {
			answer(arg, p->access, NULL);
		} else {
			unavailable(p, now, msg, sizeof(msg));
			answer(arg, NULL, msg);
		}
		return 0;
	}
	if (p->refresh == NULL) {
		if (usable(p, now)) {
			answer(arg, p->access, NULL);
		} else {
			auth_login_required(p, msg, sizeof(msg));
			answer(arg, NULL, msg);
		}
		return 0;
	}
	if (usable(p, now)) { /* renewed before it expires; this asker need not wait */
		start_flight(p);
		if (p->state == AUTH_ACTIVE && usable(p, now))
			answer(arg, p->access, NULL);
		else
			provider_ask(p, NULL, answer, arg);
		return 0;
	}
	enqueue(p, answer, arg);
	start_flight(p); /* a failure to start answers the queue */
	return 0;
}

/* ---- tokens in, logins out ---- */

struct set_ctx {
	void (*done)(void *arg, int ok);
	void *arg;
};

static void tokens_stored(struct auth_provider *p, int ok, void *ctx)
{
	struct set_ctx *c = ctx;

	if (!ok)
		log_warnx("auth: provider %s: its new tokens are in memory only: after a restart "
		    "it needs crab auth login %s", p->id, p->id);
	p->storing--;
	if (c != NULL && c->done != NULL)
		c->done(c->arg, ok);
	free(c);
	if (p->storing == 0)
		reask_waiters(p);
}

void auth_set_tokens(struct auth_provider *p, const char *access, const char *refresh,
    int64_t expires_at, int64_t refresh_at, void (*done)(void *arg, int ok), void *arg)
{
	char *na = access != NULL ? xstrdup(access) : NULL;
	char *nr = refresh != NULL ? xstrdup(refresh) : NULL;
	struct set_ctx *c = NULL;

	wipe_free(p->access);
	wipe_free(p->refresh);
	p->access = na;
	p->refresh = nr;
	p->expires_at = expires_at;
	p->refresh_at = refresh_at;
	p->issued_at = crab_clock_now_ms();
	p->refused = 0;
	p->from_refusal = 0; /* a refresh sets it after */
	p->state = AUTH_ACTIVE;
	p->reason[0] = '\0';
	p->backoff_ms = 0;
	p->next_try_at = 0;
	p->last_error[0] = '\0';
	if (p->flight != NULL) { /* a login while a refresh was under way: that one is void */
		auth_req_cancel(p->flight);
		p->flight = NULL;
	}
	if (done != NULL) {
		c = xcalloc(1, sizeof(*c));
		c->done = done;
		c->arg = arg;
	}
	p->storing++;
	store_login(p, tokens_stored, c);
}

struct end_ctx {
	void (*done)(void *arg, int ok);
	void *arg;
};

static void end_stored(struct auth_provider *p, int ok, void *ctx)
{
	struct end_ctx *c = ctx;

	p->storing--;
	if (c != NULL && c->done != NULL)
		c->done(c->arg, ok);
	free(c);
	if (p->storing == 0)
		reask_waiters(p); /* a login may have come meanwhile */
}

void auth_end_login(struct auth_provider *p, enum auth_state state, const char *reason,
    void (*done)(void *arg, int ok), void *arg)
{
	struct end_ctx *c = NULL;
	char msg[512];

	wipe_free(p->access);
	wipe_free(p->refresh);
	p->access = p->refresh = NULL;
	p->expires_at = p->refresh_at = p->issued_at = 0;
	p->refused = 0;
	p->state = state;
	crab_strlcpy(p->reason, reason ? reason : "", sizeof(p->reason));
	p->backoff_ms = 0;
	p->next_try_at = 0;
	if (p->flight != NULL) {
		auth_req_cancel(p->flight);
		p->flight = NULL;
	}
	if (done != NULL) {
		c = xcalloc(1, sizeof(*c));
		c->done = done;
		c->arg = arg;
	}
	p->storing++;
	store_login(p, end_stored, c);
	auth_login_required(p, msg, sizeof(msg));
	fail_waiters(p, msg);
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
	const char *env = spec_str(spec, "key_env"), *file = spec_str(spec, "key_file");
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
	const char *kind = spec_str(spec, "kind"), *id = spec_str(spec, "provider");
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
	return provider_ask(p, stale, answer, arg);
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
	p->id = xstrdup(spec_str(spec, "provider"));
	p->kind = strcmp(spec_str(spec, "kind"), "oauth") == 0 ? AUTH_OAUTH : AUTH_EXCHANGE;
	p->authorize_url = spec_str(p->spec, "authorize_url");
	p->token_url = spec_str(p->spec, "token_url");
	p->revoke_url = spec_str(p->spec, "revoke_url");
	p->device_code_url = spec_str(p->spec, "device_code_url");
	p->exchange_url = spec_str(p->spec, "exchange_url");
	p->client_id = spec_str(p->spec, "client_id");
	p->redirect_uri = spec_str(p->spec, "redirect_uri");
	json_array_foreach(scopes, i, v) {
		if (!json_is_string(v))
			continue;
		if (b.len > 0)
			crab_buf_add(&b, " ", 1);
		crab_buf_add(&b, json_string_value(v), json_string_length(v));
	}
	p->scope = crab_buf_take(&b);
	body = spec_str(spec, "token_body");
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
	fail_waiters(p, msg);
	for (struct auth_done *d = p->logout_waiters, *next; d != NULL; d = next) {
		next = d->next;
		d->done(d->arg, NULL, "unavailable", "the gateway is stopping");
		free(d);
	}
	wipe_free(p->access);
	wipe_free(p->refresh);
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
	if (spec_str(t, "access_token") != NULL)
		p->access = xstrdup(spec_str(t, "access_token"));
	if (spec_str(t, "refresh_token") != NULL)
		p->refresh = xstrdup(spec_str(t, "refresh_token"));
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
		const char *kind = spec_str(spec, "kind"), *id = spec_str(spec, "provider");

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
