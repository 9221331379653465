/* layout.c: prints the layout of every v1.0 struct member and the value of every v1.0
 * constant of the crab_module_v1.h found on the include path. t2001 builds it against
 * the frozen t/modules/abi-v1.0/ and against abi/: the outputs must be the same, so
 * the current header only ever adds (new members are not listed here). */
#include <stdio.h>

#include "crab_module_v1.h"

#define F(s, m) printf("%s.%s %zu %zu\n", #s, #m, offsetof(struct s, m), sizeof(((struct s *)0)->m))
#define C(c) printf("%s %lld\n", #c, (long long)(c))

int main(void)
{
	C(CRAB_ABI_MAJOR);
	C(CRAB_KIND_MODEL_ADAPTER);
	C(CRAB_KIND_TOOL_HOST);
	C(CRAB_KIND_CHANNEL_LISTENER);
	C(CRAB_KIND_SUBSCRIBER);
	C(CRAB_LOG_V1_DEBUG);
	C(CRAB_LOG_V1_INFO);
	C(CRAB_LOG_V1_WARN);
	C(CRAB_LOG_V1_ERROR);
	C(CRAB_FD_READ);
	C(CRAB_FD_WRITE);

	F(crab_http_req_v1, size);
	F(crab_http_req_v1, method);
	F(crab_http_req_v1, url);
	F(crab_http_req_v1, headers);
	F(crab_http_req_v1, body);
	F(crab_http_req_v1, body_len);
	F(crab_http_req_v1, timeout_ms);
	F(crab_http_req_v1, max_response_bytes);

	F(crab_http_handler_v1, size);
	F(crab_http_handler_v1, on_header);
	F(crab_http_handler_v1, on_data);
	F(crab_http_handler_v1, on_done);

	F(crab_host_v1, abi_major);
	F(crab_host_v1, size);
	F(crab_host_v1, host_version);
	F(crab_host_v1, role);
	F(crab_host_v1, log);
	F(crab_host_v1, now_ms);
	F(crab_host_v1, timer_start);
	F(crab_host_v1, timer_stop);
	F(crab_host_v1, fd_watch);
	F(crab_host_v1, fd_unwatch);
	F(crab_host_v1, http_start);
	F(crab_host_v1, http_cancel);
	F(crab_host_v1, emit_event);
	F(crab_host_v1, config_get);
	F(crab_host_v1, secret_get);
	F(crab_host_v1, kv_get);
	F(crab_host_v1, kv_put);

	F(crab_model_sink_v1, size);
	F(crab_model_sink_v1, on_text);
	F(crab_model_sink_v1, on_tool_call);
	F(crab_model_sink_v1, on_usage);
	F(crab_model_sink_v1, on_done);
	F(crab_model_sink_v1, on_error);

	F(crab_model_ops_v1, size);
	F(crab_model_ops_v1, start);
	F(crab_model_ops_v1, cancel);

	F(crab_tool_ops_v1, size);
	F(crab_tool_ops_v1, list);
	F(crab_tool_ops_v1, call);

	F(crab_channel_ops_v1, size);
	F(crab_channel_ops_v1, send);

	F(crab_subscriber_ops_v1, size);
	F(crab_subscriber_ops_v1, receive);

	F(crab_module_v1, abi_major);
	F(crab_module_v1, size);
	F(crab_module_v1, name);
	F(crab_module_v1, version);
	F(crab_module_v1, kinds);
	F(crab_module_v1, init);
	F(crab_module_v1, start);
	F(crab_module_v1, stop);
	F(crab_module_v1, fini);
	F(crab_module_v1, model);
	F(crab_module_v1, tool);
	F(crab_module_v1, channel);
	F(crab_module_v1, subscriber);
	return 0;
}
