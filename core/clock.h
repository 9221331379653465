/* clock.h: the one clock every component reads (PROTOCOLS.md §0). Wall time plus an
 * offset that only test builds (CRAB_TEST_HOOKS) let the admin socket move, so expiry
 * and retention tests never sleep. Thread-safe. */
#ifndef CRAB_CLOCK_H
#define CRAB_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the epoch, UTC, as the system sees it plus the test offset. */
int64_t crab_clock_now_ms(void);

/* Microseconds on CLOCK_MONOTONIC: durations only (never moved by tests). */
int64_t crab_monotonic_us(void);

/* Moves the clock forward by ms (tests only; the caller checks the build). */
void crab_clock_advance(int64_t ms);

/* RFC 3339 UTC with milliseconds, "2026-11-24T10:00:00.000Z"; out needs 32 bytes. */
void crab_clock_format(int64_t ms, char *out, size_t outlen);

/* Parses an RFC 3339 timestamp (any offset, optional fraction) to ms; -1 if invalid. */
int crab_clock_parse(const char *s, int64_t *out_ms);

#endif
