/* ws_client.c: the client's side of the WebSocket opening handshake (RFC 6455 §4.1):
 * the url, the connection (TLS through libevent's OpenSSL bufferevents), the request,
 * and the check of the server's answer. The connection itself is ws.c's. */
#include "ws.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "id.h"
#include "util.h"

#define ANSWER_MAX_HEAD (16 << 10)
#define ANSWER_MAX_BODY 512 /* of a refusal: waited for and quoted in the error */

/* ---- the url ---- */

struct ws_url {
	int tls;
	char host[256];
	char port[8];
	const char *path; /* within the url: "/..." or "?...", or "" */
	int default_port;
};

static int url_parse(const char *url, struct ws_url *u, char *err, size_t errlen)
{
	const char *p, *end, *colon;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (strncasecmp(url, "ws://", 5) == 0) {
		p = url + 5;
	} else if (strncasecmp(url, "wss://", 6) == 0) {
		p = url + 6;
		u->tls = 1;
	} else {
		snprintf(err, errlen, "url '%s' is not ws:// or wss://", url);
		return -1;
	}
	end = p + strcspn(p, "/?#");
	u->path = end;
	for (const char *c = end; *c != '\0'; c++) {
		if ((unsigned char)*c <= ' ' || *c == 0x7f) {
			snprintf(err, errlen, "url '%s' has a space or control character", url);
			return -1;
		}
	}
	if (*end == '#' || strchr(end, '#') != NULL || memchr(p, '@', (size_t)(end - p)) != NULL) {
		snprintf(err, errlen, "url '%s' has a fragment or user info", url);
		return -1;
	}
	if (*p == '[') {
		const char *close = memchr(p, ']', (size_t)(end - p));
		if (close == NULL)
			goto bad;
		hl = (size_t)(close - p - 1);
		if (hl == 0 || hl >= sizeof(u->host))
			goto bad;
		memcpy(u->host, p + 1, hl);
		colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
		if (close + 1 != end && colon == NULL)
			goto bad;
	} else {
		colon = memchr(p, ':', (size_t)(end - p));
		hl = (size_t)((colon != NULL ? colon : end) - p);
		if (hl == 0 || hl >= sizeof(u->host))
			goto bad;
		memcpy(u->host, p, hl);
	}
	if (colon != NULL) {
		size_t pl = (size_t)(end - colon - 1);
		if (pl == 0 || pl >= sizeof(u->port) || strspn(colon + 1, "0123456789") < pl)
			goto bad;
		memcpy(u->port, colon + 1, pl);
		if (atoi(u->port) < 1 || atoi(u->port) > 65535)
			goto bad;
	} else {
		crab_strlcpy(u->port, u->tls ? "443" : "80", sizeof(u->port));
		u->default_port = 1;
	}
	return 0;
bad:
	snprintf(err, errlen, "url '%s' has no valid host[:port]", url);
	return -1;
}

/* ---- the answer ---- */

static int starts_with_ci(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* The value of a header line "Name: value" when its name is name, trimmed, else NULL. */
static char *header_value(char *line, const char *name)
{
	size_t n = strlen(name);
	char *v, *e;

	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	v = line + n + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return v;
}

int crab_ws_read_answer(struct evbuffer *in, const char *accept, char *err, size_t errlen)
{
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	const char *upgrade = NULL, *connection = NULL, *got_accept = NULL, *ext = NULL;
	char *head, *line, *next, *reason;
	long content_length = -1;
	size_t head_len;
	int status, rc = -1;

	if (end.pos < 0 && evbuffer_get_length(in) <= ANSWER_MAX_HEAD)
		return 0;
	head_len = end.pos < 0 ? SIZE_MAX : (size_t)end.pos + 4;
	if (head_len > ANSWER_MAX_HEAD) {
		snprintf(err, errlen, "handshake answer headers exceed %d bytes", ANSWER_MAX_HEAD);
		return -1;
	}
	head = xstrndup((const char *)evbuffer_pullup(in, (ev_ssize_t)head_len), head_len - 4);
	if (strlen(head) != head_len - 4 || !starts_with_ci(head, "HTTP/1.") ||
	    strlen(head) < 12 || head[8] != ' ' || strspn(head + 9, "0123456789") != 3 ||
	    (head[12] != ' ' && head[12] != '\r' && head[12] != '\0')) {
		snprintf(err, errlen, "the handshake's answer is not HTTP");
		goto out;
	}
	status = atoi(head + 9);
	line = strstr(head, "\r\n");
	if (line != NULL) {
		*line = '\0';
		line += 2;
	}
	reason = head + 12;
	while (*reason == ' ')
		reason++;
	for (; line != NULL; line = next) {
		char *v;

		if ((next = strstr(line, "\r\n")) != NULL) {
			*next = '\0';
			next += 2;
		}
		/* the first of each counts */
		if ((v = header_value(line, "Upgrade")) != NULL)
			upgrade = upgrade != NULL ? upgrade : v;
		else if ((v = header_value(line, "Connection")) != NULL)
			connection = connection != NULL ? connection : v;
		else if ((v = header_value(line, "Sec-WebSocket-Accept")) != NULL)
			got_accept = got_accept != NULL ? got_accept : v;
		else if ((v = header_value(line, "Sec-WebSocket-Extensions")) != NULL)
			ext = v;
		else if ((v = header_value(line, "Content-Length")) != NULL)
			content_length = strspn(v, "0123456789") == strlen(v) && strlen(v) < 9 ?
			    atol(v) : -1;
	}
	if (status != 101) {
		/* A refusal says why in its body (the gateway's JSON error): wait for a short
		 * one, bounded by the handshake's deadline. */
		size_t body = content_length > 0 && content_length <= ANSWER_MAX_BODY ?
		    (size_t)content_length : 0;
		char text[ANSWER_MAX_BODY + 1];

		if (evbuffer_get_length(in) < head_len + body) {
			rc = 0;
			goto out;
		}
		memcpy(text, evbuffer_pullup(in, (ev_ssize_t)(head_len + body)) + head_len, body);
		text[body] = '\0';
		for (char *c = text; *c != '\0'; c++) {
			if ((unsigned char)*c < 0x20)
				*c = ' ';
		}
		snprintf(err, errlen, "the server refused the websocket: %d %s%s%s", status, reason,
		    body > 0 ? ": " : "", text);
		goto out;
	}
	if (!crab_ws_has_token(upgrade, "websocket") || !crab_ws_has_token(connection, "upgrade"))
		snprintf(err, errlen, "the server's 101 does not upgrade to websocket");
	else if (got_accept == NULL || strcmp(got_accept, accept) != 0)
		snprintf(err, errlen, "the server's Sec-WebSocket-Accept does not match our key");
	else if (ext != NULL)
		snprintf(err, errlen, "the server chose an extension we did not offer");
	else
		rc = 1;
	if (rc == 1)
		evbuffer_drain(in, head_len);
out:
	free(head);
	return rc;
}

/* ---- connecting ---- */

static int headers_ok(const char *const *headers, char *err, size_t errlen)
{
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		if (strpbrk(headers[i], "\r\n") != NULL || strchr(headers[i], ':') == NULL) {
			snprintf(err, errlen, "header %zu is not one 'Name: value' line", i + 1);
			return -1;
		}
	}
	return 0;
}

