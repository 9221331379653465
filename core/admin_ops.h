/* admin_ops.h: what an admin operation sees, for operations kept outside admin.c. An
 * operation answers exactly once, now or later on the loop, with reply_ok (taking the
 * result) or reply_error. */
#ifndef CRAB_ADMIN_OPS_H
#define CRAB_ADMIN_OPS_H

#include <jansson.h>

struct admin_conn;
struct crab_gateway;

struct admin_call {
	struct admin_conn *conn;
	json_t *id;
	struct crab_gateway *gw;
};

void crab_admin_reply_ok(struct admin_call *call, json_t *result);
void crab_admin_reply_error(struct admin_call *call, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A string argument of 1..max bytes, or NULL when absent; *bad set when present but
 * wrong. */
const char *crab_admin_arg_string(json_t *args, const char *name, size_t max, int *bad);

/* core/admin_modules.c */
void crab_admin_op_modules_list(struct admin_call *call, json_t *args);
void crab_admin_op_model_test(struct admin_call *call, json_t *args);

/* core/admin_sessions.c */
void crab_admin_op_sessions_list(struct admin_call *call, json_t *args);
void crab_admin_op_sessions_show(struct admin_call *call, json_t *args);
void crab_admin_op_sessions_close(struct admin_call *call, json_t *args);
void crab_admin_op_turns_show(struct admin_call *call, json_t *args);
void crab_admin_op_turns_wait(struct admin_call *call, json_t *args);
void crab_admin_op_event_send(struct admin_call *call, json_t *args);

/* core/admin_peers.c: pairing and the peers (SECURITY.md "Pairing"). */
void crab_admin_op_pair_tool(struct admin_call *call, json_t *args);
void crab_admin_op_pair_subscriber(struct admin_call *call, json_t *args);
void crab_admin_op_pair_operator(struct admin_call *call, json_t *args);
void crab_admin_op_peers_list(struct admin_call *call, json_t *args);
void crab_admin_op_peers_grant(struct admin_call *call, json_t *args);
void crab_admin_op_peers_revoke(struct admin_call *call, json_t *args);
/* core/admin_dlq.c: dead letters. */
void crab_admin_op_dlq_list(struct admin_call *call, json_t *args);
void crab_admin_op_dlq_replay(struct admin_call *call, json_t *args);

/* core/admin_auth.c: subscription logins (core/auth.h). */
void crab_admin_op_auth_status(struct admin_call *call, json_t *args);
void crab_admin_op_auth_login(struct admin_call *call, json_t *args);
void crab_admin_op_auth_login_wait(struct admin_call *call, json_t *args);
void crab_admin_op_auth_logout(struct admin_call *call, json_t *args);
#ifdef CRAB_TEST_HOOKS
void crab_admin_op_auth_token(struct admin_call *call, json_t *args);
#endif

/* core/admin_config.c: the configuration (config_apply.h). */
void crab_admin_op_config_get(struct admin_call *call, json_t *args);
void crab_admin_op_config_validate(struct admin_call *call, json_t *args);
void crab_admin_op_config_apply(struct admin_call *call, json_t *args);
void crab_admin_op_config_revert(struct admin_call *call, json_t *args);
void crab_admin_op_config_revisions(struct admin_call *call, json_t *args);
void crab_admin_op_reload(struct admin_call *call, json_t *args);
#ifdef CRAB_TEST_HOOKS
void crab_admin_op_config_tool(struct admin_call *call, json_t *args);
#endif

/* Ends the pairings still talking to their components: at shutdown, before the admin
 * socket and the http client go. */
void crab_admin_peers_release(struct crab_gateway *gw);

#endif
