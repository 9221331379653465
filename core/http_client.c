/* http_client.c: libcurl's multi-socket API on libevent (curl's multi-event.c and
 * hiperfifo.c). curl tells us which sockets to watch (socket_fn) and when to wake it
 * (timer_fn); libevent events call curl_multi_socket_action, then process() reads the
 * finished transfers and calls on_done.
 *
 * Reentrancy: on_header and on_data run inside curl_multi_socket_action, where curl
 * refuses curl_multi_add_handle and curl_multi_remove_handle. A call started there
 * waits as CALL_PENDING, a call cancelled there is only marked (its curl callbacks
 * then abort the transfer), and process() adds and removes them once curl has
 * returned. on_done runs outside curl, from process(), so it may start and cancel
 * calls directly. */
#include "http_client.h"

#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "log.h"
#include "util.h"
#include "version.h"

/* True when the struct at p, which begins with its own size, covers member m. */
#define COVERS(p, type, m) (offsetof(type, m) + sizeof(((type *)0)->m) <= (p)->size)

#define MAX_METHOD 32
#define MIN_BODY_CAP 16384
#define EASY_SPARE_MAX 64 /* easy handles kept for reuse */

enum call_state {
	CALL_PENDING,   /* started inside curl: added to the multi once curl returns */
	CALL_RUNNING,   /* in the multi */
	CALL_DONE,      /* finished, out of the multi, in the done queue */
	CALL_REPORTING, /* on_done is running */
};

struct sock {
	LIST_ENTRY(sock) link;
	struct event *ev;
};

struct crab_http_call {
	TAILQ_ENTRY(crab_http_call) link;  /* c->calls: every call not freed yet */
	TAILQ_ENTRY(crab_http_call) dlink; /* c->done, while CALL_DONE */
	struct crab_http_client *c;
	enum call_state state;
	int in_multi;
	int cancelled; /* cancelled inside curl: freed once curl has returned */
	CURL *easy;
	struct curl_slist *headers;
	char *method, *url, *body;
	void (*on_header)(void *arg, int status, const char *line, size_t len);
	int (*on_data)(void *arg, const char *data, size_t len);
	void (*on_done)(void *arg, int status, const char *body, size_t len, const char *error);
	void *arg;
	size_t max_body, received, header_bytes;
	char *buf; /* the collected body, NUL-terminated */
	size_t len, cap;
	CURLcode result;
	char errbuf[CURL_ERROR_SIZE]; /* curl's message */
	char error[CURL_ERROR_SIZE];  /* ours, when we ended the call; wins over curl's */
};

TAILQ_HEAD(call_list, crab_http_call);

struct crab_http_client {
	struct event_base *base;
	CURLM *multi;
	struct event *timer;
	struct call_list calls;
	struct call_list done;
	LIST_HEAD(, sock) socks;
	size_t active;
	int in_curl;     /* inside curl_multi_socket_action */
	int reporting;   /* inside process()'s on_done calls */
	int npending;    /* hints for process(): calls marked CALL_PENDING... */
	int ncancelled;  /* ...or cancelled since it last ran */
	CURL *spare[EASY_SPARE_MAX]; /* handles of finished calls, reset, for the next */
	int nspare;
};

static int curl_ready;

/* ---- curl's sockets and timer on libevent ---- */

static void process(struct crab_http_client *c);

static void drive(struct crab_http_client *c, curl_socket_t fd, int flags)
{
	int running;
	CURLMcode rc;

	c->in_curl++;
	rc = curl_multi_socket_action(c->multi, fd, flags, &running);
	c->in_curl--;
	if (rc != CURLM_OK)
		log_warnx("http client: curl_multi_socket_action: %s", curl_multi_strerror(rc));
	process(c);
}

static void sock_cb(evutil_socket_t fd, short what, void *arg)
{
	int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) |
	    ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

	drive(arg, fd, flags);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

