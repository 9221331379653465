/* example.c: "example", a third-party model adapter built as a .so from abi/ and libc
 * alone. It answers from a rule file instead of a provider, so the whole turn path can
 * run with no network and no account:
 *
 *   # comments and blank lines are ignored
 *   hello => Hello! I am the example module.
 *   weather => I cannot see outside, but it is always sunny in a test.
 *   * => I have no rule for that.
 *
 * The first rule whose pattern is a case-insensitive substring of the last user
 * message answers; "*" answers when none does. The answer is streamed a few words at a
 * time on a host timer, then usage (in words) and "end_turn". Config:
 *
 *   rules: /path/to/rules.txt   # required; absolute, or relative to crab's working directory
 *   delay_ms: 10                # between streamed pieces, 0 to 10000 (default 10)
 *
 * What it shows: the descriptor and CRAB_MODULE, init reading its config through the
 * host table (after CRAB_HOST_HAS), refusing to load with one clear log line, bounded
 * input, non-blocking streaming on timers, cancel, and fini freeing everything. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi/crab_module_v1.h"

#define RULES_MAX_BYTES (64 * 1024) /* the rule file */
#define TEXT_MAX (64 * 1024)        /* the user text matched against, cut beyond */
#define JSON_DEPTH_MAX 32           /* nesting in a request */
#define WORDS_PER_PIECE 3
#define DELAY_MS_DEFAULT 10
#define DELAY_MS_MAX 10000

struct rule {
	const char *pattern; /* lowercase; both point into example.text */
	size_t pattern_len;
	const char *answer;
	size_t answer_len;
};

struct call;

struct example {
	const struct crab_host_v1 *host;
	struct crab_self_v1 *self;
	char path[4096];
	char *text; /* the rule file, cut in place into patterns and answers */
	struct rule *rules;
	size_t nrules;
	const struct rule *fallback; /* the "*" rule, or NULL */
	int64_t delay_ms;
	struct call *calls; /* in flight */
};

struct call {
	struct example *ex;
	struct crab_model_sink_v1 sink;
	void *sink_arg;
	struct crab_timer_v1 *timer;
	const struct rule *rule; /* NULL: no rule matched, answer with on_error */
	size_t pos;              /* of the answer streamed so far */
	int64_t in_words, out_words;
	int in_sink, cancelled;
	struct call *prev, *next;
};

static void say(const struct example *ex, enum crab_log_v1 level, const char *what,
    const char *detail)
{
	if (CRAB_HOST_HAS(ex->host, log))
		ex->host->log(ex->self, level, "%s%s", what, detail);
}

