/* log.c: timestamped lines on stderr; one write per line so concurrent threads never
 * interleave inside a line. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_role = "crab";
static enum crab_log_level log_min = CRAB_LOG_INFO;

void log_init(const char *role, enum crab_log_level level)
{
	log_role = role;
	log_min = level;
}

int log_level_parse(const char *name, enum crab_log_level *out)
{
	static const char *names[] = {"debug", "info", "warn", "error"};
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, names[i]) == 0) {
			*out = (enum crab_log_level)i;
			return 0;
		}
	}
	return -1;
}

static void log_vwrite(enum crab_log_level level, int with_errno, int saved_errno,
    const char *fmt, va_list ap)
{
	static const char *tags[] = {"debug", "info", "warn", "error"};
	char line[2048];
	struct timespec ts;
	struct tm tm;
	int n, m;

	if (level < log_min)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, ts.tv_nsec / 1000000, log_role, tags[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	n = m < 0 ? n : (n + m >= (int)sizeof(line) - 64 ? (int)sizeof(line) - 64 : n + m);
	if (with_errno)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(saved_errno));
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

#define LOG_FN(fn, level, with_errno)                                      \
	void fn(const char *fmt, ...)                                      \
	{                                                                  \
		int saved = errno;                                         \
		va_list ap;                                                \
		va_start(ap, fmt);                                         \
		log_vwrite(level, with_errno, saved, fmt, ap);             \
		va_end(ap);                                                \
		errno = saved;                                             \
	}

LOG_FN(log_debug, CRAB_LOG_DEBUG, 0)
LOG_FN(log_info, CRAB_LOG_INFO, 0)
LOG_FN(log_warn, CRAB_LOG_WARN, 1)
LOG_FN(log_warnx, CRAB_LOG_WARN, 0)

void fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(CRAB_LOG_ERROR, 1, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vwrite(CRAB_LOG_ERROR, 0, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
