/* hist.h: a small log-linear histogram of non-negative integers (microseconds, say):
 * 16 sub-buckets per power of two, so a percentile is within about 6% of the truth, in
 * a fixed 8 KiB. */
#ifndef CRAB_HIST_H
#define CRAB_HIST_H

#include <stdint.h>

#define CRAB_HIST_BUCKETS (61 * 16)

struct crab_hist {
	uint64_t count;
	int64_t max;
	uint64_t buckets[CRAB_HIST_BUCKETS];
};

void crab_hist_add(struct crab_hist *h, int64_t v);
/* The value at percentile p (0..100): the lower bound of its bucket; 0 when empty. */
int64_t crab_hist_percentile(const struct crab_hist *h, double p);

#endif
