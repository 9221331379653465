/* adapter_msg.h: text from a provider, or with a secret in it, made fit for a message
 * to a person or the log: bounded, cut at a UTF-8 boundary, control characters blanked,
 * no HTML page quoted, no key or token. jansson and libc. See README.md for how this
 * code is shared. */
#ifndef CRAB_ADAPTER_MSG_H
#define CRAB_ADAPTER_MSG_H

#include <jansson.h>
#include <stddef.h>

/* At most max bytes of s (n bytes), cut at a UTF-8 boundary, control characters as
 * spaces, trailing spaces dropped, into out (NUL-terminated). */
void adapter_clean_copy(char *out, size_t outlen, const char *s, size_t n, size_t max);
/* All of s (NULL: "") that fits in out, the same way. */
void adapter_clean_str(char *out, size_t outlen, const char *s);

/* A provider's error body: its message into msg (at most max bytes of it): error.message,
 * or error when a string, or a top-level message; else the body itself when it is plain
 * text, not JSON nor an HTML page; else a note of its size. The body as JSON, for the
 * caller's own fields (the caller decrefs it), or NULL when it is none. */
json_t *adapter_error_body(const char *body, size_t len, size_t max, char *msg, size_t msglen);

/* Every occurrence in msg of secret (of 4 bytes or more) as "***". */
void adapter_scrub(char *msg, const char *secret);

#endif
