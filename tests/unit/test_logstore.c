/* test_logstore.c - the log store: the writer (line splitting, partial frames, timestamps, flush, rotation,
 * reopen, finish), the reader (history, tail, since, stream selection, follow from a thread and from another
 * process, follow across rotation, records cut short, idle checks), excerpts and info after a crash. */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <dms/backend.h>

#include "util.h"
#include "testutil.h"

#define SLOW_TEST_TIMEOUT_S 60
#define SMALL_CAP_BYTES     (64 * 1024)
#define NEXT_TIMEOUT_MS     10000

/* ---- helpers ---- */

typedef struct fr {
    int stream;
    bool partial;
    int64_t ts;
    char *data;
    size_t len;
} fr;

typedef struct frames {
    fr *v;
    size_t n;
    bool ended; /* next() returned 0 */
} frames;

static void frames_free(frames *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].data);
    free(f->v);
    memset(f, 0, sizeof(*f));
}

static void frames_push(frames *f, const dms_log_frame *lf)
{
    f->v = realloc(f->v, (f->n + 1) * sizeof(*f->v));
    fr *x = &f->v[f->n++];
    x->stream = lf->stream;
    x->partial = lf->partial;
    x->ts = lf->ts_ns;
    x->len = lf->len;
    x->data = malloc(lf->len + 1);
    memcpy(x->data, lf->data, lf->len);
    x->data[lf->len] = '\0';
}

/* Everything a stream gives until its end (it must end: no follow, or a finished capture). */
static frames read_stream(dms_log_stream *s)
{
    frames f = {0};
    dms_log_frame lf;
    dms_error err = {0};
    int r;
    while ((r = dms_log_stream_next(s, NEXT_TIMEOUT_MS, &lf, &err)) == 1)
        frames_push(&f, &lf);
    ck_assert_msg(r == 0, "next: %d %s", r, err.message);
    f.ended = true;
    return f;
}

static frames read_dir(const char *dir, const dms_log_options *opts)
{
    dms_log_stream *s = NULL;
    dms_error err = {0};
    int r = dms_logstore_stream_open(dir, opts, NULL, NULL, NULL, &s, &err);
    ck_assert_msg(r == 0, "stream_open: %s", err.message);
    frames f = read_stream(s);
    dms_log_stream_free(s);
    return f;
}

static frames read_all(void)
{
    return read_dir(tu_dir, NULL);
}

/* The concatenated payload of one stream (0: both). Caller frees. */
static char *joined(const frames *f, int stream, size_t *len)
{
    dmsu_buf b = {0};
    dmsu_buf_append(&b, "", 0);
    for (size_t i = 0; i < f->n; i++)
        if (!stream || f->v[i].stream == stream)
            dmsu_buf_append(&b, f->v[i].data, f->v[i].len);
    if (len)
        *len = b.len;
    return b.data;
}

static dms_logstore_writer *wopen(int64_t cap)
{
    dms_logstore_writer *w = NULL;
    dms_error err = {0};
    int r = dms_logstore_writer_open(&w, tu_dir, cap, &err);
    ck_assert_msg(r == 0, "writer_open: %s", err.message);
    return w;
}

static void wr(dms_logstore_writer *w, int stream, int64_t ts, const char *s)
{
    dms_error err = {0};
    int r = dms_logstore_write(w, stream, ts, s, strlen(s), &err);
    ck_assert_msg(r == 0, "write: %s", err.message);
}

static void flush(dms_logstore_writer *w)
{
    ck_assert_int_eq(dms_logstore_flush(w, NULL), 0);
}

static void finish(dms_logstore_writer *w)
{
    dms_error err = {0};
    int r = dms_logstore_finish(w, &err);
    ck_assert_msg(r == 0, "finish: %s", err.message);
}

static char *path_of(const char *name)
{
    return dmsu_strdup_printf("%s/%s", tu_dir, name);
}

static off_t file_size(const char *name)
{
    char *p = path_of(name);
    struct stat st;
    int r = stat(p, &st);
    free(p);
    return r == 0 ? st.st_size : -1;
}

/* Names in the capture dir, other than . and .., as "a,b" sorted. */
static char *dir_listing(void)
{
    DIR *d = opendir(tu_dir);
    char **names = NULL;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            dmsu_strv_push(&names, de->d_name);
    closedir(d);
    size_t n = dmsu_strv_len(names);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    dmsu_buf b = {0};
    dmsu_buf_append(&b, "", 0);
    for (size_t i = 0; i < n; i++)
        dmsu_buf_printf(&b, "%s%s", i ? "," : "", names[i]);
    dmsu_strv_free(names);
    return b.data;
}

/* Writes numbered stdout lines "line NNNNNN <pad>\n" from first to last (inclusive), flushing every
 * flush_every. */
static void write_numbered(dms_logstore_writer *w, int first, int last, int flush_every, size_t pad)
{
    char line[512];
    char padding[400];
    memset(padding, 'x', pad);
    padding[pad] = '\0';
    for (int i = first; i <= last; i++) {
        snprintf(line, sizeof(line), "line %06d %s\n", i, padding);
        wr(w, DMS_STREAM_STDOUT, 0, line);
        if (flush_every && (i - first + 1) % flush_every == 0)
            flush(w);
    }
}

/* Reads n from a frame "line <n>..." into *k; false (and *k untouched) when the frame is not one. */
static bool line_number(const char *data, int *k)
{
    if (strncmp(data, "line", 4) != 0)
        return false;
    char *end = NULL;
    long n = strtol(data + 4, &end, 10);
    if (end == data + 4)
        return false;
    *k = (int)n;
    return true;
}

/* Asserts the frames are whole numbered lines, consecutive, ending at last; returns the first number. */
static int assert_consecutive(const frames *f, int last)
{
    ck_assert_uint_gt(f->n, 0);
    int first = -1, prev = -1;
    for (size_t i = 0; i < f->n; i++) {
        int k = -1;
        ck_assert_msg(line_number(f->v[i].data, &k), "frame %zu: %s", i, f->v[i].data);
        ck_assert(!f->v[i].partial);
        if (first < 0)
            first = k;
        else
            ck_assert_msg(k == prev + 1, "line %d follows %d", k, prev);
        prev = k;
    }
    ck_assert_int_eq(prev, last);
    return first;
}

