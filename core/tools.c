/* tools.c: see tools.h. The tool hosts and their lists, and what an agent may use;
 * the calls are in tools_call.c. */
#include "tools_int.h"

#include <event2/event.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_tools.h"
#include "gateway.h"
#include "jschema.h"
#include "jsontext.h"
#include "log.h"
#include "peers.h"
#include "util.h"

#define LIST_EVERY_MS (60 * 1000)
#define LIST_TIMEOUT_MS 10000
#define TOOLS_PER_HOST_MAX 256

int crab_tool_model_name(const char *tool, char out[65])
{
	size_t n = 0;

	for (const char *p = tool; *p != '\0'; p++) {
		const char *add = *p == '.' ? "__" : NULL;
		char c = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || *p == '_' || *p == '-' ? *p : '_';
		size_t len = add ? 2 : 1;

		if (n + len > 64)
			return -1;
		memcpy(out + n, add ? add : &c, len);
		n += len;
	}
	out[n] = '\0';
	return n > 0 ? 0 : -1;
}

/* ---- hosts and their lists ---- */

static void host_clear_tools(struct host *h)
{
	for (size_t i = 0; i < h->ntools; i++) {
		free(h->tools[i].name);
		json_decref(h->tools[i].def);
	}
	free(h->tools);
	h->tools = NULL;
	h->ntools = 0;
}

static void host_free(struct host *h)
{
	crab_http_client_free(h->http); /* cancels the listing without its callback */
	EVP_PKEY_free(h->list_pin.key);
	host_clear_tools(h);
	free(h->endpoint);
	free(h->name);
	json_decref(h->tenants);
	free(h);
}

static struct host *host_find(struct crab_tools *t, const char *peer_id)
{
	for (struct host *h = t->hosts; h != NULL; h = h->next) {
		if (strcmp(h->peer_id, peer_id) == 0)
			return h;
	}
	return NULL;
}

/* A tool name: host.verb, lower-case words, and never the gateway's own config.*. */
static int name_ok(const char *host, const char *name)
{
	size_t hl = strlen(host);

	if (strncmp(name, host, hl) != 0 || name[hl] != '.' || name[hl + 1] == '\0' ||
	    strncmp(name, "config.", 7) == 0 || strlen(name) > 64)
		return 0;
	return strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-.") == strlen(name);
}

/* Takes the tools of a GET /v1/tools answer; a tool that is not right is left out. */
static void host_take_list(struct host *h, json_t *doc)
{
	const char *name = json_string_value(json_object_get(doc, "host"));
	json_t *tools = json_object_get(doc, "tools"), *x;
	size_t i;

	host_clear_tools(h);
	if (name == NULL || !json_is_array(tools)) {
		snprintf(h->error, sizeof(h->error), "its tool list has no host or tools");
		return;
	}
	free(h->name);
	h->name = xstrdup(name);
	h->tools = xcalloc(json_array_size(tools) + 1, sizeof(*h->tools));
	json_array_foreach(tools, i, x) {
		const char *tn = json_string_value(json_object_get(x, "name"));
		json_t *schema = json_object_get(x, "input_schema");
		json_t *desc = json_object_get(x, "description");
		struct tool *tool = &h->tools[h->ntools];
		char why[200];

		if (i >= TOOLS_PER_HOST_MAX || tn == NULL || !name_ok(name, tn) ||
		    crab_tool_model_name(tn, tool->model_name) != 0) {
			log_warnx("tool host %s: tool '%.64s' left out: not a name %s.verb",
			    h->peer_id, tn ? tn : "?", name);
			continue;
		}
		if (!json_is_object(schema) || crab_jschema_check(schema, why, sizeof(why)) != 0) {
			log_warnx("tool host %s: tool %s left out: its input_schema: %s", h->peer_id,
			    tn, json_is_object(schema) ? why : "not an object");
			continue;
		}
		tool->name = xstrdup(tn);
		tool->idempotent = json_is_true(json_object_get(x, "idempotent"));
		tool->def = json_pack("{s:s, s:s, s:O}", "name", tool->model_name, "description",
		    json_is_string(desc) ? json_string_value(desc) : "", "input_schema", schema);
		h->ntools++;
	}
	h->error[0] = '\0';
}

