/* build/srchash.h - a digest of what a compose service's build reads: its Dockerfile's text, its build args
 * and every entry of its context tree (path, type, mode, size, content or link target). Two builds with the
 * same digest would build the same image, so a new release reuses the previous release's image for that
 * service instead of building it again (and the runner leaves the service running: its request did not
 * change).
 *
 * Not covered: a base image retagged under the same name (FROM dms-stack/python:latest made anew) is not
 * seen; any change of the service's files or Dockerfile rebuilds it.
 *
 * The tree is walked beneath an fd opened without following links (openat O_NOFOLLOW): a link is hashed as a
 * link, never followed. Bounded: at most SRCHASH_MAX_ENTRIES entries and SRCHASH_MAX_DEPTH levels (past
 * either, the digest is "" and the service is built). Thread-safe. */
#ifndef DMSD_BUILD_SRCHASH_H
#define DMSD_BUILD_SRCHASH_H

#define SRCHASH_HEX         64
#define SRCHASH_MAX_ENTRIES 100000
#define SRCHASH_MAX_DEPTH   64

/* The digest of context directory ctx (an open fd, not consumed), the Dockerfile text, the "K=V" args
 * (NULL-terminated, may be NULL) and the target stage (may be NULL) into out (SRCHASH_HEX + 1 bytes). 0, or
 * -1 (out "") when the tree is too large or unreadable: then the service is built. */
int srchash_context(int ctx, const char *dockerfile, char *const *args, const char *target,
                    char out[SRCHASH_HEX + 1]);

/* The digest of a regular file's content and mode (fd read to its end). 0, or -1 (out ""). */
int srchash_file(int fd, unsigned mode, char out[SRCHASH_HEX + 1]);

#endif
