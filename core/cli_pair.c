/* cli_pair.c: `crab pair`, the operator's side of pairing (SECURITY.md "Pairing").
 *
 *   crab pair test [--admin-socket PATH]
 *   crab pair tool|subscriber|cli <endpoint> <name> [--tenant T]... [--expect FP]
 *        [--admin-socket PATH] [--json]
 *   crab pair listen [--data-dir DIR] [--listen HOST:PORT] [--pairing-window DURATION]
 *        [--expect FP]
 *
 * The first forms ask the gateway over its admin socket; the gateway process itself opens
 * the connection to <endpoint>. `listen` is the remote operator CLI's responder: it waits
 * for one pairing as "operator" and exits. */
#include "cli.h"

#include <event2/event.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "component.h"
#include "identity.h"
#include "util.h"

static void usage(FILE *f)
{
	fprintf(f,
	    "usage: crab pair test [--admin-socket PATH]\n"
	    "       crab pair tool|subscriber|cli <endpoint> <name> [--tenant T]...\n"
	    "                 [--expect FINGERPRINT] [--admin-socket PATH] [--json]\n"
	    "       crab pair listen [--data-dir DIR] [--listen HOST:PORT]\n"
	    "                 [--pairing-window DURATION] [--expect FINGERPRINT]\n");
}

