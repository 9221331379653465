/* test_config_policy.c: the configuration seen as JSON (core/config_view.h): the keyed
 * view and its way back to YAML, the diff, secrets, the agents' policy check, what
 * config.get shows, what needs a restart, and the loader's refusal of inline secrets
 * and bad policies. */
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/config_view.h"
#include "core/jsonpatch.h"
#include "t/unit/unit.h"

static const char base_yaml[] =
	"# the operator's comment\n"
	"gateway:\n  listen: \"127.0.0.1:0\"\n  data_dir: data\n"
	"models:\n"
	"  - {id: echo, adapter: echo}\n"
	"  - id: gpt\n    adapter: openai\n    model: gpt-4o-mini\n"
	"    base_url: https://api.example.com/v1\n    api_key_env: OPENAI_API_KEY\n"
	"    temperature: 0.5\n"
	"    extra: {}\n"
	"    words: [\"yes\", \"null\", \"true\", \"0x1F\", \"1e3\", \"a: b\", \"#x\", \"\", "
	"\"multi\\nline\", \"tab\\there\", \"\u00fcn\u00ef\", \"- x\", \"[y]\", \"~\", 12, -3, true]\n"
	"agents:\n"
	"  - id: assistant\n    model: echo\n    max_tokens: 100\n"
	"    context: {global: \"ctx/{agent_id}.md\"}\n"
	"    config_policy:\n      tools: [config.get, config.apply]\n"
	"  - id: my.agent\n    model: echo\n"
	"  - id: my\n    model: echo\n"
	"tenants:\n"
	"  - id: family\n    identities:\n      - {platform: telegram, actors: [\"42\", \"-7\"]}\n"
	"routes:\n"
	"  - match: {platform: telegram, channel_id: \"-100\"}\n    agent: assistant\n"
	"    isolation_key: \"{platform}:{actor_id}\"\n"
	"  - match: {platform: cli}\n    agent: my.agent\n"
	"log: {level: info}\n"
	"limits: {rate_per_second: 10, rate_burst: 20}\n"
	"subscribers: []\n";

static json_t *view(const char *yaml)
{
	char err[256];
	json_t *v = crab_config_view(yaml, strlen(yaml), err, sizeof(err));

	if (v == NULL)
		printf("#   view: %s\n", err);
	return v;
}

static json_t *patched(const json_t *before, const char *patch_text)
{
	json_t *patch = json_loads(patch_text, 0, NULL), *out;

	out = crab_merge_patch(before, patch);
	json_decref(patch);
	return out;
}

/* policy: 0 or -1, the message into msg */
static int policy(const json_t *before, const char *patch_text, const char *allowed, char *msg,
    size_t len)
{
	json_t *after = patched(before, patch_text);
	char *paths[4];
	size_t n = 0;
	char *copy = strdup(allowed), *save = NULL;
	int rc;

	for (char *p = strtok_r(copy, ",", &save); p != NULL && n < 4; p = strtok_r(NULL, ",", &save))
		paths[n++] = p;
	msg[0] = '\0';
	rc = crab_config_policy_check(before, after, paths, n, msg, len);
	json_decref(after);
	free(copy);
	return rc;
}

