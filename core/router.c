/* router.c: see router.h. The identity mapping is indexed once per config: lookups are
 * one hash probe per level (actor, channel, whole platform). */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "template.h"
#include "util.h"

struct crab_router {
	const struct crab_config *cfg;
	struct crab_strmap *identities; /* "a\x1fplatform\x1factor", "c\x1f...", "p\x1f..." */
};

/* The index key of one identity level; separators that ids cannot contain. */
static char *identity_key(char level, const char *platform, const char *id)
{
	size_t n = strlen(platform) + (id ? strlen(id) : 0) + 4;
	char *k = xmalloc(n);
	snprintf(k, n, "%c\x1f%s\x1f%s", level, platform, id ? id : "");
	return k;
}

static void index_identity(struct crab_router *r, char level, const char *platform,
    const char *id, const char *tenant)
{
	char *k = identity_key(level, platform, id);
	/* The config check refuses an identity in two tenants; the first entry wins. */
	if (crab_strmap_get(r->identities, k) == NULL)
		crab_strmap_put(r->identities, k, (void *)tenant);
	free(k);
}

struct crab_router *crab_router_new(const struct crab_config *cfg)
{
	struct crab_router *r = xcalloc(1, sizeof(*r));

	r->cfg = cfg;
	r->identities = crab_strmap_new();
	for (size_t t = 0; t < cfg->ntenants; t++) {
		const struct crab_config_tenant *ten = &cfg->tenants[t];
		for (size_t i = 0; i < ten->nidentities; i++) {
			const struct crab_config_identity *id = &ten->identities[i];
			for (size_t a = 0; a < id->nactors; a++)
				index_identity(r, 'a', id->platform, id->actors[a], ten->id);
			for (size_t c = 0; c < id->nchannels; c++)
				index_identity(r, 'c', id->platform, id->channels[c], ten->id);
			if (id->nactors == 0 && id->nchannels == 0)
				index_identity(r, 'p', id->platform, NULL, ten->id);
		}
	}
	return r;
}

void crab_router_free(struct crab_router *r)
{
	if (r == NULL)
		return;
	crab_strmap_free(r->identities, NULL);
	free(r);
}

static const char *lookup(const struct crab_router *r, char level, const char *platform,
    const char *id)
{
	char *k = identity_key(level, platform, id);
	const char *tenant = crab_strmap_get(r->identities, k);
	free(k);
	return tenant;
}

const char *crab_router_tenant(const struct crab_router *r, const char *platform,
    const char *channel_id, const char *actor_id)
{
	const char *t = NULL;

	if (platform == NULL)
		return NULL;
	if (actor_id != NULL)
		t = lookup(r, 'a', platform, actor_id);
	if (t == NULL && channel_id != NULL)
		t = lookup(r, 'c', platform, channel_id);
	if (t == NULL)
		t = lookup(r, 'p', platform, NULL);
	return t;
}

static int key_matches(const char *want, const char *have)
{
	return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

/* The first route matching the event (and naming agent, when the agent is fixed). */
static const struct crab_config_route *match_route(const struct crab_config *cfg,
    const struct crab_event_fields *in, const char *tenant)
{
	for (size_t i = 0; i < cfg->nroutes; i++) {
		const struct crab_config_route *rt = &cfg->routes[i];
		if (key_matches(rt->platform, in->platform) &&
		    key_matches(rt->channel_id, in->channel_id) &&
		    key_matches(rt->actor_id, in->actor_id) && key_matches(rt->tenant, tenant) &&
		    (in->agent_id == NULL || strcmp(rt->agent, in->agent_id) == 0))
			return rt;
	}
	return NULL;
}

char *crab_router_join_key(const char *const *parts, size_t n)
{
	size_t cap = 1;
	char *out, *p;

	for (size_t i = 0; i < n; i++)
		cap += 3 * strlen(parts[i]) + 1;
	out = p = xmalloc(cap);
	for (size_t i = 0; i < n; i++) {
		for (const char *s = parts[i]; *s; s++) {
			if (*s == '%' || *s == '/')
				p += sprintf(p, "%%%02X", (unsigned char)*s);
			else
				*p++ = *s;
		}
		if (i + 1 < n)
			*p++ = '/';
	}
	*p = '\0';
	return out;
}

int crab_router_resolve(const struct crab_router *r, const struct crab_event_fields *in,
    struct crab_route *out, struct crab_error *err)
{
	const struct crab_config *cfg = r->cfg;
	const struct crab_config_route *rt;
	const char *tenant = in->tenant_id;
	const char *empty = "";

	memset(out, 0, sizeof(*out));
	if (tenant == NULL || strcmp(tenant, "*") == 0) {
		tenant = crab_router_tenant(r, in->platform, in->channel_id, in->actor_id);
		if (tenant == NULL && !cfg->router.refuse_unmapped)
			tenant = cfg->router.unmapped_tenant;
		if (tenant == NULL) {
			crab_error_set(err, "unknown_identity", "source.actor_id",
			    "actor '%.64s' on '%.32s' maps to no tenant", in->actor_id ? in->actor_id : "",
			    in->platform ? in->platform : "");
			return -1;
		}
	}
	rt = match_route(cfg, in, tenant);
	out->tenant_id = xstrdup(tenant);
	out->agent_id = xstrdup(in->agent_id ? in->agent_id : rt ? rt->agent : cfg->default_agent);
	if (rt != NULL && rt->isolation_key != NULL) {
		const struct crab_event_fields v = {
			.tenant_id = out->tenant_id, .agent_id = out->agent_id,
			.platform = in->platform, .channel_id = in->channel_id,
			.actor_id = in->actor_id, .thread_id = in->thread_id,
		};
		out->isolation_key = crab_template_expand(rt->isolation_key, &v, CRAB_TEMPLATE_TEXT);
	}
	{
		const char *rk[] = {out->tenant_id, out->agent_id, in->platform ? in->platform : empty,
			in->channel_id ? in->channel_id : empty, in->actor_id ? in->actor_id : empty};
		const char *mk[] = {out->tenant_id, out->agent_id,
			out->isolation_key ? out->isolation_key : "global"};
		out->runtime_key = crab_router_join_key(rk, CRAB_ARRAY_LEN(rk));
		out->memory_key = crab_router_join_key(mk, CRAB_ARRAY_LEN(mk));
	}
	return 0;
}

void crab_route_release(struct crab_route *rt)
{
	free(rt->tenant_id);
	free(rt->agent_id);
	free(rt->isolation_key);
	free(rt->runtime_key);
	free(rt->memory_key);
	memset(rt, 0, sizeof(*rt));
}
