/* unit.h: the C unit tests' whole framework. Each CHECK prints one TAP line, "ok N - what"
 * or "not ok N - what (file:line)"; unit_done() prints the plan and returns the exit
 * status. t/run.sh adds up the lines of every test program and script. */
#ifndef CRAB_UNIT_H
#define CRAB_UNIT_H

#include <stdio.h>
#include <string.h>

/* One program's count: a test in more than one file defines UNIT_EXTRA_FILE in all but
 * the file with main(). */
#ifdef UNIT_EXTRA_FILE
extern int unit_n, unit_failed;
#else
int unit_n, unit_failed;
#endif

#define CHECK(cond, what) unit_check((cond) != 0, (what), __FILE__, __LINE__)
#define CHECK_INT(got, want, what)                                                   \
	do {                                                                         \
		long long g_ = (long long)(got), w_ = (long long)(want);             \
		if (!CHECK(g_ == w_, what))                                          \
			printf("#   got %lld, want %lld\n", g_, w_);                 \
	} while (0)
#define CHECK_STR(got, want, what)                                                   \
	do {                                                                         \
		const char *g_ = (got), *w_ = (want);                                \
		if (!CHECK(g_ != NULL && strcmp(g_, w_) == 0, what))                 \
			printf("#   got \"%s\", want \"%s\"\n", g_ ? g_ : "(null)", w_); \
	} while (0)

static inline int unit_check(int ok, const char *what, const char *file, int line)
{
	unit_n++;
	if (ok) {
		printf("ok %d - %s\n", unit_n, what);
	} else {
		unit_failed++;
		printf("not ok %d - %s (%s:%d)\n", unit_n, what, file, line);
	}
	fflush(stdout);
	return ok;
}

static inline int unit_done(void)
{
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}

#endif
