/* jsontext.c: see jsontext.h. */
#include "jsontext.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Printable ASCII other than " and \: the bytes a JSON string holds as they are. */
static int plain(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

static void key(struct crab_buf *b, const char *k)
{
	if (b->len > 0 && b->data[b->len - 1] != '{')
		crab_buf_add(b, ",", 1);
	crab_buf_add(b, "\"", 1);
	crab_buf_add(b, k, strlen(k));
	crab_buf_add(b, "\":", 2);
}

void crab_jobj_open(struct crab_buf *b)
{
	crab_buf_add(b, "{", 1);
}

void crab_jobj_close(struct crab_buf *b)
{
	crab_buf_add(b, "}", 1);
}

void crab_jobj_strn(struct crab_buf *b, const char *k, const char *s, size_t n)
{
	json_t *j;
	char *enc;

	key(b, k);
	if (s == NULL) {
		crab_buf_add(b, "null", 4);
	} else if (plain(s, n)) {
		crab_buf_add(b, "\"", 1);
		crab_buf_add(b, s, n);
		crab_buf_add(b, "\"", 1);
	} else {
		/* jansson refuses invalid UTF-8: such text is never published half-encoded */
		j = json_stringn(s, n);
		enc = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		crab_buf_add(b, enc ? enc : "null", enc ? strlen(enc) : 4);
		free(enc);
		json_decref(j);
	}
}

void crab_jobj_str(struct crab_buf *b, const char *k, const char *s)
{
	crab_jobj_strn(b, k, s, s ? strlen(s) : 0);
}

void crab_jobj_raw(struct crab_buf *b, const char *k, const char *json)
{
	key(b, k);
	crab_buf_add(b, json ? json : "null", json ? strlen(json) : 4);
}

void crab_jobj_int(struct crab_buf *b, const char *k, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	key(b, k);
	crab_buf_add(b, num, (size_t)n);
}

void crab_jobj_bool(struct crab_buf *b, const char *k, int v)
{
	key(b, k);
	crab_buf_add(b, v ? "true" : "false", v ? 4 : 5);
}
