/* auth_int.h: what auth.c (providers, the store), auth_http.c (endpoint requests),
 * auth_flight.c (tokens, refreshes) and auth_login.c (logins, logout) share; private to
 * core/auth*.c. */
#ifndef CRAB_AUTH_INT_H
#define CRAB_AUTH_INT_H

#include <jansson.h>
#include <stdint.h>

#include "auth.h"
#include "http_client.h"
#include "storeq.h"

#define AUTH_WAITERS_MAX 10000     /* token askers queued on one provider's refresh */
#define AUTH_BACKOFF_MIN_MS 1000
#define AUTH_BACKOFF_MAX_MS 60000
#define AUTH_REASON_MAX 64
#define AUTH_RESPONSE_MAX (256u << 10)

enum auth_kind { AUTH_OAUTH, AUTH_EXCHANGE };
enum auth_state { AUTH_NONE, AUTH_ACTIVE, AUTH_REVOKED, AUTH_LOGGED_OUT };

struct auth_waiter {
	crab_auth_answer_fn answer;
	void *arg;
	struct auth_waiter *next;
};

/* An admin call waiting for a login or logout to end. */
struct auth_done {
	crab_auth_done_fn done;
	void *arg;
	struct auth_done *next;
};

/* One HTTP request to a provider's endpoint, JSON answer expected. */
struct auth_req;
typedef void (*auth_req_fn)(struct auth_req *r, int status, json_t *body, const char *error);
struct auth_req {
	struct auth_provider *p;
	struct crab_http_call *call;
	auth_req_fn done;
	int64_t retry_after_s; /* a Retry-After header, or 0 */
	void *ctx;
};

/* A login begun and not finished. Paste flow: the PKCE verifier and the state, for ten
 * minutes. Device flow: the device code, polled at interval until it expires. */
struct auth_login {
	struct auth_provider *p;
	int device;
	char state[CRAB_PKCE_LEN], verifier[CRAB_PKCE_LEN];
	char *device_code;
	int64_t expires_at, interval_ms;
	struct event *timer;
	struct auth_req *req;
	struct auth_done *waiters; /* crab_auth_login_wait callers (and the code exchange's) */
	struct auth_login *next;
};

struct auth_provider {
	struct crab_auth *a;
	char *id;
	enum auth_kind kind;
	json_t *spec;   /* the auth: mapping; the strings below are borrowed from it */
	const char *authorize_url, *token_url, *revoke_url, *device_code_url, *exchange_url;
	const char *client_id, *redirect_uri;
	char *scope;    /* scopes joined with spaces, "" when none */
	int form;       /* token_body: form (1) or json (0) */
	int64_t margin_ms, timeout_ms;
	char **headers, **xheaders; /* "Name: value", NULL-terminated */

	enum auth_state state;
	char reason[AUTH_REASON_MAX];
	char *access;        /* the token lent to adapters; NULL when none */
	int64_t expires_at;  /* of access, ms; 0 when the provider said nothing */
	int64_t refresh_at;  /* token_exchange: refresh_in said to renew then; 0 none */
	int64_t issued_at;   /* when access came: the margin is at most half its life */
	int refused;         /* access was refused by the API (401): never lent again */
	int from_refusal;    /* access came from a renewal for a refusal */
	int flight_for_refusal; /* the renewal in flight is for one */
	int refusals;        /* tokens so renewed and refused again soon after, in a row */
	char *refresh;       /* the refresh token (oauth), or the long-lived login (exchange) */

	/* the one refresh or exchange in flight, and who waits for it */
	struct auth_req *flight;
	int storing;         /* its new tokens are being stored; askers still wait */
	struct auth_waiter *waiters, **wtail;
	size_t nwaiters;
	int64_t backoff_ms, next_try_at;
	char last_error[160];
	uint64_t refreshes, failures, requests;

	struct auth_req *revoke; /* logout's revoke call */
	int revoked_at_provider; /* what the last logout's revoke call got */
	struct auth_done *logout_waiters;
	struct auth_login *device; /* the device login polling, if any */
	struct auth_provider *next;
};

struct crab_auth {
	struct event_base *base;
	struct crab_storeq *storeq;
	struct crab_http_client *http;
	unsigned char key[CRAB_AUTH_KEY_LEN];
	int have_key;
	struct auth_provider *providers;
	struct auth_login *pastes; /* paste-flow logins begun, newest first */
	int freeing;
};

/* auth.c */
struct auth_provider *auth_provider_find(struct crab_auth *a, const char *id);
/* Wipes a secret string, then frees it. NULL is a no-op. */
void auth_wipe_free(char *s);
/* The string member key of spec, or NULL (borrowed from spec). */
const char *auth_spec_str(const json_t *spec, const char *key);
/* Stores p's login (its tokens sealed, its state) on the store worker, then done. */
void auth_store_login(struct auth_provider *p, void (*done)(struct auth_provider *p, int ok,
    void *ctx), void *ctx);

/* auth_http.c */
/* Starts a request: method, url, the provider's headers (extra: exchange_headers
 * instead), fields as the body (form or JSON as form says; NULL: none), a bearer
 * credential or NULL. NULL when it cannot start (logged). */
struct auth_req *auth_request(struct auth_provider *p, const char *method, const char *url,
    int exchange_headers, json_t *fields, int form, const char *bearer, auth_req_fn done,
    void *ctx);
void auth_req_cancel(struct auth_req *r);
/* The OAuth error code of an answer ("invalid_grant"), sanitised; "" when none. */
void auth_error_code(json_t *body, char *out, size_t outlen);
/* s percent-encoded as RFC 3986 unreserved characters allow (forms, query strings). */
struct crab_buf;
void auth_url_encode(struct crab_buf *b, const char *s);

/* auth_flight.c */
/* crab_auth_token for p: answers now, or queues the asker behind the one refresh. */
int auth_provider_ask(struct auth_provider *p, const char *stale, crab_auth_answer_fn answer,
    void *arg);
/* Everyone waiting for p's token gets error. */
void auth_fail_waiters(struct auth_provider *p, const char *error);
/* Takes the tokens of a login or a refresh: answers the askers waiting once they are
 * stored, then done (may be NULL) with ok. access may be NULL (a token_exchange login:
 * its first ask exchanges). Strings are copied. */
void auth_set_tokens(struct auth_provider *p, const char *access, const char *refresh,
    int64_t expires_at, int64_t refresh_at, void (*done)(void *arg, int ok), void *arg);
/* Ends the login: state (revoked or logged out), why; wipes the tokens, stores it,
 * answers every asker with login_required, then done (may be NULL). */
void auth_end_login(struct auth_provider *p, enum auth_state state, const char *reason,
    void (*done)(void *arg, int ok), void *arg);
/* The answer every asker gets when there is no login: "login_required: ...". */
void auth_login_required(struct auth_provider *p, char *out, size_t outlen);

/* auth_login.c */
void auth_login_free(struct auth_login *l, const char *why);
void auth_logins_release(struct crab_auth *a);

#endif
