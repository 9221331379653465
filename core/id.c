/* id.c: monotonic ULIDs (https://github.com/ulid/spec): 48 bits of milliseconds on the
 * crab clock, 80 random bits; within one millisecond the random part is incremented so
 * ids stay strictly ordered, which the inbox relies on for acceptance order. */
#include "id.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <errno.h>

#include "clock.h"
#include "log.h"

static pthread_mutex_t id_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t id_last_ms = -1;
static unsigned char id_last_rand[10];

void crab_random_bytes(void *buf, size_t len)
{
	unsigned char *p = buf;
	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		p += n;
		len -= (size_t)n;
	}
}

static void rand_increment(unsigned char r[10])
{
	for (int i = 9; i >= 0; i--) {
		if (++r[i] != 0)
			return;
	}
}

void crab_id_new(const char *prefix, char out[CRAB_ID_MAX])
{
	static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	unsigned char bytes[16];
	char ulid[27];
	int64_t now = crab_clock_now_ms();

	pthread_mutex_lock(&id_lock);
	if (now <= id_last_ms) {
		now = id_last_ms; /* same millisecond, or the clock stepped back */
		rand_increment(id_last_rand);
	} else {
		id_last_ms = now;
		crab_random_bytes(id_last_rand, sizeof(id_last_rand));
	}
	for (int i = 0; i < 6; i++)
		bytes[i] = (unsigned char)((uint64_t)now >> (40 - 8 * i));
	memcpy(bytes + 6, id_last_rand, 10);
	pthread_mutex_unlock(&id_lock);

	/* 128 bits as 26 base32 digits, most significant first (the first digit holds 3 bits). */
	for (int i = 0; i < 26; i++) {
		int bit = 128 - 5 * (26 - i); /* index of the digit's lowest bit counted from the top */
		unsigned v = 0;
		for (int b = 0; b < 5; b++) {
			int pos = bit + b;
			if (pos < 0)
				continue;
			v = (v << 1) | ((bytes[pos / 8] >> (7 - pos % 8)) & 1u);
		}
		ulid[i] = b32[v];
	}
	ulid[26] = '\0';
	snprintf(out, CRAB_ID_MAX, "%s_%s", prefix, ulid);
}
