/* component.c: see component.h. */
#include "component.h"

#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "util.h"

#define COMPONENT_BODY_MAX (1u << 20)

/* Only the pinned gateway gets past the headers, except to pair. */
static int on_head(struct crab_http_request *req, void *arg, struct crab_error *err)
{
	struct crab_component *c = arg;

	if (strcmp(crab_http_request_path(req), "/v1/pair") == 0 ||
	    crab_pair_responder_pinned(c->responder, crab_http_request_peer_fingerprint(req)))
		return 0;
	crab_error_set(err, "pin_mismatch", NULL,
	    "this component answers only the gateway it is paired with");
	return -1;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	static const char health[] = "{\"status\":\"ok\"}";
	struct crab_component *c = arg;
	const char *path = crab_http_request_path(req);
	struct crab_error err;

	if (strcmp(path, "/v1/pair") == 0) {
		crab_pair_responder_handle(c->responder, req);
		return;
	}
	/* on_head let only the pinned gateway through, and pins are never taken back. */
	if (strcmp(path, "/v1/health") == 0) {
		crab_http_reply(req, 200, health, sizeof(health) - 1);
	} else if (c->on_request != NULL) {
		c->on_request(c->arg, req);
	} else {
		crab_error_set(&err, "not_found", NULL, "no route for '%.100s'", path);
		crab_http_reply_error(req, &err);
	}
}

struct crab_component *crab_component_start(struct event_base *base,
    const struct crab_component_opts *o, char *err, size_t errlen)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 16 << 10, .max_body_bytes = COMPONENT_BODY_MAX,
		.idle_timeout_s = 60, .max_connections = 256,
	};
	struct crab_component *c = xcalloc(1, sizeof(*c));
	struct crab_pair_responder_opts po = o->pairing;
	SSL_CTX *ctx = NULL;
	int loopback;

	c->on_request = o->on_request;
	c->arg = o->arg;
	if ((c->id = crab_identity_load(o->data_dir, o->cn, 1, NULL, err, errlen)) == NULL)
		goto fail;
	po.id = c->id;
	po.dir = o->data_dir;
	if ((c->responder = crab_pair_responder_new(&po, err, errlen)) == NULL)
		goto fail;
	/* The gateway always presents its certificate: a client without one is no gateway. */
	if ((ctx = crab_tls_server_ctx(c->id, 1, err, errlen)) == NULL)
		goto fail;
	c->http = crab_http_server_new(base, &limits, on_head, on_request, c);
	if (crab_http_server_set_tls(c->http, ctx) != 0) {
		snprintf(err, errlen, "cannot set up TLS");
		goto fail;
	}
	if (crab_http_server_listen(c->http, o->listen, &loopback, err, errlen) != 0)
		goto fail;
	SSL_CTX_free(ctx);
	return c;
fail:
	SSL_CTX_free(ctx);
	crab_component_free(c);
	return NULL;
}

int crab_component_port(struct crab_component *c)
{
	return crab_http_server_port(c->http);
}

void crab_component_free(struct crab_component *c)
{
	if (c == NULL)
		return;
	crab_http_server_free(c->http);
	crab_pair_responder_free(c->responder);
	crab_identity_free(c->id);
	free(c);
}
