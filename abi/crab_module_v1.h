/* crab_module_v1.h: the only header a Crabstack module includes. See crab-module(3).
 *
 * DRAFT until the subscription-backed model issue has landed: until then the modules
 * written inside the project may still change it. From then on only additive changes.
 *
 * A module is a shared object exporting one symbol, `crab_module_v1`, a const
 * struct crab_module_v1. Built-in modules use the same descriptor and are linked into
 * `crab`; the core has one registration path for both. The rules, learnt from Redis
 * modules and SQLite extensions:
 *   - The descriptor, the host table and every operation table begin with their own
 *     size (the descriptor and host table also with abi_major). Structs only ever grow
 *     at the end. The host reads only the fields a module's sizes cover, and a module
 *     must test a host function with CRAB_HOST_HAS() before calling it: beyond the
 *     table's size, or NULL, it does not exist in this host.
 *   - Only this header's types and serialized JSON (pointer + length, UTF-8, not
 *     NUL-terminated unless said) cross the boundary: no libevent, jansson or libcurl
 *     types.
 *   - Every callback runs on the role's event loop thread and must not block.
 *   - Whoever allocates frees. Pointers the host passes are borrowed until the call
 *     returns unless said otherwise.
 *   - Functions return 0 on success and -1 on failure.
 *   - A module's failure disables the module, never the host.
 */
#ifndef CRAB_MODULE_V1_H
#define CRAB_MODULE_V1_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CRAB_ABI_MAJOR 1

/* What a module provides; a module may provide several kinds. */
enum crab_kind_v1 {
	CRAB_KIND_MODEL_ADAPTER = 1u << 0,
	CRAB_KIND_TOOL_HOST = 1u << 1,
	CRAB_KIND_CHANNEL_LISTENER = 1u << 2,
	CRAB_KIND_SUBSCRIBER = 1u << 3,
};

enum crab_log_v1 { CRAB_LOG_V1_DEBUG, CRAB_LOG_V1_INFO, CRAB_LOG_V1_WARN, CRAB_LOG_V1_ERROR };

/* The host's record of one loaded module: passed to every host function so the host
 * knows who calls (log prefix, key-value namespace, secrets). Opaque. */
struct crab_self_v1;
/* Handles the host hands out; opaque. */
struct crab_timer_v1;
struct crab_watch_v1;
struct crab_http_call_v1;

#define CRAB_FD_READ 1u
#define CRAB_FD_WRITE 2u

/* ---- the async HTTP client ---- */

struct crab_http_req_v1 {
	uint32_t size;              /* sizeof(struct crab_http_req_v1) */
	const char *method;         /* "GET", "POST", ... */
	const char *url;
	const char *const *headers; /* "Name: value" strings, NULL-terminated; may be NULL */
	const char *body;           /* may be NULL */
	size_t body_len;
	int64_t timeout_ms;         /* whole request; 0 = the host's default (60 s) */
	size_t max_response_bytes;  /* 0 = the host's default (8 MiB); beyond it: an error */
};

/* How the host reports an HTTP call. on_data, when set, gets the body as it streams
 * (server-sent events, say) and the body is not collected; otherwise on_done gets the
 * whole body. on_done is called exactly once, last, unless the call is cancelled. */
struct crab_http_handler_v1 {
	uint32_t size; /* sizeof(struct crab_http_handler_v1) */
	/* Headers have arrived: status and one "Name: value" per call. Optional. */
	void (*on_header)(void *arg, int status, const char *line, size_t len);
	/* A piece of the body. Return -1 to abort the call (on_done then reports it). */
	int (*on_data)(void *arg, const char *data, size_t len);
	/* status 0 and error set when no HTTP answer came (refused, timeout, too large). */
	void (*on_done)(void *arg, int status, const char *body, size_t len, const char *error);
};

/* ---- the host table ---- */

struct crab_host_v1 {
	uint32_t abi_major; /* CRAB_ABI_MAJOR */
	uint32_t size;      /* sizeof(struct crab_host_v1) as the host was built */
	const char *host_version;
	const char *role;   /* "gateway", "memory", "cron", "listen" */

