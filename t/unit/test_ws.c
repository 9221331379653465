/* test_ws.c: the WebSocket layer on real connections on loopback: a crab_http_server
 * whose handler upgrades GET /ws to an echoing crab_ws (t/unit/ws_loop.h), driven by
 * crab_ws_connect and by raw sockets, all in this thread's loop; plain, then TLS. The
 * pure parts are in test_ws_frame.c. */
#include <openssl/err.h>
#include <signal.h>

#include "core/tls.h"
#include "t/unit/unit.h"
#include "t/unit/ws_mkframe.h"
#include "t/unit/ws_loop.h"


static void test_echo(void)
{
	struct side c;
	char big[64 << 10];
	int before = nservers;

	CHECK(client(&c, "ws", NULL, "/ws", NULL) != NULL, "crab_ws_connect starts a connection");
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	CHECK(c.opens == 1 && c.closes == 0, "on_open: the server upgraded GET /ws");
	CHECK(nservers == before + 1 && strcmp(servers[before].auth, "Bearer t0ken") == 0,
	    "the handler saw the extra Authorization header");
	CHECK(crab_http_server_connections(srv) == 0 && crab_http_server_inflight(srv) == 0,
	    "the upgraded connection has left the HTTP server's count");
	CHECK(crab_ws_ssl(c.ws) == NULL, "a ws:// connection has no TLS");

	crab_ws_send(c.ws, 0, "hello", 5);
	PUMP_UNTIL(c.messages > 0, 3);
	CHECK(c.messages == 1 && !c.binary && c.last_len == 5 && strcmp(c.last, "hello") == 0,
	    "a text message comes back");
	CHECK(crab_ws_send(c.ws, 0, "\xc0\xaf", 2) == -1, "sending text that is not UTF-8 fails");

	crab_ws_send(c.ws, 1, "a\0b", 3);
	PUMP_UNTIL(c.messages > 1, 3);
	CHECK(c.messages == 2 && c.binary && c.last_len == 3 && memcmp(c.last, "a\0b", 3) == 0,
	    "a binary message with a NUL comes back whole");

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	crab_ws_send(c.ws, 0, big, sizeof(big));
	CHECK(crab_ws_backlog(c.ws) > 0, "a large message shows in the backlog until written");
	PUMP_UNTIL(c.messages > 2, 5);
	CHECK(c.messages == 3 && c.last_len == sizeof(big) && memcmp(c.last, big, sizeof(big)) == 0,
	    "a message of exactly the server's limit (64 KiB) comes back whole");
	CHECK_INT(crab_ws_backlog(c.ws), 0, "and the backlog is empty again");

	crab_ws_close(c.ws, 1000, "bye");
	CHECK(crab_ws_send(c.ws, 0, "x", 1) == -1 && crab_ws_close(c.ws, 1000, NULL) == -1,
	    "a closing ws refuses sends and a second close");
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 1000, "the client's close handshake ends with 1000 on its side");
	CHECK(servers[before].closes == 1 && servers[before].code == 1000 &&
	    strcmp(servers[before].reason, "bye") == 0, "and with 1000 and the reason on the server's");
	pump_for(0.1);
	CHECK(c.closes == 1 && servers[before].closes == 1, "on_close came once on each side");
	free(c.last);
}

static void test_too_big(void)
{
	struct side c;
	char *big = malloc((64 << 10) + 1);
	int before = nservers;

	memset(big, 'z', (64 << 10) + 1);
	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	crab_ws_send(c.ws, 1, big, (64 << 10) + 1);
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 1009, "one byte over the server's limit: the client sees 1009");
	CHECK(servers[before].closes == 1 && servers[before].code == 1009 &&
	    servers[before].messages == 0, "the server closed it with 1009, delivering nothing");
	free(big);
	free(c.last);
}

static void test_server_closes(void)
{
	struct side c, d;
	int before = nservers;

	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	crab_ws_send(c.ws, 0, "close-me", 8);
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 4000 && strcmp(c.reason, "asked to") == 0 && c.messages == 0,
	    "crab_ws_close from inside on_message: the client sees 4000 and the reason");
	CHECK(servers[before].closes == 1 && servers[before].code == 4000,
	    "the server's on_close says 4000 too");
	free(c.last);

	before = nservers;
	client(&d, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(d.opens > 0 || d.closes > 0, 3);
	crab_ws_send(d.ws, 0, "free-me", 7);
	PUMP_UNTIL(d.closes > 0, 5);
	CHECK(d.closes == 1 && d.code == 1006,
	    "crab_ws_free from inside on_message: the client sees the connection drop, 1006");
	CHECK_INT(servers[before].closes, 0, "and the freed side gets no on_close");
	free(d.last);
}

