/* pair_responder.h: the component side of pairing (SECURITY.md "Pairing", PROTOCOLS.md
 * §8), for any role that a gateway pairs with: the memory and cron services, listeners,
 * `crab pair listen` for a remote operator CLI, and the test components under t/.
 *
 * It serves POST /v1/pair on the component's TLS listener and keeps the gateways it pins
 * in <dir>/gateways.json (0600). A pairing is accepted while a window is open (on first
 * start while no gateway is pinned, or for --pairing-window), or at any time from a
 * gateway already pinned (another role); --expect makes the gateway's key strict. The
 * pin is on disk before the answer leaves. */
#ifndef CRAB_PAIR_RESPONDER_H
#define CRAB_PAIR_RESPONDER_H

#include <jansson.h>
#include <stdint.h>

#include "http_server.h"
#include "identity.h"

#define CRAB_PAIR_FIRST_WINDOW_MS (10 * 60 * 1000) /* a first start's window */
#define CRAB_PAIR_MAX_GATEWAYS 64                   /* pins one component keeps */

struct crab_pair_responder_opts {
	const struct crab_identity *id; /* borrowed, outlives the responder */
	const char *dir;                /* where gateways.json lives */
	const char *const *types;       /* component types it may be paired as, NULL-ended */
	json_t *offers;                 /* its answer's "offers" (borrowed, referenced) */
	const char *expect;             /* the one gateway fingerprint it accepts, or NULL */
	int64_t window_ms;              /* > 0: a window that long from now; 0: only the
					 * first start's, when no gateway is pinned yet */
	/* Told of each pairing accepted, after the pin is stored (may be NULL). */
	void (*on_paired)(void *arg, const char *gateway_fp, const char *gateway_name,
	    const char *component_type, const char *component_id);
	void *arg;
};

struct crab_pair_responder;

/* Reads the pins; NULL with one line in err (a pins file that does not parse is an
 * error, never an empty list: that would reopen the first-start window). */
struct crab_pair_responder *crab_pair_responder_new(const struct crab_pair_responder_opts *o,
    char *err, size_t errlen);
void crab_pair_responder_free(struct crab_pair_responder *r);

/* Answers one POST /v1/pair request (any other method: 405). */
void crab_pair_responder_handle(struct crab_pair_responder *r, struct crab_http_request *req);

/* Whether fp is a pinned gateway: 1 yes, 0 no. */
int crab_pair_responder_pinned(struct crab_pair_responder *r, const char *fp);
/* How many gateways are pinned. */
size_t crab_pair_responder_count(struct crab_pair_responder *r);
/* When the window closes (ms since the epoch on the crab clock); 0 when none is open. */
int64_t crab_pair_responder_window_until(struct crab_pair_responder *r);

/* Reads <dir>/gateways.json for a client (the remote CLI): whether fp is pinned there.
 * 1 yes, 0 no, -1 with err when the file cannot be read or parsed. */
int crab_pair_pins_has(const char *dir, const char *fp, char *err, size_t errlen);
/* The entries of <dir>/gateways.json, [{"fingerprint","name","paired_at","roles":
 * [{"component_type","component_id"}]}]: a new array, or NULL with err. A missing file
 * is an empty array. */
json_t *crab_pair_pins_load(const char *dir, char *err, size_t errlen);

#endif
