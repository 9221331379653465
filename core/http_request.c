/* http_request.c: a request as its handler sees it (http_server.h): method, path,
 * headers, body, peer; the reply, once; a connection tag told at close; the upgrade
 * that hands the connection over (WebSocket). */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "log.h"
#include "util.h"

void crab_http_request_tag_connection(struct crab_http_request *req, const char *tag)
{
	struct http_conn *c = req->conn;

	if (c->bev == NULL) { /* already closed: it is news now */
		if (c->srv->on_close != NULL)
			c->srv->on_close(c->srv->on_close_arg, tag);
		return;
	}
	for (size_t i = 0; i < c->ntags; i++) {
		if (strcmp(c->tags[i], tag) == 0)
			return;
	}
	c->tags = xrealloc(c->tags, (c->ntags + 1) * sizeof(*c->tags));
	c->tags[c->ntags++] = xstrdup(tag);
}

const char *crab_http_request_method(struct crab_http_request *req)
{
	return req->method;
}

const char *crab_http_request_path(struct crab_http_request *req)
{
	char *q;
	/* The url is the first string of head.buf; cut the query for routing. */
	if ((q = strchr(req->head.buf, '?')) != NULL)
		*q = '\0';
	return req->head.buf;
}

const char *crab_http_request_header(struct crab_http_request *req, const char *name)
{
	for (int i = 0; i < req->head.count; i++) {
		if (strcasecmp(req->head.buf + req->head.list[i].name, name) == 0)
			return req->head.list[i].value ? req->head.buf + req->head.list[i].value : "";
	}
	return NULL;
}

const char *crab_http_request_body(struct crab_http_request *req, size_t *len)
{
	*len = evbuffer_get_length(req->body);
	return (const char *)evbuffer_pullup(req->body, -1);
}

const char *crab_http_request_peer(struct crab_http_request *req)
{
	return req->conn->peer;
}

int crab_http_request_is_tls(struct crab_http_request *req)
{
	return req->conn->tls;
}

const char *crab_http_request_peer_fingerprint(struct crab_http_request *req)
{
	return req->conn->has_fp ? req->conn->fp : NULL;
}

void crab_http_reply_header(struct crab_http_request *req, const char *name, const char *value)
{
	size_t n;

	if (req->nextra == MAX_EXTRA_HEADERS)
		fatalx("too many extra response headers");
	n = strlen(name) + strlen(value) + 3;
	req->extra[req->nextra] = xmalloc(n);
	snprintf(req->extra[req->nextra++], n, "%s: %s", name, value);
}

void crab_http_reply(struct crab_http_request *req, int status, const char *body, size_t len)
{
	struct http_conn *c = req->conn;
	struct crab_http_server *srv = c->srv;
	int keep_alive;

	srv->inflight--;
	if (c->bev == NULL) { /* closed meanwhile: the client went away, or was cut off */
		http_conn_free(c);
		return;
	}
	/* A client that asked to switch protocols and was answered in HTTP may have sent
	 * more than HTTP after its request: what follows is not parsed. */
	keep_alive = http_should_keep_alive(&c->parser) && !srv->draining && !c->parser.upgrade;
	http_write_response(c, status, body, len, keep_alive);
	if (!keep_alive) {
		c->state = CONN_CLOSING;
		bufferevent_enable(c->bev, EV_WRITE); /* conn_write_cb closes after the flush */
		return;
	}
	http_conn_flush(c);
	http_request_reset(&c->req);
	c->state = CONN_READING;
	http_parser_pause(&c->parser, 0);
	bufferevent_enable(c->bev, EV_READ);
	/* Pipelined input already buffered: parse it from the loop, not from this call. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void crab_http_reply_error(struct crab_http_request *req, const struct crab_error *err)
{
	char *body = crab_error_body(err);
	crab_http_reply(req, crab_error_status(err->code), body, strlen(body));
	free(body);
}

struct bufferevent *crab_http_request_upgrade(struct crab_http_request *req,
    const char *const *headers)
{
	struct http_conn *c = req->conn;
	struct crab_http_server *srv = c->srv;
	struct bufferevent *bev = c->bev;
	struct evbuffer *out;

	srv->inflight--;
	if (bev == NULL) { /* closed meanwhile */
		http_conn_free(c);
		return NULL;
	}
	out = bufferevent_get_output(bev);
	evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n");
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		evbuffer_add_printf(out, "%s\r\n", headers[i]);
	for (int i = 0; i < req->nextra; i++)
		evbuffer_add_printf(out, "%s\r\n", req->extra[i]);
	evbuffer_add(out, "\r\n", 2);
	/* The connection leaves the server without closing: its tags are the new owner's
	 * business now, so they go without on_close. */
	for (size_t i = 0; i < c->ntags; i++)
		free(c->tags[i]);
	free(c->tags);
	c->tags = NULL;
	c->ntags = 0;
	/* Nothing of this layer stays on the bufferevent; what the client sent after the
	 * request's head stays in its input. */
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ | EV_WRITE, 0, 0);
	c->bev = NULL;
	TAILQ_REMOVE(&srv->conns, c, link);
	srv->nconns--;
	if (c->handshake_deadline != NULL)
		event_free(c->handshake_deadline);
	http_request_reset(&c->req);
	free(c);
	return bev;
}