static void test_client_free(void)
{
	struct side c;
	int before = nservers;

	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	crab_ws_free(c.ws);
	PUMP_UNTIL(servers[before].closes > 0, 3);
	pump_for(0.05);
	CHECK(c.closes == 0, "crab_ws_free by the owner calls no on_close");
	CHECK(servers[before].closes == 1 && servers[before].code == 1006,
	    "the server sees 1006 for a connection dropped without a close");
	free(c.last);
}

static void test_raw(void)
{
	unsigned char frame[64];
	char buf[4096];
	size_t n, got;
	int before = nservers, fd;

	/* a frame in the same packet as the request: already in the input at the upgrade */
	fd = raw_connect();
	memcpy(buf, upgrade_req, sizeof(upgrade_req) - 1);
	n = mkframe((unsigned char *)buf + sizeof(upgrade_req) - 1, 1, CRAB_WS_TEXT, "early", 5, 1);
	if (write(fd, buf, sizeof(upgrade_req) - 1 + n) < 0)
		abort();
	got = raw_read(fd, buf, sizeof(buf), sizeof(upgrade_answer) - 1 + 7, 3);
	CHECK(got == sizeof(upgrade_answer) - 1 + 7 &&
	    memcmp(buf, upgrade_answer, sizeof(upgrade_answer) - 1) == 0,
	    "the 101 has Upgrade, Connection and the RFC's Sec-WebSocket-Accept");
	CHECK(memcmp(buf + sizeof(upgrade_answer) - 1, "\x81\x05" "early", 7) == 0,
	    "a frame sent with the request is read after the upgrade, and echoed unmasked");

	/* half a frame, then the connection goes */
	n = crab_ws_frame_header(frame, 1, CRAB_WS_BINARY, 100, KEY);
	memset(frame + n, 'h', 10);
	if (write(fd, frame, n + 10) < 0)
		abort();
	pump_for(0.05);
	close(fd);
	PUMP_UNTIL(servers[before].closes > 0, 3);
	pump_for(0.1);
	CHECK(servers[before].closes == 1 && servers[before].code == 1006,
	    "a disconnect in the middle of a frame: on_close(1006), once");

	/* a bad handshake is the caller's 400 */
	fd = raw_connect();
	{
		const char bad[] = "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
				   "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
		if (write(fd, bad, sizeof(bad) - 1) < 0)
			abort();
	}
	got = raw_read(fd, buf, sizeof(buf), sizeof(buf), 3);
	CHECK(strncmp(buf, "HTTP/1.1 400 ", 13) == 0 && strstr(buf, "Sec-WebSocket-Key") != NULL &&
	    strstr(buf, "\"code\":\"bad_request\"") != NULL,
	    "a handshake without its key gets a JSON 400 saying so");
	CHECK(strstr(buf, "Sec-WebSocket-Version: 13\r\n") != NULL && strstr(buf, "Connection: close") != NULL,
	    "with the version header, and the connection closes");
	close(fd);
	(void)got;
}

/* The server pings; a crab_ws client answers and stays, a raw socket that never
 * answers is closed with 1001 after the idle limit. */
static void test_idle(void)
{
	struct crab_ws_limits saved = server_limits;
	struct side c;
	unsigned char buf[4096];
	size_t got;
	int raw_at, fd, pings = 0, close_at = -1;

	server_limits.idle_timeout_s = 2;
	server_limits.ping_interval_s = 1;
	client(&c, "ws", NULL, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 3);
	raw_at = nservers;
	fd = raw_connect();
	if (write(fd, upgrade_req, sizeof(upgrade_req) - 1) < 0)
		abort();
	got = raw_read(fd, (char *)buf, sizeof(buf), sizeof(upgrade_answer) - 1, 3);
	got = raw_read(fd, (char *)buf, sizeof(buf), sizeof(buf), 4);
	for (size_t i = 0; i + 1 < got; i += 2 + (buf[i + 1] & 0x7f)) {
		if (buf[i] == 0x89)
			pings++;
		if (buf[i] == 0x88 && close_at < 0)
			close_at = (int)i;
	}
	CHECK(pings >= 1, "the server pings every interval");
	CHECK(close_at >= 0 && buf[close_at + 2] == 0x03 && buf[close_at + 3] == 0xe9,
	    "a peer silent past the idle limit gets a close with 1001");
	close(fd);
	PUMP_UNTIL(servers[raw_at].closes > 0, 3);
	CHECK(servers[raw_at].closes == 1 && servers[raw_at].code == 1001,
	    "and its on_close says 1001");
	CHECK(c.opens == 1 && c.closes == 0 && c.ws != NULL,
	    "the crab_ws client, answering the pings, is still open");
	crab_ws_close(c.ws, 1000, NULL);
	PUMP_UNTIL(c.closes > 0, 3);
	free(c.last);
	server_limits = saved;
}

