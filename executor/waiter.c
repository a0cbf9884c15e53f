/* waiter.c - results published once and waited for by many: result cells, waiters (each with its own fd, so
 * any number of threads can poll), waiters over result files written by other processes, and cancel tokens.
 *
 * The rule from the Go executors this descends from: publish one result under a lock, then wake every waiter.
 * A waiter that subscribes after the publish is woken at once, so there is no window in which a result is
 * lost. */
#include <dms/backend.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "util.h"
#include "watch.h"

#define FILE_CHECK_INTERVAL_MS 1000
#define RESULT_FILE_MAX_BYTES  (64 * 1024 * 1024)

struct dms_result_cell {
    pthread_mutex_t lock;
    atomic_int refs;
    bool published;
    dms_exec_result result;
    dms_waiter *waiters; /* linked through dms_waiter.next */
};

enum waiter_kind { WAITER_CELL = 1, WAITER_FILE = 2 };

struct dms_waiter {
    enum waiter_kind kind;
    int fd;
    /* cell */
    dms_result_cell *cell;
    dms_waiter *next;
    /* file */
    char *dir;
    dms_watch *watch; /* the fd is the watch's */
    dms_waiter_check_fn check;
    void *ud;
    void (*ud_free)(void *);
};

static void wake_fd(int fd)
{
    uint64_t one = 1;
    ssize_t r;
    do
        r = write(fd, &one, sizeof(one));
    while (r < 0 && errno == EINTR);
}

dms_result_cell *dms_result_cell_new(void)
{
    dms_result_cell *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    atomic_init(&c->refs, 1);
    return c;
}