/* ---- the writer ---- */

START_TEST(test_logstore_writer_splits_chunks_into_lines)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "a\nb");
    wr(w, DMS_STREAM_STDOUT, 0, "b\ncc");
    wr(w, DMS_STREAM_STDERR, 0, "E1\nE2\n");
    wr(w, DMS_STREAM_STDOUT, 0, "c");
    flush(w);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 4); /* "ccc" is still an open line */
    ck_assert_str_eq(f.v[0].data, "a\n");
    ck_assert_str_eq(f.v[1].data, "bb\n");
    ck_assert_int_eq(f.v[1].stream, DMS_STREAM_STDOUT);
    ck_assert_str_eq(f.v[2].data, "E1\n");
    ck_assert_int_eq(f.v[2].stream, DMS_STREAM_STDERR);
    ck_assert_str_eq(f.v[3].data, "E2\n");
    for (size_t i = 0; i < f.n; i++)
        ck_assert(!f.v[i].partial);
    frames_free(&f);
    ck_assert_uint_eq(dms_logstore_bytes(w, DMS_STREAM_STDOUT), 8);
    ck_assert_uint_eq(dms_logstore_bytes(w, DMS_STREAM_STDERR), 6);
    finish(w);
    f = read_all();
    ck_assert_uint_eq(f.n, 5);
    ck_assert_str_eq(f.v[4].data, "ccc");
    ck_assert(!f.v[4].partial);
    frames_free(&f);
    dms_logstore_writer_free(w);
}
END_TEST

START_TEST(test_logstore_long_lines_become_partial_frames)
{
    enum { LONG = 2 * DMS_LOG_LINE_MAX + 1000 };
    char *line = malloc(LONG + 1);
    for (size_t i = 0; i < LONG; i++)
        line[i] = (char)('a' + i % 26);
    line[LONG - 1] = '\n';
    line[LONG] = '\0';
    dms_logstore_writer *w = wopen(0);
    /* Fed in odd-sized chunks, as a pipe would deliver it. */
    for (size_t off = 0; off < LONG;) {
        size_t n = LONG - off < 777 ? LONG - off : 777;
        ck_assert_int_eq(dms_logstore_write(w, DMS_STREAM_STDOUT, 0, line + off, n, NULL), 0);
        off += n;
    }
    /* And the same line as one already-delimited frame. */
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDERR, 0, false, line, LONG, NULL), 0);
    finish(w);
    dms_logstore_writer_free(w);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 6);
    for (int s = 0; s < 2; s++) {
        fr *x = &f.v[s * 3];
        ck_assert_int_eq(x[0].stream, s == 0 ? DMS_STREAM_STDOUT : DMS_STREAM_STDERR);
        ck_assert_uint_eq(x[0].len, DMS_LOG_LINE_MAX);
        ck_assert(x[0].partial);
        ck_assert_uint_eq(x[1].len, DMS_LOG_LINE_MAX);
        ck_assert(x[1].partial);
        ck_assert_uint_eq(x[2].len, 1000);
        ck_assert(!x[2].partial);
    }
    size_t n = 0;
    char *out = joined(&f, DMS_STREAM_STDOUT, &n);
    ck_assert_uint_eq(n, LONG);
    ck_assert_mem_eq(out, line, LONG);
    free(out);
    out = joined(&f, DMS_STREAM_STDERR, &n);
    ck_assert_uint_eq(n, LONG);
    ck_assert_mem_eq(out, line, LONG);
    free(out);
    frames_free(&f);
    free(line);
}
END_TEST

START_TEST(test_logstore_line_of_exactly_the_frame_limit_is_one_frame)
{
    char *line = malloc(DMS_LOG_LINE_MAX + 1);
    memset(line, 'z', DMS_LOG_LINE_MAX);
    line[DMS_LOG_LINE_MAX - 1] = '\n';
    line[DMS_LOG_LINE_MAX] = '\0';
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "q");
    wr(w, DMS_STREAM_STDOUT, 0, line + 1); /* completes a pending line of exactly the limit */
    wr(w, DMS_STREAM_STDOUT, 0, line);     /* a whole line of exactly the limit */
    finish(w);
    dms_logstore_writer_free(w);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 2);
    ck_assert_uint_eq(f.v[0].len, DMS_LOG_LINE_MAX);
    ck_assert(!f.v[0].partial);
    ck_assert_int_eq(f.v[0].data[0], 'q');
    ck_assert_uint_eq(f.v[1].len, DMS_LOG_LINE_MAX);
    ck_assert(!f.v[1].partial);
    frames_free(&f);
    free(line);
}
END_TEST

START_TEST(test_logstore_timestamps_strictly_increase_even_when_given_equal_or_decreasing_ts)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 1000, "a\n");
    wr(w, DMS_STREAM_STDERR, 1000, "b\n");
    wr(w, DMS_STREAM_STDOUT, 500, "c\n");
    wr(w, DMS_STREAM_STDOUT, 5000, "d\ne\n");
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, 10, false, "f\n", 2, NULL), 0);
    ck_assert_int_eq(dms_logstore_last_ts(w), 5002);
    finish(w);
    dms_logstore_writer_free(w);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 6);
    const int64_t want[] = {1000, 1001, 1002, 5000, 5001, 5002};
    for (size_t i = 0; i < f.n; i++)
        ck_assert_int_eq(f.v[i].ts, want[i]);
    frames_free(&f);
    /* ts 0 means now. */
    dms_rm_rf(tu_dir, NULL);
    mkdir(tu_dir, 0700);
    int64_t before = dms_now_ns();
    w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "now\n");
    finish(w);
    dms_logstore_writer_free(w);
    f = read_all();
    ck_assert_int_ge(f.v[0].ts, before);
    ck_assert_int_le(f.v[0].ts, dms_now_ns());
    frames_free(&f);
}
END_TEST

