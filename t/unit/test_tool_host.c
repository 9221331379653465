/* test_tool_host.c: the tool-host library (core/tool_host.h) over a plain loopback HTTP
 * server, its loop pumped in this thread: registration, a late reply after the deadline,
 * a malformed answer, and freeing the host with calls running and requests waiting. The
 * wire behaviour as a whole is t/t7402-tool-host.sh's. */
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
#include "core/tool_host.h"
#include "t/unit/unit.h"

static struct event_base *base;
static struct crab_http_server *srv;
static struct crab_tool_host *host;
static struct crab_tool_call *held; /* the "hold" tool's call, not answered yet */
static void *held_state;            /* its handler's state, freed by its cancel */
static int cancels, runs;

static void on_request(struct crab_http_request *req, void *arg)
{
	(void)arg;
	crab_tool_host_on_request(host, req);
}

static void tool_hold(void *arg, struct crab_tool_call *call)
{
	(void)arg;
	runs++;
	held = call;
	held_state = malloc(16);
	crab_tool_call_on_cancel(call, free, held_state);
}

static void count_cancel(void *arg)
{
	(void)arg;
	cancels++;
}

static void tool_hold_counted(void *arg, struct crab_tool_call *call)
{
	(void)arg;
	held = call;
	crab_tool_call_on_cancel(call, count_cancel, NULL);
}

static void tool_bad(void *arg, struct crab_tool_call *call)
{
	(void)arg;
	crab_tool_reply(call, json_string("not an array"), NULL);
}

struct client {
	int fd;
	char buf[8192];
	size_t got;
};

static void client_send(struct client *c, const char *body)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char req[2048];
	int n = snprintf(req, sizeof(req), "POST /v1/tools/call HTTP/1.1\r\nHost: t\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body), body);

	c->got = 0;
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_port = htons((unsigned short)crab_http_server_port(srv));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    write(c->fd, req, (size_t)n) != n)
		abort();
	fcntl(c->fd, F_SETFL, O_NONBLOCK);
}

/* Pumps the loop for up to ms, until the server closed the connection (1) or not (0). */
static int client_wait(struct client *c, int ms)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ssize_t n;

		event_base_loop(base, EVLOOP_NONBLOCK);
		n = read(c->fd, c->buf + c->got, sizeof(c->buf) - c->got - 1);
		if (n > 0)
			c->got += (size_t)n;
		c->buf[c->got] = '\0';
		if (n == 0 || (n < 0 && errno != EAGAIN)) {
			close(c->fd);
			return 1;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > ms)
			return 0;
		usleep(1000);
	}
}

static void test_registration(void)
{
	struct crab_tool_def d = {"t.hold", "holds", "{\"type\":\"object\"}", 0, tool_hold, NULL};
	char err[256] = "";

	CHECK(crab_tool_host_new(base, "Bad Name") == NULL, "a host name outside [a-z0-9_-] is refused");
	host = crab_tool_host_new(base, "t");
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) == 0, "a tool registers");
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) != 0 && strstr(err, "twice"),
	    "the same name twice is refused");
	d.name = "hold";
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) != 0, "a name without a host is refused");
	d.name = "t.a.b";
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) != 0, "a name with two dots is refused");
	d.name = "t.schema";
	d.input_schema = "{\"type\":";
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) != 0 && strstr(err, "input_schema"),
	    "a schema that is not JSON is refused");
	d.input_schema = "{\"type\":5}";
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) != 0 && strstr(err, "input_schema"),
	    "a schema failing crab_jschema_check is refused");
	printf("#   %s\n", err);
	d.input_schema = "[]";
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) != 0, "a schema that is no object is refused");
	d.name = "t.counted";
	d.input_schema = "{}";
	d.fn = tool_hold_counted;
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) == 0, "{} is a schema");
	d.name = "t.bad";
	d.fn = tool_bad;
	CHECK(crab_tool_host_add(host, &d, err, sizeof(err)) == 0, "a third tool registers");
}

