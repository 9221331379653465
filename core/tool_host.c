/* tool_host.c: see tool_host.h. */
#include "tool_host.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "clock.h"
#include "errors.h"
#include "jschema.h"
#include "log.h"
#include "strmap.h"
#include "util.h"

#define NAME_MAX_LEN 64

struct tool {
	char *name, *description;
	json_t *schema;
	int idempotent;
	crab_tool_fn fn;
	void *arg;
};

struct entry;

/* A request waiting for an entry's answer, with its own deadline. */
struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct crab_http_request *req;
	struct event *timer;
	struct entry *e;
};

/* One call_id: running (call set) or answered (answer set, in the host's record). */
struct entry {
	struct crab_tool_host *h;
	char *call_id;
	unsigned char digest[32]; /* of the tool, the tenant and the arguments */
	struct crab_tool_call *call;
	char *answer;
	size_t answer_len;
	int64_t answered_ms;
	TAILQ_HEAD(, waiter) waiters;
	TAILQ_ENTRY(entry) link;
};

struct crab_tool_call {
	struct entry *e;
	const struct tool *tool;
	json_t *req;       /* the parsed body; the accessors' strings are borrowed from it */
	json_t *arguments; /* an object */
	struct crab_tool_context ctx;
	void (*cancel)(void *arg);
	void *cancel_arg;
};

struct crab_tool_host {
	struct event_base *base;
	char *name;
	struct tool tools[CRAB_TOOL_HOST_TOOLS_MAX];
	size_t ntools;
	struct crab_strmap *entries; /* call_id -> entry */
	TAILQ_HEAD(, entry) record;  /* answered entries, oldest first */
	size_t nrecord, record_bytes, nrunning;
	crab_tool_observe_fn observe;
	void *observe_arg;
};

static int name_ok(const char *s, int dotted)
{
	size_t n = strlen(s), dots = 0;

	if (n == 0 || n > NAME_MAX_LEN || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' && s[i + 1] != '.')
			dots++;
		else if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			       s[i] == '_' || s[i] == '-'))
			return 0;
	}
	return dotted ? dots == 1 : dots == 0;
}

/* Cuts s to its longest prefix that jansson takes as UTF-8: a message cut to its buffer
 * mid-character, or a handler's bytes, must not stop the answer's encoding. */
static void utf8_cut(char *s)
{
	size_t n = strlen(s);
	json_t *j;

	while (n > 0 && (j = json_stringn(s, n)) == NULL)
		n--;
	if (n > 0)
		json_decref(j);
	s[n] = '\0';
}

struct crab_tool_host *crab_tool_host_new(struct event_base *base, const char *name)
{
	struct crab_tool_host *h;

	if (!name_ok(name, 0))
		return NULL;
	h = xcalloc(1, sizeof(*h));
	h->base = base;
	h->name = xstrdup(name);
	h->entries = crab_strmap_new();
	TAILQ_INIT(&h->record);
	return h;
}

static const struct tool *tool_find(const struct crab_tool_host *h, const char *name)
{
	for (size_t i = 0; i < h->ntools; i++) {
		if (strcmp(h->tools[i].name, name) == 0)
			return &h->tools[i];
	}
	return NULL;
}

int crab_tool_host_add(struct crab_tool_host *h, const struct crab_tool_def *def,
    char *err, size_t errlen)
{
	char why[256];
	json_error_t jerr;
	json_t *schema;
	struct tool *t;

	if (def->name == NULL || !name_ok(def->name, 1)) {
		snprintf(err, errlen, "tool name '%.80s' is not host.verb", def->name ? def->name : "");
		return -1;
	}
	if (tool_find(h, def->name) != NULL || h->ntools == CRAB_TOOL_HOST_TOOLS_MAX) {
		snprintf(err, errlen, "tool '%s': %s", def->name,
		    h->ntools == CRAB_TOOL_HOST_TOOLS_MAX ? "too many tools" : "registered twice");
		return -1;
	}
	if (def->fn == NULL || def->description == NULL || def->input_schema == NULL) {
		snprintf(err, errlen, "tool '%s': no handler, description or input_schema", def->name);
		return -1;
	}
	schema = json_loads(def->input_schema, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(schema) || crab_jschema_check(schema, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "tool '%s': bad input_schema: %s", def->name,
		    schema == NULL ? jerr.text : json_is_object(schema) ? why : "not an object");
		json_decref(schema);
		return -1;
	}
	t = &h->tools[h->ntools++];
	t->name = xstrdup(def->name);
	t->description = xstrdup(def->description);
	t->schema = schema;
	t->idempotent = def->idempotent != 0;
	t->fn = def->fn;
	t->arg = def->arg;
	return 0;
}

