/* http_server.h: the HTTP/1.1 server of the public ingress. Parsing is Debian's
 * http-parser; this layer owns connections on libevent bufferevents because evhttp 2.1
 * can neither answer its own errors (413, 431, 400) with our JSON bodies, nor refuse a
 * request before reading its body, nor hand a connection to WebSocket.
 *
 * Every connection has a header-size limit (431), a body-size limit (413, refused as soon
 * as Content-Length or the chunks exceed it, without reading on), an idle timeout that
 * also bounds how long a request's headers may take, and a cap on connections. One
 * request per connection is handled at a time; pipelined requests wait their turn.
 * Every reply, error or not, has a JSON body. A request refused before its body was read
 * gets a lingering close: the server stops writing, then reads and discards what the
 * client still sends for a moment, so the client sees the answer instead of a reset.
 *
 * With crab_http_server_set_tls every accepted connection speaks TLS (SECURITY.md,
 * "Transport"): the handshake must end within the idle timeout, and a failed one (plain
 * HTTP on the TLS port included) just closes the connection. The client certificate,
 * if any, is only read here: whom to trust is the caller's decision, by fingerprint. */
#ifndef CRAB_HTTP_SERVER_H
#define CRAB_HTTP_SERVER_H

#include <event2/event.h>
#include <openssl/types.h>
#include <stddef.h>

#include "errors.h"

struct bufferevent;
struct crab_http_server;
struct crab_http_request;

struct crab_http_limits {
	size_t max_header_bytes;
	size_t max_body_bytes;
	int idle_timeout_s;
	int max_connections;
};

/* Called when a request's headers are complete, before its body is read. Return 0 to go
 * on, or -1 with err set to refuse it: the server answers the error and closes. */
typedef int (*crab_http_head_cb)(struct crab_http_request *req, void *arg,
    struct crab_error *err);
/* Called with the whole request. The handler must call crab_http_reply (or
 * crab_http_reply_error) exactly once, now or later from the same loop. */
typedef void (*crab_http_request_cb)(struct crab_http_request *req, void *arg);

struct crab_http_server *crab_http_server_new(struct event_base *base,
    const struct crab_http_limits *limits, crab_http_head_cb on_head,
    crab_http_request_cb on_request, void *arg);
/* New limits, for what is read and accepted from now on (a reloaded config). */
void crab_http_server_set_limits(struct crab_http_server *srv,
    const struct crab_http_limits *limits);
/* Binds "host:port" ("[::1]:port" for IPv6); 0 or -1 with err. *is_loopback tells whether
 * the bound address is a loopback one. */
int crab_http_server_listen(struct crab_http_server *srv, const char *host_port,
    int *is_loopback, char *err, size_t errlen);
/* Serves an already connected socket as if accepted (tests, fuzzing); takes the fd. */
void crab_http_server_adopt(struct crab_http_server *srv, int fd, const char *peer);
/* Serves TLS on every connection accepted from now on, with ctx (the server takes a
 * reference of its own: the caller may free ctx after). Call before the loop accepts
 * (listening first is fine: it tells whether the address is loopback); adopted sockets
 * stay plain. 0, or -1 on a NULL ctx. */
int crab_http_server_set_tls(struct crab_http_server *srv, SSL_CTX *ctx);
/* The bound port (useful with port 0). */
int crab_http_server_port(struct crab_http_server *srv);
/* Stops accepting and closes idle connections; requests being handled finish. */
void crab_http_server_drain(struct crab_http_server *srv);
/* Requests whose handler has not replied yet. */
size_t crab_http_server_inflight(struct crab_http_server *srv);
size_t crab_http_server_connections(struct crab_http_server *srv);
/* Closes at once every connection whose client certificate has fingerprint fp (all 64
 * hex digits): a revoked peer. A request of theirs still with its handler is answered
 * into the void: its crab_http_reply only frees it. May be called from any callback,
 * on_head and on_request included. Returns how many connections it closed. */
size_t crab_http_server_close_fingerprint(struct crab_http_server *srv, const char *fp);
/* Closes every connection and frees the server. */
void crab_http_server_free(struct crab_http_server *srv);

/* Connection-bound state (a lease that dies with its connection): tag_connection ties a
 * tag (copied; once per tag) to the request's connection, and when that connection closes,
 * for any reason, fn(arg, tag) is called once per tag. Not when the server itself is
 * freed. Tagging a connection already closed calls fn at once. */
void crab_http_server_on_close(struct crab_http_server *srv,
    void (*fn)(void *arg, const char *tag), void *arg);
void crab_http_request_tag_connection(struct crab_http_request *req, const char *tag);

/* Request accessors: strings are borrowed until the reply. */
const char *crab_http_request_method(struct crab_http_request *req);
const char *crab_http_request_path(struct crab_http_request *req); /* without the query */
const char *crab_http_request_header(struct crab_http_request *req, const char *name);
const char *crab_http_request_body(struct crab_http_request *req, size_t *len);
const char *crab_http_request_peer(struct crab_http_request *req); /* "addr:port" */
/* Whether the request came over TLS: 1 or 0. */
int crab_http_request_is_tls(struct crab_http_request *req);
/* The fingerprint (64 hex digits) of the certificate the client presented in the TLS
 * handshake, or NULL: a plain connection, or none presented. Read once per connection. */
const char *crab_http_request_peer_fingerprint(struct crab_http_request *req);

/* Adds a response header to the coming reply (name and value copied). */
void crab_http_reply_header(struct crab_http_request *req, const char *name,
    const char *value);
/* Sends status with a JSON body (copied). */
void crab_http_reply(struct crab_http_request *req, int status, const char *body, size_t len);
void crab_http_reply_error(struct crab_http_request *req, const struct crab_error *err);

/* Takes the connection over for another protocol (WebSocket: see crab_ws_accept in
 * ws.h), instead of crab_http_reply, from on_request or later. Answers "101 Switching
 * Protocols" with headers ("Name: value" lines, NULL-terminated; may be NULL) and any
 * added with crab_http_reply_header, and returns the connection's bufferevent, plain or
 * TLS (a bufferevent_openssl), opened with BEV_OPT_CLOSE_ON_FREE: the caller owns it and
 * its socket now. It comes with no callbacks, no timeouts, no watermarks, reading and
 * writing disabled: the 101 is in its output, not yet written, and whatever the client
 * sent after the request's head is in its input, already the new protocol.
 *
 * req is freed either way: read what is needed of it (headers, peer, fingerprint)
 * before. NULL when the connection closed meanwhile. The connection leaves the server
 * at once: crab_http_server_connections no longer counts it (nor does max_connections:
 * the new owner caps its own), drain, free and close_fingerprint no longer see it (the
 * new owner closes it on those occasions), and its tags are dropped without on_close:
 * connection-bound state is the new owner's. A request that asked to upgrade and is
 * answered with crab_http_reply closes its connection after the answer. */
struct bufferevent *crab_http_request_upgrade(struct crab_http_request *req,
    const char *const *headers);

#endif