static void test_views(void)
{
	json_t *keyed = view(base_yaml), *plain, *again;
	char err[256], *yaml;
	size_t len;

	CHECK(keyed != NULL, "the keyed view of a config");
	CHECK(json_is_object(json_object_get(keyed, "agents")) &&
	    json_integer_value(json_object_get(json_object_get(json_object_get(keyed, "agents"),
		"assistant"), "max_tokens")) == 100, "agents are keyed by id");
	CHECK(json_object_get(json_object_get(json_object_get(keyed, "agents"), "assistant"),
	    "id") == NULL, "the id member is left out of a keyed entry");
	CHECK(json_object_get(json_object_get(keyed, "models"), "gpt") != NULL &&
	    json_object_get(json_object_get(keyed, "tenants"), "family") != NULL,
	    "models and tenants are keyed too");
	CHECK(json_is_array(json_object_get(keyed, "routes")) &&
	    json_is_array(json_object_get(keyed, "subscribers")), "other lists stay lists");
	{
		const char *k;
		json_t *v;
		const char *order[] = {"assistant", "my.agent", "my"};
		size_t i = 0;
		int ok = 1;
		json_object_foreach(json_object_get(keyed, "agents"), k, v)
			ok = ok && i < 3 && strcmp(k, order[i++]) == 0;
		CHECK(ok && i == 3, "keyed entries keep the file's order");
	}

	plain = crab_config_view_unkeyed(keyed, err, sizeof(err));
	CHECK(plain != NULL && json_is_array(json_object_get(plain, "agents")) &&
	    strcmp(json_string_value(json_object_get(json_array_get(json_object_get(plain,
		"agents"), 1), "id")), "my.agent") == 0, "unkeyed: back into lists, id first");
	yaml = crab_config_yaml_emit(plain, &len);
	CHECK(yaml != NULL && len == strlen(yaml), "the plain view is emitted as YAML");
	again = view(yaml);
	if (!CHECK(again != NULL && json_equal(again, keyed),
		"YAML -> keyed -> YAML -> keyed is the same view (quoting, nesting, order)"))
		printf("#   emitted:\n%s\n", yaml);
	CHECK(strstr(yaml, "the operator's comment") == NULL, "comments are not in the view");
	{
		const char *file = "/nonexistent/crab.yaml"; /* parsing reads no file */
		struct crab_config *a, *b;

		a = crab_config_parse(file, base_yaml, strlen(base_yaml), stderr, NULL);
		b = crab_config_parse(file, yaml, len, stderr, NULL);
		CHECK(a != NULL && b != NULL, "the original and the emitted YAML both load");
		CHECK(a && b && crab_config_restart_needed(a, b, err, sizeof(err)) == 0 &&
		    a->nagents == b->nagents && a->agents[0].max_tokens == b->agents[0].max_tokens &&
		    strcmp(a->routes[0].isolation_key, b->routes[0].isolation_key) == 0 &&
		    strcmp(a->tenants[0].identities[0].actors[1], "-7") == 0 &&
		    strcmp(b->tenants[0].identities[0].actors[1], "-7") == 0 &&
		    json_equal(a->models[1].config, b->models[1].config),
		    "and load to the same settings");
		crab_config_unref(a);
		crab_config_unref(b);
	}
	free(yaml);
	json_decref(again);

	/* a keyed entry that is no mapping, an id that is not its key */
	{
		json_t *bad = patched(keyed, "{\"agents\":{\"x\":5}}");
		json_t *out = crab_config_view_unkeyed(bad, err, sizeof(err));
		CHECK(out == NULL && strstr(err, "agents.x") != NULL,
		    "unkeyed refuses an entry that is no mapping");
		json_decref(bad);
		bad = patched(keyed, "{\"agents\":{\"x\":{\"id\":\"y\",\"model\":\"echo\"}}}");
		out = crab_config_view_unkeyed(bad, err, sizeof(err));
		CHECK(out == NULL && strstr(err, "agents.x.id") != NULL,
		    "unkeyed refuses an id that differs from its key");
		json_decref(bad);
	}
	CHECK(view("a: [\n") == NULL, "a view of what is no YAML is refused");
	CHECK(view("- a\n- b\n") == NULL, "a view of a list is refused");
	json_decref(plain);
	json_decref(keyed);
}

