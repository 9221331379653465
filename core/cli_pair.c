/* cli_pair.c: `crab pair test [--admin-socket PATH]`: is the gateway there, and which? */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int crab_cli_pair_main(int argc, char **argv)
{
	const char *sock = NULL;
	json_t *r;
	char err[512];

	if (argc < 2 || strcmp(argv[1], "test") != 0 ||
	    crab_cli_admin_socket_only(argc, argv, 2, &sock) != 0) {
		fprintf(stderr, "usage: crab pair test [--admin-socket PATH]\n");
		return 2;
	}
	if (crab_admin_call(sock, "pair.test", NULL, &r, err,
		sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	printf("crab gateway %s: %s, listening on %s, up %llds\n",
	    json_string_value(json_object_get(r, "version")),
	    json_string_value(json_object_get(r, "status")),
	    json_string_value(json_object_get(r, "listen")),
	    (long long)json_integer_value(json_object_get(r, "uptime_s")));
	json_decref(r);
	return 0;
}
