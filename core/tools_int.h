/* tools_int.h: what tools.c (the hosts, their lists, what an agent may use) and
 * tools_call.c (the calls) share. Loop thread only. */
#ifndef CRAB_TOOLS_INT_H
#define CRAB_TOOLS_INT_H

#include <event2/event.h>

#include "http_client.h"
#include "id.h"
#include "identity.h"
#include "tls.h"
#include "tools.h"

#define ERROR_MAX 300 /* bytes of an error kept or told */

struct tool {
	char *name;        /* host.verb */
	char model_name[65];
	json_t *def;       /* {"name","description","input_schema"} as models see it */
	int idempotent;
};

struct host {
	struct host *next;
	struct crab_tools *t;
	char peer_id[CRAB_ID_MAX];
	char fp[CRAB_FP_HEX];
	char *endpoint;
	json_t *tenants;     /* its grant; NULL: every tenant */
	char *name;          /* what it calls itself */
	struct tool *tools;
	size_t ntools;
	char error[ERROR_MAX];
	struct crab_http_client *http; /* carries this host's pin only */
	struct crab_http_call *listing;
	struct crab_tls_pin list_pin;
	int gone;
	int relist; /* unreachable since its last list: listed again once it answers */
};

struct crab_tools {
	struct crab_gateway *gw;
	struct host *hosts;
	struct crab_tool_call *calls; /* in flight */
	struct event *timer;
	int dirty;
};

struct crab_tool_call {
	struct crab_tools *t;
	struct host *h;        /* NULL: a gateway tool, or none */
	char *tool;            /* the real name */
	char *call_id;
	char *body;            /* what is posted (again, for a retry) */
	char *url;
	int idempotent, attempts;
	int64_t deadline_at;   /* monotonic ms */
	char *result;          /* set when known: done at the next turn of the loop */
	struct crab_tls_pin pin;
	struct crab_http_call *http;
	struct event *ev;
	crab_tool_done_fn done;
	void *arg;
	int retrying;          /* ev is the retry's timer, not the answer */
	int own_pending;       /* a gateway tool has yet to answer */
	int cancelled;         /* by the caller, while own_pending */
	struct crab_tool_call *next, **prevp;
};

/* tools.c */
/* The peers changed since the hosts were last read: read them again. */
void crab_tools_refresh(struct crab_tools *t);
void crab_tools_host_list(struct host *h);
/* The remote tool the model named that agent a may use in tenant (*host its host), or
 * NULL. */
const struct tool *crab_tools_find_remote(struct crab_tools *t,
    const struct crab_config_agent *a, const char *tenant_id, const char *model_name,
    struct host **host);
/* The gateway's own tool the model named, allowed by a's config_policy: its real name
 * into out; 0 when none. */
int crab_tools_find_own(const struct crab_config_agent *a, const char *model_name, char *out,
    size_t outlen);

/* tools_call.c */
/* Its host is revoked: what it has in flight fails now. */
void crab_tools_fail_calls_of(struct crab_tools *t, struct host *h);

#endif
