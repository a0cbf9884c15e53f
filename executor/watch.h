/* executor/watch.h - private: directory watches shared through one inotify instance per process (watch.c). */
#ifndef DMS_WATCH_H
#define DMS_WATCH_H

#include <dms/error.h>

typedef struct dms_watch dms_watch;

/* Watches dir for changes (files created, written, renamed into it; the dir itself removed). Thread-safe.
 * Caller owns *out; close with dms_watch_close(). */
int dms_watch_open(const char *dir, dms_watch **out, dms_error *err);
/* Readable (POLLIN) after a change; spurious wakeups happen. */
int dms_watch_fd(const dms_watch *w);
/* Consumes pending wakeups. */
void dms_watch_drain(dms_watch *w);
void dms_watch_close(dms_watch *w); /* accepts NULL */

#endif