dms_result_cell *dms_result_cell_ref(dms_result_cell *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void dms_result_cell_unref(dms_result_cell *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    dms_exec_result_clear(&c->result);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int dms_result_cell_publish(dms_result_cell *c, const dms_exec_result *r)
{
    pthread_mutex_lock(&c->lock);
    if (c->published) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    if (dms_exec_result_copy(&c->result, r, NULL) < 0) {
        pthread_mutex_unlock(&c->lock);
        return -DMS_E_NOMEM;
    }
    c->published = true;
    for (dms_waiter *w = c->waiters; w; w = w->next)
        wake_fd(w->fd);
    pthread_mutex_unlock(&c->lock);
    return 1;
}

bool dms_result_cell_published(dms_result_cell *c)
{
    pthread_mutex_lock(&c->lock);
    bool p = c->published;
    pthread_mutex_unlock(&c->lock);
    return p;
}

int dms_result_cell_get(dms_result_cell *c, dms_exec_result *out, dms_error *err)
{
    pthread_mutex_lock(&c->lock);
    int r;
    if (!c->published)
        r = dms_error_set(err, DMS_E_TIMEOUT, NULL, "no result yet");
    else
        r = dms_exec_result_copy(out, &c->result, err);
    pthread_mutex_unlock(&c->lock);
    return r;
}

int dms_waiter_new_from_cell(dms_result_cell *c, dms_waiter **out, dms_error *err)
{
    dms_waiter *w = calloc(1, sizeof(*w));
    if (!w)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    w->kind = WAITER_CELL;
    w->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->fd < 0) {
        int e = errno;
        free(w);
        return dms_error_set_errno(err, DMS_E_IO, e, "eventfd");
    }
    w->cell = dms_result_cell_ref(c);
    pthread_mutex_lock(&c->lock);
    w->next = c->waiters;
    c->waiters = w;
    if (c->published)
        wake_fd(w->fd);
    pthread_mutex_unlock(&c->lock);
    *out = w;
    return 0;
}

int dms_waiter_new_from_file(const char *dir, dms_waiter_check_fn check, void *ud, void (*ud_free)(void *),
                             dms_waiter **out, dms_error *err)
{
    dms_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        if (ud_free)
            ud_free(ud);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    w->kind = WAITER_FILE;
    w->check = check;
    w->ud = ud;
    w->ud_free = ud_free;
    w->dir = strdup(dir);
    w->fd = -1;
    if (!w->dir) {
        dms_waiter_free(w);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    int r = dms_watch_open(dir, &w->watch, err);
    if (r < 0) {
        dms_waiter_free(w);
        return r;
    }
    w->fd = dms_watch_fd(w->watch);
    /* The watch sees only changes from now on: a result written before it would never make the fd readable,
     * and a host that polls before it asks would wait forever. So if the file is already there (checked after
     * the watch exists, so no write falls between), the fd is made readable at once. */
    char path[PATH_MAX];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/result.json", dir) == 0 && access(path, F_OK) == 0)
        wake_fd(w->fd);
    *out = w;
    return 0;
}

int dms_waiter_fd(const dms_waiter *w)
{
    return w->fd;
}

static void drain_fd(int fd)
{
    char buf[4096];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

/* 0 with *out filled, -DMS_E_TIMEOUT when the file is not there yet, other negatives on error. */
static int file_try(dms_waiter *w, dms_exec_result *out, dms_error *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/result.json", w->dir);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    dms_error e2 = {0};
    int r = dms_read_file(path, RESULT_FILE_MAX_BYTES, &data, &len, &e2);
    if (r == -DMS_E_NOT_FOUND)
        return -DMS_E_TIMEOUT;
    if (r < 0) {
        if (err)
            *err = e2;
        return r;
    }
    return dms_exec_result_from_json(data, len, out, err);
}

int dms_waiter_result(dms_waiter *w, int64_t timeout_ms, dms_exec_result *out, dms_error *err)
{
    int64_t deadline = timeout_ms < 0 ? -1 : dms_mono_ms() + timeout_ms;
    int64_t next_check = dms_mono_ms() + FILE_CHECK_INTERVAL_MS;
    for (;;) {
        int r;
        if (w->kind == WAITER_CELL) {
            /* Once published, the fd stays readable (not drained): the result is there for every later call.
             */
            if (dms_result_cell_published(w->cell))
                return dms_result_cell_get(w->cell, out, err);
            drain_fd(w->fd);
            if (dms_result_cell_published(w->cell))
                return dms_result_cell_get(w->cell, out, err);
        } else {
            drain_fd(w->fd);
            r = file_try(w, out, err);
            if (r != -DMS_E_TIMEOUT)
                return r;
            if (access(w->dir, F_OK) != 0 && errno == ENOENT)
                return dms_error_set(err, DMS_E_NOT_FOUND, NULL,
                                     "%s was removed while waiting for its result", w->dir);
            if (w->check && dms_mono_ms() >= next_check) {
                next_check = dms_mono_ms() + FILE_CHECK_INTERVAL_MS;
                if ((r = w->check(w->ud, err)) != 0)
                    return r < 0 ? r : -r;
                /* The check may have produced the file itself (it adopted an orphaned execution). */
                if ((r = file_try(w, out, err)) != -DMS_E_TIMEOUT)
                    return r;
            }
        }
        int64_t now = dms_mono_ms();
        if (deadline >= 0 && now >= deadline)
            return dms_error_set(err, DMS_E_TIMEOUT, NULL, "timed out waiting for the result");
        int64_t wait_ms = deadline < 0 ? -1 : deadline - now;
        if (w->kind == WAITER_FILE && w->check && (wait_ms < 0 || wait_ms > next_check - now))
            wait_ms = next_check - now > 0 ? next_check - now : 0;
        struct pollfd p = {.fd = w->fd, .events = POLLIN};
        r = poll(&p, 1, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
        if (r < 0 && errno != EINTR)
            return dms_error_set_errno(err, DMS_E_IO, errno, "poll");
    }
}

void dms_waiter_free(dms_waiter *w)
{
    if (!w)
        return;
    if (w->kind == WAITER_CELL && w->cell) {
        pthread_mutex_lock(&w->cell->lock);
        for (dms_waiter **pp = &w->cell->waiters; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                break;
            }
        pthread_mutex_unlock(&w->cell->lock);
        dms_result_cell_unref(w->cell);
    }
    if (w->ud_free)
        w->ud_free(w->ud);
    if (w->watch)
        dms_watch_close(w->watch);
    else if (w->fd >= 0)
        close(w->fd);
    free(w->dir);
    free(w);
}

/* ---- cancel tokens ---- */

struct dms_cancel_token {
    atomic_bool cancelled;
    int fd;
};

int dms_cancel_token_new(dms_cancel_token **out, dms_error *err)
{
    dms_cancel_token *t = calloc(1, sizeof(*t));
    if (!t)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    atomic_init(&t->cancelled, false);
    t->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->fd < 0) {
        int e = errno;
        free(t);
        return dms_error_set_errno(err, DMS_E_IO, e, "eventfd");
    }
    *out = t;
    return 0;
}

void dms_cancel_token_cancel(dms_cancel_token *t)
{
    if (!atomic_exchange(&t->cancelled, true))
        wake_fd(t->fd);
}

bool dms_cancel_token_cancelled(const dms_cancel_token *t)
{
    return t && atomic_load(&((dms_cancel_token *)t)->cancelled);
}

int dms_cancel_token_fd(const dms_cancel_token *t)
{
    return t->fd;
}

void dms_cancel_token_free(dms_cancel_token *t)
{
    if (!t)
        return;
    close(t->fd);
    free(t);
}
