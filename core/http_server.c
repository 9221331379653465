/* http_server.c: HTTP/1.1 connections on bufferevents, parsed by http-parser; TLS
 * through libevent's OpenSSL bufferevents. */
#include "http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <http_parser.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "log.h"
#include "tls.h"
#include "util.h"

static const http_parser_settings parser_settings;

static const char *status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 202: return "Accepted";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

/* ---- request state ---- */

void http_request_reset(struct crab_http_request *req)
{
	for (int i = 0; i < req->nextra; i++)
		free(req->extra[i]);
	free(req->head.buf);
	if (req->body != NULL)
		evbuffer_free(req->body);
	memset(req, 0, sizeof(*req));
}

static size_t head_append(struct crab_http_request *req, size_t limit, const char *at,
    size_t len, int terminate)
{
	size_t need = req->head.len + len + 1;
	size_t start = req->head.len;

	if (need > limit) {
		req->head.too_large = 1;
		return (size_t)-1;
	}
	if (need > req->head.cap) {
		size_t cap = req->head.cap ? req->head.cap : 256;
		while (cap < need)
			cap *= 2;
		req->head.buf = xrealloc(req->head.buf, cap);
		req->head.cap = cap;
	}
	memcpy(req->head.buf + req->head.len, at, len);
	req->head.len += len;
	if (terminate)
		req->head.buf[req->head.len++] = '\0';
	return start;
}

/* ---- http-parser callbacks ---- */

static struct http_conn *conn_of(http_parser *p)
{
	return p->data;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	http_request_reset(&c->req);
	c->req.conn = c;
	c->req.body = evbuffer_new();
	event_base_gettimeofday_cached(c->srv->base, &c->req.started);
	c->req.started_set = 1;
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	/* The url may arrive in pieces: it is the first thing in the buffer, terminated
	 * once the first header begins. */
	if (head_append(&c->req, c->srv->limits.max_header_bytes, at, len, 0) == (size_t)-1)
		return -1;
	return 0;
}

static int finish_piece(struct http_conn *c)
{
	return head_append(&c->req, c->srv->limits.max_header_bytes, "", 0, 1) == (size_t)-1 ? -1 : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	struct crab_http_request *r = &c->req;
	int starting = r->head.count == 0 || r->head.in_value;

	if (starting) {
		/* Terminate the url (first header) or the previous value. */
		if (finish_piece(c) != 0)
			return -1;
		if (r->head.count == MAX_HEADERS) {
			r->head.too_large = 1;
			return -1;
		}
		r->head.list[r->head.count].name = r->head.len;
		r->head.count++;
		r->head.in_value = 0;
	}
	return head_append(r, c->srv->limits.max_header_bytes, at, len, 0) == (size_t)-1 ? -1 : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	struct crab_http_request *r = &c->req;

	if (!r->head.in_value) {
		if (finish_piece(c) != 0)
			return -1;
		r->head.list[r->head.count - 1].value = r->head.len;
		r->head.in_value = 1;
	}
	return head_append(r, c->srv->limits.max_header_bytes, at, len, 0) == (size_t)-1 ? -1 : 0;
}

static void conn_refuse(struct http_conn *c, const struct crab_error *err);

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	struct crab_http_request *r = &c->req;
	struct crab_error err;

	if (finish_piece(c) != 0)
		return -1;
	crab_strlcpy(r->method, http_method_str((enum http_method)p->method), sizeof(r->method));
	/* Route and credentials first: an unauthenticated client learns nothing more. */
	if (c->srv->on_head != NULL && c->srv->on_head(r, c->srv->arg, &err) != 0) {
		conn_refuse(c, &err);
		return -1;
	}
	if (c->doomed)
		return -1; /* closed by on_head (a revoked peer): conn_parse frees it */
	if (p->content_length != ULLONG_MAX && p->content_length > c->srv->limits.max_body_bytes) {
		r->body_too_large = 1;
		return -1;
	}
	{
		/* Clients such as curl wait a second for this before a larger body. */
		const char *expect = crab_http_request_header(r, "Expect");
		if (expect != NULL && strcasecmp(expect, "100-continue") == 0 && p->http_minor >= 1) {
			evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
			http_conn_flush(c);
		}
	}
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = conn_of(p);
	if (evbuffer_get_length(c->req.body) + len > c->srv->limits.max_body_bytes) {
		c->req.body_too_large = 1;
		return -1;
	}
	evbuffer_add(c->req.body, at, len);
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = conn_of(p);
	/* Stop here: the rest of the input is the next pipelined request, parsed after
	 * this one is answered. */
	c->state = CONN_HANDLING;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parser_settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* ---- connections ---- */