/* ---- the rule file ---- */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int64_t count_words(const char *s, size_t len)
{
	int64_t n = 0;

	for (size_t i = 0; i < len; i++) {
		if (!is_space((unsigned char)s[i]) && (i == 0 || is_space((unsigned char)s[i - 1])))
			n++;
	}
	return n;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i], need, cp, min;
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0)
			need = 1, cp = c & 0x1f, min = 0x80;
		else if ((c & 0xf0) == 0xe0)
			need = 2, cp = c & 0x0f, min = 0x800;
		else if ((c & 0xf8) == 0xf0)
			need = 3, cp = c & 0x07, min = 0x10000;
		else
			return 0;
		if (len - i <= need)
			return 0;
		for (unsigned k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Trims s[0..*len) of white space at both ends; returns the new start. */
static char *trim(char *s, size_t *len)
{
	while (*len > 0 && is_space((unsigned char)s[0]))
		s++, (*len)--;
	while (*len > 0 && is_space((unsigned char)s[*len - 1]))
		(*len)--;
	return s;
}

static int rules_fail(struct example *ex, size_t line, const char *why)
{
	if (CRAB_HOST_HAS(ex->host, log)) {
		if (line > 0)
			ex->host->log(ex->self, CRAB_LOG_V1_ERROR, "rules '%s' line %zu: %s", ex->path,
			    line, why);
		else
			ex->host->log(ex->self, CRAB_LOG_V1_ERROR, "rules '%s': %s", ex->path, why);
	}
	return -1;
}

/* One "pattern => answer" line (comments and blank lines already skipped). */
static int parse_rule(struct example *ex, char *s, size_t len, size_t line)
{
	char *arrow = memmem(s, len, "=>", 2), *pat, *ans;
	size_t plen, alen;
	struct rule *r;

	if (arrow == NULL)
		return rules_fail(ex, line, "no '=>' (a rule is 'pattern => answer')");
	plen = (size_t)(arrow - s);
	alen = len - plen - 2;
	pat = trim(s, &plen);
	ans = trim(arrow + 2, &alen);
	if (plen == 0)
		return rules_fail(ex, line, "the pattern is empty");
	if (alen == 0)
		return rules_fail(ex, line, "the answer is empty");
	pat[plen] = '\0';
	ans[alen] = '\0';
	for (size_t i = 0; i < plen; i++)
		pat[i] = (char)lower((unsigned char)pat[i]);
	r = &ex->rules[ex->nrules++]; /* one slot per line, allocated once */
	r->pattern = pat;
	r->pattern_len = plen;
	r->answer = ans;
	r->answer_len = alen;
	if (plen == 1 && pat[0] == '*') {
		if (ex->fallback != NULL)
			return rules_fail(ex, line, "a second '* =>' rule");
		ex->fallback = r;
	}
	return 0;
}

/* Reads at most RULES_MAX_BYTES + 1 bytes of path into a new buffer. */
static int read_file(struct example *ex, size_t *len)
{
	struct stat st;
	ssize_t n;
	size_t got = 0;
	int fd = open(ex->path, O_RDONLY | O_CLOEXEC);
	char why[160];

	if (fd < 0) {
		strncpy(why, strerror(errno), sizeof(why) - 1);
		why[sizeof(why) - 1] = '\0';
		return rules_fail(ex, 0, why);
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return rules_fail(ex, 0, "not a regular file");
	}
	if (st.st_size > RULES_MAX_BYTES) {
		close(fd);
		return rules_fail(ex, 0, "larger than the limit of 65536 bytes");
	}
	if ((ex->text = malloc(RULES_MAX_BYTES + 2)) == NULL) {
		close(fd);
		return rules_fail(ex, 0, "out of memory");
	}
	/* The file may have grown since fstat: read one byte past the limit to see it. */
	while (got <= RULES_MAX_BYTES &&
	    (n = read(fd, ex->text + got, RULES_MAX_BYTES + 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return rules_fail(ex, 0, "read error");
		}
		got += (size_t)n;
	}
	close(fd);
	if (got > RULES_MAX_BYTES)
		return rules_fail(ex, 0, "larger than the limit of 65536 bytes");
	ex->text[got] = '\0';
	*len = got;
	return 0;
}

static int load_rules(struct example *ex)
{
	size_t size = 0, lines = 1, lineno = 0, len;
	char *p, *end;

	if (read_file(ex, &size) != 0)
		return -1;
	if (memchr(ex->text, '\0', size) != NULL)
		return rules_fail(ex, 0, "has a NUL byte");
	if (!valid_utf8((const unsigned char *)ex->text, size))
		return rules_fail(ex, 0, "not valid UTF-8");
	for (size_t i = 0; i < size; i++)
		lines += ex->text[i] == '\n';
	if ((ex->rules = calloc(lines, sizeof(*ex->rules))) == NULL)
		return rules_fail(ex, 0, "out of memory");
	for (p = ex->text, end = ex->text + size; p < end; p += len + 1) {
		char *nl = memchr(p, '\n', (size_t)(end - p)), *s;
		size_t slen;

		len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		lineno++;
		slen = len;
		s = trim(p, &slen);
		if (slen == 0 || s[0] == '#')
			continue;
		if (parse_rule(ex, s, slen, lineno) != 0)
			return -1;
	}
	if (ex->nrules == 0)
		return rules_fail(ex, 0, "has no rule");
	return 0;
}

static const struct rule *match(const struct example *ex, const char *text, size_t len)
{
	for (size_t i = 0; i < ex->nrules; i++) {
		const struct rule *r = &ex->rules[i];
		if (r != ex->fallback && memmem(text, len, r->pattern, r->pattern_len) != NULL)
			return r;
	}
	return ex->fallback;
}

/* ---- just enough JSON: the text of the last user message of a request ---- */

struct json {
	const char *p, *end;
	int depth;
};

/* Decoded text goes here, cut (whole characters) at max - 1 bytes, NUL-terminated. */
struct out {
	char *buf;
	size_t max, n;
	int full;
};

static void put(struct out *o, const char *s, size_t k)
{
	if (o == NULL || o->full)
		return;
	if (o->n + k >= o->max) {
		o->full = 1;
		return;
	}
	memcpy(o->buf + o->n, s, k);
	o->n += k;
	o->buf[o->n] = '\0';
}

static void put_utf8(struct out *o, unsigned cp)
{
	char b[4];

	if (cp < 0x80) {
		b[0] = (char)cp;
		put(o, b, 1);
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		put(o, b, 2);
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		put(o, b, 3);
	} else {
		b[0] = (char)(0xf0 | cp >> 18);
		b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		put(o, b, 4);
	}
}

static void ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int peek(struct json *j, char c)
{
	ws(j);
	return j->p < j->end && *j->p == c;
}

static int eat(struct json *j, char c)
{
	if (!peek(j, c))
		return 0;
	j->p++;
	return 1;
}

static int hex4(struct json *j, unsigned *v)
{
	*v = 0;
	if (j->end - j->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		char c = *j->p++;
		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (lower(c) >= 'a' && lower(c) <= 'f')
			*v |= (unsigned)(lower(c) - 'a' + 10);
		else
			return -1;
	}
	return 0;
}

/* A string at j->p, decoded into o (may be NULL). */
static int str(struct json *j, struct out *o)
{
	static const char esc_in[] = "\"\\/bfnrt", esc_out[] = "\"\\/\b\f\n\r\t";
	unsigned cp, lo;

	if (!eat(j, '"'))
		return -1;
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p++;
		const char *e;

		if (c == '"')
			return 0;
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			put(o, (const char *)&c, 1);
			continue;
		}
		if (j->p >= j->end)
			return -1;
		c = (unsigned char)*j->p++;
		if (c != 'u') {
			if (c == '\0' || (e = strchr(esc_in, c)) == NULL)
				return -1;
			put(o, &esc_out[e - esc_in], 1);
			continue;
		}
		if (hex4(j, &cp) != 0)
			return -1;
		if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
		    j->p[1] == 'u') {
			struct json save = *j;
			j->p += 2;
			if (hex4(j, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000)
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			else
				*j = save;
		}
		if (cp >= 0xd800 && cp < 0xe000)
			cp = 0xfffd; /* a lone surrogate */
		put_utf8(o, cp == 0 ? ' ' : cp);
	}
	return -1;
}

