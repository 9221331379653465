/* adapter_retry.h: when a model adapter tries a failed request again. Only failures
 * before anything reached the sink, that may pass, within the retries and the one
 * overall deadline the configuration gives; after what the provider's retry-after-ms or
 * retry-after header asks, else after an exponential backoff with full jitter (anywhere
 * from 0 to min(cap, base * 2^attempt): retrying clients then spread out instead of
 * coming back together). Only libc. See README.md for how this code is shared. */
#ifndef CRAB_ADAPTER_RETRY_H
#define CRAB_ADAPTER_RETRY_H

#include <stddef.h>
#include <stdint.h>

#define ADAPTER_BACKOFF_BASE_MS 500
#define ADAPTER_BACKOFF_CAP_MS 8000
#define ADAPTER_RETRY_AFTER_MAX_MS 120000 /* a longer wait asked for: not retried */
#define ADAPTER_HINT_NONE (-1)
#define ADAPTER_HINT_TOO_LONG (-2)

/* A seed for an instance's jitter (never 0, which xorshift cannot leave): its address,
 * the time and the CPU clock, so that instances and restarts differ. */
uint64_t adapter_rng_seed(const void *instance, int64_t now_ms);

/* The delay before retry attempt + 1 (attempt: retries so far), with full jitter from
 * *rng (xorshift64). */
int64_t adapter_backoff_ms(uint64_t *rng, int attempt);

/* What the answer's headers ask, "" when absent: retry_after_ms (milliseconds, perhaps
 * fractional), else retry_after (seconds, or an HTTP date, against now_ms). The wait in
 * whole milliseconds, rounded up; ADAPTER_HINT_NONE when neither says something usable;
 * ADAPTER_HINT_TOO_LONG beyond ADAPTER_RETRY_AFTER_MAX_MS. said: which header said what,
 * for a message ("" when neither was given). */
int64_t adapter_retry_hint(const char *retry_after_ms, const char *retry_after, int64_t now_ms,
    char *said, size_t saidlen);

/* An attempt that failed. */
struct adapter_attempt {
	int transient; /* trying again may help */
	int emitted;   /* something reached the sink: never retried invisibly */
	int attempt;   /* retries so far */
	int max_retries;
	int64_t now_ms, deadline_ms, timeout_ms;
	const char *retry_after_ms, *retry_after; /* the answer's headers, "" when absent */
};

/* Whether the attempt that failed with msg goes again: the delay in milliseconds before
 * it; or -1, with the message to report (msg and why it is not retried) in out. */
int64_t adapter_retry_next(uint64_t *rng, const struct adapter_attempt *a, const char *msg,
    char *out, size_t outlen);

#endif
