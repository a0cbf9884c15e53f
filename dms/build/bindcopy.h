/* build/bindcopy.h - a path of the repository that a compose service mounts (`./conf:/etc/app:ro`), copied
 * out of the checkout into the droid's own directory, where no later build changes it while a container reads
 * it.
 *
 * The copy is named by the digest of what it holds (<binds dir>/<64 hex>): the same content in the next
 * release is the same path, so a service whose files did not change keeps its request (and its container).
 * The source is read beneath the checkout without following a link (a link inside a directory is copied as a
 * link: the container resolves it in its own filesystem); regular files keep their modes (a non-root user in
 * the container reads them), anything else is left out. Bounded: BINDCOPY_MAX_BYTES and SRCHASH_MAX_ENTRIES.
 * The mount is always read-only. Thread-safe. */
#ifndef DMSD_BUILD_BINDCOPY_H
#define DMSD_BUILD_BINDCOPY_H

#include <stddef.h>

#include <dms/error.h>

#define BINDCOPY_MAX_BYTES (256LL * 1024 * 1024)

/* Copies rel (a file or directory beneath the checkout src, an open fd) into binds_dir (made if missing);
 * *out (size bytes) gets the copy's absolute path. BUILD_FAILED naming field when rel is missing, a link, or
 * too large; IO otherwise. */
int bindcopy_make(int src, const char *rel, const char *binds_dir, const char *field, char *out, size_t size,
                  dms_error *err);

#endif
