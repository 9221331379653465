/* cli_dlq.c: `crab dlq list [--subscriber S] [--json]` and `crab dlq replay <id> | --all
 * [--subscriber S]`: the deliveries given up on, over the admin socket. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: crab dlq list [--subscriber PEER] [--json] [--admin-socket PATH]\n"
		   "       crab dlq replay (DEAD_LETTER_ID | --all [--subscriber PEER])"
		   " [--admin-socket PATH]\n");
}

static void print_letters(json_t *list)
{
	size_t i;
	json_t *d;

	printf("%-30s %-30s %-22s %4s %-24s %s\n", "DEAD LETTER", "SUBSCRIBER", "TYPE", "TRY",
	    "CREATED", "LAST ERROR");
	json_array_foreach(list, i, d) {
		printf("%-30s %-30s %-22s %4lld %-24s %s%s\n",
		    json_string_value(json_object_get(d, "dead_letter_id")),
		    json_string_value(json_object_get(d, "subscriber")),
		    json_string_value(json_object_get(d, "type")) ?: "-",
		    (long long)json_integer_value(json_object_get(d, "attempts")),
		    json_string_value(json_object_get(d, "created_at")),
		    json_string_value(json_object_get(d, "last_error")) ?: "",
		    json_object_get(d, "replayed_at") ? " (replayed)" : "");
	}
}

int crab_cli_dlq_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"subscriber", required_argument, NULL, 's'},
		{"all", no_argument, NULL, 'a'},
		{"json", no_argument, NULL, 'j'},
		{"admin-socket", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argc > 1 ? argv[1] : "", *sock = NULL, *op;
	json_t *args = json_object(), *r = NULL;
	int ch, json = 0, all = 0, rc = 2;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			json_object_set_new(args, "subscriber", json_string(optarg));
			break;
		case 'a':
			all = 1;
			break;
		case 'j':
			json = 1;
			break;
		case 'S':
			sock = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (strcmp(cmd, "list") == 0 && optind == argc && !all) {
		op = "dlq.list";
	} else if (strcmp(cmd, "replay") == 0 && (optind == argc - 1) != all) {
		op = "dlq.replay";
		if (all)
			json_object_set_new(args, "all", json_true());
		else
			json_object_set_new(args, "dead_letter_id", json_string(argv[optind]));
	} else {
		goto usage;
	}
	rc = crab_cli_call(crab_cli_admin_socket(sock), op, args, &r);
	args = NULL; /* the call took it */
	if (rc != 0)
		goto out;
	if (json) {
		crab_cli_print_json(r);
	} else if (strcmp(op, "dlq.list") == 0) {
		print_letters(json_object_get(r, "dead_letters"));
	} else {
		printf("replayed %lld\n", (long long)json_integer_value(json_object_get(r, "replayed")));
	}
	goto out;
usage:
	usage(stderr);
out:
	json_decref(r);
	json_decref(args);
	return rc;
}
