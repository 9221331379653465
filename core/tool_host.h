/* tool_host.h: the host side of the tool protocol (PROTOCOLS.md §5), for any role or test
 * component that serves tools to its paired gateways. It plugs into the component
 * listener (component.h), which has already refused every key but the pinned gateway's:
 *
 *   GET  /v1/tools       200 {"host","tools":[{"name","description","input_schema",
 *                        "idempotent"}]}
 *   POST /v1/tools/call  200 {"call_id","ok":true,"content":[...],"data":{...}} or
 *                        200 {"call_id","ok":false,"error":{"code","message","retryable"}}
 *
 * A request that is not a call at all is an HTTP error with a §7 body: a body over 1 MiB
 * 413 (the listener's limit), a body that does not parse 400 invalid_json, call_id or
 * tool missing or not strings, arguments or context not objects, a context member of the
 * wrong type: 400 bad_request naming the field; another method 405, another path 404.
 * Everything about the call itself is a tool-level result (HTTP 200, ok:false), each
 * decided before any handler runs, in this order:
 *   unknown_tool       no tool of that name here
 *   tenant_required    context.tenant_id absent or "": no handler ever runs without one
 *   invalid_arguments  arguments fail the tool's input_schema; the message names the path
 *                      ("arguments.text: ...")
 *   call_id_reused     the call_id is known with another tool, tenant or arguments
 *   (answer from the record, or join the running call: below)
 *   overloaded         CRAB_TOOL_HOST_RUNNING_MAX handlers running (retryable)
 *   deadline_exceeded  context.deadline_ms <= 0 (retryable)
 * An absent arguments member is {}; an absent context is {} (so: tenant_required).
 *
 * The record. Every handler's result is kept by call_id (the last
 * CRAB_TOOL_HOST_RECORD_MAX results, none older than CRAB_TOOL_HOST_RECORD_MS, at most
 * CRAB_TOOL_HOST_RECORD_BYTES of answers; in memory only), for idempotent tools too. A
 * call whose call_id is in the record is answered from it and its handler does not run
 * again; a call whose call_id is still running waits for that handler and gets the same
 * answer. Refusals above are not recorded, nor is deadline_exceeded.
 *
 * Deadlines. context.deadline_ms is the time left when the gateway sent the call (absent:
 * CRAB_TOOL_DEADLINE_DEFAULT_MS; capped at CRAB_TOOL_DEADLINE_MAX_MS). Each waiting
 * request has a timer, set a little early (CRAB_TOOL_DEADLINE_MARGIN_MS, at most a tenth
 * of it) so that the answer is back in time: when it fires first, that request is
 * answered ok:false deadline_exceeded, retryable. The handler is not interrupted: its
 * late result is not sent to that request (it was answered) but goes into the record, so
 * the gateway's retry with the same call_id gets it instead of acting twice. Likewise
 * when the connection closes before the reply: the handler completes and its result is
 * recorded.
 *
 * Ownership. The host owns every crab_tool_call. A handler's handle stays valid until the
 * handler replies (exactly once, with crab_tool_reply*, now from fn or later from the same
 * loop; the reply frees it) or until the host is freed, whichever comes first. Freeing
 * the host with calls running calls each one's cancel function (crab_tool_call_on_cancel)
 * so the handler can drop its own state (a timer holding the handle), answers the
 * requests still waiting with 503 shutting_down, and frees everything. Free the host
 * before the component (its HTTP server) it serves on. Strings and JSON given to the host
 * are copied; those it gives out are borrowed until the reply. Everything runs on the
 * loop thread. */
#ifndef CRAB_TOOL_HOST_H
#define CRAB_TOOL_HOST_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "http_server.h"

#define CRAB_TOOL_HOST_TOOLS_MAX 256
#define CRAB_TOOL_HOST_RECORD_MAX 4096
#define CRAB_TOOL_HOST_RECORD_MS (60 * 60 * 1000)
#define CRAB_TOOL_HOST_RECORD_BYTES (64u << 20)
#define CRAB_TOOL_HOST_RUNNING_MAX 1024
#define CRAB_TOOL_DEADLINE_DEFAULT_MS (60 * 1000)
#define CRAB_TOOL_DEADLINE_MAX_MS (15 * 60 * 1000)
#define CRAB_TOOL_DEADLINE_MARGIN_MS 50 /* answered this much early (at most a tenth) */
#define CRAB_TOOL_CALL_ID_MAX 256 /* bytes of a call_id */