/* The socket is closing: whoever tagged the connection is told, once. */
static void conn_tell_closed(struct http_conn *c)
{
	struct crab_http_server *srv = c->srv;

	for (size_t i = 0; i < c->ntags; i++) {
		if (srv->on_close != NULL)
			srv->on_close(srv->on_close_arg, c->tags[i]);
		free(c->tags[i]);
	}
	free(c->tags);
	c->tags = NULL;
	c->ntags = 0;
}

void http_conn_free(struct http_conn *c)
{
	struct crab_http_server *srv = c->srv;

	conn_tell_closed(c);
	if (c->bev != NULL) {
		TAILQ_REMOVE(&srv->conns, c, link);
		srv->nconns--;
		bufferevent_free(c->bev);
	} else {
		TAILQ_REMOVE(&srv->detached, c, link);
	}
	if (c->handshake_deadline != NULL)
		event_free(c->handshake_deadline);
	http_request_reset(&c->req);
	free(c);
}

/* Closes the socket of a connection whose handler still has the request; the rest
 * stays, off the connection list, until its crab_http_reply frees it. */
static void conn_detach(struct http_conn *c)
{
	struct crab_http_server *srv = c->srv;

	conn_tell_closed(c);
	TAILQ_REMOVE(&srv->conns, c, link);
	srv->nconns--;
	bufferevent_free(c->bev);
	c->bev = NULL;
	TAILQ_INSERT_TAIL(&srv->detached, c, link);
}

/* Closes a connection now, whatever it is doing. */
static void conn_close(struct http_conn *c)
{
	if (c->state == CONN_HANDLING) {
		conn_detach(c);
	} else if (c->parsing) {
		/* on_head is running on it, inside the parser */
		c->doomed = 1;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	} else {
		http_conn_free(c);
	}
}

/* Ends our writing on a TLS connection: close_notify tells the client the answer is
 * whole. Our output is empty by now, so nothing of ours is left behind it. 1 when it
 * went out. */
static int conn_tls_shutdown(struct http_conn *c)
{
	int sent = SSL_shutdown(bufferevent_openssl_get_ssl(c->bev)) >= 0;

	ERR_clear_error();
	return sent;
}

void http_write_response(struct http_conn *c, int status, const char *body, size_t len,
    int keep_alive)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
	    status, status_text(status), len);
	for (int i = 0; i < c->req.nextra; i++)
		evbuffer_add_printf(out, "%s\r\n", c->req.extra[i]);
	evbuffer_add_printf(out, "%s\r\n", keep_alive ? "" : "Connection: close\r\n");
	evbuffer_add(out, body, len);
}

/* Writes the output now, from the handler, instead of arming the write event for the
 * next loop turn and disarming it after (two epoll_ctl calls per reply). Only what the
 * socket does not take at once waits for the write event. */
void http_conn_flush(struct http_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->tls) {
		/* Only OpenSSL may write to a TLS socket: let the bufferevent write, and
		 * conn_write_cb turn writing off again once the output is out. */
		bufferevent_enable(c->bev, EV_WRITE);
		return;
	}
	/* a socket bufferevent keeps its output's start frozen outside its own writes */
	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, bufferevent_getfd(c->bev));
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

/* Answers an error found by this layer (or by on_head) and closes after the flush. */
static void conn_refuse(struct http_conn *c, const struct crab_error *err)
{
	char *body = crab_error_body(err);

	if (c->state == CONN_CLOSING || c->doomed)
		goto out;
	http_write_response(c, crab_error_status(err->code), body, strlen(body), 0);
	c->state = CONN_CLOSING;
	c->linger = 1;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
out:
	free(body);
}

static int header_deadline_passed(struct http_conn *c)
{
	struct timeval now;

	if (!c->req.started_set)
		return 0;
	event_base_gettimeofday_cached(c->srv->base, &now);
	return now.tv_sec - c->req.started.tv_sec > c->srv->limits.idle_timeout_s;
}