void crab_tool_host_observe(struct crab_tool_host *h, crab_tool_observe_fn fn, void *arg)
{
	h->observe = fn;
	h->observe_arg = arg;
}

int crab_tool_host_route(const char *path)
{
	return strcmp(path, "/v1/tools") == 0 || strcmp(path, "/v1/tools/call") == 0;
}

size_t crab_tool_host_running(const struct crab_tool_host *h)
{
	return h->nrunning;
}

size_t crab_tool_host_recorded(const struct crab_tool_host *h)
{
	return h->nrecord;
}

/* ---- answers ---- */

static char *dump(json_t *o, size_t *len)
{
	char *s = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	if (s == NULL)
		fatalx("tool host: cannot encode an answer");
	*len = strlen(s);
	return s;
}

static char *error_answer(const char *call_id, const char *code, int retryable,
    const char *message, size_t *len)
{
	return dump(json_pack("{s:s, s:b, s:{s:s, s:s, s:b}}", "call_id", call_id, "ok", 0,
			"error", "code", code, "message", message, "retryable", retryable), len);
}

static void reply_json(struct crab_http_request *req, char *body, size_t len)
{
	crab_http_reply(req, 200, body, len);
	free(body);
}

static void observe(struct crab_tool_host *h, json_t *body, const char *outcome)
{
	if (h->observe != NULL)
		h->observe(h->observe_arg, json_string_value(json_object_get(body, "call_id")),
		    json_string_value(json_object_get(body, "tool")),
		    json_object_get(body, "arguments"), json_object_get(body, "context"), outcome);
}

/* A refusal before any entry exists: told to the observer, not recorded. */
static void refuse(struct crab_tool_host *h, struct crab_http_request *req, json_t *body,
    const char *code, int retryable, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t len;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_cut(msg);
	observe(h, body, code);
	s = error_answer(json_string_value(json_object_get(body, "call_id")), code, retryable,
	    msg, &len);
	reply_json(req, s, len);
}

static void http_error(struct crab_http_request *req, const char *code, const char *field,
    const char *fmt, ...)
{
	struct crab_error err;
	va_list ap;

	crab_error_set(&err, code, field, "%s", "");
	va_start(ap, fmt);
	vsnprintf(err.message, sizeof(err.message), fmt, ap);
	va_end(ap);
	utf8_cut(err.message);
	crab_http_reply_error(req, &err);
}

static void waiter_free(struct waiter *w)
{
	TAILQ_REMOVE(&w->e->waiters, w, link);
	event_free(w->timer);
	free(w);
}

static void entry_free(void *v)
{
	struct entry *e = v;
	struct waiter *w;

	while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
		http_error(w->req, "shutting_down", NULL, "the tool host is shutting down");
		waiter_free(w);
	}
	if (e->call != NULL) {
		if (e->call->cancel != NULL)
			e->call->cancel(e->call->cancel_arg);
		json_decref(e->call->req);
		free(e->call);
	}
	free(e->answer);
	free(e->call_id);
	free(e);
}

static void entry_drop(struct crab_tool_host *h, struct entry *e)
{
	TAILQ_REMOVE(&h->record, e, link);
	h->nrecord--;
	h->record_bytes -= e->answer_len;
	crab_strmap_del(h->entries, e->call_id);
	entry_free(e);
}

/* Forgets the oldest answers beyond the record's bounds. */
static void record_trim(struct crab_tool_host *h)
{
	int64_t oldest = crab_clock_now_ms() - CRAB_TOOL_HOST_RECORD_MS;
	struct entry *e;

	while ((e = TAILQ_FIRST(&h->record)) != NULL &&
	    (h->nrecord > CRAB_TOOL_HOST_RECORD_MAX || e->answered_ms < oldest ||
		h->record_bytes > CRAB_TOOL_HOST_RECORD_BYTES))
		entry_drop(h, e);
}