static int enter(struct json *j, char open)
{
	if (!eat(j, open) || ++j->depth > JSON_DEPTH_MAX)
		return -1;
	return 0;
}

/* The next member of an object entered: 1 with its key read (decoded into key) and the
 * cursor on its value, 0 at the closing brace, -1 on malformed input. *n counts. */
static int obj_next(struct json *j, int *n, char *key, size_t keymax)
{
	struct out k = {key, keymax, 0, 0};

	if (eat(j, '}')) {
		j->depth--;
		return 0;
	}
	if ((*n)++ > 0 && !eat(j, ','))
		return -1;
	if (key != NULL)
		key[0] = '\0';
	if (!peek(j, '"') || str(j, key ? &k : NULL) != 0 || !eat(j, ':'))
		return -1;
	if (k.full)
		key[0] = '\0'; /* a long key is none we look for */
	ws(j);
	return 1;
}

static int arr_next(struct json *j, int *n)
{
	if (eat(j, ']')) {
		j->depth--;
		return 0;
	}
	if ((*n)++ > 0 && !eat(j, ','))
		return -1;
	ws(j);
	return 1;
}

static int skip(struct json *j)
{
	int n = 0, r;
	const char *start;

	ws(j);
	if (j->p >= j->end)
		return -1;
	switch (*j->p) {
	case '"':
		return str(j, NULL);
	case '{':
		if (enter(j, '{') != 0)
			return -1;
		while ((r = obj_next(j, &n, NULL, 0)) == 1) {
			if (skip(j) != 0)
				return -1;
		}
		return r;
	case '[':
		if (enter(j, '[') != 0)
			return -1;
		while ((r = arr_next(j, &n)) == 1) {
			if (skip(j) != 0)
				return -1;
		}
		return r;
	default: /* a number, true, false or null: loosely */
		start = j->p;
		while (j->p < j->end && *j->p != '\0' && strchr("+-.0123456789Eaeflnrstu", *j->p) != NULL)
			j->p++;
		return j->p > start ? 0 : -1;
	}
}