static void on_listed(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct host *h = arg;
	json_t *doc = NULL;

	h->listing = NULL;
	if (error != NULL)
		snprintf(h->error, sizeof(h->error), "%s", h->list_pin.mismatch ?
		    "pin_mismatch: the tool host's key is not its pin" : error);
	else if (status != 200)
		snprintf(h->error, sizeof(h->error), "GET /v1/tools: HTTP %d", status);
	else if ((doc = json_loadb(body, len, 0, NULL)) == NULL)
		snprintf(h->error, sizeof(h->error), "GET /v1/tools: not JSON");
	else
		host_take_list(h, doc);
	json_decref(doc);
	if (h->error[0] != '\0')
		log_warnx("tool host %s: %s", h->peer_id, h->error);
	else
		log_info("tool host %s (%s): %zu tools", h->peer_id, h->name, h->ntools);
}

void crab_tools_host_list(struct host *h)
{
	struct crab_tools *t = h->t;
	char url[2048];

	if (h->listing != NULL)
		return;
	snprintf(url, sizeof(url), "%s/v1/tools", h->endpoint);
	if (h->http == NULL)
		h->http = crab_http_client_new(t->gw->base);
	EVP_PKEY_free(h->list_pin.key);
	h->list_pin = (struct crab_tls_pin){.id = t->gw->identity, .expect = h->fp, .reuse = 1};
	h->listing = crab_http_client_start_pinned(h->http,
	    &(struct crab_http_req_v1){.size = sizeof(struct crab_http_req_v1), .method = "GET",
		.url = url, .timeout_ms = LIST_TIMEOUT_MS, .max_response_bytes = CRAB_TOOL_ANSWER_MAX},
	    &(struct crab_http_handler_v1){.size = sizeof(struct crab_http_handler_v1),
		.on_done = on_listed},
	    h, &h->list_pin);
}

/* The hosts are the live tool peers with an endpoint. A host that went is freed at once:
 * its calls in flight hold no pointer to it past their own cancel (below). */
void crab_tools_refresh(struct crab_tools *t)
{
	struct host **pp;

	for (struct host *h = t->hosts; h != NULL; h = h->next)
		h->gone = 1;
	for (struct crab_peer *p = crab_peer_table_first(t->gw->peers); p != NULL; p = p->next) {
		struct host *h;

		if (p->type != CRAB_PEER_TOOL || p->endpoint == NULL)
			continue;
		if ((h = host_find(t, p->id)) == NULL) {
			h = xcalloc(1, sizeof(*h));
			h->t = t;
			crab_strlcpy(h->peer_id, p->id, sizeof(h->peer_id));
			crab_strlcpy(h->fp, p->fingerprint, sizeof(h->fp));
			h->endpoint = xstrdup(p->endpoint);
			h->next = t->hosts;
			t->hosts = h;
		}
		h->gone = 0;
		json_decref(h->tenants);
		h->tenants = p->tenants ? json_deep_copy(p->tenants) : NULL;
	}
	for (pp = &t->hosts; *pp != NULL;) {
		struct host *h = *pp;
		if (h->gone) {
			*pp = h->next;
			crab_tools_fail_calls_of(t, h);
			host_free(h);
		} else {
			pp = &h->next;
		}
	}
	t->dirty = 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_tools *t = arg;
	struct timeval every = {LIST_EVERY_MS / 1000, 0};

	(void)fd;
	(void)what;
	if (t->gw->draining)
		return;
	if (t->dirty)
		crab_tools_refresh(t);
	for (struct host *h = t->hosts; h != NULL; h = h->next)
		crab_tools_host_list(h);
	evtimer_add(t->timer, &every);
}

struct crab_tools *crab_tools_new(struct crab_gateway *gw)
{
	struct crab_tools *t = xcalloc(1, sizeof(*t));
	struct timeval now = {0, 0};

