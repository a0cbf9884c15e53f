/* mergelogs.c - a compose droid's runtime logs, every service's interleaved (see mergelogs.h): which runs,
 * the page of history, and the follow parked on one epoll fd over every service's stream. */
#include "mergelogs.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "../app.h"
#include "../common.h"
#include "logmerge.h"

/* A page without follow leaves out lines newer than this: a service's line may reach its log store a moment
 * after another service's later line (logmerge.h: horizon). Capture to store is well under it. */
#define MERGE_SETTLE_NS (250 * 1000 * 1000LL)

typedef struct svc_run {
    char service[LOGMERGE_SERVICE_MAX + 1];
    char exec_id[DMS_ID_MAX + 1];
} svc_run;

static bool have_service(const svc_run *v, size_t n, const char *service)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].service, service) == 0)
            return true;
    return false;
}

/* The latest run of each service, newest first, into v (LOGMERGE_MAX_SOURCES). 1 for a compose droid, 0 for
 * a droid of one container, or an error. */
static int latest_runs(app *a, const char *id, svc_run *v, size_t *n, dms_error *err)
{
    store_run *runs = NULL;
    size_t nr = 0;
    int rc = store_runs_list(a->st, id, &runs, &nr, err);
    if (rc < 0)
        return rc;
    droid *d = core_get_copy(a->core, id);
    bool compose = (d && d->services_json) || (nr && runs[nr - 1].service[0]);
    droid_free(d);
    *n = 0;
    for (size_t i = nr; compose && i-- > 0 && *n < LOGMERGE_MAX_SOURCES;) {
        if (!runs[i].service[0] || have_service(v, *n, runs[i].service))
            continue;
        snprintf(v[*n].service, sizeof(v[*n].service), "%s", runs[i].service);
        snprintf(v[*n].exec_id, sizeof(v[*n].exec_id), "%s", runs[i].exec_id);
        ++*n;
    }
    free(runs);
    return compose ? 1 : 0;
}

