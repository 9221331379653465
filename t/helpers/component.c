/* component.c: a test component for the pairing tests, until the memory and cron roles
 * exist: the same listener and pairing responder the roles use (core/component.h), with
 * its type, offers and window from the command line. It prints "port N" once listening
 * and a line per pairing, and serves until SIGTERM.
 *
 *   component --data-dir DIR [--listen HOST:PORT] [--type T]... [--offers JSON]
 *             [--pairing-window DURATION] [--expect FP]
 *             [--deliver-log FILE] [--deliver-status N] [--deliver-delay-ms N]
 *             [--tools [--tools-log FILE]]
 *
 * POST /v1/deliver (a subscriber's push delivery) appends one line to the deliver log,
 * {"key": Idempotency-Key, "body": the body as received, "at_ms": when the request was
 * complete, in ms since the epoch (CLOCK_REALTIME; make bench's delivery lag)}, and
 * answers --deliver-status (default 200) after --deliver-delay-ms. Other routes from the
 * pinned gateway answer 200 {"route": path}: enough to show that only the pinned gateway
 * gets past the listener.
 *
 * --tools makes it a tool host named "test" (core/tool_host.h; --type defaults to tool,
 * and its offers get "tools": true) with the tools of test_tools[] below: echo, sleep,
 * fail, count (not idempotent), tenant-scoped test.note_put and test.note_get, and test.badjson, whose
 * answer is the invalid JSON {"call_id": not json with 200, sent here before the
 * library sees the call. --tools-log appends one line per call received: {"call_id",
 * "tool","arguments","context","outcome" ("run", "record", "joined" or the refusal's
 * code),"from_record"}. */
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
#include "core/strmap.h"
#include "core/tool_host.h"
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

/* ---- the test tools ---- */

static struct {
	struct event_base *base;
	struct crab_tool_host *host;
	FILE *log;
	long count;
	struct crab_strmap *notes; /* ["tenant","key"] -> value */
} tools;

static const char bad_json[] = "{\"call_id\": not json";

static void tool_echo(void *arg, struct crab_tool_call *call)
{
	(void)arg;
	crab_tool_reply_text(call, json_string_value(json_object_get(crab_tool_call_arguments(call),
	    "text")), NULL);
}

struct sleeper {
	struct event *ev;
	struct crab_tool_call *call;
	json_int_t ms;
};

static void sleeper_free(void *arg)
{
	struct sleeper *s = arg;

	event_free(s->ev);
	free(s);
}

static void sleeper_done(evutil_socket_t fd, short what, void *arg)
{
	struct sleeper *s = arg;
	char text[64];

	(void)fd;
	(void)what;
	snprintf(text, sizeof(text), "slept %lld ms", (long long)s->ms);
	crab_tool_reply_text(s->call, text, json_pack("{s:I}", "ms", s->ms));
	sleeper_free(s);
}

static void tool_sleep(void *arg, struct crab_tool_call *call)
{
	struct sleeper *s = xcalloc(1, sizeof(*s));
	struct timeval tv;

	(void)arg;
	s->call = call;
	s->ms = json_integer_value(json_object_get(crab_tool_call_arguments(call), "ms"));
	tv.tv_sec = (time_t)(s->ms / 1000);
	tv.tv_usec = (suseconds_t)(s->ms % 1000) * 1000;
	s->ev = evtimer_new(tools.base, sleeper_done, s);
	crab_tool_call_on_cancel(call, sleeper_free, s);
	evtimer_add(s->ev, &tv);
}

static void tool_fail(void *arg, struct crab_tool_call *call)
{
	const json_t *a = crab_tool_call_arguments(call);
	const char *msg = json_string_value(json_object_get(a, "message"));

	(void)arg;
	crab_tool_reply_error(call, json_string_value(json_object_get(a, "code")), 0, "%s",
	    msg ? msg : "failed as asked");
}

static void tool_count(void *arg, struct crab_tool_call *call)
{
	char text[64];

	(void)arg;
	snprintf(text, sizeof(text), "count %ld", ++tools.count);
	crab_tool_reply_text(call, text, json_pack("{s:i}", "count", (int)tools.count));
}

/* The notes' key: the tenant and the key, unambiguous as a JSON array. */
static char *note_key(struct crab_tool_call *call)
{
	json_t *k = json_pack("[s, s]", crab_tool_call_context(call)->tenant_id,
	    json_string_value(json_object_get(crab_tool_call_arguments(call), "key")));
	char *s = json_dumps(k, JSON_COMPACT);

	json_decref(k);
	return s;
}

static void tool_notes_put(void *arg, struct crab_tool_call *call)
{
	char *key = note_key(call);
	const char *value = json_string_value(json_object_get(crab_tool_call_arguments(call), "value"));

	(void)arg;
	free(crab_strmap_put(tools.notes, key, xstrdup(value)));
	free(key);
	crab_tool_reply_text(call, "stored", NULL);
}

static void tool_notes_get(void *arg, struct crab_tool_call *call)
{
	char *key = note_key(call);
	const char *value = crab_strmap_get(tools.notes, key);

	(void)arg;
	free(key);
	if (value == NULL)
		crab_tool_reply_error(call, "not_found", 0, "no such note");
	else
		crab_tool_reply_text(call, value, NULL);
}