	t->gw = gw;
	t->dirty = 1;
	t->timer = evtimer_new(gw->base, timer_cb, t);
	evtimer_add(t->timer, &now);
	return t;
}

void crab_tools_free(struct crab_tools *t)
{
	if (t == NULL)
		return;
	while (t->calls != NULL)
		crab_tools_cancel(t->calls);
	event_free(t->timer);
	while (t->hosts != NULL) {
		struct host *h = t->hosts;
		t->hosts = h->next;
		host_free(h);
	}
	free(t);
}

void crab_tools_peers_changed(struct crab_tools *t)
{
	struct timeval now = {0, 0};

	t->dirty = 1;
	evtimer_add(t->timer, &now);
}

json_t *crab_tools_status(struct crab_tools *t)
{
	json_t *hosts = json_array();

	for (struct host *h = t->hosts; h != NULL; h = h->next)
		json_array_append_new(hosts, json_pack("{s:s, s:s?, s:i, s:s?}", "peer_id",
		    h->peer_id, "host", h->name, "tools", (int)h->ntools, "error",
		    h->error[0] ? h->error : NULL));
	return json_pack("{s:o}", "hosts", hosts);
}

/* ---- what an agent may use ---- */

static int matches(char **patterns, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		if (fnmatch(patterns[i], name, 0) == 0)
			return 1;
	}
	return 0;
}

/* Remote tools: the agent's allow list, less its deny list, of hosts granted tenant. */
static int allowed(const struct crab_config_agent *a, const struct host *h,
    const char *tenant_id, const char *name)
{
	if (h->tenants != NULL && (tenant_id == NULL || !crab_json_list_has(h->tenants, tenant_id)))
		return 0;
	return matches(a->tools_allow, a->ntools_allow, name) &&
	       !matches(a->tools_deny, a->ntools_deny, name);
}

const struct tool *crab_tools_find_remote(struct crab_tools *t,
    const struct crab_config_agent *a, const char *tenant_id, const char *model_name,
    struct host **host)
{
	for (struct host *h = t->hosts; h != NULL; h = h->next) {
		for (size_t i = 0; i < h->ntools; i++) {
			if (strcmp(h->tools[i].model_name, model_name) == 0 &&
			    allowed(a, h, tenant_id, h->tools[i].name)) {
				*host = h;
				return &h->tools[i];
			}
		}
	}
	return NULL;
}

/* The gateway's own tool the model named, allowed by the agent's config policy: its
 * real name into out. The policy's names were checked at load to be config tools. */
int crab_tools_find_own(const struct crab_config_agent *a, const char *model_name, char *out,
    size_t outlen)
{
	for (size_t i = 0; i < a->npolicy_tools; i++) {
		char mn[65];
		if (crab_tool_model_name(a->policy_tools[i], mn) == 0 &&
		    strcmp(mn, model_name) == 0) {
			crab_strlcpy(out, a->policy_tools[i], outlen);
			return 1;
		}
	}
	return 0;
}

json_t *crab_tools_offer(struct crab_tools *t, const struct crab_config_agent *a,
    const char *tenant_id)
{
	json_t *out, *own, *x;
	size_t i;

	if (a->ntools_allow == 0 && a->npolicy_tools == 0)
		return NULL; /* most agents: nothing to build, turn after turn */
	out = json_array();
	own = crab_config_tools_list(t->gw, a->id);

	json_array_foreach(own, i, x) {
		const char *name = json_string_value(json_object_get(x, "name"));
		char mn[65];
		if (name == NULL || crab_tool_model_name(name, mn) != 0)
			continue;
		json_array_append_new(out, json_pack("{s:s, s:O, s:O}", "name", mn, "description",
		    json_object_get(x, "description"), "input_schema",
		    json_object_get(x, "input_schema")));
	}
	json_decref(own);
	for (struct host *h = t->hosts; h != NULL; h = h->next) {
		for (size_t k = 0; k < h->ntools; k++) {
			if (allowed(a, h, tenant_id, h->tools[k].name))
				json_array_append(out, h->tools[k].def);
		}
	}
	if (json_array_size(out) == 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}
