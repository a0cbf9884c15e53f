/* executor/docker/tar.h - writes a directory as a tar stream (ustar, with pax headers for long names) into a
 * file: the build context. The top-level .git directory is left out (a clone's history is not build input).
 */
#ifndef DOCKER_TAR_H
#define DOCKER_TAR_H

#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

#define DOCKER_TAR_MAX_BYTES (2LL * 1024 * 1024 * 1024) /* refuse contexts larger than this */

/* Writes the tar of dir to fd, plus (if extra_name is not NULL) one more file at the top with the given
 * contents, which a file of that name at the top of dir cannot replace (it is left out). Symlinks in dir are
 * archived as symlinks, never followed. *bytes gets the size. INVALID for a context that is too large or
 * unreadable. */
int docker_tar_dir(const char *dir, const char *extra_name, const char *extra_data, size_t extra_len, int fd,
                   int64_t *bytes, dms_error *err);

#endif