static void test_late_reply(void)
{
	struct client c;

	client_send(&c, "{\"call_id\":\"late-1\",\"tool\":\"t.hold\",\"arguments\":{},"
			"\"context\":{\"tenant_id\":\"a\",\"deadline_ms\":50}}");
	CHECK(client_wait(&c, 2000) && strstr(c.buf, "\"deadline_exceeded\"") &&
	    strstr(c.buf, "\"retryable\":true"), "a handler silent past the deadline: deadline_exceeded");
	CHECK(held != NULL && crab_tool_host_running(host) == 1, "the handler still holds its call");
	crab_tool_reply_text(held, "late", NULL);
	free(held_state); /* a reply is no cancel */
	held = NULL;
	CHECK(crab_tool_host_running(host) == 0 && crab_tool_host_recorded(host) == 1,
	    "its late reply goes into the record");
	client_send(&c, "{\"call_id\":\"late-1\",\"tool\":\"t.hold\",\"arguments\":{},"
			"\"context\":{\"tenant_id\":\"a\"}}");
	CHECK(client_wait(&c, 2000) && strstr(c.buf, "\"text\":\"late\"") && runs == 1,
	    "the retry is answered from the record, without running again");
	{
		char name[128] = "a", body[512];
		for (int i = 0; i < 60; i++) /* a name of 121 bytes: "a" and 60 e-acute */
			memcpy(name + 1 + 2 * i, "\xc3\xa9", 3);
		snprintf(body, sizeof(body), "{\"call_id\":\"u-1\",\"tool\":\"%s\","
		    "\"context\":{\"tenant_id\":\"a\"}}", name);
		client_send(&c, body);
		CHECK(client_wait(&c, 2000) && strstr(c.buf, "\"unknown_tool\""),
		    "a message cut in the middle of a character is still encoded");
	}
	client_send(&c, "{\"call_id\":\"bad-1\",\"tool\":\"t.bad\",\"context\":{\"tenant_id\":\"a\"}}");
	CHECK(client_wait(&c, 2000) && strstr(c.buf, "\"internal\""),
	    "a malformed answer of the handler is ok:false internal");
}

static void test_free_in_flight(void)
{
	struct client a, b, d;

	client_send(&a, "{\"call_id\":\"f-1\",\"tool\":\"t.counted\",\"context\":{\"tenant_id\":\"a\"}}");
	CHECK(!client_wait(&a, 100) && held != NULL, "a call is running");
	client_send(&b, "{\"call_id\":\"f-1\",\"tool\":\"t.counted\",\"context\":{\"tenant_id\":\"a\"}}");
	client_send(&d, "{\"call_id\":\"f-2\",\"tool\":\"t.hold\",\"context\":{\"tenant_id\":\"a\"}}");
	CHECK(!client_wait(&b, 100), "a repeat of its call_id waits for it");
	CHECK(crab_tool_host_running(host) == 2, "two handlers run");
	crab_tool_host_free(host);
	host = NULL;
	CHECK(cancels == 1, "freeing the host cancels the running calls");
	CHECK(client_wait(&a, 2000) && strstr(a.buf, "503") && strstr(a.buf, "shutting_down"),
	    "a waiting request is answered 503 shutting_down");
	CHECK(client_wait(&b, 2000) && strstr(b.buf, "shutting_down"), "so is the one that joined it");
	CHECK(client_wait(&d, 2000) && strstr(d.buf, "shutting_down"), "and another call's");
}

int main(void)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 4096, .max_body_bytes = 1 << 20, .idle_timeout_s = 5,
		.max_connections = 64,
	};
	char err[256];
	int loopback;

	base = event_base_new();
	srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
	if (crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) != 0)
		return 1;
	test_registration();
	test_late_reply();
	test_free_in_flight();
	crab_http_server_free(srv);
	event_base_free(base);
	return unit_done();
}
