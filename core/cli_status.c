/* cli_status.c: `crab status [--rows] [--admin-socket PATH]`: the running gateway's
 * figures (store, counters, turns, delivery with each subscriber's lag, connections),
 * as indented JSON. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int crab_cli_status_main(int argc, char **argv)
{
	const char *sock = NULL;
	json_t *args = json_object(), *r;
	char err[512], *text;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--rows") == 0) {
			json_object_set_new(args, "rows", json_true());
		} else if (strcmp(argv[i], "--admin-socket") == 0 && i + 1 < argc) {
			sock = argv[++i];
		} else {
			fprintf(stderr, "usage: crab status [--rows] [--admin-socket PATH]\n");
			json_decref(args);
			return 2;
		}
	}
	if (crab_admin_call(crab_cli_admin_socket(sock), "status", args, &r, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	text = json_dumps(r, JSON_INDENT(2));
	printf("%s\n", text);
	free(text);
	json_decref(r);
	return 0;
}
