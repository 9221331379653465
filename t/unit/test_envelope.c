/* test_envelope.c: validation of the canonical envelope, one fault at a time. */
#include <string.h>

#include "core/envelope.h"
#include "t/unit/unit.h"

static struct crab_error err;

static int parse(const char *json, struct crab_envelope *env)
{
	memset(&err, 0, sizeof(err));
	return crab_envelope_parse(json, strlen(json), env, &err);
}

/* The body must be refused with this code and field. */
static void refused(const char *json, const char *code, const char *field, const char *what)
{
	struct crab_envelope env;
	int rc = parse(json, &env);

	CHECK(rc == -1 && err.code != NULL && strcmp(err.code, code) == 0 &&
	    strcmp(err.field, field) == 0, what);
	if (rc == 0) {
		printf("#   accepted\n");
		crab_envelope_release(&env);
	} else if (strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0) {
		printf("#   got %s field '%s': %s\n", err.code, err.field, err.message);
	}
}

#define SRC "\"source\":{\"platform\":\"telegram\",\"channel_id\":\"-100\",\"actor_id\":\"42\""

static void test_valid(void)
{
	struct crab_envelope env;

	CHECK(parse("{\"type\":\"channel.message.received\"," SRC ",\"message_id\":\"981\"},"
		    "\"text\":\"hi\"}", &env) == 0, "a minimal chat message is valid");
	CHECK_STR(env.idempotency_key, "telegram:-100:981",
	    "the default key is platform:channel_id:message_id");
	CHECK_STR(env.platform, "telegram", "the platform is read");
	CHECK_INT(env.session_mode, CRAB_SESSION_CURRENT, "no session_id means the current session");
	crab_envelope_release(&env);

	CHECK(parse("{\"type\":\"channel.message.received\"," SRC "},\"text\":\"hi\","
		    "\"idempotency_key\":\"k1\",\"session_id\":\"new\"}", &env) == 0,
	    "an explicit key and a new session are valid");
	CHECK_STR(env.idempotency_key, "k1", "an explicit key wins");
	CHECK_INT(env.session_mode, CRAB_SESSION_NEW, "\"new\" asks for a fresh session");
	crab_envelope_release(&env);

	CHECK(parse("{\"type\":\"channel.message.received\"," SRC "},"
		    "\"attachments\":[{\"kind\":\"image\",\"mime\":\"image/png\"}],"
		    "\"occurred_at\":\"2026-11-24T10:00:00Z\",\"target\":{\"platform\":\"telegram\","
		    "\"channel_id\":\"-100\"},\"metadata\":{\"a\":1},\"session_id\":\"ses_X\"}",
		&env) == 0, "attachments alone, a target, metadata and a session id are valid");
	CHECK(env.idempotency_key == NULL, "without a message id the caller picks the key");
	CHECK_STR(env.session_id, "ses_X", "a given session id is kept");
	crab_envelope_release(&env);

	CHECK(parse("{\"type\":\"cron.job.fired\",\"tenant_id\":\"family\",\"agent_id\":\"a\","
		    "\"text\":\"check\"}", &env) == 0 && env.internal,
	    "cron.job.fired is an internal event");
	crab_envelope_release(&env);
}

static void test_refused(void)
{
	refused("{bad", "invalid_json", "", "malformed JSON is invalid_json");
	refused("{\"type\":\"channel.message.received\",\"text\":\"\xff\"}", "invalid_json", "",
	    "invalid UTF-8 is invalid_json");
	refused("{\"type\":\"a\",\"type\":\"b\"}", "invalid_json", "", "duplicate keys are refused");
	refused("[1,2]", "invalid_envelope", "", "an array is not an envelope");
	refused("\"hello\"", "invalid_envelope", "", "a JSON string is not an envelope");
	refused("{\"text\":\"hi\"}", "invalid_envelope", "type", "type is required");
	refused("{\"type\":7}", "invalid_envelope", "type", "type must be a string");
	refused("{\"type\":\"x.unknown\"}", "unknown_event_type", "type", "unknown types are refused");
	refused("{\"type\":\"channel.message.received\",\"text\":\"hi\"}", "invalid_envelope",
	    "source", "source is required");
	refused("{\"type\":\"channel.message.received\",\"source\":[],\"text\":\"hi\"}",
	    "invalid_envelope", "source", "source must be an object");
	refused("{\"type\":\"channel.message.received\",\"source\":{\"channel_id\":\"1\","
		"\"actor_id\":\"2\"},\"text\":\"hi\"}", "invalid_envelope", "source.platform",
	    "source.platform is required");
	refused("{\"type\":\"channel.message.received\",\"source\":{\"platform\":\"t\","
		"\"channel_id\":1,\"actor_id\":\"2\"},\"text\":\"hi\"}", "invalid_envelope",
	    "source.channel_id", "a numeric channel id is the wrong type");
	refused("{\"type\":\"channel.message.received\"," SRC "}}", "invalid_envelope", "text",
	    "text or attachments is required");
	refused("{\"type\":\"channel.message.received\"," SRC "},\"text\":5}", "invalid_envelope",
	    "text", "text must be a string");
	refused("{\"type\":\"channel.message.received\"," SRC "},\"text\":\"hi\","
		"\"occurred_at\":\"yesterday\"}", "invalid_envelope", "occurred_at",
	    "occurred_at must be RFC 3339");
	refused("{\"type\":\"channel.message.received\"," SRC "},\"text\":\"hi\",\"metadata\":[]}",
	    "invalid_envelope", "metadata", "metadata must be an object");
	refused("{\"type\":\"channel.message.received\"," SRC "},\"attachments\":[{\"mime\":\"x\"}]}",
	    "invalid_envelope", "attachments[0].kind", "an attachment needs its kind");
	refused("{\"type\":\"channel.message.received\"," SRC "},\"text\":\"hi\",\"target\":{}}",
	    "invalid_envelope", "target.platform", "a target needs its platform");
	refused("{\"type\":\"channel.message.received\"," SRC "},\"text\":\"hi\",\"session_id\":3}",
	    "invalid_envelope", "session_id", "session_id must be a string");
	refused("{\"type\":\"cron.job.fired\",\"agent_id\":\"a\",\"text\":\"x\"}", "invalid_envelope",
	    "tenant_id", "cron.job.fired names its tenant");
}

static void test_limits(void)
{
	char big[700], deep[200];
	char json[1024];
	int i;

	memset(big, 'k', 600);
	big[600] = '\0';
	snprintf(json, sizeof(json), "{\"type\":\"channel.message.received\"," SRC "},"
	    "\"text\":\"hi\",\"idempotency_key\":\"%s\"}", big);
	refused(json, "invalid_envelope", "idempotency_key", "a key over 512 bytes is refused");

	for (i = 0; i < 40; i++)
		deep[i] = '[';
	for (; i < 80; i++)
		deep[i] = ']';
	deep[80] = '\0';
	snprintf(json, sizeof(json), "{\"type\":\"channel.message.received\"," SRC "},"
	    "\"text\":\"hi\",\"metadata\":{\"x\":%s}}", deep);
	refused(json, "invalid_envelope", "", "nesting deeper than 32 levels is refused");
}

int main(void)
{
	test_valid();
	test_refused();
	test_limits();
	return unit_done();
}
