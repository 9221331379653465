/* anthropic_req.c: the provider-neutral request as a Messages body
 * (shared/protocols/anthropic-messages.md §1), and the provider's error body as a message
 * for a person. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup when built as a .so */
#endif
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/anthropic/anthropic_int.h"
#include "modules/common/adapter_msg.h"
#include "modules/common/adapter_req.h"

/* Some JSON as text: itself when it is a string, else its compact encoding. */
static char *as_text(json_t *v)
{
	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (v == NULL || json_is_null(v))
		return strdup("");
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

static int add_text(json_t *blocks, const char *text)
{
	if (text == NULL || text[0] == '\0')
		return 0; /* the API refuses empty text blocks */
	return json_array_append_new(blocks, json_pack("{s:s, s:s}", "type", "text", "text", text));
}

/* A user's or an assistant's content: a string, or parts. Text parts become text blocks;
 * image blocks (already in the API's shape) go as they are; other parts are left out. */
static int add_content(json_t *blocks, json_t *content)
{
	size_t i;
	json_t *p;

	if (json_is_string(content))
		return add_text(blocks, json_string_value(content));
	json_array_foreach(content, i, p) {
		const char *type = json_string_value(json_object_get(p, "type"));
		if (type == NULL)
			continue;
		if (strcmp(type, "text") == 0)
			add_text(blocks, json_string_value(json_object_get(p, "text")));
		else if (strcmp(type, "image") == 0 && json_is_object(json_object_get(p, "source")))
			json_array_append(blocks, p);
	}
	return 0;
}

/* [{"id","name","arguments":{...}}] as tool_use blocks. arguments may also be the JSON
 * text of an object (as Chat Completions carries it). */
static int add_tool_uses(json_t *blocks, json_t *calls, char *err, size_t errlen)
{
	size_t i;
	json_t *c;

	json_array_foreach(calls, i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *name = json_string_value(json_object_get(c, "name"));
		json_t *args = json_object_get(c, "arguments"), *input;

		if (id == NULL || id[0] == '\0' || name == NULL || name[0] == '\0') {
			snprintf(err, errlen, "an assistant tool call without id or name");
			return -1;
		}
		if (args == NULL || json_is_null(args))
			input = json_object();
		else if (json_is_object(args))
			input = json_incref(args);
		else if (json_is_string(args))
			input = json_string_length(args) == 0 ? json_object() :
			    json_loads(json_string_value(args), 0, NULL);
		else
			input = NULL;
		if (!json_is_object(input)) {
			json_decref(input);
			snprintf(err, errlen, "the arguments of tool call '%.64s' are not a JSON object",
			    name);
			return -1;
		}
		json_array_append_new(blocks, json_pack("{s:s, s:s, s:s, s:o}", "type", "tool_use",
		    "id", id, "name", name, "input", input));
	}
	return 0;
}

/* The text the gateway gives the model for a failed call: {"error":{...}} alone. */
static int is_error_result(const char *content)
{
	json_t *j;
	int yes;

	if (content[0] != '{')
		return 0;
	j = json_loads(content, 0, NULL);
	yes = json_is_object(j) && json_object_size(j) == 1 &&
	    json_object_get(j, "error") != NULL && !json_is_null(json_object_get(j, "error"));
	json_decref(j);
	return yes;
}

static int tool_result(json_t *blocks, json_t *m, char *err, size_t errlen)
{
	const char *id = json_string_value(json_object_get(m, "tool_call_id"));
	json_t *flag = json_object_get(m, "is_error"), *b;
	char *text;

	if (id == NULL || id[0] == '\0') {
		snprintf(err, errlen, "a tool message without tool_call_id");
		return -1;
	}
	if ((text = as_text(json_object_get(m, "content"))) == NULL) {
		snprintf(err, errlen, "cannot encode a tool result");
		return -1;
	}
	b = json_pack("{s:s, s:s, s:s}", "type", "tool_result", "tool_use_id", id, "content", text);
	if (json_is_true(flag) || (flag == NULL && is_error_result(text)))
		json_object_set_new(b, "is_error", json_true());
	free(text);
	return json_array_append_new(blocks, b);
}

/* Appends blocks as a message of role to out, merged into the last message when that
 * has the same role (the API would combine them; sent merged, the roles alternate). */
static void append_turn(json_t *out, const char *role, json_t *blocks)
{
	json_t *last = json_array_get(out, json_array_size(out) - 1);

	if (json_array_size(blocks) == 0) {
		json_decref(blocks);
		return; /* nothing to say: an empty turn is refused by the API */
	}
	if (last != NULL && strcmp(json_string_value(json_object_get(last, "role")), role) == 0) {
		json_array_extend(json_object_get(last, "content"), blocks);
		json_decref(blocks);
		return;
	}
	json_array_append_new(out, json_pack("{s:s, s:o}", "role", role, "content", blocks));
}

/* The neutral messages as Messages turns; system messages among them join *system. */
static json_t *map_messages(json_t *msgs, json_t *system, char *err, size_t errlen)
{
	json_t *out = json_array(), *m;
	size_t i;

	json_array_foreach(msgs, i, m) {
		const char *role = json_string_value(json_object_get(m, "role"));
		json_t *content = json_object_get(m, "content");
		json_t *blocks = json_array();
		int rc = 0;

		if (!json_is_object(m) || role == NULL) {
			snprintf(err, errlen, "message %zu has no role", i + 1);
			rc = -1;
		} else if (strcmp(role, "user") == 0) {
			add_content(blocks, content);
		} else if (strcmp(role, "assistant") == 0) {
			add_content(blocks, content);
			rc = add_tool_uses(blocks, json_object_get(m, "tool_calls"), err, errlen);
		} else if (strcmp(role, "tool") == 0) {
			rc = tool_result(blocks, m, err, errlen);
			role = "user";
		} else if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
			json_t *t = json_array();
			add_content(t, content);
			json_array_extend(system, t);
			json_decref(t);
			json_decref(blocks);
			continue;
		} else {
			snprintf(err, errlen, "message %zu has role '%.32s', which the Messages API "
			    "does not know", i + 1, role);
			rc = -1;
		}
		if (rc != 0) {
			json_decref(blocks);
			json_decref(out);
			return NULL;
		}
		append_turn(out, role, blocks);
	}
	return out;
}