struct crab_tool_host;
struct crab_tool_call;

/* The call's context; strings NULL when not sent (tenant_id never: never ""). */
struct crab_tool_context {
	const char *tenant_id; /* scope every piece of data by it */
	const char *agent_id;
	const char *session_id;
	const char *memory_key;
	int64_t deadline_ms; /* the time left when the call was sent, as used by the host */
};

/* A tool's handler: reply to call exactly once, now or later (never block the loop). */
typedef void (*crab_tool_fn)(void *arg, struct crab_tool_call *call);

struct crab_tool_def {
	const char *name;         /* "host.verb": [a-z0-9_-] parts joined by one '.' */
	const char *description;
	const char *input_schema; /* JSON text: an object, in the subset of jschema.h */
	int idempotent;           /* advertised to the gateway (1: safe to retry) */
	crab_tool_fn fn;
	void *arg;
};

/* A host named name ("memory", "test": [a-z0-9_-], 1..64) serving on base. */
struct crab_tool_host *crab_tool_host_new(struct event_base *base, const char *name);
/* Registers a tool (def copied): 0, or -1 with why in err: a bad name, a duplicate, a
 * schema that does not parse or fails crab_jschema_check, too many tools. */
int crab_tool_host_add(struct crab_tool_host *h, const struct crab_tool_def *def,
    char *err, size_t errlen);
/* Told of every POST /v1/tools/call whose body is a call (after the checks above, before
 * its handler runs), for logs and tests: outcome is "run" (its handler starts), "record"
 * (answered from the record), "joined" (waits for the same call_id running) or the code
 * of a refusal. arguments and context are NULL when absent; all borrowed for the call. */
typedef void (*crab_tool_observe_fn)(void *arg, const char *call_id, const char *tool,
    const json_t *arguments, const json_t *context, const char *outcome);
void crab_tool_host_observe(struct crab_tool_host *h, crab_tool_observe_fn fn, void *arg);
/* Serves /v1/tools and /v1/tools/call (other paths: 404), replying exactly once, now or
 * later: component.h's on_request, with the host as arg. */
void crab_tool_host_on_request(void *host, struct crab_http_request *req);
/* Whether path is one of the host's routes (for a role with routes of its own): 1 or 0. */
int crab_tool_host_route(const char *path);
/* Handlers running now; answered calls in the record. */
size_t crab_tool_host_running(const struct crab_tool_host *h);
size_t crab_tool_host_recorded(const struct crab_tool_host *h);
/* See "Ownership" above. NULL is fine. */
void crab_tool_host_free(struct crab_tool_host *h);

/* The call, for its handler: borrowed until the reply. */
const char *crab_tool_call_id(const struct crab_tool_call *call);
const char *crab_tool_call_tool(const struct crab_tool_call *call);
const json_t *crab_tool_call_arguments(const struct crab_tool_call *call); /* an object */
const struct crab_tool_context *crab_tool_call_context(const struct crab_tool_call *call);
/* fn(arg) is called if the host is freed before the handler replied (fn must not reply);
 * the handle is gone once it returns. Set it again to replace it; fn NULL removes it. */
void crab_tool_call_on_cancel(struct crab_tool_call *call, void (*fn)(void *arg), void *arg);

/* ok:true with content (an array of {"type":"text","text"}; NULL: []) and data (an object
 * or NULL: {}); both references are stolen. A content or data of the wrong kind is
 * answered ok:false internal instead. Frees the call. */
void crab_tool_reply(struct crab_tool_call *call, json_t *content, json_t *data);
/* ok:true with one text item; data as above (stolen, may be NULL). Frees the call. */
void crab_tool_reply_text(struct crab_tool_call *call, const char *text, json_t *data);
/* ok:false {code, message, retryable}: code is the tool's own or one above, [a-z0-9_-]
 * (else "internal"). Frees the call. */
void crab_tool_reply_error(struct crab_tool_call *call, const char *code, int retryable,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
