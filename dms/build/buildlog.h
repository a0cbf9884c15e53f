/* build/buildlog.h - one build log file (build.out or build.err in a droid's data dir), bounded and rotated.
 *
 * A build's output is the user's, and a build can print without end: the file never grows past max_bytes.
 * Output past the cap is dropped and counted; one note line says so when it happens, and another gives the
 * count when the log is closed. The builder's own lines ("[dms] ...") go through buildlog_note(), which may
 * use a small reserve at the end of the cap, so the story of the build (how it ended) is always in the file.
 *
 * Each build writes a new file (a new inode: api/logs.c follows the name and starts over on a new one); the
 * previous build's file is kept once as <name>.1, so a droid's logs stay within twice the cap per stream.
 *
 * Not thread-safe: one writer per buildlog (the build's worker).
 */
#ifndef DMSD_BUILD_BUILDLOG_H
#define DMSD_BUILD_BUILDLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

/* Room kept at the end of the cap for the builder's own notes (the cap note, how the build ended, the count).
 */
#define BUILDLOG_NOTE_RESERVE_BYTES 4096
/* The smallest cap that leaves room for output next to the reserve. */
#define BUILDLOG_MIN_BYTES (4 * BUILDLOG_NOTE_RESERVE_BYTES)
/* The longest note line (longer ones are cut). */
#define BUILDLOG_NOTE_MAX 1024

typedef struct buildlog {
    int fd;            /* -1 when closed */
    char name[32];     /* "build.out", for the notes */
    int64_t max_bytes; /* the file's cap, notes included */
    int64_t written;   /* bytes in the file */
    int64_t dropped;   /* output bytes dropped past the cap */
    bool capped;       /* the cap note was written */
} buildlog;

/* Opens <dir>/<name> for a new build: a non-empty previous file becomes <name>.1 (replacing the older one),
 * an empty one (a follower's placeholder, api/logs.c) is removed; then a new file is created (O_EXCL,
 * O_NOFOLLOW: nothing a link points to is written). max_bytes >= BUILDLOG_MIN_BYTES. IO on failure. */
int buildlog_open(buildlog *l, const char *dir, const char *name, int64_t max_bytes, dms_error *err);

/* One line of the build's output (a newline is added). Past the cap (less the note reserve), the line is
 * dropped and counted; the first drop writes the cap note. */
void buildlog_line(buildlog *l, const char *line, size_t len);

/* One line of the builder's own, "[dms] " + the text; written as long as the whole cap allows. */
void buildlog_note(buildlog *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the count of dropped bytes (if any) and closes. Accepts a closed or zeroed-then-failed buildlog. */
void buildlog_close(buildlog *l);

#endif