/* [{"name","description","input_schema"}], the same in the API's shape. */
static json_t *map_tools(json_t *tools, char *err, size_t errlen)
{
	json_t *out = json_array(), *t;
	size_t i;

	json_array_foreach(tools, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *desc = json_object_get(t, "description");
		json_t *schema = json_object_get(t, "input_schema");
		json_t *tool;

		if (name == NULL || name[0] == '\0') {
			json_decref(out);
			snprintf(err, errlen, "a tool without a name");
			return NULL;
		}
		tool = json_pack("{s:s}", "name", name);
		if (json_is_string(desc) && json_string_length(desc) > 0)
			json_object_set(tool, "description", desc);
		if (!json_is_object(schema)) {
			schema = json_pack("{s:s, s:{}}", "type", "object", "properties");
		} else if (json_object_get(schema, "type") == NULL) {
			schema = json_copy(schema); /* the API wants "type": "object" said */
			json_object_set_new(schema, "type", json_string("object"));
		} else {
			json_incref(schema);
		}
		json_object_set_new(tool, "input_schema", schema);
		json_array_append_new(out, tool);
	}
	return out;
}

/* The system text: the request's, then the text of any system message, blank-line
 * separated. NULL when there is none. */
static char *system_text(const char *first, json_t *more)
{
	size_t n = first ? strlen(first) : 0, i;
	json_t *b;
	char *s, *p;

	json_array_foreach(more, i, b)
		n += json_string_length(json_object_get(b, "text")) + 2;
	if (n == 0 || (s = malloc(n + 1)) == NULL)
		return NULL;
	p = s;
	if (first != NULL) {
		memcpy(p, first, strlen(first));
		p += strlen(first);
	}
	json_array_foreach(more, i, b) {
		const char *t = json_string_value(json_object_get(b, "text"));
		if (t == NULL)
			continue; /* an image in a system message: the API takes none there */
		if (p > s) {
			memcpy(p, "\n\n", 2);
			p += 2;
		}
		memcpy(p, t, strlen(t));
		p += strlen(t);
	}
	*p = '\0';
	if (p == s) {
		free(s);
		return NULL;
	}
	return s;
}