	/* One log line, attributed to the module. Never pass a secret. */
	void (*log)(struct crab_self_v1 *self, enum crab_log_v1 level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
	/* Milliseconds since the epoch on the host's one clock (tests may move it). */
	int64_t (*now_ms)(void);

	/* Timers on the loop: cb(arg) after after_ms, then every after_ms if repeat (a
	 * repeating timer of 0 runs every millisecond). The handle lives until timer_stop,
	 * which also frees it (call it from cb too). */
	struct crab_timer_v1 *(*timer_start)(struct crab_self_v1 *self, int64_t after_ms,
	    int repeat, void (*cb)(void *arg), void *arg);
	void (*timer_stop)(struct crab_timer_v1 *t);

	/* Watches fd for CRAB_FD_READ/WRITE until fd_unwatch (which frees the handle).
	 * The fd stays the module's. */
	struct crab_watch_v1 *(*fd_watch)(struct crab_self_v1 *self, int fd, unsigned events,
	    void (*cb)(int fd, unsigned events, void *arg), void *arg);
	void (*fd_unwatch)(struct crab_watch_v1 *w);

	/* Starts an HTTP request; req and the strings it points to are copied. The handle
	 * is valid until on_done has returned; http_cancel before that ends the call
	 * without on_done. NULL when the request cannot start. */
	struct crab_http_call_v1 *(*http_start)(struct crab_self_v1 *self,
	    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg);
	void (*http_cancel)(struct crab_http_call_v1 *call);

	/* Emits one event (an envelope, PROTOCOLS.md §1) into this role's ingress, as a
	 * trusted producer that may name tenant_id, agent_id and actor_id. done (may be
	 * NULL) gets the HTTP-like status and the JSON answer (202 {event_id, session_id,
	 * duplicate}, or an error body). NULL in roles without an ingress. */
	int (*emit_event)(struct crab_self_v1 *self, const char *envelope, size_t len,
	    void (*done)(void *arg, int status, const char *answer, size_t len), void *arg);

	/* A scalar of the module's YAML node by dotted key ("rules.path") as text, copied
	 * into out (NUL-terminated). 0, or -1 when absent, not a scalar or too long. */
	int (*config_get)(struct crab_self_v1 *self, const char *key, char *out, size_t outlen);

	/* The secret <name> named in the module's YAML node as <name>_env (an environment
	 * variable) or <name>_file (a file), copied into out. Never log it. */
	int (*secret_get)(struct crab_self_v1 *self, const char *name, char *out, size_t outlen);

	/* A small durable key-value area of the module's own (keys up to 256 bytes, values
	 * up to 64 KiB). Asynchronous: done runs on the loop once the store has answered;
	 * value NULL in kv_put deletes. kv_get reports found = 0 for a missing key. */
	int (*kv_get)(struct crab_self_v1 *self, const char *key,
	    void (*done)(void *arg, int ok, int found, const char *value, size_t len), void *arg);
	int (*kv_put)(struct crab_self_v1 *self, const char *key, const char *value, size_t len,
	    void (*done)(void *arg, int ok), void *arg);

	/* A subscription-backed credential for the module's model instance, as its YAML
	 * `auth:` names it (crab.yaml(5) AUTH; `crab auth login`): the host keeps the tokens,
	 * refreshes them before they expire, one refresh at a time however many ask, and
	 * turns a revoked login into an error instead of retrying. answer(arg, token,
	 * error) exactly once, later or before returning: token the bearer credential to
	 * send (never log it), or NULL and error ("login_required: ...", "auth_unavailable:
	 * ..."). stale: the token a request was just refused with (HTTP 401), so the host
	 * refreshes before answering; NULL otherwise. -1: the instance has no `auth:`.
	 * NULL in hosts without the auth layer. */
	int (*auth_token)(struct crab_self_v1 *self, const char *stale,
	    void (*answer)(void *arg, const char *token, const char *error), void *arg);

	/* New host functions are appended here. */
};

/* True when host table h holds member fn and it is set. */
#define CRAB_HOST_HAS(h, fn)                                                              \
	((h) != NULL && offsetof(struct crab_host_v1, fn) + sizeof((h)->fn) <= (h)->size && \
	    (h)->fn != NULL)

/* ---- per-kind operation tables ----
 * Every operation in a kind's table is required: the host refuses a module whose table
 * for a kind it declares is missing, ends before an operation, or leaves one NULL. */

/* How a model adapter reports one request: any number of on_text and on_tool_call, at
 * most one on_usage, then exactly one of on_done or on_error, last. */
struct crab_model_sink_v1 {
	uint32_t size;
	void (*on_text)(void *arg, const char *text, size_t len);
	/* {"id","name","arguments":{...}} */
	void (*on_tool_call)(void *arg, const char *call_json, size_t len);
	void (*on_usage)(void *arg, int64_t input_tokens, int64_t output_tokens);
	/* stop_reason: "end_turn", "tool_use", "max_tokens", "stop_sequence" */
	void (*on_done)(void *arg, const char *stop_reason);
	/* code from PROTOCOLS.md §7 or the provider's ("rate_limited", "overloaded",
	 * "unauthenticated", ...); retryable says whether the host may try again. */
	void (*on_error)(void *arg, const char *code, const char *message, int retryable);
};

struct crab_model_ops_v1 {
	uint32_t size;
	/* Starts one request. request is provider-neutral JSON:
	 * {"model","system","messages":[{"role","content"}...],"tools":[...],
	 *  "max_tokens","stream"}. The sink (copied) and sink_arg live until on_done or
	 * on_error. *handle identifies the request for cancel. */
	int (*start)(void *ctx, const char *request, size_t len, const struct crab_model_sink_v1 *sink,
	    void *sink_arg, void **handle);
	/* Ends a request early; the sink is not called after it returns. */
	void (*cancel)(void *ctx, void *handle);
};

/* answer(arg, json, len) is called exactly once per call, later or before returning. */
typedef void (*crab_answer_v1)(void *arg, const char *json, size_t len);

struct crab_tool_ops_v1 {
	uint32_t size;
	/* {"host","tools":[{"name","description","input_schema","idempotent"}]} */
	int (*list)(void *ctx, crab_answer_v1 answer, void *arg);
	/* call: {"call_id","tool","arguments","context":{...}} (PROTOCOLS.md §5); the
	 * answer: {"call_id","ok",...}. */
	int (*call)(void *ctx, const char *call, size_t len, crab_answer_v1 answer, void *arg);
};

struct crab_channel_ops_v1 {
	uint32_t size;
	/* A message.outbound event (PROTOCOLS.md §3) to turn into the platform's call.
	 * done(arg, ok, retryable) exactly once. Platform events come in through
	 * host->emit_event. */
	int (*send)(void *ctx, const char *event, size_t len,
	    void (*done)(void *arg, int ok, int retryable), void *arg);
};

struct crab_subscriber_ops_v1 {
	uint32_t size;
	/* One published event; ack(arg, ok) exactly once when it is handled. */
	int (*receive)(void *ctx, const char *event, size_t len, void (*ack)(void *arg, int ok),
	    void *arg);
};

/* ---- the descriptor ---- */

struct crab_module_v1 {
	uint32_t abi_major;  /* CRAB_ABI_MAJOR */
	uint32_t size;       /* sizeof(struct crab_module_v1) as the module was built */
	const char *name;    /* unique among loaded modules: [a-z0-9_-], 1 to 64 bytes */
	const char *version; /* the module's own version */
	uint32_t kinds;      /* enum crab_kind_v1 bits */