static void sock_free(struct sock *sk)
{
	LIST_REMOVE(sk, link);
	event_free(sk->ev); /* also from within its own callback: libevent allows it */
	free(sk);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what, or stop watching it. */
static int socket_fn(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
	struct crab_http_client *c = userp;
	struct sock *sk = socketp;
	short kind;
	(void)easy;

	if (what == CURL_POLL_REMOVE) {
		if (sk != NULL)
			sock_free(sk);
		return 0;
	}
	kind = (short)(((what & CURL_POLL_IN) ? EV_READ : 0) |
	    ((what & CURL_POLL_OUT) ? EV_WRITE : 0) | EV_PERSIST);
	if (sk == NULL) {
		sk = xcalloc(1, sizeof(*sk));
		if ((sk->ev = event_new(c->base, s, kind, sock_cb, c)) == NULL)
			fatalx("http client: event_new failed");
		LIST_INSERT_HEAD(&c->socks, sk, link);
		curl_multi_assign(c->multi, s, sk);
	} else {
		event_del(sk->ev);
		event_assign(sk->ev, c->base, s, kind, sock_cb, c);
	}
	if (event_add(sk->ev, NULL) != 0) {
		log_warnx("http client: cannot watch socket %d", (int)s);
		return -1;
	}
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: wake curl after timeout_ms (0: on the next loop turn), or
 * never (-1). curl is never called from here, as its documentation asks. */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
	struct crab_http_client *c = userp;
	struct timeval tv;
	(void)multi;

	if (timeout_ms < 0) {
		evtimer_del(c->timer);
		return 0;
	}
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(c->timer, &tv) == 0 ? 0 : -1;
}

/* ---- calls ---- */

/* An easy handle: a spare one when there is one. A new one costs curl_easy_init's
 * allocations (its receive buffer among them) and curl_easy_cleanup's later; a reset
 * one keeps them. */
static CURL *easy_get(struct crab_http_client *c)
{
	return c->nspare > 0 ? c->spare[--c->nspare] : curl_easy_init();
}

static void easy_put(struct crab_http_client *c, CURL *e)
{
	if (c->nspare < EASY_SPARE_MAX) {
		curl_easy_reset(e);
		c->spare[c->nspare++] = e;
	} else {
		curl_easy_cleanup(e);
	}
}

/* Frees what a call owns; it is in no list any more. */
static void call_release(struct crab_http_call *call)
{
	if (call->easy != NULL)
		easy_put(call->c, call->easy);
	curl_slist_free_all(call->headers);
	free(call->method);
	free(call->url);
	free(call->body);
	free(call->buf);
	free(call);
}

static void call_free(struct crab_http_call *call)
{
	struct crab_http_client *c = call->c;

	if (call->in_multi)
		curl_multi_remove_handle(c->multi, call->easy);
	if (call->state == CALL_DONE)
		TAILQ_REMOVE(&c->done, call, dlink);
	TAILQ_REMOVE(&c->calls, call, link);
	call_release(call);
}

static size_t header_cb(char *line, size_t size, size_t nitems, void *userdata)
{
	struct crab_http_call *call = userdata;
	size_t n = size * nitems, len = n;
	long code = 0;

	if (call->cancelled)
		return 0;
	if (n > CRAB_HTTP_CLIENT_MAX_HEADER_BYTES - call->header_bytes) {
		snprintf(call->error, sizeof(call->error), "response headers larger than %u bytes",
		    (unsigned)CRAB_HTTP_CLIENT_MAX_HEADER_BYTES);
		return 0;
	}
	call->header_bytes += n;
	if (call->on_header == NULL)
		return n;
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	/* the blank line ending a head, and status lines ("/" is no header name's) */
	if (len == 0 || (len >= 5 && memcmp(line, "HTTP/", 5) == 0))
		return n;
	curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 100 && code < 200)
		return n; /* an interim response's */
	call->on_header(call->arg, (int)code, line, len);
	return call->cancelled ? 0 : n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct crab_http_call *call = userdata;
	size_t n = size * nmemb;

	if (call->cancelled)
		return 0; /* anything but n aborts the transfer */
	if (n > call->max_body - call->received) {
		snprintf(call->error, sizeof(call->error), "response larger than %zu bytes",
		    call->max_body);
		return 0;
	}
	call->received += n;
	if (call->on_data != NULL) {
		if (call->on_data(call->arg, data, n) < 0) {
			if (!call->cancelled)
				snprintf(call->error, sizeof(call->error), "aborted by on_data");
			return 0;
		}
		return call->cancelled ? 0 : n;
	}
	if (call->len + n + 1 > call->cap) {
		size_t cap = call->cap ? call->cap : MIN_BODY_CAP;
		while (cap < call->len + n + 1)
			cap *= 2;
		if (cap > call->max_body + 1)
			cap = call->max_body + 1;
		call->buf = xrealloc(call->buf, cap);
		call->cap = cap;
	}
	memcpy(call->buf + call->len, data, n);
	call->len += n;
	call->buf[call->len] = '\0';
	return n;
}