START_TEST(test_logstore_lines_are_visible_after_flush)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "hello\n");
    frames f = read_all();
    ck_assert_uint_eq(f.n, 0); /* buffered */
    frames_free(&f);
    flush(w);
    f = read_all();
    ck_assert_uint_eq(f.n, 1);
    ck_assert_str_eq(f.v[0].data, "hello\n");
    frames_free(&f);
    flush(w); /* nothing pending: a no-op */
    dms_logstore_writer_free(w);
}
END_TEST

START_TEST(test_logstore_rotation_keeps_the_newest_output_in_at_most_two_files)
{
    enum { LINES = 6000, PAD = 80 };
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1, LINES, 7, PAD);
    finish(w);
    uint64_t total = dms_logstore_bytes(w, DMS_STREAM_STDOUT);
    dms_logstore_writer_free(w);
    char *names = dir_listing();
    ck_assert_str_eq(names, "log,log.1");
    free(names);
    ck_assert_int_le(file_size("log"), SMALL_CAP_BYTES);
    ck_assert_int_le(file_size("log.1"), SMALL_CAP_BYTES);
    frames f = read_all();
    int first = assert_consecutive(&f, LINES);
    ck_assert_int_gt(first, 1); /* the oldest output went */
    /* Two files of 64 KiB hold more than one file's worth of the newest lines. */
    ck_assert_uint_gt(f.n, SMALL_CAP_BYTES / (PAD + 13 + 28));
    frames_free(&f);
    dms_logstore_info info;
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert(info.exists);
    ck_assert(info.finished);
    ck_assert_uint_eq(info.stdout_bytes, total); /* offsets count what was written, not what was kept */
    ck_assert_uint_eq(info.stderr_bytes, 0);
}
END_TEST

START_TEST(test_logstore_capture_files_are_private_whatever_the_umask)
{
    mode_t old = umask(0);
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1, 3000, 7, 80); /* enough to rotate: log.1 is made by the writer too */
    finish(w);
    dms_logstore_writer_free(w);
    umask(old);
    const char *names[] = {"log", "log.1"};
    for (size_t i = 0; i < 2; i++) {
        char *p = path_of(names[i]);
        struct stat st;
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_msg((st.st_mode & 07777) == 0600, "%s is %o", names[i], st.st_mode & 07777);
        free(p);
    }
}
END_TEST

START_TEST(test_logstore_reopen_continues_offsets_and_timestamps)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 1000, "one\n");
    wr(w, DMS_STREAM_STDERR, 2000, "err\n");
    dms_logstore_writer_free(w); /* flushes, does not finish: a restart of the producer */
    dms_logstore_info info;
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert(info.exists);
    ck_assert(!info.finished);
    ck_assert_uint_eq(info.stdout_bytes, 4);
    ck_assert_uint_eq(info.stderr_bytes, 4);
    ck_assert_int_eq(info.last_ts_ns, 2000);
    w = wopen(0);
    ck_assert_uint_eq(dms_logstore_bytes(w, DMS_STREAM_STDOUT), 4);
    ck_assert_int_eq(dms_logstore_last_ts(w), 2000);
    wr(w, DMS_STREAM_STDOUT, 1500, "two\n"); /* an earlier clock must not go back in time */
    finish(w);
    dms_logstore_writer_free(w);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 3);
    ck_assert_str_eq(f.v[2].data, "two\n");
    ck_assert_int_eq(f.v[2].ts, 2001);
    frames_free(&f);
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert_uint_eq(info.stdout_bytes, 8);
    ck_assert(info.finished);
}
END_TEST

START_TEST(test_logstore_finish_flushes_a_pending_partial_line_and_ends_the_capture)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "full\nno newline");
    wr(w, DMS_STREAM_STDERR, 0, "err tail");
    finish(w);
    finish(w); /* idempotent */
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_write(w, DMS_STREAM_STDOUT, 0, "x\n", 2, &err), -DMS_E_INVALID);
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, 0, false, "x\n", 2, &err),
                     -DMS_E_INVALID);
    dms_logstore_writer_free(w);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 3);
    ck_assert_str_eq(f.v[1].data, "no newline");
    ck_assert(!f.v[1].partial);
    ck_assert_str_eq(f.v[2].data, "err tail");
    frames_free(&f);
    dms_logstore_writer *w2 = NULL;
    ck_assert_int_eq(dms_logstore_writer_open(&w2, tu_dir, 0, &err), -DMS_E_ALREADY_COMPLETE);
    ck_assert_ptr_nonnull(strstr(err.message, tu_dir));
}
END_TEST

/* A producer that restarts mid-line (writer freed with a line still open) must not lose the start of the
 * line. */
START_TEST(test_logstore_writer_free_keeps_a_pending_partial_line)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "done\nabc");
    ck_assert_uint_eq(dms_logstore_bytes(w, DMS_STREAM_STDOUT), 8);
    dms_logstore_writer_free(w);
    dms_logstore_info info;
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert_uint_eq(info.stdout_bytes, 8);
    w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "def\n");
    finish(w);
    dms_logstore_writer_free(w);
    frames f = read_all();
    char *all = joined(&f, DMS_STREAM_STDOUT, NULL);
    ck_assert_str_eq(all, "done\nabcdef\n");
    free(all);
    ck_assert_uint_eq(f.n, 3);
    ck_assert(f.v[1].partial); /* "abc" continues in the next frame */
    ck_assert(!f.v[2].partial);
    frames_free(&f);
}
END_TEST

/* A crash between rotate's rename (log -> log.1) and the creation of the new log leaves only log.1. The next
 * writer must continue after it, not start a generation that hides it. */
START_TEST(test_logstore_reopen_after_crash_mid_rotation_keeps_the_old_file)
{
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1, 1200, 10, 40);
    dms_logstore_writer_free(w);
    ck_assert_int_ge(file_size("log.1"), 0); /* it rotated at least once */
    char *cur = path_of("log"), *old = path_of("log.1");
    ck_assert_int_eq(rename(cur, old), 0);
    free(cur);
    free(old);
    w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1201, 1210, 1, 40);
    finish(w);
    dms_logstore_writer_free(w);
    frames f = read_all();
    int first = assert_consecutive(&f, 1210);
    ck_assert_int_lt(first, 1201);
    frames_free(&f);
}
END_TEST

