/* router/accesslog.h - the tail of Caddy's access log, from which the router learns each request a droid
 * served (snooze's activity). Private to router/. */
#ifndef DMSD_ROUTER_ACCESSLOG_H
#define DMSD_ROUTER_ACCESSLOG_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../common.h"
#include "router.h"

typedef struct access_tail {
    pthread_mutex_t lock;
    int fd;
    ino_t ino;
    bool started;
    dmsu_buf partial;
} access_tail;

/* fd -1, nothing read yet, a line cap, its lock. */
void access_tail_init(access_tail *a);
/* Reads what was appended to the log at path since the previous call and calls fn for each whole line's
 * request (fn may be NULL). The first call only positions the tail at the file's end; a file Caddy rolled
 * (another inode) is read from its start. Thread-safe. */
void access_tail_poll(access_tail *a, const char *path, router_access_fn fn, void *ud);
/* Closes the file and frees the partial line; after the last poll. */
void access_tail_destroy(access_tail *a);

#endif
