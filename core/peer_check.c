/* peer_check.c: the gateway reaching its peers. Every tool host and subscriber is asked
 * GET /v1/health over pinned TLS at start and then periodically, so that `crab peers
 * list` shows who answers, and a component whose key changed is seen and logged
 * (pin_mismatch) before a tool call or a delivery would find it. */
#include "gateway.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "http_client.h"
#include "log.h"
#include "peers.h"
#include "util.h"

#define CHECK_EVERY_S 60
#define CHECK_TIMEOUT_MS 10000

struct peer_check {
	struct peer_check *next;
	struct peer_checks *round;
	char peer_id[CRAB_ID_MAX];
	struct crab_tls_pin pin;
	char expect[CRAB_FP_HEX];
	struct crab_http_call *http;
};

/* One round: every peer asked, done once all have answered. */
struct peer_checks {
	struct peer_checks *next;
	struct crab_gateway *gw;
	struct peer_check *checks;
	size_t waiting;
	void (*done)(void *arg);
	void *arg;
};

static void set_health(struct crab_gateway *gw, const char *peer_id, const char *health,
    const struct crab_tls_pin *pin)
{
	struct crab_peer *p = crab_peer_table_by_id(gw->peers, peer_id);
	char seen[CRAB_FP_SHORT], pinned[CRAB_FP_SHORT];

	if (p == NULL) /* revoked meanwhile */
		return;
	if (strcmp(health, p->health) != 0) {
		if (strcmp(health, "pin_mismatch") == 0) {
			crab_fingerprint_short(pin->seen, seen);
			crab_fingerprint_short(p->fingerprint, pinned);
			log_warnx("peer %s (%s '%s'): pin_mismatch: %s presents key %s, pinned %s; "
				  "refused until paired again", p->id, crab_peer_type_name(p->type),
			    p->component_id, p->endpoint, seen, pinned);
		} else {
			log_info("peer %s (%s '%s'): %s", p->id, crab_peer_type_name(p->type),
			    p->component_id, health);
		}
	}
	p->health = health;
	p->checked_at = crab_clock_now_ms();
}

static void round_free(struct peer_checks *r)
{
	struct peer_checks **pp;

	for (pp = &r->gw->peer_checks; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	while (r->checks != NULL) {
		struct peer_check *c = r->checks;
		r->checks = c->next;
		EVP_PKEY_free(c->pin.key);
		free(c);
	}
	free(r);
}

static void round_step(struct peer_checks *r)
{
	if (r->waiting > 0)
		return;
	if (r->done != NULL)
		r->done(r->arg);
	round_free(r);
}

static void check_answered(void *arg, int status, const char *body, size_t len,
    const char *error)
{
	struct peer_check *c = arg;
	const char *health;

	(void)body;
	(void)len;
	c->http = NULL;
	if (error != NULL)
		health = c->pin.mismatch ? "pin_mismatch" : "unreachable";
	else
		health = status == 200 ? "ok" : "refused";
	set_health(c->round->gw, c->peer_id, health, &c->pin);
	c->round->waiting--;
	round_step(c->round);
}

void crab_peer_check_all(struct crab_gateway *gw, void (*done)(void *arg), void *arg)
{
	struct peer_checks *r = xcalloc(1, sizeof(*r));
	char url[1024];

	r->gw = gw;
	r->done = done;
	r->arg = arg;
	r->next = gw->peer_checks;
	gw->peer_checks = r;
	r->waiting = 1; /* held until every call has started */
	for (struct crab_peer *p = crab_peer_table_first(gw->peers); p != NULL; p = p->next) {
		struct peer_check *c;

		if (p->type == CRAB_PEER_OPERATOR || p->endpoint == NULL)
			continue; /* a remote CLI listens only while it is being paired */
		c = xcalloc(1, sizeof(*c));
		c->round = r;
		crab_strlcpy(c->peer_id, p->id, sizeof(c->peer_id));
		crab_strlcpy(c->expect, p->fingerprint, sizeof(c->expect));
		c->pin.id = gw->identity;
		c->pin.expect = c->expect;
		c->next = r->checks;
		r->checks = c;
		snprintf(url, sizeof(url), "%s/v1/health", p->endpoint);
		c->http = crab_http_client_start_pinned(gw->http_client,
		    &(struct crab_http_req_v1){.size = sizeof(struct crab_http_req_v1),
			.method = "GET", .url = url, .timeout_ms = CHECK_TIMEOUT_MS,
			.max_response_bytes = 4096},
		    &(struct crab_http_handler_v1){.size = sizeof(struct crab_http_handler_v1),
			.on_done = check_answered},
		    c, &c->pin);
		if (c->http == NULL)
			set_health(gw, p->id, "unreachable", &c->pin);
		else
			r->waiting++;
	}
	r->waiting--;
	round_step(r);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_gateway *gw = arg;

	(void)fd;
	(void)what;
	if (gw->peer_checks == NULL) /* the last round still running: skip this one */
		crab_peer_check_all(gw, NULL, NULL);
}

void crab_peer_check_start(struct crab_gateway *gw)
{
	struct timeval every = {CHECK_EVERY_S, 0};

	gw->peer_check_timer = event_new(gw->base, -1, EV_PERSIST, timer_cb, gw);
	event_add(gw->peer_check_timer, &every);
	crab_peer_check_all(gw, NULL, NULL);
}

void crab_peer_check_release(struct crab_gateway *gw)
{
	if (gw->peer_check_timer != NULL)
		event_free(gw->peer_check_timer);
	gw->peer_check_timer = NULL;
	while (gw->peer_checks != NULL) {
		struct peer_checks *r = gw->peer_checks;
		for (struct peer_check *c = r->checks; c != NULL; c = c->next)
			crab_http_client_cancel(c->http);
		if (r->done != NULL) /* an admin call waits: it gets what is known */
			r->done(r->arg);
		round_free(r);
	}
}
