/* logstore.c - an execution's output captured to its own files, and served back with tail/since/follow.
 *
 * Why our own files: the engine's logs vanish with the container, `GET /logs` serves history at a fraction of
 * the speed of reading a file, and a follow that reads the engine races the job's end. So every byte a
 * workload writes is captured here from the first one, bounded (two files of at most file_cap bytes: `log.1`
 * and `log`) so the newest output always survives, and a follower ends exactly at the end marker the writer
 * appends.
 *
 * Format (host byte order; the files never leave the machine):
 *   file   := header record*
 *   header := "DMSLOG2\n" u64 generation u64 stdout_base u64 stderr_base
 *             (32 bytes; generation grows by one per rotation; the bases are the bytes of each stream
 * captured before this file began, so totals survive a stream whose last record was rotated away) record :=
 * u32 len, u8 stream, u8 flags, u16 0, i64 ts_ns, u64 offset, payload[len], u32 len `offset` is where the
 * payload starts within its stream (so a resumed capture knows how much it has), the trailing len lets
 * tail/excerpt walk backwards, stream END (0x7f, len 0) marks the end of the capture. Readers tolerate a
 * record cut short at the end of the file (a writer in the middle of write(2)): they stop before it and read
 * it again later.
 *
 * This file holds the format's readers the others share (segments, the backward block cache) and the two
 * one-shot reads: info (what a capture holds) and excerpt (the last bytes of a stream). The capture is
 * logstore_writer.c, the log stream (tail/since/follow) logstore_reader.c; logstore.h is what they share. */
#include "logstore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int logstore_path_in(char *buf, size_t size, const char *dir, const char *name)
{
    return dmsu_snprintf_ok(buf, size, "%s/%s", dir, name);
}

int logstore_pread_full(int fd, void *buf, size_t n, int64_t off)
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

/* ---- segments: one capture file opened for reading ---- */

