/* test_dmsd_buildlog.c - build logs (build/buildlog.c): every line under the cap, nothing past it but one
 * note and the count of what was dropped, the builder's own notes still told, the previous build's log kept
 * once, a follower's empty placeholder not kept, and a link planted at the log's name never followed. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/build/buildlog.h"
#include "testutil.h"

#define CAP_BYTES (BUILDLOG_MIN_BYTES * 2)

/* The file's text (caller frees), its size in *len. */
static char *slurp(const char *name, size_t *len)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", tu_dir, name);
    char *text = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_read_file(p, 64 * 1024 * 1024, &text, len, &err), 0);
    return text;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

START_TEST(test_lines_under_the_cap_are_all_kept)
{
    buildlog l;
    dms_error err = {0};
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    buildlog_line(&l, "Step 1/2 : FROM x", 17);
    buildlog_note(&l, "building image %s", "t:1");
    buildlog_line(&l, "done", 4);
    buildlog_close(&l);
    size_t len;
    char *text = slurp("build.out", &len);
    ck_assert_str_eq(text, "Step 1/2 : FROM x\n[dms] building image t:1\ndone\n");
    free(text);
}
END_TEST

START_TEST(test_output_past_the_cap_is_dropped_with_one_note_and_the_count)
{
    buildlog l;
    dms_error err = {0};
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    char line[1000];
    memset(line, 'x', sizeof(line));
    size_t lines = 10 * CAP_BYTES / sizeof(line); /* ten times the cap */
    for (size_t i = 0; i < lines; i++)
        buildlog_line(&l, line, sizeof(line));
    buildlog_note(&l, "failed: %s", "the build's own reason is still told");
    buildlog_close(&l);
    size_t len;
    char *text = slurp("build.out", &len);
    ck_assert_uint_le(len, CAP_BYTES);
    ck_assert_uint_ge(len, CAP_BYTES - BUILDLOG_NOTE_RESERVE_BYTES - sizeof(line));
    ck_assert_uint_eq(count(text, "reached its cap"), 1);
    ck_assert_ptr_nonnull(strstr(text, "[dms] failed: the build's own reason is still told\n"));
    size_t kept = count(text, "xxxxxxxxxx\n"); /* whole lines only */
    char dropped[128];
    snprintf(dropped, sizeof(dropped), "[dms] build.out: %zu bytes of output were dropped past its cap\n",
             (lines - kept) * (sizeof(line) + 1));
    ck_assert_msg(strstr(text, dropped), "no %s in the log's end: %s", dropped, text + len - 300);
    ck_assert(text[len - 1] == '\n');
    free(text);
}
END_TEST

START_TEST(test_a_new_build_keeps_the_previous_log_once)
{
    buildlog l;
    dms_error err = {0};
    tu_write(tu_dir, "build.out", "build 1\n");
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    buildlog_line(&l, "build 2", 7);
    buildlog_close(&l);
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    buildlog_line(&l, "build 3", 7);
    buildlog_close(&l);
    size_t len;
    char *cur = slurp("build.out", &len), *prev = slurp("build.out.1", &len);
    ck_assert_str_eq(cur, "build 3\n");
    ck_assert_str_eq(prev, "build 2\n"); /* build 1's is gone: one rotation only */
    free(cur);
    free(prev);
}
END_TEST

START_TEST(test_an_empty_placeholder_does_not_replace_the_previous_log)
{
    buildlog l;
    dms_error err = {0};
    tu_write(tu_dir, "build.out.1", "the last real build\n");
    tu_write(tu_dir, "build.out", ""); /* made by a follower while the build was queued (api/logs.c) */
    struct stat before;
    char p[128];
    snprintf(p, sizeof(p), "%s/build.out", tu_dir);
    int follower = open(p, O_RDONLY); /* the follower holds it open, as api/logs.c does */
    ck_assert_int_ge(follower, 0);
    ck_assert_int_eq(fstat(follower, &before), 0);
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    buildlog_close(&l);
    struct stat after;
    ck_assert_int_eq(stat(p, &after), 0);
    ck_assert(after.st_ino != before.st_ino); /* a new file: the follower moves over to it */
    close(follower);
    size_t len;
    char *prev = slurp("build.out.1", &len);
    ck_assert_str_eq(prev, "the last real build\n");
    free(prev);
}
END_TEST

START_TEST(test_a_link_at_the_logs_name_is_not_followed)
{
    buildlog l;
    dms_error err = {0};
    tu_write(tu_dir, "target", "not the log's\n");
    char p[128], t[128];
    snprintf(p, sizeof(p), "%s/build.err", tu_dir);
    snprintf(t, sizeof(t), "%s/target", tu_dir);
    ck_assert_int_eq(symlink(t, p), 0);
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.err", CAP_BYTES, &err), 0);
    buildlog_line(&l, "written", 7);
    buildlog_close(&l);
    struct stat st;
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    size_t len;
    char *target = slurp("target", &len), *log = slurp("build.err", &len);
    ck_assert_str_eq(target, "not the log's\n");
    ck_assert_str_eq(log, "written\n");
    free(target);
    free(log);
}
END_TEST

/* A follower makes an empty log when it finds none; one made just before the build creates its own (or a
 * half-made file a crash left) must not fail the build: the build's file replaces it. */
START_TEST(test_a_log_made_by_a_follower_or_a_crash_is_replaced_not_an_error)
{
    tu_write(tu_dir, "build.out.new", "left by a crash\n");
    buildlog l;
    dms_error err = {0};
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    tu_write(tu_dir, "build.out.new", "");
    buildlog_close(&l);
    tu_write(tu_dir, "build.out", ""); /* a follower's empty placeholder */
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", CAP_BYTES, &err), 0);
    buildlog_line(&l, "step 1", 6);
    buildlog_close(&l);
    size_t len;
    char *text = slurp("build.out", &len);
    ck_assert_str_eq(text, "step 1\n");
    free(text);
}
END_TEST

START_TEST(test_a_cap_below_the_minimum_is_raised_to_it)
{
    buildlog l;
    dms_error err = {0};
    ck_assert_int_eq(buildlog_open(&l, tu_dir, "build.out", 1, &err), 0);
    ck_assert_int_eq(l.max_bytes, BUILDLOG_MIN_BYTES);
    buildlog_line(&l, "fits", 4);
    buildlog_close(&l);
    size_t len;
    char *text = slurp("build.out", &len);
    ck_assert_str_eq(text, "fits\n");
    free(text);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_buildlog");
    TCase *tc = tcase_create("buildlog");
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_lines_under_the_cap_are_all_kept);
    tcase_add_test(tc, test_output_past_the_cap_is_dropped_with_one_note_and_the_count);
    tcase_add_test(tc, test_a_new_build_keeps_the_previous_log_once);
    tcase_add_test(tc, test_an_empty_placeholder_does_not_replace_the_previous_log);
    tcase_add_test(tc, test_a_link_at_the_logs_name_is_not_followed);
    tcase_add_test(tc, test_a_cap_below_the_minimum_is_raised_to_it);
    tcase_add_test(tc, test_a_log_made_by_a_follower_or_a_crash_is_replaced_not_an_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
