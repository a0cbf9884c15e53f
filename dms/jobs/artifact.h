/* jobs/artifact.h - taking a job's artifact out of the directory its package step wrote, and opening it to
 * serve it.
 *
 * The package step's container writes artifact.tar into a directory bind-mounted from the host (<job>/out).
 * What is there was made by a workload running as root, so it may be anything: a symlink to a host file
 * (/proc/self/environ: dmsd's own environment), a FIFO (an open for reading blocks), a device node (opened on
 * the host, it is the host's device), a socket, a directory, a huge or sparse file. (A hard link cannot reach
 * beyond the bind mount: link(2) across mounts is EXDEV.) So dmsd never opens it by a path the workload could
 * have replaced: artifact_take_out() runs once, after every container that saw the directory has ended; it
 * opens the name with O_PATH and no symlink resolution at all (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS,
 * or O_NOFOLLOW on a directory fd), checks with fstat that it is a regular file within the size limit,
 * reopens that very inode through /proc/self/fd (nothing but a regular file is ever opened for reading), and
 * copies at most the limit into a file of dmsd's own (mode 0600) in a directory no container ever saw. The
 * API serves only that copy, opened the same way (artifact_open()).
 *
 * No state; thread-safe. Errors name what was refused (DMS_E_INVALID: what the workload left;
 * DMS_E_NOT_FOUND: nothing; DMS_E_IO: our side).
 */
#ifndef DMSD_JOBS_ARTIFACT_H
#define DMSD_JOBS_ARTIFACT_H

#include <stdint.h>
#include <sys/stat.h>

#include <dms/error.h>

#define ARTIFACT_NAME "artifact.tar"

/* Copies <from_dir>/artifact.tar into <to_dir>/artifact.tar (replacing one that is there; mode 0600) if it is
 * a regular file of at most max_bytes; *bytes gets its size. from_dir and to_dir are dmsd's own paths (no
 * component a workload controls); only the file inside from_dir is hostile. */
int artifact_take_out(const char *from_dir, const char *to_dir, int64_t max_bytes, int64_t *bytes,
                      dms_error *err);

/* Opens <dir>/artifact.tar for reading, a regular file only, never through a symlink: the fd (caller closes
 * it) and its size in *bytes; NOT_FOUND when there is none. */
int artifact_open(const char *dir, int64_t *bytes, dms_error *err);

/* At startup: a job directory of <jobs_dir> whose artifact an older dmsd left in <job>/out/ (the tree its
 * package step wrote) gets it taken out as artifact_take_out() does, and out/ removed. Returns how many were
 * taken out; what cannot be is logged and left unserved. */
int artifact_adopt_legacy(const char *jobs_dir, int64_t max_bytes);

/* What a file of this mode is, for messages ("a symbolic link", "a FIFO", ...). Static string. */
const char *artifact_kind(mode_t mode);

#endif