void logstore_seg_close(seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

void logstore_back_init(back_reader *b, int fd)
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
            return logstore_pread_full(b->fd, dst, n, off);
        if (logstore_pread_full(b->fd, b->buf, want, start) < 0) {
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
bool logstore_record_before(back_reader *b, int64_t end, rec_hdr *h, int64_t *start)
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

/* Where the last complete record ends: normally the file size; after a cut-short write, found by a forward
 * scan. */
int64_t logstore_valid_end(int fd, int64_t size)
{
    rec_hdr h;
    int64_t s;
    back_reader b;
    logstore_back_init(&b, fd);
    if (size <= FILE_HDR_BYTES || logstore_record_before(&b, size, &h, &s))
        return size < FILE_HDR_BYTES ? FILE_HDR_BYTES : size;
    int64_t pos = FILE_HDR_BYTES;
    while (pos + REC_HDR_BYTES <= size) {
        if (logstore_pread_full(fd, &h, sizeof(h), pos) < 0 || !hdr_sane(&h))
            break;
        int64_t next = pos + REC_HDR_BYTES + h.len + REC_TRAILER_BYTES;
        if (next > size)
            break;
        pos = next;
    }
    return pos;
}

/* Opens dir/name; 1 opened, 0 absent, negative error. */
int logstore_seg_open(seg *s, const char *dir, const char *name, dms_error *err)
{
    char path[PATH_MAX];
    s->fd = -1;
    if (logstore_path_in(path, sizeof(path), dir, name) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "path too long: %.64s", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : dms_error_set_errno(err, DMS_E_IO, errno, "open %s", path);
    char hdr[FILE_HDR_BYTES];
    struct stat st;
    if (fstat(fd, &st) != 0 || logstore_pread_full(fd, hdr, sizeof(hdr), 0) < 0 ||
        memcmp(hdr, FILE_MAGIC, 8) != 0) {
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
    s->size = logstore_valid_end(fd, st.st_size);
    return 1;
}

void logstore_segset_close(segset *ss)
{
    for (int i = 0; i < ss->n; i++)
        logstore_seg_close(&ss->s[i]);
    ss->n = 0;
}

int logstore_segset_open(segset *ss, const char *dir, dms_error *err)
{
    seg old, cur;
    ss->n = 0;
    int r = logstore_seg_open(&old, dir, "log.1", err);
    if (r < 0)
        return r;
    int r2 = logstore_seg_open(&cur, dir, "log", err);
    if (r2 < 0) {
        if (r > 0)
            logstore_seg_close(&old);
        return r2;
    }
    if (r > 0 && (r2 == 0 || old.gen < cur.gen))
        ss->s[ss->n++] = old;
    else if (r > 0)
        logstore_seg_close(&old);
    if (r2 > 0)
        ss->s[ss->n++] = cur;
    return 0;
}

/* ---- info: what a capture holds ---- */

int dms_logstore_info_read(const char *dir, dms_logstore_info *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    segset ss;
    int r = logstore_segset_open(&ss, dir, err);
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
        logstore_back_init(b, ss.s[i].fd);
        while (logstore_record_before(b, end, &h, &start)) {
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
    logstore_segset_close(&ss);
    return 0;
}

/* ---- excerpt: the last bytes of one stream ---- */

/* Where one payload lies in a capture file. */
typedef struct span {
    int seg;
    int64_t pos;
    uint32_t len;
} span;

/* The spans of one stream collected walking backwards from the end, newest first. */
typedef struct excerpt_walk {
    span *spans;
    size_t n, cap;
    size_t total;          /* payload bytes the spans cover */
    uint64_t stream_bytes; /* the stream's total, from its last record */
    bool have_total;
} excerpt_walk;

/* Walks one file backwards until max_bytes are covered and the stream's last record gave its total. */
static int walk_back(const segset *ss, int i, dms_stream_type stream, size_t max_bytes, excerpt_walk *x,
                     dms_error *err)
{
    int64_t end = ss->s[i].size, start;
    rec_hdr h;
    back_reader *b = malloc(sizeof(*b));
    if (!b)
        return 1; /* as if the file had nothing more: the excerpt is what was collected */
    logstore_back_init(b, ss->s[i].fd);
    while ((x->total < max_bytes || !x->have_total) && logstore_record_before(b, end, &h, &start)) {
        end = start;
        if (h.stream != (uint8_t)stream || h.len == 0)
            continue;
        if (!x->have_total) {
            x->stream_bytes = h.offset + h.len;
            x->have_total = true;
        }
        if (x->total >= max_bytes)
            break;
        if (x->n == x->cap) {
            x->cap = x->cap ? x->cap * 2 : 64;
            span *ns = realloc(x->spans, x->cap * sizeof(*ns));
            if (!ns) {
                free(b);
                return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
            }
            x->spans = ns;
        }
        x->spans[x->n++] = (span){i, start + REC_HDR_BYTES, h.len};
        x->total += h.len;
    }
    free(b);
    return 0;
}

/* Reads the last `want` bytes the spans cover into buf, oldest first; -1 on a read error. */
static int read_spans(const segset *ss, const excerpt_walk *x, size_t want, char *buf, size_t *written)
{
    size_t skip = x->total - want, w = 0;
    for (size_t k = x->n; k-- > 0;) {
        const span *sp = &x->spans[k];
        int64_t pos = sp->pos;
        uint32_t l = sp->len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        pos += (int64_t)skip;
        l -= (uint32_t)skip;
        skip = 0;
        if (logstore_pread_full(ss->s[sp->seg].fd, buf + w, l, pos) < 0)
            return -1;
        w += l;
    }
    *written = w;
    return 0;
}

int dms_logstore_excerpt(const char *dir, dms_stream_type stream, size_t max_bytes, char **out, size_t *len,
                         bool *truncated, dms_error *err)
{
    segset ss;
    int r = logstore_segset_open(&ss, dir, err);
    if (r < 0)
        return r;
    /* Walk backwards collecting payload positions until max_bytes are covered, and at least until the
     * stream's last record gives its total. */
    excerpt_walk x = {0};
    for (int i = ss.n - 1; i >= 0 && (x.total < max_bytes || !x.have_total); i--) {
        if ((r = walk_back(&ss, i, stream, max_bytes, &x, err)) < 0) {
            free(x.spans);
            logstore_segset_close(&ss);
            return r;
        }
        if (r > 0)
            break;
    }
    if (!x.have_total && ss.n > 0) {
        /* No record of the stream left: its output existed (the base says how much) but was rotated away. */
        x.stream_bytes = ss.s[0].base[stream];
        x.have_total = true;
    }
    size_t want = x.total < max_bytes ? x.total : max_bytes;
    char *buf = malloc(want + 1);
    if (!buf) {
        free(x.spans);
        logstore_segset_close(&ss);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    size_t w = 0;
    if (read_spans(&ss, &x, want, buf, &w) < 0) {
        int e = errno ? errno : EIO; /* before close() can change it */
        free(buf);
        free(x.spans);
        logstore_segset_close(&ss);
        return dms_error_set_errno(err, DMS_E_IO, e, "read capture in %s", dir);
    }
    buf[w] = '\0';
    free(x.spans);
    logstore_segset_close(&ss);
    *out = buf;
    *len = w;
    *truncated = x.have_total && x.stream_bytes > w;
    return 0;
}