START_TEST(test_logstore_writer_refuses_bad_streams)
{
    dms_logstore_writer *w = wopen(0);
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_write(w, (dms_stream_type)3, 0, "x", 1, &err), -DMS_E_INVALID);
    ck_assert_int_eq(dms_logstore_write_frame(w, (dms_stream_type)0, 0, false, "x", 1, &err), -DMS_E_INVALID);
    ck_assert_uint_eq(dms_logstore_bytes(w, (dms_stream_type)7), 0);
    dms_logstore_writer_free(w);
    dms_logstore_writer_free(NULL);
}
END_TEST

/* ---- the reader: history ---- */

/* 5 stdout lines o1..o5 (ts 100..500) interleaved with 3 stderr lines e1..e3 (ts 150, 250, 350). */
static void write_mixed(void)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 100, "o1\n");
    wr(w, DMS_STREAM_STDERR, 150, "e1\n");
    wr(w, DMS_STREAM_STDOUT, 200, "o2\n");
    wr(w, DMS_STREAM_STDERR, 250, "e2\n");
    wr(w, DMS_STREAM_STDOUT, 300, "o3\n");
    wr(w, DMS_STREAM_STDERR, 350, "e3\n");
    wr(w, DMS_STREAM_STDOUT, 400, "o4\n");
    wr(w, DMS_STREAM_STDOUT, 500, "o5\n");
    finish(w);
    dms_logstore_writer_free(w);
}

static char *text_with(dms_log_options o)
{
    frames f = read_dir(tu_dir, &o);
    char *s = joined(&f, 0, NULL);
    frames_free(&f);
    return s;
}

#define ASSERT_TEXT(opts, want)                                                                              \
    do {                                                                                                     \
        char *got_ = text_with(opts);                                                                        \
        ck_assert_str_eq(got_, want);                                                                        \
        free(got_);                                                                                          \
    } while (0)

START_TEST(test_logstore_history_all_in_order)
{
    write_mixed();
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    ASSERT_TEXT(o, "o1\ne1\no2\ne2\no3\ne3\no4\no5\n");
}
END_TEST

START_TEST(test_logstore_tail_counts_selected_lines)
{
    write_mixed();
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.tail_lines = 0;
    ASSERT_TEXT(o, "");
    o.tail_lines = 1;
    ASSERT_TEXT(o, "o5\n");
    o.tail_lines = 3;
    ASSERT_TEXT(o, "e3\no4\no5\n");
    o.tail_lines = 8;
    ASSERT_TEXT(o, "o1\ne1\no2\ne2\no3\ne3\no4\no5\n");
    o.tail_lines = 1000;
    ASSERT_TEXT(o, "o1\ne1\no2\ne2\no3\ne3\no4\no5\n");
    o.tail_lines = 2;
    o.no_stdout = true;
    ASSERT_TEXT(o, "e2\ne3\n");
    o.no_stdout = false;
    o.no_stderr = true;
    o.tail_lines = 4;
    ASSERT_TEXT(o, "o2\no3\no4\no5\n");
}
END_TEST

START_TEST(test_logstore_since_and_stream_selection)
{
    write_mixed();
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.since_ns = 300;
    ASSERT_TEXT(o, "o3\ne3\no4\no5\n");
    o.since_ns = 301;
    ASSERT_TEXT(o, "e3\no4\no5\n");
    o.since_ns = 501;
    ASSERT_TEXT(o, "");
    o.since_ns = 0;
    o.no_stdout = true;
    ASSERT_TEXT(o, "e1\ne2\ne3\n");
    o.no_stdout = false;
    o.no_stderr = true;
    ASSERT_TEXT(o, "o1\no2\no3\no4\no5\n");
    o.since_ns = 250;
    o.tail_lines = 10;
    ASSERT_TEXT(o, "o3\no4\no5\n");
    o.tail_lines = 1;
    o.no_stderr = false;
    o.since_ns = 350;
    ASSERT_TEXT(o, "o5\n");
}
END_TEST

START_TEST(test_logstore_tail_spans_log_1_and_log)
{
    enum { LINES = 2500 };
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1, LINES, 5, 40);
    finish(w);
    dms_logstore_writer_free(w);
    ck_assert_int_ge(file_size("log.1"), 0);
    /* How many lines the two files hold together. */
    dms_log_options all = DMS_LOG_OPTIONS_INIT;
    frames f = read_dir(tu_dir, &all);
    int first = assert_consecutive(&f, LINES);
    size_t held = f.n;
    frames_free(&f);
    /* More lines than one file holds (record: 28 bytes of framing + 53 of line), so both files contribute. */
    ck_assert_uint_gt(held, SMALL_CAP_BYTES / (28 + 53));
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.tail_lines = (int64_t)held - 10;
    f = read_dir(tu_dir, &o);
    ck_assert_uint_eq(f.n, held - 10);
    ck_assert_int_eq(assert_consecutive(&f, LINES), first + 10);
    frames_free(&f);
    o.tail_lines = (int64_t)held - 1;
    f = read_dir(tu_dir, &o);
    ck_assert_uint_eq(f.n, held - 1);
    ck_assert_int_eq(assert_consecutive(&f, LINES), first + 1);
    frames_free(&f);
    o.tail_lines = (int64_t)held + 50;
    f = read_dir(tu_dir, &o);
    ck_assert_uint_eq(f.n, held);
    frames_free(&f);
    o.tail_lines = 0;
    f = read_dir(tu_dir, &o);
    ck_assert_uint_eq(f.n, 0);
    frames_free(&f);
}
END_TEST

START_TEST(test_logstore_tail_keeps_every_partial_frame_of_the_last_line)
{
    enum { LONG = DMS_LOG_LINE_MAX * 2 + 10 };
    char *big = malloc(LONG + 1);
    memset(big, 'b', LONG);
    big[LONG - 1] = '\n';
    big[LONG] = '\0';
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "before\n");
    wr(w, DMS_STREAM_STDOUT, 0, big);
    finish(w);
    dms_logstore_writer_free(w);
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.tail_lines = 1;
    frames f = read_dir(tu_dir, &o);
    ck_assert_uint_eq(f.n, 3);
    size_t n;
    char *s = joined(&f, 0, &n);
    ck_assert_uint_eq(n, LONG);
    ck_assert_mem_eq(s, big, LONG);
    free(s);
    frames_free(&f);
    free(big);
}
END_TEST