char *ant_request_build(const char *req, size_t req_len, const struct ant_req_opts *opt,
    size_t *len, int *stream, char *err, size_t errlen)
{
	json_t *in, *out = NULL, *msgs = NULL, *sys_more = json_array(), *v;
	const char *model, *system;
	char *body = NULL, *sys = NULL;
	long long max_tokens = opt->max_tokens;

	if ((in = adapter_req_parse(req, req_len, opt->model, &model, err, errlen)) == NULL)
		goto done;
	if ((msgs = map_messages(json_object_get(in, "messages"), sys_more, err, errlen)) == NULL)
		goto done;
	if (json_array_size(msgs) == 0) {
		snprintf(err, errlen, "the request has no message with content");
		goto done;
	}
	v = json_object_get(in, "max_tokens");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		max_tokens = json_integer_value(v);
	if (max_tokens <= 0) {
		snprintf(err, errlen, "no max_tokens: neither the request nor the configuration "
		    "gives one");
		goto done;
	}
	out = json_pack("{s:s, s:I}", "model", model, "max_tokens", (json_int_t)max_tokens);
	system = json_string_value(json_object_get(in, "system"));
	sys = system_text(system && system[0] ? system : NULL, sys_more);
	if (opt->system_prefix != NULL) {
		json_t *blocks = json_pack("[{s:s, s:s}]", "type", "text", "text",
		    opt->system_prefix);
		if (sys != NULL)
			json_array_append_new(blocks, json_pack("{s:s, s:s}", "type", "text",
			    "text", sys));
		json_object_set_new(out, "system", blocks);
	} else if (sys != NULL) {
		json_object_set_new(out, "system", json_string(sys));
	}
	json_object_set(out, "messages", msgs);
	v = json_object_get(in, "tools");
	if (json_is_array(v) && json_array_size(v) > 0) {
		json_t *tools = map_tools(v, err, errlen);
		if (tools == NULL)
			goto done;
		json_object_set_new(out, "tools", tools);
	}
	if ((v = json_object_get(in, "temperature")) != NULL && json_is_number(v))
		json_object_set(out, "temperature", v);
	*stream = !json_is_false(json_object_get(in, "stream"));
	if (*stream)
		json_object_set_new(out, "stream", json_true());
	if ((body = json_dumps(out, JSON_COMPACT)) == NULL)
		snprintf(err, errlen, "cannot encode the request");
	else
		*len = strlen(body);
done:
	free(sys);
	json_decref(sys_more);
	json_decref(msgs);
	json_decref(in);
	json_decref(out);
	return body;
}

void ant_error_body(const char *body, size_t len, char *msg, size_t msglen, char *type,
    size_t typelen, char *request_id, size_t idlen)
{
	json_t *j = adapter_error_body(body, len, ANT_MSG_MAX, msg, msglen);

	/* json_object_get is NULL for what is not an object */
	adapter_clean_str(type, typelen, json_string_value(json_object_get(json_object_get(j,
	    "error"), "type")));
	adapter_clean_str(request_id, idlen, json_string_value(json_object_get(j, "request_id")));
	json_decref(j);
}

const char *ant_error_code(const char *type, int *transient)
{
	static const struct {
		const char *type, *code;
		int transient;
	} map[] = {
		{"invalid_request_error", "bad_request", 0},
		{"authentication_error", "unauthenticated", 0},
		{"billing_error", "insufficient_quota", 0},
		{"permission_error", "forbidden", 0},
		{"not_found_error", "model_not_found", 0},
		{"request_too_large", "request_too_large", 0},
		{"rate_limit_error", "rate_limited", 1},
		{"api_error", "provider_error", 1},
		{"timeout_error", "timeout", 1},
		{"overloaded_error", "overloaded", 1},
	};

	for (size_t i = 0; type != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
		if (strcmp(map[i].type, type) == 0) {
			if (transient != NULL)
				*transient = map[i].transient;
			return map[i].code;
		}
	}
	return NULL;
}