static void test_connect_failures(void)
{
	struct side c;
	char err[256] = "";
	int fd;
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	client(&c, "ws", NULL, "/nope", NULL);
	PUMP_UNTIL(c.closes > 0, 3);
	CHECK(c.opens == 0 && c.closes == 1 && c.code == 1006 && strstr(c.reason, "404") != NULL &&
	    strstr(c.reason, "not_found") != NULL,
	    "a server that answers 404 gives on_close(1006) with status and body, no on_open");
	free(c.last);

	/* a port nobody listens on: bound, never listening */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	getsockname(fd, (struct sockaddr *)&sin, &len);
	memset(&c, 0, sizeof(c));
	{
		char url[64];
		snprintf(url, sizeof(url), "ws://127.0.0.1:%d/ws", ntohs(sin.sin_port));
		c.ws = crab_ws_connect(base, url, NULL, NULL, NULL, &client_cb, &c, err, sizeof(err));
	}
	PUMP_UNTIL(c.closes > 0, 3);
	CHECK(c.ws == NULL && c.closes == 1 && c.code == 1006 && strstr(c.reason, "refused") != NULL,
	    "a refused connection gives on_close(1006) saying so");
	close(fd);

	CHECK(crab_ws_connect(base, "http://x/", NULL, NULL, NULL, &client_cb, &c, err, sizeof(err)) == NULL &&
	    strstr(err, "ws://") != NULL, "a url that is not ws:// or wss:// is refused");
	CHECK(crab_ws_connect(base, "wss://127.0.0.1:1/", NULL, NULL, NULL, &client_cb, &c, err,
	    sizeof(err)) == NULL && strstr(err, "tls") != NULL, "wss without a tls context is refused");
	{
		static const char *const bad[] = {"X-A: b\r\nX-Evil: 1", NULL};
		CHECK(crab_ws_connect(base, "ws://127.0.0.1:1/", NULL, bad, NULL, &client_cb, &c, err,
		    sizeof(err)) == NULL, "a header with a line break is refused");
	}
	CHECK(crab_ws_connect(base, "ws://[::1/", NULL, NULL, NULL, &client_cb, &c, err, sizeof(err)) == NULL,
	    "a broken IPv6 host is refused");
}

/* ---- TLS ---- */

static int reject_all(int ok, X509_STORE_CTX *store)
{
	(void)ok;
	(void)store;
	return 0;
}

static void test_tls(const struct crab_identity *gw, const struct crab_identity *a)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct side c;
	char fp[CRAB_FP_HEX] = "";
	int before = nservers;

	SSL_CTX_use_certificate(cctx, a->cert);
	SSL_CTX_use_PrivateKey(cctx, a->key);
	client(&c, "wss", cctx, "/ws", NULL);
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 5);
	CHECK(c.opens == 1, "wss: the client opens over TLS");
	if (c.opens != 1)
		printf("#   %d %s\n", c.code, c.reason);
	CHECK(c.ws != NULL && crab_ws_ssl(c.ws) != NULL &&
	    crab_tls_peer_fingerprint(crab_ws_ssl(c.ws), fp) == 1 && strcmp(fp, gw->fingerprint) == 0,
	    "the client reads the server's fingerprint from crab_ws_ssl");
	CHECK_STR(servers[before].fp, a->fingerprint,
	    "the handler read the client certificate's fingerprint before the upgrade");
	crab_ws_send(c.ws, 0, "over tls", 8);
	PUMP_UNTIL(c.messages > 0, 3);
	CHECK(c.messages == 1 && strcmp(c.last, "over tls") == 0, "a message comes back over TLS");
	crab_ws_close(c.ws, 1000, "done");
	PUMP_UNTIL(c.closes > 0 && servers[before].closes > 0, 5);
	CHECK(c.closes == 1 && c.code == 1000 && servers[before].closes == 1 &&
	    servers[before].code == 1000, "the close handshake over TLS: 1000 on both sides");
	free(c.last);

	/* the caller's pin, through its verify callback: this layer does not override it */
	SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, reject_all);
	client(&c, "wss", cctx, "/ws", NULL);
	PUMP_UNTIL(c.closes > 0, 5);
	CHECK(c.opens == 0 && c.closes == 1 && c.code == 1015 && strstr(c.reason, "tls") != NULL,
	    "a server the caller's verify callback rejects: on_close(1015)");
	free(c.last);
	SSL_CTX_free(cctx);
}

/* ---- for t/fakes/ws-echo-check.mjs: against the ws npm package ---- */

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

/* --serve: the echo server on a free loopback port, printed as "port N", until SIGTERM
 * or stdin closes. */