static void conn_parse(struct http_conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);

	while (c->state == CONN_READING && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec vec;
		size_t n;
		enum http_errno e;
		struct crab_error err;

		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
			break;
		c->parsing = 1;
		n = http_parser_execute(&c->parser, &parser_settings, vec.iov_base, vec.iov_len);
		c->parsing = 0;
		if (c->doomed) {
			http_conn_free(c);
			return;
		}
		e = HTTP_PARSER_ERRNO(&c->parser);
		if (e == HPE_PAUSED) {
			evbuffer_drain(in, n);
			break;
		}
		if (e != HPE_OK) {
			if (c->state == CONN_CLOSING)
				return; /* on_head refused the request and answered already */
			if (c->req.head.too_large || e == HPE_HEADER_OVERFLOW)
				crab_error_set(&err, "headers_too_large", NULL,
				    "request headers exceed %zu bytes",
				    c->srv->limits.max_header_bytes);
			else if (c->req.body_too_large)
				crab_error_set(&err, "body_too_large", NULL,
				    "request body exceeds %zu bytes", c->srv->limits.max_body_bytes);
			else
				crab_error_set(&err, "bad_request", NULL, "malformed HTTP request: %s",
				    http_errno_description(e));
			conn_refuse(c, &err);
			return;
		}
		evbuffer_drain(in, n);
	}
	if (c->state == CONN_READING && header_deadline_passed(c)) {
		log_debug("closing %s: request too slow", c->peer);
		http_conn_free(c);
		return;
	}
	if (c->state == CONN_HANDLING) {
		struct crab_http_server *srv = c->srv;
		/* Reading stays on (no epoll_ctl pair per request); conn_read_cb leaves what
		 * comes meanwhile in the input buffer. */
		srv->inflight++;
		srv->on_request(&c->req, srv->arg);
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->state == CONN_HANDLING)
		return; /* pipelined input waits, bounded by READ_HIGH_WATER */
	if (c->state != CONN_LINGER) {
		conn_parse(c);
		return;
	}
	c->lingered_bytes += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->lingered_bytes > LINGER_MAX_BYTES)
		http_conn_free(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct http_conn *c = arg;
	struct timeval linger = {LINGER_SECONDS, 0};

	/* TLS callbacks are deferred: a reply may have been queued since this was due */
	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (c->state != CONN_CLOSING) {
		/* a reply http_conn_flush could not write at once has gone out */
		bufferevent_disable(bev, EV_WRITE);
		return;
	}
	if (!c->linger) {
		if (c->tls)
			conn_tls_shutdown(c);
		http_conn_free(c);
		return;
	}
	c->state = CONN_LINGER;
	/* With TLS the FIN follows close_notify, and only if that went out whole: OpenSSL
	 * writes nothing after it, so the reads of the linger still work. */
	if (!c->tls || conn_tls_shutdown(c))
		shutdown(bufferevent_getfd(bev), SHUT_WR);
	bufferevent_set_timeouts(bev, &linger, NULL);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
}

/* The TLS handshake is done: the client's certificate is read once, here. */
static void conn_tls_ready(struct http_conn *c)
{
	if (c->handshake_deadline != NULL) {
		event_free(c->handshake_deadline);
		c->handshake_deadline = NULL;
	}
	c->has_fp = crab_tls_peer_fingerprint(bufferevent_openssl_get_ssl(c->bev), c->fp) == 1;
	ERR_clear_error();
}

static void handshake_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *c = arg;
	(void)fd;
	(void)what;

	log_debug("closing %s: tls handshake too slow", c->peer);
	http_conn_free(c);
}

