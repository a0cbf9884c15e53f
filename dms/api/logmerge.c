/* logmerge.c - a compose droid's services' log streams merged into one, tagged (see logmerge.h). */
#include "logmerge.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

typedef struct msrc {
    char service[LOGMERGE_SERVICE_MAX + 1];
    dms_log_stream *s;
    log_fmt fmt;        /* the merge's, tagged with service */
    dms_log_frame head; /* the next frame, read but not sent (data borrowed from s) */
    bool has_head;
    bool ended;
    bool at_line_start;
} msrc;

struct logmerge {
    log_fmt fmt;
    msrc src[LOGMERGE_MAX_SOURCES];
    size_t n;
    int epfd;      /* -1 until logmerge_fd; -2 when it cannot be had */
    int open_line; /* live: the source whose line is not finished, or -1 */
};

logmerge *logmerge_new(const log_fmt *fmt)
{
    logmerge *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->fmt = *fmt;
    m->fmt.service = NULL;
    m->epfd = -1;
    m->open_line = -1;
    return m;
}

void logmerge_free(logmerge *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        dms_log_stream_free(m->src[i].s);
    if (m->epfd >= 0)
        close(m->epfd);
    free(m);
}

int logmerge_add(logmerge *m, const char *service, dms_log_stream *s, dms_error *err)
{
    if (m->n >= LOGMERGE_MAX_SOURCES || strlen(service) > LOGMERGE_SERVICE_MAX) {
        dms_log_stream_free(s);
        return dms_error_set(err, DMS_E_INVALID, "service", "more than %d services, or a name over %d bytes",
                             LOGMERGE_MAX_SOURCES, LOGMERGE_SERVICE_MAX);
    }
    msrc *c = &m->src[m->n++];
    snprintf(c->service, sizeof(c->service), "%s", service);
    c->s = s;
    c->fmt = m->fmt;
    c->fmt.service = c->service;
    c->at_line_start = true;
    return 0;
}

/* Reads source i's next frame into its head if it has none: 0 (a head, the end, or nothing now) or an error.
 * An ended source leaves the epoll set: its fd may still be woken (its directory changes) but nobody reads
 * it any more, and a level-triggered epoll would then stay readable and spin the parked follow. */
static int fill(logmerge *m, size_t i, dms_error *err)
{
    msrc *c = &m->src[i];
    if (c->has_head || c->ended)
        return 0;
    int rc = dms_log_stream_next(c->s, 0, &c->head, err);
    if (rc == 1) {
        c->has_head = true;
    } else if (rc == 0) {
        c->ended = true;
        int fd = dms_log_stream_fd(c->s);
        if (m->epfd >= 0 && fd >= 0)
            (void)epoll_ctl(m->epfd, EPOLL_CTL_DEL, fd, NULL);
    } else if (rc != -DMS_E_TIMEOUT) {
        return rc;
    }
    return 0;
}

/* Whether head a goes before head b: by ts, then by service name. */
static bool before(const msrc *a, const msrc *b)
{
    if (a->head.ts_ns != b->head.ts_ns)
        return a->head.ts_ns < b->head.ts_ns;
    return strcmp(a->service, b->service) < 0;
}

/* The source whose head goes first: its index, -1 when none has one now, or an error. */
static int pick(logmerge *m, dms_error *err)
{
    int best = -1;
    for (size_t i = 0; i < m->n; i++) {
        int rc = fill(m, i, err);
        if (rc < 0)
            return rc;
        if (m->src[i].has_head && (best < 0 || before(&m->src[i], &m->src[best])))
            best = (int)i;
    }
    return best;
}

static bool all_ended(const logmerge *m)
{
    for (size_t i = 0; i < m->n; i++)
        if (!m->src[i].ended || m->src[i].has_head)
            return false;
    return true;
}

/* Sends c's head (into b, unless b is NULL: skipped) and the rest of its line while its frames are there.
 * *last_ts: the largest ts sent. 1 when the line is whole, 0 when its rest has not come yet, or an error. */