static int pair_test(int argc, char **argv)
{
	const char *sock = NULL;
	json_t *r;
	char err[512];

	if (crab_cli_admin_socket_only(argc, argv, 2, &sock) != 0) {
		usage(stderr);
		return 2;
	}
	if (crab_admin_call(sock, "pair.test", NULL, &r, err, sizeof(err)) != 0) {
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

static void print_json(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
}

/* pair tool|subscriber|cli <endpoint> <name> */
static int pair_component(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"tenant", required_argument, NULL, 't'},
		{"expect", required_argument, NULL, 'e'},
		{"admin-socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *type = argv[1], *sock = NULL, *op;
	json_t *args = json_object(), *tenants = json_array(), *r;
	char err[512], opname[32];
	int ch, json = 0, rc = 2, called;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 't':
			json_array_append_new(tenants, json_string(optarg));
			break;
		case 'e':
			if (!crab_fingerprint_valid(optarg)) {
				fprintf(stderr, "crab: --expect takes a fingerprint: 64 hex digits, "
						"or the short form xxxx-xxxx-xxxx-xxxx-xxxx\n");
				goto out;
			}
			json_object_set_new(args, "expect", json_string(optarg));
			break;
		case 's':
			sock = optarg;
			break;
		case 'j':
			json = 1;
			break;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		goto out;
	}
	op = strcmp(type, "cli") == 0 ? "operator" : type;
	snprintf(opname, sizeof(opname), "pair.%s", op);
	json_object_set_new(args, "endpoint", json_string(argv[optind]));
	json_object_set_new(args, "component_id", json_string(argv[optind + 1]));
	if (json_array_size(tenants) > 0)
		json_object_set(args, "tenants", tenants);
	called = crab_admin_call(crab_cli_admin_socket(sock), opname, args, &r, err, sizeof(err));
	args = NULL; /* the call took it */
	if (called != 0) {
		fprintf(stderr, "crab: pairing %s '%s' failed: %s\n", type, argv[optind + 1], err);
		rc = 1;
		goto out;
	}
	if (json) {
		print_json(r);
	} else {
		printf("paired %s '%s' as %s\n", op, argv[optind + 1],
		    json_string_value(json_object_get(r, "peer_id")));
		printf("its fingerprint: %s\n", json_string_value(json_object_get(r, "short")));
		printf("compare it with `crab id` on that host\n");
	}
	json_decref(r);
	rc = 0;
out:
	json_decref(args);
	json_decref(tenants);
	return rc;
}

/* ---- pair listen ---- */

struct listen_state {
	struct event_base *base;
	struct crab_component *component;
	struct event *timer;
	int paired;
	int waits; /* for the answer to leave, in 50 ms steps */
};

/* After a pairing: exit once the gateway has its answer and has hung up (or at most 5 s
 * later), so that the answer is never cut off. */
static void linger(evutil_socket_t fd, short what, void *arg)
{
	struct listen_state *s = arg;
	struct timeval step = {0, 50000};

	(void)fd;
	(void)what;
	if (crab_http_server_connections(s->component->http) == 0 || ++s->waits > 100)
		event_base_loopexit(s->base, NULL);
	else
		evtimer_add(s->timer, &step);
}

static void on_paired(void *arg, const char *gateway_fp, const char *gateway_name,
    const char *component_type, const char *component_id)
{
	struct listen_state *s = arg;
	char short_fp[CRAB_FP_SHORT];

	crab_fingerprint_short(gateway_fp, short_fp);
	printf("paired as %s '%s' with gateway '%s' %s\n", component_type, component_id,
	    gateway_name, short_fp);
	fflush(stdout);
	s->paired = 1;
	evtimer_del(s->timer);
	evtimer_assign(s->timer, s->base, linger, s);
	linger(-1, 0, s);
}

static void window_closed(evutil_socket_t fd, short what, void *arg)
{
	struct listen_state *s = arg;

	(void)fd;
	(void)what;
	fprintf(stderr, "crab: the pairing window closed with no pairing\n");
	event_base_loopexit(s->base, NULL);
}

static int pair_listen(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"pairing-window", required_argument, NULL, 'w'},
		{"expect", required_argument, NULL, 'e'},
		{NULL, 0, NULL, 0},
	};
	static const char *const types[] = {"operator", NULL};
	const char *dir = getenv("CRAB_DATA_DIR"), *listen = "0.0.0.0:8641";
	struct crab_component_opts o = {.cn = "crab-cli"};
	struct listen_state s = {0};
	struct crab_component *c;
	struct timeval tv;
	int64_t window_ms = 10 * 60 * 1000;
	char err[512];
	int ch;

	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'l':
			listen = optarg;
			break;
		case 'w':
			if (crab_parse_duration_ms(optarg, 7 * 86400000LL, &window_ms) != 0) {
				fprintf(stderr, "crab: --pairing-window takes a duration: 90s, 10m, 1h\n");
				return 2;
			}
			break;
		case 'e':
			if (!crab_fingerprint_valid(optarg)) {
				fprintf(stderr, "crab: --expect takes a fingerprint\n");
				return 2;
			}
			o.pairing.expect = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (dir == NULL || *dir == '\0')
		dir = "crab-data";
	s.base = event_base_new();
	o.data_dir = dir;
	o.listen = listen;
	o.pairing.types = types;
	o.pairing.window_ms = window_ms;
	o.pairing.on_paired = on_paired;
	o.pairing.arg = &s;
	if ((c = crab_component_start(s.base, &o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "crab: %s\n", err);
		event_base_free(s.base);
		return 1;
	}
	printf("listening on https://%.*s:%d for a gateway to pair as operator, for %llds\n",
	    (int)(strrchr(listen, ':') - listen), listen, crab_component_port(c),
	    (long long)(window_ms / 1000));
	printf("this host's fingerprint: %s\n", c->id->short_fp);
	printf("on the gateway's host: crab pair cli https://<this host>:%d <name>\n",
	    crab_component_port(c));
	fflush(stdout);
	tv.tv_sec = (time_t)(window_ms / 1000);
	tv.tv_usec = (suseconds_t)(window_ms % 1000) * 1000;
	s.component = c;
	s.timer = evtimer_new(s.base, window_closed, &s);
	evtimer_add(s.timer, &tv);
	event_base_dispatch(s.base);
	event_free(s.timer);
	crab_component_free(c);
	event_base_free(s.base);
	return s.paired ? 0 : 1;
}

int crab_cli_pair_main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "test") == 0)
		return pair_test(argc, argv);
	if (strcmp(argv[1], "listen") == 0)
		return pair_listen(argc, argv);
	if (strcmp(argv[1], "tool") == 0 || strcmp(argv[1], "subscriber") == 0 ||
	    strcmp(argv[1], "cli") == 0)
		return pair_component(argc, argv);
	usage(stderr);
	return 2;
}
