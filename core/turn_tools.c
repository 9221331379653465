/* turn_tools.c: a turn's tool-call loop. When the model stops for tool use, every call
 * of the round goes out at once (tools.h), each with call_id <turn_id>:<n> counted over
 * the turn and the agent's deadline; once all have answered, the assistant's message
 * with its calls and one tool message per result join the turn's chain, and the model is
 * asked again, up to the agent's tools.max_rounds. Every call is kept for the turn's
 * finish job, which writes them into tool_calls. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "jsontext.h"
#include "log.h"
#include "tools.h"
#include "turn_int.h"

struct turn_call {
	struct turn *tr;
	struct crab_tool_call *call; /* NULL once answered */
	char *model_id;              /* the model's id for the call, for its tool message */
	char *arguments;
	char *result;
	char call_id[CRAB_ID_MAX + 24];
	int64_t started_at;
};

void crab_turn_tools_offer(struct turn *tr)
{
	struct crab_tools *tools = tr->t->gw->tools;

	json_decref(tr->offer);
	tr->offer = tools && tr->agent ? crab_tools_offer(tools, tr->agent, tr->ev.tenant_id) : NULL;
}

int crab_turn_tools_wanted(const struct turn *tr)
{
	return tr->error_code[0] == '\0' && strcmp(tr->stop_reason, "tool_use") == 0 &&
	       json_array_size(tr->tool_calls) > 0;
}

/* What the model reads of a result: the text of its content (and its data), or its
 * error. */
static char *for_model(const char *result)
{
	json_t *r = json_loads(result, 0, NULL), *part, *data;
	struct crab_buf b = {0};
	size_t i;

	if (!json_is_true(json_object_get(r, "ok"))) {
		json_t *e = json_pack("{s:O?}", "error", json_object_get(r, "error"));
		char *text = json_dumps(e, JSON_COMPACT);
		json_decref(e);
		json_decref(r);
		return text;
	}
	json_array_foreach(json_object_get(r, "content"), i, part) {
		const char *text = json_string_value(json_object_get(part, "text"));
		if (text == NULL)
			continue;
		if (b.len > 0)
			crab_buf_add(&b, "\n", 1);
		crab_buf_add(&b, text, strlen(text));
	}
	if (json_is_object(data = json_object_get(r, "data")) && json_object_size(data) > 0) {
		char *d = json_dumps(data, JSON_COMPACT);
		if (b.len > 0)
			crab_buf_add(&b, "\n", 1);
		crab_buf_add(&b, d, strlen(d));
		free(d);
	}
	json_decref(r);
	return crab_buf_take(&b);
}

static void chain_add(struct turn *tr, const char *msg)
{
	if (tr->chain.len > 0)
		crab_buf_add(&tr->chain, ",", 1);
	crab_buf_add(&tr->chain, msg, strlen(msg));
}

/* The round is over: the assistant's message, the results, and the model again. */
static void round_done(struct turn *tr)
{
	struct crab_buf b = {0};
	char *calls = json_dumps(tr->tool_calls, JSON_COMPACT);

	crab_jobj_open(&b);
	crab_jobj_str(&b, "role", "assistant");
	crab_jobj_strn(&b, "content", tr->text.len ? tr->text.data : NULL, tr->text.len);
	crab_jobj_raw(&b, "tool_calls", calls);
	crab_jobj_close(&b);
	chain_add(tr, b.data);
	crab_buf_free(&b);
	free(calls);
	for (size_t i = 0; i < tr->nround; i++) {
		struct turn_call *c = &tr->round[i];
		char *text = for_model(c->result);
		crab_jobj_open(&b);
		crab_jobj_str(&b, "role", "tool");
		crab_jobj_str(&b, "tool_call_id", c->model_id);
		crab_jobj_str(&b, "content", text);
		crab_jobj_close(&b);
		chain_add(tr, b.data);
		crab_buf_free(&b);
		free(text);
	}
	crab_turn_tools_clear_round(tr);
	tr->text.len = 0;
	json_array_clear(tr->tool_calls);
	tr->stop_reason[0] = '\0';
	tr->tools_then(tr);
}

