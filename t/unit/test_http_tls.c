/* test_http_tls.c: the HTTP server over TLS 1.3, with identities made in a temporary
 * directory. The client is libcurl's multi interface, pumped in this thread together
 * with the server's loop (so the server's calls need no locking); raw sockets send what
 * no TLS client would. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/http_server.h"
#include "core/identity.h"
#include "core/tls.h"
#include "t/unit/unit.h"

static struct event_base *base;
static struct crab_http_server *srv;
static CURLM *multi;
static char tmpdir[] = "/tmp/crab-tls-XXXXXX";

/* What the handlers saw last. */
static int requests_seen;
static char seen_fp[CRAB_FP_HEX] = "";
static int seen_fp_null, seen_tls;
static struct crab_http_request *held; /* "/hold": the handler keeps it unanswered */
static size_t self_closed;

static int on_head(struct crab_http_request *req, void *arg, struct crab_error *err)
{
	const char *path = crab_http_request_path(req);
	const char *fp = crab_http_request_peer_fingerprint(req);
	(void)arg;

	if (strcmp(path, "/private") == 0 && fp == NULL) {
		crab_error_set(err, "unauthenticated", NULL, "a client certificate is needed");
		return -1;
	}
	/* a revocation decided while the connection is inside the parser */
	if (strcmp(path, "/self-revoke") == 0 && fp != NULL)
		self_closed = crab_http_server_close_fingerprint(srv, fp);
	return 0;
}

static void on_request(struct crab_http_request *req, void *arg)
{
	const char *fp = crab_http_request_peer_fingerprint(req);
	char body[160];
	(void)arg;

	requests_seen++;
	seen_fp_null = fp == NULL;
	snprintf(seen_fp, sizeof(seen_fp), "%s", fp ? fp : "");
	seen_tls = crab_http_request_is_tls(req);
	if (strcmp(crab_http_request_path(req), "/hold") == 0) {
		held = req;
		return;
	}
	snprintf(body, sizeof(body), "{\"fp\":\"%s\",\"tls\":%d}", fp ? fp : "", seen_tls);
	crab_http_reply(req, 200, body, strlen(body));
}

/* ---- the curl side ---- */

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char body[4096];
	size_t len;
	int done;
	CURLcode rc;
	long status;
	long connects; /* new connections this transfer made: 0 when it reused one */
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, room = sizeof(x->body) - 1 - x->len;

	memcpy(x->body + x->len, p, len < room ? len : room);
	x->len += len < room ? len : room;
	x->body[x->len] = '\0';
	return len;
}