/* A merge of the runs' streams opened as q says. A run the executor forgot adds nothing. */
static int open_merge(app *a, const svc_run *v, size_t n, const logs_query *q, bool follow, logmerge **out,
                      dms_error *err)
{
    logmerge *m = logmerge_new(&q->fmt);
    if (!m)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        dms_log_options opts = DMS_LOG_OPTIONS_INIT;
        opts.tail_lines = q->tail;
        opts.since_ns = logpage_since(q->from);
        opts.follow = follow;
        dms_log_stream *s = NULL;
        int rc = dms_executor_log_stream(a->ex, v[i].exec_id, &opts, &s, err);
        if (rc < 0 && err->code == DMS_E_NOT_FOUND) {
            *err = (dms_error){0};
            continue;
        }
        if (rc < 0 || (rc = logmerge_add(m, v[i].service, s, err)) < 0) {
            logmerge_free(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

/* tail=N: the merge positioned on the last N lines of the merged history (the lines up to horizon_ns are
 * counted on a merge of their own, then that many minus N are skipped). */
static int open_tail(app *a, const svc_run *v, size_t n, const logs_query *q, int64_t horizon_ns,
                     logmerge **out, dms_error *err)
{
    logmerge *count = NULL;
    long long lines = 0;
    int rc = open_merge(a, v, n, q, false, &count, err);
    if (rc == 0)
        rc = logmerge_count(count, horizon_ns, &lines, err);
    logmerge_free(count);
    if (rc == 0)
        rc = open_merge(a, v, n, q, q->follow, out, err);
    if (rc == 0 && lines > q->tail && (rc = logmerge_skip(*out, lines - q->tail, err)) < 0) {
        logmerge_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- the follow ---- */

typedef struct merge_src {
    logmerge *m;
    dmsu_buf pending;
    size_t off;
    bool ended;
} merge_src;

static ssize_t merge_read(void *ud, char *buf, size_t max)
{
    merge_src *ms = ud;
    if (ms->off >= ms->pending.len) {
        dmsu_buf_reset(&ms->pending);
        ms->off = 0;
        dms_error err = {0};
        int rc = ms->ended ? 1 : logmerge_live(ms->m, max, &ms->pending, &err);
        if (rc < 0)
            return API_STREAM_ERROR;
        ms->ended = rc == 1;
    }
    if (ms->off < ms->pending.len) {
        size_t k = ms->pending.len - ms->off;
        if (k > max)
            k = max;
        memcpy(buf, ms->pending.data + ms->off, k);
        ms->off += k;
        return (ssize_t)k;
    }
    return ms->ended ? API_STREAM_END : API_STREAM_AGAIN;
}

static int merge_fd(void *ud)
{
    return logmerge_fd(((merge_src *)ud)->m);
}

static void merge_free(void *ud)
{
    merge_src *ms = ud;
    logmerge_free(ms->m);
    dmsu_buf_free(&ms->pending);
    free(ms);
}

static const api_stream_ops merge_ops = {merge_read, merge_fd, merge_free};

/* Streams b (the history) then the live lines; takes m and b. */
static void reply_follow(api_req *r, const logs_query *q, logmerge *m, dmsu_buf *b, const char *cursor)
{
    merge_src *ms = calloc(1, sizeof(*ms));
    if (!ms) {
        logmerge_free(m);
        dmsu_buf_free(b);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    (void)logmerge_fd(m); /* the epoll fd now, on this thread, not first on the streamer's */
    ms->m = m;
    ms->pending = *b;
    api_reply_stream(r, MHD_HTTP_OK, q->ctype, &merge_ops, ms, "X-Last-Log-Nano", cursor);
}

/* ---- the route ---- */

static void reply_merged(app *a, api_req *r, const svc_run *v, size_t n, const logs_query *q)
{
    dms_error err = {0};
    int64_t horizon = q->follow ? INT64_MAX : dms_now_ns() - MERGE_SETTLE_NS;
    logmerge *m = NULL;
    int rc =
        q->tail >= 0 ? open_tail(a, v, n, q, horizon, &m, &err) : open_merge(a, v, n, q, q->follow, &m, &err);
    dmsu_buf b = {0};
    logpage pg = {.last_ts = q->from, .at_line_start = true};
    if (rc == 0)
        rc = logmerge_page(m, q->follow ? -1 : q->limit, q->max_bytes, horizon, &b, &pg, &err);
    if (rc < 0) {
        logmerge_free(m);
        dmsu_buf_free(&b);
        api_reply_error(r, &err);
        return;
    }
    char cursor[32];
    snprintf(cursor, sizeof(cursor), "%lld", (long long)pg.last_ts);
    if (q->follow && !pg.ended) {
        reply_follow(r, q, m, &b, cursor);
        return;
    }
    logmerge_free(m);
    api_reply_buf(r, MHD_HTTP_OK, q->ctype, b.data, b.len, "X-Last-Log-Nano", cursor);
}

int mergelogs_reply(app *a, api_req *r, const char *id, const logs_query *q)
{
    dms_error err = {0};
    svc_run *v = calloc(LOGMERGE_MAX_SOURCES, sizeof(*v));
    size_t n = 0;
    int rc = v ? latest_runs(a, id, v, &n, &err) : dms_error_set(&err, DMS_E_NOMEM, NULL, "out of memory");
    if (rc < 0)
        api_reply_error(r, &err);
    else if (rc == 1 && (n == 0 || !a->ex)) {
        char cursor[32];
        snprintf(cursor, sizeof(cursor), "%lld", q->from);
        api_reply_buf(r, MHD_HTTP_OK, q->ctype, NULL, 0, "X-Last-Log-Nano", cursor);
    } else if (rc == 1) {
        reply_merged(a, r, v, n, q);
    }
    free(v);
    return rc < 0 ? 1 : rc;
}
