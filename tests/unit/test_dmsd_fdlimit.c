/* test_dmsd_fdlimit.c - file descriptors as a bounded resource (dms/fdlimit.c) and the log's rate limit
 * (dms/lograte.c): the soft limit raised to the hard one, the descriptors in use counted as they open and
 * close, a refusal that names limits.open_files with both numbers, "Too many open files" told apart from a
 * user's fault by errno or by message; and one line per format per second, with the count held back said by
 * the next one that goes out. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../../dms/build/buildstate.h"
#include "../../dms/fdlimit.h"
#include "../../dms/lograte.h"
#include "testutil.h"

#define OPENED 10

START_TEST(test_the_soft_limit_is_raised_to_the_hard_one)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max > 64) { /* start below the hard limit */
        struct rlimit low = {.rlim_cur = 64, .rlim_max = rl.rlim_max};
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    }
    long soft = 0;
    bool raised = false;
    dms_error err = {0};
    ck_assert_int_eq(fdlimit_raise(&soft, &raised, &err), 0);
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    ck_assert_int_eq((long)rl.rlim_cur, soft);
    if (rl.rlim_max != RLIM_INFINITY)
        ck_assert_int_eq((long)rl.rlim_max, soft);
    ck_assert_int_eq(fdlimit_soft(), soft);
}
END_TEST

START_TEST(test_droids_allowed_leaves_the_base_and_the_reserve)
{
    ck_assert_int_eq(fdlimit_droids_allowed(0), 0);
    ck_assert_int_eq(fdlimit_droids_allowed(FDLIMIT_BASE + FDLIMIT_RESERVE), 0);
    ck_assert_int_eq(fdlimit_droids_allowed(FDLIMIT_BASE + FDLIMIT_RESERVE + 4 * FDLIMIT_PER_DROID + 1), 4);
    ck_assert_int_eq(fdlimit_droids_allowed(1024),
                     (1024 - FDLIMIT_BASE - FDLIMIT_RESERVE) / FDLIMIT_PER_DROID);
}
END_TEST

START_TEST(test_counting_sees_descriptors_open_and_close)
{
    long before = fdlimit_count_open(100000);
    ck_assert_int_gt(before, 2); /* stdin, stdout, stderr at least */
    int fds[OPENED];
    for (int i = 0; i < OPENED; i++)
        ck_assert_int_ge(fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC), 0);
    ck_assert_int_eq(fdlimit_count_open(100000), before + OPENED);
    ck_assert_int_le(fdlimit_count_open(3), 3); /* bounded: stops counting past stop_at */
    for (int i = 0; i < OPENED; i++)
        close(fds[i]);
    ck_assert_int_eq(fdlimit_count_open(100000), before);
}
END_TEST

START_TEST(test_a_check_past_the_limit_is_a_503_naming_the_setting)
{
    dms_error err = {0};
    ck_assert_int_eq(fdlimit_check(100, 128, 28, &err), 0);
    ck_assert_int_eq(fdlimit_check(100, 128, 29, &err), -DMS_E_UNAVAILABLE);
    ck_assert_str_eq(err.field, FDLIMIT_FIELD);
    ck_assert_ptr_nonnull(strstr(err.message, "100 of the limit 128 are in use (RLIMIT_NOFILE)"));
    ck_assert_ptr_nonnull(strstr(err.message, "LimitNOFILE"));
    ck_assert_ptr_nonnull(strstr(err.message, "ulimit -n"));
    dms_error_clear(&err);
    ck_assert_int_eq(fdlimit_check(-1, 128, 1, &err), -DMS_E_UNAVAILABLE); /* not even /proc opens */
    ck_assert_ptr_nonnull(strstr(err.message, "all of the limit 128"));
}
END_TEST

START_TEST(test_a_check_now_refuses_once_the_limit_is_near)
{
    dms_error err = {0};
    long soft = 0;
    bool raised;
    ck_assert_int_eq(fdlimit_raise(&soft, &raised, &err), 0);
    ck_assert_int_eq(fdlimit_check_now(0, 0, &err), 0);
    ck_assert_int_eq(fdlimit_check_now(0, soft, &err), -DMS_E_UNAVAILABLE);
    ck_assert_str_eq(err.field, FDLIMIT_FIELD);
    /* Droids not running yet count as what they will hold. */
    long room = (soft - FDLIMIT_BASE - FDLIMIT_RESERVE) / FDLIMIT_PER_DROID;
    ck_assert_int_eq(fdlimit_check_now(room + 1, 0, &err), -DMS_E_UNAVAILABLE);
}
END_TEST

START_TEST(test_out_of_descriptors_is_told_by_errno_or_by_message)
{
    dms_error err = {0};
    dms_error_set_errno(&err, DMS_E_IO, EMFILE, "open build.out");
    ck_assert(fdlimit_exhausted(&err));
    dms_error_set_errno(&err, DMS_E_IO, ENFILE, "socket");
    ck_assert(fdlimit_exhausted(&err));
    char msg[256];
    snprintf(msg, sizeof(msg), "clone x: failed to open 'x/.git/config': %s", strerror(EMFILE));
    dms_error_set(&err, DMS_E_INVALID, "repo", "%s", msg); /* libgit2 keeps only the message */
    ck_assert(fdlimit_exhausted(&err));
    dms_error_set_errno(&err, DMS_E_IO, ENOENT, "open Dockerfile");
    ck_assert(!fdlimit_exhausted(&err));
    ck_assert(!fdlimit_exhausted(NULL));
    ck_assert(!fdlimit_exhausted_msg(NULL));
}
END_TEST

