/* logstore.c - an execution's output captured to its own files, and served back with tail/since/follow.
 *
 * Why our own files: the engine's logs vanish with the container, `GET /logs` serves history at a fraction of the
 * speed of reading a file, and a follow that reads the engine races the job's end. So every byte a workload
 * writes is captured here from the first one, bounded (two files of at most file_cap bytes: `log.1` and `log`)
 * so the newest output always survives, and a follower ends exactly at the end marker the writer appends.
 *
 * Format (host byte order; the files never leave the machine):
 *   file   := header record*
 *   header := "DMSLOG2\n" u64 generation u64 stdout_base u64 stderr_base
 *             (32 bytes; generation grows by one per rotation; the bases are the bytes of each stream captured
 *             before this file began, so totals survive a stream whose last record was rotated away)
 *   record := u32 len, u8 stream, u8 flags, u16 0, i64 ts_ns, u64 offset, payload[len], u32 len
 * `offset` is where the payload starts within its stream (so a resumed capture knows how much it has), the
 * trailing len lets tail/excerpt walk backwards, stream END (0x7f, len 0) marks the end of the capture.
 * Readers tolerate a record cut short at the end of the file (a writer in the middle of write(2)): they stop
 * before it and read it again later. */
#include <dms/backend.h>

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

#define FILE_MAGIC "DMSLOG2\n"
#define FILE_HDR_BYTES 32
#define REC_HDR_BYTES 24
#define REC_TRAILER_BYTES 4
#define STREAM_END 0x7f
#define FLAG_PARTIAL 0x01
#define WRITE_BUF_FLUSH_BYTES (256 * 1024)
#define READ_CHUNK_BYTES (64 * 1024)
#define IDLE_CHECK_MS 1000

typedef struct rec_hdr {
    uint32_t len;
    uint8_t stream;
    uint8_t flags;
    uint16_t reserved;
    int64_t ts_ns;
    uint64_t offset;
} rec_hdr;
_Static_assert(sizeof(rec_hdr) == REC_HDR_BYTES, "record header layout");

static int path_in(char *buf, size_t size, const char *dir, const char *name)
{
    return dms_snprintf_ok(buf, size, "%s/%s", dir, name);
}

