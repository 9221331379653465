/* cli_sessions.c: `crab sessions list|show|close` and `crab turns show`: the session
 * manager over the admin socket. list and show print a table; --json prints the
 * gateway's answer as it is. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct opts {
	const char *sock;
	const char *id;     /* show, close */
	const char *tenant; /* list */
	const char *status; /* list */
	int json;
};

/* Reads [ID] and options from argv[from..]; the id is required when need_id. */
static int parse(int argc, char **argv, int from, int need_id, struct opts *o)
{
	const char *sock = NULL;

	*o = (struct opts){0};
	for (int i = from; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0)
			o->json = 1;
		else if (i + 1 < argc && strcmp(a, "--admin-socket") == 0)
			sock = argv[++i];
		else if (i + 1 < argc && strcmp(a, "--tenant") == 0 && !need_id)
			o->tenant = argv[++i];
		else if (i + 1 < argc && strcmp(a, "--status") == 0 && !need_id)
			o->status = argv[++i];
		else if (a[0] != '-' && need_id && o->id == NULL)
			o->id = a;
		else
			return -1;
	}
	if (need_id && o->id == NULL)
		return -1;
	o->sock = crab_cli_admin_socket(sock);
	return 0;
}

static void print_json(json_t *r)
{
	char *s = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	printf("%s\n", s);
	free(s);
}

static const char *s_of(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v != NULL ? v : "-";
}

static int call(const struct opts *o, const char *op, json_t *args, json_t **r)
{
	char err[512];

	if (crab_admin_call(o->sock, op, args, r, err, sizeof(err)) != 0) {
		fprintf(stderr, "crab: %s\n", err);
		return 1;
	}
	return 0;
}

static int sessions_list(const struct opts *o)
{
	json_t *args = json_object(), *r, *s;
	size_t i;

	if (o->tenant)
		json_object_set_new(args, "tenant_id", json_string(o->tenant));
	if (o->status)
		json_object_set_new(args, "status", json_string(o->status));
	if (call(o, "sessions.list", args, &r) != 0)
		return 1;
	if (o->json) {
		print_json(r);
	} else {
		printf("%-30s %-7s %-12s %-12s %5s %-24s %s\n", "ID", "STATUS", "TENANT", "AGENT",
		    "TURNS", "UPDATED", "RUNTIME KEY");
		json_array_foreach(json_object_get(r, "sessions"), i, s)
			printf("%-30s %-7s %-12s %-12s %5lld %-24s %s\n", s_of(s, "id"),
			    s_of(s, "status"), s_of(s, "tenant_id"), s_of(s, "agent_id"),
			    (long long)json_integer_value(json_object_get(s, "turns")),
			    s_of(s, "updated_at"), s_of(s, "runtime_key"));
	}
	json_decref(r);
	return 0;
}

static int sessions_show(const struct opts *o)
{
	json_t *r, *s, *t;
	size_t i;

	if (call(o, "sessions.show", json_pack("{s:s}", "session_id", o->id), &r) != 0)
		return 1;
	if (o->json) {
		print_json(r);
		json_decref(r);
		return 0;
	}
	s = json_object_get(r, "session");
	printf("session  %s (%s)\ntenant   %s\nagent    %s\nruntime  %s\nmemory   %s\n",
	    s_of(s, "id"), s_of(s, "status"), s_of(s, "tenant_id"), s_of(s, "agent_id"),
	    s_of(s, "runtime_key"), s_of(s, "memory_key"));
	json_array_foreach(json_object_get(r, "turns"), i, t) {
		json_t *out = json_array_get(json_object_get(t, "output"), 0);
		printf("\n%s %s %s\n  > %s\n  < %s\n", s_of(t, "id"), s_of(t, "status"),
		    s_of(t, "started_at"), s_of(json_object_get(t, "input"), "content"),
		    json_is_string(json_object_get(out, "content")) ? s_of(out, "content") :
			s_of(json_object_get(t, "error"), "message"));
	}
	json_decref(r);
	return 0;
}

static int sessions_close(const struct opts *o)
{
	json_t *r;

	if (call(o, "sessions.close", json_pack("{s:s}", "session_id", o->id), &r) != 0)
		return 1;
	printf("closed %s (%lld leases revoked)\n", o->id,
	    (long long)json_integer_value(json_object_get(r, "leases_revoked")));
	json_decref(r);
	return 0;
}

int crab_cli_sessions_main(int argc, char **argv)
{
	struct opts o;
	const char *sub = argc > 1 ? argv[1] : "";
	int need_id = strcmp(sub, "show") == 0 || strcmp(sub, "close") == 0;

	if ((!need_id && strcmp(sub, "list") != 0) || parse(argc, argv, 2, need_id, &o) != 0) {
		fprintf(stderr, "usage: crab sessions list [--tenant T] [--status open|closed] [--json]\n"
				"       crab sessions show|close ID [--json]\n"
				"       (each also takes --admin-socket PATH)\n");
		return 2;
	}
	if (strcmp(sub, "list") == 0)
		return sessions_list(&o);
	return strcmp(sub, "show") == 0 ? sessions_show(&o) : sessions_close(&o);
}

int crab_cli_turns_main(int argc, char **argv)
{
	struct opts o;
	json_t *r;

	if (argc < 2 || strcmp(argv[1], "show") != 0 || parse(argc, argv, 2, 1, &o) != 0) {
		fprintf(stderr, "usage: crab turns show ID [--admin-socket PATH]\n");
		return 2;
	}
	if (call(&o, "turns.show", json_pack("{s:s}", "turn_id", o.id), &r) != 0)
		return 1;
	print_json(r); /* the full request and response: for an operator, as they are */
	json_decref(r);
	return 0;
}
