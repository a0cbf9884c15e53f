/* logstore_reader.c - a log stream over an execution's capture files: history from the start, the last N
 * lines (tail) or since a time, then (follow) new records as the writer appends them, across rotations, until
 * the end marker or until the producer is gone. The format is described at the top of logstore.c. */
#include "logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "watch.h"

#define READ_CHUNK_BYTES (64 * 1024)
#define IDLE_CHECK_MS    1000

typedef struct reader {
    char *dir;
    dms_log_options opts;
    dms_watch *watch; /* changes in dir (the process-wide inotify, watch.c) */
    int fd;           /* current file */
    ino_t ino;
    uint64_t gen;
    int64_t pos; /* file offset of the next record */
    char *buf;   /* bytes [buf_off, buf_off + buf_len) of the current file */
    size_t buf_len, buf_cap;
    int64_t buf_off;
    bool ended;           /* saw the end marker, or history done without follow */
    bool producer_gone;   /* idle_check said so: end at the next end of data, after one more read */
    int64_t next_idle_ms; /* monotonic time of the next idle check: per stream, not per call, so that a host
                           * calling next() with short timeouts still gets one about once a second */
    dms_logstore_idle_fn idle_check;
    void *ud;
    void (*ud_free)(void *);
} reader;

static void reader_free(void *ctx)
{
    reader *rd = ctx;
    if (!rd)
        return;
    if (rd->ud_free)
        rd->ud_free(rd->ud);
    dms_watch_close(rd->watch);
    if (rd->fd >= 0)
        close(rd->fd);
    free(rd->buf);
    free(rd->dir);
    free(rd);
}

static int reader_fd(void *ctx)
{
    return dms_watch_fd(((reader *)ctx)->watch);
}

static bool selected(const reader *rd, uint8_t stream)
{
    return (stream == DMS_STREAM_STDOUT && !rd->opts.no_stdout) ||
           (stream == DMS_STREAM_STDERR && !rd->opts.no_stderr);
}

/* Switches the reader to a file at a position (takes the fd). */
static void reader_set_file(reader *rd, int fd, ino_t ino, uint64_t gen, int64_t pos)
{
    if (rd->fd >= 0 && rd->fd != fd)
        close(rd->fd);
    rd->fd = fd;
    rd->ino = ino;
    rd->gen = gen;
    rd->pos = pos;
    rd->buf_len = 0;
    rd->buf_off = pos;
}

/* Finds where to start: the beginning of history, or the record after the (tail+1)-th last line. */
static int reader_position(reader *rd, dms_error *err)
{
    segset ss;
    int r = logstore_segset_open(&ss, rd->dir, err);
    if (r < 0)
        return r;
    if (ss.n == 0) {
        rd->fd = -1; /* nothing captured yet: wait for the file to appear */
        return 0;
    }
    int start_seg = 0;
    int64_t start_pos = FILE_HDR_BYTES;
    if (rd->opts.tail_lines >= 0) {
        int64_t lines = 0;
        bool found = false;
        start_seg = ss.n - 1;
        start_pos = ss.s[start_seg].size;
        for (int i = ss.n - 1; i >= 0 && !found; i--) {
            int64_t end = ss.s[i].size, start;
            rec_hdr h;
            back_reader *b = malloc(sizeof(*b));
            if (!b)
                break;
            logstore_back_init(b, ss.s[i].fd);
            while (logstore_record_before(b, end, &h, &start)) {
                if (selected(rd, h.stream) && !(h.flags & FLAG_PARTIAL) && h.ts_ns >= rd->opts.since_ns) {
                    if (lines == rd->opts.tail_lines) {
                        found = true;
                        break;
                    }
                    lines++;
                }
                start_seg = i;
                start_pos = start;
                end = start;
            }
            free(b);
            if (!found && i > 0) {
                /* Continue into the older file; if it has nothing, history starts at this file's beginning.
                 */
                start_seg = i;
                start_pos = FILE_HDR_BYTES;
            }
        }
    }
    for (int i = 0; i < ss.n; i++)
        if (i != start_seg)
            logstore_seg_close(&ss.s[i]);
    reader_set_file(rd, ss.s[start_seg].fd, ss.s[start_seg].ino, ss.s[start_seg].gen, start_pos);
    return 0;
}

