/* turn_call.c: a turn's model call (turns.h): the request composed (history, input,
 * context layers, the tools it may use), the adapter's sink, the model's timeout, and
 * the tool-call loop's turns back to the model; turn_run.c begins and finishes turns. */
#include "turn_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "live.h"
#include "log.h"
#include "modules.h"
#include "jsontext.h"

void crab_turn_end_call(struct turn *tr)
{
	if (tr->calling && tr->ops != NULL && tr->handle != NULL)
		tr->ops->cancel(tr->ctx, tr->handle);
	tr->calling = 0;
}

static void sink_text(void *arg, const char *text, size_t len)
{
	struct turn *tr = arg;

	if (tr->text.len + len > CRAB_TURN_TEXT_MAX) {
		crab_turn_set_error(tr, "answer_too_large", "the model's answer exceeds %d bytes",
		    CRAB_TURN_TEXT_MAX);
		return;
	}
	crab_buf_add(&tr->text, text, len);
	crab_live_delta(tr->t->gw->live, tr->ev.tenant_id, tr->ev.agent_id, tr->ev.session_id,
	    tr->turn_id, text, len);
}

static void sink_tool_call(void *arg, const char *call, size_t len)
{
	struct turn *tr = arg;
	json_t *c = json_loadb(call, len, 0, NULL);

	if (json_is_object(c))
		json_array_append(tr->tool_calls, c);
	else
		crab_turn_set_error(tr, "bad_response",
		    "the model adapter passed a tool call that is not JSON");
	json_decref(c);
}

static void sink_usage(void *arg, int64_t in, int64_t out)
{
	struct turn *tr = arg;
	tr->usage_in = in;
	tr->usage_out = out;
}

/* The adapter's last word: finish on the loop, never inside the adapter's call. */
static void sink_end(struct turn *tr)
{
	if (!tr->calling)
		return;
	tr->calling = 0;
	event_active(tr->finish_ev, EV_TIMEOUT, 0);
}

static void sink_done(void *arg, const char *stop_reason)
{
	struct turn *tr = arg;

	crab_strlcpy(tr->stop_reason, stop_reason ? stop_reason : "end_turn",
	    sizeof(tr->stop_reason));
	sink_end(tr);
}

static void sink_error(void *arg, const char *code, const char *message, int retryable)
{
	struct turn *tr = arg;

	crab_turn_set_error(tr, code ? code : "model_error", "%s%s",
	    message ? message : "the model failed",
	    retryable ? " (retryable)" : "");
	sink_end(tr);
}

static const struct crab_model_sink_v1 sink = {
	.size = sizeof(struct crab_model_sink_v1),
	.on_text = sink_text,
	.on_tool_call = sink_tool_call,
	.on_usage = sink_usage,
	.on_done = sink_done,
	.on_error = sink_error,
};

static void model_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct turn *tr = arg;

	(void)fd;
	(void)what;
	if (!tr->calling)
		return;
	crab_turn_end_call(tr);
	crab_turn_set_error(tr, "timeout", "the model did not answer within %lld s",
	    (long long)tr->cfg->turns.model_timeout_s);
	crab_turn_finish(tr);
}

static const char *str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* The user's message of this turn: the text, and attachments as references. */
static json_t *input_message(json_t *env)
{
	struct crab_buf b = {0};
	json_t *att = json_object_get(env, "attachments"), *a, *msg;
	const char *text = str(env, "text");
	size_t i;
	char *content;

	if (text != NULL)
		crab_buf_add(&b, text, strlen(text));
	json_array_foreach(att, i, a) {
		char line[1024];
		int n = snprintf(line, sizeof(line), "%s[attachment: %s %s %s %s]",
		    b.len ? "\n" : "", str(a, "kind") ? str(a, "kind") : "file",
		    str(a, "mime") ? str(a, "mime") : "", str(a, "name") ? str(a, "name") : "",
		    str(a, "url") ? str(a, "url") : "");
		crab_buf_add(&b, line, n > 0 && (size_t)n < sizeof(line) ? (size_t)n : 0);
	}
	content = crab_buf_take(&b);
	msg = json_pack("{s:s, s:s}", "role", "user", "content", content);
	if (json_array_size(att) > 0)
		json_object_set(msg, "attachments", att);
	free(content);
	return msg;
}

static void add(struct crab_buf *b, const char *s)
{
	crab_buf_add(b, s, strlen(s));
}

/* The session and runtime layer: where the conversation happens and with whom. */
static char *runtime_addition(json_t *env, const struct crab_event_fields *v,
    const struct tsession *s)
{
	const char *name = str(json_object_get(env, "source"), "actor_name");
	const char *type = str(env, "type");
	struct crab_buf b = {0};

	add(&b, "Conversation: ");
	if (v->platform != NULL && v->platform[0] != '\0') {
		add(&b, "platform ");
		add(&b, v->platform);
		add(&b, ", channel ");
		add(&b, v->channel_id ? v->channel_id : "");
	} else {
		add(&b, "no channel");
	}
	if (type != NULL && strcmp(type, "channel.message.received") != 0) {
		add(&b, "; internal event ");
		add(&b, type);
	}
	if (v->actor_id != NULL && v->actor_id[0] != '\0') {
		add(&b, "; actor ");
		add(&b, v->actor_id);
		if (name != NULL) {
			add(&b, " (");
			add(&b, name);
			add(&b, ")");
		}
	}
	add(&b, "; session ");
	add(&b, s->id);
	add(&b, ".");
	return crab_buf_take(&b);
}

