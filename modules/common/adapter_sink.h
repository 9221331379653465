/* adapter_sink.h: the sink a model adapter's call reports to, as the call holds it: the
 * host's table, copied as crab_model_ops_v1.start must, and the two facts every adapter
 * decides by: whether the host cancelled the call (nothing more goes to it) and whether
 * anything went out (a failure after that is reported, never retried invisibly). See
 * README.md for how this code is shared. */
#ifndef CRAB_ADAPTER_SINK_H
#define CRAB_ADAPTER_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "abi/crab_module_v1.h"

struct adapter_sink {
	struct crab_model_sink_v1 ops;
	void *arg;
	int cancelled;
	int emitted;
};

/* 0 and s set up when sink is one a call can report to (on_text, on_done and on_error
 * at least); -1 otherwise. */
int adapter_sink_init(struct adapter_sink *s, const struct crab_model_sink_v1 *sink, void *arg);

/* The assemblers' callbacks (struct oai_out, struct ant_out), their arg a struct
 * adapter_sink: the answer to the host while the call is not cancelled. */
void adapter_sink_text(void *arg, const char *text, size_t len);
void adapter_sink_tool_call(void *arg, const char *call_json, size_t len);
void adapter_sink_usage(void *arg, int64_t input_tokens, int64_t output_tokens);

#endif
