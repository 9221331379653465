/* errors.c: one table from error code to HTTP status, so every layer answers alike. */
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"

static const struct {
	const char *code;
	int status;
} error_status[] = {
	{"invalid_json", 400},
	{"invalid_envelope", 400},
	{"unknown_event_type", 400},
	{"bad_request", 400},
	{"unauthenticated", 401},
	{"forbidden", 403},
	{"unknown_identity", 403},
	{"session_forbidden", 403},
	{"pairing_closed", 403},
	{"pin_mismatch", 403},
	{"not_found", 404},
	{"method_not_allowed", 405},
	{"request_timeout", 408},
	{"body_too_large", 413},
	{"unsupported_media_type", 415},
	{"rate_limited", 429},
	{"headers_too_large", 431},
	{"internal", 500},
	{"shutting_down", 503},
	{"store_unavailable", 503},
};

void crab_error_set(struct crab_error *e, const char *code, const char *field,
    const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	crab_strlcpy(e->field, field ? field : "", sizeof(e->field));
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
}

int crab_error_status(const char *code)
{
	for (size_t i = 0; i < CRAB_ARRAY_LEN(error_status); i++) {
		if (strcmp(error_status[i].code, code) == 0)
			return error_status[i].status;
	}
	return 400;
}

json_t *crab_error_json(const struct crab_error *e)
{
	json_t *o = json_pack("{s:s, s:s}", "code", e->code, "message", e->message);
	if (e->field[0] != '\0')
		json_object_set_new(o, "field", json_string(e->field));
	return o;
}

char *crab_error_body(const struct crab_error *e)
{
	json_t *body = json_pack("{s:o}", "error", crab_error_json(e));
	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (s == NULL)
		fatalx("cannot serialise an error body");
	return s;
}
