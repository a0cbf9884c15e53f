/* test_dmsd_logmerge.c - a compose droid's services' logs merged over real log stores: lines in time order
 * (ties by service name), each tagged once (also a line split in partial frames), pages by `from` + cursor
 * that walk every line exactly once even when services share a ts, tail of the merged history, the JSON
 * form's service, the settle horizon, and the live part until every stream ended. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/api/logmerge.h"
#include "testutil.h"

#define BASE_TS 1700000000000000000LL

typedef struct tline {
    int64_t dts; /* ts - BASE_TS */
    const char *text;
    bool partial;
} tline;

static char *svc_dir(const char *service)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", tu_dir, service);
    mkdir(path, 0700);
    return path;
}

static dms_logstore_writer *svc_write(const char *service, const tline *l, size_t n, bool finish)
{
    dms_logstore_writer *w = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_logstore_writer_open(&w, svc_dir(service), 0, &err), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(dms_logstore_write_frame(w, DMS_STREAM_STDOUT, BASE_TS + l[i].dts, l[i].partial,
                                                  l[i].text, strlen(l[i].text), &err),
                         0);
    ck_assert_int_eq(finish ? dms_logstore_finish(w, &err) : dms_logstore_flush(w, &err), 0);
    if (!finish)
        return w;
    dms_logstore_writer_free(w);
    return NULL;
}

/* web: 1, 3, 5; api: 2, 3, 4 (a tie at 3). */
static void write_two(void)
{
    static const tline web[] = {{1, "w1\n", false}, {3, "w3\n", false}, {5, "w5\n", false}};
    static const tline api[] = {{2, "a2\n", false}, {3, "a3\n", false}, {4, "a4\n", false}};
    svc_write("web", web, 3, true);
    svc_write("api", api, 3, true);
}

static logmerge *open_merge(const log_fmt *fmt, int64_t from, long long tail, bool follow)
{
    logmerge *m = logmerge_new(fmt);
    ck_assert_ptr_nonnull(m);
    const char *names[] = {"web", "api"};
    for (int i = 0; i < 2; i++) {
        dms_log_options opts = DMS_LOG_OPTIONS_INIT;
        opts.since_ns = logpage_since(from);
        opts.tail_lines = tail;
        opts.follow = follow;
        dms_log_stream *s = NULL;
        dms_error err = {0};
        ck_assert_int_eq(dms_logstore_stream_open(svc_dir(names[i]), &opts, NULL, NULL, NULL, &s, &err), 0);
        ck_assert_int_eq(logmerge_add(m, names[i], s, &err), 0);
    }
    return m;
}

static char *page(const log_fmt *fmt, int64_t from, long long limit, int64_t horizon, logpage *pg)
{
    logmerge *m = open_merge(fmt, from, -1, false);
    dmsu_buf b = {0};
    dms_error err = {0};
    *pg = (logpage){.last_ts = from, .at_line_start = true};
    ck_assert_int_eq(logmerge_page(m, limit, 1 << 20, horizon, &b, pg, &err), 0);
    logmerge_free(m);
    dmsu_buf_append(&b, "", 1);
    return b.data;
}

START_TEST(test_lines_go_in_time_order_each_tagged_with_its_service)
{
    write_two();
    log_fmt text = {0};
    logpage pg;
    char *p = page(&text, 0, -1, INT64_MAX, &pg);
    ck_assert_str_eq(p, "[web] w1\n[api] a2\n[api] a3\n[web] w3\n[api] a4\n[web] w5\n");
    ck_assert_int_eq(pg.lines, 6);
    ck_assert_int_eq(pg.last_ts, BASE_TS + 5);
    ck_assert(pg.ended);
    free(p);
}
END_TEST

START_TEST(test_pages_walk_every_line_once_across_a_shared_ts)
{
    write_two();
    log_fmt text = {0};
    logpage pg;
    /* limit 3 ends on a3 at ts 3; w3 shares it, so it comes on this page, or from=3 would skip it */
    char *p = page(&text, 0, 3, INT64_MAX, &pg);
    ck_assert_str_eq(p, "[web] w1\n[api] a2\n[api] a3\n[web] w3\n");
    ck_assert_int_eq(pg.last_ts, BASE_TS + 3);
    free(p);
    p = page(&text, pg.last_ts, 3, INT64_MAX, &pg);
    ck_assert_str_eq(p, "[api] a4\n[web] w5\n");
    free(p);
    /* limit 1, page after page: the six lines, once each */
    dmsu_buf all = {0};
    int64_t from = 0;
    for (int i = 0; i < 10; i++) {
        p = page(&text, from, 1, INT64_MAX, &pg);
        dmsu_buf_append(&all, p, strlen(p));
        free(p);
        from = pg.last_ts;
    }
    dmsu_buf_append(&all, "", 1);
    ck_assert_str_eq(all.data, "[web] w1\n[api] a2\n[api] a3\n[web] w3\n[api] a4\n[web] w5\n");
    dmsu_buf_free(&all);
}
END_TEST

START_TEST(test_tail_takes_the_last_lines_of_the_merged_history)
{
    write_two();
    log_fmt text = {0};
    dms_error err = {0};
    long long lines = 0;
    logmerge *m = open_merge(&text, 0, 2, false);
    ck_assert_int_eq(logmerge_count(m, INT64_MAX, &lines, &err), 0);
    ck_assert_int_eq(lines, 4); /* the last 2 of each */
    logmerge_free(m);
    m = open_merge(&text, 0, 2, false);
    ck_assert_int_eq(logmerge_skip(m, lines - 2, &err), 0);
    dmsu_buf b = {0};
    logpage pg = {.at_line_start = true};
    ck_assert_int_eq(logmerge_page(m, -1, 1 << 20, INT64_MAX, &b, &pg, &err), 0);
    dmsu_buf_append(&b, "", 1);
    ck_assert_str_eq(b.data, "[api] a4\n[web] w5\n");
    dmsu_buf_free(&b);
    logmerge_free(m);
}
END_TEST