static int pread_full(int fd, void *buf, size_t n, int64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, off + (int64_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static bool hdr_sane(const rec_hdr *h)
{
    return h->reserved == 0 && h->len <= DMS_LOG_LINE_MAX &&
           (h->stream == DMS_STREAM_STDOUT || h->stream == DMS_STREAM_STDERR || (h->stream == STREAM_END && !h->len));
}

/* ---- segments: one capture file opened for reading ---- */

typedef struct seg {
    int fd;
    int64_t size;  /* end of the last complete record */
    uint64_t gen;
    uint64_t base[3]; /* per stream: bytes captured before this file began */
    ino_t ino;
} seg;

static void seg_close(seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* Backward scans (tail, excerpt, info) read through a block cache: one pread per BACK_BLOCK_BYTES instead of two
 * tiny ones per record (a sparse stream in a 100 MB capture took a second that way). */
#define BACK_BLOCK_BYTES (64 * 1024)

typedef struct back_reader {
    int fd;
    int64_t off; /* file offset of buf[0] */
    size_t len;
    char buf[BACK_BLOCK_BYTES];
} back_reader;

static void back_init(back_reader *b, int fd)
{
    b->fd = fd;
    b->off = 0;
    b->len = 0;
}

static int back_read(back_reader *b, void *dst, size_t n, int64_t off)
{
    if (off < b->off || off + (int64_t)n > b->off + (int64_t)b->len) {
        /* Load the block that ends where this read ends: the scan goes on towards lower offsets. */
        int64_t end = off + (int64_t)n;
        int64_t start = end - BACK_BLOCK_BYTES;
        if (start < 0)
            start = 0;
        if (start > off)
            start = off;
        size_t want = (size_t)(end - start);
        if (want > BACK_BLOCK_BYTES)
            return pread_full(b->fd, dst, n, off);
        if (pread_full(b->fd, b->buf, want, start) < 0) {
            b->len = 0;
            return -1;
        }
        b->off = start;
        b->len = want;
    }
    memcpy(dst, b->buf + (off - b->off), n);
    return 0;
}

/* The record ending at `end`, if a complete and consistent one does; fills *start. */
static bool record_before(back_reader *b, int64_t end, rec_hdr *h, int64_t *start)
{
    uint32_t tl;
    if (end < FILE_HDR_BYTES + REC_HDR_BYTES + REC_TRAILER_BYTES)
        return false;
    if (back_read(b, &tl, sizeof(tl), end - REC_TRAILER_BYTES) < 0 || tl > DMS_LOG_LINE_MAX)
        return false;
    int64_t s = end - REC_TRAILER_BYTES - (int64_t)tl - REC_HDR_BYTES;
    if (s < FILE_HDR_BYTES || back_read(b, h, sizeof(*h), s) < 0 || h->len != tl || !hdr_sane(h))
        return false;
    *start = s;
    return true;
}

/* Where the last complete record ends: normally the file size; after a cut-short write, found by a forward scan. */
static int64_t valid_end(int fd, int64_t size)
{
    rec_hdr h;
    int64_t s;
    back_reader b;
    back_init(&b, fd);
    if (size <= FILE_HDR_BYTES || record_before(&b, size, &h, &s))
        return size < FILE_HDR_BYTES ? FILE_HDR_BYTES : size;
    int64_t pos = FILE_HDR_BYTES;
    while (pos + REC_HDR_BYTES <= size) {
        if (pread_full(fd, &h, sizeof(h), pos) < 0 || !hdr_sane(&h))
            break;
        int64_t next = pos + REC_HDR_BYTES + h.len + REC_TRAILER_BYTES;
        if (next > size)
            break;
        pos = next;
    }
    return pos;
}

/* Opens dir/name; 1 opened, 0 absent, negative error. */
static int seg_open(seg *s, const char *dir, const char *name, dms_error *err)
{
    char path[PATH_MAX];
    s->fd = -1;
    if (path_in(path, sizeof(path), dir, name) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long: %.64s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : dms_error_set_errno(err, DMS_E_IO, errno, "open %s", path);
    char hdr[FILE_HDR_BYTES];
    struct stat st;
    if (fstat(fd, &st) != 0 || pread_full(fd, hdr, sizeof(hdr), 0) < 0 || memcmp(hdr, FILE_MAGIC, 8) != 0) {
        /* Created but header not yet written (a rotation in progress), or not ours: treat as absent. */
        close(fd);
        return 0;
    }
    memcpy(&s->gen, hdr + 8, sizeof(s->gen));
    s->base[0] = 0;
    memcpy(&s->base[DMS_STREAM_STDOUT], hdr + 16, sizeof(uint64_t));
    memcpy(&s->base[DMS_STREAM_STDERR], hdr + 24, sizeof(uint64_t));
    s->fd = fd;
    s->ino = st.st_ino;
    s->size = valid_end(fd, st.st_size);
    return 1;
}

/* Both files of a capture, oldest first. n is 0, 1 or 2. */
typedef struct segset {
    seg s[2];
    int n;
} segset;

static void segset_close(segset *ss)
{
    for (int i = 0; i < ss->n; i++)
        seg_close(&ss->s[i]);
    ss->n = 0;
}

static int segset_open(segset *ss, const char *dir, dms_error *err)
{
    seg old, cur;
    ss->n = 0;
    int r = seg_open(&old, dir, "log.1", err);
    if (r < 0)
        return r;
    int r2 = seg_open(&cur, dir, "log", err);
    if (r2 < 0) {
        if (r > 0)
            seg_close(&old);
        return r2;
    }
    if (r > 0 && (r2 == 0 || old.gen < cur.gen))
        ss->s[ss->n++] = old;
    else if (r > 0)
        seg_close(&old);
    if (r2 > 0)
        ss->s[ss->n++] = cur;
    return 0;
}

/* ---- writer ---- */

struct dms_logstore_writer {
    char *dir;
    int fd;
    uint64_t gen;
    int64_t file_size;
    int64_t cap;
    uint64_t offset[3];   /* per stream: bytes captured */
    int64_t last_ts;
    dms_buf pending[3];   /* per stream: a line not yet ended */
    int64_t pending_ts[3];
    dms_buf out;          /* records not yet written */
    bool finished;
};

int dms_logstore_info_read(const char *dir, dms_logstore_info *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    segset ss;
    int r = segset_open(&ss, dir, err);
    if (r < 0)
        return r;
    out->exists = ss.n > 0;
    bool seen[3] = {false, false, false};
    bool first = true;
    for (int i = ss.n - 1; i >= 0 && !(seen[1] && seen[2]); i--) {
        int64_t end = ss.s[i].size, start;
        rec_hdr h;
        back_reader *b = malloc(sizeof(*b));
        if (!b)
            break;
        back_init(b, ss.s[i].fd);
        while (record_before(b, end, &h, &start)) {
            if (first) {
                out->finished = h.stream == STREAM_END;
                first = false;
            }
            if (h.ts_ns > out->last_ts_ns)
                out->last_ts_ns = h.ts_ns;
            if ((h.stream == 1 || h.stream == 2) && !seen[h.stream]) {
                seen[h.stream] = true;
                if (h.stream == 1)
                    out->stdout_bytes = h.offset + h.len;
                else
                    out->stderr_bytes = h.offset + h.len;
            }
            if (seen[1] && seen[2])
                break;
            end = start;
        }
        free(b);
    }
    /* A stream with no record left in either file: its total is what preceded the oldest file. */
    if (ss.n > 0 && !seen[DMS_STREAM_STDOUT])
        out->stdout_bytes = ss.s[0].base[DMS_STREAM_STDOUT];
    if (ss.n > 0 && !seen[DMS_STREAM_STDERR])
        out->stderr_bytes = ss.s[0].base[DMS_STREAM_STDERR];
    segset_close(&ss);
    return 0;
}

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
    if (path_in(path, sizeof(path), w->dir, "log") < 0)
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

int dms_logstore_writer_open(dms_logstore_writer **out, const char *dir, int64_t file_cap_bytes, dms_error *err)
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
        r = seg_open(&cur, dir, "log", err);
        if (r < 0) {
            dms_logstore_writer_free(w);
            return r;
        }
        if (r > 0) {
            char path[PATH_MAX];
            path_in(path, sizeof(path), dir, "log");
            w->gen = cur.gen;
            w->file_size = cur.size;
            seg_close(&cur);
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
            if ((r = seg_open(&old, dir, "log.1", err)) < 0) {
                dms_logstore_writer_free(w);
                return r;
            }
            if (r > 0) {
                w->gen = old.gen + 1;
                seg_close(&old);
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
    path_in(cur, sizeof(cur), w->dir, "log");
    path_in(old, sizeof(old), w->dir, "log.1");
    close(w->fd);
    w->fd = -1;
    if (rename(cur, old) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "rotate %s", cur);
    w->gen++;
    return open_new_file(w, base, err);
}

/* Writes the buffered records, rotating between two records whenever the next would take the file past its cap
 * (a fresh file takes at least one record, so a cap below one record still moves on). */
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
                dms_buf_consume(&w->out, pos);
                return dms_error_set_errno(err, DMS_E_IO, -r, "write log in %s", w->dir);
            }
            w->file_size += (int64_t)(end - pos);
            pos = end;
        }
        if (pos < w->out.len) {
            /* The new file begins at the record at pos: each stream's base is its total minus what follows. */
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
                dms_buf_consume(&w->out, pos);
                return r;
            }
        }
    }
    dms_buf_reset(&w->out);
    return 0;
}