/* Ensures [pos, pos+n) is in the buffer; 1 if it is, 0 if the file does not hold it (yet), negative on error.
 */
static int reader_fill(reader *rd, size_t n, dms_error *err)
{
    if (rd->pos >= rd->buf_off && rd->pos + (int64_t)n <= rd->buf_off + (int64_t)rd->buf_len)
        return 1;
    /* Keep from pos on, then read more. */
    if (rd->pos > rd->buf_off && rd->pos <= rd->buf_off + (int64_t)rd->buf_len) {
        size_t drop = (size_t)(rd->pos - rd->buf_off);
        memmove(rd->buf, rd->buf + drop, rd->buf_len - drop);
        rd->buf_len -= drop;
        rd->buf_off = rd->pos;
    } else if (rd->pos != rd->buf_off || rd->buf_len == 0) {
        rd->buf_len = 0;
        rd->buf_off = rd->pos;
    }
    size_t want = n > READ_CHUNK_BYTES ? n : READ_CHUNK_BYTES;
    if (rd->buf_cap < want) {
        char *nb = realloc(rd->buf, want);
        if (!nb)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        rd->buf = nb;
        rd->buf_cap = want;
    }
    while (rd->buf_len < n) {
        ssize_t r = pread(rd->fd, rd->buf + rd->buf_len, rd->buf_cap - rd->buf_len,
                          rd->buf_off + (int64_t)rd->buf_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return dms_error_set_errno(err, DMS_E_IO, errno, "read capture in %s", rd->dir);
        if (r == 0)
            return 0;
        rd->buf_len += (size_t)r;
    }
    return 1;
}

/* At the end of the current file: move to a newer one if there is. 1 moved, 0 no newer file. */
static int reader_advance_file(reader *rd, dms_error *err)
{
    seg cur;
    int r = logstore_seg_open(&cur, rd->dir, "log", err);
    if (r <= 0)
        return r;
    if (rd->fd >= 0 && cur.ino == rd->ino) {
        logstore_seg_close(&cur);
        return 0;
    }
    /* A newer file exists, but the writer may have appended to ours after we saw its end and before it
     * rotated: finish ours first (it no longer grows, so this check ends). */
    struct stat st;
    if (rd->fd >= 0 && fstat(rd->fd, &st) == 0 && logstore_valid_end(rd->fd, st.st_size) > rd->pos) {
        logstore_seg_close(&cur);
        return 1;
    }
    /* Drained an older file (log.1, or a log that was rotated under us). The file after it is log.1 if that
     * has the next generation (we were two behind), else log. */
    if (rd->fd >= 0 && cur.gen > rd->gen + 1) {
        seg old;
        if (logstore_seg_open(&old, rd->dir, "log.1", err) > 0) {
            if (old.gen == rd->gen + 1 && old.ino != rd->ino) {
                logstore_seg_close(&cur);
                reader_set_file(rd, old.fd, old.ino, old.gen, FILE_HDR_BYTES);
                return 1;
            }
            logstore_seg_close(&old);
        }
    }
    reader_set_file(rd, cur.fd, cur.ino, cur.gen, FILE_HDR_BYTES);
    return 1;
}

static int reader_wait(reader *rd, int64_t deadline, dms_error *err)
{
    int64_t now = dms_mono_ms();
    if (rd->producer_gone) {
        rd->ended = true;
        return 0;
    }
    if (rd->idle_check && now >= rd->next_idle_ms) {
        rd->next_idle_ms = now + IDLE_CHECK_MS;
        if (rd->idle_check(rd->ud)) {
            /* The producer may have written its last output after our last read and before it went: read once
             * more, and end at the next end of data. */
            rd->producer_gone = true;
            return 1;
        }
    }
    if (deadline >= 0 && now >= deadline)
        return dms_error_set(err, DMS_E_TIMEOUT, NULL, "no new output");
    int64_t wait = deadline < 0 ? IDLE_CHECK_MS : deadline - now;
    if (wait > IDLE_CHECK_MS)
        wait = IDLE_CHECK_MS;
    if (rd->idle_check && wait > rd->next_idle_ms - now)
        wait = rd->next_idle_ms - now;
    struct pollfd p = {.fd = dms_watch_fd(rd->watch), .events = POLLIN};
    int r = poll(&p, 1, (int)wait);
    if (r < 0 && errno != EINTR)
        return dms_error_set_errno(err, DMS_E_IO, errno, "poll");
    if (r > 0)
        dms_watch_drain(rd->watch);
    return 1;
}

static int reader_next(void *ctx, int64_t timeout_ms, dms_log_frame *frame, dms_error *err)
{
    reader *rd = ctx;
    int64_t deadline = timeout_ms < 0 ? -1 : dms_mono_ms() + timeout_ms;
    int r;
    for (;;) {
        if (rd->ended)
            return 0;
        if (rd->fd < 0) {
            if ((r = reader_advance_file(rd, err)) < 0)
                return r;
            if (r == 0) {
                if (!rd->opts.follow)
                    return 0;
                if ((r = reader_wait(rd, deadline, err)) <= 0)
                    return r;
                continue;
            }
        }
        r = reader_fill(rd, REC_HDR_BYTES, err);
        if (r < 0)
            return r;
        if (r > 0) {
            rec_hdr h;
            memcpy(&h, rd->buf + (rd->pos - rd->buf_off), sizeof(h));
            if (!hdr_sane(&h))
                return dms_error_set(err, DMS_E_PROTOCOL, NULL, "corrupt capture file in %s at offset %lld",
                                     rd->dir, (long long)rd->pos);
            size_t total = REC_HDR_BYTES + h.len + REC_TRAILER_BYTES;
            if ((r = reader_fill(rd, total, err)) < 0)
                return r;
            if (r > 0) {
                const char *payload = rd->buf + (rd->pos - rd->buf_off) + REC_HDR_BYTES;
                rd->pos += (int64_t)total;
                if (h.stream == STREAM_END) {
                    rd->ended = true;
                    return 0;
                }
                if (!selected(rd, h.stream) || h.ts_ns < rd->opts.since_ns)
                    continue;
                frame->stream = (dms_stream_type)h.stream;
                frame->partial = h.flags & FLAG_PARTIAL;
                frame->ts_ns = h.ts_ns;
                frame->data = payload;
                frame->len = h.len;
                return 1;
            }
        }
        /* End of what the current file holds. A newer file means this one is complete. */
        if ((r = reader_advance_file(rd, err)) < 0)
            return r;
        if (r > 0)
            continue;
        if (!rd->opts.follow)
            return 0;
        if ((r = reader_wait(rd, deadline, err)) <= 0)
            return r;
    }
}

static const dms_log_stream_ops reader_ops = {
    .next = reader_next,
    .fd = reader_fd,
    .free = reader_free,
};

int dms_logstore_stream_open(const char *dir, const dms_log_options *opts, dms_logstore_idle_fn idle_check,
                             void *ud, void (*ud_free)(void *), dms_log_stream **out, dms_error *err)
{
    static const dms_log_options defaults = DMS_LOG_OPTIONS_INIT;
    reader *rd = calloc(1, sizeof(*rd));
    if (!rd) {
        if (ud_free)
            ud_free(ud);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    rd->fd = -1;
    rd->opts = opts ? *opts : defaults;
    rd->idle_check = idle_check;
    rd->next_idle_ms = dms_mono_ms() + IDLE_CHECK_MS;
    rd->ud = ud;
    rd->ud_free = ud_free;
    if (!(rd->dir = strdup(dir))) {
        reader_free(rd);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    /* Watch before positioning, so no write between the two is missed. */
    int r = dms_watch_open(dir, &rd->watch, err);
    if (r < 0) {
        reader_free(rd);
        return r;
    }
    r = reader_position(rd, err);
    if (r < 0) {
        reader_free(rd);
        return r;
    }
    return dms_log_stream_new(&reader_ops, rd, out, err);
}