START_TEST(test_logstore_stream_open_errors_and_empty_capture)
{
    dms_log_stream *s = NULL;
    dms_error err = {0};
    char *missing = path_of("none");
    ck_assert_int_eq(dms_logstore_stream_open(missing, NULL, NULL, NULL, NULL, &s, &err), -DMS_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err.message, missing));
    free(missing);
    /* A directory with nothing captured yet: history is empty. */
    frames f = read_all();
    ck_assert_uint_eq(f.n, 0);
    frames_free(&f);
    dms_logstore_info info;
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert(!info.exists);
    ck_assert(!info.finished);
}
END_TEST

/* ---- the reader: follow ---- */

typedef struct producer {
    char dir[PATH_MAX];
    int first, last;
    int delay_us;
    int64_t cap;
    atomic_int *consumed; /* if set: stay at most `lead` lines ahead of the reader */
    int lead;
} producer;

static void produce(const producer *p)
{
    dms_logstore_writer *w = NULL;
    if (dms_logstore_writer_open(&w, p->dir, p->cap, NULL) < 0)
        return;
    char line[64];
    for (int i = p->first; i <= p->last; i++) {
        while (p->consumed && i - atomic_load(p->consumed) > p->lead)
            usleep(50);
        snprintf(line, sizeof(line), "line %06d\n", i);
        dms_logstore_write(w, DMS_STREAM_STDOUT, 0, line, strlen(line), NULL);
        dms_logstore_flush(w, NULL);
        if (p->delay_us)
            usleep(p->delay_us);
    }
    dms_logstore_finish(w, NULL);
    dms_logstore_writer_free(w);
}

static void *produce_thread(void *arg)
{
    produce(arg);
    return NULL;
}

static dms_log_stream *open_follow(dms_log_options *o)
{
    dms_log_stream *s = NULL;
    dms_error err = {0};
    o->follow = true;
    int r = dms_logstore_stream_open(tu_dir, o, NULL, NULL, NULL, &s, &err);
    ck_assert_msg(r == 0, "stream_open: %s", err.message);
    return s;
}

START_TEST(test_logstore_follow_receives_lines_from_a_thread_and_ends_at_finish)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "line 000000\n");
    flush(w);
    dms_logstore_writer_free(w);
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    dms_log_stream *s = open_follow(&o);
    /* Nothing more yet: a short wait times out and the stream stays usable. */
    dms_log_frame lf;
    dms_error err = {0};
    ck_assert_int_eq(dms_log_stream_next(s, NEXT_TIMEOUT_MS, &lf, &err), 1);
    ck_assert_int_eq(dms_log_stream_next(s, 100, &lf, &err), -DMS_E_TIMEOUT);
    producer p = {.first = 1, .last = 200, .delay_us = 500};
    snprintf(p.dir, sizeof(p.dir), "%s", tu_dir);
    pthread_t th;
    pthread_create(&th, NULL, produce_thread, &p);
    frames f = read_stream(s);
    pthread_join(th, NULL);
    assert_consecutive(&f, 200);
    ck_assert_uint_eq(f.n, 200);
    frames_free(&f);
    /* Ended: further calls keep saying so. */
    ck_assert_int_eq(dms_log_stream_next(s, 0, &lf, &err), 0);
    dms_log_stream_free(s);
}
END_TEST

START_TEST(test_logstore_follow_receives_lines_from_another_process)
{
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    dms_log_stream *s = open_follow(&o); /* before the capture exists at all */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dms_log_stream_free(s); /* the child's copy; the parent keeps reading its own */
        producer p = {.first = 1, .last = 300, .delay_us = 200};
        snprintf(p.dir, sizeof(p.dir), "%s", tu_dir);
        usleep(50 * 1000);
        produce(&p);
        _exit(0);
    }
    frames f = read_stream(s);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ck_assert_int_eq(assert_consecutive(&f, 300), 1);
    frames_free(&f);
    dms_log_stream_free(s);
}
END_TEST

START_TEST(test_logstore_follow_fd_is_readable_when_output_arrives)
{
    dms_logstore_writer *w = wopen(0);
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    dms_log_stream *s = open_follow(&o);
    dms_log_frame lf;
    ck_assert_int_eq(dms_log_stream_next(s, 0, &lf, NULL), -DMS_E_TIMEOUT);
    int fd = dms_log_stream_fd(s);
    ck_assert_int_ge(fd, 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 0), 0);
    wr(w, DMS_STREAM_STDERR, 0, "wake\n");
    flush(w);
    ck_assert_int_eq(poll(&p, 1, 5000), 1);
    ck_assert_int_eq(dms_log_stream_next(s, 0, &lf, NULL), 1);
    ck_assert_int_eq(lf.stream, DMS_STREAM_STDERR);
    ck_assert_uint_eq(lf.len, 5);
    ck_assert_mem_eq(lf.data, "wake\n", 5);
    dms_logstore_writer_free(w);
    dms_log_stream_free(s);
}
END_TEST

/* The reader keeps up (the writer is never more than LEAD lines, less than one file, ahead), so it spends its
 * time at or near the end of the live file, and each of the ~25 rotations happens under it: nothing may be
 * skipped or repeated when it moves on to the new file. */
