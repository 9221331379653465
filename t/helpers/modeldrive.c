/* modeldrive.c: one request to a model adapter through the module registry, without a
 * gateway, for the adapter tests (t5002). Linked with the core's sanitizer objects.
 *
 *   modeldrive [options] ADAPTER CONFIG_JSON [REQUEST_JSON]
 *     ADAPTER        a built-in module name ("openai", "echo")
 *     CONFIG_JSON    its config, as the gateway would pass a model entry
 *     REQUEST_JSON   the neutral request; read from stdin when absent
 *   -s PATH          load ADAPTER's descriptor from the .so at PATH instead
 *   -t MS            overall limit (default 30000): then cancel, exit 3
 *   -c MS            cancel the request after MS, wait 500 ms more, exit 4
 *   -f MS            after MS stop the loop with the request still running: the
 *                    module's fini must free it (exit 6)
 *
 * Prints one JSON object a line on stdout, as the sink is called: {"event":"text",
 * "text"}, {"event":"tool_call","call":{...}}, {"event":"usage","input_tokens",
 * "output_tokens"}, then {"event":"done","stop_reason","elapsed_ms"} (exit 0) or
 * {"event":"error","code","message","retryable","elapsed_ms"} (exit 1). A sink call
 * after done, error or cancel prints {"event":"late",...} and makes the exit 5. The
 * core's log (the module's lines) goes to stderr. Exit 2: usage or setup failure. The
 * registry is freed before the exit, the module's fini included, so a leak under
 * AddressSanitizer fails the run. */
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/http_client.h"
#include "core/log.h"
#include "core/modules.h"

extern const struct crab_module_v1 crab_builtin_openai;
extern const struct crab_module_v1 crab_builtin_echo;

struct drive {
	struct event_base *base;
	const struct crab_model_ops_v1 *ops;
	void *ctx, *handle;
	int64_t t0;
	int finished, exit_code;
	struct event *limit, *cancel_ev, *linger, *quit;
};

static void emit(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(o);
}

static int64_t elapsed(struct drive *d)
{
	return (crab_monotonic_us() - d->t0) / 1000;
}

/* A sink call after the end is a bug the tests catch. */
static int late(struct drive *d, const char *what)
{
	if (!d->finished)
		return 0;
	emit(json_pack("{s:s, s:s}", "event", "late", "call", what));
	d->exit_code = 5;
	return 1;
}

static void on_text(void *arg, const char *text, size_t len)
{
	if (!late(arg, "on_text"))
		emit(json_pack("{s:s, s:s%}", "event", "text", "text", text, len));
}

static void on_tool_call(void *arg, const char *call, size_t len)
{
	json_t *c = json_loadb(call, len, 0, NULL);
	if (!late(arg, "on_tool_call"))
		emit(json_pack("{s:s, s:o}", "event", "tool_call", "call",
		    c ? c : json_stringn(call, len)));
	else
		json_decref(c);
}

static void on_usage(void *arg, int64_t in, int64_t out)
{
	if (!late(arg, "on_usage"))
		emit(json_pack("{s:s, s:I, s:I}", "event", "usage", "input_tokens", (json_int_t)in,
		    "output_tokens", (json_int_t)out));
}

static void finish(struct drive *d, int code)
{
	d->finished = 1;
	d->exit_code = code;
	event_base_loopexit(d->base, NULL);
}

static void on_done(void *arg, const char *reason)
{
	struct drive *d = arg;
	if (late(d, "on_done"))
		return;
	emit(json_pack("{s:s, s:s, s:I}", "event", "done", "stop_reason", reason ? reason : "",
	    "elapsed_ms", (json_int_t)elapsed(d)));
	finish(d, 0);
}

static void on_error(void *arg, const char *code, const char *message, int retryable)
{
	struct drive *d = arg;
	if (late(d, "on_error"))
		return;
	emit(json_pack("{s:s, s:s, s:s, s:i, s:I}", "event", "error", "code", code ? code : "",
	    "message", message ? message : "", "retryable", retryable, "elapsed_ms",
	    (json_int_t)elapsed(d)));
	finish(d, 1);
}

static const struct crab_model_sink_v1 sink = {
	sizeof(struct crab_model_sink_v1), on_text, on_tool_call, on_usage, on_done, on_error,
};

static void on_limit(evutil_socket_t fd, short what, void *arg)
{
	struct drive *d = arg;
	(void)fd, (void)what;
	d->ops->cancel(d->ctx, d->handle);
	emit(json_pack("{s:s, s:I}", "event", "driver_timeout", "elapsed_ms",
	    (json_int_t)elapsed(d)));
	finish(d, 3);
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	event_base_loopexit(((struct drive *)arg)->base, NULL);
}

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
	struct drive *d = arg;
	struct timeval half = {0, 500000};
	(void)fd, (void)what;
	if (d->finished)
		return;
	d->ops->cancel(d->ctx, d->handle);
	emit(json_pack("{s:s, s:I}", "event", "cancelled", "elapsed_ms", (json_int_t)elapsed(d)));
	d->finished = 1;
	d->exit_code = 4;
	evtimer_add(d->linger, &half); /* anything the adapter still says now is late */
}

