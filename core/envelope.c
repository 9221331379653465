/* envelope.c: validation of the canonical envelope. Every field is checked for type and
 * size before anything is stored, and the first fault is reported with its field path. */
#include "envelope.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "util.h"

#define JSON_MAX_DEPTH 32

enum str_rule { STR_OPTIONAL, STR_REQUIRED };

static int depth_ok(json_t *j, int depth)
{
	size_t i;
	const char *k;
	json_t *v;

	if (depth > JSON_MAX_DEPTH)
		return 0;
	if (json_is_object(j)) {
		json_object_foreach(j, k, v) {
			if (!depth_ok(v, depth + 1))
				return 0;
		}
	} else if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			if (!depth_ok(v, depth + 1))
				return 0;
		}
	}
	return 1;
}

/* A string member of obj: absent or null is fine unless required; a present value must be
 * a string of 1..max bytes. *out gets the string or NULL. */
static int get_string(json_t *obj, const char *name, const char *path, enum str_rule rule,
    size_t max, const char **out, struct crab_error *err)
{
	json_t *v = json_object_get(obj, name);
	size_t len;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (rule == STR_REQUIRED) {
			crab_error_set(err, "invalid_envelope", path, "'%s' is required", path);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		crab_error_set(err, "invalid_envelope", path, "'%s' must be a string", path);
		return -1;
	}
	len = json_string_length(v);
	if (len == 0 || len > max) {
		crab_error_set(err, "invalid_envelope", path,
		    "'%s' must be 1 to %zu bytes long", path, max);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* An optional member that, when present and not null, must be of the given JSON type. */
static int check_type(json_t *obj, const char *name, const char *path, json_type type,
    const char *type_name, struct crab_error *err)
{
	json_t *v = json_object_get(obj, name);
	if (v == NULL || json_is_null(v) || json_typeof(v) == type)
		return 0;
	crab_error_set(err, "invalid_envelope", path, "'%s' must be %s", path, type_name);
	return -1;
}

static int check_target(json_t *env, struct crab_error *err)
{
	json_t *t = json_object_get(env, "target");
	const char *s;

	if (check_type(env, "target", "target", JSON_OBJECT, "an object", err) != 0)
		return -1;
	if (t == NULL || json_is_null(t))
		return 0;
	if (get_string(t, "platform", "target.platform", STR_REQUIRED, CRAB_ENVELOPE_ID_MAX,
		&s, err) != 0 ||
	    get_string(t, "channel_id", "target.channel_id", STR_REQUIRED,
		CRAB_ENVELOPE_ID_MAX, &s, err) != 0 ||
	    get_string(t, "thread_id", "target.thread_id", STR_OPTIONAL, CRAB_ENVELOPE_ID_MAX,
		&s, err) != 0)
		return -1;
	return 0;
}

static int check_attachments(json_t *env, struct crab_error *err)
{
	static const char *fields[] = {"mime", "url", "name"};
	json_t *list = json_object_get(env, "attachments"), *a;
	char path[64];
	const char *s;
	size_t i;

	if (check_type(env, "attachments", "attachments", JSON_ARRAY, "an array", err) != 0)
		return -1;
	if (list == NULL || json_is_null(list))
		return 0;
	if (json_array_size(list) > 64) {
		crab_error_set(err, "invalid_envelope", "attachments",
		    "'attachments' may hold at most 64 items");
		return -1;
	}
	json_array_foreach(list, i, a) {
		snprintf(path, sizeof(path), "attachments[%zu]", i);
		if (!json_is_object(a)) {
			crab_error_set(err, "invalid_envelope", path, "'%s' must be an object", path);
			return -1;
		}
		snprintf(path, sizeof(path), "attachments[%zu].kind", i);
		if (get_string(a, "kind", path, STR_REQUIRED, 64, &s, err) != 0)
			return -1;
		for (size_t f = 0; f < CRAB_ARRAY_LEN(fields); f++) {
			snprintf(path, sizeof(path), "attachments[%zu].%s", i, fields[f]);
			if (get_string(a, fields[f], path, STR_OPTIONAL, 8192, &s, err) != 0)
				return -1;
		}
	}
	return 0;
}

static int check_text(json_t *env, int required, struct crab_error *err)
{
	json_t *text = json_object_get(env, "text");
	json_t *att = json_object_get(env, "attachments");

	if (check_type(env, "text", "text", JSON_STRING, "a string", err) != 0)
		return -1;
	if (!required)
		return 0;
	if ((text == NULL || json_is_null(text) || json_string_length(text) == 0) &&
	    json_array_size(att) == 0) {
		crab_error_set(err, "invalid_envelope", "text",
		    "'text' or 'attachments' is required");
		return -1;
	}
	return 0;
}

static int check_common(json_t *env, struct crab_envelope *out, struct crab_error *err)
{
	const char *s;
	int64_t ms;

	if (get_string(env, "idempotency_key", "idempotency_key", STR_OPTIONAL,
		CRAB_ENVELOPE_KEY_MAX, &out->idempotency_key, err) != 0)
		return -1;
	if (get_string(env, "session_id", "session_id", STR_OPTIONAL, 64, &s, err) != 0)
		return -1;
	out->session_mode = s == NULL ? CRAB_SESSION_CURRENT :
	    strcmp(s, "new") == 0     ? CRAB_SESSION_NEW :
					CRAB_SESSION_GIVEN;
	out->session_id = s;
	if (get_string(env, "occurred_at", "occurred_at", STR_OPTIONAL, 64, &s, err) != 0)
		return -1;
	if (s != NULL && crab_clock_parse(s, &ms) != 0) {
		crab_error_set(err, "invalid_envelope", "occurred_at",
		    "'occurred_at' must be an RFC 3339 timestamp");
		return -1;
	}
	if (check_type(env, "metadata", "metadata", JSON_OBJECT, "an object", err) != 0 ||
	    check_target(env, err) != 0 || check_attachments(env, err) != 0)
		return -1;
	if (get_string(env, "tenant_id", "tenant_id", STR_OPTIONAL, CRAB_ENVELOPE_ID_MAX,
		&out->tenant_id, err) != 0 ||
	    get_string(env, "agent_id", "agent_id", STR_OPTIONAL, CRAB_ENVELOPE_ID_MAX,
		&out->agent_id, err) != 0)
		return -1;
	return 0;
}

static int check_channel_message(json_t *env, struct crab_envelope *out,
    struct crab_error *err)
{
	json_t *src = json_object_get(env, "source");
	const char *message_id, *s;

	if (src == NULL || !json_is_object(src)) {
		crab_error_set(err, "invalid_envelope", "source",
		    src == NULL ? "'source' is required" : "'source' must be an object");
		return -1;
	}
	if (get_string(src, "platform", "source.platform", STR_REQUIRED, 64, &out->platform,
		err) != 0 ||
	    get_string(src, "channel_id", "source.channel_id", STR_REQUIRED,
		CRAB_ENVELOPE_ID_MAX, &out->channel_id, err) != 0 ||
	    get_string(src, "actor_id", "source.actor_id", STR_REQUIRED, CRAB_ENVELOPE_ID_MAX,
		&out->actor_id, err) != 0 ||
	    get_string(src, "message_id", "source.message_id", STR_OPTIONAL,
		CRAB_ENVELOPE_ID_MAX, &message_id, err) != 0 ||
	    get_string(src, "thread_id", "source.thread_id", STR_OPTIONAL,
		CRAB_ENVELOPE_ID_MAX, &s, err) != 0 ||
	    get_string(src, "actor_name", "source.actor_name", STR_OPTIONAL,
		CRAB_ENVELOPE_ID_MAX, &s, err) != 0)
		return -1;
	if (check_text(env, 1, err) != 0)
		return -1;
	if (out->idempotency_key == NULL && message_id != NULL) {
		/* Platform message ids are often unique only within one chat. */
		char key[3 * CRAB_ENVELOPE_ID_MAX + 3];
		snprintf(key, sizeof(key), "%s:%s:%s", out->platform, out->channel_id,
		    message_id);
		json_object_set_new(env, "idempotency_key", json_string(key));
		out->idempotency_key = json_string_value(json_object_get(env, "idempotency_key"));
	}
	return 0;
}

static int check_cron_fired(json_t *env, struct crab_envelope *out, struct crab_error *err)
{
	out->internal = 1;
	if (get_string(env, "tenant_id", "tenant_id", STR_REQUIRED, CRAB_ENVELOPE_ID_MAX,
		&out->tenant_id, err) != 0 ||
	    get_string(env, "agent_id", "agent_id", STR_REQUIRED, CRAB_ENVELOPE_ID_MAX,
		&out->agent_id, err) != 0 ||
	    get_string(env, "actor_id", "actor_id", STR_OPTIONAL, CRAB_ENVELOPE_ID_MAX,
		&out->actor_id, err) != 0 ||
	    check_text(env, 1, err) != 0)
		return -1;
	return 0;
}

static const struct {
	const char *type;
	int (*check)(json_t *env, struct crab_envelope *out, struct crab_error *err);
} event_types[] = {
	{"channel.message.received", check_channel_message},
	{"cron.job.fired", check_cron_fired},
};

int crab_envelope_parse(const char *body, size_t len, struct crab_envelope *out,
    struct crab_error *err)
{
	json_error_t jerr;
	json_t *env;
	size_t i;

	memset(out, 0, sizeof(*out));
	/* jansson rejects invalid UTF-8 and \u0000 in strings by default. */
	env = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (env == NULL) {
		crab_error_set(err, "invalid_json", NULL, "the body is not valid JSON: %s",
		    jerr.text);
		return -1;
	}
	out->json = env;
	if (!json_is_object(env)) {
		crab_error_set(err, "invalid_envelope", NULL, "the envelope must be a JSON object");
		goto fail;
	}
	if (!depth_ok(env, 0)) {
		crab_error_set(err, "invalid_envelope", NULL,
		    "the envelope nests deeper than %d levels", JSON_MAX_DEPTH);
		goto fail;
	}
	if (get_string(env, "type", "type", STR_REQUIRED, 128, &out->type, err) != 0)
		goto fail;
	for (i = 0; i < CRAB_ARRAY_LEN(event_types); i++) {
		if (strcmp(event_types[i].type, out->type) == 0)
			break;
	}
	if (i == CRAB_ARRAY_LEN(event_types)) {
		crab_error_set(err, "unknown_event_type", "type",
		    "event type '%.100s' is not accepted at ingress", out->type);
		goto fail;
	}
	if (check_common(env, out, err) != 0 || event_types[i].check(env, out, err) != 0)
		goto fail;
	return 0;
fail:
	crab_envelope_release(out);
	return -1;
}

void crab_envelope_release(struct crab_envelope *env)
{
	json_decref(env->json);
	memset(env, 0, sizeof(*env));
}
