/* template.h: the small templates of the configuration ("{platform}:{actor_id}"):
 * literal text and {field} references to the fields of one event. "{{" and "}}" are
 * literal braces. Used for isolation keys and context file paths. */
#ifndef CRAB_TEMPLATE_H
#define CRAB_TEMPLATE_H

#include <stddef.h>

/* The fields of an event that routing reads and templates may name; a NULL value
 * expands to "". */
struct crab_event_fields {
	const char *tenant_id;
	const char *agent_id;
	const char *platform;
	const char *channel_id;
	const char *actor_id;
	const char *thread_id;
};

/* 0 when tpl is well formed and names only known fields; else -1 with a reason in err
 * and the byte offset of the fault in *at. */
int crab_template_check(const char *tpl, size_t *at, char *err, size_t errlen);

enum crab_template_mode {
	CRAB_TEMPLATE_TEXT, /* values as they are */
	CRAB_TEMPLATE_PATH, /* values made safe as one path component: no '/', never "." or
			     * "..", bytes outside [A-Za-z0-9._@+-] written as %XX */
};

/* Expands a checked template; returns a malloc'd string. */
char *crab_template_expand(const char *tpl, const struct crab_event_fields *v,
    enum crab_template_mode mode);

#endif
