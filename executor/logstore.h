/* logstore.h - the log store's on-disk format and what its modules share: logstore.c (the format's readers:
 * segments, info, excerpt), logstore_writer.c (the capture) and logstore_reader.c (tail/since/follow).
 * Private to those three; not installed, and nothing else includes it. The format itself is described at the
 * top of logstore.c. */
#ifndef DMS_LOGSTORE_H
#define DMS_LOGSTORE_H

#include <dms/backend.h>

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define FILE_MAGIC        "DMSLOG2\n"
#define FILE_HDR_BYTES    32
#define REC_HDR_BYTES     24
#define REC_TRAILER_BYTES 4
#define STREAM_END        0x7f
#define FLAG_PARTIAL      0x01

typedef struct rec_hdr {
    uint32_t len;
    uint8_t stream;
    uint8_t flags;
    uint16_t reserved;
    int64_t ts_ns;
    uint64_t offset;
} rec_hdr;
_Static_assert(sizeof(rec_hdr) == REC_HDR_BYTES, "record header layout");

static inline bool hdr_sane(const rec_hdr *h)
{
    return h->reserved == 0 && h->len <= DMS_LOG_LINE_MAX &&
           (h->stream == DMS_STREAM_STDOUT || h->stream == DMS_STREAM_STDERR ||
            (h->stream == STREAM_END && !h->len));
}

/* dir/name into buf; negative when it does not fit. */
int logstore_path_in(char *buf, size_t size, const char *dir, const char *name);
/* n bytes at off, or -1 (a short read is an error). */
int logstore_pread_full(int fd, void *buf, size_t n, int64_t off);

/* ---- segments: one capture file opened for reading ---- */

typedef struct seg {
    int fd;
    int64_t size; /* end of the last complete record */
    uint64_t gen;
    uint64_t base[3]; /* per stream: bytes captured before this file began */
    ino_t ino;
} seg;

/* Opens dir/name; 1 opened, 0 absent, negative error. */
int logstore_seg_open(seg *s, const char *dir, const char *name, dms_error *err);
void logstore_seg_close(seg *s);
/* Where the last complete record ends: normally the file size; after a cut-short write, found by a forward
 * scan. */
int64_t logstore_valid_end(int fd, int64_t size);

/* Backward scans (tail, excerpt, info) read through a block cache: one pread per BACK_BLOCK_BYTES instead of
 * two tiny ones per record (a sparse stream in a 100 MB capture took a second that way). */
#define BACK_BLOCK_BYTES (64 * 1024)

typedef struct back_reader {
    int fd;
    int64_t off; /* file offset of buf[0] */
    size_t len;
    char buf[BACK_BLOCK_BYTES];
} back_reader;

void logstore_back_init(back_reader *b, int fd);
/* The record ending at `end`, if a complete and consistent one does; fills *start. */
bool logstore_record_before(back_reader *b, int64_t end, rec_hdr *h, int64_t *start);

/* Both files of a capture, oldest first. n is 0, 1 or 2. */
typedef struct segset {
    seg s[2];
    int n;
} segset;

int logstore_segset_open(segset *ss, const char *dir, dms_error *err);
void logstore_segset_close(segset *ss);

#endif
