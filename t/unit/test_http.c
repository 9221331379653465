/* test_http.c: the HTTP connection layer's limits and framing, driven over a real
 * loopback socket with the server's loop pumped in this thread. */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_server.h"
#include "t/unit/unit.h"

static struct event_base *base;
static struct crab_http_server *srv;
static int heads_seen;
static int seen_tls = -1, seen_fp = -1;

static int on_head(struct crab_http_request *req, void *arg, struct crab_error *err)
{
	(void)arg;
	heads_seen++;
	if (strcmp(crab_http_request_path(req), "/forbidden") == 0) {
		crab_error_set(err, "forbidden", NULL, "not here");
		return -1;
	}
	return 0;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	char body[128];
	size_t len;
	const char *x = crab_http_request_header(req, "X-Tag");
	(void)arg;

	seen_tls = crab_http_request_is_tls(req);
	seen_fp = crab_http_request_peer_fingerprint(req) != NULL;
	crab_http_request_body(req, &len);
	snprintf(body, sizeof(body), "{\"len\":%zu,\"tag\":\"%s\",\"path\":\"%s\"}", len,
	    x ? x : "", crab_http_request_path(req));
	crab_http_reply(req, 200, body, strlen(body));
}

/* Sends raw bytes on a fresh connection and collects everything until the server
 * closes or 3 seconds pass. */
static char *exchange(const char *request, size_t len)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	size_t cap = 1 << 16, got = 0, sent = 0;
	char *buf = malloc(cap);
	struct timespec start, now;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_port = htons((unsigned short)crab_http_server_port(srv));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		abort();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		ssize_t n;
		if (sent < len) {
			n = write(fd, request + sent, len - sent);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN)
				sent = len; /* the server closed on us: read what it said */
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = read(fd, buf + got, cap - got - 1);
		if (n == 0 || (n < 0 && errno != EAGAIN) || got + (size_t)(n > 0 ? n : 0) >= cap - 1)
			break;
		if (n > 0)
			got += (size_t)n;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 3)
			break;
	}
	buf[got] = '\0';
	close(fd);
	return buf;
}

static int count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void test_simple(void)
{
	const char req[] = "POST /echo?x=1 HTTP/1.1\r\nHost: t\r\nX-Tag: abc\r\n"
			   "Content-Length: 5\r\nConnection: close\r\n\r\nhello";
	char *r = exchange(req, sizeof(req) - 1);

	CHECK(strncmp(r, "HTTP/1.1 200 OK\r\n", 17) == 0, "a request is answered 200");
	CHECK(strstr(r, "Content-Type: application/json\r\n") != NULL, "replies are JSON");
	CHECK(strstr(r, "{\"len\":5,\"tag\":\"abc\",\"path\":\"/echo\"}") != NULL,
	    "the handler sees body, header and path without the query");
	CHECK(seen_tls == 0 && seen_fp == 0, "a plain connection has no TLS and no fingerprint");
	free(r);
}

static void test_pipelined(void)
{
	const char req[] = "GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
			   "POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
			   "GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	char *r = exchange(req, sizeof(req) - 1);
	char *one = strstr(r, "/one"), *two = strstr(r, "/two"), *three = strstr(r, "/three");

	CHECK_INT(count(r, "HTTP/1.1 200 OK"), 3, "three pipelined requests get three answers");
	CHECK(one && two && three && one < two && two < three, "in the order they were sent");
	CHECK(strstr(r, "{\"len\":3,") != NULL, "the middle request's body is its own");
	free(r);
}

static void test_limits(void)
{
	char *req = malloc(8192), *r;
	int n;

	n = snprintf(req, 8192, "GET /big HTTP/1.1\r\nHost: t\r\nX-Pad: ");
	memset(req + n, 'a', 3000);
	strcpy(req + n + 3000, "\r\n\r\n");
	r = exchange(req, strlen(req));
	CHECK(strncmp(r, "HTTP/1.1 431 ", 13) == 0, "headers over the limit get 431");
	CHECK(strstr(r, "\"code\":\"headers_too_large\"") != NULL, "with the JSON error body");
	CHECK(strstr(r, "Connection: close") != NULL, "and the connection closes");
	free(r);

	snprintf(req, 8192, "POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 999999\r\n\r\n");
	r = exchange(req, strlen(req));
	CHECK(strncmp(r, "HTTP/1.1 413 ", 13) == 0, "a Content-Length over the limit gets 413 at once");
	CHECK(strstr(r, "\"code\":\"body_too_large\"") != NULL, "with body_too_large");
	free(r);

	n = snprintf(req, 8192, "POST /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 5; i++)
		n += snprintf(req + n, 8192 - (size_t)n, "400\r\n%01024d\r\n", 0);
	strcpy(req + n, "0\r\n\r\n");
	r = exchange(req, strlen(req));
	CHECK(strncmp(r, "HTTP/1.1 413 ", 13) == 0, "chunks adding up over the limit get 413");
	free(r);

	r = exchange("BLAH\x01 / HTTP/1.1\r\n\r\n", 20);
	CHECK(strncmp(r, "HTTP/1.1 400 ", 13) == 0 && strstr(r, "\"code\":\"bad_request\"") != NULL,
	    "a malformed request line gets a JSON 400");
	free(r);

	heads_seen = 0;
	snprintf(req, 8192, "POST /forbidden HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n");
	r = exchange(req, strlen(req));
	CHECK(strncmp(r, "HTTP/1.1 403 ", 13) == 0 && heads_seen == 1,
	    "the head check refuses before the body arrives");
	free(r);
	free(req);
}

static void test_expect_continue(void)
{
	const char req[] = "POST /c HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
			   "Content-Length: 2\r\nConnection: close\r\n\r\nok";
	char *r = exchange(req, sizeof(req) - 1);

	CHECK(strncmp(r, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK", 40) == 0,
	    "Expect: 100-continue is answered before the final status");
	free(r);
}

int main(void)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 1024, .max_body_bytes = 2048, .idle_timeout_s = 5,
		.max_connections = 64,
	};
	char err[256];
	int loopback = 0;

	base = event_base_new();
	srv = crab_http_server_new(base, &limits, on_head, on_request, NULL);
	CHECK(crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) == 0 &&
	    crab_http_server_port(srv) > 0, "the server listens on an ephemeral port");
	CHECK(loopback, "127.0.0.1 is recognised as loopback");
	test_simple();
	test_pipelined();
	test_limits();
	test_expect_continue();
	crab_http_server_free(srv);
	srv = crab_http_server_new(base, &limits, on_head, on_request, NULL);
	CHECK(crab_http_server_listen(srv, "nonsense", &loopback, err, sizeof(err)) != 0 &&
	    strstr(err, "host:port") != NULL, "a listen address without a port is refused");
	crab_http_server_free(srv);
	event_base_free(base);
	return unit_done();
}
