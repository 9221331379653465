/* log.h: the tiny logging API of OpenBSD daemons. log_warn adds strerror(errno),
 * log_warnx does not; fatal and fatalx log and exit(1). Lines go to stderr with a
 * UTC timestamp and the role name. Never pass a secret to these. */
#ifndef CRAB_LOG_H
#define CRAB_LOG_H

enum crab_log_level { CRAB_LOG_DEBUG, CRAB_LOG_INFO, CRAB_LOG_WARN, CRAB_LOG_ERROR };

void log_init(const char *role, enum crab_log_level level);
int log_level_parse(const char *name, enum crab_log_level *out);
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
