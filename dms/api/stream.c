/* stream.c - streamed (chunked) replies whose source may have nothing to send for a while (a log follow):
 * such a connection is parked (suspended in MHD) instead of holding a pool thread, and one stream thread
 * resumes it when its source's fd is readable or its tick comes (see api_reply_stream in http.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_priv.h"

#define STREAM_BLOCK_BYTES (32 * 1024)
#define STREAM_TICK_MS     100  /* parked streams without an fd are retried this often */
#define STREAM_RECHECK_MS  1000 /* and those with one, in case an edge was missed */

typedef struct stream_ctx {
    http_server *srv;
    struct MHD_Connection *conn;
    const api_stream_ops *ops;
    void *ud;
    bool parked;
    int64_t parked_at_ms;
    struct stream_ctx *next;
} stream_ctx;

static void wake(http_server *s)
{
    uint64_t one = 1;
    ssize_t n = write(s->wake_fd, &one, sizeof(one));
    (void)n;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_ctx *c = cls;
    (void)pos;
    ssize_t n = c->ops->read(c->ud, buf, max);
    if (n > 0)
        return n;
    if (n == API_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n != API_STREAM_AGAIN)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    http_server *s = c->srv;
    pthread_mutex_lock(&s->lock);
    if (s->stopping) {
        pthread_mutex_unlock(&s->lock);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Park: MHD stops polling this connection until the streamer resumes it (data, tick, or stop). */
    c->parked = true;
    c->parked_at_ms = dms_mono_ms();
    c->next = s->parked;
    s->parked = c;
    MHD_suspend_connection(c->conn);
    pthread_mutex_unlock(&s->lock);
    wake(s);
    return 0;
}

static void stream_free(void *cls)
{
    stream_ctx *c = cls;
    http_server *s = c->srv;
    pthread_mutex_lock(&s->lock);
    if (c->parked)
        for (stream_ctx **pp = &s->parked; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
    pthread_mutex_unlock(&s->lock);
    if (c->ops->free)
        c->ops->free(c->ud);
    free(c);
}

void api_reply_stream(api_req *r, unsigned status, const char *content_type, const api_stream_ops *ops,
                      void *ud, const char *header, const char *value)
{
    stream_ctx *c = calloc(1, sizeof(*c));
    struct MHD_Response *resp = c ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK_BYTES,
                                                                      stream_read, c, stream_free)
                                  : NULL;
    if (!resp) {
        free(c);
        if (ops->free)
            ops->free(ud);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    c->srv = r->srv;
    c->conn = r->conn;
    c->ops = ops;
    c->ud = ud;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (header && value)
        MHD_add_response_header(resp, header, value);
    MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->replied = true;
}

/* The fds of the parked streams into pfd[1..] (pfd[0] is the wake fd); *any_tick when one has no fd. Returns
 * how many entries are used. Under s->lock. */
static size_t collect_fds_locked(http_server *s, struct pollfd **pfd, size_t *cap, bool *any_tick)
{
    size_t n = 1;
    for (stream_ctx *c = s->parked; c; c = c->next)
        n++;
    if (n > *cap) {
        struct pollfd *np = realloc(*pfd, n * sizeof(**pfd));
        if (np) {
            *pfd = np;
            *cap = n;
        }
    }
    size_t k = 1;
    *any_tick = false;
    for (stream_ctx *c = s->parked; c && k < *cap; c = c->next) {
        int fd = c->ops->fd ? c->ops->fd(c->ud) : -1;
        if (fd < 0) {
            *any_tick = true;
            continue;
        }
        (*pfd)[k++] = (struct pollfd){.fd = fd, .events = POLLIN};
    }
    return k;
}

/* Resumes the parked streams whose fd polled readable, that have no fd, or whose recheck came. Under s->lock.
 */
static void resume_ready_locked(http_server *s, const struct pollfd *pfd, size_t k)
{
    int64_t now = dms_mono_ms();
    for (stream_ctx **pp = &s->parked; *pp;) {
        stream_ctx *c = *pp;
        int fd = c->ops->fd ? c->ops->fd(c->ud) : -1;
        bool ready = s->stopping || fd < 0 || now - c->parked_at_ms >= STREAM_RECHECK_MS;
        for (size_t i = 1; !ready && i < k; i++)
            ready = pfd[i].fd == fd && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR));
        if (ready) {
            *pp = c->next;
            c->parked = false;
            MHD_resume_connection(c->conn);
        } else {
            pp = &c->next;
        }
    }
}

static void *streamer_main(void *arg)
{
    http_server *s = arg;
    struct pollfd *pfd = calloc(1, sizeof(*pfd));
    size_t cap = pfd ? 1 : 0;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        if ((s->stopping && !s->parked) || !pfd) {
            pthread_mutex_unlock(&s->lock);
            break;
        }
        bool any_tick = false;
        size_t k = collect_fds_locked(s, &pfd, &cap, &any_tick);
        pthread_mutex_unlock(&s->lock);
        pfd[0] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
        int timeout = any_tick ? STREAM_TICK_MS : (k > 1 ? STREAM_RECHECK_MS : -1);
        int rc = poll(pfd, k, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rd = read(s->wake_fd, &v, sizeof(v));
            (void)rd;
        }
        pthread_mutex_lock(&s->lock);
        resume_ready_locked(s, pfd, k);
        pthread_mutex_unlock(&s->lock);
    }
    free(pfd);
    return NULL;
}

int stream_thread_start(http_server *s)
{
    if (pthread_create(&s->streamer, NULL, streamer_main, s) != 0)
        return -1;
    s->streamer_started = true;
    return 0;
}

void stream_stop_locked(http_server *s)
{
    for (stream_ctx *c = s->parked; c; c = c->next) {
        c->parked = false;
        MHD_resume_connection(c->conn);
    }
    s->parked = NULL;
}

void stream_thread_join(http_server *s)
{
    if (s->wake_fd >= 0)
        wake(s);
    if (s->streamer_started)
        pthread_join(s->streamer, NULL);
    s->streamer_started = false;
}
