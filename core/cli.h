/* cli.h: the operator's commands. Control operations go over the admin socket
 * (admin_client.c); data goes over the gateway's public HTTP ingress. */
#ifndef CRAB_CLI_H
#define CRAB_CLI_H

#include <jansson.h>
#include <stddef.h>

/* The admin socket to use: the option, else $CRAB_ADMIN_SOCKET, else
 * crab-data/admin.sock (the quick start's data directory). */
const char *crab_cli_admin_socket(const char *option);

/* For commands whose only option is --admin-socket PATH: reads argv[from..] into
 * *socket_path (the socket to use); 0, or -1 for anything else (a usage error). */
int crab_cli_admin_socket_only(int argc, char **argv, int from, const char **socket_path);

/* One call on the admin socket. Takes args (may be NULL). On success returns 0 and a new
 * reference in *result; on failure -1 with one line in err ("code: message" when the
 * gateway refused). */
int crab_admin_call(const char *socket_path, const char *op, json_t *args, json_t **result,
    char *err, size_t errlen);

/* crab_admin_call for a command: on failure prints "crab: ..." and returns 1; else 0
 * with the result in *result. */
int crab_cli_call(const char *socket_path, const char *op, json_t *args, json_t **result);
/* Prints a result as one line of compact JSON (--json). */
void crab_cli_print_json(json_t *result);

int crab_cli_admin_main(int argc, char **argv);
int crab_cli_pair_main(int argc, char **argv);
int crab_cli_peers_main(int argc, char **argv);
int crab_cli_dlq_main(int argc, char **argv);
int crab_cli_chat_main(int argc, char **argv);
int crab_cli_status_main(int argc, char **argv);
int crab_cli_event_main(int argc, char **argv);
int crab_cli_modules_main(int argc, char **argv);
int crab_cli_sessions_main(int argc, char **argv);
int crab_cli_turns_main(int argc, char **argv);
int crab_cli_id_main(int argc, char **argv);
int crab_cli_auth_main(int argc, char **argv);

#endif