static void log_tls_failure(struct http_conn *c)
{
	unsigned long e = bufferevent_get_openssl_error(c->bev);
	char why[256] = "connection closed";

	if (e != 0)
		ERR_error_string_n(e, why, sizeof(why));
	log_debug("tls handshake with %s failed: %s", c->peer, why);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *c = arg;
	(void)bev;

	if (what & BEV_EVENT_CONNECTED) {
		conn_tls_ready(c);
		return;
	}
	if (c->state == CONN_HANDLING) {
		/* At EOF (a half-close) or the idle timeout libevent has stopped reading, as the
		 * handling state used to stop it: the reply still goes out, and reading resumes
		 * after it (and sees the EOF again, or starts a new idle period). */
		if ((what & BEV_EVENT_READING) && (what & (BEV_EVENT_EOF | BEV_EVENT_TIMEOUT)))
			return;
		/* The handler still owns the request: close now, free when it replies. */
		conn_detach(c);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("closing idle connection %s", c->peer);
	else if (c->handshake_deadline != NULL)
		log_tls_failure(c);
	http_conn_free(c);
}

static void format_peer(const struct sockaddr *sa, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, outlen, "%s:%d", host, port);
}

/* A bufferevent that will accept TLS on fd, or NULL. It owns fd, even on failure. */
static struct bufferevent *tls_bufferevent_new(struct crab_http_server *srv, evutil_socket_t fd)
{
	SSL *ssl = SSL_new(srv->tls);
	struct bufferevent *bev;

	if (ssl == NULL) {
		ERR_clear_error();
		evutil_closesocket(fd);
		return NULL;
	}
	/* Callbacks deferred: libevent's OpenSSL side would otherwise call them from within
	 * our own writes to its output. */
	bev = bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		/* libevent 2.1 has freed ssl and closed fd, or not, depending on where it
		 * failed (only out of memory): a leak is better than a double close. */
		log_warnx("cannot set up tls for a connection");
		return NULL;
	}
	/* A TCP close without close_notify is an EOF, as on plain connections: a cut
	 * request never completes its framing anyway. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	/* writing only while a reply waits: see http_conn_flush */
	bufferevent_disable(bev, EV_WRITE);
	return bev;
}

