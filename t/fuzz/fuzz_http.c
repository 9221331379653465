/* fuzz_http.c: libFuzzer target for the HTTP connection layer: the input is written to
 * one end of a socketpair whose other end the server adopts; the loop runs until the
 * server has answered or closed. Small limits make every limit path reachable. */
#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/http_server.h"

static struct event_base *base;
static struct crab_http_server *srv;

static int on_head(struct crab_http_request *req, void *arg, struct crab_error *err)
{
	(void)arg;
	if (crab_http_request_header(req, "X-Refuse") != NULL) {
		crab_error_set(err, "forbidden", NULL, "refused");
		return -1;
	}
	return 0;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	size_t len;
	(void)arg;
	crab_http_request_body(req, &len);
	crab_http_reply(req, 200, "{}", 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crab_http_limits limits = {512, 1024, 1, 16};
	struct timeval tick = {0, 1000};
	char sink[4096];
	int sv[2];

	if (base == NULL) {
		base = event_base_new();
		srv = crab_http_server_new(base, &limits, on_head, on_request, NULL);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	crab_http_server_adopt(srv, sv[1], "fuzz");
	if (size > 0 && write(sv[0], data, size) < 0)
		abort();
	shutdown(sv[0], SHUT_WR);
	for (int i = 0; i < 20; i++) {
		event_base_loopexit(base, &tick);
		event_base_dispatch(base);
		while (recv(sv[0], sink, sizeof(sink), MSG_DONTWAIT) > 0)
			;
		if (crab_http_server_connections(srv) == 0)
			break;
	}
	close(sv[0]);
	return 0;
}
