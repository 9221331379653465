/* module_host.c: the host table a role lends its modules: logging, the clock, timers and
 * fds on the loop, the HTTP client, emitting events, config values, secrets, and a small
 * key-value area per module kept in the store. A slot whose service the role lacks is
 * left NULL, which CRAB_HOST_HAS() reports as absent. */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "http_client.h"
#include "log.h"
#include "module_self.h"
#include "storeq.h"
#include "util.h"
#include "version.h"

#define SECRET_FILE_MAX 8192
#define KV_KEY_MAX 256
#define KV_VALUE_MAX (64 * 1024)

static void host_log(struct crab_self_v1 *self, enum crab_log_v1 level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	switch (level) {
	case CRAB_LOG_V1_DEBUG: log_debug("module %s: %s", self->desc.name, line); break;
	case CRAB_LOG_V1_INFO: log_info("module %s: %s", self->desc.name, line); break;
	default: log_warnx("module %s: %s", self->desc.name, line); break;
	}
}

/* ---- timers and fds ---- */

struct crab_timer_v1 {
	struct event *ev;
	void (*cb)(void *arg);
	void *arg;
};

static void timer_fire(evutil_socket_t fd, short what, void *arg)
{
	struct crab_timer_v1 *t = arg;
	(void)fd;
	(void)what;
	t->cb(t->arg); /* may call timer_stop(t) */
}

static struct crab_timer_v1 *host_timer_start(struct crab_self_v1 *self, int64_t after_ms,
    int repeat, void (*cb)(void *arg), void *arg)
{
	struct crab_timer_v1 *t;
	struct timeval tv;

	if (after_ms < 0 || cb == NULL)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->cb = cb;
	t->arg = arg;
	t->ev = event_new(self->reg->base, -1, repeat ? EV_PERSIST : 0, timer_fire, t);
	/* libevent does not re-arm a persistent timer of 0: it would fire once, then never. */
	if (repeat && after_ms == 0)
		after_ms = 1;
	tv.tv_sec = after_ms / 1000;
	tv.tv_usec = (after_ms % 1000) * 1000;
	event_add(t->ev, &tv);
	return t;
}

static void host_timer_stop(struct crab_timer_v1 *t)
{
	if (t == NULL)
		return;
	event_free(t->ev);
	free(t);
}

struct crab_watch_v1 {
	struct event *ev;
	void (*cb)(int fd, unsigned events, void *arg);
	void *arg;
};

static void watch_fire(evutil_socket_t fd, short what, void *arg)
{
	struct crab_watch_v1 *w = arg;
	w->cb((int)fd, (what & EV_READ ? CRAB_FD_READ : 0) | (what & EV_WRITE ? CRAB_FD_WRITE : 0),
	    w->arg);
}

static struct crab_watch_v1 *host_fd_watch(struct crab_self_v1 *self, int fd, unsigned events,
    void (*cb)(int fd, unsigned events, void *arg), void *arg)
{
	struct crab_watch_v1 *w;
	short what = EV_PERSIST;

	if (fd < 0 || cb == NULL || (events & (CRAB_FD_READ | CRAB_FD_WRITE)) == 0)
		return NULL;
	what |= (events & CRAB_FD_READ ? EV_READ : 0) | (events & CRAB_FD_WRITE ? EV_WRITE : 0);
	w = xcalloc(1, sizeof(*w));
	w->cb = cb;
	w->arg = arg;
	w->ev = event_new(self->reg->base, fd, what, watch_fire, w);
	event_add(w->ev, NULL);
	return w;
}

static void host_fd_unwatch(struct crab_watch_v1 *w)
{
	if (w == NULL)
		return;
	event_free(w->ev);
	free(w);
}

/* ---- HTTP, events ---- */

static struct crab_http_call_v1 *host_http_start(struct crab_self_v1 *self,
    const struct crab_http_req_v1 *req, const struct crab_http_handler_v1 *h, void *arg)
{
	return (struct crab_http_call_v1 *)crab_http_client_start(self->reg->svc.http, req, h, arg);
}

static void host_http_cancel(struct crab_http_call_v1 *call)
{
	crab_http_client_cancel((struct crab_http_call *)call);
}

static int host_emit_event(struct crab_self_v1 *self, const char *envelope, size_t len,
    void (*done)(void *arg, int status, const char *answer, size_t len), void *arg)
{
	return self->reg->svc.emit(self->reg->svc.role, self->desc.name, envelope, len, done, arg);
}

/* ---- config and secrets ---- */

/* The scalar at a dotted path of the module's config, as text. */
static json_t *config_lookup(json_t *node, const char *key)
{
	char part[128];

	while (node != NULL && *key) {
		size_t n = strcspn(key, ".");
		if (n == 0 || n >= sizeof(part))
			return NULL;
		memcpy(part, key, n);
		part[n] = '\0';
		node = json_object_get(node, part);
		key += n + (key[n] == '.');
	}
	return node;
}

static int copy_out(const char *s, char *out, size_t outlen)
{
	return s != NULL && crab_strlcpy(out, s, outlen) < outlen ? 0 : -1;
}

static int host_config_get(struct crab_self_v1 *self, const char *key, char *out, size_t outlen)
{
	json_t *v = config_lookup(self->config, key);
	char num[64];

	if (json_is_string(v))
		return copy_out(json_string_value(v), out, outlen);
	if (json_is_integer(v)) {
		snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
		return copy_out(num, out, outlen);
	}
	if (json_is_boolean(v))
		return copy_out(json_is_true(v) ? "true" : "false", out, outlen);
	return -1;
}

