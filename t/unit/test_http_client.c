/* test_http_client.c: the asynchronous HTTP client against our own HTTP server, both on
 * one event_base pumped in this thread. */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/http_client.h"
#include "core/http_server.h"
#include "t/unit/unit.h"

#define SLOW_MS 400
#define MAX_SLOW 32
#define STREAM_BYTES 200000
#define BIG_BYTES 4096

static struct event_base *base;
static struct crab_http_server *srv;
static struct crab_http_client *client;
static char url_json[128], url_slow[128], url_big[128], url_stream[128];

/* ---- the server side ---- */

struct slow {
	struct event *ev;
	struct crab_http_request *req;
};
static struct slow slows[MAX_SLOW];
static int slow_pending, slow_seen;

static void slow_reply(evutil_socket_t fd, short what, void *arg)
{
	struct slow *s = arg;
	(void)fd;
	(void)what;
	crab_http_reply(s->req, 200, "{\"slow\":true}", 13);
	event_free(s->ev);
	s->ev = NULL;
	slow_pending--;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	const char *path = crab_http_request_path(req);
	(void)arg;

	if (strcmp(path, "/json") == 0) {
		char body[256];
		size_t len;
		const char *tag = crab_http_request_header(req, "X-Tag");
		crab_http_request_body(req, &len);
		snprintf(body, sizeof(body), "{\"len\":%zu,\"tag\":\"%s\",\"method\":\"%s\"}", len,
		    tag ? tag : "", crab_http_request_method(req));
		crab_http_reply_header(req, "X-Reply", "yes");
		crab_http_reply(req, 200, body, strlen(body));
	} else if (strcmp(path, "/slow") == 0) {
		struct timeval tv = {0, SLOW_MS * 1000};
		for (int i = 0; i < MAX_SLOW; i++) {
			if (slows[i].ev == NULL) {
				slows[i].req = req;
				slows[i].ev = evtimer_new(base, slow_reply, &slows[i]);
				evtimer_add(slows[i].ev, &tv);
				slow_pending++;
				slow_seen++;
				return;
			}
		}
		abort();
	} else if (strcmp(path, "/big") == 0 || strcmp(path, "/stream") == 0) {
		size_t n = path[1] == 'b' ? BIG_BYTES : STREAM_BYTES;
		char *body = malloc(n);
		memset(body, 'x', n);
		crab_http_reply(req, 200, body, n);
		free(body);
	} else {
		crab_http_reply(req, 404, "{}", 2);
	}
}

/* A raw server for what ours never sends: an interim 103 and a chunked body, so that
 * only the bytes received, not a Content-Length, tell the client it is too large. */
#define RAW_CHUNK 600
#define RAW_CHUNKS 3
struct raw_conn {
	struct event *ev;
	char buf[4096];
	size_t len;
};

