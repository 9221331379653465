/* util.c: allocation wrappers and small string helpers shared by every role. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (p == NULL)
		fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (p == NULL)
		fatal("out of memory allocating %zu x %zu bytes", n, size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (q == NULL)
		fatal("out of memory reallocating %zu bytes", n);
	return q;
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = xmalloc(len + 1);
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

size_t crab_strlcpy(char *dst, const char *src, size_t dstsize)
{
	size_t len = strlen(src);
	if (dstsize > 0) {
		size_t n = len < dstsize - 1 ? len : dstsize - 1;
		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

void crab_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

int crab_unhex(const char *hex, unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = hex[2 * i + (size_t)k];
			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else
				return -1;
		}
		out[i] = (unsigned char)v;
	}
	return hex[2 * len] == '\0' ? 0 : -1;
}

int crab_ct_memcmp(const void *a, const void *b, size_t len)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char diff = 0;
	for (size_t i = 0; i < len; i++)
		diff |= x[i] ^ y[i];
	return diff != 0;
}

int crab_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

void crab_buf_add(struct crab_buf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
}

char *crab_buf_take(struct crab_buf *b)
{
	char *s = b->data ? b->data : xstrdup("");
	*b = (struct crab_buf){0};
	return s;
}

void crab_buf_free(struct crab_buf *b)
{
	free(b->data);
	*b = (struct crab_buf){0};
}

/* Moves tmp to path; with noreplace, not over an existing path (EEXIST). */
static int install(const char *tmp, const char *path, int noreplace)
{
	if (!noreplace)
		return rename(tmp, path);
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EINVAL || errno == ENOSYS) /* a filesystem without it */
		return rename(tmp, path);
	return -1;
}

int crab_file_write_atomic(const char *dir, const char *name, const char *data, size_t len,
    int noreplace, char *err, size_t errlen)
{
	char tmp[4200], path[4200];
	int fd;
	size_t off = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "create \"%s\": %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0600) != 0)
		goto fail;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) != 0)
		goto fail;
	if (close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (install(tmp, path, noreplace) != 0) {
		if (noreplace && errno == EEXIST) {
			unlink(tmp);
			return 1;
		}
		goto fail;
	}
	/* The new name itself must survive a crash too. */
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
fail:
	snprintf(err, errlen, "write \"%s\": %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

char *crab_file_read(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	struct crab_buf b = {0};
	char chunk[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "open \"%s\": %s", path, strerror(e));
		errno = e;
		return NULL;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || b.len + (size_t)n > max) {
			if (n < 0)
				snprintf(err, errlen, "read \"%s\": %s", path, strerror(errno));
			else
				snprintf(err, errlen, "\"%s\" is larger than %zu bytes", path, max);
			close(fd);
			crab_buf_free(&b);
			return NULL;
		}
		crab_buf_add(&b, chunk, (size_t)n);
	}
	close(fd);
	*len = b.len;
	return crab_buf_take(&b);
}

int crab_parse_duration_ms(const char *s, int64_t max_ms, int64_t *out)
{
	static const struct {
		char unit;
		int64_t ms;
	} units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
	char num[24];
	size_t n = s ? strlen(s) : 0;
	int64_t unit = 1000, v;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n + 1);
	for (size_t i = 0; i < CRAB_ARRAY_LEN(units); i++) {
		if (num[n - 1] == units[i].unit) {
			unit = units[i].ms;
			num[--n] = '\0';
			break;
		}
	}
	if (crab_parse_int64(num, 1, max_ms / unit, &v) != 0)
		return -1;
	*out = v * unit;
	return 0;
}
