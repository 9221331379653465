/* context.h: the layered context of a turn (the seed's "Context composition"): the
 * agent's global .md, the platform and channel .md, the actor .md, then the session and
 * runtime additions, in that order. Files are kept in memory and read again only when
 * they change on disk (size, mtime or inode); a missing file is a skipped layer. */
#ifndef CRAB_CONTEXT_H
#define CRAB_CONTEXT_H

#include "config.h"
#include "template.h"

#define CRAB_CONTEXT_FILE_MAX (256 * 1024) /* a larger file is cut here, with a warning */

struct crab_context;

struct crab_context *crab_context_new(const struct crab_config *cfg);
void crab_context_free(struct crab_context *c);
/* The config whose directory relative paths are resolved against, after a reload (the
 * cache stays: it is keyed by resolved path). */
void crab_context_set_config(struct crab_context *c, const struct crab_config *cfg);

/* The system text for a turn of agent a (malloc'd, "" when no layer applies). addition
 * (may be NULL) is the session and runtime layer. */
char *crab_context_compose(struct crab_context *c, const struct crab_config_agent *a,
    const struct crab_event_fields *v, const char *addition);

/* Files read from disk so far (a test sees that an unchanged file is not read again). */
unsigned long crab_context_reads(const struct crab_context *c);

#endif