static void raw_read(evutil_socket_t fd, short what, void *arg)
{
	struct raw_conn *rc = arg;
	ssize_t n = read(fd, rc->buf + rc->len, sizeof(rc->buf) - rc->len - 1);
	(void)what;

	if (n > 0) {
		rc->len += (size_t)n;
		rc->buf[rc->len] = '\0';
		if (strstr(rc->buf, "\r\n\r\n") == NULL)
			return;
		char out[4096];
		int m = snprintf(out, sizeof(out),
		    "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
		    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
		for (int i = 0; i < RAW_CHUNKS; i++) {
			m += snprintf(out + m, sizeof(out) - (size_t)m, "%x\r\n", RAW_CHUNK);
			memset(out + m, 'a' + i, RAW_CHUNK);
			m += RAW_CHUNK;
			m += snprintf(out + m, sizeof(out) - (size_t)m, "\r\n");
		}
		m += snprintf(out + m, sizeof(out) - (size_t)m, "0\r\n\r\n");
		if (write(fd, out, (size_t)m) != m)
			abort();
	}
	close(fd);
	event_free(rc->ev);
	free(rc);
}

static void raw_accept(evutil_socket_t fd, short what, void *arg)
{
	struct raw_conn *rc;
	int s = accept(fd, NULL, NULL);
	(void)what;
	(void)arg;

	if (s < 0)
		return;
	rc = calloc(1, sizeof(*rc));
	rc->ev = event_new(base, s, EV_READ | EV_PERSIST, raw_read, rc);
	event_add(rc->ev, NULL);
}

/* ---- the client side ---- */

struct result {
	int done, status, headers, saw_reply_header, saw_status_line, header_status;
	int chunks, abort_data;
	size_t streamed;
	char *body;
	int body_null;
	size_t len;
	char error[256];
	int error_null;
	/* what callbacks do to other calls */
	struct crab_http_call *cancel_in_header;
	struct result *start_in_header, *start_in_done;
	int free_in_done;
};

static struct crab_http_call *start_get(struct result *r, const char *url);

static void on_header(void *arg, int status, const char *line, size_t len)
{
	struct result *r = arg;

	r->headers++;
	r->header_status = status;
	if (len == 12 && memcmp(line, "X-Reply: yes", 12) == 0)
		r->saw_reply_header = 1;
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
		r->saw_status_line = 1;
	if (memchr(line, '\n', len) != NULL || memchr(line, '\r', len) != NULL)
		r->saw_status_line = 1;
	if (r->cancel_in_header != NULL) {
		crab_http_client_cancel(r->cancel_in_header);
		r->cancel_in_header = NULL;
	}
	if (r->start_in_header != NULL) {
		start_get(r->start_in_header, url_json);
		r->start_in_header = NULL;
	}
}

static int on_data(void *arg, const char *data, size_t len)
{
	struct result *r = arg;
	(void)data;

	r->chunks++;
	r->streamed += len;
	return r->abort_data ? -1 : 0;
}

static void on_done(void *arg, int status, const char *body, size_t len, const char *error)
{
	struct result *r = arg;

	if (r->free_in_done) {
		free(r);
		return;
	}
	r->done++;
	r->status = status;
	r->body_null = body == NULL;
	free(r->body);
	r->body = body ? strndup(body, len) : NULL;
	r->len = len;
	r->error_null = error == NULL;
	snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
	if (r->start_in_done != NULL) {
		start_get(r->start_in_done, url_json);
		r->start_in_done = NULL;
	}
}

static const struct crab_http_handler_v1 collect = {
	.size = sizeof(struct crab_http_handler_v1), .on_header = on_header, .on_done = on_done,
};
static const struct crab_http_handler_v1 stream = {
	.size = sizeof(struct crab_http_handler_v1), .on_header = on_header, .on_data = on_data,
	.on_done = on_done,
};

static struct crab_http_call *start(struct result *r, const char *method, const char *url,
    const char *const *headers, const char *body, int64_t timeout_ms, size_t max,
    const struct crab_http_handler_v1 *h)
{
	struct crab_http_req_v1 req = {
		.size = sizeof(req), .method = method, .url = url, .headers = headers,
		.body = body, .body_len = body ? strlen(body) : 0, .timeout_ms = timeout_ms,
		.max_response_bytes = max,
	};
	return crab_http_client_start(client, &req, h, r);
}

static struct crab_http_call *start_get(struct result *r, const char *url)
{
	return start(r, "GET", url, NULL, NULL, 0, 0, &collect);
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Pumps the loop until *flag reaches want or 10 s pass; 0 when it did. */
static int run_until(const int *flag, int want)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (*flag != want) {
		event_base_loop(base, EVLOOP_ONCE);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec > 10)
			return -1;
	}
	return 0;
}

/* Pumps the loop for ms milliseconds. */
static void run_for(int ms)
{
	struct timespec start, now;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		event_base_loop(base, EVLOOP_ONCE);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >= ms)
			return;
	}
}