/* Calls on_done, then frees the call. */
static void report(struct crab_http_call *call)
{
	struct crab_http_client *c = call->c;
	const char *error = NULL, *body = NULL;
	size_t len = 0;
	long code = 0;

	if (call->error[0] != '\0') {
		error = call->error;
	} else if (call->result == CURLE_FILESIZE_EXCEEDED) {
		snprintf(call->error, sizeof(call->error), "response larger than %zu bytes",
		    call->max_body);
		error = call->error;
	} else if (call->result != CURLE_OK) {
		size_t n = strlen(call->errbuf);
		while (n > 0 && call->errbuf[n - 1] == '\n')
			call->errbuf[--n] = '\0';
		error = n > 0 ? call->errbuf : curl_easy_strerror(call->result);
	} else {
		curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &code);
		if (call->on_data == NULL) {
			body = call->buf != NULL ? call->buf : "";
			len = call->len;
		}
	}
	call->state = CALL_REPORTING;
	c->active--;
	call->on_done(call->arg, error != NULL ? 0 : (int)code, body, len, error);
	call_free(call);
}

static void set_done(struct crab_http_call *call)
{
	call->state = CALL_DONE;
	TAILQ_INSERT_TAIL(&call->c->done, call, dlink);
}

/* After curl has returned: finished transfers out of the multi, calls cancelled from
 * curl's callbacks freed, calls started there added, then on_done for the finished. */
static void process(struct crab_http_client *c)
{
	struct crab_http_call *call, *next;
	CURLMsg *m;
	int left;

	if (c->in_curl > 0)
		return;
	while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
		CURL *easy = m->easy_handle;
		CURLcode result = m->data.result;
		char *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		call = (struct crab_http_call *)priv;
		curl_multi_remove_handle(c->multi, easy);
		call->in_multi = 0;
		if (call->cancelled) {
			call_free(call);
			continue;
		}
		call->result = result;
		set_done(call);
	}
	if (c->ncancelled > 0 || c->npending > 0) {
		c->ncancelled = c->npending = 0;
		for (call = TAILQ_FIRST(&c->calls); call != NULL; call = next) {
			next = TAILQ_NEXT(call, link);
			if (call->cancelled) {
				call_free(call);
			} else if (call->state == CALL_PENDING) {
				CURLMcode rc = curl_multi_add_handle(c->multi, call->easy);
				if (rc == CURLM_OK) {
					call->in_multi = 1;
					call->state = CALL_RUNNING;
				} else {
					snprintf(call->error, sizeof(call->error),
					    "curl_multi_add_handle: %s", curl_multi_strerror(rc));
					set_done(call);
				}
			}
		}
	}
	c->reporting++;
	while ((call = TAILQ_FIRST(&c->done)) != NULL) {
		TAILQ_REMOVE(&c->done, call, dlink);
		report(call);
	}
	c->reporting--;
}

static int method_ok(const char *m)
{
	size_t n = strnlen(m, MAX_METHOD + 1);

	if (n == 0 || n > MAX_METHOD)
		return 0;
	/* RFC 9110 token characters */
	return strspn(m, "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "abcdefghijklmnopqrstuvwxyz") == n;
}

/* Sets the method and body the way curl expects each. */
static int set_method(struct crab_http_call *call, int has_body, size_t body_len)
{
	CURL *e = call->easy;
	const char *m = call->method;

	if (strcmp(m, "HEAD") == 0 && !has_body)
		return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -1;
	if (has_body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
	    strcmp(m, "PATCH") == 0) {
		if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len) != CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, call->body) != CURLE_OK)
			return -1;
		if (strcmp(m, "POST") == 0)
			return 0;
	} else {
		if (curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK)
			return -1;
		if (strcmp(m, "GET") == 0)
			return 0;
	}
	return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) == CURLE_OK ? 0 : -1;
}

