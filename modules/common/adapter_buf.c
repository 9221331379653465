/* adapter_buf.c: the bounded growable buffer of adapter_buf.h. */
#include <stdlib.h>
#include <string.h>

#include "modules/common/adapter_buf.h"

int adapter_buf_add(char **buf, size_t *len, size_t *cap, const char *p, size_t n, size_t max)
{
	if (n > max || *len > max - n)
		return -1;
	if (*len + n + 1 > *cap) {
		size_t c = *cap ? *cap : 256;
		char *b;
		while (c < *len + n + 1)
			c *= 2;
		if ((b = realloc(*buf, c)) == NULL)
			return -1;
		*buf = b;
		*cap = c;
	}
	if (n > 0)
		memcpy(*buf + *len, p, n);
	*len += n;
	(*buf)[*len] = '\0';
	return 0;
}