static void test_diff(void)
{
	json_t *before = view(base_yaml), *after, *paths;
	char *summary;

	after = patched(before, "{\"agents\":{\"assistant\":{\"max_tokens\":5},"
	    "\"helper\":{\"model\":\"echo\",\"history\":{\"max_turns\":3}}},\"routes\":[],"
	    "\"log\":null}");
	paths = crab_config_diff_text(before, after);
	summary = crab_config_diff_summary("revert to 3: ", paths, 1000);
	CHECK_STR(summary, "revert to 3: agents.assistant.max_tokens, agents.helper, routes, log",
	    "diff paths: changed, added, a list, removed");
	free(summary);
	json_decref(paths);
	paths = crab_config_diff(before, after, 1);
	CHECK_INT(json_array_size(paths), 5, "with leaves: every leaf under what was added or "
	    "removed");
	json_decref(paths);
	paths = crab_config_diff_text(before, before);
	summary = crab_config_diff_summary(NULL, paths, 1000);
	CHECK(json_array_size(paths) == 0 && strstr(summary, "no change") != NULL,
	    "no change: no path");
	free(summary);
	json_decref(paths);
	paths = json_pack("[s,s,s,s]", "a.long.path.one", "a.long.path.two", "three", "four");
	summary = crab_config_diff_summary(NULL, paths, 20);
	CHECK_STR(summary, "a.long.path.one and 3 more", "the summary is bounded");
	free(summary);
	json_decref(paths);
	json_decref(after);
	json_decref(before);
}

static void test_secrets(void)
{
	json_t *v = json_pack("{s:{s:{s:s, s:s}}, s:[{s:s}]}", "models", "gpt", "api_key_env",
	    "X", "base_url", "u", "routes", "isolation_key", "{actor_id}");
	char path[256];

	CHECK(crab_config_secret_key("api_key") && crab_config_secret_key("token") &&
	    crab_config_secret_key("secret") && crab_config_secret_key("password") &&
	    crab_config_secret_key("client_secret") && crab_config_secret_key("bot_token") &&
	    crab_config_secret_key("signing_secret") && crab_config_secret_key("db_password") &&
	    crab_config_secret_key("private_key") && crab_config_secret_key("API_KEY") &&
	    crab_config_secret_key("Authorization"), "secret keys are recognised");
	CHECK(!crab_config_secret_key("api_key_env") && !crab_config_secret_key("api_key_file") &&
	    !crab_config_secret_key("isolation_key") && !crab_config_secret_key("max_tokens") &&
	    !crab_config_secret_key("keys") && !crab_config_secret_key("monkey"),
	    "references, isolation_key and look-alikes are not secrets");
	CHECK(crab_config_secret_ref("api_key_env") && crab_config_secret_ref("dsn_file") &&
	    !crab_config_secret_ref("model"), "secret references are recognised");
	CHECK(crab_config_find_secret(v, path, sizeof(path)) == 0,
	    "a config naming its secrets holds none");
	json_object_set_new(json_object_get(json_object_get(v, "models"), "gpt"), "api_key",
	    json_string("sk-live-1234"));
	CHECK(crab_config_find_secret(v, path, sizeof(path)) == 1 &&
	    strcmp(path, "models.gpt.api_key") == 0, "an inline secret is found, by path");
	json_array_append_new(json_object_get(v, "routes"), json_pack("{s:{s:s}}", "headers",
	    "authorization", "Bearer x"));
	json_object_del(json_object_get(json_object_get(v, "models"), "gpt"), "api_key");
	CHECK(crab_config_find_secret(v, path, sizeof(path)) == 1 &&
	    strcmp(path, "routes.1.headers.authorization") == 0, "inside lists too");
	crab_config_redact(v, 1);
	{
		char *text = json_dumps(v, JSON_COMPACT);
		CHECK(strstr(text, "Bearer") == NULL && strstr(text, "\"X\"") == NULL &&
		    strstr(text, "{actor_id}") != NULL, "redacted: secrets and references, not the rest");
		free(text);
	}
	json_decref(v);
}

