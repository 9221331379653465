/* test_util.c: ids, the clock, and the small string helpers. */
#include <string.h>

#include "core/clock.h"
#include "core/id.h"
#include "core/util.h"
#include "t/unit/unit.h"

static void test_ids(void)
{
	char a[CRAB_ID_MAX], b[CRAB_ID_MAX];
	int ordered = 1;

	crab_id_new("evt", a);
	CHECK_INT(strlen(a), 4 + 26, "an event id is evt_ and 26 ULID characters");
	CHECK(strncmp(a, "evt_", 4) == 0, "the id carries its type prefix");
	CHECK(strspn(a + 4, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 26,
	    "the ULID uses Crockford base32 only");
	for (int i = 0; i < 10000; i++) {
		crab_id_new("evt", b);
		if (strcmp(a, b) >= 0)
			ordered = 0;
		memcpy(a, b, sizeof(a));
	}
	CHECK(ordered, "10,000 ids minted in a row are strictly increasing");
}

static void test_ulid_time(void)
{
	char id[CRAB_ID_MAX];
	const char *b32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	long long ms = 0;
	long long now = crab_clock_now_ms();

	crab_id_new("ses", id);
	for (int i = 0; i < 10; i++)
		ms = ms * 32 + (strchr(b32, id[4 + i]) - b32);
	CHECK(ms >= now && ms - now < 5000, "the ULID's first 48 bits are the clock's milliseconds");
}

static void test_clock(void)
{
	int64_t ms;
	char buf[32];
	int64_t before = crab_clock_now_ms();

	CHECK(crab_clock_parse("2026-11-24T10:00:00Z", &ms) == 0 && ms == 1795514400000LL,
	    "RFC 3339 UTC parses to epoch milliseconds");
	CHECK(crab_clock_parse("2026-11-24T11:30:00.250+01:30", &ms) == 0 && ms == 1795514400250LL,
	    "an offset and a fraction are honoured");
	CHECK(crab_clock_parse("2026-02-30T00:00:00Z", &ms) != 0, "February 30th is refused");
	CHECK(crab_clock_parse("2026-11-24 10:00:00Z", &ms) != 0, "a space instead of T is refused");
	CHECK(crab_clock_parse("2026-11-24T10:00:00", &ms) != 0, "a missing zone is refused");
	CHECK(crab_clock_parse("2026-11-24T10:00:00Zjunk", &ms) != 0, "trailing text is refused");
	crab_clock_format(1795514400250LL, buf, sizeof(buf));
	CHECK_STR(buf, "2026-11-24T10:00:00.250Z", "formatting is RFC 3339 UTC with milliseconds");
	crab_clock_advance(86400000);
	CHECK(crab_clock_now_ms() - before >= 86400000, "advancing the test clock moves now");
}

static void test_strings(void)
{
	char small[4];
	char hex[7];
	int64_t v;
	const unsigned char bytes[] = {0x00, 0xab, 0xff};

	CHECK_INT(crab_strlcpy(small, "abcdef", sizeof(small)), 6, "strlcpy returns the source length");
	CHECK_STR(small, "abc", "strlcpy truncates and terminates");
	crab_hex(bytes, sizeof(bytes), hex);
	CHECK_STR(hex, "00abff", "hex is lowercase, two digits a byte");
	CHECK(crab_ct_memcmp("abc", "abc", 3) == 0 && crab_ct_memcmp("abc", "abd", 3) != 0,
	    "constant-time compare tells equal from different");
	CHECK(crab_parse_int64("42", 0, 100, &v) == 0 && v == 42, "a number in range parses");
	CHECK(crab_parse_int64("101", 0, 100, &v) != 0, "a number out of range is refused");
	CHECK(crab_parse_int64("4x", 0, 100, &v) != 0, "trailing junk is refused");
	CHECK(crab_parse_int64("", 0, 100, &v) != 0, "an empty string is refused");
}

int main(void)
{
	test_ids();
	test_ulid_time();
	test_clock();
	test_strings();
	return unit_done();
}
