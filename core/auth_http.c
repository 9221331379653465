/* auth_http.c: one request to a provider's endpoint (auth_int.h): the body as a form or
 * JSON, the header lines, a Retry-After read back, the JSON answer, its cancel, and the
 * OAuth error code of an answer. */
#include "auth.h"
#include "auth_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "util.h"

#define HEADERS_MAX 48

void auth_url_encode(struct crab_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			crab_buf_add(b, (const char *)&c, 1);
		} else {
			char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
			crab_buf_add(b, esc, 3);
		}
	}
}

/* k=v&k=v of an object of strings. */
static char *form_body(json_t *fields)
{
	struct crab_buf b = {0};
	const char *k;
	json_t *v;

	json_object_foreach(fields, k, v) {
		if (!json_is_string(v))
			continue;
		if (b.len > 0)
			crab_buf_add(&b, "&", 1);
		auth_url_encode(&b, k);
		crab_buf_add(&b, "=", 1);
		auth_url_encode(&b, json_string_value(v));
	}
	return crab_buf_take(&b);
}

static void req_header(void *arg, int status, const char *line, size_t len)
{
	struct auth_req *r = arg;
	char num[16];
	size_t n;

	(void)status;
	if (len < 12 || strncasecmp(line, "retry-after:", 12) != 0)
		return;
	for (line += 12, len -= 12; len > 0 && *line == ' '; line++, len--)
		;
	n = len < sizeof(num) - 1 ? len : sizeof(num) - 1;
	memcpy(num, line, n);
	num[n] = '\0';
	if (crab_parse_int64(num, 0, 3600, &r->retry_after_s) != 0)
		r->retry_after_s = 0;
}

static void req_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct auth_req *r = arg;
	json_t *j = NULL;

	r->call = NULL;
	if (error == NULL && body != NULL && len > 0)
		j = json_loadb(body, len, 0, NULL);
	r->done(r, error != NULL ? 0 : status, json_is_object(j) ? j : NULL, error);
	json_decref(j);
	free(r);
}

struct auth_req *auth_request(struct auth_provider *p, const char *method, const char *url,
    int exchange_headers, json_t *fields, int form, const char *bearer, auth_req_fn done,
    void *ctx)
{
	static const struct crab_http_handler_v1 h = {
		.size = sizeof(struct crab_http_handler_v1),
		.on_header = req_header,
		.on_done = req_done,
	};
	const char *hdrs[HEADERS_MAX + 1];
	char **extra = exchange_headers ? p->xheaders : p->headers;
	char *body = NULL, *auth_line = NULL;
	struct crab_http_req_v1 req = {.size = sizeof(req), .method = method, .url = url,
		.timeout_ms = p->timeout_ms, .max_response_bytes = AUTH_RESPONSE_MAX};
	struct auth_req *r;
	size_t n = 0;

	if (p->a->http == NULL)
		return NULL;
	if (fields != NULL) {
		body = form ? form_body(fields) : json_dumps(fields, JSON_COMPACT);
		hdrs[n++] = form ? "Content-Type: application/x-www-form-urlencoded" :
		    "Content-Type: application/json";
		req.body = body;
		req.body_len = strlen(body);
	}
	hdrs[n++] = "Accept: application/json";
	if (bearer != NULL) {
		size_t len = strlen(bearer) + sizeof("Authorization: Bearer ");
		auth_line = xmalloc(len);
		snprintf(auth_line, len, "Authorization: Bearer %s", bearer);
		hdrs[n++] = auth_line;
	}
	for (size_t i = 0; extra != NULL && extra[i] != NULL && n < HEADERS_MAX; i++)
		hdrs[n++] = extra[i];
	hdrs[n] = NULL;
	req.headers = hdrs;
	r = xcalloc(1, sizeof(*r));
	r->p = p;
	r->done = done;
	r->ctx = ctx;
	r->call = crab_http_client_start(p->a->http, &req, &h, r);
	auth_wipe_free(body);
	auth_wipe_free(auth_line);
	if (r->call == NULL) {
		log_warnx("auth: provider %s: cannot start a request to its endpoint", p->id);
		free(r);
		return NULL;
	}
	p->requests++;
	return r;
}

void auth_req_cancel(struct auth_req *r)
{
	if (r == NULL)
		return;
	crab_http_client_cancel(r->call);
	free(r);
}

void auth_error_code(json_t *body, char *out, size_t outlen)
{
	json_t *e = json_object_get(body, "error");
	const char *s = json_string_value(e);
	size_t n = 0;

	if (s == NULL && json_is_object(e))
		s = json_string_value(json_object_get(e, "code")) ?: json_string_value(json_object_get(e, "type"));
	if (s == NULL)
		s = json_string_value(json_object_get(body, "code"));
	out[0] = '\0';
	for (; s != NULL && s[n] != '\0' && n + 1 < outlen && n < 48; n++) {
		char c = s[n];
		out[n] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-' ? c : '_';
	}
	if (s != NULL)
		out[n] = '\0';
}