/* The handler's answer: to every request waiting, and into the record. */
static void call_answer(struct crab_tool_call *call, char *answer, size_t len)
{
	struct entry *e = call->e;
	struct crab_tool_host *h = e->h;
	struct waiter *w;

	json_decref(call->req);
	free(call);
	e->call = NULL;
	h->nrunning--;
	e->answer = answer;
	e->answer_len = len;
	e->answered_ms = crab_clock_now_ms();
	while ((w = TAILQ_FIRST(&e->waiters)) != NULL) {
		crab_http_reply(w->req, 200, answer, len);
		waiter_free(w);
	}
	TAILQ_INSERT_TAIL(&h->record, e, link);
	h->nrecord++;
	h->record_bytes += len;
	record_trim(h);
}

void crab_tool_reply(struct crab_tool_call *call, json_t *content, json_t *data)
{
	size_t len;
	char *s;

	if (content == NULL)
		content = json_array();
	if (data == NULL)
		data = json_object();
	if (!json_is_array(content) || !json_is_object(data)) {
		log_warnx("tool %s: the handler's content or data is malformed", call->tool->name);
		json_decref(content);
		json_decref(data);
		crab_tool_reply_error(call, "internal", 0, "the tool's answer is malformed");
		return;
	}
	s = dump(json_pack("{s:s, s:b, s:o, s:o}", "call_id", call->e->call_id, "ok", 1,
			 "content", content, "data", data), &len);
	call_answer(call, s, len);
}

void crab_tool_reply_text(struct crab_tool_call *call, const char *text, json_t *data)
{
	json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text", text);

	if (content == NULL) { /* NULL or not UTF-8 */
		json_decref(data);
		crab_tool_reply_error(call, "internal", 0, "the tool's text is not UTF-8");
		return;
	}
	crab_tool_reply(call, content, data);
}

void crab_tool_reply_error(struct crab_tool_call *call, const char *code, int retryable,
    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	size_t len;
	char *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_cut(msg);
	if (code == NULL || !name_ok(code, 0))
		code = "internal";
	s = error_answer(call->e->call_id, code, retryable != 0, msg, &len);
	call_answer(call, s, len);
}

/* ---- the call's accessors ---- */

const char *crab_tool_call_id(const struct crab_tool_call *call)
{
	return call->e->call_id;
}

const char *crab_tool_call_tool(const struct crab_tool_call *call)
{
	return call->tool->name;
}

const json_t *crab_tool_call_arguments(const struct crab_tool_call *call)
{
	return call->arguments;
}

const struct crab_tool_context *crab_tool_call_context(const struct crab_tool_call *call)
{
	return &call->ctx;
}

void crab_tool_call_on_cancel(struct crab_tool_call *call, void (*fn)(void *arg), void *arg)
{
	call->cancel = fn;
	call->cancel_arg = arg;
}

/* ---- requests ---- */

static void waiter_expired(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;
	char msg[128];
	size_t len;
	char *s;

	(void)fd;
	(void)what;
	snprintf(msg, sizeof(msg), "the tool '%s' did not answer in time", w->e->call->tool->name);
	s = error_answer(w->e->call_id, "deadline_exceeded", 1, msg, &len);
	reply_json(w->req, s, len);
	waiter_free(w);
}

/* req waits for e's answer until its deadline, less a margin for the way back. */
static void wait_for(struct entry *e, struct crab_http_request *req, int64_t deadline_ms)
{
	struct waiter *w = xcalloc(1, sizeof(*w));
	int64_t ms = deadline_ms - (deadline_ms / 10 < CRAB_TOOL_DEADLINE_MARGIN_MS ?
	    deadline_ms / 10 : CRAB_TOOL_DEADLINE_MARGIN_MS);
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	w->req = req;
	w->e = e;
	w->timer = evtimer_new(e->h->base, waiter_expired, w);
	TAILQ_INSERT_TAIL(&e->waiters, w, link);
	evtimer_add(w->timer, &tv);
}

