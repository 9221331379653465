/* crab.c: one binary, several roles. The first argument picks the role or command from a
 * table, as git.c does; everything else belongs to the role. */
#include <stdio.h>
#include <string.h>

#include "core/cli.h"
#include "core/config.h"
#include "core/gateway.h"
#include "core/log.h"
#include "core/version.h"

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} commands[] = {
	{"gateway", crab_gateway_main, "run the gateway: ingress, sessions, store, admin socket"},
	{"chat", crab_cli_chat_main, "chat [new] [--session ID]: talk to the agent in the terminal"},
	{"event", crab_cli_event_main, "event send <text>: post one chat message to the gateway"},
	{"pair", crab_cli_pair_main, "pair test|tool|subscriber|cli|listen: pair a component"},
	{"peers", crab_cli_peers_main, "peers list|revoke|grant: the paired components"},
	{"dlq", crab_cli_dlq_main, "dlq list|replay: deliveries to subscribers given up on"},
	{"status", crab_cli_status_main, "the gateway's figures: store, counters, turns, delivery lag"},
	{"admin", crab_cli_admin_main, "admin OP [ARGS]: call one admin-socket operation"},
	{"sessions", crab_cli_sessions_main, "sessions list|show|close: the session manager"},
	{"turns", crab_cli_turns_main, "turns show ID: a turn's full request and response"},
	{"modules", crab_cli_modules_main, "list the modules the gateway has loaded"},
	{"id", crab_cli_id_main, "print this host's identity fingerprint (creates it on first use)"},
	{"config", crab_cli_config_main, "config validate|apply|revert|revisions: check, change, roll back"},
	{"auth", crab_cli_auth_main, "auth login|status|logout: subscription logins of models' auth:"},
	{"version", cmd_version, "print the version"},
	{"help", cmd_help, "print this help"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: crab <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nSee crab(1) and crab.yaml(5).\n");
}

static int cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("crab %s\n", CRAB_VERSION);
	return 0;
}

static int cmd_help(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	usage(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	log_init("crab", CRAB_LOG_INFO);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(0, NULL);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return cmd_help(0, NULL);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "crab: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
