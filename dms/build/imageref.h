/* build/imageref.h - image references as the engine reads them, for dfpolicy.c: their familiar form, whether
 * they pin an image by id or digest, and the operator's allow-list (DMS_BUILD_ALLOWED_IMAGES).
 *
 * The grammar is distribution/reference's: [domain/]path[:tag][@digest], path components
 * [a-z0-9]+((.|_|__|-+)[a-z0-9]+)*, tags [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}. docker.io/, index.docker.io/ and
 * library/ are dropped and a missing tag is latest, as the engine normalises them. "Pinned" are the
 * references the engine may resolve by content rather than by tag: name@digest, an id prefix of any length
 * (hex, which the engine looks up as an id when no tag of that name exists) and sha256:<hex>. No I/O;
 * thread-safe.
 */
#ifndef DMSD_BUILD_IMAGEREF_H
#define DMSD_BUILD_IMAGEREF_H

#include <stdbool.h>

#include <dms/error.h>

#define IMGREF_MAX 512

typedef struct imgref {
    char canon[IMGREF_MAX]; /* the familiar form with a tag ("busybox:latest"); "" when pinned */
    bool pinned;            /* an id or a digest: only an exact list entry allows it */
} imgref;

/* false when ref is not a valid reference. */
bool imgref_parse(const char *ref, imgref *out);

/* Whether the comma-separated list names ref (parsed as r): an exact entry equal to its familiar form (for a
 * pinned ref, to ref as written), or, for a named one, a prefix entry "<prefix>*" of its familiar form. */
bool imgref_listed(const char *list, const char *ref, const imgref *r);

/* INVALID (field "DMS_BUILD_ALLOWED_IMAGES") naming the first entry that is neither a reference nor a prefix
 * ending in '*'. */
int imgref_list_validate(const char *list, dms_error *err);

#endif
