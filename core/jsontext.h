/* jsontext.h: JSON objects written as text from parts, for the hot paths that publish
 * events. A member whose value is JSON text already (a stored payload, a channel, a
 * message array) is spliced in as it is instead of being parsed and encoded again;
 * strings are encoded by jansson unless they need no escaping at all (ids, config names).
 * Keys are the caller's literals and are written as they are.
 *
 *   struct crab_buf b = {0};
 *   crab_jobj_open(&b);
 *   crab_jobj_str(&b, "event_id", id);
 *   crab_jobj_raw(&b, "target", target_json);
 *   crab_jobj_close(&b);  // {"event_id":"...","target":{...}}
 */
#ifndef CRAB_JSONTEXT_H
#define CRAB_JSONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

void crab_jobj_open(struct crab_buf *b);
void crab_jobj_close(struct crab_buf *b);
/* "key":"s", or "key":null when s is NULL. */
void crab_jobj_str(struct crab_buf *b, const char *key, const char *s);
void crab_jobj_strn(struct crab_buf *b, const char *key, const char *s, size_t n);
/* "key":json, the caller's JSON text as it is; "key":null when json is NULL. */
void crab_jobj_raw(struct crab_buf *b, const char *key, const char *json);
void crab_jobj_int(struct crab_buf *b, const char *key, int64_t v);
void crab_jobj_bool(struct crab_buf *b, const char *key, int v);

#endif