/* The request's members after its messages, composed once a turn: "...}". */
static char *request_rest(struct turn *tr, json_t *env)
{
	json_t *src = json_object_get(env, "source");
	json_t *target = tr->ev.target ? json_loads(tr->ev.target, 0, NULL) : NULL;
	const struct crab_event_fields v = {
		.tenant_id = tr->ev.tenant_id, .agent_id = tr->ev.agent_id,
		.platform = str(src, "platform") ? str(src, "platform") : str(target, "platform"),
		.channel_id = str(src, "channel_id") ? str(src, "channel_id") :
						       str(target, "channel_id"),
		.actor_id = str(src, "actor_id") ? str(src, "actor_id") : str(env, "actor_id"),
		.thread_id = str(src, "thread_id") ? str(src, "thread_id") : str(target, "thread_id"),
	};
	char *addition = runtime_addition(env, &v, tr->s);
	char *system = crab_context_compose(tr->t->context, tr->agent, &v, addition);
	json_t *req;
	char *rest, *out;

	req = json_pack("{s:s, s:s, s:I, s:b}", "model",
	    tr->model->model ? tr->model->model : tr->model->id, "system", system, "max_tokens",
	    (json_int_t)tr->agent->max_tokens, "stream", 1);
	if (tr->offer != NULL)
		json_object_set(req, "tools", tr->offer);
	rest = json_dumps(req, JSON_COMPACT); /* "{...}": its members follow the messages */
	out = xstrdup(rest + 1);
	json_decref(req);
	json_decref(target);
	free(rest);
	free(system);
	free(addition);
	return out;
}

/* {"messages":[history, input, this turn's calls and results], ...}. */
static char *build_request(struct turn *tr)
{
	struct crab_buf b = {0};

	crab_buf_add(&b, "{\"messages\":[", 13);
	if (tr->history != NULL && tr->history[0] != '\0') {
		crab_buf_add(&b, tr->history, strlen(tr->history));
		crab_buf_add(&b, ",", 1);
	}
	crab_buf_add(&b, tr->input, strlen(tr->input));
	if (tr->chain.len > 0) {
		crab_buf_add(&b, ",", 1);
		crab_buf_add(&b, tr->chain.data, tr->chain.len);
	}
	crab_buf_add(&b, "],", 2);
	crab_buf_add(&b, tr->req_rest, strlen(tr->req_rest));
	return crab_buf_take(&b);
}

/* One request to the model: the turn's first, or the next once its tools answered. */
static void start_call(struct turn *tr)
{
	struct crab_gateway *gw = tr->t->gw;
	struct timeval limit = {tr->cfg->turns.model_timeout_s, 0};
	int rc;

	free(tr->request);
	tr->request = build_request(tr);
	if (tr->timeout == NULL)
		tr->timeout = evtimer_new(gw->base, model_timeout, tr);
	evtimer_add(tr->timeout, &limit);
	if (tr->model_start_us == 0)
		tr->model_start_us = crab_monotonic_us();
	tr->calling = 1;
	tr->handle = NULL;
	rc = tr->ops->start(tr->ctx, tr->request, strlen(tr->request), &sink, tr, &tr->handle);
	if (rc != 0 && tr->calling) {
		tr->calling = 0;
		crab_turn_set_error(tr, "model_error", "model adapter '%s' refused the request",
		    tr->model->adapter);
		event_active(tr->finish_ev, EV_TIMEOUT, 0);
	}
}

/* Tools answered (or the loop may not go on): the model again, or the end. */
static void after_tools(struct turn *tr)
{
	if (tr->error_code[0] == '\0' && tr->t->draining)
		crab_turn_set_error(tr, "shutting_down",
		    "the gateway stopped during the turn's tool calls");
	if (tr->error_code[0] != '\0') {
		crab_turn_finish(tr);
		return;
	}
	start_call(tr);
}

static void finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct turn *tr = arg;

	(void)fd;
	(void)what;
	if (crab_turn_tools_wanted(tr)) {
		crab_turn_tools_run(tr, after_tools);
		return;
	}
	crab_turn_finish(tr);
}

void crab_turn_call_model(struct turn *tr)
{
	struct crab_gateway *gw = tr->t->gw;
	json_t *env = tr->envelope ? json_incref(tr->envelope) :
				     json_loads(tr->ev.envelope, 0, NULL);

	tr->finish_ev = event_new(gw->base, -1, 0, finish_cb, tr);
	if (tr->agent == NULL) {
		crab_turn_set_error(tr, "agent_unknown", "agent '%s' is not in the configuration",
		    tr->ev.agent_id);
	} else if (tr->model == NULL ||
	    (tr->ops = crab_registry_model_instance(gw->modules, tr->model->id, &tr->ctx)) == NULL) {
		crab_turn_set_error(tr, "model_unavailable", "model '%s' is not running",
		    tr->agent->model);
	}
	if (env != NULL) {
		json_t *input = input_message(env);
		const char *message_id = str(json_object_get(env, "source"), "message_id");

		tr->input = json_dumps(input, JSON_COMPACT);
		tr->reply_to = message_id ? xstrdup(message_id) : NULL;
		json_decref(input);
	}
	if (tr->error_code[0] != '\0' || env == NULL) {
		if (env == NULL)
			crab_turn_set_error(tr, "internal", "the stored envelope is not JSON");
		json_decref(env);
		crab_turn_finish(tr);
		return;
	}
	crab_turn_tools_offer(tr);
	tr->req_rest = request_rest(tr, env);
	json_decref(env);
	start_call(tr);
}