START_TEST(test_a_build_out_of_descriptors_is_retried_not_the_users_fault)
{
    dms_error err = {0};
    char msg[256];
    snprintf(msg, sizeof(msg), "clone x: %s", strerror(EMFILE));
    int r = dms_error_set(&err, DMS_E_INVALID, "repo", "%s", msg);
    ck_assert_int_eq(buildstate_kind_of(r, &err), BUILD_END_RETRY);
    r = dms_error_set_errno(&err, DMS_E_BUILD_FAILED, EMFILE, "the repository's Dockerfile");
    ck_assert_int_eq(buildstate_kind_of(r, &err), BUILD_END_RETRY);
    /* A user's step that prints the words fails the user's build: the errno is not dmsd's. */
    r = dms_error_set(&err, DMS_E_BUILD_FAILED, NULL, "step 3: %s", strerror(EMFILE));
    ck_assert_int_eq(buildstate_kind_of(r, &err), BUILD_END_USER_FAULT);
    r = dms_error_set(&err, DMS_E_INVALID, "repo", "clone x: not a git repository");
    ck_assert_int_eq(buildstate_kind_of(r, &err), BUILD_END_USER_FAULT);
}
END_TEST

static const char FMT_A[] = "Error accepting connection: %s\n";
static const char FMT_B[] = "Server reached connection limit. Closing inbound connection.\n";

START_TEST(test_a_format_goes_out_once_per_interval_and_counts_the_rest)
{
    lograte lr = LOGRATE_INIT(1000);
    uint64_t held = 99;
    ck_assert(lograte_allow(&lr, FMT_A, 5000, &held));
    ck_assert_int_eq(held, 0);
    for (int i = 0; i < 1000; i++)
        ck_assert(!lograte_allow(&lr, FMT_A, 5000 + i % 1000, &held));
    ck_assert(lograte_allow(&lr, FMT_A, 6000, &held));
    ck_assert_int_eq(held, 1000);
    ck_assert(!lograte_allow(&lr, FMT_A, 6999, &held));
    ck_assert(lograte_allow(&lr, FMT_A, 9000, &held));
    ck_assert_int_eq(held, 1);
}
END_TEST

START_TEST(test_formats_are_limited_each_on_their_own)
{
    lograte lr = LOGRATE_INIT(1000);
    uint64_t held;
    ck_assert(lograte_allow(&lr, FMT_A, 0, &held));
    ck_assert(lograte_allow(&lr, FMT_B, 1, &held));
    ck_assert(!lograte_allow(&lr, FMT_A, 2, &held));
    ck_assert(!lograte_allow(&lr, FMT_B, 3, &held));
    char copy[sizeof(FMT_A)]; /* the same format at another address is the same line */
    memcpy(copy, FMT_A, sizeof(copy));
    ck_assert(!lograte_allow(&lr, copy, 4, &held));
    ck_assert(lograte_allow(&lr, FMT_B, 1001, &held));
    ck_assert_int_eq(held, 1);
}
END_TEST

START_TEST(test_a_full_table_reuses_the_slot_used_longest_ago)
{
    static char fmts[LOGRATE_SLOTS + 1][16];
    lograte lr = LOGRATE_INIT(1000);
    uint64_t held;
    for (int i = 0; i <= LOGRATE_SLOTS; i++) {
        snprintf(fmts[i], sizeof(fmts[i]), "fmt %d", i);
        ck_assert(lograte_allow(&lr, fmts[i], i, &held));
    }
    /* The last one took the first one's slot: the first is new again; the second is still limited. */
    ck_assert(lograte_allow(&lr, fmts[0], 100, &held));
    ck_assert(!lograte_allow(&lr, fmts[LOGRATE_SLOTS], 101, &held));
    ck_assert(!lograte_allow(&lr, fmts[2], 102, &held));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_fdlimit");
    TCase *tc = tcase_create("fdlimit");
    tcase_add_test(tc, test_the_soft_limit_is_raised_to_the_hard_one);
    tcase_add_test(tc, test_droids_allowed_leaves_the_base_and_the_reserve);
    tcase_add_test(tc, test_counting_sees_descriptors_open_and_close);
    tcase_add_test(tc, test_a_check_past_the_limit_is_a_503_naming_the_setting);
    tcase_add_test(tc, test_a_check_now_refuses_once_the_limit_is_near);
    tcase_add_test(tc, test_out_of_descriptors_is_told_by_errno_or_by_message);
    tcase_add_test(tc, test_a_build_out_of_descriptors_is_retried_not_the_users_fault);
    suite_add_tcase(s, tc);
    TCase *lt = tcase_create("lograte");
    tcase_add_test(lt, test_a_format_goes_out_once_per_interval_and_counts_the_rest);
    tcase_add_test(lt, test_formats_are_limited_each_on_their_own);
    tcase_add_test(lt, test_a_full_table_reuses_the_slot_used_longest_ago);
    suite_add_tcase(s, lt);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
