/* test_router.c: templates, the string map, the histogram, the router (identity mapping,
 * routes, keys) and context composition, on a config loaded from YAML. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/context.h"
#include "core/hist.h"
#include "core/router.h"
#include "core/strmap.h"
#include "core/template.h"
#include "t/unit/unit.h"

static char dir[] = "/tmp/crab-test-router.XXXXXX";

static void write_file(const char *rel, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	if (f == NULL) {
		perror(path);
		exit(1);
	}
	fputs(text, f);
	fclose(f);
}

static void test_templates(void)
{
	const struct crab_event_fields v = {.tenant_id = "family", .agent_id = "assistant",
		.platform = "telegram", .channel_id = "-100", .actor_id = "../../etc/passwd"};
	char err[256];
	size_t at = 0;
	char *s;

	CHECK(crab_template_check("{platform}:{actor_id}", &at, err, sizeof(err)) == 0,
	    "a template of known fields is well formed");
	CHECK(crab_template_check("x{nope}", &at, err, sizeof(err)) == -1 && at == 1 &&
		strstr(err, "unknown field 'nope'") != NULL,
	    "an unknown field is refused at its offset");
	CHECK(crab_template_check("ab{platform", &at, err, sizeof(err)) == -1 && at == 2,
	    "an unclosed brace is refused at its offset");
	CHECK(crab_template_check("a}b", &at, err, sizeof(err)) == -1 && at == 1,
	    "a lone closing brace is refused");
	s = crab_template_expand("{{x}} {platform}:{actor_id}", &v, CRAB_TEMPLATE_TEXT);
	CHECK_STR(s, "{x} telegram:../../etc/passwd", "text expansion keeps values as they are");
	free(s);
	s = crab_template_expand("actors/{actor_id}.md", &v, CRAB_TEMPLATE_PATH);
	CHECK_STR(s, "actors/..%2F..%2Fetc%2Fpasswd.md",
	    "path expansion cannot climb out: '/' is escaped");
	free(s);
	{
		const struct crab_event_fields dots = {.actor_id = ".."}, empty = {.actor_id = ""};
		s = crab_template_expand("a/{actor_id}/b", &dots, CRAB_TEMPLATE_PATH);
		CHECK_STR(s, "a/%2E%2E/b", "'..' never becomes a path step");
		free(s);
		s = crab_template_expand("a/{actor_id}/b", &empty, CRAB_TEMPLATE_PATH);
		CHECK_STR(s, "a/%/b", "an empty value never joins its neighbours");
		free(s);
	}
}

static void test_strmap(void)
{
	struct crab_strmap *m = crab_strmap_new();
	char key[32];
	int ok = 1;

	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		crab_strmap_put(m, key, (void *)(i + 1));
	}
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		if (crab_strmap_get(m, key) != (void *)(i + 1))
			ok = 0;
	}
	CHECK(ok && crab_strmap_count(m) == 5000, "5,000 keys are found again after growing");
	CHECK(crab_strmap_put(m, "k7", (void *)99) == (void *)8 && crab_strmap_get(m, "k7") ==
		(void *)99, "put replaces and returns the old value");
	for (long i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%ld", i);
		crab_strmap_del(m, key);
	}
	CHECK(crab_strmap_count(m) == 0 && crab_strmap_any(m) == NULL &&
		crab_strmap_get(m, "k1") == NULL, "every key deleted: the map is empty");
	crab_strmap_free(m, NULL);
}

static void test_hist(void)
{
	struct crab_hist h = {0};
	int64_t p50, p99;

	for (int64_t v = 1; v <= 10000; v++)
		crab_hist_add(&h, v);
	p50 = crab_hist_percentile(&h, 50);
	p99 = crab_hist_percentile(&h, 99);
	CHECK(p50 >= 5000 * 94 / 100 && p50 <= 5000, "p50 of 1..10000 is within 6% below 5000");
	CHECK(p99 >= 9900 * 94 / 100 && p99 <= 9900, "p99 of 1..10000 is within 6% below 9900");
	CHECK(h.max == 10000 && h.count == 10000, "count and max are exact");
	CHECK(crab_hist_percentile(&(struct crab_hist){0}, 50) == 0, "an empty histogram says 0");
}

static struct crab_config *load_config(void)
{
	char path[512];
	struct crab_config *cfg;

	write_file("crab.yaml",
	    "models:\n  - id: echo\n    adapter: echo\n"
	    "agents:\n"
	    "  - id: assistant\n    model: echo\n"
	    "    context:\n"
	    "      global: ctx/global.md\n"
	    "      platform: ctx/{platform}.md\n"
	    "      channel: ctx/{platform}-{channel_id}.md\n"
	    "      actor: ctx/{tenant_id}/{actor_id}.md\n"
	    "  - id: support\n    model: echo\n"
	    "tenants:\n"
	    "  - id: family\n    identities:\n"
	    "      - platform: telegram\n        actors: [\"42\"]\n"
	    "      - platform: cli\n"
	    "  - id: acme\n    identities:\n"
	    "      - platform: telegram\n        channels: [\"-100\"]\n"
	    "routes:\n"
	    "  - match: {tenant: acme}\n    agent: support\n    isolation_key: \"{channel_id}\"\n"
	    "  - match: {platform: telegram}\n    agent: assistant\n"
	    "    isolation_key: \"{platform}:{actor_id}\"\n");
	snprintf(path, sizeof(path), "%s/crab.yaml", dir);
	cfg = crab_config_load(path, stderr);
	CHECK(cfg != NULL, "the test config loads");
	return cfg;
}

static void route(struct crab_router *r, const char *tenant, const char *platform,
    const char *channel, const char *actor, struct crab_route *out, struct crab_error *err,
    int *rc)
{
	const struct crab_event_fields in = {.tenant_id = tenant, .platform = platform,
		.channel_id = channel, .actor_id = actor};
	*rc = crab_router_resolve(r, &in, out, err);
}

static void test_router(struct crab_config *cfg)
{
	struct crab_router *r = crab_router_new(cfg);
	struct crab_route rt;
	struct crab_error err;
	int rc;

	route(r, "*", "telegram", "-100", "42", &rt, &err, &rc);
	CHECK(rc == 0 && strcmp(rt.tenant_id, "family") == 0,
	    "an actor mapping wins over a channel mapping");
	CHECK_STR(rt.agent_id, "assistant", "the first route matching the event picks the agent");
	CHECK_STR(rt.runtime_key, "family/assistant/telegram/-100/42",
	    "runtime key: tenant/agent/platform/channel/actor");
	CHECK_STR(rt.memory_key, "family/assistant/telegram:42",
	    "memory key: tenant/agent/isolation key");
	crab_route_release(&rt);

	route(r, "*", "telegram", "-100", "77", &rt, &err, &rc);
	CHECK(rc == 0 && strcmp(rt.tenant_id, "acme") == 0 && strcmp(rt.agent_id, "support") == 0,
	    "an unmapped actor in a mapped channel gets the channel's tenant and its route");
	CHECK_STR(rt.memory_key, "acme/support/-100", "the tenant's route sets the isolation key");
	crab_route_release(&rt);

	route(r, "*", "cli", "cli", "root/x", &rt, &err, &rc);
	CHECK(rc == 0 && strcmp(rt.tenant_id, "family") == 0,
	    "a whole-platform identity maps every actor of it");
	CHECK_STR(rt.agent_id, "assistant", "no route matches: the default agent");
	CHECK_STR(rt.memory_key, "family/assistant/global", "no isolation key: global memory");
	CHECK_STR(rt.runtime_key, "family/assistant/cli/cli/root%2Fx",
	    "a '/' inside a part is escaped, so keys never collide");
	crab_route_release(&rt);

	route(r, "*", "discord", "1", "2", &rt, &err, &rc);
	CHECK(rc == -1 && strcmp(err.code, "unknown_identity") == 0,
	    "an actor mapped nowhere is refused with unknown_identity");

	route(r, "acme", "discord", "1", "2", &rt, &err, &rc);
	CHECK(rc == 0 && strcmp(rt.tenant_id, "acme") == 0,
	    "a tenant fixed by the producer is kept, mapped or not");
	crab_route_release(&rt);

	cfg->router.refuse_unmapped = 0;
	cfg->router.unmapped_tenant = strdup("family");
	route(r, "*", "discord", "1", "2", &rt, &err, &rc);
	CHECK(rc == 0 && strcmp(rt.tenant_id, "family") == 0,
	    "with unmapped_actors: route, the unmapped actor gets the configured tenant");
	crab_route_release(&rt);
	cfg->router.refuse_unmapped = 1;
	free(cfg->router.unmapped_tenant);
	cfg->router.unmapped_tenant = NULL;
	crab_router_free(r);
}

static void test_context(struct crab_config *cfg)
{
	struct crab_context *c = crab_context_new(cfg);
	const struct crab_config_agent *a = crab_config_agent_find(cfg, "assistant");
	const struct crab_event_fields v = {.tenant_id = "family", .agent_id = "assistant",
		.platform = "telegram", .channel_id = "-100", .actor_id = "42"};
	char path[512];
	char *s;

	snprintf(path, sizeof(path), "%s/ctx", dir);
	if (mkdir(path, 0700) != 0) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/ctx/family", dir);
	mkdir(path, 0700);
	write_file("ctx/global.md", "GLOBAL\n");
	write_file("ctx/telegram-.100.md", "wrong file\n");
	write_file("ctx/telegram--100.md", "CHANNEL\n");
	write_file("ctx/family/42.md", "ACTOR 42\n\n");
	s = crab_context_compose(c, a, &v, "RUNTIME");
	CHECK_STR(s, "GLOBAL\n\nCHANNEL\n\nACTOR 42\n\nRUNTIME",
	    "layers in order global, (missing platform skipped), channel, actor, runtime");
	free(s);
	CHECK_INT(crab_context_reads(c), 3, "three files read");
	s = crab_context_compose(c, a, &v, NULL);
	free(s);
	CHECK_INT(crab_context_reads(c), 3, "unchanged files are not read again");
	write_file("ctx/family/42.md", "ACTOR 42, edited\n");
	s = crab_context_compose(c, a, &v, NULL);
	CHECK_STR(s, "GLOBAL\n\nCHANNEL\n\nACTOR 42, edited", "an edited file is read again");
	CHECK_INT(crab_context_reads(c), 4, "only the edited file is read again");
	free(s);
	crab_context_free(c);
}

int main(void)
{
	struct crab_config *cfg;

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	test_templates();
	test_strmap();
	test_hist();
	cfg = load_config();
	if (cfg != NULL) {
		test_router(cfg);
		test_context(cfg);
		crab_config_free(cfg);
	}
	{
		char cmd[600];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", dir);
	}
	return unit_done();
}