START_TEST(test_logstore_follow_across_rotation_loses_nothing_when_the_reader_keeps_up)
{
    enum { LINES = 40000, LEAD = 1000 };
    atomic_int consumed = 0;
    producer p = {.first = 1, .last = LINES, .cap = SMALL_CAP_BYTES, .consumed = &consumed, .lead = LEAD};
    snprintf(p.dir, sizeof(p.dir), "%s", tu_dir);
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    dms_log_stream *s = open_follow(&o);
    pthread_t th;
    pthread_create(&th, NULL, produce_thread, &p);
    dms_log_frame lf;
    dms_error err = {0};
    int r, prev = 0;
    while ((r = dms_log_stream_next(s, NEXT_TIMEOUT_MS, &lf, &err)) == 1) {
        int k = -1;
        if (!line_number(lf.data, &k) || k != prev + 1)
            break;
        prev = k;
        atomic_store(&consumed, k);
    }
    atomic_store(&consumed, LINES); /* release the writer whatever happened */
    pthread_join(th, NULL);
    dms_log_stream_free(s);
    ck_assert_msg(prev == LINES, "after line %d the reader got something else (r=%d, %s)", prev, r,
                  err.message);
    ck_assert_int_eq(r, 0);
}
END_TEST

/* A record cut short at the end of the file (a writer in the middle of write(2)) is not returned until
 * complete. */
START_TEST(test_logstore_record_cut_short_is_not_returned_until_completed)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 100, "whole\n");
    flush(w);
    dms_logstore_writer_free(w);
    /* The documented record layout: u32 len, u8 stream, u8 flags, u16 0, i64 ts, u64 offset, payload, u32
     * len. */
    const char payload[] = "second line\n";
    uint32_t len = sizeof(payload) - 1;
    unsigned char rec[24 + sizeof(payload) - 1 + 4];
    memset(rec, 0, sizeof(rec));
    uint8_t stream = DMS_STREAM_STDOUT;
    int64_t ts = 200;
    uint64_t offset = 6;
    memcpy(rec, &len, 4);
    memcpy(rec + 4, &stream, 1);
    memcpy(rec + 8, &ts, 8);
    memcpy(rec + 16, &offset, 8);
    memcpy(rec + 24, payload, len);
    memcpy(rec + 24 + len, &len, 4);
    char *logp = path_of("log");
    int fd = open(logp, O_WRONLY | O_APPEND);
    free(logp);
    ck_assert_int_ge(fd, 0);
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    dms_log_stream *s = open_follow(&o);
    dms_log_frame lf;
    ck_assert_int_eq(dms_log_stream_next(s, NEXT_TIMEOUT_MS, &lf, NULL), 1);
    ck_assert_mem_eq(lf.data, "whole\n", 6);
    size_t cuts[] = {10, 24, 30, sizeof(rec) - 1};
    size_t done = 0;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(cuts); i++) {
        ck_assert_int_eq(write(fd, rec + done, cuts[i] - done), (ssize_t)(cuts[i] - done));
        done = cuts[i];
        ck_assert_int_eq(dms_log_stream_next(s, 50, &lf, NULL), -DMS_E_TIMEOUT);
        frames h = read_all(); /* a history reader stops before it too */
        ck_assert_uint_eq(h.n, 1);
        frames_free(&h);
        dms_logstore_info info;
        ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
        ck_assert_uint_eq(info.stdout_bytes, 6);
    }
    ck_assert_int_eq(write(fd, rec + done, sizeof(rec) - done), (ssize_t)(sizeof(rec) - done));
    close(fd);
    ck_assert_int_eq(dms_log_stream_next(s, NEXT_TIMEOUT_MS, &lf, NULL), 1);
    ck_assert_uint_eq(lf.len, len);
    ck_assert_mem_eq(lf.data, payload, len);
    ck_assert_int_eq(lf.ts_ns, 200);
    dms_log_stream_free(s);
}
END_TEST

/* ---- idle checks ---- */

typedef struct idle_state {
    int calls;
    dms_logstore_writer *w; /* if set: the producer's last words, written just before it is found gone */
    int *freed;
} idle_state;

static bool idle_gone(void *ud)
{
    idle_state *st = ud;
    st->calls++;
    if (st->w) {
        dms_logstore_write(st->w, DMS_STREAM_STDOUT, 0, "last words\n", 11, NULL);
        dms_logstore_flush(st->w, NULL);
    }
    return true;
}

static bool idle_alive(void *ud)
{
    ((idle_state *)ud)->calls++;
    return false;
}

static void idle_free(void *ud)
{
    (*((idle_state *)ud)->freed)++;
}

START_TEST(test_logstore_idle_check_ends_a_follow)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "hi\n");
    flush(w);
    int freed = 0;
    idle_state st = {.freed = &freed};
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.follow = true;
    dms_log_stream *s = NULL;
    ck_assert_int_eq(dms_logstore_stream_open(tu_dir, &o, idle_gone, &st, idle_free, &s, NULL), 0);
    int64_t t0 = dms_mono_ms();
    frames f = read_stream(s);
    int64_t took = dms_mono_ms() - t0;
    ck_assert_uint_eq(f.n, 1);
    ck_assert_int_ge(st.calls, 1);
    ck_assert_int_lt(took, 3000);
    frames_free(&f);
    dms_log_stream_free(s);
    ck_assert_int_eq(freed, 1);
    dms_logstore_writer_free(w);
}
END_TEST

START_TEST(test_logstore_idle_check_keeps_a_follow_while_alive)
{
    int freed = 0;
    idle_state st = {.freed = &freed};
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.follow = true;
    dms_log_stream *s = NULL;
    ck_assert_int_eq(dms_logstore_stream_open(tu_dir, &o, idle_alive, &st, idle_free, &s, NULL), 0);
    dms_log_frame lf;
    ck_assert_int_eq(dms_log_stream_next(s, 2500, &lf, NULL), -DMS_E_TIMEOUT);
    ck_assert_int_ge(st.calls, 1);
    dms_log_stream_free(s);
    ck_assert_int_eq(freed, 1);
}
END_TEST

/* A host that polls the stream's fd and calls next() with short timeouts must still get the idle check about
 * once a second; counting from the start of each call, it never would. */
