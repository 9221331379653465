/* cli_config.c: `crab config validate FILE` loads FILE exactly as the gateway would and
 * starts nothing: every error and exit 1, or one "ok" line and exit 0. The rest talk to
 * the running gateway over its admin socket (config_apply.h):
 *   crab config apply FILE       the whole file through the pipeline, actor "operator"
 *   crab config revert N         back to revision N (a new revision)
 *   crab config revisions        newest first: revision, actor, when, what changed
 * Refused changes print "crab: CODE: STEP: why" and exit 1. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define FILE_MAX (1 << 20)

static int usage(void)
{
	fprintf(stderr, "usage: crab config validate FILE\n"
			"       crab config apply FILE [--json] [--admin-socket PATH]\n"
			"       crab config revert REVISION [--json] [--admin-socket PATH]\n"
			"       crab config revisions [--limit N] [--json] [--admin-socket PATH]\n");
	return 2;
}

static int validate(const char *path)
{
	struct crab_config *cfg;

	if ((cfg = crab_config_load(path, stderr)) == NULL)
		return 1;
	printf("%s: ok (%zu models, %zu agents, %zu tenants, %zu routes)\n", path,
	    cfg->nmodels, cfg->nagents, cfg->ntenants, cfg->nroutes);
	crab_config_unref(cfg);
	return 0;
}

static void print_change(json_t *r)
{
	long long rev = (long long)json_integer_value(json_object_get(r, "revision"));
	const char *summary = json_string_value(json_object_get(r, "diff_summary"));

	if (json_is_true(json_object_get(r, "unchanged")))
		printf("unchanged: revision %lld is this configuration already\n", rev);
	else
		printf("applied revision %lld: %s\n", rev, summary ? summary : "");
}

static void print_revisions(json_t *r)
{
	long long running = (long long)json_integer_value(json_object_get(r, "running"));
	size_t i;
	json_t *v;

	printf("%-8s %-24s %-24s %s\n", "REVISION", "ACTOR", "APPLIED", "CHANGES");
	json_array_foreach(json_object_get(r, "revisions"), i, v) {
		long long n = (long long)json_integer_value(json_object_get(v, "revision"));
		printf("%-8lld %-24s %-24s %s%s\n", n,
		    json_string_value(json_object_get(v, "actor")),
		    json_string_value(json_object_get(v, "applied_at")),
		    json_string_value(json_object_get(v, "diff_summary")),
		    n == running ? " (running)" : "");
	}
}

int crab_cli_config_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"limit", required_argument, NULL, 'l'},
		{"admin-socket", required_argument, NULL, 'S'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argc > 1 ? argv[1] : "", *sock = NULL, *op;
	json_t *args = json_object(), *r = NULL;
	int ch, json = 0, rc = 2;
	int64_t n;

	if (strcmp(cmd, "validate") == 0) {
		json_decref(args);
		if (argc != 3 || argv[2][0] == '-')
			return usage();
		return validate(argv[2]);
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 'l':
			if (crab_parse_int64(optarg, 1, 1000, &n) != 0)
				goto usage;
			json_object_set_new(args, "limit", json_integer(n));
			break;
		case 'S':
			sock = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (strcmp(cmd, "apply") == 0 && optind == argc - 1 && !json_object_get(args, "limit")) {
		char why[512], *text;
		size_t len;

		op = "config.apply";
		if ((text = crab_file_read(argv[optind], FILE_MAX, &len, why, sizeof(why))) == NULL) {
			fprintf(stderr, "crab: %s\n", why);
			rc = 1;
			goto out;
		}
		json_object_set_new(args, "yaml", json_stringn(text, len));
		free(text);
		if (json_object_get(args, "yaml") == NULL) {
			fprintf(stderr, "crab: %s is not UTF-8 text\n", argv[optind]);
			rc = 1;
			goto out;
		}
	} else if (strcmp(cmd, "revert") == 0 && optind == argc - 1 &&
	    !json_object_get(args, "limit")) {
		op = "config.revert";
		if (crab_parse_int64(argv[optind], 1, INT64_MAX, &n) != 0)
			goto usage;
		json_object_set_new(args, "revision", json_integer(n));
	} else if (strcmp(cmd, "revisions") == 0 && optind == argc) {
		op = "config.revisions";
	} else {
		goto usage;
	}
	rc = crab_cli_call(crab_cli_admin_socket(sock), op, args, &r);
	args = NULL; /* the call took it */
	if (rc != 0)
		goto out;
	if (json)
		crab_cli_print_json(r);
	else if (strcmp(op, "config.revisions") == 0)
		print_revisions(r);
	else
		print_change(r);
	goto out;
usage:
	usage();
out:
	json_decref(r);
	json_decref(args);
	return rc;
}
