/* dms/datadir.h - dmsd's data directory, made private at startup.
 *
 * Everything dmsd keeps (dms.db with hook secrets, executions' spec.json with each droid's env, captured
 * output, Caddy's config and logs, build logs, job artifacts) lives under one directory. That directory is
 * 0700 and owned by dmsd's user, so nothing below it is reachable by another user of the host whatever its
 * own mode (repository checkouts keep git's modes: they become the files of images and artifacts). */
#ifndef DMSD_DATADIR_H
#define DMSD_DATADIR_H

#include <stddef.h>

#include <dms/error.h>

/* The top-level directories dmsd makes in its data dir (made private like the data dir itself). */
#define DATADIR_SUBDIRS                                                                                      \
    {                                                                                                        \
        "droids", "exec", "caddy", "jobs"                                                                    \
    }

/* Creates path (0700) if needed and resolves it into abs (abs_size bytes). An existing one is refused if it
 * is shared (world-writable or sticky, like /tmp) or belongs to another user; one an older dmsd left open
 * (0755) is made 0700, as are the DATADIR_SUBDIRS in it, and the log says so. INVALID (field DMS_DATA_DIR)
 * or IO. */
int datadir_prepare(const char *path, char *abs, size_t abs_size, dms_error *err);

#endif