/* SHA-256 of tool, tenant and the arguments' canonical text, NUL-separated. */
static void call_digest(const char *tool, const char *tenant, const json_t *args,
    unsigned char out[32])
{
	char *canon = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int n = 0;

	if (canon == NULL || md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(md, tool, strlen(tool) + 1) ||
	    !EVP_DigestUpdate(md, tenant, strlen(tenant) + 1) ||
	    !EVP_DigestUpdate(md, canon, strlen(canon)) || !EVP_DigestFinal_ex(md, out, &n) ||
	    n != 32)
		fatalx("tool host: cannot digest a call");
	EVP_MD_CTX_free(md);
	free(canon);
}

/* A context string member: absent or null is NULL; another kind is -1. */
static int ctx_str(json_t *ctx, const char *key, const char **out)
{
	json_t *v = json_object_get(ctx, key);

	*out = json_string_value(v);
	return v == NULL || json_is_null(v) || json_is_string(v) ? 0 : -1;
}

/* The call's shape; 0, or -1 with an HTTP error answered. */
static int parse_call(struct crab_http_request *req, json_t *body, struct crab_tool_context *c)
{
	static const char *const strs[] = {"context.tenant_id", "context.agent_id",
		"context.session_id", "context.memory_key"};
	const char **outs[] = {&c->tenant_id, &c->agent_id, &c->session_id, &c->memory_key};
	const char *call_id = json_string_value(json_object_get(body, "call_id"));
	json_t *ctx = json_object_get(body, "context"), *args = json_object_get(body, "arguments");
	json_t *dl = json_object_get(ctx, "deadline_ms");

	if (call_id == NULL || call_id[0] == '\0' || strlen(call_id) > CRAB_TOOL_CALL_ID_MAX) {
		http_error(req, "bad_request", "call_id", "call_id must be a string of 1 to 256 bytes");
		return -1;
	}
	if (!json_is_string(json_object_get(body, "tool"))) {
		http_error(req, "bad_request", "tool", "tool must be a string");
		return -1;
	}
	if ((args != NULL && !json_is_object(args)) || (ctx != NULL && !json_is_object(ctx))) {
		http_error(req, "bad_request", args != NULL && !json_is_object(args) ? "arguments" :
		    "context", "arguments and context must be objects");
		return -1;
	}
	for (size_t i = 0; i < CRAB_ARRAY_LEN(strs); i++) {
		if (ctx_str(ctx, strs[i] + strlen("context."), outs[i]) != 0) {
			http_error(req, "bad_request", strs[i], "%s must be a string", strs[i]);
			return -1;
		}
	}
	if (dl != NULL && !json_is_null(dl) && !json_is_integer(dl)) {
		http_error(req, "bad_request", "context.deadline_ms",
		    "context.deadline_ms must be an integer");
		return -1;
	}
	c->deadline_ms = json_is_integer(dl) ? json_integer_value(dl) : CRAB_TOOL_DEADLINE_DEFAULT_MS;
	if (c->deadline_ms > CRAB_TOOL_DEADLINE_MAX_MS)
		c->deadline_ms = CRAB_TOOL_DEADLINE_MAX_MS;
	return 0;
}