START_TEST(test_json_objects_carry_their_service)
{
    write_two();
    log_fmt json = {.json = true};
    logpage pg;
    char *p = page(&json, BASE_TS + 4, -1, INT64_MAX, &pg);
    ck_assert_str_eq(p, "{\"ts\":1700000000000000005,\"stream\":\"stdout\",\"line\":\"w5\",\"partial\":false,"
                        "\"service\":\"web\"}\n");
    free(p);
}
END_TEST

START_TEST(test_a_split_line_is_tagged_once_and_never_interleaved)
{
    static const tline web[] = {{1, "aaa", true}, {3, "bbb\n", false}};
    static const tline api[] = {{2, "x\n", false}};
    svc_write("web", web, 2, true);
    svc_write("api", api, 1, true);
    log_fmt ts = {.timestamps = true};
    logpage pg;
    char *p = page(&ts, 0, 1, INT64_MAX, &pg);
    /* web's line starts first and goes whole; api's line at 2 starts before the cursor 3: same page */
    ck_assert_str_eq(p,
                     "2023-11-14T22:13:20.000000001Z [web] aaabbb\n2023-11-14T22:13:20.000000002Z [api] x\n");
    ck_assert_int_eq(pg.last_ts, BASE_TS + 3);
    free(p);
    p = page(&ts, pg.last_ts, 1, INT64_MAX, &pg);
    ck_assert_str_eq(p, "");
    free(p);
}
END_TEST

START_TEST(test_a_page_stops_at_the_horizon)
{
    write_two();
    log_fmt text = {0};
    logpage pg;
    char *p = page(&text, 0, -1, BASE_TS + 3, &pg);
    ck_assert_str_eq(p, "[web] w1\n[api] a2\n[api] a3\n[web] w3\n");
    ck_assert(!pg.ended);
    free(p);
}
END_TEST

START_TEST(test_live_lines_come_until_every_stream_ended)
{
    static const tline web1[] = {{1, "w1\n", false}};
    static const tline api1[] = {{2, "a2\n", false}};
    dms_logstore_writer *ww = svc_write("web", web1, 1, false);
    dms_logstore_writer *wa = svc_write("api", api1, 1, false);
    log_fmt text = {0};
    logmerge *m = open_merge(&text, 0, -1, true);
    ck_assert_int_ge(logmerge_fd(m), 0);
    dmsu_buf b = {0};
    dms_error err = {0};
    logpage pg = {.at_line_start = true};
    ck_assert_int_eq(logmerge_page(m, -1, 1 << 20, INT64_MAX, &b, &pg, &err), 0);
    ck_assert(!pg.ended);
    ck_assert_int_eq(pg.lines, 2);
    ck_assert_int_eq(dms_logstore_write_frame(wa, DMS_STREAM_STDOUT, BASE_TS + 9, false, "a9\n", 3, &err), 0);
    ck_assert_int_eq(dms_logstore_finish(wa, &err), 0);
    ck_assert_int_eq(logmerge_live(m, 1 << 20, &b, &err), 0); /* web still runs */
    ck_assert_int_eq(dms_logstore_finish(ww, &err), 0);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++) /* an ended stream may need a read or two to say so */
        rc = logmerge_live(m, 1 << 20, &b, &err);
    ck_assert_int_eq(rc, 1);
    dmsu_buf_append(&b, "", 1);
    ck_assert_str_eq(b.data, "[web] w1\n[api] a2\n[api] a9\n");
    dmsu_buf_free(&b);
    logmerge_free(m);
    dms_logstore_writer_free(ww);
    dms_logstore_writer_free(wa);
}
END_TEST

START_TEST(test_more_services_than_the_bound_are_refused)
{
    log_fmt text = {0};
    logmerge *m = logmerge_new(&text);
    static const tline one[] = {{1, "x\n", false}};
    svc_write("s", one, 1, true);
    dms_error err = {0};
    for (int i = 0; i <= LOGMERGE_MAX_SOURCES; i++) {
        dms_log_stream *s = NULL;
        ck_assert_int_eq(dms_logstore_stream_open(svc_dir("s"), NULL, NULL, NULL, NULL, &s, &err), 0);
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        int rc = logmerge_add(m, name, s, &err);
        ck_assert_int_eq(rc, i < LOGMERGE_MAX_SOURCES ? 0 : -DMS_E_INVALID);
    }
    ck_assert_str_eq(err.field, "service");
    logmerge_free(m);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_logmerge");
    TCase *tc = tcase_create("logmerge");
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_lines_go_in_time_order_each_tagged_with_its_service);
    tcase_add_test(tc, test_pages_walk_every_line_once_across_a_shared_ts);
    tcase_add_test(tc, test_tail_takes_the_last_lines_of_the_merged_history);
    tcase_add_test(tc, test_json_objects_carry_their_service);
    tcase_add_test(tc, test_a_split_line_is_tagged_once_and_never_interleaved);
    tcase_add_test(tc, test_a_page_stops_at_the_horizon);
    tcase_add_test(tc, test_live_lines_come_until_every_stream_ended);
    tcase_add_test(tc, test_more_services_than_the_bound_are_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
