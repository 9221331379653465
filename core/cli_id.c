/* cli_id.c: `crab id [--data-dir DIR] [--json]`: this host's identity fingerprint, for
 * people to compare at pairing (SECURITY.md, "Identities"). Creates the identity on
 * first use, as any role would. */
#include "cli.h"
#include "identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int usage(void)
{
	fprintf(stderr, "usage: crab id [--data-dir DIR] [--json]\n");
	return 2;
}

int crab_cli_id_main(int argc, char **argv)
{
	const char *dir = getenv("CRAB_DATA_DIR");
	struct crab_identity *id;
	char err[512];
	int json = 0, created = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else
			return usage();
	}
	if (!dir || !*dir)
		dir = "crab-data"; /* the quick start's data directory */
	if (!(id = crab_identity_load(dir, "crab", 1, &created, err, sizeof(err)))) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	if (created)
		fprintf(stderr, "crab: created a new identity in \"%s\"\n", dir);
	if (json) {
		json_t *o = json_pack("{s:s, s:s}", "fingerprint", id->fingerprint,
		    "short", id->short_fp);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(o);
	} else {
		printf("fingerprint %s\nshort %s\n", id->fingerprint, id->short_fp);
	}
	crab_identity_free(id);
	return 0;
}