static void test_policy(void)
{
	json_t *before = view(base_yaml);
	char msg[512];

	CHECK(policy(before, "{\"agents\":{\"assistant\":{\"max_tokens\":7}}}",
	    "agents.assistant", msg, sizeof(msg)) == 0, "an agent may change its own section");
	CHECK(policy(before, "{\"agents\":{\"assistant\":{\"history\":{\"max_turns\":3},"
	    "\"context\":null}}}", "agents.assistant", msg, sizeof(msg)) == 0,
	    "add and delete inside it");
	CHECK(policy(before, "{\"agents\":{\"assistant\":{\"max_tokens\":7}}}", "agents.my",
	    msg, sizeof(msg)) == -1 && strstr(msg, "agents.assistant.max_tokens") != NULL &&
	    strstr(msg, "outside") != NULL, "not another agent's section, named in the refusal");
	CHECK(policy(before, "{\"agents\":{\"my.agent\":{\"max_tokens\":7}}}", "agents.my",
	    msg, sizeof(msg)) == -1, "a dot in an id: agents.my does not open agents.my.agent");
	CHECK(policy(before, "{\"agents\":{\"my.agent\":{\"max_tokens\":7}}}", "agents.my.agent",
	    msg, sizeof(msg)) == 0, "agents.my.agent opens it");
	CHECK(policy(before, "{\"routes\":[]}", "agents.assistant", msg, sizeof(msg)) == -1 &&
	    strstr(msg, "'routes'") != NULL, "routes are not its own section");
	CHECK(policy(before, "{\"routes\":[]}", "agents.assistant,routes", msg, sizeof(msg)) == 0,
	    "unless the policy opens them");
	CHECK(policy(before, "{\"agents\":{\"assistant\":{\"max_tokens\":7}},\"log\":{\"level\":"
	    "\"debug\"}}", "agents.assistant", msg, sizeof(msg)) == -1 &&
	    strstr(msg, "log.level") != NULL, "one path outside refuses the whole change");
	CHECK(policy(before, "{\"agents\":null}", "agents.assistant", msg, sizeof(msg)) == -1,
	    "replacing the whole agents section is more than its own section");
	CHECK(policy(before, "{\"tenants\":{\"family\":{\"identities\":[]}}}",
	    "agents.assistant,tenants", msg, sizeof(msg)) == -1 && strstr(msg, "tenants") != NULL &&
	    strstr(msg, "no agent may") != NULL, "tenants: never, whatever the policy says");
	CHECK(policy(before, "{\"router\":{\"unmapped_actors\":\"route\"}}", "router", msg,
	    sizeof(msg)) == -1, "the router's identity settings: never");
	CHECK(policy(before, "{\"gateway\":{\"listen\":\"0.0.0.0:1\"}}", "gateway", msg,
	    sizeof(msg)) == -1, "gateway: never");
	CHECK(policy(before, "{\"store\":{\"driver\":\"postgres\"}}", "store", msg,
	    sizeof(msg)) == -1, "store: never");
	CHECK(policy(before, "{\"modules\":{\"load\":[\"x.so\"]}}", "modules", msg,
	    sizeof(msg)) == -1, "modules: never");
	CHECK(policy(before, "{\"subscribers\":[{\"component\":\"x\"}]}", "subscribers", msg,
	    sizeof(msg)) == -1, "subscribers (peers): never");
	CHECK(policy(before, "{\"peers\":{}}", "peers", msg, sizeof(msg)) == -1, "peers: never");
	CHECK(policy(before, "{\"agents\":{\"assistant\":{\"config_policy\":{\"paths\":"
	    "[\"routes\"]}}}}", "agents.assistant", msg, sizeof(msg)) == -1 &&
	    strstr(msg, "config_policy") != NULL, "its own config_policy: never (no widening)");
	CHECK(policy(before, "{\"agents\":{\"assistant\":{\"config_policy\":null}}}",
	    "agents.assistant", msg, sizeof(msg)) == -1, "nor deleting it");
	CHECK(policy(before, "{\"agents\":{\"assistant\":null}}", "agents", msg, sizeof(msg)) == -1,
	    "nor deleting an agent that has one");
	CHECK(policy(before, "{\"agents\":{\"new\":{\"model\":\"echo\",\"config_policy\":{"
	    "\"tools\":[\"config.apply\"]}}}}", "agents", msg, sizeof(msg)) == -1,
	    "nor creating an agent with one");
	CHECK(policy(before, "{\"agents\":{\"new\":{\"model\":\"echo\"}}}", "agents", msg,
	    sizeof(msg)) == 0, "an agent without one may be created where agents is open");
	CHECK(policy(before, "{\"models\":{\"gpt\":{\"api_key_env\":\"OTHER\"}}}", "models",
	    msg, sizeof(msg)) == -1 && strstr(msg, "secret") != NULL,
	    "secret references: never (api_key_env)");
	CHECK(policy(before, "{\"models\":{\"gpt\":{\"api_key_file\":\"/etc/passwd\"}}}",
	    "models", msg, sizeof(msg)) == -1, "secret references: never (*_file)");
	CHECK(policy(before, "{\"models\":{\"gpt\":{\"api_key\":\"sk-1\"}}}", "models", msg,
	    sizeof(msg)) == -1 && strstr(msg, "sk-1") == NULL,
	    "inline secrets: never, and the refusal does not repeat the value");
	CHECK(policy(before, "{\"models\":{\"gpt\":null}}", "models", msg, sizeof(msg)) == -1,
	    "nor removing an entry that names a secret");
	CHECK(policy(before, "{\"routes\":[{\"agent\":\"x\",\"headers\":{\"token\":\"t\"}}]}",
	    "routes", msg, sizeof(msg)) == -1, "nor a secret inside a list");
	CHECK(policy(before, "{\"models\":{\"gpt\":{\"temperature\":\"0.7\"}}}", "models.gpt",
	    msg, sizeof(msg)) == 0, "a model's other keys, where models.gpt is open");
	CHECK(policy(before, "{}", "", msg, sizeof(msg)) == 0, "an empty patch changes nothing");
	json_decref(before);
}