/* content: a string, or blocks [{"type":"text","text":"..."}...] whose texts are joined. */
static int content_text(struct json *j, struct out *o)
{
	char key[16];
	int n = 0, m, r;

	if (peek(j, '"'))
		return str(j, o);
	if (enter(j, '[') != 0)
		return -1;
	while ((r = arr_next(j, &n)) == 1) {
		if (!peek(j, '{')) {
			if (skip(j) != 0)
				return -1;
			continue;
		}
		if (enter(j, '{') != 0)
			return -1;
		m = 0;
		while ((r = obj_next(j, &m, key, sizeof(key))) == 1) {
			if (strcmp(key, "text") == 0 && peek(j, '"')) {
				if (o->n > 0)
					put(o, "\n", 1);
				if (str(j, o) != 0)
					return -1;
			} else if (skip(j) != 0) {
				return -1;
			}
		}
		if (r < 0)
			return -1;
	}
	return r;
}

/* The text of the last message whose role is "user"; "" when there is none. */
static int user_text(const char *req, size_t len, struct out *o)
{
	struct json j = {req, req + len, 0}, content = {0};
	char key[16], role[16];
	int n = 0, r, have = 0;

	if (enter(&j, '{') != 0)
		return -1;
	while ((r = obj_next(&j, &n, key, sizeof(key))) == 1) {
		int m = 0;

		if (strcmp(key, "messages") != 0) {
			if (skip(&j) != 0)
				return -1;
			continue;
		}
		if (enter(&j, '[') != 0)
			return -1;
		while ((r = arr_next(&j, &m)) == 1) {
			struct json c = {0};
			struct out ro = {role, sizeof(role), 0, 0};
			int f = 0, hc = 0;

			role[0] = '\0';
			if (enter(&j, '{') != 0)
				return -1;
			while ((r = obj_next(&j, &f, key, sizeof(key))) == 1) {
				if (strcmp(key, "role") == 0 && peek(&j, '"')) {
					ro.n = 0;
					if (str(&j, &ro) != 0)
						return -1;
					continue;
				}
				if (strcmp(key, "content") == 0) {
					c = j;
					hc = 1;
				}
				if (skip(&j) != 0)
					return -1;
			}
			if (r < 0)
				return -1;
			if (hc && !ro.full && strcmp(role, "user") == 0) {
				content = c;
				have = 1;
			}
		}
		if (r < 0)
			return -1;
	}
	ws(&j);
	if (r < 0 || j.p != j.end)
		return -1;
	return have ? content_text(&content, o) : 0;
}

/* ---- requests ---- */

static void call_end(struct call *c)
{
	struct example *ex = c->ex;

	if (c->timer != NULL)
		ex->host->timer_stop(c->timer);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		ex->calls = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
}

/* The end of the next piece: WORDS_PER_PIECE words and the space after them. */
static size_t piece_end(const struct rule *r, size_t pos)
{
	const char *s = r->answer;
	size_t len = r->answer_len;

	for (int w = 0; w < WORDS_PER_PIECE && pos < len; w++) {
		while (pos < len && !is_space((unsigned char)s[pos]))
			pos++;
		while (pos < len && is_space((unsigned char)s[pos]))
			pos++;
	}
	return pos;
}

static void tick(void *arg)
{
	struct call *c = arg;
	struct crab_model_sink_v1 sink = c->sink;
	void *sink_arg = c->sink_arg;
	int64_t in = c->in_words, out = c->out_words;
	size_t from = c->pos;

	if (c->rule == NULL) {
		call_end(c);
		sink.on_error(sink_arg, "invalid_request",
		    "no rule matches and the rule file has no '* =>' rule", 0);
		return;
	}
	c->pos = piece_end(c->rule, from);
	/* The host may cancel from inside on_text: then c is ended here, not there. */
	c->in_sink = 1;
	sink.on_text(sink_arg, c->rule->answer + from, c->pos - from);
	c->in_sink = 0;
	if (c->cancelled) {
		call_end(c);
		return;
	}
	if (c->pos < c->rule->answer_len)
		return;
	call_end(c);
	if (sink.on_usage != NULL)
		sink.on_usage(sink_arg, in, out);
	sink.on_done(sink_arg, "end_turn");
}

