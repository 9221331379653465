/* ws_mkframe.h: building WebSocket frames for test_ws_frame.c and test_ws.c. */
#ifndef CRAB_T_WS_MKFRAME_H
#define CRAB_T_WS_MKFRAME_H

#include <string.h>

#include "core/ws.h"

static const unsigned char KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* A frame into out (room enough): masked with KEY when masked. Returns its length. */
static inline size_t mkframe(unsigned char *out, int fin, int op, const void *payload,
    size_t len, int masked)
{
	size_t n = crab_ws_frame_header(out, fin, op, len, masked ? KEY : NULL);

	memcpy(out + n, payload, len);
	if (masked)
		crab_ws_mask(out + n, len, KEY, 0);
	return n + len;
}

#endif