static void on_quit(evutil_socket_t fd, short what, void *arg)
{
	struct drive *d = arg;
	(void)fd, (void)what;
	if (d->finished)
		return;
	emit(json_pack("{s:s, s:I}", "event", "fini", "elapsed_ms", (json_int_t)elapsed(d)));
	d->finished = 1;
	d->exit_code = 6;
	event_base_loopexit(d->base, NULL);
}

static char *read_all(FILE *f)
{
	size_t len = 0, cap = 4096, n;
	char *buf = malloc(cap);

	while (buf != NULL && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2 && (buf = realloc(buf, cap *= 2)) == NULL)
			break;
	}
	if (buf != NULL)
		buf[len] = '\0';
	return buf;
}

static void usage(void)
{
	fprintf(stderr, "usage: modeldrive [-s PATH] [-t MS] [-c MS] [-f MS] ADAPTER CONFIG_JSON "
	    "[REQUEST_JSON]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct drive d = {0};
	struct crab_registry *r;
	struct crab_http_client *http;
	struct crab_registry_services svc = {0};
	const struct crab_module_v1 *desc = NULL;
	const char *so = NULL, *name;
	long limit_ms = 30000, cancel_ms = -1, quit_ms = -1;
	char err[512], *request;
	json_t *config;
	int opt, rc;

	while ((opt = getopt(argc, argv, "s:t:c:f:")) != -1) {
		switch (opt) {
		case 's': so = optarg; break;
		case 't': limit_ms = atol(optarg); break;
		case 'c': cancel_ms = atol(optarg); break;
		case 'f': quit_ms = atol(optarg); break;
		default: usage();
		}
	}
	if (argc - optind < 2 || argc - optind > 3)
		usage();
	name = argv[optind];
	if ((config = json_loads(argv[optind + 1], 0, NULL)) == NULL) {
		fprintf(stderr, "modeldrive: CONFIG_JSON is not JSON\n");
		return 2;
	}
	request = argc - optind == 3 ? strdup(argv[optind + 2]) : read_all(stdin);
	log_init("modeldrive", CRAB_LOG_DEBUG);
	d.base = event_base_new();
	http = crab_http_client_new(d.base);
	svc.http = http;
	svc.role_name = "gateway";
	r = crab_registry_new(d.base, &svc);
	if (so != NULL)
		rc = crab_registry_load(r, so, config, err, sizeof(err));
	else if ((desc = strcmp(name, "openai") == 0 ? &crab_builtin_openai :
	    strcmp(name, "echo") == 0 ? &crab_builtin_echo : NULL) == NULL) {
		snprintf(err, sizeof(err), "no built-in adapter '%s'", name);
		rc = -1;
	} else {
		rc = crab_registry_add(r, desc, NULL, config, err, sizeof(err));
	}
	json_decref(config);
	if (rc == 0) {
		crab_registry_start(r);
		if ((d.ops = crab_registry_model(r, name, &d.ctx)) == NULL) {
			snprintf(err, sizeof(err), "'%s' is not a started model adapter", name);
			rc = -1;
		}
	}
	if (rc != 0) {
		fprintf(stderr, "modeldrive: %s\n", err);
		d.exit_code = 2;
		goto done;
	}
	d.limit = evtimer_new(d.base, on_limit, &d);
	d.cancel_ev = evtimer_new(d.base, on_cancel, &d);
	d.linger = evtimer_new(d.base, on_linger, &d);
	d.quit = evtimer_new(d.base, on_quit, &d);
	d.t0 = crab_monotonic_us();
	if (d.ops->start(d.ctx, request, strlen(request), &sink, &d, &d.handle) != 0) {
		emit(json_pack("{s:s}", "event", "refused"));
		d.exit_code = 2;
		goto done;
	}
	{
		struct timeval lim = {limit_ms / 1000, (limit_ms % 1000) * 1000};
		struct timeval can = {cancel_ms / 1000, (cancel_ms % 1000) * 1000};
		struct timeval quit = {quit_ms / 1000, (quit_ms % 1000) * 1000};
		evtimer_add(d.limit, &lim);
		if (cancel_ms >= 0)
			evtimer_add(d.cancel_ev, &can);
		if (quit_ms >= 0)
			evtimer_add(d.quit, &quit);
	}
	event_base_dispatch(d.base);
done:
	if (d.limit != NULL) {
		event_free(d.limit);
		event_free(d.cancel_ev);
		event_free(d.linger);
		event_free(d.quit);
	}
	crab_registry_free(r); /* fini: whatever is still in flight */
	crab_http_client_free(http);
	event_base_free(d.base);
	free(request);
	return d.exit_code;
}