static int example_model_start(void *ctx, const char *request, size_t len,
    const struct crab_model_sink_v1 *sink, void *sink_arg, void **handle)
{
	struct example *ex = ctx;
	struct out text = {NULL, TEXT_MAX + 1, 0, 0};
	struct call *c;

	if (sink == NULL || handle == NULL)
		return -1;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	/* A smaller (older) sink leaves the fields it lacks NULL. */
	memcpy(&c->sink, sink, sink->size < sizeof(c->sink) ? sink->size : sizeof(c->sink));
	if (c->sink.on_text == NULL || c->sink.on_done == NULL || c->sink.on_error == NULL)
		goto fail;
	if ((text.buf = malloc(text.max)) == NULL)
		goto fail;
	text.buf[0] = '\0';
	if (user_text(request, len, &text) != 0) {
		say(ex, CRAB_LOG_V1_WARN, "a request that is not the JSON expected", "");
		goto fail;
	}
	for (size_t i = 0; i < text.n; i++)
		text.buf[i] = (char)lower((unsigned char)text.buf[i]);
	c->ex = ex;
	c->sink_arg = sink_arg;
	c->rule = match(ex, text.buf, text.n);
	c->in_words = count_words(text.buf, text.n);
	c->out_words = c->rule ? count_words(c->rule->answer, c->rule->answer_len) : 0;
	free(text.buf);
	text.buf = NULL;
	/* Never answer inside start: the first piece comes from the loop. */
	c->timer = ex->host->timer_start(ex->self, ex->delay_ms, 1, tick, c);
	if (c->timer == NULL)
		goto fail;
	c->next = ex->calls;
	if (ex->calls != NULL)
		ex->calls->prev = c;
	ex->calls = c;
	*handle = c;
	return 0;
fail:
	free(text.buf);
	free(c);
	return -1;
}

static void example_model_cancel(void *ctx, void *handle)
{
	struct call *c = handle;

	(void)ctx;
	if (c == NULL)
		return;
	if (c->in_sink)
		c->cancelled = 1;
	else
		call_end(c);
}

/* ---- lifecycle ---- */

static void example_fini(void *ctx)
{
	struct example *ex = ctx;

	if (ex == NULL)
		return;
	/* Requests still in flight end without a word: the host that asked is gone. */
	while (ex->calls != NULL)
		call_end(ex->calls);
	free(ex->rules);
	free(ex->text);
	free(ex);
}

static int example_init(const struct crab_host_v1 *host, struct crab_self_v1 *self,
    const char *config, size_t config_len, void **ctx)
{
	struct example *ex;
	char delay[32];

	(void)config; /* read through config_get instead */
	(void)config_len;
	if (!CRAB_HOST_HAS(host, timer_start) || !CRAB_HOST_HAS(host, timer_stop) ||
	    !CRAB_HOST_HAS(host, config_get)) {
		if (CRAB_HOST_HAS(host, log))
			host->log(self, CRAB_LOG_V1_ERROR, "this host lacks timers or config_get");
		return -1;
	}
	if ((ex = calloc(1, sizeof(*ex))) == NULL)
		return -1;
	ex->host = host;
	ex->self = self;
	ex->delay_ms = DELAY_MS_DEFAULT;
	if (host->config_get(self, "rules", ex->path, sizeof(ex->path)) != 0 || ex->path[0] == '\0') {
		say(ex, CRAB_LOG_V1_ERROR, "config needs 'rules: <path to the rule file>'", "");
		goto fail;
	}
	if (host->config_get(self, "delay_ms", delay, sizeof(delay)) == 0) {
		char *end;
		long v;

		errno = 0;
		v = strtol(delay, &end, 10);
		if (errno != 0 || end == delay || *end != '\0' || v < 0 || v > DELAY_MS_MAX) {
			say(ex, CRAB_LOG_V1_ERROR, "delay_ms must be 0 to 10000, not ", delay);
			goto fail;
		}
		ex->delay_ms = v;
	}
	if (load_rules(ex) != 0)
		goto fail;
	*ctx = ex;
	return 0;
fail:
	example_fini(ex);
	return -1;
}

static int example_start(void *ctx)
{
	struct example *ex = ctx;

	if (CRAB_HOST_HAS(ex->host, log))
		ex->host->log(ex->self, CRAB_LOG_V1_INFO, "answering from %zu rules in '%s'%s",
		    ex->nrules, ex->path, ex->fallback ? "" : " (no '* =>' rule)");
	return 0;
}

static const struct crab_model_ops_v1 example_model = {
	.size = sizeof(struct crab_model_ops_v1),
	.start = example_model_start,
	.cancel = example_model_cancel,
};

CRAB_MODULE(example) = {
	.abi_major = CRAB_ABI_MAJOR,
	.size = sizeof(struct crab_module_v1),
	.name = "example",
	.version = "0.1.0",
	.kinds = CRAB_KIND_MODEL_ADAPTER,
	.init = example_init,
	.start = example_start,
	.fini = example_fini,
	.model = &example_model,
};