	/* Lifecycle, in order. init (required) gets the host table (borrowed for the
	 * module's life), the module's own handle, its YAML node as JSON ("{}" when none),
	 * and returns its context in *ctx; -1 refuses to load, and the host unloads the
	 * module without calling fini. start when the role's loop runs; stop before it
	 * ends; fini (required) last, to free everything. */
	int (*init)(const struct crab_host_v1 *host, struct crab_self_v1 *self,
	    const char *config, size_t config_len, void **ctx);
	int (*start)(void *ctx);
	void (*stop)(void *ctx);
	void (*fini)(void *ctx);

	/* One table per kind in kinds, NULL otherwise. */
	const struct crab_model_ops_v1 *model;
	const struct crab_tool_ops_v1 *tool;
	const struct crab_channel_ops_v1 *channel;
	const struct crab_subscriber_ops_v1 *subscriber;

	/* New fields are appended here. */
};

/* The one symbol a module exports. Write the descriptor as
 *   CRAB_MODULE(example) = { CRAB_ABI_MAJOR, sizeof(struct crab_module_v1), ... };
 * Built as a .so this defines the exported symbol crab_module_v1; compiled into crab
 * with -DCRAB_BUILTIN it defines crab_builtin_example instead, which the core lists, so
 * the same source serves both (as SQLite's SQLITE_EXTENSION_INIT does). */
#define CRAB_MODULE_EXPORT __attribute__((visibility("default")))
#ifdef CRAB_BUILTIN
#define CRAB_MODULE(name) const struct crab_module_v1 crab_builtin_##name
#else
#define CRAB_MODULE(name) CRAB_MODULE_EXPORT const struct crab_module_v1 crab_module_v1
#endif

#ifdef __cplusplus
}
#endif

#endif
