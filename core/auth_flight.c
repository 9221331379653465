/* auth_flight.c: the one refresh (or exchange) at a time per provider that every asker
 * of its token waits on: who is answered at once and who waits, the backoff after a
 * failure, a token the API refused (a 401), and the tokens a login or refresh brings in
 * or the end of a login takes away. */
#include "auth.h"
#include "auth_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "util.h"

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
void auth_fail_waiters(struct auth_provider *p, const char *error)
{
	for (struct auth_waiter *w = take_waiters(p), *next; w != NULL; w = next) {
		next = w->next;
		w->answer(w->arg, NULL, error);
		free(w);
	}
}

/* Everyone waiting asks again: the tokens changed. Those who still cannot be answered
 * queue again, behind one new refresh at most. */
static void reask_waiters(struct auth_provider *p)
{
	for (struct auth_waiter *w = take_waiters(p), *next; w != NULL; w = next) {
		next = w->next;
		auth_provider_ask(p, NULL, w->answer, w->arg);
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
	auth_fail_waiters(p, msg);
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
	const char *access = auth_spec_str(body, "access_token");
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
		auth_set_tokens(p, access, auth_spec_str(body, "refresh_token") ?: p->refresh,
		    expires_at, 0, NULL, NULL);
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
	const char *token = auth_spec_str(body, "token");
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

int auth_provider_ask(struct auth_provider *p, const char *stale, crab_auth_answer_fn answer,
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
			auth_provider_ask(p, NULL, answer, arg);
		return 0;
	}
	enqueue(p, answer, arg);
	start_flight(p); /* a failure to start answers the queue */
	return 0;
}

/* ---- tokens in, logins out ---- */

/* What a login stored tells: the caller's done, when it gave one. */
struct stored_ctx {
	void (*done)(void *arg, int ok);
	void *arg;
};

static void stored(struct auth_provider *p, int ok, void *ctx)
{
	struct stored_ctx *c = ctx;

	p->storing--;
	if (c != NULL && c->done != NULL)
		c->done(c->arg, ok);
	free(c);
	if (p->storing == 0)
		reask_waiters(p); /* a login may have come meanwhile */
}

static void tokens_stored(struct auth_provider *p, int ok, void *ctx)
{
	if (!ok)
		log_warnx("auth: provider %s: its new tokens are in memory only: after a restart "
		    "it needs crab auth login %s", p->id, p->id);
	stored(p, ok, ctx);
}

/* p's login to the store, then cb, then done (NULL: none) with arg. */
static void store_login(struct auth_provider *p, void (*cb)(struct auth_provider *p, int ok,
    void *ctx), void (*done)(void *arg, int ok), void *arg)
{
	struct stored_ctx *c = NULL;

	if (done != NULL) {
		c = xcalloc(1, sizeof(*c));
		c->done = done;
		c->arg = arg;
	}
	p->storing++;
	auth_store_login(p, cb, c);
}

void auth_set_tokens(struct auth_provider *p, const char *access, const char *refresh,
    int64_t expires_at, int64_t refresh_at, void (*done)(void *arg, int ok), void *arg)
{
	char *na = access != NULL ? xstrdup(access) : NULL;
	char *nr = refresh != NULL ? xstrdup(refresh) : NULL;

	auth_wipe_free(p->access);
	auth_wipe_free(p->refresh);
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
	store_login(p, tokens_stored, done, arg);
}

void auth_end_login(struct auth_provider *p, enum auth_state state, const char *reason,
    void (*done)(void *arg, int ok), void *arg)
{
	char msg[512];

	auth_wipe_free(p->access);
	auth_wipe_free(p->refresh);
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
	store_login(p, stored, done, arg);
	auth_login_required(p, msg, sizeof(msg));
	auth_fail_waiters(p, msg);
}
