/* logs.c - GET /droids/:id/logs: runtime logs of the droid's containers, and build logs (?build.out,
 * ?build.err).
 *
 * Runtime logs come from the executor's log stream of one run (the current one, the latest, or ?run=<id>):
 * frames carry a wall-clock ts_ns, strictly increasing within a run, which is the paging cursor. `from` is
 * exclusive: with from = the X-Last-Log-Nano of the previous page, the line at exactly that timestamp is not
 * sent again. `limit` bounds the lines of a page, `tail` takes the last N lines of history, `follow` streams
 * live lines (chunked) until the run ends. X-Last-Log-Nano is the ts of the last line sent (for a follow: of
 * the history sent before the live part), or `from` when nothing was sent.
 *
 * A compose droid's logs without ?service= or ?run= are those of all its services, merged (mergelogs.h).
 *
 * Build logs are the files build.out / build.err of the droid's data dir, followed while a build is queued or
 * running. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../app.h"
#include "../common.h"
#include "handlers.h"
#include "logpage.h"
#include "mergelogs.h"

#define LOGS_DEFAULT_LIMIT  10000
#define LOGS_MAX_LINES      1000000
#define LOGS_MAX_BYTES      (8 * 1024 * 1024) /* one page; the cursor continues past it */
#define BUILD_LOG_MAX_BYTES (16 * 1024 * 1024)

/* ---- runtime logs ---- */

typedef struct run_src {
    dms_log_stream *s;
    log_fmt fmt;
    bool at_line_start;
    dmsu_buf pending;
    size_t off;
    bool ended;
} run_src;

static ssize_t run_read(void *ud, char *buf, size_t max)
{
    run_src *rs = ud;
    if (rs->off >= rs->pending.len) {
        dmsu_buf_reset(&rs->pending);
        rs->off = 0;
        while (!rs->ended && rs->pending.len < max) {
            dms_log_frame f;
            dms_error err = {0};
            int rc = dms_log_stream_next(rs->s, 0, &f, &err);
            if (rc == 1)
                logpage_format(&rs->pending, &f, &rs->fmt, &rs->at_line_start);
            else if (rc == 0)
                rs->ended = true;
            else if (rc == -DMS_E_TIMEOUT)
                break;
            else
                return API_STREAM_ERROR;
        }
    }
    if (rs->off < rs->pending.len) {
        size_t n = rs->pending.len - rs->off;
        if (n > max)
            n = max;
        memcpy(buf, rs->pending.data + rs->off, n);
        rs->off += n;
        return (ssize_t)n;
    }
    return rs->ended ? API_STREAM_END : API_STREAM_AGAIN;
}

static int run_fd(void *ud)
{
    run_src *rs = ud;
    return dms_log_stream_fd(rs->s);
}

static void run_free(void *ud)
{
    run_src *rs = ud;
    dms_log_stream_free(rs->s);
    dmsu_buf_free(&rs->pending);
    free(rs);
}

static const api_stream_ops run_ops = {run_read, run_fd, run_free};

/* A compose droid's service's run: the latest one recorded (the current one, once it started). */
static int pick_service_run(const char *id, const char *service, const store_run *runs, size_t n, char *out,
                            size_t size, dms_error *err)
{
    for (size_t i = n; i-- > 0;)
        if (strcmp(runs[i].service, service) == 0) {
            snprintf(out, size, "%s", runs[i].exec_id);
            return 0;
        }
    return dms_error_set(err, DMS_E_NOT_FOUND, "service", "droid %s has no service %.64s that ran", id,
                         service);
}

/* The run whose logs are wanted: ?run=, ?service=, else the current run, else the latest one recorded. */
static int pick_run(app *a, const char *id, const char *want, const char *service, char *out, size_t size,
                    dms_error *err)
{
    store_run *runs = NULL;
    size_t n = 0;
    int r = store_runs_list(a->st, id, &runs, &n, err);
    if (r < 0)
        return r;
    if (service && !want) {
        r = pick_service_run(id, service, runs, n, out, size, err);
        free(runs);
        return r;
    }
    r = 1;
    if (want) {
        for (size_t i = 0; i < n && r; i++)
            if (strcmp(runs[i].exec_id, want) == 0)
                r = 0;
        if (r)
            r = dms_error_set(err, DMS_E_NOT_FOUND, "run",
                              "run %.64s of droid %s is unknown (or its logs are gone)", want, id);
        else
            snprintf(out, size, "%s", want);
        free(runs);
        return r;
    }
    droid *d = core_get_copy(a->core, id);
    if (d && d->run_id) {
        snprintf(out, size, "%s", d->run_id);
        r = 0;
    } else if (n) {
        snprintf(out, size, "%s", runs[n - 1].exec_id);
        r = 0;
    }
    droid_free(d);
    free(runs);
    return r; /* 1: no run yet */
}