static int set_options(struct crab_http_call *call, int64_t timeout_ms)
{
	CURL *e = call->easy;

	if (curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_URL, call->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, call) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)call->max_body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_USERAGENT, "crabstack/" CRAB_VERSION) != CURLE_OK)
		return -1;
	if (call->headers != NULL &&
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers) != CURLE_OK)
		return -1;
	return 0;
}

static struct crab_http_call *start(struct crab_http_client *c,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg,
    struct crab_tls_pin *pin)
{
	typedef struct crab_http_req_v1 R;
	typedef struct crab_http_handler_v1 H;
	struct crab_http_call *call = NULL;
	const char *const *headers = NULL;
	const char *body = NULL, *why;
	size_t body_len = 0, max_body = 0;
	int64_t timeout_ms = 0;

	why = "no client, request or handler";
	if (c == NULL || req == NULL || h == NULL)
		goto fail;
	why = "the request has no method or url";
	if (!COVERS(req, R, url) || req->method == NULL || req->url == NULL)
		goto fail;
	why = "the handler has no on_done";
	if (!COVERS(h, H, on_done) || h->on_done == NULL)
		goto fail;
	why = "too many calls in flight";
	if (c->active >= CRAB_HTTP_CLIENT_MAX_CALLS)
		goto fail;
	why = "the method is not a token";
	if (!method_ok(req->method))
		goto fail;
	why = "the url is too long";
	if (strnlen(req->url, CRAB_HTTP_CLIENT_MAX_URL + 1) > CRAB_HTTP_CLIENT_MAX_URL)
		goto fail;
	if (COVERS(req, R, headers))
		headers = req->headers;
	if (COVERS(req, R, body_len)) {
		body = req->body;
		body_len = req->body_len;
	}
	why = "a body length without a body, or a body too large";
	if ((body == NULL && body_len > 0) || body_len > CRAB_HTTP_CLIENT_MAX_REQUEST_BODY)
		goto fail;
	if (COVERS(req, R, timeout_ms))
		timeout_ms = req->timeout_ms;
	why = "a negative timeout";
	if (timeout_ms < 0)
		goto fail;
	if (timeout_ms == 0)
		timeout_ms = CRAB_HTTP_CLIENT_DEFAULT_TIMEOUT_MS;
	if (timeout_ms > LONG_MAX)
		timeout_ms = LONG_MAX;
	if (COVERS(req, R, max_response_bytes))
		max_body = req->max_response_bytes;
	if (max_body == 0)
		max_body = CRAB_HTTP_CLIENT_DEFAULT_MAX_RESPONSE;
	if (max_body > SIZE_MAX / 2)
		max_body = SIZE_MAX / 2;

	call = xcalloc(1, sizeof(*call));
	call->c = c;
	call->state = CALL_PENDING;
	call->method = xstrdup(req->method);
	call->url = xstrdup(req->url);
	call->body = xmalloc(body_len + 1);
	if (body_len > 0)
		memcpy(call->body, body, body_len);
	call->body[body_len] = '\0';
	call->max_body = max_body;
	call->arg = arg;
	call->on_done = h->on_done;
	if (COVERS(h, H, on_header))
		call->on_header = h->on_header;
	if (COVERS(h, H, on_data))
		call->on_data = h->on_data;
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		struct curl_slist *l;
		size_t n = strnlen(headers[i], CRAB_HTTP_CLIENT_MAX_REQUEST_HEADER + 1);

