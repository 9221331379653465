/* admin.h: the gateway's control plane (PROTOCOLS.md §6): a Unix stream socket, mode 0600
 * in a 0700 directory, open only to the gateway's own uid and root (SO_PEERCRED), one
 * JSON object per line each way. Never offered on TCP. */
#ifndef CRAB_ADMIN_H
#define CRAB_ADMIN_H

#include <stddef.h>

struct crab_gateway;
struct crab_admin;

/* A whole config file (1 MiB at most) fits, JSON-escaped, in config.apply's line. */
#define CRAB_ADMIN_LINE_MAX (3 << 20)

struct crab_admin *crab_admin_new(struct crab_gateway *gw, const char *path, char *err,
    size_t errlen);
/* Stops accepting; connections already open finish their calls. */
void crab_admin_drain(struct crab_admin *a);
/* Closes everything and removes the socket file. */
void crab_admin_free(struct crab_admin *a);

#endif
