/* adapter_msg.c: messages fit for a person, adapter_msg.h. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "modules/common/adapter_msg.h"

void adapter_clean_copy(char *out, size_t outlen, const char *s, size_t n, size_t max)
{
	size_t k = 0;

	if (outlen == 0)
		return;
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	for (size_t i = 0; i < n && k + 1 < outlen; i++)
		out[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
	while (k > 0 && out[k - 1] == ' ')
		k--;
	out[k] = '\0';
}

void adapter_clean_str(char *out, size_t outlen, const char *s)
{
	if (outlen > 0)
		adapter_clean_copy(out, outlen, s ? s : "", s ? strlen(s) : 0, outlen - 1);
}

json_t *adapter_error_body(const char *body, size_t len, size_t max, char *msg, size_t msglen)
{
	json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
	json_t *err = json_object_get(j, "error");
	const char *m = NULL;

	if (json_is_object(err))
		m = json_string_value(json_object_get(err, "message"));
	else if (json_is_string(err))
		m = json_string_value(err);
	else if (json_is_object(j))
		m = json_string_value(json_object_get(j, "message"));
	if (m != NULL)
		adapter_clean_copy(msg, msglen, m, strlen(m), max);
	else if (j == NULL && body != NULL && len > 0 && memchr(body, '<', len) == NULL)
		adapter_clean_copy(msg, msglen, body, len, max); /* plain text, not an HTML page */
	else if (msglen > 0)
		snprintf(msg, msglen, "(no error message, %zu bytes of body)", len);
	return j;
}

void adapter_scrub(char *msg, const char *secret)
{
	size_t slen = secret ? strlen(secret) : 0;
	char *p;

	if (slen < 4)
		return;
	while ((p = strstr(msg, secret)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + slen, strlen(p + slen) + 1);
	}
}