static int read_secret_file(const char *path, char *out, size_t outlen)
{
	char buf[SECRET_FILE_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, SECRET_FILE_MAX + 1);
	int rc;

	if (fd >= 0)
		close(fd);
	if (n < 0 || n > SECRET_FILE_MAX)
		return -1;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	rc = copy_out(buf, out, outlen);
	explicit_bzero(buf, sizeof(buf));
	return rc;
}

static int host_secret_get(struct crab_self_v1 *self, const char *name, char *out, size_t outlen)
{
	char key[160], ref[1024];

	snprintf(key, sizeof(key), "%s_env", name);
	if (host_config_get(self, key, ref, sizeof(ref)) == 0)
		return copy_out(getenv(ref), out, outlen);
	snprintf(key, sizeof(key), "%s_file", name);
	if (host_config_get(self, key, ref, sizeof(ref)) == 0)
		return read_secret_file(ref, out, outlen);
	return -1;
}

/* ---- key-value area ---- */

struct kv_job {
	struct crab_store_job job;
	char module[65];
	char key[KV_KEY_MAX + 1];
	char *value; /* put: NULL deletes; get: the value read */
	size_t len;
	int put, found;
	void (*get_done)(void *arg, int ok, int found, const char *value, size_t len);
	void (*put_done)(void *arg, int ok);
	void *arg;
};

static int kv_run(struct crab_store *st, struct crab_store_job *job)
{
	struct kv_job *j = (struct kv_job *)job;
	if (j->put)
		return crab_store_kv_put(st, j->module, j->key, j->value, j->len,
		    crab_clock_now_ms());
	j->found = crab_store_kv_get(st, j->module, j->key, &j->value, &j->len);
	return j->found < 0 ? -1 : 0;
}

static void kv_done(struct crab_store_job *job, enum crab_job_status status)
{
	struct kv_job *j = (struct kv_job *)job;
	int ok = status == CRAB_JOB_OK;

	if (j->put && j->put_done != NULL)
		j->put_done(j->arg, ok);
	else if (!j->put && j->get_done != NULL)
		j->get_done(j->arg, ok, ok && j->found == 1, ok ? j->value : NULL, ok ? j->len : 0);
	free(j->value);
	free(j);
}

static struct kv_job *kv_job_new(struct crab_self_v1 *self, const char *key)
{
	struct kv_job *j;

	if (key == NULL || key[0] == '\0' || strlen(key) > KV_KEY_MAX)
		return NULL;
	j = xcalloc(1, sizeof(*j));
	j->job.run = kv_run;
	j->job.done = kv_done;
	crab_strlcpy(j->module, self->desc.name, sizeof(j->module));
	crab_strlcpy(j->key, key, sizeof(j->key));
	return j;
}

static int host_kv_get(struct crab_self_v1 *self, const char *key,
    void (*done)(void *arg, int ok, int found, const char *value, size_t len), void *arg)
{
	struct kv_job *j = kv_job_new(self, key);

	if (j == NULL)
		return -1;
	j->get_done = done;
	j->arg = arg;
	crab_storeq_submit(self->reg->svc.storeq, &j->job);
	return 0;
}

static int host_kv_put(struct crab_self_v1 *self, const char *key, const char *value,
    size_t len, void (*done)(void *arg, int ok), void *arg)
{
	struct kv_job *j;

	if (value != NULL && len > KV_VALUE_MAX)
		return -1;
	if ((j = kv_job_new(self, key)) == NULL)
		return -1;
	j->put = 1;
	if (value != NULL) {
		j->value = xmalloc(len + 1);
		memcpy(j->value, value, len);
		j->value[len] = '\0';
		j->len = len;
	}
	j->put_done = done;
	j->arg = arg;
	crab_storeq_submit(self->reg->svc.storeq, &j->job);
	return 0;
}

/* ---- subscription credentials ---- */

/* Only a model instance (a models: entry) has an auth: of its own. */
static int host_auth_token(struct crab_self_v1 *self, const char *stale,
    void (*answer)(void *arg, const char *token, const char *error), void *arg)
{
	if (self->instance == NULL)
		return -1;
	return crab_auth_token(self->reg->svc.auth, self->instance, self->config, stale, answer,
	    arg);
}

void crab_module_host_init(struct crab_registry *r)
{
	struct crab_host_v1 *h = &r->host;

	h->abi_major = CRAB_ABI_MAJOR;
	h->size = sizeof(*h);
	h->host_version = CRAB_VERSION;
	h->role = r->svc.role_name ? r->svc.role_name : "gateway";
	h->log = host_log;
	h->now_ms = crab_clock_now_ms;
	h->timer_start = host_timer_start;
	h->timer_stop = host_timer_stop;
	h->fd_watch = host_fd_watch;
	h->fd_unwatch = host_fd_unwatch;
	h->config_get = host_config_get;
	h->secret_get = host_secret_get;
	if (r->svc.http != NULL) {
		h->http_start = host_http_start;
		h->http_cancel = host_http_cancel;
	}
	if (r->svc.emit != NULL)
		h->emit_event = host_emit_event;
	if (r->svc.storeq != NULL) {
		h->kv_get = host_kv_get;
		h->kv_put = host_kv_put;
	}
	if (r->svc.auth != NULL)
		h->auth_token = host_auth_token;
}
