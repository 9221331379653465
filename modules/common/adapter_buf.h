/* adapter_buf.h: the model adapters' growable buffer, bounded as everything they keep
 * is: an SSE line, an event's data, a tool call's arguments, an answer's body. Only
 * libc. See README.md for how this code is shared. */
#ifndef CRAB_ADAPTER_BUF_H
#define CRAB_ADAPTER_BUF_H

#include <stddef.h>

/* Appends n bytes of p to *buf (*len bytes used, *cap allocated), which may not grow
 * beyond max bytes; keeps a NUL after them. 0, or -1 beyond max or out of memory, with
 * the buffer as it was. */
int adapter_buf_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n, size_t max);

#endif
