/* component.h: the listener of a component that a gateway pairs with and then calls
 * (SECURITY.md "Transport"): TLS 1.3 with the component's identity, a client certificate
 * required, POST /v1/pair answered by the pairing responder, GET /v1/health, and every
 * other route only for a pinned gateway (403 pin_mismatch for any other key), passed to
 * the role's own handler. Used by `crab pair listen` and the test components under t/;
 * the memory and cron roles will be built on it. */
#ifndef CRAB_COMPONENT_H
#define CRAB_COMPONENT_H

#include <event2/event.h>
#include <jansson.h>

#include "http_server.h"
#include "identity.h"
#include "pair_responder.h"

struct crab_component_opts {
	const char *data_dir;       /* identity and pins; made 0700 when missing */
	const char *cn;             /* the certificate's common name on first start */
	const char *listen;         /* "host:port" */
	struct crab_pair_responder_opts pairing; /* its id and dir are filled in */
	/* Routes other than /v1/pair and /v1/health, from a pinned gateway; NULL: 404. The
	 * handler replies exactly once, as crab_http_server's request callback. */
	void (*on_request)(void *arg, struct crab_http_request *req);
	void *arg;
};

struct crab_component {
	struct crab_identity *id;
	struct crab_pair_responder *responder;
	struct crab_http_server *http;
	void (*on_request)(void *arg, struct crab_http_request *req);
	void *arg;
};

/* Loads (or makes) the identity, reads the pins, listens. NULL with one line in err. */
struct crab_component *crab_component_start(struct event_base *base,
    const struct crab_component_opts *o, char *err, size_t errlen);
int crab_component_port(struct crab_component *c);
void crab_component_free(struct crab_component *c);

#endif
