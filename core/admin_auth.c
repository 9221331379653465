/* admin_auth.c: auth.status, auth.login, auth.login.wait and auth.logout (core/auth.h),
 * what `crab auth` calls. No answer carries a token. */
#include "admin_ops.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "auth.h"
#include "gateway.h"
#include "util.h"

#define PROVIDER_MAX 64
#define CODE_MAX 4096

static void done_cb(void *arg, json_t *result, const char *code, const char *message)
{
	struct admin_call *call = arg;

	if (result != NULL)
		crab_admin_reply_ok(call, result);
	else
		crab_admin_reply_error(call, code ? code : "auth_failed", "%s",
		    message ? message : "the login failed");
}

static const char *provider_arg(struct admin_call *call, json_t *args)
{
	int bad = 0;
	const char *p = crab_admin_arg_string(args, "provider", PROVIDER_MAX, &bad);

	if (p == NULL || bad)
		crab_admin_reply_error(call, "invalid_args", "provider (the auth.provider of a "
		    "models: entry) is required");
	return bad ? NULL : p;
}

void crab_admin_op_auth_status(struct admin_call *call, json_t *args)
{
	(void)args;
	crab_admin_reply_ok(call, crab_auth_status(call->gw->auth));
}

void crab_admin_op_auth_login(struct admin_call *call, json_t *args)
{
	const char *provider = provider_arg(call, args);
	int bad = 0;
	const char *code = crab_admin_arg_string(args, "code", CODE_MAX, &bad);

	if (provider == NULL)
		return;
	if (bad) {
		crab_admin_reply_error(call, "invalid_args", "code is the text the login page "
		    "showed (CODE#STATE), at most %d bytes", CODE_MAX);
		return;
	}
	if (call->gw->auth == NULL) {
		crab_admin_reply_error(call, "not_found", "no models: entry has auth:");
		return;
	}
	if (code != NULL)
		crab_auth_login_code(call->gw->auth, provider, code, done_cb, call);
	else
		crab_auth_login_begin(call->gw->auth, provider, done_cb, call);
}

void crab_admin_op_auth_login_wait(struct admin_call *call, json_t *args)
{
	const char *provider = provider_arg(call, args);

	if (provider != NULL)
		crab_auth_login_wait(call->gw->auth, provider, done_cb, call);
}

void crab_admin_op_auth_logout(struct admin_call *call, json_t *args)
{
	const char *provider = provider_arg(call, args);

	if (provider != NULL)
		crab_auth_logout(call->gw->auth, provider, done_cb, call);
}

#ifdef CRAB_TEST_HOOKS
/* Test builds only: what host->auth_token lends model's instance, as its length and
 * SHA-256 (never the token); with refuse, the token is then reported refused (as a 401
 * would) and the answer is the one that follows. */
struct token_ask {
	struct admin_call *call;
	struct crab_gateway *gw;
	char *model;
	int refuse, asked;
};

static void token_answer(void *arg, const char *token, const char *error)
{
	struct token_ask *t = arg;
	const struct crab_config_model *m;
	unsigned char digest[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	char *copy;

	if (token != NULL && t->refuse && t->asked++ == 0 &&
	    (m = crab_config_model_find(t->gw->cfg, t->model)) != NULL) {
		copy = xstrdup(token);
		crab_auth_token(t->gw->auth, t->model, m->config, copy, token_answer, t);
		OPENSSL_cleanse(copy, strlen(copy));
		free(copy);
		return;
	}
	if (token != NULL) {
		SHA256((const unsigned char *)token, strlen(token), digest);
		crab_hex(digest, sizeof(digest), hex);
		crab_admin_reply_ok(t->call, json_pack("{s:b, s:I, s:s}", "token", 1, "length",
		    (json_int_t)strlen(token), "sha256", hex));
	} else {
		crab_admin_reply_ok(t->call, json_pack("{s:b, s:s}", "token", 0, "error",
		    error ? error : ""));
	}
	free(t->model);
	free(t);
}

void crab_admin_op_auth_token(struct admin_call *call, json_t *args)
{
	int bad = 0;
	const char *model = crab_admin_arg_string(args, "model", 256, &bad);
	const struct crab_config_model *m = model ? crab_config_model_find(call->gw->cfg, model) :
	    NULL;
	struct token_ask *t;

	if (m == NULL || bad) {
		crab_admin_reply_error(call, "invalid_args", "model (a models: entry id) is required");
		return;
	}
	t = xcalloc(1, sizeof(*t));
	t->call = call;
	t->gw = call->gw;
	t->model = xstrdup(model);
	t->refuse = json_is_true(json_object_get(args, "refuse"));
	if (crab_auth_token(call->gw->auth, model, m->config, NULL, token_answer, t) != 0) {
		crab_admin_reply_error(call, "not_found", "model '%s' has no auth:", model);
		free(t->model);
		free(t);
	}
}
#endif
