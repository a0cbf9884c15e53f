/* watch.c - directory watches for waiters and log streams, through ONE inotify instance per process.
 *
 * Why shared: Linux allows 128 inotify instances per user (fs.inotify.max_user_instances) and closing one
 * costs 4-15 ms in the kernel (measured), so an instance per waiter or log follow capped a host near 127
 * concurrent follows and made every wait pay the close. Here one instance serves all: a dispatcher thread
 * reads its events and wakes the eventfd of every subscriber of that directory. Spurious wakeups are allowed
 * by the callers (they re-check their file), so every event on a directory wakes all its subscribers. */
#include "watch.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "util.h"

#define WATCH_MASK      (IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE_SELF | IN_MOVE_SELF)
#define EVENT_BUF_BYTES (64 * 1024)

struct dms_watch {
    int wd;
    int efd;
    dms_watch *next;
};

static struct {
    pthread_mutex_t lock;
    int ifd;
    bool started;
    dms_watch *subs;
} hub = {.lock = PTHREAD_MUTEX_INITIALIZER, .ifd = -1};

static void ring(int efd)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(efd, &one, sizeof(one));
    while (r < 0 && errno == EINTR);
}

static void *hub_main(void *arg)
{
    int ifd = (int)(intptr_t)arg;
    /* One hub per process, so one buffer: static, not malloc'd (a child forked from a process with a hub has
     * no hub thread, and nothing would point at a heap buffer any more). */
    static char buf[EVENT_BUF_BYTES] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        struct pollfd p = {.fd = ifd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0 && errno != EINTR)
            break;
        ssize_t n = read(ifd, buf, EVENT_BUF_BYTES);
        if (n <= 0)
            continue;
        pthread_mutex_lock(&hub.lock);
        for (char *q = buf; q < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)q;
            for (dms_watch *w = hub.subs; w; w = w->next)
                if (w->wd == ev->wd || (ev->mask & IN_Q_OVERFLOW))
                    ring(w->efd);
            q += sizeof(*ev) + ev->len;
        }
        pthread_mutex_unlock(&hub.lock);
    }
    return NULL;
}

/* A forked child has no dispatcher thread (and the parent's subscriptions are not its own): start over there.
 */
static void hub_atfork_child(void)
{
    pthread_mutex_init(&hub.lock, NULL);
    if (hub.ifd >= 0)
        close(hub.ifd);
    hub.ifd = -1;
    hub.started = false;
    hub.subs = NULL;
}

static void hub_register_atfork(void)
{
    pthread_atfork(NULL, NULL, hub_atfork_child);
}

/* With hub.lock held. */
static int hub_start(dms_error *err)
{
    static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
    if (hub.started)
        return 0;
    pthread_once(&atfork_once, hub_register_atfork);
    hub.ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (hub.ifd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "inotify_init1");
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int r = pthread_create(&t, &a, hub_main, (void *)(intptr_t)hub.ifd);
    pthread_attr_destroy(&a);
    if (r != 0) {
        close(hub.ifd);
        hub.ifd = -1;
        return dms_error_set_errno(err, DMS_E_IO, r, "start the directory watch thread");
    }
    hub.started = true;
    return 0;
}

int dms_watch_open(const char *dir, dms_watch **out, dms_error *err)
{
    dms_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->efd < 0) {
        int e = errno;
        free(w);
        return dms_error_set_errno(err, DMS_E_IO, e, "eventfd");
    }
    pthread_mutex_lock(&hub.lock);
    int r = hub_start(err);
    if (r == 0) {
        /* The same directory gives the same wd: subscribers share it, and it goes with the last one. */
        w->wd = inotify_add_watch(hub.ifd, dir, WATCH_MASK);
        if (w->wd < 0)
            r = dms_error_set_errno(err, errno == ENOENT ? DMS_E_NOT_FOUND : DMS_E_IO, errno, "watch %s",
                                    dir);
    }
    if (r == 0) {
        w->next = hub.subs;
        hub.subs = w;
    }
    pthread_mutex_unlock(&hub.lock);
    if (r < 0) {
        close(w->efd);
        free(w);
        return r;
    }
    *out = w;
    return 0;
}

int dms_watch_fd(const dms_watch *w)
{
    return w->efd;
}

void dms_watch_drain(dms_watch *w)
{
    uint64_t v;
    while (read(w->efd, &v, sizeof(v)) > 0) {
    }
}

void dms_watch_close(dms_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&hub.lock);
    bool shared = false;
    for (dms_watch **pp = &hub.subs; *pp;) {
        if (*pp == w) {
            *pp = w->next;
            continue;
        }
        if ((*pp)->wd == w->wd)
            shared = true;
        pp = &(*pp)->next;
    }
    if (!shared && hub.ifd >= 0)
        inotify_rm_watch(hub.ifd, w->wd);
    pthread_mutex_unlock(&hub.lock);
    close(w->efd);
    free(w);
}
