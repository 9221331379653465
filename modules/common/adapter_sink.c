/* adapter_sink.c: a call's sink, adapter_sink.h. */
#include <string.h>

#include "modules/common/adapter_sink.h"

int adapter_sink_init(struct adapter_sink *s, const struct crab_model_sink_v1 *sink, void *arg)
{
	if (sink == NULL || sink->size < offsetof(struct crab_model_sink_v1, on_error) +
	    sizeof(sink->on_error) || sink->on_text == NULL || sink->on_done == NULL ||
	    sink->on_error == NULL)
		return -1;
	memcpy(&s->ops, sink, sizeof(s->ops));
	s->arg = arg;
	return 0;
}

void adapter_sink_text(void *arg, const char *text, size_t len)
{
	struct adapter_sink *s = arg;
	if (s->cancelled)
		return;
	s->emitted = 1;
	s->ops.on_text(s->arg, text, len);
}

void adapter_sink_tool_call(void *arg, const char *call_json, size_t len)
{
	struct adapter_sink *s = arg;
	if (s->cancelled)
		return;
	s->emitted = 1;
	if (s->ops.on_tool_call != NULL)
		s->ops.on_tool_call(s->arg, call_json, len);
}

void adapter_sink_usage(void *arg, int64_t input_tokens, int64_t output_tokens)
{
	struct adapter_sink *s = arg;
	if (!s->cancelled && s->ops.on_usage != NULL)
		s->ops.on_usage(s->arg, input_tokens, output_tokens);
}