static void write_request(struct evbuffer *out, const struct ws_url *u, const char *key,
    const char *const *headers)
{
	int v6 = strchr(u->host, ':') != NULL;

	evbuffer_add_printf(out, "GET %s%s HTTP/1.1\r\nHost: %s%s%s%s%s\r\n",
	    *u->path == '/' ? "" : "/", u->path,
	    v6 ? "[" : "", u->host, v6 ? "]" : "", u->default_port ? "" : ":",
	    u->default_port ? "" : u->port);
	evbuffer_add_printf(out, "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", key);
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		evbuffer_add_printf(out, "%s\r\n", headers[i]);
	evbuffer_add(out, "\r\n", 2);
}

static struct bufferevent *tls_bufferevent(struct event_base *base, SSL_CTX *tls,
    const char *host, char *err, size_t errlen)
{
	struct in6_addr addr;
	struct bufferevent *bev;
	SSL *ssl = SSL_new(tls);

	if (ssl == NULL) {
		ERR_clear_error();
		snprintf(err, errlen, "cannot set up tls");
		return NULL;
	}
	/* SNI for names, not addresses; verification is the caller's ctx's business */
	if (evutil_inet_pton(AF_INET6, host, &addr) != 1 &&
	    evutil_inet_pton(AF_INET, host, &addr) != 1)
		SSL_set_tlsext_host_name(ssl, host);
	/* Callbacks deferred: libevent's OpenSSL side would otherwise call them from within
	 * our own writes to its output. */
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot set up tls");
		return NULL;
	}
	/* a TCP close without close_notify is an end of stream, as on plain connections */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct crab_ws *crab_ws_connect(struct event_base *base, const char *url, SSL_CTX *tls,
    const char *const *headers, const struct crab_ws_limits *limits,
    const struct crab_ws_callbacks *cb, void *arg, char *err, size_t errlen)
{
	struct evutil_addrinfo hints = {0}, *ai = NULL;
	struct bufferevent *bev = NULL;
	unsigned char raw[16];
	char key[25], accept[CRAB_WS_ACCEPT_LEN];
	struct ws_url u;
	int rc;

	if (url_parse(url, &u, err, errlen) != 0 || headers_ok(headers, err, errlen) != 0)
		return NULL;
	if (u.tls && tls == NULL) {
		snprintf(err, errlen, "wss needs a tls context");
		return NULL;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* blocking, and only the first address is tried: the CLI connects once, and
	 * addresses resolve at once */
	if ((rc = evutil_getaddrinfo(u.host, u.port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", u.host, evutil_gai_strerror(rc));
		return NULL;
	}
	if (u.tls)
		bev = tls_bufferevent(base, tls, u.host, err, errlen);
	else if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) == NULL)
		snprintf(err, errlen, "cannot make a socket");
	if (bev == NULL)
		goto fail;
	/* Refused or unreachable is told later, by the event callback: on_close. */
	if (bufferevent_socket_connect(bev, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
		snprintf(err, errlen, "cannot connect to '%s'", url);
		goto fail;
	}
	evutil_freeaddrinfo(ai);
	if (bufferevent_getfd(bev) >= 0)
		evutil_make_socket_closeonexec(bufferevent_getfd(bev));
	crab_random_bytes(raw, sizeof(raw));
	EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
	crab_ws_accept_key(key, accept);
	write_request(bufferevent_get_output(bev), &u, key, headers);
	return crab_ws_new_connecting(base, bev, accept, limits, cb, arg);
fail:
	if (bev != NULL)
		bufferevent_free(bev);
	evutil_freeaddrinfo(ai);
	return NULL;
}
