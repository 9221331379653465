/* template.c: see template.h. */
#include "template.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *const field_names[] = {
	"tenant_id", "agent_id", "platform", "channel_id", "actor_id", "thread_id",
};

static int field_index(const char *name, size_t len)
{
	for (size_t i = 0; i < CRAB_ARRAY_LEN(field_names); i++) {
		if (strlen(field_names[i]) == len && memcmp(field_names[i], name, len) == 0)
			return (int)i;
	}
	return -1;
}

static const char *field_value(const struct crab_event_fields *v, int i)
{
	const char *const values[] = {
		v->tenant_id, v->agent_id, v->platform, v->channel_id, v->actor_id, v->thread_id,
	};
	return values[i] ? values[i] : "";
}

int crab_template_check(const char *tpl, size_t *at, char *err, size_t errlen)
{
	for (const char *p = tpl; *p; p++) {
		const char *close;

		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			p++;
			continue;
		}
		if (*p == '}') {
			*at = (size_t)(p - tpl);
			snprintf(err, errlen, "a lone '}' (write '}}' for a literal brace)");
			return -1;
		}
		if (*p != '{')
			continue;
		close = strchr(p, '}');
		if (close == NULL) {
			*at = (size_t)(p - tpl);
			snprintf(err, errlen, "'{' is never closed");
			return -1;
		}
		if (field_index(p + 1, (size_t)(close - p - 1)) < 0) {
			*at = (size_t)(p - tpl);
			snprintf(err, errlen, "unknown field '%.*s' (known: tenant_id, agent_id, "
			    "platform, channel_id, actor_id, thread_id)", (int)(close - p - 1) > 64 ?
			    64 : (int)(close - p - 1), p + 1);
			return -1;
		}
		p = close;
	}
	return 0;
}

struct out {
	char *s;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->s = xrealloc(o->s, o->cap);
	}
	memcpy(o->s + o->len, s, n);
	o->len += n;
	o->s[o->len] = '\0';
}

static void put_path_safe(struct out *o, const char *v)
{
	static const char safe[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+-";

	if (*v == '\0') {
		put(o, "%", 1); /* an empty component would join its neighbours */
		return;
	}
	if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
		for (; *v; v++) /* never a step of its own */
			put(o, "%2E", 3);
		return;
	}
	for (; *v; v++) {
		char hex[4];
		if (strchr(safe, *v) != NULL) {
			put(o, v, 1);
		} else {
			snprintf(hex, sizeof(hex), "%%%02X", (unsigned char)*v);
			put(o, hex, 3);
		}
	}
}

char *crab_template_expand(const char *tpl, const struct crab_event_fields *v,
    enum crab_template_mode mode)
{
	struct out o = {0};

	put(&o, "", 0);
	for (const char *p = tpl; *p; p++) {
		const char *close;
		int i;

		if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
			put(&o, p, 1);
			p++;
			continue;
		}
		if (*p != '{' || (close = strchr(p, '}')) == NULL ||
		    (i = field_index(p + 1, (size_t)(close - p - 1))) < 0) {
			put(&o, p, 1); /* unchecked template: keep the text */
			continue;
		}
		if (mode == CRAB_TEMPLATE_PATH)
			put_path_safe(&o, field_value(v, i));
		else
			put(&o, field_value(v, i), strlen(field_value(v, i)));
		p = close;
	}
	return o.s;
}
