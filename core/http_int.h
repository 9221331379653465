/* http_int.h: what http_server.c (connections, parsing, listening) and http_request.c
 * (a request's accessors, replies and upgrade) share. Loop thread only. */
#ifndef CRAB_HTTP_INT_H
#define CRAB_HTTP_INT_H

#include <event2/bufferevent.h>
#include <http_parser.h>
#include <openssl/ssl.h>
#include <sys/queue.h>
#include <sys/time.h>

#include "http_server.h"
#include "identity.h"

#define MAX_HEADERS 64
#define MAX_EXTRA_HEADERS 4
#define LINGER_SECONDS 2
#define LINGER_MAX_BYTES (8 << 20)
#define READ_HIGH_WATER (16 << 10) /* input buffered per connection while a request is handled */

enum conn_state {
	CONN_READING,  /* parsing a request */
	CONN_HANDLING, /* the handler has the request; input is paused */
	CONN_CLOSING,  /* flushing the last reply, then closing */
	CONN_LINGER,   /* reply sent, write side shut: discarding the rest of the input */
};

struct header {
	size_t name, value; /* offsets into head.buf, NUL-terminated */
};

struct crab_http_request {
	struct http_conn *conn;
	char method[16];
	struct {
		char *buf; /* url, then header names and values, all NUL-terminated */
		size_t len, cap;
		struct header list[MAX_HEADERS];
		int count;
		int in_value; /* the parser's last callback was a header value */
		int too_large;
	} head;
	struct evbuffer *body;
	int body_too_large;
	char *extra[MAX_EXTRA_HEADERS]; /* "Name: value" lines for the reply */
	int nextra;
	struct timeval started;
	int started_set;
};

struct http_conn {
	TAILQ_ENTRY(http_conn) link;
	struct crab_http_server *srv;
	struct bufferevent *bev; /* NULL once closed under a request still being handled */
	http_parser parser;
	enum conn_state state;
	int linger;            /* the request was refused before all of it was read */
	size_t lingered_bytes;
	int parsing;           /* inside http_parser_execute: freeing must wait for it */
	int doomed;            /* closed meanwhile: conn_parse frees it after the parser */
	int tls;
	struct event *handshake_deadline; /* until the TLS handshake is done */
	int has_fp;            /* the client presented a certificate, fingerprint fp */
	char fp[CRAB_FP_HEX];
	char peer[64];
	char **tags;           /* crab_http_request_tag_connection: told at close */
	size_t ntags;
	struct crab_http_request req;
};

TAILQ_HEAD(conn_list, http_conn);

struct crab_http_server {
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *accept_pause;
	struct crab_http_limits limits;
	crab_http_head_cb on_head;
	crab_http_request_cb on_request;
	void *arg;
	SSL_CTX *tls;
	void (*on_close)(void *arg, const char *tag);
	void *on_close_arg;
	struct conn_list conns;
	struct conn_list detached; /* closed, their request still with its handler */
	size_t nconns;
	size_t inflight;
	int draining;
	int port;
};

/* http_server.c */
/* A request's state cleared for the connection's next one. */
void http_request_reset(struct crab_http_request *req);
void http_conn_free(struct http_conn *c);
/* The status line, headers and body, queued on the connection. */
void http_write_response(struct http_conn *c, int status, const char *body, size_t len,
    int keep_alive);
/* The reply is queued: the connection reads on, lingers or closes, as its state says. */
void http_conn_flush(struct http_conn *c);

#endif