static void tool_badjson(void *arg, struct crab_tool_call *call)
{
	(void)arg; /* never reached: on_request answers it first */
	crab_tool_reply_error(call, "internal", 0, "test.badjson reached the library");
}

static const struct crab_tool_def test_tools[] = {
	{"test.echo", "Answers the text it is given.",
	    "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\",\"maxLength\":1000}},"
	    "\"required\":[\"text\"],\"additionalProperties\":false}", 1, tool_echo, NULL},
	{"test.sleep", "Answers after ms milliseconds.",
	    "{\"type\":\"object\",\"properties\":{\"ms\":{\"type\":\"integer\",\"minimum\":0,"
	    "\"maximum\":600000}},\"required\":[\"ms\"]}", 1, tool_sleep, NULL},
	{"test.fail", "Fails with the code and message it is given.",
	    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":"
	    "\"^[a-z0-9_]+$\"},\"message\":{\"type\":\"string\"}},\"required\":[\"code\"]}", 1,
	    tool_fail, NULL},
	{"test.count", "Counts the calls it really runs.",
	    "{\"type\":\"object\",\"properties\":{}}", 0, tool_count, NULL},
	{"test.note_put", "Stores a note of the tenant.",
	    "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"},\"value\":"
	    "{\"type\":\"string\"}},\"required\":[\"key\",\"value\"]}", 0, tool_notes_put, NULL},
	{"test.note_get", "Reads a note of the tenant.",
	    "{\"type\":\"object\",\"properties\":{\"key\":{\"type\":\"string\"}},"
	    "\"required\":[\"key\"]}", 1, tool_notes_get, NULL},
	{"test.badjson", "Answers a body that is not JSON.",
	    "{\"type\":\"object\"}", 1, tool_badjson, NULL},
};

static void tools_observe(void *arg, const char *call_id, const char *tool,
    const json_t *arguments, const json_t *context, const char *outcome)
{
	json_t *line;
	char *text;

	(void)arg;
	if (tools.log == NULL)
		return;
	line = json_pack("{s:s?, s:s?, s:O?, s:O?, s:s, s:b}", "call_id", call_id, "tool", tool,
	    "arguments", arguments, "context", context, "outcome", outcome, "from_record",
	    strcmp(outcome, "record") == 0);
	text = json_dumps(line, JSON_COMPACT);
	fprintf(tools.log, "%s\n", text);
	fflush(tools.log);
	free(text);
	json_decref(line);
}

/* test.badjson's call: answered here, before the library, with a body that is no JSON. */
static int badjson_call(struct crab_http_request *req)
{
	size_t len;
	const char *text = crab_http_request_body(req, &len);
	json_t *body = text ? json_loadb(text, len, 0, NULL) : NULL;
	const char *tool = json_string_value(json_object_get(body, "tool"));
	int ours = tool != NULL && strcmp(tool, "test.badjson") == 0 &&
	    strcmp(crab_http_request_path(req), "/v1/tools/call") == 0;

	if (ours) {
		tools_observe(NULL, json_string_value(json_object_get(body, "call_id")), tool,
		    json_object_get(body, "arguments"), json_object_get(body, "context"), "run");
		crab_http_reply(req, 200, bad_json, sizeof(bad_json) - 1);
	}
	json_decref(body);
	return ours;
}

static int tools_start(struct event_base *base)
{
	char err[256];

	tools.base = base;
	tools.host = crab_tool_host_new(base, "test");
	tools.notes = crab_strmap_new();
	crab_tool_host_observe(tools.host, tools_observe, NULL);
	for (size_t i = 0; i < CRAB_ARRAY_LEN(test_tools); i++) {
		if (crab_tool_host_add(tools.host, &test_tools[i], err, sizeof(err)) != 0) {
			fprintf(stderr, "component: %s\n", err);
			return -1;
		}
	}
	return 0;
}

static void tools_stop(void)
{
	crab_tool_host_free(tools.host);
	if (tools.notes != NULL)
		crab_strmap_free(tools.notes, free);
	if (tools.log != NULL)
		fclose(tools.log);
}

static void on_request(void *arg, struct crab_http_request *req)
{
	json_t *o;
	char *s;

	(void)arg;
	if (tools.host != NULL && crab_tool_host_route(crab_http_request_path(req))) {
		if (!badjson_call(req))
			crab_tool_host_on_request(tools.host, req);
		return;
	}
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
		{"tools", no_argument, NULL, 'T'},
		{"tools-log", required_argument, NULL, 'G'},
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
	int ch, with_tools = 0;

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
		case 'T':
			with_tools = 1;
			break;
		case 'G':
			if ((tools.log = fopen(optarg, "ae")) == NULL) {
				fprintf(stderr, "component: cannot open %s\n", optarg);
				return 2;
			}
			break;
		default:
			return 2;
		}
	}
	if (with_tools) {
		if (ntypes == 0)
			types[ntypes++] = "tool";
		if (offers == NULL)
			offers = json_object();
		json_object_set_new(offers, "tools", json_true());
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
	if (with_tools && tools_start(base) != 0)
		return 1;
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
	tools_stop(); /* before the listener its calls' requests belong to */
	crab_component_free(c);
	json_decref(offers);
	event_base_free(base);
	if (deliver.log != NULL)
		fclose(deliver.log);
	return 0;
}
