/* test_store.h: what test_store.c's suite shares with the checks kept in files of their
 * own. */
#ifndef CRAB_TEST_STORE_H
#define CRAB_TEST_STORE_H

#include <stdint.h>

#include "store/store.h"

/* "driver: what", the TAP line's name for the backend running. */
const char *name(const char *what);

/* test_store_deliveries.c */
void test_deliveries(struct crab_store *st, int64_t now);

#endif