static void test_select(void)
{
	json_t *keyed = view(base_yaml), *sel;
	char p0[] = "agents.assistant", p1[] = "models.gpt", p2[] = "tenants", p3[] = "agents.x";
	char *paths[] = {p0, p1, p2, p3};
	char *text;

	sel = crab_config_view_select(keyed, paths, 4);
	text = json_dumps(sel, JSON_COMPACT | JSON_SORT_KEYS);
	CHECK(json_object_get(json_object_get(sel, "agents"), "assistant") != NULL &&
	    json_object_size(json_object_get(sel, "agents")) == 1,
	    "config.get: the agent's section only");
	CHECK(json_object_get(sel, "tenants") == NULL && json_object_get(sel, "routes") == NULL,
	    "never tenants, whatever the policy; nothing not asked for");
	CHECK(strstr(text, "OPENAI_API_KEY") == NULL && strstr(text, "\"***\"") != NULL &&
	    strstr(text, "gpt-4o-mini") != NULL, "secret references redacted, the rest shown");
	free(text);
	json_decref(sel);
	{
		char d0[] = "agents.my.agent";
		char *dotted[] = {d0};
		sel = crab_config_view_select(keyed, dotted, 1);
		CHECK(json_object_get(json_object_get(sel, "agents"), "my.agent") != NULL &&
		    json_object_get(json_object_get(sel, "agents"), "my") == NULL,
		    "a dotted id is one key");
		json_decref(sel);
	}
	CHECK(crab_config_path_valid("agents.assistant") && !crab_config_path_valid("") &&
	    !crab_config_path_valid(".a") && !crab_config_path_valid("a..b") &&
	    !crab_config_path_valid("a."), "path syntax");
	json_decref(keyed);
}

static struct crab_config *load(const char *yaml, char *errs, size_t len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	struct crab_config *cfg = crab_config_parse("/nonexistent/crab.yaml", yaml, strlen(yaml),
	    f, NULL);

	fclose(f);
	snprintf(errs, len, "%s", buf ? buf : "");
	free(buf);
	return cfg;
}

