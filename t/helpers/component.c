/* component.c: a test component for the pairing tests, until the memory and cron roles
 * exist: the same listener and pairing responder the roles use (core/component.h), with
 * its type, offers and window from the command line. It prints "port N" once listening
 * and a line per pairing, and serves until SIGTERM.
 *
 *   component --data-dir DIR [--listen HOST:PORT] [--type T]... [--offers JSON]
 *             [--pairing-window DURATION] [--expect FP]
 *             [--deliver-log FILE] [--deliver-status N] [--deliver-delay-ms N]
 *
 * POST /v1/deliver (a subscriber's push delivery) appends one line to the deliver log,
 * {"key": Idempotency-Key, "body": the body as received, "at_ms": when the request was
 * complete, in ms since the epoch (CLOCK_REALTIME; make bench's delivery lag)}, and
 * answers --deliver-status (default 200) after --deliver-delay-ms. Other routes from the
 * pinned gateway answer 200 {"route": path}: enough to show that only the pinned gateway
 * gets past the listener. */
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/component.h"
#include "core/identity.h"
#include "core/log.h"
#include "core/util.h"

static void on_paired(void *arg, const char *gateway_fp, const char *gateway_name,
    const char *component_type, const char *component_id)
{
	char short_fp[CRAB_FP_SHORT];

	(void)arg;
	crab_fingerprint_short(gateway_fp, short_fp);
	printf("paired %s %s gateway %s %s\n", component_type, component_id, short_fp,
	    gateway_name);
	fflush(stdout);
}

static struct {
	struct event_base *base;
	FILE *log;
	int status;
	int delay_ms;
} deliver = {NULL, NULL, 200, 0};

static void answer_delivery(evutil_socket_t fd, short what, void *arg)
{
	struct crab_http_request *req = arg;
	char body[64];
	int n;

	(void)fd;
	(void)what;
	n = snprintf(body, sizeof(body), "{\"status\":%d}", deliver.status);
	crab_http_reply(req, deliver.status, body, (size_t)n);
}

static void on_deliver(struct crab_http_request *req)
{
	const char *key = crab_http_request_header(req, "Idempotency-Key");
	struct timeval tv = {deliver.delay_ms / 1000, (deliver.delay_ms % 1000) * 1000};
	size_t len;
	const char *body = crab_http_request_body(req, &len);
	struct timespec now;
	json_t *line;
	char *text;

	clock_gettime(CLOCK_REALTIME, &now);
	line = json_pack("{s:s?, s:s%, s:I}", "key", key, "body", body ? body : "", len, "at_ms",
	    (json_int_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	text = json_dumps(line, JSON_COMPACT);

	if (deliver.log != NULL) {
		fprintf(deliver.log, "%s\n", text);
		fflush(deliver.log);
	}
	free(text);
	json_decref(line);
	if (deliver.delay_ms > 0)
		event_base_once(deliver.base, -1, EV_TIMEOUT, answer_delivery, req, &tv);
	else
		answer_delivery(-1, 0, req);
}

static void on_request(void *arg, struct crab_http_request *req)
{
	json_t *o;
	char *s;

	(void)arg;
	if (strcmp(crab_http_request_path(req), "/v1/deliver") == 0 &&
	    strcmp(crab_http_request_method(req), "POST") == 0) {
		on_deliver(req);
		return;
	}
	o = json_pack("{s:s}", "route", crab_http_request_path(req));
	s = json_dumps(o, JSON_COMPACT);
	crab_http_reply(req, 200, s, strlen(s));
	free(s);
	json_decref(o);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"data-dir", required_argument, NULL, 'd'},
		{"listen", required_argument, NULL, 'l'},
		{"type", required_argument, NULL, 't'},
		{"offers", required_argument, NULL, 'o'},
		{"pairing-window", required_argument, NULL, 'w'},
		{"expect", required_argument, NULL, 'e'},
		{"deliver-log", required_argument, NULL, 'L'},
		{"deliver-status", required_argument, NULL, 'S'},
		{"deliver-delay-ms", required_argument, NULL, 'D'},
		{NULL, 0, NULL, 0},
	};
	const char *types[8] = {NULL};
	size_t ntypes = 0;
	struct crab_component_opts o = {.cn = "test-component", .listen = "127.0.0.1:0"};
	struct event_base *base;
	struct crab_component *c;
	struct event *sig_term, *sig_int;
	json_t *offers = NULL;
	char err[512];
	int ch;

	log_init("component", CRAB_LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o.data_dir = optarg;
			break;
		case 'l':
			o.listen = optarg;
			break;
		case 't':
			if (ntypes + 1 < CRAB_ARRAY_LEN(types))
				types[ntypes++] = optarg;
			break;
		case 'o':
			json_decref(offers);
			if ((offers = json_loads(optarg, 0, NULL)) == NULL) {
				fprintf(stderr, "component: --offers is not JSON\n");
				return 2;
			}
			break;
		case 'w':
			if (crab_parse_duration_ms(optarg, 86400000, &o.pairing.window_ms) != 0) {
				fprintf(stderr, "component: bad --pairing-window\n");
				return 2;
			}
			break;
		case 'e':
			o.pairing.expect = optarg;
			break;
		case 'L':
			if ((deliver.log = fopen(optarg, "ae")) == NULL) {
				fprintf(stderr, "component: cannot open %s\n", optarg);
				return 2;
			}
			break;
		case 'S':
			deliver.status = atoi(optarg);
			break;
		case 'D':
			deliver.delay_ms = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (o.data_dir == NULL || ntypes == 0) {
		fprintf(stderr, "component: --data-dir and at least one --type are required\n");
		return 2;
	}
	o.pairing.types = types;
	o.pairing.offers = offers;
	o.pairing.on_paired = on_paired;
	o.on_request = on_request;
	base = event_base_new();
	deliver.base = base;
	if ((c = crab_component_start(base, &o, err, sizeof(err))) == NULL) {
		fprintf(stderr, "component: %s\n", err);
		return 1;
	}
	printf("port %d\nfingerprint %s\n", crab_component_port(c), c->id->fingerprint);
	fflush(stdout);
	sig_term = evsignal_new(base, SIGTERM, on_signal, base);
	sig_int = evsignal_new(base, SIGINT, on_signal, base);
	event_add(sig_term, NULL);
	event_add(sig_int, NULL);
	event_base_dispatch(base);
	event_free(sig_term);
	event_free(sig_int);
	crab_component_free(c);
	json_decref(offers);
	event_base_free(base);
	if (deliver.log != NULL)
		fclose(deliver.log);
	return 0;
}