/* A client presenting the identity in dir, or no certificate when dir is NULL. */
static void xfer_init(struct xfer *x, const char *dir)
{
	char path[512];

	memset(x, 0, sizeof(*x));
	x->easy = curl_easy_init();
	curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(x->easy, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	if (dir != NULL) {
		snprintf(path, sizeof(path), "%s/identity.crt", dir);
		curl_easy_setopt(x->easy, CURLOPT_SSLCERT, path);
		snprintf(path, sizeof(path), "%s/identity.key", dir);
		curl_easy_setopt(x->easy, CURLOPT_SSLKEY, path);
	}
}

static void xfer_release(struct xfer *x)
{
	curl_slist_free_all(x->headers);
	curl_easy_cleanup(x->easy);
}

static void xfer_start(struct xfer *x, const char *path)
{
	char url[256];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", crab_http_server_port(srv), path);
	curl_easy_setopt(x->easy, CURLOPT_URL, url);
	x->len = 0;
	x->body[0] = '\0';
	x->done = 0;
	x->status = 0;
	curl_multi_add_handle(multi, x->easy);
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One turn of both sides; notes the transfers that ended. */
static void pump_once(void)
{
	int running;
	int left;
	CURLMsg *m;

	curl_multi_perform(multi, &running);
	event_base_loop(base, EVLOOP_NONBLOCK);
	while ((m = curl_multi_info_read(multi, &left)) != NULL) {
		struct xfer *x;
		char *p;
		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
		x = (struct xfer *)(void *)p;
		x->rc = m->data.result;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &x->connects);
		x->done = 1;
		curl_multi_remove_handle(multi, x->easy);
	}
	curl_multi_poll(multi, NULL, 0, 2, NULL);
}

/* Pumps until x is done (or held is set, with until_held), 5 seconds at most. */
static void pump_until(struct xfer *x, int until_held)
{
	double end = now_s() + 5;

	while (!x->done && !(until_held && held != NULL) && now_s() < end)
		pump_once();
}

static void pump_for(double seconds)
{
	double end = now_s() + seconds;
	while (now_s() < end)
		pump_once();
}

static void fetch(struct xfer *x, const char *path)
{
	xfer_start(x, path);
	pump_until(x, 0);
}

/* Drops the connections curl keeps, so that a test counts only its own. */
static void fresh_clients(void)
{
	curl_multi_cleanup(multi);
	multi = curl_multi_init();
	pump_for(0.2);
}

/* ---- raw sockets ---- */

static int count_of(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static int raw_connect(struct crab_http_server *s)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sin.sin_port = htons((unsigned short)crab_http_server_port(s));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		abort();
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Reads what comes until the server closes, or max_s pass: the seconds it took, or -1
 * when it did not close. Meanwhile sends the drip bytes, one every 200 ms. */
static double raw_until_closed(int fd, char *buf, size_t cap, double max_s, const char *drip,
    size_t driplen)
{
	double start = now_s(), next_drip = start;
	size_t got = 0;

	for (;;) {
		char tmp[512];
		ssize_t n;

		if (driplen > 0 && now_s() >= next_drip) {
			if (send(fd, drip, 1, MSG_NOSIGNAL) == 1) {
				drip++;
				driplen--;
			}
			next_drip += 0.2;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		n = read(fd, tmp, sizeof(tmp));
		if (n == 0 || (n < 0 && errno != EAGAIN))
			break;
		if (n > 0 && got + (size_t)n < cap) {
			memcpy(buf + got, tmp, (size_t)n);
			got += (size_t)n;
		}
		if (now_s() - start > max_s) {
			buf[got] = '\0';
			return -1;
		}
		usleep(1000);
	}
	buf[got] = '\0';
	return now_s() - start;
}

/* A TLS client on fd, in OpenSSL's own terms, pumping the server meanwhile; NULL when
 * the handshake fails. */
static SSL *raw_tls(SSL_CTX *cctx, int fd)
{
	SSL *ssl = SSL_new(cctx);
	double end = now_s() + 3;

	SSL_set_fd(ssl, fd);
	while (now_s() < end) {
		int r = SSL_connect(ssl), e;
		if (r == 1)
			return ssl;
		e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			break;
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

/* Reads into buf until the server's close_notify (returns 1), another end (0), or 3 s. */
static int raw_tls_read_all(SSL *ssl, char *buf, size_t cap)
{
	double end = now_s() + 3;
	size_t got = 0;
	int clean = 0;

	while (now_s() < end) {
		int r = SSL_read(ssl, buf + got, (int)(cap - 1 - got)), e;
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ) {
			clean = e == SSL_ERROR_ZERO_RETURN;
			break;
		}
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	ERR_clear_error();
	buf[got] = '\0';
	return clean;
}

/* ---- the tests ---- */

static void test_get(const char *dir_a, const char *fp_a)
{
	struct xfer x;

	xfer_init(&x, NULL);
	fetch(&x, "/who");
	CHECK(x.rc == CURLE_OK && x.status == 200, "a GET over TLS 1.3 is answered 200");
	CHECK(seen_tls && seen_fp_null, "the handler sees TLS and no fingerprint without a client certificate");
	CHECK(strstr(x.body, "\"fp\":\"\",\"tls\":1") != NULL, "the reply's body arrives whole");
	xfer_release(&x);

	xfer_init(&x, dir_a);
	fetch(&x, "/who");
	CHECK(x.rc == CURLE_OK && x.status == 200, "a client with a certificate is answered too");
	CHECK_STR(seen_fp, fp_a, "the handler sees the fingerprint of the client's certificate");
	fetch(&x, "/who");
	CHECK(x.rc == CURLE_OK && x.connects == 0 && strcmp(seen_fp, fp_a) == 0,
	    "a kept-alive connection serves a second request, with the same fingerprint");
	xfer_release(&x);
}

/* The writes that happen in the middle of a request: 100 Continue, and the answers to
 * pipelined requests. */
static void test_interim_and_pipelined(void)
{
	const char two[] = "GET /one HTTP/1.1\r\nHost: t\r\n\r\n"
			   "GET /two HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
	char body[1500], buf[4096];
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	struct xfer x;
	SSL *ssl;
	int fd;

	memset(body, 'b', sizeof(body));
	xfer_init(&x, NULL);
	x.headers = curl_slist_append(NULL, "Expect: 100-continue");
	curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, x.headers);
	curl_easy_setopt(x.easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(x.easy, CURLOPT_POSTFIELDSIZE, (long)sizeof(body));
	/* longer than fetch waits: the body goes only after the server's 100 */
	curl_easy_setopt(x.easy, CURLOPT_EXPECT_100_TIMEOUT_MS, 10000L);
	fetch(&x, "/continue");
	CHECK(x.rc == CURLE_OK && x.status == 200, "Expect: 100-continue works over TLS");
	xfer_release(&x);

	fd = raw_connect(srv);
	ssl = raw_tls(cctx, fd);
	if (ssl != NULL) {
		SSL_write(ssl, two, (int)sizeof(two) - 1);
		raw_tls_read_all(ssl, buf, sizeof(buf));
		SSL_free(ssl);
	} else {
		buf[0] = '\0';
	}
	CHECK(count_of(buf, "HTTP/1.1 200 OK") == 2, "two pipelined requests over TLS get two answers");
	close(fd);
	ERR_clear_error();
	SSL_CTX_free(cctx);
}

static void test_refusals(const char *dir_a)
{
	static char big[200000];
	char pad[3100];
	struct xfer x;
	int before;

	xfer_init(&x, NULL);
	fetch(&x, "/private");
	CHECK(x.rc == CURLE_OK && x.status == 401 && strstr(x.body, "\"code\":\"unauthenticated\"") != NULL,
	    "a request refused in on_head (401) reaches the client as the JSON error");
	xfer_release(&x);

	xfer_init(&x, dir_a);
	fetch(&x, "/private");
	CHECK(x.rc == CURLE_OK && x.status == 200, "the same path with a client certificate passes");
	xfer_release(&x);

	/* The body is sent at once (no 100-continue), so it is still coming in when the
	 * server answers: the lingering close must keep that from becoming a reset. */
	memset(big, 'x', sizeof(big));
	xfer_init(&x, NULL);
	x.headers = curl_slist_append(NULL, "Expect:");
	curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, x.headers);
	curl_easy_setopt(x.easy, CURLOPT_POSTFIELDS, big);
	curl_easy_setopt(x.easy, CURLOPT_POSTFIELDSIZE, (long)sizeof(big));
	before = requests_seen;
	fetch(&x, "/upload");
	CHECK(x.rc == CURLE_OK && x.status == 413 && strstr(x.body, "\"code\":\"body_too_large\"") != NULL,
	    "a body over the limit gets the JSON 413 over TLS, not a reset");
	CHECK_INT(requests_seen, before, "and the handler never sees it");
	xfer_release(&x);

	memset(pad, 'a', sizeof(pad));
	memcpy(pad, "X-Pad: ", 7);
	pad[sizeof(pad) - 1] = '\0';
	xfer_init(&x, NULL);
	x.headers = curl_slist_append(NULL, pad);
	curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, x.headers);
	fetch(&x, "/big");
	CHECK(x.rc == CURLE_OK && x.status == 431 && strstr(x.body, "headers_too_large") != NULL,
	    "headers over the limit get the JSON 431 over TLS");
	xfer_release(&x);
}

/* The lingering close on TLS: close_notify after the answer, then the server still
 * reads (and drops) what the client sends, instead of resetting it. */
static void test_linger(void)
{
	const char head[] = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 99999\r\n\r\nxxxx";
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	char buf[2048], more[1000];
	SSL *ssl;
	int fd, clean;
	size_t base_conns;

	fresh_clients();
	base_conns = crab_http_server_connections(srv);
	fd = raw_connect(srv);
	ssl = raw_tls(cctx, fd);
	CHECK(ssl != NULL, "an OpenSSL client connects");
	if (ssl == NULL)
		goto out;
	SSL_write(ssl, head, (int)sizeof(head) - 1);
	clean = raw_tls_read_all(ssl, buf, sizeof(buf));
	CHECK(strncmp(buf, "HTTP/1.1 413 ", 13) == 0 && strstr(buf, "body_too_large") != NULL,
	    "a body announced over the limit gets its 413");
	CHECK(clean, "followed by close_notify: the client knows the answer is whole");
	memset(more, 'x', sizeof(more));
	CHECK(SSL_write(ssl, more, (int)sizeof(more)) == (int)sizeof(more),
	    "the client may still send the rest of its body");
	pump_for(0.3);
	CHECK_INT(crab_http_server_connections(srv), base_conns + 1,
	    "the server lingers, reading it, instead of resetting");
	SSL_free(ssl);
	close(fd);
	pump_for(0.2);
	CHECK_INT(crab_http_server_connections(srv), base_conns, "and closes when the client does");
out:
	ERR_clear_error();
	SSL_CTX_free(cctx);
}

static void test_close_fingerprint(const char *dir_a, const char *fp_a, const char *dir_b,
    const char *fp_b)
{
	struct xfer a, b, none;
	size_t conns;

	fresh_clients();
	CHECK_INT(crab_http_server_connections(srv), 0, "the earlier clients' connections are gone");
	xfer_init(&a, dir_a);
	xfer_init(&b, dir_b);
	xfer_init(&none, NULL);
	fetch(&a, "/who");
	fetch(&b, "/who");
	fetch(&none, "/who");
	conns = crab_http_server_connections(srv);
	CHECK(a.rc == CURLE_OK && b.rc == CURLE_OK && none.rc == CURLE_OK && conns == 3,
	    "three clients, two certificates and none, are kept alive");
	CHECK_INT(crab_http_server_close_fingerprint(srv, fp_a), 1,
	    "closing a fingerprint closes its one connection");
	CHECK_INT(crab_http_server_connections(srv), conns - 1, "at once");
	CHECK_INT(crab_http_server_close_fingerprint(srv, fp_a), 0, "and only once");
	pump_for(0.1);
	fetch(&b, "/who");
	CHECK(b.rc == CURLE_OK && b.connects == 0 && strcmp(seen_fp, fp_b) == 0,
	    "another certificate's connection is still there");
	fetch(&none, "/who");
	CHECK(none.rc == CURLE_OK && none.connects == 0, "so is the one without a certificate");
	fetch(&a, "/who");
	CHECK(a.rc == CURLE_OK && a.connects == 1 && strcmp(seen_fp, fp_a) == 0,
	    "the closed one's client must connect anew (TLS lets it: the HTTP layer decides)");

	/* In flight: the handler holds the request while the connection goes. On a new
	 * connection, or curl would retry the request on another. */
	curl_easy_setopt(a.easy, CURLOPT_FRESH_CONNECT, 1L);
	xfer_start(&a, "/hold");
	pump_until(&a, 1);
	CHECK(held != NULL && crab_http_server_inflight(srv) == 1, "a request is with its handler");
	CHECK_INT(crab_http_server_close_fingerprint(srv, fp_a), 2,
	    "both connections of the certificate close, the one with a request in flight too");
	pump_until(&a, 0);
	CHECK(a.done && a.rc != CURLE_OK, "its client sees the connection end, without an answer");
	CHECK_INT(crab_http_server_inflight(srv), 1, "the request stays in flight until the handler replies");
	if (held != NULL)
		crab_http_reply(held, 200, "{}", 2);
	held = NULL;
	CHECK_INT(crab_http_server_inflight(srv), 0, "the late reply is dropped safely");

	/* From on_head, inside the parser. */
	self_closed = 0;
	fetch(&a, "/self-revoke");
	CHECK(self_closed == 1 && a.rc != CURLE_OK,
	    "a connection closed from its own on_head goes without an answer");
	fetch(&b, "/who");
	CHECK(b.rc == CURLE_OK && b.connects == 0, "the other certificate's connection is untouched");
	xfer_release(&a);
	xfer_release(&b);
	xfer_release(&none);
}

static void test_not_tls(void)
{
	const char req[] = "GET /who HTTP/1.1\r\nHost: t\r\n\r\n";
	char buf[4096];
	struct xfer x;
	int before = requests_seen, fd;
	double t;

	fresh_clients();
	fd = raw_connect(srv);
	if (write(fd, req, sizeof(req) - 1) < 0)
		abort();
	t = raw_until_closed(fd, buf, sizeof(buf), 3, NULL, 0);
	CHECK(t >= 0 && strncmp(buf, "HTTP/", 5) != 0, "plain HTTP to the TLS port is closed, unanswered");
	CHECK_INT(requests_seen, before, "and never reaches the handler");
	close(fd);

	xfer_init(&x, NULL);
	curl_easy_setopt(x.easy, CURLOPT_SSLVERSION,
	    (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	fetch(&x, "/who");
	CHECK(x.rc == CURLE_SSL_CONNECT_ERROR && requests_seen == before,
	    "a TLS 1.2 client is refused in the handshake");
	xfer_release(&x);
	pump_for(0.2);
	CHECK_INT(crab_http_server_connections(srv), 0, "no connection is left of either");
}

/* A handshake dripped a byte at a time, each within the idle timeout, still ends at
 * the deadline. */
static void test_handshake_deadline(SSL_CTX *ctx)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 1024, .max_body_bytes = 2048, .idle_timeout_s = 1,
		.max_connections = 8,
	};
	/* a TLS record header announcing a 512-byte ClientHello, then its first bytes */
	const char drip[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
			    "abcdefghijklmnopqrstuvwxyz";
	struct crab_http_server *slow = crab_http_server_new(base, &limits, on_head, on_request, NULL);
	char buf[256], err[256];
	int loopback, fd;
	double t;

	CHECK(crab_http_server_set_tls(slow, ctx) == 0 &&
	    crab_http_server_listen(slow, "127.0.0.1:0", &loopback, err, sizeof(err)) == 0,
	    "a second TLS server, with a 1 s idle timeout");
	CHECK(crab_http_server_set_tls(slow, NULL) != 0, "set_tls without a context is refused");
	fd = raw_connect(slow);
	t = raw_until_closed(fd, buf, sizeof(buf), 4, drip, sizeof(drip) - 1);
	CHECK(t >= 0.8 && t < 2.5, "a dripped handshake is closed at the idle timeout");
	if (t < 0 || t >= 2.5)
		printf("#   closed after %.2f s\n", t);
	close(fd);
	pump_for(0.1);
	CHECK_INT(crab_http_server_connections(slow), 0, "and freed");
	crab_http_server_free(slow);
}

int main(void)
{
	struct crab_http_limits limits = {
		.max_header_bytes = 1024, .max_body_bytes = 2048, .idle_timeout_s = 5,
		.max_connections = 64,
	};
	struct crab_identity *gw, *a, *b;
	char dir_gw[512], dir_a[512], dir_b[512], err[256], cmd[600];
	SSL_CTX *ctx;
	int loopback = 0;

	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmpdir) == NULL)
		abort();
	snprintf(dir_gw, sizeof(dir_gw), "%s/gateway", tmpdir);
	snprintf(dir_a, sizeof(dir_a), "%s/a", tmpdir);
	snprintf(dir_b, sizeof(dir_b), "%s/b", tmpdir);
	gw = crab_identity_load(dir_gw, "gateway", 1, NULL, err, sizeof(err));
	a = crab_identity_load(dir_a, "client-a", 1, NULL, err, sizeof(err));
	b = crab_identity_load(dir_b, "client-b", 1, NULL, err, sizeof(err));
	if (!CHECK(gw && a && b, "three identities are made in a temporary directory")) {
		printf("#   %s\n", err);
		return unit_done();
	}
	ctx = crab_tls_server_ctx(gw, 0, err, sizeof(err));
	CHECK(ctx != NULL, "a server context with optional client certificates");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	base = event_base_new();
	srv = crab_http_server_new(base, &limits, on_head, on_request, NULL);
	CHECK(crab_http_server_set_tls(srv, ctx) == 0, "the server takes the context");
	SSL_CTX_free(ctx); /* the server holds its own reference */
	CHECK(crab_http_server_listen(srv, "127.0.0.1:0", &loopback, err, sizeof(err)) == 0,
	    "the TLS server listens on an ephemeral port");

	test_get(dir_a, a->fingerprint);
	test_interim_and_pipelined();
	test_refusals(dir_a);
	test_linger();
	test_close_fingerprint(dir_a, a->fingerprint, dir_b, b->fingerprint);
	test_not_tls();
	ctx = crab_tls_server_ctx(gw, 0, err, sizeof(err));
	test_handshake_deadline(ctx);
	SSL_CTX_free(ctx);

	curl_multi_cleanup(multi);
	crab_http_server_free(srv);
	event_base_free(base);
	curl_global_cleanup();
	crab_identity_free(gw);
	crab_identity_free(a);
	crab_identity_free(b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return unit_done();
}