static int serve(void)
{
	struct crab_http_limits limits = {4096, 2048, 5, 64};
	struct event *term, *in;
	char err[256];
	int loopback;

	serving = 1;
	base = event_base_new();
	srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
	if (crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("port %d\n", crab_http_server_port(srv));
	fflush(stdout);
	term = evsignal_new(base, SIGTERM, stop_cb, NULL);
	in = event_new(base, 0, EV_READ, stop_cb, NULL);
	event_add(term, NULL);
	event_add(in, NULL);
	event_base_dispatch(base);
	event_free(term);
	event_free(in);
	crab_http_server_free(srv);
	for (int i = 0; i < 32; i++) {
		crab_ws_free(servers[i].ws);
		free(servers[i].last);
	}
	event_base_free(base);
	return 0;
}

/* --client URL: sends a text and a binary message, expects them back, closes with
 * 1000; exit status 0 when all of that happened. */
static int connect_once(const char *url)
{
	static const char *const headers[] = {"Authorization: Bearer from-crab", NULL};
	struct side c = {0};
	char err[256];
	int ok;

	base = event_base_new();
	c.ws = crab_ws_connect(base, url, NULL, headers, NULL, &client_cb, &c, err, sizeof(err));
	if (c.ws == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	PUMP_UNTIL(c.opens > 0 || c.closes > 0, 5);
	crab_ws_send(c.ws, 0, "hello from crab \xe2\x82\xac", 19);
	PUMP_UNTIL(c.messages > 0 || c.closes > 0, 5);
	ok = c.messages == 1 && c.last != NULL && strcmp(c.last, "hello from crab \xe2\x82\xac") == 0;
	printf("text echo: %s\n", ok ? "ok" : "missing");
	if (c.ws != NULL)
		crab_ws_send(c.ws, 1, "\0\1\2", 3);
	PUMP_UNTIL(c.messages > 1 || c.closes > 0, 5);
	ok = ok && c.messages == 2 && c.binary && c.last_len == 3;
	printf("binary echo: %s\n", c.messages == 2 && c.binary ? "ok" : "missing");
	if (c.ws != NULL)
		crab_ws_close(c.ws, 1000, "done");
	PUMP_UNTIL(c.closes > 0, 5);
	printf("close: %d %s\n", c.code, c.reason);
	ok = ok && c.closes == 1 && c.code == 1000;
	free(c.last);
	event_base_free(base);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 4096, .max_body_bytes = 2048, .idle_timeout_s = 5,
		.max_connections = 64,
	};
	char tmpdir[] = "/tmp/crab-ws-XXXXXX", dir[600], err[256], cmd[700];
	struct crab_identity *gw = NULL, *a = NULL;
	SSL_CTX *ctx;
	int loopback = 0;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && strcmp(argv[1], "--serve") == 0)
		return serve();
	if (argc == 3 && strcmp(argv[1], "--client") == 0)
		return connect_once(argv[2]);
	base = event_base_new();
	srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
	CHECK(crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) == 0,
	    "the HTTP server listens on loopback");
	test_echo();
	test_too_big();
	test_server_closes();
	test_client_free();
	test_raw();
	test_idle();
	test_connect_failures();
	CHECK_INT(upgrades_refused, 1, "only the keyless handshake failed crab_ws_check_upgrade");
	crab_http_server_free(srv);

	if (mkdtemp(tmpdir) == NULL)
		abort();
	snprintf(dir, sizeof(dir), "%s/gw", tmpdir);
	gw = crab_identity_load(dir, "gateway", 1, NULL, err, sizeof(err));
	snprintf(dir, sizeof(dir), "%s/a", tmpdir);
	a = crab_identity_load(dir, "client-a", 1, NULL, err, sizeof(err));
	if (CHECK(gw != NULL && a != NULL, "identities for TLS")) {
		ctx = crab_tls_server_ctx(gw, 0, err, sizeof(err));
		srv = crab_http_server_new(base, &limits, NULL, on_request, NULL);
		crab_http_server_set_tls(srv, ctx);
		SSL_CTX_free(ctx);
		crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err));
		test_tls(gw, a);
		{
			/* a ws outlives the HTTP server that upgraded it */
			struct side c;
			int before = nservers;
			SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());

			client(&c, "wss", cctx, "/ws", NULL);
			PUMP_UNTIL(c.opens > 0 || c.closes > 0, 5);
			crab_http_server_free(srv);
			crab_ws_send(c.ws, 0, "still here", 10);
			PUMP_UNTIL(c.messages > 0, 3);
			CHECK(c.messages == 1 && servers[before].ws != NULL,
			    "an upgraded connection outlives the HTTP server's free");
			crab_ws_free(c.ws);
			free(c.last);
			SSL_CTX_free(cctx);
		}
	}
	for (int i = 0; i < 32; i++) {
		crab_ws_free(servers[i].ws);
		free(servers[i].last);
	}
	pump_for(0.05);
	event_base_free(base);
	crab_identity_free(gw);
	crab_identity_free(a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	ERR_clear_error();
	return unit_done();
}
