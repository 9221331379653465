/* auth.h: subscription-backed credentials for model instances (crab.yaml(5) AUTH,
 * shared/protocols/subscription-auth.md). A models: entry's `auth:` names a provider
 * (several entries may share one login) and how its tokens are had:
 *
 *   kind: oauth           OAuth 2.0 authorization code with PKCE (the paste-code flow),
 *                         or the device flow when device_code_url is set; the access
 *                         token is refreshed with the refresh token, which rotates.
 *   kind: token_exchange  a long-lived login from the device flow (GitHub style), traded
 *                         at exchange_url for short-lived tokens (Copilot style).
 *   kind: api_key         a plain key from key_env or key_file; no login.
 *
 * The gateway keeps the tokens in the store sealed with AES-256-GCM under a random key
 * in the data directory (auth.key, 0600), so a dump of the database holds no token, and
 * in memory on the loop. Every model request asks crab_auth_token: the answer is at
 * once while the access token is good for longer than the margin; otherwise one
 * refresh (or exchange) runs per provider, however many ask, and everyone waiting is
 * answered when it ends. A refused refresh token (invalid_grant and the like) ends the
 * login: every caller gets "login_required: ..." at once and no token request goes out
 * until `crab auth login`; a failing endpoint (network, 5xx, 429) gets a backoff of 1 s
 * doubling to 60 s, during which callers get "auth_unavailable: ..." at once (or the
 * token still in hand while it has not expired), so a burst never hammers it.
 *
 * Tokens never reach a log line, an event, a turn or an error message: errors name the
 * provider and the OAuth error code only. Everything runs on the loop thread. */
#ifndef CRAB_AUTH_H
#define CRAB_AUTH_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store/store.h"

struct crab_auth;
struct crab_storeq;
struct crab_http_client;

#define CRAB_AUTH_KEY_LEN 32
#define CRAB_AUTH_KEY_FILE "auth.key"
#define CRAB_PKCE_LEN 44 /* 43 base64url characters of 32 bytes, and the NUL */

/* ---- sealing and PKCE (auth_seal.c) ---- */

/* dir/auth.key (64 hex digits): read, or made (0600, atomically) when create is set and
 * it is missing. Refuses a file readable by group or others. 0, or -1 with err. */
int crab_auth_key_load(const char *dir, int create, unsigned char key[CRAB_AUTH_KEY_LEN],
    char *err, size_t errlen);
/* AES-256-GCM of plain under key, bound to aad (the provider), as text:
 * "v1." base64(12-byte nonce | ciphertext | 16-byte tag). malloc'd. */
char *crab_auth_seal(const unsigned char key[CRAB_AUTH_KEY_LEN], const char *aad,
    const char *plain, size_t len);
/* The plain text of a sealed string (malloc'd, NUL-terminated, *len bytes), or NULL when
 * it is not one, was sealed under another key or aad, or was changed. */
char *crab_auth_open(const unsigned char key[CRAB_AUTH_KEY_LEN], const char *aad,
    const char *sealed, size_t *len);
/* base64url without padding of len bytes into out (4 * ceil(len / 3) + 1 bytes is
 * enough); returns the length written. */
size_t crab_b64url(const unsigned char *in, size_t len, char *out);
/* RFC 7636: a verifier of 32 random bytes, and the S256 challenge of a verifier. */
int crab_pkce_verifier(char out[CRAB_PKCE_LEN]);
void crab_pkce_challenge(const char *verifier, char out[CRAB_PKCE_LEN]);
/* 32 random bytes as base64url: a state, a login id. */
int crab_auth_random(char out[CRAB_PKCE_LEN]);

/* ---- the layer (auth.c, auth_login.c) ---- */

/* The providers of cfg's models, with their logins read from st (on the caller's thread,
 * before the store worker owns st) and opened with dir's auth.key (made when a provider
 * needs it). NULL with err when the key cannot be had or the store not read. */
struct crab_auth *crab_auth_new(struct event_base *base, const struct crab_config *cfg,
    const char *dir, struct crab_store *st, char *err, size_t errlen);
/* What the layer uses once running: the store worker and the HTTP client (borrowed;
 * free the layer before them). */
void crab_auth_start(struct crab_auth *a, struct crab_storeq *q, struct crab_http_client *http);
/* Cancels the token requests in flight and answers everyone still waiting (token
 * askers and admin calls) with an error, then frees. NULL is a no-op. */
void crab_auth_free(struct crab_auth *a);

typedef void (*crab_auth_answer_fn)(void *arg, const char *token, const char *error);

/* The bearer credential for the model entry model (its config: the entry as JSON), as
 * host->auth_token lends it (abi/crab_module_v1.h): answer exactly once, now or later;
 * stale is the token a request was just refused with (copied at once), or NULL. -1
 * (and no answer) when the entry has no auth:. */
int crab_auth_token(struct crab_auth *a, const char *model, const json_t *config,
    const char *stale, crab_auth_answer_fn answer, void *arg);

/* The admin operations' side. done(arg, result, code, message): result (a new
 * reference the callee takes) on success, else NULL with an error code and message.
 * Exactly once, now or later. */
typedef void (*crab_auth_done_fn)(void *arg, json_t *result, const char *code,
    const char *message);

/* {"providers":[{"provider","kind","state","message",...}]} (never a token). */
json_t *crab_auth_status(struct crab_auth *a);
/* Begins a login: the paste flow answers {"flow":"paste","url"}; the device flow asks
 * the provider for a code and answers {"flow":"device","user_code","verification_uri",
 * "expires_in"}, then polls on its own (crab_auth_login_wait hears the end). */
void crab_auth_login_begin(struct crab_auth *a, const char *provider, crab_auth_done_fn done,
    void *arg);
/* Completes a paste-flow login with what the page showed: "CODE#STATE" (or CODE, for the
 * provider's latest login begun). Answers {"provider","expires_in"}. */
void crab_auth_login_code(struct crab_auth *a, const char *provider, const char *code,
    crab_auth_done_fn done, void *arg);
/* Waits for the device-flow login of provider begun earlier. */
void crab_auth_login_wait(struct crab_auth *a, const char *provider, crab_auth_done_fn done,
    void *arg);
/* Revokes the refresh token at revoke_url when there is one (best effort) and forgets
 * the login. */
void crab_auth_logout(struct crab_auth *a, const char *provider, crab_auth_done_fn done,
    void *arg);

#endif
