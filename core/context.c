/* context.c: see context.h. */
#include "context.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "strmap.h"
#include "util.h"

#define CACHE_MAX 4096              /* files kept; past either limit the cache starts over */
#define CACHE_BYTES_MAX (8 << 20)    /* bytes of text kept */

struct cached_file {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char *text;
};

struct crab_context {
	const struct crab_config *cfg;
	struct crab_strmap *files; /* resolved path -> struct cached_file */
	size_t bytes;              /* text held by files */
	unsigned long reads;
};

static void cached_free(void *p)
{
	struct cached_file *f = p;
	free(f->text);
	free(f);
}

struct crab_context *crab_context_new(const struct crab_config *cfg)
{
	struct crab_context *c = xcalloc(1, sizeof(*c));
	c->cfg = cfg;
	c->files = crab_strmap_new();
	return c;
}

void crab_context_set_config(struct crab_context *c, const struct crab_config *cfg)
{
	c->cfg = cfg;
}

void crab_context_free(struct crab_context *c)
{
	if (c == NULL)
		return;
	crab_strmap_free(c->files, cached_free);
	free(c);
}

unsigned long crab_context_reads(const struct crab_context *c)
{
	return c->reads;
}

static int same_file(const struct cached_file *f, const struct stat *st)
{
	return f->dev == st->st_dev && f->ino == st->st_ino && f->size == st->st_size &&
	    f->mtime.tv_sec == st->st_mtim.tv_sec && f->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static char *read_file(const char *path, off_t size)
{
	size_t want = size > CRAB_CONTEXT_FILE_MAX ? CRAB_CONTEXT_FILE_MAX : (size_t)size;
	char *text = xmalloc(want + 1);
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		free(text);
		return NULL;
	}
	while (got < want) {
		ssize_t n = read(fd, text + got, want - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	text[got] = '\0';
	if (size > CRAB_CONTEXT_FILE_MAX)
		log_warnx("context file %s is larger than %d bytes: only its start is used", path,
		    CRAB_CONTEXT_FILE_MAX);
	return text;
}

static void forget(struct crab_context *c, const char *path, struct cached_file *f)
{
	if (f->text != NULL)
		c->bytes -= strlen(f->text);
	cached_free(crab_strmap_del(c->files, path));
}

/* The text of path, from the cache while the file is unchanged; NULL when missing. */
static const char *file_text(struct crab_context *c, const char *path)
{
	struct cached_file *f = crab_strmap_get(c->files, path);
	struct stat st;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		if (f != NULL)
			forget(c, path, f);
		return NULL;
	}
	if (f != NULL && same_file(f, &st))
		return f->text;
	if (f == NULL) {
		if (crab_strmap_count(c->files) >= CACHE_MAX || c->bytes >= CACHE_BYTES_MAX) {
			crab_strmap_free(c->files, cached_free);
			c->files = crab_strmap_new();
			c->bytes = 0;
		}
		f = xcalloc(1, sizeof(*f));
		crab_strmap_put(c->files, path, f);
	}
	if (f->text != NULL)
		c->bytes -= strlen(f->text);
	free(f->text);
	f->text = read_file(path, st.st_size);
	if (f->text != NULL)
		c->bytes += strlen(f->text);
	c->reads++;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
	if (f->text == NULL) {
		forget(c, path, f);
		return NULL;
	}
	return f->text;
}

static void append_layer(struct crab_buf *out, const char *text)
{
	size_t len = strlen(text);

	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	if (out->len > 0)
		crab_buf_add(out, "\n\n", 2);
	crab_buf_add(out, text, len);
}

char *crab_context_compose(struct crab_context *c, const struct crab_config_agent *a,
    const struct crab_event_fields *v, const char *addition)
{
	const char *const layers[] = {a->context_global, a->context_platform, a->context_channel,
		a->context_actor};
	struct crab_buf out = {0};

	for (size_t i = 0; i < CRAB_ARRAY_LEN(layers); i++) {
		char *rel, *path;
		const char *text;

		if (layers[i] == NULL)
			continue;
		rel = crab_template_expand(layers[i], v, CRAB_TEMPLATE_PATH);
		path = crab_config_resolve(c->cfg, rel);
		if ((text = file_text(c, path)) != NULL)
			append_layer(&out, text);
		free(path);
		free(rel);
	}
	if (addition != NULL)
		append_layer(&out, addition);
	return crab_buf_take(&out);
}