static int emit(dms_logstore_writer *w, int stream, int64_t ts, bool partial, const char *data, size_t len,
                dms_error *err)
{
    if (ts <= w->last_ts)
        ts = w->last_ts + 1;
    w->last_ts = ts;
    rec_hdr h = {.len = (uint32_t)len, .stream = (uint8_t)stream, .flags = partial ? FLAG_PARTIAL : 0, .ts_ns = ts};
    if (stream == 1 || stream == 2) {
        h.offset = w->offset[stream];
        w->offset[stream] += len;
    }
    uint32_t tl = (uint32_t)len;
    if (dms_buf_append(&w->out, &h, sizeof(h)) < 0 || dms_buf_append(&w->out, data, len) < 0 ||
        dms_buf_append(&w->out, &tl, sizeof(tl)) < 0)
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

int dms_logstore_write(dms_logstore_writer *w, dms_stream_type stream, int64_t ts_ns, const char *data, size_t len,
                       dms_error *err)
{
    if (w->finished)
        return dms_error_set(err, DMS_E_INVALID, NULL, "capture already finished");
    if (stream != DMS_STREAM_STDOUT && stream != DMS_STREAM_STDERR)
        return dms_error_set(err, DMS_E_INVALID, NULL, "bad stream %d", (int)stream);
    if (ts_ns <= 0)
        ts_ns = dms_now_ns();
    dms_buf *p = &w->pending[stream];
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
            if (dms_buf_append(p, data, take) < 0)
                return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory capturing output");
            bool line_done = nl && take == seg_len;
            if (line_done || p->len == DMS_LOG_LINE_MAX) {
                if ((r = emit(w, stream, ts_ns, !line_done, p->data, p->len, err)) < 0)
                    return r;
                dms_buf_reset(p);
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
            dms_buf_reset(&w->pending[s]);
        }
    }
    if ((r = emit(w, STREAM_END, dms_now_ns(), false, "", 0, err)) < 0 || (r = dms_logstore_flush(w, err)) < 0)
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
                dms_buf_reset(&w->pending[s]);
        dms_logstore_flush(w, NULL);
        close(w->fd);
    }
    for (int i = 0; i < 3; i++)
        dms_buf_free(&w->pending[i]);
    dms_buf_free(&w->out);
    free(w->dir);
    free(w);
}

