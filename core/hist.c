/* hist.c: see hist.h. Values below 16 have a bucket each; above, the bucket is the
 * power of two and the next four bits. */
#include "hist.h"

static int bucket_of(int64_t v)
{
	int e;

	if (v < 16)
		return v < 0 ? 0 : (int)v;
	e = 63 - __builtin_clzll((unsigned long long)v); /* 4..62 */
	return (e - 3) * 16 + (int)((v >> (e - 4)) & 15);
}

static int64_t bucket_floor(int i)
{
	int e;

	if (i < 16)
		return i;
	e = i / 16 + 3;
	return ((int64_t)1 << e) | ((int64_t)(i % 16) << (e - 4));
}

void crab_hist_add(struct crab_hist *h, int64_t v)
{
	int i = bucket_of(v);

	if (i >= CRAB_HIST_BUCKETS)
		i = CRAB_HIST_BUCKETS - 1;
	h->buckets[i]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

int64_t crab_hist_percentile(const struct crab_hist *h, double p)
{
	uint64_t want, seen = 0;

	if (h->count == 0)
		return 0;
	want = (uint64_t)(p / 100.0 * (double)h->count);
	if (want >= h->count)
		want = h->count - 1;
	for (int i = 0; i < CRAB_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen > want)
			return bucket_floor(i);
	}
	return h->max;
}
