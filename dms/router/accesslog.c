/* accesslog.c - the tail of Caddy's access log (see accesslog.h): whole JSON lines, each request's Host and
 * end time, the file followed across Caddy's rolls. */
#include "accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common.h"

#define ACCESS_READ_MAX (1024 * 1024) /* read at most this much of the access log per poll */
#define ACCESS_LINE_MAX (64 * 1024)   /* a longer line is skipped */

void access_tail_init(access_tail *a)
{
    a->fd = -1;
    a->partial.max = ACCESS_LINE_MAX;
    pthread_mutex_init(&a->lock, NULL);
}

static void access_line(const char *line, size_t len, router_access_fn fn, void *ud)
{
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *req = json_object_get(j, "request");
    const char *host = json_string_value(json_object_get(req, "host"));
    json_t *ts = json_object_get(j, "ts");
    if (fn && host && json_is_number(ts)) {
        char h[ROUTE_HOST_MAX + 8];
        size_t k = 0;
        for (; host[k] && host[k] != ':' && k + 1 < sizeof(h); k++)
            h[k] = (char)(host[k] >= 'A' && host[k] <= 'Z' ? host[k] + 32 : host[k]);
        h[k] = '\0';
        fn(ud, h, (int64_t)(json_number_value(ts) * (double)NS_PER_SEC));
    }
    json_decref(j);
}

static void access_feed(access_tail *a, const char *data, size_t len, router_access_fn fn, void *ud)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        if (a->partial.len) {
            dmsu_buf_append(&a->partial, data + start, i - start);
            if (!a->partial.overflow)
                access_line(a->partial.data, a->partial.len, fn, ud);
            dmsu_buf_reset(&a->partial);
            a->partial.overflow = false;
        } else {
            access_line(data + start, i - start, fn, ud);
        }
        start = i + 1;
    }
    if (start < len)
        dmsu_buf_append(&a->partial, data + start, len - start);
}

static void access_drain_fd(access_tail *a, router_access_fn fn, void *ud)
{
    char buf[16384];
    size_t total = 0;
    while (total < ACCESS_READ_MAX) {
        ssize_t n = read(a->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        access_feed(a, buf, (size_t)n, fn, ud);
        total += (size_t)n;
    }
}

void access_tail_poll(access_tail *a, const char *path, router_access_fn fn, void *ud)
{
    pthread_mutex_lock(&a->lock);
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (a->fd >= 0)
        access_drain_fd(a, fn, ud);
    if (exists && (a->fd < 0 || st.st_ino != a->ino)) {
        /* First look, or Caddy rolled the file: read the new one from its start (from its end at the first
         * look: what happened before dmsd started is not activity it has to account for). */
        if (a->fd >= 0)
            close(a->fd);
        a->fd = open(path, O_RDONLY | O_CLOEXEC);
        a->ino = st.st_ino;
        dmsu_buf_reset(&a->partial);
        if (a->fd >= 0 && !a->started)
            lseek(a->fd, 0, SEEK_END);
        if (a->fd >= 0)
            access_drain_fd(a, fn, ud);
    }
    a->started = true;
    pthread_mutex_unlock(&a->lock);
}

void access_tail_destroy(access_tail *a)
{
    if (a->fd >= 0)
        close(a->fd);
    dmsu_buf_free(&a->partial);
    pthread_mutex_destroy(&a->lock);
}