START_TEST(test_logstore_idle_check_runs_across_short_next_calls)
{
    int freed = 0;
    idle_state st = {.freed = &freed};
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.follow = true;
    dms_log_stream *s = NULL;
    ck_assert_int_eq(dms_logstore_stream_open(tu_dir, &o, idle_gone, &st, idle_free, &s, NULL), 0);
    dms_log_frame lf;
    int r = -DMS_E_TIMEOUT;
    int64_t t0 = dms_mono_ms();
    while (r == -DMS_E_TIMEOUT && dms_mono_ms() - t0 < 5000)
        r = dms_log_stream_next(s, 200, &lf, NULL);
    ck_assert_int_eq(r, 0);
    ck_assert_int_lt(dms_mono_ms() - t0, 3000);
    dms_log_stream_free(s);
}
END_TEST

/* Output written just before the producer is found gone must still be delivered before the stream ends. */
START_TEST(test_logstore_idle_check_end_still_delivers_output_written_before_it)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "first\n");
    flush(w);
    int freed = 0;
    idle_state st = {.freed = &freed, .w = w};
    dms_log_options o = DMS_LOG_OPTIONS_INIT;
    o.follow = true;
    dms_log_stream *s = NULL;
    ck_assert_int_eq(dms_logstore_stream_open(tu_dir, &o, idle_gone, &st, idle_free, &s, NULL), 0);
    frames f = read_stream(s);
    dms_log_stream_free(s);
    dms_logstore_writer_free(w);
    ck_assert_uint_eq(f.n, 2);
    ck_assert_str_eq(f.v[0].data, "first\n");
    ck_assert_str_eq(f.v[1].data, "last words\n");
    frames_free(&f);
}
END_TEST

/* ---- excerpts and info ---- */

START_TEST(test_logstore_excerpt_last_bytes_across_files_with_truncated_flag)
{
    enum { LINES = 1000 };
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    dmsu_buf all = {0};
    char line[128];
    for (int i = 1; i <= LINES; i++) {
        snprintf(line, sizeof(line), "out %04d %s\n", i,
                 "0123456789012345678901234567890123456789012345678901234567");
        wr(w, DMS_STREAM_STDOUT, 0, line);
        dmsu_buf_append(&all, line, strlen(line));
        if (i % 100 == 0)
            wr(w, DMS_STREAM_STDERR, 0, "err\n");
        if (i % 10 == 0)
            flush(w);
    }
    finish(w);
    dms_logstore_writer_free(w);
    ck_assert_int_gt(file_size("log.1"), 0);
    ck_assert_uint_lt(all.len, 2 * SMALL_CAP_BYTES - 20000); /* nothing rotated away */
    char *out = NULL;
    size_t len = 0;
    bool trunc = false;
    /* Within the newest file. */
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDOUT, 100, &out, &len, &trunc, NULL), 0);
    ck_assert_uint_eq(len, 100);
    ck_assert_mem_eq(out, all.data + all.len - 100, 100);
    ck_assert_int_eq(out[len], '\0');
    ck_assert(trunc);
    free(out);
    /* Across log.1 and log. */
    size_t want = all.len - 1000;
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDOUT, want, &out, &len, &trunc, NULL), 0);
    ck_assert_uint_eq(len, want);
    ck_assert_mem_eq(out, all.data + 1000, want);
    ck_assert(trunc);
    free(out);
    /* All of it. */
    ck_assert_int_eq(
        dms_logstore_excerpt(tu_dir, DMS_STREAM_STDOUT, all.len + 5000, &out, &len, &trunc, NULL), 0);
    ck_assert_uint_eq(len, all.len);
    ck_assert_mem_eq(out, all.data, all.len);
    ck_assert(!trunc);
    free(out);
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDERR, 1 << 20, &out, &len, &trunc, NULL), 0);
    ck_assert_uint_eq(len, 40);
    ck_assert(!trunc);
    free(out);
    dmsu_buf_free(&all);
}
END_TEST

START_TEST(test_logstore_excerpt_after_rotation_lost_output_is_truncated)
{
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1, 5000, 10, 40);
    finish(w);
    uint64_t total = dms_logstore_bytes(w, DMS_STREAM_STDOUT);
    dms_logstore_writer_free(w);
    char *out = NULL;
    size_t len = 0;
    bool trunc = false;
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDOUT, total, &out, &len, &trunc, NULL), 0);
    ck_assert_uint_lt(len, total);
    ck_assert(trunc);
    ck_assert_mem_eq(out + len - 53, "line 005000 ", 12); /* the last line: 12 + 40 pad + newline */
    free(out);
    /* An empty capture: nothing, not truncated. */
    dms_rm_rf(tu_dir, NULL);
    mkdir(tu_dir, 0700);
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDOUT, 10, &out, &len, &trunc, NULL), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
    ck_assert(!trunc);
    free(out);
}
END_TEST

START_TEST(test_logstore_info_and_reopen_after_crash_like_truncation)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 100, "aaaa\n");
    wr(w, DMS_STREAM_STDERR, 200, "bb\n");
    wr(w, DMS_STREAM_STDOUT, 300, "cccccccc\n");
    flush(w);
    dms_logstore_writer_free(w);
    off_t full = file_size("log");
    /* Cut the last record in its payload: the crash of a writer in the middle of write(2). */
    char *logp = path_of("log");
    ck_assert_int_eq(truncate(logp, full - 8), 0);
    dms_logstore_info info;
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert(info.exists);
    ck_assert(!info.finished);
    ck_assert_uint_eq(info.stdout_bytes, 5);
    ck_assert_uint_eq(info.stderr_bytes, 3);
    ck_assert_int_eq(info.last_ts_ns, 200);
    frames f = read_all();
    ck_assert_uint_eq(f.n, 2);
    frames_free(&f);
    /* Cut inside a record header too. */
    ck_assert_int_eq(truncate(logp, full - 9 - 4 - 20), 0);
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert_uint_eq(info.stdout_bytes, 5);
    /* A new writer continues after the last complete record. */
    w = wopen(0);
    ck_assert_uint_eq(dms_logstore_bytes(w, DMS_STREAM_STDOUT), 5);
    wr(w, DMS_STREAM_STDOUT, 250, "dd\n");
    finish(w);
    dms_logstore_writer_free(w);
    f = read_all();
    ck_assert_uint_eq(f.n, 3);
    ck_assert_str_eq(f.v[2].data, "dd\n");
    ck_assert_int_eq(f.v[2].ts, 250);
    frames_free(&f);
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, NULL), 0);
    ck_assert(info.finished);
    ck_assert_uint_eq(info.stdout_bytes, 8);
    free(logp);
}
END_TEST

