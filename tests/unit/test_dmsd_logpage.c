/* test_dmsd_logpage.c - runtime log paging over a real log store: from is exclusive (the cursor line is never
 * sent twice), limit counts whole lines (a long line split in partial frames stays on one page), tail, end of
 * stream, and the text/JSON forms. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/api/logpage.h"
#include "testutil.h"

#define BASE_TS 1700000000000000000LL

static void write_lines(int n, bool finish)
{
    dms_logstore_writer *w = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_writer_open(&w, tu_dir, 0, &err), 0);
    for (int i = 0; i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof(line), "line %d\n", i);
        ck_assert_int_eq(dms_logstore_write_frame(w, i % 3 == 2 ? DMS_STREAM_STDERR : DMS_STREAM_STDOUT,
                                                  BASE_TS + i, false, line, (size_t)len, &err),
                         0);
    }
    ck_assert_int_eq(finish ? dms_logstore_finish(w, &err) : dms_logstore_flush(w, &err), 0);
    dms_logstore_writer_free(w);
}

/* One page as the route reads it: open with since = logpage_since(from), read up to limit. */
static char *page(int64_t from, long long limit, long long tail, const log_fmt *fmt, logpage *pg)
{
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    opts.since_ns = logpage_since(from);
    opts.tail_lines = tail;
    dms_log_stream *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_stream_open(tu_dir, &opts, NULL, NULL, NULL, &s, &err), 0);
    dmsu_buf b = {0};
    *pg = (logpage){.last_ts = from, .at_line_start = true};
    ck_assert_int_eq(logpage_read(s, limit, 1 << 20, fmt, &b, pg, &err), 0);
    dms_log_stream_free(s);
    dmsu_buf_append(&b, "", 1);
    return b.data;
}

START_TEST(test_pages_follow_the_cursor_without_repeats)
{
    write_lines(10, true);
    log_fmt text = {0};
    logpage pg;
    char *p = page(0, 4, -1, &text, &pg);
    ck_assert_str_eq(p, "line 0\nline 1\nline 2\nline 3\n");
    ck_assert_int_eq(pg.lines, 4);
    ck_assert_int_eq(pg.last_ts, BASE_TS + 3);
    ck_assert(!pg.ended);
    free(p);
    p = page(BASE_TS + 3, 4, -1, &text, &pg); /* from = the cursor: line 3 is not sent again */
    ck_assert_str_eq(p, "line 4\nline 5\nline 6\nline 7\n");
    ck_assert_int_eq(pg.last_ts, BASE_TS + 7);
    free(p);
    p = page(BASE_TS + 7, 4, -1, &text, &pg);
    ck_assert_str_eq(p, "line 8\nline 9\n");
    ck_assert_int_eq(pg.lines, 2);
    ck_assert(pg.ended);
    free(p);
    p = page(BASE_TS + 9, 4, -1, &text, &pg); /* past the end: nothing, and the cursor stays */
    ck_assert_str_eq(p, "");
    ck_assert_int_eq(pg.last_ts, BASE_TS + 9);
    ck_assert_int_eq(pg.lines, 0);
    free(p);
}
END_TEST

START_TEST(test_from_between_lines_starts_at_the_next_one)
{
    write_lines(5, true);
    log_fmt text = {0};
    logpage pg;
    char *p = page(BASE_TS + 1, -1, -1, &text, &pg);
    ck_assert_str_eq(p, "line 2\nline 3\nline 4\n");
    free(p);
    p = page(BASE_TS - 100, 1, -1, &text, &pg);
    ck_assert_str_eq(p, "line 0\n");
    free(p);
}
END_TEST

START_TEST(test_tail_takes_the_last_lines)
{
    write_lines(10, true);
    log_fmt text = {0};
    logpage pg;
    char *p = page(0, -1, 3, &text, &pg);
    ck_assert_str_eq(p, "line 7\nline 8\nline 9\n");
    ck_assert_int_eq(pg.last_ts, BASE_TS + 9);
    free(p);
    p = page(0, -1, 0, &text, &pg);
    ck_assert_str_eq(p, "");
    free(p);
}
END_TEST

START_TEST(test_a_split_line_stays_on_one_page)
{
    dms_logstore_writer *w = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_writer_open(&w, tu_dir, 0, &err), 0);
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, BASE_TS + 1, true, "aaa", 3, &err), 0);
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, BASE_TS + 2, true, "bbb", 3, &err), 0);
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, BASE_TS + 3, false, "ccc\n", 4, &err), 0);
    ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, BASE_TS + 4, false, "next\n", 5, &err),
                     0);
    ck_assert_int_eq(dms_logstore_finish(w, &err), 0);
    dms_logstore_writer_free(w);
    log_fmt ts = {.timestamps = true};
    logpage pg;
    char *p = page(0, 1, -1, &ts, &pg);
    /* one timestamp for the whole line, and the page ends after its last piece */
    ck_assert_str_eq(p, "2023-11-14T22:13:20.000000001Z aaabbbccc\n");
    ck_assert_int_eq(pg.last_ts, BASE_TS + 3);
    ck_assert_int_eq(pg.lines, 1);
    free(p);
    p = page(pg.last_ts, 1, -1, &ts, &pg);
    ck_assert_str_eq(p, "2023-11-14T22:13:20.000000004Z next\n");
    free(p);
}
END_TEST

START_TEST(test_json_form_carries_ts_and_stream)
{
    write_lines(3, true);
    log_fmt json = {.json = true};
    logpage pg;
    char *p = page(BASE_TS + 1, -1, -1, &json, &pg);
    ck_assert_str_eq(
        p, "{\"ts\":1700000000000000002,\"stream\":\"stderr\",\"line\":\"line 2\",\"partial\":false}\n");
    free(p);
}
END_TEST

START_TEST(test_a_followed_live_capture_does_not_end)
{
    write_lines(2, false); /* flushed, not finished: the run still runs */
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    opts.follow = true;
    dms_log_stream *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_stream_open(tu_dir, &opts, NULL, NULL, NULL, &s, &err), 0);
    dmsu_buf b = {0};
    log_fmt text = {0};
    logpage pg = {.at_line_start = true};
    ck_assert_int_eq(logpage_read(s, -1, 1 << 20, &text, &b, &pg, &err), 0);
    ck_assert_int_eq(pg.lines, 2);
    ck_assert(!pg.ended); /* history read; live lines may still come */
    ck_assert_int_eq(pg.last_ts, BASE_TS + 1);
    dms_log_stream_free(s);
    dmsu_buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_logpage");
    TCase *tc = tcase_create("logpage");
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_pages_follow_the_cursor_without_repeats);
    tcase_add_test(tc, test_from_between_lines_starts_at_the_next_one);
    tcase_add_test(tc, test_tail_takes_the_last_lines);
    tcase_add_test(tc, test_a_split_line_stays_on_one_page);
    tcase_add_test(tc, test_json_form_carries_ts_and_stream);
    tcase_add_test(tc, test_a_followed_live_capture_does_not_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