/* Takes body. */
static void handle_call(struct crab_tool_host *h, struct crab_http_request *req, json_t *body)
{
	struct crab_tool_context ctx = {0};
	struct crab_tool_call *call;
	const struct tool *t;
	unsigned char digest[32];
	struct entry *e;
	json_t *args;
	char why[512];

	if (parse_call(req, body, &ctx) != 0)
		goto done;
	if ((t = tool_find(h, json_string_value(json_object_get(body, "tool")))) == NULL) {
		refuse(h, req, body, "unknown_tool", 0, "no tool '%.100s' on host '%s'",
		    json_string_value(json_object_get(body, "tool")), h->name);
		goto done;
	}
	if (ctx.tenant_id == NULL || ctx.tenant_id[0] == '\0') {
		refuse(h, req, body, "tenant_required", 0, "context.tenant_id is required");
		goto done;
	}
	if ((args = json_object_get(body, "arguments")) == NULL)
		json_object_set_new(body, "arguments", (args = json_object()));
	if (crab_jschema_validate(t->schema, args, "arguments", why, sizeof(why)) != 0) {
		refuse(h, req, body, "invalid_arguments", 0, "%s", why);
		goto done;
	}
	call_digest(t->name, ctx.tenant_id, args, digest);
	record_trim(h);
	e = crab_strmap_get(h->entries, json_string_value(json_object_get(body, "call_id")));
	if (e != NULL) {
		if (memcmp(e->digest, digest, sizeof(digest)) != 0) {
			refuse(h, req, body, "call_id_reused", 0, "call_id '%s' was used for "
			    "another call (tool, tenant or arguments differ)", e->call_id);
		} else if (e->answer != NULL) {
			observe(h, body, "record");
			crab_http_reply(req, 200, e->answer, e->answer_len);
		} else {
			observe(h, body, "joined");
			wait_for(e, req, ctx.deadline_ms > 0 ? ctx.deadline_ms : 0);
		}
		goto done;
	}
	if (h->nrunning >= CRAB_TOOL_HOST_RUNNING_MAX) {
		refuse(h, req, body, "overloaded", 1, "%zu calls are running already", h->nrunning);
		goto done;
	}
	if (ctx.deadline_ms <= 0) {
		refuse(h, req, body, "deadline_exceeded", 1, "the call arrived after its deadline");
		goto done;
	}
	e = xcalloc(1, sizeof(*e));
	e->h = h;
	e->call_id = xstrdup(json_string_value(json_object_get(body, "call_id")));
	memcpy(e->digest, digest, sizeof(digest));
	TAILQ_INIT(&e->waiters);
	crab_strmap_put(h->entries, e->call_id, e);
	call = xcalloc(1, sizeof(*call));
	call->e = e;
	call->tool = t;
	call->req = body; /* ctx's strings and args live in it */
	call->arguments = args;
	call->ctx = ctx;
	e->call = call;
	h->nrunning++;
	wait_for(e, req, ctx.deadline_ms);
	observe(h, body, "run");
	t->fn(t->arg, call); /* may reply at once */
	return;
done:
	json_decref(body);
}

static void list_tools(struct crab_tool_host *h, struct crab_http_request *req)
{
	json_t *tools = json_array();
	size_t len;
	char *s;

	for (size_t i = 0; i < h->ntools; i++) {
		struct tool *t = &h->tools[i];
		json_array_append_new(tools, json_pack("{s:s, s:s, s:O, s:b}", "name", t->name,
						     "description", t->description, "input_schema",
						     t->schema, "idempotent", t->idempotent));
	}
	s = dump(json_pack("{s:s, s:o}", "host", h->name, "tools", tools), &len);
	reply_json(req, s, len);
}

void crab_tool_host_on_request(void *host, struct crab_http_request *req)
{
	struct crab_tool_host *h = host;
	const char *path = crab_http_request_path(req);
	const char *method = crab_http_request_method(req);
	const char *text;
	json_error_t jerr;
	json_t *body;
	size_t len;

	if (!crab_tool_host_route(path)) {
		http_error(req, "not_found", NULL, "no route for '%.100s'", path);
		return;
	}
	if (strcmp(method, strcmp(path, "/v1/tools") == 0 ? "GET" : "POST") != 0) {
		http_error(req, "method_not_allowed", NULL, "%s is not allowed on %s", method, path);
		return;
	}
	if (strcmp(path, "/v1/tools") == 0) {
		list_tools(h, req);
		return;
	}
	text = crab_http_request_body(req, &len);
	body = json_loadb(text ? text : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(body)) {
		http_error(req, "invalid_json", NULL, "the body is not a JSON object%s%s",
		    body ? "" : ": ", body ? "" : jerr.text);
		json_decref(body);
		return;
	}
	handle_call(h, req, body);
}

void crab_tool_host_free(struct crab_tool_host *h)
{
	if (h == NULL)
		return;
	crab_strmap_free(h->entries, entry_free);
	for (size_t i = 0; i < h->ntools; i++) {
		free(h->tools[i].name);
		free(h->tools[i].description);
		json_decref(h->tools[i].schema);
	}
	free(h->name);
	free(h);
}
