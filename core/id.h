/* id.h: identifiers minted by the gateway (PROTOCOLS.md §0): a type prefix and a ULID,
 * time-ordered and monotonic within one process, e.g. "evt_01JD3K...". Thread-safe. */
#ifndef CRAB_ID_H
#define CRAB_ID_H

#include <stddef.h>

#define CRAB_ID_MAX 40 /* longest prefix "peer_" + 26 ULID characters, with room */

/* Writes prefix + "_" + ULID into out (CRAB_ID_MAX bytes); prefix like "evt". */
void crab_id_new(const char *prefix, char out[CRAB_ID_MAX]);

/* Fills buf with len cryptographically random bytes; aborts if the kernel cannot. */
void crab_random_bytes(void *buf, size_t len);

#endif
