/* test_docker_demux.c - the multiplexed stream parser accepts any split, and Docker's log timestamps parse.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "docker/demux.h"
#include "testutil.h"

typedef struct collected {
    char out[4096];
    size_t out_len;
    char err[4096];
    size_t err_len;
    int frames_ended;
    int systemerr;
} collected;

static int collect(void *ud, int stream, const char *data, size_t len, bool frame_end)
{
    collected *c = ud;
    if (stream == DOCKER_FRAME_STDOUT) {
        memcpy(c->out + c->out_len, data, len);
        c->out_len += len;
    } else if (stream == DOCKER_FRAME_STDERR) {
        memcpy(c->err + c->err_len, data, len);
        c->err_len += len;
    } else {
        c->systemerr++;
    }
    if (frame_end)
        c->frames_ended++;
    return 0;
}

static size_t frame(char *buf, int type, const char *payload, size_t len)
{
    buf[0] = (char)type;
    buf[1] = buf[2] = buf[3] = 0;
    buf[4] = (char)(len >> 24);
    buf[5] = (char)(len >> 16);
    buf[6] = (char)(len >> 8);
    buf[7] = (char)len;
    memcpy(buf + 8, payload, len);
    return 8 + len;
}

/* The measured stream of docs/engine-notes.md §3 plus a zero-size frame and a stdin frame. */
static size_t fixture(char *buf)
{
    size_t n = 0;
    n += frame(buf + n, 2, "2026-11-23T06:57:18.329711234Z err1\n", 36);
    n += frame(buf + n, 1, "out1\n", 5);
    n += frame(buf + n, 1, "", 0);
    n += frame(buf + n, 0, "in\n", 3);
    n += frame(buf + n, 2, "e2", 2);
    return n;
}

START_TEST(test_demux_reassembles_frames_split_at_every_offset)
{
    char buf[256];
    size_t n = fixture(buf);
    /* Every single cut point, and every pair of cut points. */
    for (size_t a = 0; a <= n; a++) {
        for (size_t b = a; b <= n; b++) {
            docker_demux d = {0};
            collected c = {0};
            ck_assert_int_eq(docker_demux_feed(&d, buf, a, collect, &c), 0);
            ck_assert_int_eq(docker_demux_feed(&d, buf + a, b - a, collect, &c), 0);
            ck_assert_int_eq(docker_demux_feed(&d, buf + b, n - b, collect, &c), 0);
            ck_assert_uint_eq(c.out_len, 5 + 3);
            ck_assert_mem_eq(c.out, "out1\nin\n", 8);
            ck_assert_uint_eq(c.err_len, 38);
            ck_assert_mem_eq(c.err + 36, "e2", 2);
            ck_assert_int_eq(c.frames_ended, 5);
            ck_assert(docker_demux_at_boundary(&d));
        }
    }
}
END_TEST

START_TEST(test_demux_byte_at_a_time)
{
    char buf[256];
    size_t n = fixture(buf);
    docker_demux d = {0};
    collected c = {0};
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(docker_demux_feed(&d, buf + i, 1, collect, &c), 0);
    ck_assert_uint_eq(c.out_len, 8);
    ck_assert_int_eq(c.frames_ended, 5);
}
END_TEST

START_TEST(test_demux_reports_not_at_boundary_mid_frame)
{
    char buf[64];
    size_t n = frame(buf, 1, "hello", 5);
    docker_demux d = {0};
    collected c = {0};
    ck_assert_int_eq(docker_demux_feed(&d, buf, n - 2, collect, &c), 0);
    ck_assert(!docker_demux_at_boundary(&d));
    docker_demux d2 = {0};
    ck_assert_int_eq(docker_demux_feed(&d2, buf, 3, collect, &c), 0);
    ck_assert(!docker_demux_at_boundary(&d2));
}
END_TEST

START_TEST(test_demux_rejects_a_bad_header)
{
    char buf[16] = {7, 0, 0, 0, 0, 0, 0, 1, 'x'};
    docker_demux d = {0};
    collected c = {0};
    ck_assert_int_eq(docker_demux_feed(&d, buf, 9, collect, &c), -1);
    char pad[16] = {1, 1, 0, 0, 0, 0, 0, 1, 'x'};
    docker_demux d2 = {0};
    ck_assert_int_eq(docker_demux_feed(&d2, pad, 9, collect, &c), -1);
}
END_TEST