START_TEST(test_excerpt_of_zero_bytes_still_says_truncated)
{
    dms_logstore_writer *w = wopen(0);
    wr(w, DMS_STREAM_STDOUT, 0, "hello\n");
    finish(w);
    dms_logstore_writer_free(w);
    char *data = NULL;
    size_t len = 99;
    bool trunc = false;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDOUT, 0, &data, &len, &trunc, &err), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert(trunc);
    free(data);
}
END_TEST

START_TEST(test_info_keeps_a_stream_total_after_its_records_rotated_away)
{
    /* stderr writes once, then stdout fills two rotations: stderr's record is gone, its total is not. */
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    wr(w, DMS_STREAM_STDERR, 0, "only-once\n");
    flush(w);
    write_numbered(w, 1, 40000, 500, 0);
    flush(w);
    dms_logstore_writer_free(w);
    dms_logstore_info info;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, &err), 0);
    ck_assert_uint_eq(info.stderr_bytes, strlen("only-once\n"));
    char *data = NULL;
    size_t len = 0;
    bool trunc = false;
    ck_assert_int_eq(dms_logstore_excerpt(tu_dir, DMS_STREAM_STDERR, 100, &data, &len, &trunc, &err), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert(trunc); /* rotated away, and said so */
    free(data);
}
END_TEST

START_TEST(test_a_single_large_flush_still_respects_the_cap)
{
    /* 20000 lines buffered, then one flush: the files stay at the cap (give or take one record). */
    dms_logstore_writer *w = wopen(SMALL_CAP_BYTES);
    write_numbered(w, 1, 20000, 0, 0);
    flush(w);
    ck_assert_int_le(file_size("log"), SMALL_CAP_BYTES + DMS_LOG_LINE_MAX);
    ck_assert_int_le(file_size("log.1"), SMALL_CAP_BYTES + DMS_LOG_LINE_MAX);
    finish(w);
    dms_logstore_writer_free(w);
    /* The newest output is whole, and the totals are right although the first lines were rotated away. */
    dms_logstore_info info;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_info_read(tu_dir, &info, &err), 0);
    ck_assert_uint_eq(info.stdout_bytes, 20000u * strlen("line 000001 \n"));
    frames f = read_all();
    ck_assert_int_eq(assert_consecutive(&f, 20000) > 1, 1);
    frames_free(&f);
}
END_TEST

static Suite *logstore_suite(void)
{
    Suite *s = suite_create("logstore");
    TCase *tc = tcase_create("writer");
    tcase_set_timeout(tc, SLOW_TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_logstore_writer_splits_chunks_into_lines);
    tcase_add_test(tc, test_logstore_long_lines_become_partial_frames);
    tcase_add_test(tc, test_logstore_line_of_exactly_the_frame_limit_is_one_frame);
    tcase_add_test(tc, test_logstore_timestamps_strictly_increase_even_when_given_equal_or_decreasing_ts);
    tcase_add_test(tc, test_logstore_lines_are_visible_after_flush);
    tcase_add_test(tc, test_logstore_rotation_keeps_the_newest_output_in_at_most_two_files);
    tcase_add_test(tc, test_logstore_capture_files_are_private_whatever_the_umask);
    tcase_add_test(tc, test_logstore_reopen_continues_offsets_and_timestamps);
    tcase_add_test(tc, test_logstore_finish_flushes_a_pending_partial_line_and_ends_the_capture);
    tcase_add_test(tc, test_logstore_writer_free_keeps_a_pending_partial_line);
    tcase_add_test(tc, test_logstore_reopen_after_crash_mid_rotation_keeps_the_old_file);
    tcase_add_test(tc, test_logstore_writer_refuses_bad_streams);
    suite_add_tcase(s, tc);
    tc = tcase_create("history");
    tcase_set_timeout(tc, SLOW_TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_logstore_history_all_in_order);
    tcase_add_test(tc, test_logstore_tail_counts_selected_lines);
    tcase_add_test(tc, test_logstore_since_and_stream_selection);
    tcase_add_test(tc, test_logstore_tail_spans_log_1_and_log);
    tcase_add_test(tc, test_logstore_tail_keeps_every_partial_frame_of_the_last_line);
    tcase_add_test(tc, test_logstore_stream_open_errors_and_empty_capture);
    suite_add_tcase(s, tc);
    tc = tcase_create("follow");
    tcase_set_timeout(tc, SLOW_TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_logstore_follow_receives_lines_from_a_thread_and_ends_at_finish);
    tcase_add_test(tc, test_logstore_follow_receives_lines_from_another_process);
    tcase_add_test(tc, test_logstore_follow_fd_is_readable_when_output_arrives);
    tcase_add_test(tc, test_logstore_follow_across_rotation_loses_nothing_when_the_reader_keeps_up);
    tcase_add_test(tc, test_logstore_record_cut_short_is_not_returned_until_completed);
    tcase_add_test(tc, test_logstore_idle_check_ends_a_follow);
    tcase_add_test(tc, test_logstore_idle_check_keeps_a_follow_while_alive);
    tcase_add_test(tc, test_logstore_idle_check_runs_across_short_next_calls);
    tcase_add_test(tc, test_logstore_idle_check_end_still_delivers_output_written_before_it);
    suite_add_tcase(s, tc);
    tc = tcase_create("excerpt");
    tcase_add_test(tc, test_a_single_large_flush_still_respects_the_cap);
    tcase_add_test(tc, test_excerpt_of_zero_bytes_still_says_truncated);
    tcase_add_test(tc, test_info_keeps_a_stream_total_after_its_records_rotated_away);
    tcase_set_timeout(tc, SLOW_TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_logstore_excerpt_last_bytes_across_files_with_truncated_flag);
    tcase_add_test(tc, test_logstore_excerpt_after_rotation_lost_output_is_truncated);
    tcase_add_test(tc, test_logstore_info_and_reopen_after_crash_like_truncation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(logstore_suite());
}
