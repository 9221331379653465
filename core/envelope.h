/* envelope.h: the canonical ingress envelope (PROTOCOLS.md §1): parsing with limits,
 * validation of every field's type and size, and the derived idempotency key. */
#ifndef CRAB_ENVELOPE_H
#define CRAB_ENVELOPE_H

#include <jansson.h>
#include <stddef.h>

#include "errors.h"

#define CRAB_ENVELOPE_ID_MAX 256   /* platform ids, actor ids, tenant and agent names */
#define CRAB_ENVELOPE_KEY_MAX 512  /* idempotency keys */

enum crab_session_mode {
	CRAB_SESSION_CURRENT, /* absent or null: the runtime key's current open session */
	CRAB_SESSION_NEW,     /* "new": a fresh session becomes the current one */
	CRAB_SESSION_GIVEN,   /* an existing id: continue it */
};

/* A validated envelope. Every pointer is borrowed from json, which the envelope owns. */
struct crab_envelope {
	json_t *json;
	const char *type;
	const char *platform;   /* source.platform, NULL for internal events */
	const char *channel_id; /* source.channel_id */
	const char *actor_id;   /* source.actor_id, or the top-level actor_id of internal events */
	const char *tenant_id;  /* as named in the envelope; honoured only for some producers */
	const char *agent_id;
	const char *idempotency_key; /* NULL: the caller uses the event id */
	enum crab_session_mode session_mode;
	const char *session_id; /* with CRAB_SESSION_GIVEN */
	int internal;           /* an internal event type, such as cron.job.fired */
};

/* Parses and validates body. 0 on success (release the envelope later); -1 with err set
 * to invalid_json, invalid_envelope (with field) or unknown_event_type. */
int crab_envelope_parse(const char *body, size_t len, struct crab_envelope *out,
    struct crab_error *err);
void crab_envelope_release(struct crab_envelope *env);

#endif