static void call_done(void *arg, const char *tool, const char *result)
{
	struct turn_call *c = arg;
	struct turn *tr = c->tr;
	json_t *r = json_loads(result, 0, NULL);
	json_t *err = json_object_get(r, "error");
	char *error = json_is_true(json_object_get(r, "ok")) ? NULL : json_dumps(err ? err :
	    json_null(), JSON_COMPACT | JSON_ENCODE_ANY);

	c->call = NULL;
	c->result = xstrdup(result);
	json_array_append_new(tr->call_log, json_pack("{s:s, s:s, s:s, s:s, s:s?, s:I, s:I}",
	    "id", c->call_id, "tool", tool, "arguments", c->arguments, "result", result, "error",
	    error, "started_at", (json_int_t)c->started_at, "finished_at",
	    (json_int_t)crab_clock_now_ms()));
	free(error);
	json_decref(r);
	if (--tr->nleft == 0)
		round_done(tr);
}

void crab_turn_tools_run(struct turn *tr, void (*then)(struct turn *tr))
{
	json_t *c;
	size_t i;

	tr->tools_then = then;
	if (++tr->rounds > tr->agent->tools_max_rounds) {
		crab_turn_set_error(tr, "tool_loop_limit", "the model asked for tools more than "
		    "%lld times in one turn", (long long)tr->agent->tools_max_rounds);
		then(tr);
		return;
	}
	tr->nround = json_array_size(tr->tool_calls);
	tr->round = xcalloc(tr->nround, sizeof(*tr->round));
	tr->nleft = tr->nround;
	/* Every call is started before any answer is heard: they are never answered
	 * inside crab_tools_call. */
	json_array_foreach(tr->tool_calls, i, c) {
		struct turn_call *tc = &tr->round[i];
		const char *id = json_string_value(json_object_get(c, "id"));
		const char *name = json_string_value(json_object_get(c, "name"));
		json_t *args = json_object_get(c, "arguments");

		tc->tr = tr;
		tc->model_id = xstrdup(id ? id : "");
		tc->arguments = json_is_string(args) ? xstrdup(json_string_value(args)) :
			json_dumps(args ? args : json_object(), JSON_COMPACT | JSON_ENCODE_ANY);
		snprintf(tc->call_id, sizeof(tc->call_id), "%s:%lld", tr->turn_id,
		    (long long)++tr->ncalls);
		tc->started_at = crab_clock_now_ms();
		tc->call = crab_tools_call(tr->t->gw->tools, &(struct crab_tool_call_args){
			.agent = tr->agent, .tenant_id = tr->ev.tenant_id,
			.session_id = tr->ev.session_id, .memory_key = tr->memory_key,
			.call_id = tc->call_id,
			.name = name ? name : "", .arguments = tc->arguments,
			.deadline_ms = tr->agent->tools_deadline_ms}, call_done, tc);
	}
}

void crab_turn_tools_clear_round(struct turn *tr)
{
	for (size_t i = 0; i < tr->nround; i++) {
		crab_tools_cancel(tr->round[i].call);
		free(tr->round[i].model_id);
		free(tr->round[i].arguments);
		free(tr->round[i].result);
	}
	free(tr->round);
	tr->round = NULL;
	tr->nround = tr->nleft = 0;
}

int crab_turn_tools_write(struct crab_store *st, const struct turn *tr)
{
	json_t *c;
	size_t i;

	json_array_foreach(tr->call_log, i, c) {
		if (crab_store_tool_call_insert(st, &(struct crab_store_tool_call){
			.id = json_string_value(json_object_get(c, "id")),
			.tenant_id = tr->ev.tenant_id, .turn_id = tr->turn_id,
			.tool = json_string_value(json_object_get(c, "tool")),
			.arguments = json_string_value(json_object_get(c, "arguments")),
			.result = json_string_value(json_object_get(c, "result")),
			.error = json_string_value(json_object_get(c, "error")),
			.started_at = json_integer_value(json_object_get(c, "started_at")),
			.finished_at = json_integer_value(json_object_get(c, "finished_at"))}) != 0)
			return -1;
	}
	return 0;
}
