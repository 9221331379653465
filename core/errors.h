/* errors.h: the error body of PROTOCOLS.md §7, {"error":{"code","message","field"}}, and
 * the HTTP status that belongs to each stable code. */
#ifndef CRAB_ERRORS_H
#define CRAB_ERRORS_H

#include <jansson.h>

/* An error found while handling a request; code is a static string from §7. */
struct crab_error {
	const char *code;
	char message[256];
	char field[128]; /* "" when no one field is at fault */
};

void crab_error_set(struct crab_error *e, const char *code, const char *field,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The HTTP status for a code (400 for codes it does not know). */
int crab_error_status(const char *code);

/* {"code","message"[, "field"]}: the inner object, new reference. */
json_t *crab_error_json(const struct crab_error *e);

/* The whole body {"error":{...}} as a malloc'd compact string. */
char *crab_error_body(const struct crab_error *e);

#endif