static void conn_new(struct crab_http_server *srv, evutil_socket_t fd, const char *peer,
    int tls)
{
	struct timeval idle = {srv->limits.idle_timeout_s, 0};
	struct http_conn *c;

	if (srv->draining || srv->nconns >= (size_t)srv->limits.max_connections) {
		evutil_closesocket(fd);
		return;
	}
	c = xcalloc(1, sizeof(*c));
	c->srv = srv;
	c->tls = tls;
	if (tls) {
		if ((c->bev = tls_bufferevent_new(srv, fd)) == NULL) {
			free(c);
			return;
		}
		/* The idle timeout restarts at each read: this bounds the whole handshake. */
		c->handshake_deadline = evtimer_new(srv->base, handshake_deadline_cb, c);
		evtimer_add(c->handshake_deadline, &idle);
	} else if ((c->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	crab_strlcpy(c->peer, peer, sizeof(c->peer));
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->state = CONN_READING;
	TAILQ_INSERT_TAIL(&srv->conns, c, link);
	srv->nconns++;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_setwatermark(c->bev, EV_READ, 0, READ_HIGH_WATER);
	/* EV_WRITE only while a reply waits for the socket: see http_conn_flush */
	bufferevent_enable(c->bev, EV_READ);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct crab_http_server *srv = arg;
	char peer[64];
	(void)l;
	(void)salen;

	format_peer(sa, peer, sizeof(peer));
	conn_new(srv, fd, peer, srv->tls != NULL);
}

void crab_http_server_adopt(struct crab_http_server *srv, int fd, const char *peer)
{
	evutil_make_socket_nonblocking(fd);
	conn_new(srv, fd, peer, 0);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct crab_http_server *srv = arg;
	(void)fd;
	(void)what;
	if (!srv->draining)
		evconnlistener_enable(srv->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct crab_http_server *srv = arg;
	struct timeval pause = {0, 100000};

	/* Out of descriptors (EMFILE) would otherwise spin: pause accepting briefly. */
	log_warn("accept");
	evconnlistener_disable(l);
	evtimer_add(srv->accept_pause, &pause);
}

/* ---- public API ---- */

void crab_http_server_set_limits(struct crab_http_server *srv,
    const struct crab_http_limits *limits)
{
	srv->limits = *limits;
}

struct crab_http_server *crab_http_server_new(struct event_base *base,
    const struct crab_http_limits *limits, crab_http_head_cb on_head,
    crab_http_request_cb on_request, void *arg)
{
	struct crab_http_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->limits = *limits;
	srv->on_head = on_head;
	srv->on_request = on_request;
	srv->arg = arg;
	srv->accept_pause = evtimer_new(base, accept_resume_cb, srv);
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->detached);
	return srv;
}

int crab_http_server_set_tls(struct crab_http_server *srv, SSL_CTX *ctx)
{
	if (ctx == NULL || SSL_CTX_up_ref(ctx) != 1)
		return -1;
	SSL_CTX_free(srv->tls);
	srv->tls = ctx;
	return 0;
}

static int split_host_port(const char *host_port, char *host, size_t hostlen, char *port,
    size_t portlen)
{
	const char *colon = strrchr(host_port, ':');
	const char *h = host_port;
	size_t hl;

	if (colon == NULL || colon[1] == '\0')
		return -1;
	hl = (size_t)(colon - host_port);
	if (*h == '[' && hl >= 2 && colon[-1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= hostlen || strlen(colon + 1) >= portlen)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	crab_strlcpy(port, colon + 1, portlen);
	return 0;
}

static int sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr);
	return 0;
}

int crab_http_server_listen(struct crab_http_server *srv, const char *host_port,
    int *is_loopback, char *err, size_t errlen)
{
	struct evutil_addrinfo hints = {0}, *ai = NULL;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char host[256], port[16];
	int rc;

	if (split_host_port(host_port, host, sizeof(host), port, sizeof(port)) != 0) {
		snprintf(err, errlen, "listen address '%s' is not host:port", host_port);
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_ADDRCONFIG;
	if ((rc = evutil_getaddrinfo(host, port, &hints, &ai)) != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host_port, evutil_gai_strerror(rc));
		return -1;
	}
	srv->listener = evconnlistener_new_bind(srv->base, accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024,
	    ai->ai_addr, (int)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
	if (srv->listener == NULL) {
		snprintf(err, errlen, "cannot listen on '%s': %s", host_port, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(srv->listener, accept_error_cb);
	getsockname(evconnlistener_get_fd(srv->listener), (struct sockaddr *)&bound, &blen);
	srv->port = ntohs(bound.ss_family == AF_INET6 ?
		((struct sockaddr_in6 *)&bound)->sin6_port :
		((struct sockaddr_in *)&bound)->sin_port);
	*is_loopback = sockaddr_is_loopback((struct sockaddr *)&bound);
	return 0;
}

int crab_http_server_port(struct crab_http_server *srv)
{
	return srv->port;
}

void crab_http_server_drain(struct crab_http_server *srv)
{
	struct http_conn *c, *next;

	srv->draining = 1;
	if (srv->listener != NULL)
		evconnlistener_disable(srv->listener);
	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state == CONN_READING && c->req.started_set == 0)
			http_conn_free(c);
	}
}

size_t crab_http_server_inflight(struct crab_http_server *srv)
{
	return srv->inflight;
}

size_t crab_http_server_connections(struct crab_http_server *srv)
{
	return srv->nconns;
}

size_t crab_http_server_close_fingerprint(struct crab_http_server *srv, const char *fp)
{
	struct http_conn *c, *next;
	size_t n = 0;

	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, link);
		if (!c->has_fp || c->doomed || strcasecmp(c->fp, fp) != 0)
			continue;
		log_debug("closing %s: its certificate was cut off", c->peer);
		conn_close(c);
		n++;
	}
	return n;
}

void crab_http_server_free(struct crab_http_server *srv)
{
	if (srv == NULL)
		return;
	srv->on_close = NULL; /* the owner is going too: closing is not news */
	while (!TAILQ_EMPTY(&srv->conns))
		http_conn_free(TAILQ_FIRST(&srv->conns));
	while (!TAILQ_EMPTY(&srv->detached))
		http_conn_free(TAILQ_FIRST(&srv->detached));
	if (srv->listener != NULL)
		evconnlistener_free(srv->listener);
	event_free(srv->accept_pause);
	SSL_CTX_free(srv->tls); /* each connection's SSL holds the context until it goes */
	free(srv);
}

void crab_http_server_on_close(struct crab_http_server *srv,
    void (*fn)(void *arg, const char *tag), void *arg)
{
	srv->on_close = fn;
	srv->on_close_arg = arg;
}