		why = "too many request headers, or one too long or with CR or LF";
		if (i >= CRAB_HTTP_CLIENT_MAX_REQUEST_HEADERS ||
		    n > CRAB_HTTP_CLIENT_MAX_REQUEST_HEADER || strcspn(headers[i], "\r\n") != n)
			goto fail;
		if ((l = curl_slist_append(call->headers, headers[i])) == NULL)
			fatalx("http client: out of memory");
		call->headers = l;
	}
	why = "curl_easy_init failed";
	if ((call->easy = easy_get(c)) == NULL)
		goto fail;
	why = "curl refused an option";
	if (set_options(call, timeout_ms) != 0 || set_method(call, body != NULL, body_len) != 0 ||
	    (pin != NULL && crab_tls_curl_pin(call->easy, pin) != 0))
		goto fail;

	if (c->in_curl > 0) {
		c->npending++; /* curl refuses new handles from its callbacks */
	} else {
		CURLMcode rc = curl_multi_add_handle(c->multi, call->easy);
		if (rc != CURLM_OK) {
			log_debug("http client: curl_multi_add_handle: %s", curl_multi_strerror(rc));
			why = "curl refused the handle";
			goto fail;
		}
		call->in_multi = 1;
		call->state = CALL_RUNNING;
	}
	TAILQ_INSERT_TAIL(&c->calls, call, link);
	c->active++;
	return call;
fail:
	log_debug("http client: cannot start a request: %s", why);
	if (call != NULL)
		call_release(call);
	return NULL;
}

struct crab_http_call *crab_http_client_start(struct crab_http_client *c,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg)
{
	return start(c, req, h, arg, NULL);
}

struct crab_http_call *crab_http_client_start_pinned(struct crab_http_client *c,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg,
    struct crab_tls_pin *pin)
{
	if (pin == NULL || req == NULL || req->url == NULL ||
	    strncmp(req->url, "https://", 8) != 0) {
		log_debug("http client: a pinned call needs an https url");
		return NULL;
	}
	return start(c, req, h, arg, pin);
}

void crab_http_client_cancel(struct crab_http_call *call)
{
	struct crab_http_client *c;

	if (call == NULL || call->cancelled || call->state == CALL_REPORTING)
		return;
	c = call->c;
	c->active--;
	if (c->in_curl > 0 && call->in_multi) {
		/* curl refuses to remove a handle from its callbacks: mark it, so that its
		 * callbacks abort the transfer, and free it once curl returns */
		call->cancelled = 1;
		c->ncancelled++;
		return;
	}
	call_free(call);
}

size_t crab_http_client_active(struct crab_http_client *c)
{
	return c->active;
}

struct crab_http_client *crab_http_client_new(struct event_base *base)
{
	struct crab_http_client *c = NULL;

	if (!curl_ready) {
		CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
		if (rc != CURLE_OK) {
			log_warnx("http client: curl_global_init: %s", curl_easy_strerror(rc));
			return NULL;
		}
		curl_ready = 1;
	}
	c = xcalloc(1, sizeof(*c));
	c->base = base;
	TAILQ_INIT(&c->calls);
	TAILQ_INIT(&c->done);
	LIST_INIT(&c->socks);
	if ((c->timer = evtimer_new(base, timer_cb, c)) == NULL) {
		log_warnx("http client: evtimer_new failed");
		goto fail;
	}
	if ((c->multi = curl_multi_init()) == NULL) {
		log_warnx("http client: curl_multi_init failed");
		goto fail;
	}
	if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, socket_fn) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, timer_fn) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK ||
	    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)CRAB_HTTP_CLIENT_MAX_IDLE_CONNS) !=
		CURLM_OK) {
		log_warnx("http client: curl_multi_setopt failed");
		goto fail;
	}
	return c;
fail:
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	if (c->timer != NULL)
		event_free(c->timer);
	free(c);
	return NULL;
}

void crab_http_client_free(struct crab_http_client *c)
{
	struct crab_http_call *call;
	struct sock *sk;

	if (c == NULL)
		return;
	if (c->in_curl > 0 || c->reporting > 0)
		fatalx("http client: freed from inside one of its callbacks");
	while ((call = TAILQ_FIRST(&c->calls)) != NULL)
		call_free(call);
	curl_multi_cleanup(c->multi); /* may still call socket_fn and timer_fn */
	while (c->nspare > 0)
		curl_easy_cleanup(c->spare[--c->nspare]);
	while ((sk = LIST_FIRST(&c->socks)) != NULL)
		sock_free(sk);
	event_free(c->timer);
	free(c);
}
