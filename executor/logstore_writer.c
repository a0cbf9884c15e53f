/* logstore_writer.c - the capture: a workload's output appended to its log store as records, bounded by
 * rotation (two files of at most file_cap bytes), ended by the end marker a follower stops at. The format is
 * described at the top of logstore.c. */
#include "logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#define WRITE_BUF_FLUSH_BYTES (256 * 1024)

struct dms_logstore_writer {
    char *dir;
    int fd;
    uint64_t gen;
    int64_t file_size;
    int64_t cap;
    uint64_t offset[3]; /* per stream: bytes captured */
    int64_t last_ts;
    dmsu_buf pending[3]; /* per stream: a line not yet ended */
    int64_t pending_ts[3];
    dmsu_buf out; /* records not yet written */
    bool finished;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* base: per stream, the bytes captured before the new file's first record. */
static int open_new_file(dms_logstore_writer *w, const uint64_t base[3], dms_error *err)
{
    char path[PATH_MAX];
    if (logstore_path_in(path, sizeof(path), w->dir, "log") < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
    if (fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", path);
    char hdr[FILE_HDR_BYTES];
    memcpy(hdr, FILE_MAGIC, 8);
    memcpy(hdr + 8, &w->gen, sizeof(w->gen));
    memcpy(hdr + 16, &base[DMS_STREAM_STDOUT], sizeof(uint64_t));
    memcpy(hdr + 24, &base[DMS_STREAM_STDERR], sizeof(uint64_t));
    int r = write_all(fd, hdr, sizeof(hdr));
    if (r < 0) {
        close(fd);
        return dms_error_set_errno(err, DMS_E_IO, -r, "write %s", path);
    }
    w->fd = fd;
    w->file_size = FILE_HDR_BYTES;
    return 0;
}

int dms_logstore_writer_open(dms_logstore_writer **out, const char *dir, int64_t file_cap_bytes,
                             dms_error *err)
{
    dms_logstore_info info;
    int r = dms_logstore_info_read(dir, &info, err);
    if (r < 0)
        return r;
    if (info.finished)
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, NULL, "the capture in %s has already ended", dir);
    dms_logstore_writer *w = calloc(1, sizeof(*w));
    if (!w || !(w->dir = strdup(dir))) {
        free(w);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    w->fd = -1;
    w->cap = file_cap_bytes > 0 ? file_cap_bytes : DMS_DEFAULT_LOG_FILE_BYTES;
    w->offset[1] = info.stdout_bytes;
    w->offset[2] = info.stderr_bytes;
    w->last_ts = info.last_ts_ns;
    for (int i = 1; i <= 2; i++)
        w->pending[i].max = DMS_LOG_LINE_MAX;
    if (info.exists) {
        /* Continue the current file after its last complete record. */
        seg cur;
        r = logstore_seg_open(&cur, dir, "log", err);
        if (r < 0) {
            dms_logstore_writer_free(w);
            return r;
        }
        if (r > 0) {
            char path[PATH_MAX];
            logstore_path_in(path, sizeof(path), dir, "log");
            w->gen = cur.gen;
            w->file_size = cur.size;
            logstore_seg_close(&cur);
            w->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (w->fd < 0 || ftruncate(w->fd, w->file_size) != 0) {
                int e = errno;
                dms_logstore_writer_free(w);
                return dms_error_set_errno(err, DMS_E_IO, e, "open %s", path);
            }
        } else {
            /* Only log.1 is there: a writer died inside rotate(), after the rename and before the new log had
             * its header. The new log must be the next generation, or readers would take log.1 for the older
             * file of a later capture and drop it. */
            seg old;
            if ((r = logstore_seg_open(&old, dir, "log.1", err)) < 0) {
                dms_logstore_writer_free(w);
                return r;
            }
            if (r > 0) {
                w->gen = old.gen + 1;
                logstore_seg_close(&old);
            }
        }
    }
    if (w->fd < 0 && (r = open_new_file(w, w->offset, err)) < 0) {
        dms_logstore_writer_free(w);
        return r;
    }
    *out = w;
    return 0;
}

static int rotate(dms_logstore_writer *w, const uint64_t base[3], dms_error *err)
{
    char cur[PATH_MAX], old[PATH_MAX];
    logstore_path_in(cur, sizeof(cur), w->dir, "log");
    logstore_path_in(old, sizeof(old), w->dir, "log.1");
    close(w->fd);
    w->fd = -1;
    if (rename(cur, old) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "rotate %s", cur);
    w->gen++;
    return open_new_file(w, base, err);
}

/* Writes the buffered records, rotating between two records whenever the next would take the file past its
 * cap (a fresh file takes at least one record, so a cap below one record still moves on). */
int dms_logstore_flush(dms_logstore_writer *w, dms_error *err)
{
    size_t pos = 0;
    while (pos < w->out.len) {
        size_t end = pos;
        while (end < w->out.len) {
            rec_hdr h;
            memcpy(&h, w->out.data + end, sizeof(h));
            size_t rl = REC_HDR_BYTES + h.len + REC_TRAILER_BYTES;
            bool fits = w->file_size + (int64_t)(end + rl - pos) <= w->cap;
            if (!fits && (w->file_size > FILE_HDR_BYTES || end > pos))
                break;
            end += rl;
        }
        if (end > pos) {
            int r = write_all(w->fd, w->out.data + pos, end - pos);
            if (r < 0) {
                /* Keep what was not written, so a later flush can try again. */
                dmsu_buf_consume(&w->out, pos);
                return dms_error_set_errno(err, DMS_E_IO, -r, "write log in %s", w->dir);
            }
            w->file_size += (int64_t)(end - pos);
            pos = end;
        }
        if (pos < w->out.len) {
            /* The new file begins at the record at pos: each stream's base is its total minus what follows.
             */
            uint64_t base[3] = {0, w->offset[1], w->offset[2]};
            for (size_t q = pos; q < w->out.len;) {
                rec_hdr h;
                memcpy(&h, w->out.data + q, sizeof(h));
                if (h.stream == DMS_STREAM_STDOUT || h.stream == DMS_STREAM_STDERR)
                    base[h.stream] -= h.len;
                q += REC_HDR_BYTES + h.len + REC_TRAILER_BYTES;
            }
            int r = rotate(w, base, err);
            if (r < 0) {
                dmsu_buf_consume(&w->out, pos);
                return r;
            }
        }
    }
    dmsu_buf_reset(&w->out);
    return 0;
}

static int emit(dms_logstore_writer *w, int stream, int64_t ts, bool partial, const char *data, size_t len,
                dms_error *err)
{
    if (ts <= w->last_ts)
        ts = w->last_ts + 1;
    w->last_ts = ts;
    rec_hdr h = {
        .len = (uint32_t)len, .stream = (uint8_t)stream, .flags = partial ? FLAG_PARTIAL : 0, .ts_ns = ts};
    if (stream == 1 || stream == 2) {
        h.offset = w->offset[stream];
        w->offset[stream] += len;
    }
    uint32_t tl = (uint32_t)len;
    if (dmsu_buf_append(&w->out, &h, sizeof(h)) < 0 || dmsu_buf_append(&w->out, data, len) < 0 ||
        dmsu_buf_append(&w->out, &tl, sizeof(tl)) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory capturing output");
    if (w->out.len >= WRITE_BUF_FLUSH_BYTES)
        return dms_logstore_flush(w, err);
    return 0;
}

int dms_logstore_write_frame(dms_logstore_writer *w, dms_stream_type stream, int64_t ts_ns, bool partial,
                             const char *data, size_t len, dms_error *err)
{
    if (w->finished)
        return dms_error_set(err, DMS_E_INVALID, NULL, "capture already finished");
    if (stream != DMS_STREAM_STDOUT && stream != DMS_STREAM_STDERR)
        return dms_error_set(err, DMS_E_INVALID, NULL, "bad stream %d", (int)stream);
    if (ts_ns <= 0)
        ts_ns = dms_now_ns();
    while (len > DMS_LOG_LINE_MAX) {
        int r = emit(w, stream, ts_ns, true, data, DMS_LOG_LINE_MAX, err);
        if (r < 0)
            return r;
        data += DMS_LOG_LINE_MAX;
        len -= DMS_LOG_LINE_MAX;
    }
    return emit(w, stream, ts_ns, partial, data, len, err);
}

int dms_logstore_write(dms_logstore_writer *w, dms_stream_type stream, int64_t ts_ns, const char *data,
                       size_t len, dms_error *err)
{
    if (w->finished)
        return dms_error_set(err, DMS_E_INVALID, NULL, "capture already finished");
    if (stream != DMS_STREAM_STDOUT && stream != DMS_STREAM_STDERR)
        return dms_error_set(err, DMS_E_INVALID, NULL, "bad stream %d", (int)stream);
    if (ts_ns <= 0)
        ts_ns = dms_now_ns();
    dmsu_buf *p = &w->pending[stream];
    int r;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t seg_len = nl ? (size_t)(nl - data) + 1 : len;
        /* Fill the pending line up to the frame limit; a full one goes out as a partial frame. */
        size_t room = DMS_LOG_LINE_MAX - p->len;
        size_t take = seg_len < room ? seg_len : room;
        if (p->len == 0 && take == seg_len && nl) {
            /* Fast path: a whole line with nothing pending goes straight out. */
            if ((r = emit(w, stream, ts_ns, false, data, take, err)) < 0)
                return r;
        } else {
            if (p->len == 0)
                w->pending_ts[stream] = ts_ns;
            if (dmsu_buf_append(p, data, take) < 0)
                return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory capturing output");
            bool line_done = nl && take == seg_len;
            if (line_done || p->len == DMS_LOG_LINE_MAX) {
                if ((r = emit(w, stream, ts_ns, !line_done, p->data, p->len, err)) < 0)
                    return r;
                dmsu_buf_reset(p);
            }
        }
        data += take;
        len -= take;
    }
    return 0;
}

int dms_logstore_finish(dms_logstore_writer *w, dms_error *err)
{
    int r;
    if (w->finished)
        return 0;
    for (int s = 1; s <= 2; s++) {
        if (w->pending[s].len) {
            if ((r = emit(w, s, w->pending_ts[s], false, w->pending[s].data, w->pending[s].len, err)) < 0)
                return r;
            dmsu_buf_reset(&w->pending[s]);
        }
    }
    if ((r = emit(w, STREAM_END, dms_now_ns(), false, "", 0, err)) < 0 ||
        (r = dms_logstore_flush(w, err)) < 0)
        return r;
    w->finished = true;
    return 0;
}

uint64_t dms_logstore_bytes(const dms_logstore_writer *w, dms_stream_type stream)
{
    if (stream != 1 && stream != 2)
        return 0;
    return w->offset[stream] + w->pending[stream].len;
}

int64_t dms_logstore_last_ts(const dms_logstore_writer *w)
{
    return w->last_ts;
}

void dms_logstore_writer_free(dms_logstore_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        /* A line still open goes out as a partial frame ("continues in the next frame"): a producer that
         * restarts mid-line continues it, and nothing dms_logstore_bytes() counted is lost. */
        for (int s = 1; s <= 2 && !w->finished; s++)
            if (w->pending[s].len &&
                emit(w, s, w->pending_ts[s], true, w->pending[s].data, w->pending[s].len, NULL) == 0)
                dmsu_buf_reset(&w->pending[s]);
        dms_logstore_flush(w, NULL);
        close(w->fd);
    }
    for (int i = 0; i < 3; i++)
        dmsu_buf_free(&w->pending[i]);
    dmsu_buf_free(&w->out);
    free(w->dir);
    free(w);
}