static void reset(struct result *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* ---- the cases ---- */

static void test_get_post(void)
{
	struct result r = {0};
	const char *hdrs[] = {"X-Tag: abc", NULL};
	const char *post_hdrs[] = {"X-Tag: posted", "Content-Type: application/json", NULL};

	CHECK(start(&r, "GET", url_json, hdrs, NULL, 0, 0, &collect) != NULL, "a GET starts");
	CHECK_INT(crab_http_client_active(client), 1, "one call is active");
	CHECK(run_until(&r.done, 1) == 0, "the GET completes");
	CHECK_INT(r.status, 200, "with status 200");
	CHECK(r.error_null, "and no error");
	CHECK_STR(r.body, "{\"len\":0,\"tag\":\"abc\",\"method\":\"GET\"}",
	    "the body is the server's, which saw the request header");
	CHECK(r.saw_reply_header && r.header_status == 200, "on_header sees the reply's header with the status");
	CHECK(r.headers >= 3 && !r.saw_status_line, "one line per header, no status line, no CRLF");
	CHECK_INT(crab_http_client_active(client), 0, "no call is active after on_done");
	reset(&r);

	CHECK(start(&r, "POST", url_json, post_hdrs, "hello world", 0, 0, &collect) != NULL,
	    "a POST with a body starts");
	CHECK(run_until(&r.done, 1) == 0 && r.status == 200, "the POST completes with 200");
	CHECK_STR(r.body, "{\"len\":11,\"tag\":\"posted\",\"method\":\"POST\"}",
	    "the server got the body and the headers");
	reset(&r);

	CHECK(start(&r, "DELETE", url_json, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "a DELETE completes");
	CHECK_STR(r.body, "{\"len\":0,\"tag\":\"\",\"method\":\"DELETE\"}", "with its own method");
	reset(&r);

	CHECK(start(&r, "GET", url_json, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "a GET without headers completes");
	CHECK(r.saw_reply_header, "on_header is called without request headers too");
	reset(&r);
}

static void test_stream(void)
{
	struct result r = {0};

	CHECK(start(&r, "GET", url_stream, NULL, NULL, 0, 0, &stream) != NULL,
	    "a streamed GET starts");
	CHECK(run_until(&r.done, 1) == 0 && r.status == 200 && r.error_null,
	    "the streamed GET completes with 200");
	CHECK_INT(r.streamed, STREAM_BYTES, "on_data got the whole body");
	CHECK(r.chunks >= 2, "in several pieces");
	CHECK(r.body_null && r.len == 0, "and on_done gets no body");
	reset(&r);

	r.abort_data = 1;
	CHECK(start(&r, "GET", url_stream, NULL, NULL, 0, 0, &stream) != NULL &&
	    run_until(&r.done, 1) == 0, "on_data returning -1 ends the call");
	CHECK(r.status == 0 && strstr(r.error, "on_data") != NULL,
	    "on_done reports it as an error");
	CHECK_INT(r.chunks, 1, "no on_data after the abort");
	reset(&r);
}

static void test_errors(void)
{
	struct result r = {0};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	char url[128];
	int fd;

	CHECK(start(&r, "GET", url_slow, NULL, NULL, 100, 0, &collect) != NULL,
	    "a call with a 100 ms timeout starts");
	CHECK(run_until(&r.done, 1) == 0, "it ends");
	CHECK(r.status == 0 && r.body_null && strstr(r.error, "imed out") != NULL,
	    "with status 0 and curl's timeout message");
	printf("# %s\n", r.error);
	reset(&r);

	CHECK(start(&r, "GET", url_big, NULL, NULL, 0, 1000, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "a call with max_response_bytes 1000 ends");
	CHECK_STR(r.error, "response larger than 1000 bytes", "a larger response is an error");
	CHECK(r.status == 0 && r.body_null, "with status 0 and no body");
	reset(&r);

	CHECK(start(&r, "GET", url_big, NULL, NULL, 0, 1000, &stream) != NULL &&
	    run_until(&r.done, 1) == 0, "the same streamed");
	CHECK_STR(r.error, "response larger than 1000 bytes", "is the same error");
	CHECK(r.streamed <= 1000, "on_data never gets more than the limit");
	reset(&r);

	CHECK(start(&r, "GET", url_big, NULL, NULL, 0, BIG_BYTES, &collect) != NULL &&
	    run_until(&r.done, 1) == 0 && r.status == 200 && r.len == BIG_BYTES,
	    "a response of exactly max_response_bytes is whole");
	reset(&r);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &slen);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/json", ntohs(sin.sin_port));
	CHECK(start(&r, "GET", url, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "a call to a closed port ends");
	CHECK(r.status == 0 && r.body_null && r.error[0] != '\0', "with status 0 and an error");
	printf("# %s\n", r.error);
	reset(&r);

	CHECK(start(&r, "GET", "ftp://127.0.0.1/x", NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "an ftp URL ends");
	CHECK(r.status == 0 && r.error[0] != '\0', "with an error: only http and https");
	printf("# %s\n", r.error);
	reset(&r);
}

static void test_chunked(void)
{
	struct result r = {0};
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	struct event *ev;
	char url[128];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 8) != 0)
		abort();
	getsockname(fd, (struct sockaddr *)&sin, &slen);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(sin.sin_port));
	ev = event_new(base, fd, EV_READ | EV_PERSIST, raw_accept, NULL);
	event_add(ev, NULL);

	CHECK(start(&r, "GET", url, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "a chunked answer after a 103 completes");
	CHECK(r.status == 200 && r.len == RAW_CHUNK * RAW_CHUNKS && r.body[0] == 'a' &&
	    r.body[RAW_CHUNK * RAW_CHUNKS - 1] == 'a' + RAW_CHUNKS - 1, "with the whole body");
	CHECK(r.headers == 2 && r.header_status == 200,
	    "on_header sees the final response's headers, not the interim one's");
	reset(&r);

	CHECK(start(&r, "GET", url, NULL, NULL, 0, RAW_CHUNK + 10, &collect) != NULL &&
	    run_until(&r.done, 1) == 0, "a chunked answer over max_response_bytes ends");
	CHECK_STR(r.error, "response larger than 610 bytes", "with the too-large error");
	CHECK(r.status == 0 && r.body_null, "status 0, no body");
	reset(&r);

	CHECK(start(&r, "GET", url, NULL, NULL, 0, RAW_CHUNK + 10, &stream) != NULL &&
	    run_until(&r.done, 1) == 0, "the same streamed ends");
	CHECK(strcmp(r.error, "response larger than 610 bytes") == 0 && r.streamed <= RAW_CHUNK + 10,
	    "with the same error, on_data never past the limit");
	reset(&r);

	CHECK(start(&r, "GET", url_stream, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0 && r.status == 200 && r.len == STREAM_BYTES,
	    "a body of many pieces is collected whole");
	reset(&r);
	event_free(ev);
	close(fd);
}

static void test_refused_at_start(void)
{
	struct result r = {0};
	const char *crlf[] = {"X-Evil: a\r\nX-Injected: b", NULL};
	struct crab_http_req_v1 req = {.size = sizeof(req), .method = "GET", .url = NULL};
	struct crab_http_handler_v1 h = collect;

	CHECK(start(&r, "GET", url_json, crlf, NULL, 0, 0, &collect) == NULL,
	    "a header with CRLF cannot start");
	CHECK(start(&r, "BAD METHOD", url_json, NULL, NULL, 0, 0, &collect) == NULL,
	    "a method that is not a token cannot start");
	CHECK(start(&r, "GET", url_json, NULL, NULL, -1, 0, &collect) == NULL,
	    "a negative timeout cannot start");
	CHECK(crab_http_client_start(client, &req, &collect, &r) == NULL,
	    "a request without a url cannot start");
	h.size = offsetof(struct crab_http_handler_v1, on_data);
	CHECK(start(&r, "GET", url_json, NULL, NULL, 0, 0, &h) == NULL,
	    "a handler whose size does not cover on_done cannot start");
	h.on_done = NULL;
	h.size = sizeof(h);
	CHECK(start(&r, "GET", url_json, NULL, NULL, 0, 0, &h) == NULL,
	    "nor one without on_done");
	run_for(50);
	CHECK_INT(r.done, 0, "none of them calls back");
	CHECK_INT(crab_http_client_active(client), 0, "or counts as active");
}

/* A module built against an older header passes smaller structs: what they do not
 * cover is not read, whatever lies there. */
static void test_sizes(void)
{
	struct result r = {0};
	struct {
		struct crab_http_handler_v1 h;
		char newer[32];
	} big = {.h = stream};
	struct crab_http_req_v1 req = {
		.size = offsetof(struct crab_http_req_v1, timeout_ms), .method = "GET",
		.url = url_big, .timeout_ms = 1, .max_response_bytes = 10,
	};

	CHECK(crab_http_client_start(client, &req, &collect, &r) != NULL &&
	    run_until(&r.done, 1) == 0, "a request whose size ends before timeout_ms completes");
	CHECK(r.status == 200 && r.len == BIG_BYTES,
	    "timeout_ms and max_response_bytes beyond its size are not read");
	reset(&r);

	req.size = offsetof(struct crab_http_req_v1, headers);
	req.headers = (const char *const *)(void *)&r; /* garbage: must not be read */
	req.url = url_json;
	CHECK(crab_http_client_start(client, &req, &collect, &r) != NULL &&
	    run_until(&r.done, 1) == 0 && r.status == 200,
	    "a request whose size ends before headers completes, headers unread");
	reset(&r);

	memset(big.newer, 0xff, sizeof(big.newer));
	big.h.size = sizeof(big);
	CHECK(start(&r, "GET", url_stream, NULL, NULL, 0, 0, &big.h) != NULL &&
	    run_until(&r.done, 1) == 0 && r.streamed == STREAM_BYTES,
	    "a larger handler from a newer header works");
	reset(&r);
}

static void test_cancel(void)
{
	struct result r = {0}, r2 = {0};
	struct crab_http_call *call;
	int seen = slow_seen;

	call = start(&r, "GET", url_slow, NULL, NULL, 0, 0, &collect);
	CHECK(call != NULL, "a slow call starts");
	run_until(&slow_seen, seen + 1);
	CHECK_INT(slow_seen, seen + 1, "the server has it");
	crab_http_client_cancel(call);
	CHECK_INT(crab_http_client_active(client), 0, "cancelled, it is no longer active");
	run_until(&slow_pending, 0);
	run_for(50);
	CHECK_INT(r.done + r.headers, 0, "no callback after cancel, even once the server answers");

	call = start(&r, "GET", url_json, NULL, NULL, 0, 0, &collect);
	crab_http_client_cancel(call);
	run_for(50);
	CHECK_INT(r.done + r.headers, 0, "a call cancelled before the loop ran never calls back");

	/* on_header of one call cancels another and starts a third */
	seen = slow_seen;
	call = start(&r2, "GET", url_slow, NULL, NULL, 0, 0, &collect);
	run_until(&slow_seen, seen + 1);
	r.cancel_in_header = call;
	r.start_in_header = &r2;
	CHECK(start(&r, "GET", url_json, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&r.done, 1) == 0 && r.status == 200,
	    "a call whose on_header cancels and starts calls completes");
	CHECK(run_until(&r2.done, 1) == 0 && r2.status == 200 && strstr(r2.body, "\"GET\"") != NULL,
	    "the call it started completes, reported through the same result");
	run_until(&slow_pending, 0);
	run_for(50);
	CHECK_INT(r2.done, 1, "the call it cancelled never called back");
	CHECK_INT(crab_http_client_active(client), 0, "nothing is left active");
	reset(&r);
	reset(&r2);

	/* on_header cancels its own call */
	call = start(&r, "GET", url_stream, NULL, NULL, 0, 0, &stream);
	r.cancel_in_header = call;
	run_for(200);
	CHECK(r.headers > 0 && r.done == 0, "a call cancelled from its own on_header never reaches on_done");
	CHECK_INT(r.chunks, 0, "nor on_data");
	reset(&r);
}

static void test_parallel(void)
{
	struct result r[8] = {{0}}, slow = {0};
	char tags[8][32];
	int all = 1, done = 0, want;

	CHECK(start(&slow, "GET", url_slow, NULL, NULL, 0, 0, &collect) != NULL,
	    "a slow call starts first");
	for (int i = 0; i < 8; i++) {
		const char *hdrs[2] = {tags[i], NULL};
		snprintf(tags[i], sizeof(tags[i]), "X-Tag: call%d", i);
		all &= start(&r[i], i % 2 ? "POST" : "GET", url_json, hdrs, i % 2 ? "abc" : NULL, 0,
		    0, &collect) != NULL;
	}
	CHECK(all, "eight more start at once");
	CHECK_INT(crab_http_client_active(client), 9, "nine are active");
	for (int k = 0; k < 1000 && done < 8; k++) {
		event_base_loop(base, EVLOOP_ONCE);
		done = 0;
		for (int i = 0; i < 8; i++)
			done += r[i].done;
	}
	CHECK_INT(done, 8, "the eight complete");
	CHECK_INT(slow.done, 0, "before the slow one");
	all = 1;
	for (int i = 0; i < 8; i++) {
		char want_body[128];
		snprintf(want_body, sizeof(want_body), "{\"len\":%d,\"tag\":\"call%d\",\"method\":\"%s\"}",
		    i % 2 ? 3 : 0, i, i % 2 ? "POST" : "GET");
		all &= r[i].status == 200 && r[i].body != NULL && strcmp(r[i].body, want_body) == 0;
		reset(&r[i]);
	}
	CHECK(all, "each with its own answer");
	CHECK(run_until(&slow.done, 1) == 0 && slow.status == 200, "the slow one completes too");
	reset(&slow);

	/* on_done starts the next call, as a retry would */
	slow.start_in_done = &r[0];
	CHECK(start(&slow, "GET", url_big, NULL, NULL, 0, 0, &collect) != NULL &&
	    run_until(&slow.done, 1) == 0 && slow.status == 200, "a call whose on_done starts another completes");
	CHECK(run_until(&r[0].done, 1) == 0 && r[0].status == 200 && strstr(r[0].body, "\"GET\"") != NULL,
	    "and so does the call started from on_done");
	reset(&slow);
	reset(&r[0]);

	/* on_done frees its arg; the client must not touch it after */
	want = 0;
	for (int i = 0; i < 4; i++) {
		struct result *h = calloc(1, sizeof(*h));
		h->free_in_done = 1;
		want += start(h, "GET", url_json, NULL, NULL, 0, 0, &collect) != NULL;
	}
	for (int k = 0; k < 1000 && crab_http_client_active(client) > 0; k++)
		event_base_loop(base, EVLOOP_ONCE);
	CHECK(want == 4 && crab_http_client_active(client) == 0, "on_done may free its arg");
}

static void test_free_in_flight(void)
{
	struct result r[3] = {{0}};
	int seen = slow_seen;

	CHECK(start(&r[0], "GET", url_slow, NULL, NULL, 0, 0, &collect) != NULL &&
	    start(&r[1], "GET", url_stream, NULL, NULL, 0, 0, &stream) != NULL &&
	    start(&r[2], "POST", url_json, NULL, "x", 0, 0, &collect) != NULL,
	    "three calls start");
	run_until(&slow_seen, seen + 1);
	crab_http_client_free(client);
	client = NULL;
	run_until(&slow_pending, 0);
	run_for(50);
	CHECK_INT(r[0].done + r[1].done + r[2].done + r[0].headers, 0,
	    "freeing the client with calls in flight calls nothing back");
	for (int i = 0; i < 3; i++)
		reset(&r[i]);
}

int main(void)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 8192, .max_body_bytes = 1 << 20, .idle_timeout_s = 5,
		.max_connections = 64,
	};
	struct timeval tv = {0, 10000};
	struct event *ticker;
	char err[256];
	int loopback = 0, port;

	base = event_base_new();
	ticker = event_new(base, -1, EV_PERSIST, tick, NULL);
	event_add(ticker, &tv); /* EVLOOP_ONCE never waits longer than this */
	srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
	CHECK(crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) == 0,
	    "the server listens");
	port = crab_http_server_port(srv);
	snprintf(url_json, sizeof(url_json), "http://127.0.0.1:%d/json", port);
	snprintf(url_slow, sizeof(url_slow), "http://127.0.0.1:%d/slow", port);
	snprintf(url_big, sizeof(url_big), "http://127.0.0.1:%d/big", port);
	snprintf(url_stream, sizeof(url_stream), "http://127.0.0.1:%d/stream", port);
	client = crab_http_client_new(base);
	CHECK(client != NULL, "a client is made");

	test_get_post();
	test_stream();
	test_errors();
	test_chunked();
	test_refused_at_start();
	test_sizes();
	test_cancel();
	test_parallel();
	test_free_in_flight();

	crab_http_client_free(NULL);
	run_until(&slow_pending, 0);
	crab_http_server_free(srv);
	event_free(ticker);
	event_base_free(base);
	return unit_done();
}
