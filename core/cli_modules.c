/* cli_modules.c: `crab modules [--admin-socket PATH]`: the modules the running gateway
 * holds, built-in or loaded from a path. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int crab_cli_modules_main(int argc, char **argv)
{
	const char *sock = NULL;
	json_t *r, *m;
	char err[512];
	size_t i;

	if (crab_cli_admin_socket_only(argc, argv, 1, &sock) != 0) {
		fprintf(stderr, "usage: crab modules [--admin-socket PATH]\n");
		return 2;
	}
	if (crab_admin_call(sock, "modules.list", NULL, &r, err,
		sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	printf("%-16s %-10s %-10s %-32s %s\n", "NAME", "VERSION", "STATE", "KINDS", "SOURCE");
	json_array_foreach(json_object_get(r, "modules"), i, m) {
		const char *instance = json_string_value(json_object_get(m, "instance"));
		char kinds[128] = "", name[160];
		size_t k;
		json_t *kind;

		json_array_foreach(json_object_get(m, "kinds"), k, kind) {
			if (k > 0)
				strncat(kinds, ",", sizeof(kinds) - strlen(kinds) - 1);
			strncat(kinds, json_string_value(kind), sizeof(kinds) - strlen(kinds) - 1);
		}
		/* a models: entry's instance of an adapter module shows as module:model */
		snprintf(name, sizeof(name), "%s%s%s", json_string_value(json_object_get(m, "name")),
		    instance ? ":" : "", instance ? instance : "");
		printf("%-16s %-10s %-10s %-32s %s\n", name,
		    json_string_value(json_object_get(m, "version")),
		    json_string_value(json_object_get(m, "state")), kinds,
		    json_string_value(json_object_get(m, "source")));
	}
	json_decref(r);
	return 0;
}