START_TEST(test_demux_passes_systemerr_frames_through)
{
    char buf[64];
    size_t n = frame(buf, 3, "boom", 4);
    docker_demux d = {0};
    collected c = {0};
    ck_assert_int_eq(docker_demux_feed(&d, buf, n, collect, &c), 0);
    ck_assert_int_eq(c.systemerr, 1);
}
END_TEST

static int stop_at_second(void *ud, int stream, const char *data, size_t len, bool frame_end)
{
    int *calls = ud;
    return ++*calls == 2 ? -42 : 0;
}

START_TEST(test_demux_stops_when_the_callback_fails)
{
    char buf[64];
    size_t n = frame(buf, 1, "a", 1);
    n += frame(buf + n, 1, "b", 1);
    n += frame(buf + n, 1, "c", 1);
    docker_demux d = {0};
    int calls = 0;
    ck_assert_int_eq(docker_demux_feed(&d, buf, n, stop_at_second, &calls), -42);
    ck_assert_int_eq(calls, 2);
}
END_TEST

START_TEST(test_demux_raw_mode_is_all_stdout)
{
    docker_demux d = {.raw = true};
    collected c = {0};
    ck_assert_int_eq(docker_demux_feed(&d, "\x01\x00raw", 5, collect, &c), 0);
    ck_assert_uint_eq(c.out_len, 5);
}
END_TEST

START_TEST(test_timestamp_parses_docker_nanosecond_format)
{
    int64_t ns = 0;
    const char *s = "2026-11-23T06:57:18.329711234Z err1\n";
    size_t used = docker_parse_timestamp(s, strlen(s), &ns);
    ck_assert_uint_eq(used, 31);
    ck_assert_int_eq(ns, 1795417038329711234LL);
    ck_assert_str_eq(s + used, "err1\n");
}
END_TEST

START_TEST(test_timestamp_accepts_short_fractions_and_offsets)
{
    int64_t a = 0, b = 0, c = 0;
    ck_assert_uint_gt(docker_parse_timestamp("2026-11-23T06:57:18.5Z x", 24, &a), 0);
    ck_assert_int_eq(a, 1795417038500000000LL);
    ck_assert_uint_gt(docker_parse_timestamp("2026-11-23T06:57:18Z x", 22, &b), 0);
    ck_assert_int_eq(b, 1795417038000000000LL);
    ck_assert_uint_gt(docker_parse_timestamp("2026-11-23T07:57:18.5+01:00 x", 29, &c), 0);
    ck_assert_int_eq(c, a);
}
END_TEST

START_TEST(test_timestamp_refuses_garbage)
{
    int64_t ns;
    ck_assert_uint_eq(docker_parse_timestamp("hello world", 11, &ns), 0);
    ck_assert_uint_eq(docker_parse_timestamp("2026-11-23T06:57:18.5Zx", 23, &ns), 0);
    ck_assert_uint_eq(docker_parse_timestamp("2026-11-23", 10, &ns), 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("docker_demux");
    TCase *tc = tcase_create("demux");
    tcase_add_test(tc, test_demux_reassembles_frames_split_at_every_offset);
    tcase_add_test(tc, test_demux_byte_at_a_time);
    tcase_add_test(tc, test_demux_reports_not_at_boundary_mid_frame);
    tcase_add_test(tc, test_demux_rejects_a_bad_header);
    tcase_add_test(tc, test_demux_passes_systemerr_frames_through);
    tcase_add_test(tc, test_demux_stops_when_the_callback_fails);
    tcase_add_test(tc, test_demux_raw_mode_is_all_stdout);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("timestamps");
    tcase_add_test(ts, test_timestamp_parses_docker_nanosecond_format);
    tcase_add_test(ts, test_timestamp_accepts_short_fractions_and_offsets);
    tcase_add_test(ts, test_timestamp_refuses_garbage);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
