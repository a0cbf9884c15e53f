/* build/releaseprune.h - the images of a droid's releases removed once no kept release uses them: releases
 * beyond DMS_KEEP_RELEASES (never the one that runs or is wanted), and what a compose build made for a droid
 * that is gone. A compose service reuses its image while its build inputs do not change (srchash.h), so one
 * image may belong to several releases: it goes with the last of them. A removal the engine refuses goes to
 * the runner's image collector (store_gc_add). Thread-safe; call without locks (these call the engine). */
#ifndef DMSD_BUILD_RELEASEPRUNE_H
#define DMSD_BUILD_RELEASEPRUNE_H

#include <stdbool.h>

#include "builder.h"

/* Prunes the droid's releases beyond dep->cfg.keep_releases (marked removed; their images removed unless a
 * kept release uses them). */
void releaseprune_run(const builder_deps *dep, const char *droid_id);
/* Removes image unless in_use (NULL-terminated, may be NULL) holds it. True when the engine refused and the
 * collector has it (the caller kicks it). */
bool releaseprune_remove(const builder_deps *dep, const char *droid_id, const char *image,
                         char *const *in_use);
/* The images a compose release's member says it built, removed (its droid is being deleted). */
void releaseprune_built_of(const builder_deps *dep, const char *droid_id, const char *compose_json);

#endif
