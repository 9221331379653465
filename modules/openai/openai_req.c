/* openai_req.c: the provider-neutral request as a Chat Completions body, and the
 * provider's error body as a message for a person. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup when built as a .so */
#endif
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "modules/common/adapter_msg.h"
#include "modules/common/adapter_req.h"
#include "modules/openai/openai_int.h"

/* Some JSON as a string: itself when it is one, else its compact encoding. */
static json_t *as_string(json_t *v, const char *when_null)
{
	char *s;
	json_t *out;

	if (json_is_string(v))
		return json_incref(v);
	if (v == NULL || json_is_null(v))
		return json_string(when_null);
	if ((s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		return NULL;
	out = json_string(s);
	free(s);
	return out;
}

/* [{"id","name","arguments":{...}}] as [{"id","type":"function","function":{"name",
 * "arguments":"<JSON text>"}}]. */
static json_t *map_tool_calls(json_t *calls, char *err, size_t errlen)
{
	json_t *out = json_array(), *c;
	size_t i;

	json_array_foreach(calls, i, c) {
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *name = json_string_value(json_object_get(c, "name"));
		json_t *args = as_string(json_object_get(c, "arguments"), "{}");

		if (id == NULL || name == NULL || args == NULL) {
			json_decref(args);
			json_decref(out);
			snprintf(err, errlen, "an assistant tool call without id or name");
			return NULL;
		}
		json_array_append_new(out, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", id, "type",
		    "function", "function", "name", name, "arguments", args));
	}
	return out;
}

/* Keeps only the members of m that kept (NULL-ended) names: those Chat Completions takes. */
static void keep_only(json_t *m, const char *const *kept)
{
	const char *key;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(m, tmp, key, v) {
		size_t i = 0;
		while (kept[i] != NULL && strcmp(kept[i], key) != 0)
			i++;
		if (kept[i] == NULL)
			json_object_del(m, key);
	}
}

/* A message of the neutral request as Chat Completions takes it, changed in place (the
 * request was parsed for this call alone): most messages need nothing but losing the
 * members OpenAI would refuse, so none is built anew. */
static int map_message(json_t *m, char *err, size_t errlen)
{
	static const char *const tool_keys[] = {"role", "tool_call_id", "content", NULL};
	static const char *const assistant_keys[] = {"role", "content", "tool_calls", NULL};
	static const char *const other_keys[] = {"role", "content", NULL};
	const char *role = json_string_value(json_object_get(m, "role"));
	json_t *content = json_object_get(m, "content");

	if (!json_is_object(m) || role == NULL) {
		snprintf(err, errlen, "a message without a role");
		return -1;
	}
	if (strcmp(role, "tool") == 0) {
		if (!json_is_string(json_object_get(m, "tool_call_id"))) {
			snprintf(err, errlen, "a tool message without tool_call_id");
			return -1;
		}
		if (!json_is_string(content))
			json_object_set_new(m, "content", as_string(content, ""));
		keep_only(m, tool_keys);
		return 0;
	}
	if (strcmp(role, "assistant") == 0) {
		json_t *calls = json_object_get(m, "tool_calls");
		int has_calls = json_is_array(calls) && json_array_size(calls) > 0;

		if (has_calls) {
			json_t *mapped = map_tool_calls(calls, err, errlen);
			if (mapped == NULL)
				return -1;
			json_object_set_new(m, "tool_calls", mapped);
		} else {
			json_object_del(m, "tool_calls");
		}
		if (!json_is_string(content) || json_string_length(content) == 0)
			json_object_set_new(m, "content", has_calls ? json_null() : json_string(""));
		keep_only(m, assistant_keys);
		return 0;
	}
	/* user, system, developer: a string, or content parts passed as they are */
	if (!json_is_string(content) && !json_is_array(content))
		json_object_set_new(m, "content", json_string(""));
	keep_only(m, other_keys);
	return 0;
}

/* [{"name","description","input_schema"}] as [{"type":"function","function":{"name",
 * "description","parameters"}}]. */
static json_t *map_tools(json_t *tools, char *err, size_t errlen)
{
	json_t *out = json_array(), *t;
	size_t i;

	json_array_foreach(tools, i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));
		json_t *desc = json_object_get(t, "description");
		json_t *schema = json_object_get(t, "input_schema");
		json_t *fn;

		if (name == NULL) {
			json_decref(out);
			snprintf(err, errlen, "a tool without a name");
			return NULL;
		}
		fn = json_pack("{s:s}", "name", name);
		if (json_is_string(desc))
			json_object_set(fn, "description", desc);
		json_object_set_new(fn, "parameters", json_is_object(schema) ? json_incref(schema) :
		    json_pack("{s:s, s:{}}", "type", "object", "properties"));
		json_array_append_new(out, json_pack("{s:s, s:o}", "type", "function", "function", fn));
	}
	return out;
}

char *oai_request_build(const char *req, size_t req_len, const struct oai_req_opts *opt,
    size_t *len, int *stream, char *err, size_t errlen)
{
	json_t *in, *out = NULL, *msgs, *m, *v;
	const char *model, *system;
	char *body = NULL;
	size_t i;

	if ((in = adapter_req_parse(req, req_len, opt->model, &model, err, errlen)) == NULL)
		goto done;
	msgs = json_object_get(in, "messages");
	json_array_foreach(msgs, i, m) {
		if (map_message(m, err, errlen) != 0) {
			if (errlen > 0 && err[0] == '\0')
				snprintf(err, errlen, "message %zu cannot be encoded", i + 1);
			goto done;
		}
	}
	system = json_string_value(json_object_get(in, "system"));
	if (system != NULL && system[0] != '\0')
		json_array_insert_new(msgs, 0, json_pack("{s:s, s:s}", "role", "system", "content",
		    system));
	out = json_pack("{s:s, s:O}", "model", model, "messages", msgs);
	v = json_object_get(in, "tools");
	if (json_is_array(v) && json_array_size(v) > 0) {
		json_t *tools = map_tools(v, err, errlen);
		if (tools == NULL)
			goto done;
		json_object_set_new(out, "tools", tools);
	}
	v = json_object_get(in, "max_tokens");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		json_object_set(out, opt->max_tokens_field ? opt->max_tokens_field :
		    "max_completion_tokens", v);
	if ((v = json_object_get(in, "temperature")) != NULL && json_is_number(v))
		json_object_set(out, "temperature", v);
	*stream = !json_is_false(json_object_get(in, "stream"));
	if (*stream) {
		json_object_set_new(out, "stream", json_true());
		if (opt->include_usage)
			json_object_set_new(out, "stream_options", json_pack("{s:b}", "include_usage", 1));
	}
	if ((body = json_dumps(out, JSON_COMPACT)) == NULL)
		snprintf(err, errlen, "cannot encode the request");
	else
		*len = strlen(body);
done:
	json_decref(in);
	json_decref(out);
	return body;
}

void oai_error_body(const char *body, size_t len, char *msg, size_t msglen, char *code,
    size_t codelen)
{
	json_t *j = adapter_error_body(body, len, OAI_MSG_MAX, msg, msglen);
	json_t *err = json_object_get(j, "error"), *jc = json_object_get(err, "code");

	/* error.code, else error.type (json_object_get is NULL for what is not an object) */
	adapter_clean_str(code, codelen, json_is_string(jc) ? json_string_value(jc) :
	    json_string_value(json_object_get(err, "type")));
	json_decref(j);
}