static void test_loader(void)
{
	char errs[2048], path[256];
	struct crab_config *a, *b;
	static const char minimal[] = "models:\n  - {id: echo, adapter: echo}\n"
				      "agents:\n  - id: assistant\n    model: echo\n";
	char text[4096];

	a = load(base_yaml, errs, sizeof(errs));
	CHECK(a != NULL && a->agents[0].npolicy_tools == 2 && a->agents[1].npolicy_tools == 0,
	    "config_policy is read");
	{
		char **p;
		size_t n = crab_config_policy_paths(&a->agents[0], &p);
		CHECK(n == 1 && strcmp(p[0], "agents.assistant") == 0,
		    "default policy paths: the agent's own section");
		crab_config_policy_paths_free(p, n);
	}
	snprintf(text, sizeof(text), "%s    token: \"123\"\n", minimal);
	b = load(text, errs, sizeof(errs));
	CHECK(b == NULL && strstr(errs, "holds a secret written inline") != NULL &&
	    strstr(errs, "123") == NULL, "the loader refuses an inline secret, at its place, "
	    "without its value");
	CHECK(strstr(errs, "crab.yaml:6:13:") != NULL, "... with its line and column");
	snprintf(text, sizeof(text), "%s    config_policy: {tools: [config.destroy], "
	    "paths: [\"a..b\"]}\n", minimal);
	b = load(text, errs, sizeof(errs));
	CHECK(b == NULL && strstr(errs, "config.destroy") != NULL && strstr(errs, "a..b") != NULL,
	    "unknown policy tools and bad paths are refused");
	snprintf(text, sizeof(text), "%sconfig:\n  smoke_test:\n    model_ping: nope\n"
	    "    route: {actor_id: x}\n", minimal);
	b = load(text, errs, sizeof(errs));
	CHECK(b == NULL && strstr(errs, "no model named 'nope'") != NULL &&
	    strstr(errs, "needs a 'platform'") != NULL, "smoke_test is checked");
	snprintf(text, sizeof(text), "%sconfig:\n  smoke_test:\n    model_ping: echo\n"
	    "    route: {platform: cli, actor_id: x}\n", minimal);
	b = load(text, errs, sizeof(errs));
	CHECK(b != NULL && strcmp(b->smoke_test.model_ping, "echo") == 0 && b->smoke_test.route &&
	    strcmp(b->smoke_test.route_platform, "cli") == 0, "smoke_test is read");
	crab_config_unref(b);

	/* refcounts */
	b = crab_config_ref(a);
	crab_config_unref(a);
	CHECK(b->nagents == 3, "a reference keeps the config alive");

	/* what needs a restart */
	{
		static const struct {
			const char *from, *to, *path;
		} cases[] = {
			{"max_tokens: 100", "max_tokens: 101", NULL},
			{"model: gpt-4o-mini", "model: gpt-4o", NULL},
			{"listen: \"127.0.0.1:0\"", "listen: \"127.0.0.1:1\"", "gateway.listen"},
			{"data_dir: data", "data_dir: other", "gateway.data_dir"},
			{"base_url: https://api.example.com/v1", "base_url: https://b/v1", "models.gpt"},
			{"adapter: openai", "adapter: echo", "models.gpt"},
			{"  - {id: echo, adapter: echo}\n", "  - {id: echo, adapter: echo}\n"
			    "  - {id: echo2, adapter: echo}\n", "models.echo2"},
			{"log: {level: info}", "log: {level: debug}", NULL},
			{"limits: {rate_per_second: 10,", "limits: {rate_per_second: 11,", NULL},
			{"log: {level: info}", "log: {level: info}\nturns: {queue_max: 100}",
			    "turns.queue_max"},
			{"log: {level: info}", "log: {level: info}\nstore: {path: x.db}", "store.path"},
			{"log: {level: info}", "log: {level: info}\nmodules: {load: [x.so]}",
			    "modules.load"},
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			const char *at = strstr(base_yaml, cases[i].from);
			char what[160];
			int rc;

			snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - base_yaml), base_yaml,
			    cases[i].to, at + strlen(cases[i].from));
			a = load(text, errs, sizeof(errs));
			path[0] = '\0';
			rc = a ? crab_config_restart_needed(b, a, path, sizeof(path)) : -1;
			snprintf(what, sizeof(what), "change %zu needs a restart: %s", i + 1,
			    cases[i].path ? cases[i].path : "no");
			if (!CHECK(cases[i].path ? rc == 1 && strcmp(path, cases[i].path) == 0 : rc == 0,
				what))
				printf("#   rc %d, path '%s', errors: %s\n", rc, path, errs);
			crab_config_unref(a);
		}
	}
	crab_config_unref(b);
}

int main(void)
{
	test_views();
	test_diff();
	test_secrets();
	test_policy();
	test_select();
	test_loader();
	return unit_done();
}