/* ---- excerpt: the last bytes of one stream ---- */

int dms_logstore_excerpt(const char *dir, dms_stream_type stream, size_t max_bytes, char **out, size_t *len,
                         bool *truncated, dms_error *err)
{
    segset ss;
    int r = segset_open(&ss, dir, err);
    if (r < 0)
        return r;
    /* Walk backwards collecting payload positions until max_bytes are covered. */
    typedef struct span {
        int seg;
        int64_t pos;
        uint32_t len;
    } span;
    span *spans = NULL;
    size_t n = 0, cap = 0, total = 0;
    uint64_t stream_bytes = 0;
    bool have_total = false;
    /* Until max_bytes are covered, and at least until the stream's last record gives its total. */
    for (int i = ss.n - 1; i >= 0 && (total < max_bytes || !have_total); i--) {
        int64_t end = ss.s[i].size, start;
        rec_hdr h;
        back_reader *b = malloc(sizeof(*b));
        if (!b)
            break;
        back_init(b, ss.s[i].fd);
        while ((total < max_bytes || !have_total) && record_before(b, end, &h, &start)) {
            end = start;
            if (h.stream != (uint8_t)stream || h.len == 0)
                continue;
            if (!have_total) {
                stream_bytes = h.offset + h.len;
                have_total = true;
            }
            if (total >= max_bytes)
                break;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                span *ns = realloc(spans, cap * sizeof(*ns));
                if (!ns) {
                    free(b);
                    free(spans);
                    segset_close(&ss);
                    return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
                }
                spans = ns;
            }
            spans[n++] = (span){i, start + REC_HDR_BYTES, h.len};
            total += h.len;
        }
        free(b);
    }
    if (!have_total && ss.n > 0) {
        /* No record of the stream left: its output existed (the base says how much) but was rotated away. */
        stream_bytes = ss.s[0].base[stream];
        have_total = true;
    }
    size_t want = total < max_bytes ? total : max_bytes;
    char *buf = malloc(want + 1);
    if (!buf) {
        free(spans);
        segset_close(&ss);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    size_t skip = total - want, w = 0;
    for (size_t k = n; k-- > 0;) {
        span *sp = &spans[k];
        int64_t pos = sp->pos;
        uint32_t l = sp->len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        pos += (int64_t)skip;
        l -= (uint32_t)skip;
        skip = 0;
        if (pread_full(ss.s[sp->seg].fd, buf + w, l, pos) < 0) {
            free(buf);
            free(spans);
            segset_close(&ss);
            return dms_error_set_errno(err, DMS_E_IO, errno ? errno : EIO, "read capture in %s", dir);
        }
        w += l;
    }
    buf[w] = '\0';
    free(spans);
    segset_close(&ss);
    *out = buf;
    *len = w;
    *truncated = have_total && stream_bytes > w;
    return 0;
}

