/* util.h: allocation wrappers that die on out-of-memory, and bounded string helpers. */
#ifndef CRAB_UTIL_H
#define CRAB_UTIL_H

#include <stddef.h>
#include <stdint.h>

#define CRAB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

/* Copies at most dstsize-1 bytes and always terminates; returns strlen(src). */
size_t crab_strlcpy(char *dst, const char *src, size_t dstsize);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void crab_hex(const unsigned char *in, size_t len, char *out);
/* The len bytes that 2*len lowercase hex digits (and nothing after) spell, into out;
 * 0, or -1 for anything else. */
int crab_unhex(const char *hex, unsigned char *out, size_t len);

/* Constant-time comparison of two equal-length buffers: 0 when equal. */
int crab_ct_memcmp(const void *a, const void *b, size_t len);

/* Parses a decimal integer within [min, max]; 0 on success, -1 otherwise. */
int crab_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parses a duration "90s", "10m", "2h", "7d" (a bare number is seconds) within 1 ms and
 * max_ms; 0 on success, -1 otherwise. */
int crab_parse_duration_ms(const char *s, int64_t max_ms, int64_t *out);

/* Writes len bytes to dir/name (mode 0600) through a temporary file, fsynced, then
 * renamed, and fsyncs dir: a crash leaves the old file or the whole new one. With
 * noreplace an existing dir/name is kept (two processes creating the same file at once:
 * the first wins) and 1 returned. 0, or -1 with one line in err. */
int crab_file_write_atomic(const char *dir, const char *name, const char *data, size_t len,
    int noreplace, char *err, size_t errlen);
/* Reads a whole file of at most max bytes into a malloc'd NUL-terminated string;
 * NULL with one line in err (errno ENOENT kept for a missing file). */
char *crab_file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* A growable byte buffer, always NUL-terminated once anything was added. */
struct crab_buf {
	char *data;
	size_t len, cap;
};
void crab_buf_add(struct crab_buf *b, const char *p, size_t n);
/* The contents as a malloc'd string ("" when empty); the buffer is empty afterwards. */
char *crab_buf_take(struct crab_buf *b);
void crab_buf_free(struct crab_buf *b);

#endif