static void runtime_logs(app *a, api_req *r, const char *id)
{
    dms_error err = {0};
    long long tail = -1, from = 0, limit = LOGS_DEFAULT_LIMIT;
    bool follow = false, ts = false;
    const char *format = api_query(r, "format");
    if (api_query_i64(r, "tail", LOGS_MAX_LINES, &tail, &err) < 0 ||
        api_query_i64(r, "from", INT64_MAX - 1, &from, &err) < 0 ||
        api_query_i64(r, "limit", LOGS_MAX_LINES, &limit, &err) < 0 ||
        api_query_bool(r, "follow", &follow, &err) < 0 || api_query_bool(r, "timestamps", &ts, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (format && strcmp(format, "text") != 0 && strcmp(format, "json") != 0) {
        api_reply_errorf(r, MHD_HTTP_BAD_REQUEST, "format", "format must be text or json");
        return;
    }
    if (limit == 0) {
        api_reply_errorf(r, MHD_HTTP_BAD_REQUEST, "limit", "limit must be at least 1");
        return;
    }
    log_fmt fmt = {.json = format && strcmp(format, "json") == 0, .timestamps = ts};
    const char *ctype = fmt.json ? "application/x-ndjson" : "text/plain; charset=utf-8";
    if (!api_query(r, "run") && !api_query(r, "service")) {
        logs_query q = {tail, from, limit, follow, fmt, ctype, LOGS_MAX_BYTES};
        if (mergelogs_reply(a, r, id, &q))
            return; /* a compose droid: every service's logs, tagged */
    }
    char exec_id[DMS_ID_MAX + 1], cursor[32];
    int rc = pick_run(a, id, api_query(r, "run"), api_query(r, "service"), exec_id, sizeof(exec_id), &err);
    if (rc < 0) {
        api_reply_error(r, &err);
        return;
    }
    snprintf(cursor, sizeof(cursor), "%lld", from);
    if (rc == 1 || !a->ex) {
        api_reply_buf(r, MHD_HTTP_OK, ctype, NULL, 0, "X-Last-Log-Nano", cursor);
        return;
    }
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    opts.tail_lines = tail;
    opts.since_ns = logpage_since(from);
    opts.follow = follow;
    dms_log_stream *s = NULL;
    if (dms_executor_log_stream(a->ex, exec_id, &opts, &s, &err) < 0) {
        if (err.code == DMS_E_NOT_FOUND) { /* the run is recorded but the executor forgot it: no lines */
            api_reply_buf(r, MHD_HTTP_OK, ctype, NULL, 0, "X-Last-Log-Nano", cursor);
            return;
        }
        api_reply_error(r, &err);
        return;
    }
    /* History first, bounded by limit (whole lines) and bytes; a follow then goes on live from there. */
    dmsu_buf b = {0};
    logpage pg = {.last_ts = from, .at_line_start = true};
    if (logpage_read(s, follow ? -1 : limit, LOGS_MAX_BYTES, &fmt, &b, &pg, &err) < 0) {
        dms_log_stream_free(s);
        dmsu_buf_free(&b);
        api_reply_error(r, &err);
        return;
    }
    bool ended = pg.ended, at_line_start = pg.at_line_start;
    snprintf(cursor, sizeof(cursor), "%lld", (long long)pg.last_ts);
    if (!follow || ended) {
        dms_log_stream_free(s);
        api_reply_buf(r, MHD_HTTP_OK, ctype, b.data, b.len, "X-Last-Log-Nano", cursor);
        return;
    }
    run_src *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        dms_log_stream_free(s);
        dmsu_buf_free(&b);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    rs->s = s;
    rs->fmt = fmt;
    rs->at_line_start = at_line_start;
    rs->pending = b; /* the history goes out first */
    api_reply_stream(r, MHD_HTTP_OK, ctype, &run_ops, rs, "X-Last-Log-Nano", cursor);
}

/* ---- build logs ---- */

typedef struct build_src {
    app *a;
    char droid_id[DROID_ID_SIZE];
    char path[PATH_MAX + 16];
    int fd;
    ino_t ino; /* the file fd reads: each build writes a new one under the same name */
    off_t off;
} build_src;

/* The name points at another file than the one being read: a new build began. Read it from its start. */
static bool build_moved_on(build_src *bs)
{
    struct stat st;
    if (stat(bs->path, &st) < 0 || st.st_ino == bs->ino)
        return false;
    int fd = open(bs->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    close(bs->fd);
    bs->fd = fd;
    bs->ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
    bs->off = 0;
    return true;
}

static bool build_active(build_src *bs)
{
    store_build b = {0};
    int rc = store_build_active(bs->a->st, bs->droid_id, &b, NULL);
    store_build_clear(&b);
    return rc == 1;
}

static ssize_t build_read(void *ud, char *buf, size_t max)
{
    build_src *bs = ud;
    for (int pass = 0; pass < 2; pass++) {
        ssize_t n = pread(bs->fd, buf, max, bs->off);
        if (n > 0) {
            bs->off += n;
            return n;
        }
        if (n < 0 && errno != EINTR)
            return API_STREAM_ERROR;
        if (build_moved_on(bs)) {
            pass = -1; /* the new build's file, from its start */
            continue;
        }
        if (pass == 0 && build_active(bs))
            return API_STREAM_AGAIN;
        /* Not active: read once more (the last lines may have landed just before the build ended), then end.
         */
    }
    return API_STREAM_END;
}

static void build_free(void *ud)
{
    build_src *bs = ud;
    if (bs->fd >= 0)
        close(bs->fd);
    free(bs);
}

static const api_stream_ops build_ops = {build_read, NULL, build_free};

static void build_logs(app *a, api_req *r, const char *id, const char *which)
{
    dms_error err = {0};
    bool follow = false;
    long long tail = -1;
    if (api_query_bool(r, "follow", &follow, &err) < 0 ||
        api_query_i64(r, "tail", LOGS_MAX_LINES, &tail, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    char dir[PATH_MAX], path[PATH_MAX + 16];
    app_droid_dir(a, id, dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s", dir, which);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && follow) {
        /* Followed while its first build is queued: an empty file to wait on, which the build replaces with
         * its own (the follower moves over to it). */
        build_src probe = {.a = a};
        snprintf(probe.droid_id, sizeof(probe.droid_id), "%s", id);
        if (build_active(&probe) && dms_mkdir_p(dir, false, NULL) == 0)
            fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
    }
    if (fd < 0) {
        api_reply_errorf(r, MHD_HTTP_NOT_FOUND, which, "no %s yet: the droid has not been built", which);
        return;
    }
    off_t start = 0;
    if (tail >= 0) {
        /* Find where the last `tail` lines begin, reading backwards in blocks. */
        struct stat st;
        fstat(fd, &st);
        off_t pos = st.st_size;
        long long nl = 0;
        char blk[4096];
        bool found = false;
        if (pos > 0) {
            char last;
            if (pread(fd, &last, 1, pos - 1) == 1 && last == '\n')
                nl = -1; /* the final newline ends the last line; it does not start one */
        }
        while (pos > 0 && !found) {
            size_t take = pos > (off_t)sizeof(blk) ? sizeof(blk) : (size_t)pos;
            pos -= (off_t)take;
            ssize_t got = pread(fd, blk, take, pos);
            for (ssize_t i = got - 1; i >= 0; i--)
                if (blk[i] == '\n' && ++nl == tail) {
                    start = pos + i + 1;
                    found = true;
                    break;
                }
        }
        if (tail == 0) {
            struct stat st2;
            fstat(fd, &st2);
            start = st2.st_size;
        }
    }
    if (follow) {
        build_src *bs = calloc(1, sizeof(*bs));
        if (!bs) {
            close(fd);
            api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
            return;
        }
        bs->a = a;
        snprintf(bs->droid_id, sizeof(bs->droid_id), "%s", id);
        snprintf(bs->path, sizeof(bs->path), "%s", path);
        bs->fd = fd;
        struct stat st;
        bs->ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
        bs->off = start;
        api_reply_stream(r, MHD_HTTP_OK, "text/plain; charset=utf-8", &build_ops, bs, NULL, NULL);
        return;
    }
    dmsu_buf b = {.max = BUILD_LOG_MAX_BYTES};
    char blk[65536];
    ssize_t n;
    off_t off = start;
    while ((n = pread(fd, blk, sizeof(blk), off)) > 0 && !b.overflow) {
        dmsu_buf_append(&b, blk, (size_t)n);
        off += n;
    }
    close(fd);
    api_reply_buf(r, MHD_HTTP_OK, "text/plain; charset=utf-8", b.data, b.len, NULL, NULL);
}

void route_logs(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    if (core_check_owner(a->core, api_user(r), id, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    bool out = api_query(r, "build.out") != NULL, errs = api_query(r, "build.err") != NULL;
    if (out && errs) {
        api_reply_errorf(r, MHD_HTTP_BAD_REQUEST, "build.err", "ask for build.out or build.err, not both");
        return;
    }
    if (out || errs) {
        if (api_query(r, "from") || api_query(r, "limit") || api_query(r, "run")) {
            api_reply_errorf(r, MHD_HTTP_BAD_REQUEST,
                             api_query(r, "from")    ? "from"
                             : api_query(r, "limit") ? "limit"
                                                     : "run",
                             "build logs take tail and follow only");
            return;
        }
        build_logs(a, r, id, out ? "build.out" : "build.err");
        return;
    }
    runtime_logs(a, r, id);
}
