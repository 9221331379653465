/* http_client.h: the asynchronous HTTP client behind the host table's http_start and
 * http_cancel (abi/crab_module_v1.h). libcurl's multi-socket API driven by libevent
 * events on the role's loop, as in curl's docs/examples/multi-event.c: nothing blocks,
 * DNS included (curl's threaded resolver).
 *
 * Every call is bounded: a whole-call timeout (60 s unless the request says otherwise),
 * a response body limit (8 MiB unless the request says otherwise; it also applies to a
 * body streamed through on_data), CRAB_HTTP_CLIENT_MAX_HEADER_BYTES of response headers,
 * and the request's own sizes below. Only http and https, no redirects followed, no
 * signals (CURLOPT_NOSIGNAL).
 *
 * Reporting (the ABI's contract):
 *   - on_header(arg, status, line, len), when set, once per response header line,
 *     "Name: value" without the CRLF (not NUL-terminated); status lines and interim
 *     1xx responses are not reported.
 *   - on_data(arg, data, len), when set, gets the body as it arrives and the body is
 *     not collected; returning -1 aborts the call, which on_done then reports.
 *   - on_done(arg, status, body, len, error) exactly once and last, unless the call was
 *     cancelled. On success error is NULL, status the HTTP status (any: 404 and 500
 *     are answers too) and body the whole body (NUL-terminated for convenience, len
 *     bytes) or NULL with len 0 when on_data took it. On failure (refused, DNS,
 *     timeout, TLS, too large, aborted by on_data) status is 0, body NULL, len 0 and
 *     error curl's message or ours ("response larger than N bytes"). The body and
 *     error are borrowed until on_done returns; so is the call handle, which must not
 *     be used after on_done.
 *   - The fields read are those req->size and h->size cover: a module built against an
 *     older, smaller struct gets the defaults for the rest. A handler must cover
 *     on_done (and set it), a request must cover url.
 *   - Callbacks run on the loop thread from libevent callbacks, never from inside
 *     crab_http_client_start or _cancel. A callback may start calls and cancel any call,
 *     its own included; on_done may free its arg. A callback must not free the client.
 *
 * curl_global_init: crab_http_client_new calls it the first time (a static flag), so
 * the first client must be made before other threads use libcurl; curl_global_cleanup
 * is never called (the process exit does). */
#ifndef CRAB_HTTP_CLIENT_H
#define CRAB_HTTP_CLIENT_H

#include <event2/event.h>
#include <stddef.h>

#include "abi/crab_module_v1.h"
#include "tls.h"

#define CRAB_HTTP_CLIENT_DEFAULT_TIMEOUT_MS 60000
#define CRAB_HTTP_CLIENT_DEFAULT_MAX_RESPONSE (8u << 20)
/* A request beyond these cannot start (crab_http_client_start returns NULL). */
#define CRAB_HTTP_CLIENT_MAX_CALLS 1024             /* calls in flight per client */
/* Idle connections kept for reuse. curl's default, 4 per call in flight, shrinks as a
 * burst ends, and under load every fifth call paid for a new connection. */
#define CRAB_HTTP_CLIENT_MAX_IDLE_CONNS 512
#define CRAB_HTTP_CLIENT_MAX_URL 65536              /* bytes */
#define CRAB_HTTP_CLIENT_MAX_REQUEST_HEADERS 64     /* lines */
#define CRAB_HTTP_CLIENT_MAX_REQUEST_HEADER 8192    /* bytes per line */
#define CRAB_HTTP_CLIENT_MAX_REQUEST_BODY (64u << 20)
/* A response whose header lines add up to more ends with an error. */
#define CRAB_HTTP_CLIENT_MAX_HEADER_BYTES (256u << 10)

struct crab_http_client;
struct crab_http_call;

/* A client on base (borrowed; it must outlive the client). NULL when libcurl cannot be
 * set up (logged). */
struct crab_http_client *crab_http_client_new(struct event_base *base);
/* Cancels every call in flight without calling any of their callbacks, then frees the
 * client. Not from inside one of its callbacks. NULL is a no-op. */
void crab_http_client_free(struct crab_http_client *c);

/* Starts a request; req, its strings, its headers and its body are copied, h is copied
 * (as far as h->size covers it), arg is the callbacks' first argument. Returns the call,
 * valid until its on_done has returned or it is cancelled, or NULL when the request
 * cannot start (a required field missing, a size beyond the limits above, a method that
 * is not a token, CR or LF in a header, too many calls, curl refusing an option),
 * logged at debug level and with no callback. Errors found later, an unsupported URL
 * scheme included, reach on_done. */
struct crab_http_call *crab_http_client_start(struct crab_http_client *c,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg);
/* As crab_http_client_start, for the gateway's own calls to its peers: https only, TLS
 * 1.3 with the identity and the pin of pin (core/tls.h), which is borrowed and must stay
 * until on_done has run or the call is cancelled. */
struct crab_http_call *crab_http_client_start_pinned(struct crab_http_client *c,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg,
    struct crab_tls_pin *pin);
/* Ends a call early: none of its callbacks runs after this returns. Allowed from any of
 * the client's callbacks, for any call; from within the call's own on_done it does
 * nothing. NULL is a no-op. */
void crab_http_client_cancel(struct crab_http_call *call);
/* Calls started and neither cancelled nor reported by on_done yet. */
size_t crab_http_client_active(struct crab_http_client *c);

#endif
