/* adapter_retry.c: the retry decisions of adapter_retry.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strptime, timegm when built as a .so */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "modules/common/adapter_retry.h"

uint64_t adapter_rng_seed(const void *instance, int64_t now_ms)
{
	uint64_t rng = (uint64_t)(uintptr_t)instance * 0x9E3779B97F4A7C15ull ^ (uint64_t)now_ms ^
	    (uint64_t)clock();

	return rng != 0 ? rng : 0x2545F4914F6CDD1Dull;
}

static uint64_t rng_next(uint64_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return *rng;
}

int64_t adapter_backoff_ms(uint64_t *rng, int attempt)
{
	int64_t ceiling = ADAPTER_BACKOFF_BASE_MS;

	for (int i = 0; i < attempt && ceiling < ADAPTER_BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > ADAPTER_BACKOFF_CAP_MS)
		ceiling = ADAPTER_BACKOFF_CAP_MS;
	return (int64_t)(rng_next(rng) % (uint64_t)(ceiling + 1));
}

int64_t adapter_retry_hint(const char *retry_after_ms, const char *retry_after, int64_t now_ms,
    char *said, size_t saidlen)
{
	double v = -1;
	char *end;

	if (retry_after_ms[0] != '\0') {
		v = strtod(retry_after_ms, &end);
		if (end == retry_after_ms || *end != '\0' || !(v > 0))
			v = -1;
		snprintf(said, saidlen, "retry-after-ms %s", retry_after_ms);
	}
	if (v < 0 && retry_after[0] != '\0') {
		struct tm tm;
		snprintf(said, saidlen, "retry-after %s", retry_after);
		v = strtod(retry_after, &end);
		if (end != retry_after && *end == '\0') {
			v = v > 0 ? v * 1000 : -1;
		} else {
			memset(&tm, 0, sizeof(tm));
			end = strptime(retry_after, "%a, %d %b %Y %H:%M:%S", &tm);
			v = end != NULL ? (double)timegm(&tm) * 1000 - (double)now_ms : -1;
			if (!(v > 0))
				v = -1;
		}
	}
	if (v < 0)
		return ADAPTER_HINT_NONE;
	if (v > ADAPTER_RETRY_AFTER_MAX_MS)
		return ADAPTER_HINT_TOO_LONG;
	return (int64_t)v + (v > (double)(int64_t)v);
}

int64_t adapter_retry_next(uint64_t *rng, const struct adapter_attempt *a, const char *msg,
    char *out, size_t outlen)
{
	char said[128] = "", tail[64] = "";
	int64_t hint = adapter_retry_hint(a->retry_after_ms, a->retry_after, a->now_ms, said,
	    sizeof(said)), delay;

	if (a->attempt > 0)
		snprintf(tail, sizeof(tail), " (after %d attempts)", a->attempt + 1);
	if (!a->transient || a->emitted || a->attempt >= a->max_retries) {
		snprintf(out, outlen, "%s%s", msg, tail);
		return -1;
	}
	if (hint == ADAPTER_HINT_TOO_LONG) {
		snprintf(out, outlen, "%s; the provider asks to wait longer than %d s (%s): not "
		    "retried", msg, ADAPTER_RETRY_AFTER_MAX_MS / 1000, said);
		return -1;
	}
	delay = hint != ADAPTER_HINT_NONE ? hint : adapter_backoff_ms(rng, a->attempt);
	if (a->now_ms + delay >= a->deadline_ms) {
		snprintf(out, outlen, "%s%s; no time left for another attempt within timeout_s %lld",
		    msg, tail, (long long)(a->timeout_ms / 1000));
		return -1;
	}
	return delay;
}
