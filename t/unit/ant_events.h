/* ant_events.h: Anthropic Messages stream events as string literals, for
 * test_anthropic_sse.c and test_anthropic_module.c. */
#ifndef CRAB_T_ANT_EVENTS_H
#define CRAB_T_ANT_EVENTS_H

#define EV(name, data) "event: " name "\ndata: " data "\n\n"
#define MSG_START(in)                                                                      \
	EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\","   \
	   "\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\","     \
	   "\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"            \
	   "{\"input_tokens\":" in ",\"output_tokens\":1}}}")
#define TEXT_START(i)                                                                      \
	EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" i            \
	   ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
#define TEXT_DELTA(i, t)                                                                   \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" i            \
	   ",\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}")
#define TOOL_START(i, id, name)                                                            \
	EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" i            \
	   ",\"content_block\":{\"type\":\"tool_use\",\"id\":\"" id "\",\"name\":\"" name     \
	   "\",\"input\":{}}}")
#define JSON_DELTA(i, pj)                                                                  \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" i            \
	   ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"" pj "\"}}")
#define BLOCK_STOP(i) EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" i "}")
#define MSG_DELTA(sr, out)                                                                 \
	EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" sr   \
	   "\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":" out "}}")
#define MSG_STOP EV("message_stop", "{\"type\":\"message_stop\"}")
#define PING EV("ping", "{\"type\": \"ping\"}")

#endif