static int take_line(logmerge *m, size_t i, dmsu_buf *b, int64_t *last_ts, dms_error *err)
{
    msrc *c = &m->src[i];
    while (c->has_head) {
        if (b)
            logpage_format(b, &c->head, &c->fmt, &c->at_line_start);
        if (last_ts && c->head.ts_ns > *last_ts)
            *last_ts = c->head.ts_ns;
        c->has_head = false;
        if (!c->head.partial)
            return 1;
        int rc = fill(m, i, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int logmerge_count(logmerge *m, int64_t horizon_ns, long long *lines, dms_error *err)
{
    *lines = 0;
    for (;;) {
        int i = pick(m, err);
        if (i < -1)
            return i;
        if (i < 0 || m->src[i].head.ts_ns > horizon_ns)
            return 0;
        int rc = take_line(m, (size_t)i, NULL, NULL, err);
        if (rc < 0)
            return rc;
        ++*lines;
        if (rc == 0)
            return 0;
    }
}

int logmerge_skip(logmerge *m, long long n, dms_error *err)
{
    for (long long k = 0; k < n; k++) {
        int i = pick(m, err);
        if (i < -1)
            return i;
        if (i < 0)
            return 0;
        int rc = take_line(m, (size_t)i, NULL, NULL, err);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

/* Whether a page holding what pg and b say stops before head h (see the cursor rule in logmerge.h). */
static bool page_stops(const msrc *h, long long limit, size_t max_bytes, const dmsu_buf *b, const logpage *pg)
{
    bool full = (limit >= 0 && pg->lines >= limit) || b->len >= max_bytes;
    if (!full)
        return false;
    return h->head.ts_ns > pg->last_ts || b->len >= max_bytes + LOGMERGE_MAX_OVERSHOOT_BYTES;
}

int logmerge_page(logmerge *m, long long limit, size_t max_bytes, int64_t horizon_ns, dmsu_buf *b,
                  logpage *pg, dms_error *err)
{
    for (;;) {
        int i = pick(m, err);
        if (i < -1)
            return i;
        if (i < 0) {
            pg->ended = all_ended(m);
            return 0;
        }
        msrc *c = &m->src[i];
        if (c->head.ts_ns > horizon_ns || page_stops(c, limit, max_bytes, b, pg))
            return 0;
        int rc = take_line(m, (size_t)i, b, &pg->last_ts, err);
        if (rc < 0)
            return rc;
        if (rc == 0) { /* the rest of the line is not there yet: the page ends on it */
            pg->at_line_start = false;
            m->open_line = i;
            return 0;
        }
        pg->lines++;
    }
}

/* Live: before a line of source `next`, ends the line another source left open (text only: a JSON object
 * says partial itself) and has its rest tagged again. */
static void close_open_line(logmerge *m, int next, dmsu_buf *b)
{
    if (m->open_line >= 0 && m->open_line != next && !m->fmt.json) {
        (void)dmsu_buf_append(b, "\n", 1);
        m->src[m->open_line].at_line_start = true;
    }
    m->open_line = -1;
}

int logmerge_live(logmerge *m, size_t max_bytes, dmsu_buf *b, dms_error *err)
{
    bool moved = true;
    while (moved && b->len < max_bytes) {
        moved = false;
        for (size_t i = 0; i < m->n && b->len < max_bytes; i++) {
            int rc = fill(m, i, err);
            if (rc < 0)
                return rc;
            if (!m->src[i].has_head)
                continue;
            close_open_line(m, (int)i, b);
            rc = take_line(m, i, b, NULL, err);
            if (rc < 0)
                return rc;
            if (rc == 0)
                m->open_line = (int)i;
            moved = true;
        }
    }
    return all_ended(m) ? 1 : 0;
}

int logmerge_fd(logmerge *m)
{
    if (m->epfd != -1)
        return m->epfd >= 0 ? m->epfd : -1;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < m->n && m->epfd >= 0; i++) {
        int fd = dms_log_stream_fd(m->src[i].s);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (fd < 0 || (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST)) {
            close(m->epfd);
            m->epfd = -1;
        }
    }
    if (m->epfd < 0)
        m->epfd = -2;
    return m->epfd >= 0 ? m->epfd : -1;
}
