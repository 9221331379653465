/* cli_peers.c: `crab peers list|revoke|grant`, the paired peers (SECURITY.md "Pairing"),
 * over the admin socket.
 *
 *   crab peers list [--all] [--check] [--json] [--admin-socket PATH]
 *   crab peers revoke <peer_id> [--admin-socket PATH]
 *   crab peers grant <peer_id> (--tenant T... | --all-tenants) [--admin-socket PATH] */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: crab peers list [--all] [--check] [--json] [--admin-socket PATH]\n"
	    "       crab peers revoke <peer_id> [--admin-socket PATH]\n"
	    "       crab peers grant <peer_id> (--tenant T... | --all-tenants) "
	    "[--admin-socket PATH]\n");
}

static void join_strings(json_t *list, char *out, size_t outlen)
{
	size_t i, off = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(list, i, v) {
		int n = snprintf(out + off, outlen - off, "%s%s", i ? "," : "",
		    json_string_value(v) ? json_string_value(v) : "?");
		if (n < 0 || (size_t)n >= outlen - off)
			break;
		off += (size_t)n;
	}
}

static void print_peers(json_t *peers)
{
	size_t i;
	json_t *p;

	printf("%-32s %-10s %-16s %-24s %-12s %s\n", "PEER", "TYPE", "COMPONENT", "FINGERPRINT",
	    "HEALTH", "TENANTS");
	json_array_foreach(peers, i, p) {
		json_t *tenants = json_object_get(p, "tenants");
		const char *health = json_string_value(json_object_get(p, "health"));
		char t[256];

		if (json_is_array(tenants))
			join_strings(tenants, t, sizeof(t));
		else
			snprintf(t, sizeof(t), "*");
		if (json_object_get(p, "revoked_at") != NULL)
			health = "revoked";
		printf("%-32s %-10s %-16s %-24s %-12s %s\n",
		    json_string_value(json_object_get(p, "peer_id")),
		    json_string_value(json_object_get(p, "component_type")),
		    json_string_value(json_object_get(p, "component_id")),
		    json_string_value(json_object_get(p, "short")), health ? health : "-", t);
	}
}

int crab_cli_peers_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"all", no_argument, NULL, 'a'},
		{"check", no_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"tenant", required_argument, NULL, 't'},
		{"all-tenants", no_argument, NULL, 'A'},
		{"admin-socket", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *op, *cmd = argc > 1 ? argv[1] : "";
	json_t *args = json_object(), *tenants = json_array(), *r = NULL;
	int ch, json = 0, all_tenants = 0, rc = 2, nargs;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			json_object_set_new(args, "all", json_true());
			break;
		case 'c':
			json_object_set_new(args, "check", json_true());
			break;
		case 'j':
			json = 1;
			break;
		case 't':
			json_array_append_new(tenants, json_string(optarg));
			break;
		case 'A':
			all_tenants = 1;
			break;
		case 's':
			sock = optarg;
			break;
		default:
			goto usage;
		}
	}
	nargs = argc - optind;
	if (strcmp(cmd, "list") == 0 && nargs == 0) {
		op = "peers.list";
	} else if (strcmp(cmd, "revoke") == 0 && nargs == 1) {
		op = "peers.revoke";
	} else if (strcmp(cmd, "grant") == 0 && nargs == 1 &&
	    (json_array_size(tenants) > 0) != all_tenants) {
		op = "peers.grant";
		json_object_set(args, "tenants", all_tenants ? json_null() : tenants);
	} else {
		goto usage;
	}
	if (nargs == 1)
		json_object_set_new(args, "peer_id", json_string(argv[optind]));
	rc = crab_cli_call(crab_cli_admin_socket(sock), op, args, &r);
	args = NULL; /* the call took it */
	if (rc != 0)
		goto out;
	if (json) {
		crab_cli_print_json(r);
	} else if (strcmp(op, "peers.list") == 0) {
		print_peers(json_object_get(r, "peers"));
	} else if (strcmp(op, "peers.revoke") == 0) {
		printf("revoked %s\n", argv[optind]);
	} else {
		json_t *one = json_pack("[O]", r);
		print_peers(one);
		json_decref(one);
	}
	goto out;
usage:
	usage(stderr);
out:
	json_decref(r);
	json_decref(args);
	json_decref(tenants);
	return rc;
}