/* ---- reader: a log stream over the capture files ---- */

typedef struct reader {
    char *dir;
    dms_log_options opts;
    dms_watch *watch;      /* changes in dir (the process-wide inotify, watch.c) */
    int fd;                /* current file */
    ino_t ino;
    uint64_t gen;
    int64_t pos;           /* file offset of the next record */
    char *buf;             /* bytes [buf_off, buf_off + buf_len) of the current file */
    size_t buf_len, buf_cap;
    int64_t buf_off;
    bool ended;            /* saw the end marker, or history done without follow */
    bool producer_gone;    /* idle_check said so: end at the next end of data, after one more read */
    int64_t next_idle_ms;  /* monotonic time of the next idle check: per stream, not per call, so that a host
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
    return (stream == DMS_STREAM_STDOUT && !rd->opts.no_stdout) || (stream == DMS_STREAM_STDERR && !rd->opts.no_stderr);
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
    int r = segset_open(&ss, rd->dir, err);
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
            back_init(b, ss.s[i].fd);
            while (record_before(b, end, &h, &start)) {
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
                /* Continue into the older file; if it has nothing, history starts at this file's beginning. */
                start_seg = i;
                start_pos = FILE_HDR_BYTES;
            }
        }
    }
    for (int i = 0; i < ss.n; i++)
        if (i != start_seg)
            seg_close(&ss.s[i]);
    reader_set_file(rd, ss.s[start_seg].fd, ss.s[start_seg].ino, ss.s[start_seg].gen, start_pos);
    return 0;
}

/* Ensures [pos, pos+n) is in the buffer; 1 if it is, 0 if the file does not hold it (yet), negative on error. */
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
        ssize_t r = pread(rd->fd, rd->buf + rd->buf_len, rd->buf_cap - rd->buf_len, rd->buf_off + (int64_t)rd->buf_len);
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
    int r = seg_open(&cur, rd->dir, "log", err);
    if (r <= 0)
        return r;
    if (rd->fd >= 0 && cur.ino == rd->ino) {
        seg_close(&cur);
        return 0;
    }
    /* A newer file exists, but the writer may have appended to ours after we saw its end and before it rotated:
     * finish ours first (it no longer grows, so this check ends). */
    struct stat st;
    if (rd->fd >= 0 && fstat(rd->fd, &st) == 0 && valid_end(rd->fd, st.st_size) > rd->pos) {
        seg_close(&cur);
        return 1;
    }
    /* Drained an older file (log.1, or a log that was rotated under us). The file after it is log.1 if that has
     * the next generation (we were two behind), else log. */
    if (rd->fd >= 0 && cur.gen > rd->gen + 1) {
        seg old;
        if (seg_open(&old, rd->dir, "log.1", err) > 0) {
            if (old.gen == rd->gen + 1 && old.ino != rd->ino) {
                seg_close(&cur);
                reader_set_file(rd, old.fd, old.ino, old.gen, FILE_HDR_BYTES);
                return 1;
            }
            seg_close(&old);
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
                return dms_error_set(err, DMS_E_PROTOCOL, NULL, "corrupt capture file in %s at offset %lld", rd->dir,
                                     (long long)rd->pos);
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

int dms_logstore_stream_open(const char *dir, const dms_log_options *opts, dms_logstore_idle_fn idle_check, void *ud,
                             void (*ud_free)(void *), dms_log_stream **out, dms_error *err)
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
