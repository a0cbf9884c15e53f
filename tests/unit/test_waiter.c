/* test_waiter.c - result cells (publish once, wake every waiter), waiters (each with a pollable fd), waiters
 * over result files written by another process, and cancel tokens. */
#include <check.h>
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

#include <dms/backend.h>

#include "testutil.h"
#include "util.h"

#define N_THREADS           16
#define SLOW_TEST_TIMEOUT_S 20

static bool readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void make_result(dms_exec_result *r, int exit_code, const char *out)
{
    memset(r, 0, sizeof(*r));
    r->outcome = DMS_OUTCOME_EXITED;
    r->exit_code = exit_code;
    dms_exec_result_set_output(r, DMS_STREAM_STDOUT, out, strlen(out), false);
}

/* ---- cells ---- */

START_TEST(test_cell_get_before_publish_is_timeout_then_returns_a_copy)
{
    dms_result_cell *c = dms_result_cell_new();
    dms_exec_result r, got = {0};
    dms_error err = {0};
    ck_assert(!dms_result_cell_published(c));
    ck_assert_int_eq(dms_result_cell_get(c, &got, &err), -DMS_E_TIMEOUT);
    make_result(&r, 4, "hello");
    ck_assert_int_eq(dms_result_cell_publish(c, &r), 1);
    dms_exec_result_clear(&r); /* the cell holds its own copy */
    ck_assert(dms_result_cell_published(c));
    ck_assert_int_eq(dms_result_cell_get(c, &got, &err), 0);
    ck_assert_int_eq(got.exit_code, 4);
    ck_assert_str_eq(got.stdout_data, "hello");
    dms_exec_result_clear(&got);
    dms_result_cell_unref(c);
    dms_result_cell_unref(NULL);
}
END_TEST

START_TEST(test_cell_only_the_first_publish_counts)
{
    dms_result_cell *c = dms_result_cell_new();
    dms_exec_result a, b, got = {0};
    make_result(&a, 1, "first");
    make_result(&b, 2, "second");
    ck_assert_int_eq(dms_result_cell_publish(c, &a), 1);
    ck_assert_int_eq(dms_result_cell_publish(c, &b), 0);
    ck_assert_int_eq(dms_result_cell_get(c, &got, NULL), 0);
    ck_assert_int_eq(got.exit_code, 1);
    ck_assert_str_eq(got.stdout_data, "first");
    dms_exec_result_clear(&got);
    dms_exec_result_clear(&a);
    dms_exec_result_clear(&b);
    dms_result_cell_unref(c);
}
END_TEST

typedef struct racer {
    dms_result_cell *cell;
    int id;
    atomic_int *go;
    int won;
} racer;

static void *publish_racer(void *arg)
{
    racer *r = arg;
    dms_exec_result res;
    char out[16];
    snprintf(out, sizeof(out), "p%d", r->id);
    make_result(&res, r->id, out);
    while (!atomic_load(r->go)) {
    }
    r->won = dms_result_cell_publish(r->cell, &res);
    dms_exec_result_clear(&res);
    return NULL;
}

START_TEST(test_cell_concurrent_publishers_exactly_one_wins)
{
    dms_result_cell *c = dms_result_cell_new();
    atomic_int go = 0;
    pthread_t th[N_THREADS];
    racer rs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        rs[i] = (racer){.cell = c, .id = i + 1, .go = &go};
        pthread_create(&th[i], NULL, publish_racer, &rs[i]);
    }
    atomic_store(&go, 1);
    int winners = 0, winner = 0;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (rs[i].won == 1) {
            winners++;
            winner = rs[i].id;
        } else
            ck_assert_int_eq(rs[i].won, 0);
    }
    ck_assert_int_eq(winners, 1);
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_result_cell_get(c, &got, NULL), 0);
    ck_assert_int_eq(got.exit_code, winner);
    dms_exec_result_clear(&got);
    dms_result_cell_unref(c);
}
END_TEST

typedef struct wait_arg {
    dms_result_cell *cell;
    int rc;
    dms_exec_result res;
} wait_arg;

static void *wait_thread(void *arg)
{
    wait_arg *a = arg;
    dms_waiter *w = NULL;
    dms_error err = {0};
    a->rc = dms_waiter_new_from_cell(a->cell, &w, &err);
    if (a->rc == 0)
        a->rc = dms_waiter_result(w, 10000, &a->res, &err);
    dms_waiter_free(w);
    return NULL;
}

START_TEST(test_cell_many_waiting_threads_get_the_same_result)
{
    dms_result_cell *c = dms_result_cell_new();
    pthread_t th[N_THREADS];
    wait_arg args[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        args[i] = (wait_arg){.cell = c, .rc = -1};
        pthread_create(&th[i], NULL, wait_thread, &args[i]);
    }
    usleep(100 * 1000); /* most threads are now blocked in poll; some may subscribe after the publish */
    dms_exec_result r;
    make_result(&r, 42, "shared");
    ck_assert_int_eq(dms_result_cell_publish(c, &r), 1);
    dms_exec_result_clear(&r);
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(args[i].rc, 0);
        ck_assert_int_eq(args[i].res.exit_code, 42);
        ck_assert_str_eq(args[i].res.stdout_data, "shared");
        dms_exec_result_clear(&args[i].res);
    }
    dms_result_cell_unref(c);
}
END_TEST

START_TEST(test_waiter_subscribed_after_publish_wakes_at_once)
{
    dms_result_cell *c = dms_result_cell_new();
    dms_exec_result r, got = {0};
    make_result(&r, 0, "done");
    dms_result_cell_publish(c, &r);
    dms_exec_result_clear(&r);
    dms_waiter *w = NULL;
    ck_assert_int_eq(dms_waiter_new_from_cell(c, &w, NULL), 0);
    ck_assert(readable(dms_waiter_fd(w), 0));
    int64_t t0 = dms_mono_ms();
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, NULL), 0);
    ck_assert_int_lt(dms_mono_ms() - t0, 50);
    ck_assert_str_eq(got.stdout_data, "done");
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
    dms_result_cell_unref(c);
}
END_TEST

START_TEST(test_waiter_fd_is_pollable_and_timeout_leaves_it_waiting)
{
    dms_result_cell *c = dms_result_cell_new();
    dms_waiter *w = NULL;
    dms_error err = {0};
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_new_from_cell(c, &w, &err), 0);
    int fd = dms_waiter_fd(w);
    ck_assert_int_ge(fd, 0);
    ck_assert(!readable(fd, 0));
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, &err), -DMS_E_TIMEOUT);
    int64_t t0 = dms_mono_ms();
    ck_assert_int_eq(dms_waiter_result(w, 150, &got, &err), -DMS_E_TIMEOUT);
    int64_t took = dms_mono_ms() - t0;
    ck_assert_int_ge(took, 140);
    ck_assert_int_lt(took, 1000);
    ck_assert(!readable(fd, 0));
    dms_exec_result r;
    make_result(&r, 3, "x");
    dms_result_cell_publish(c, &r);
    dms_exec_result_clear(&r);
    ck_assert(readable(fd, 1000));
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, &err), 0);
    ck_assert_int_eq(got.exit_code, 3);
    dms_exec_result_clear(&got);
    /* A second read gives the same result again. */
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, &err), 0);
    ck_assert_int_eq(got.exit_code, 3);
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
    dms_result_cell_unref(c);
}
END_TEST

START_TEST(test_waiter_keeps_the_cell_alive_and_free_before_publish_is_safe)
{
    dms_result_cell *c = dms_result_cell_new();
    dms_waiter *w1 = NULL, *w2 = NULL;
    ck_assert_int_eq(dms_waiter_new_from_cell(c, &w1, NULL), 0);
    ck_assert_int_eq(dms_waiter_new_from_cell(c, &w2, NULL), 0);
    dms_waiter_free(w1); /* unlinked: publish must not write to its closed fd */
    dms_exec_result r, got = {0};
    make_result(&r, 5, "y");
    ck_assert_int_eq(dms_result_cell_publish(c, &r), 1);
    dms_exec_result_clear(&r);
    dms_result_cell_unref(c); /* the producer lets go; w2 still holds the cell */
    ck_assert_int_eq(dms_waiter_result(w2, 1000, &got, NULL), 0);
    ck_assert_int_eq(got.exit_code, 5);
    dms_exec_result_clear(&got);
    dms_waiter_free(w2);
    dms_waiter_free(NULL);
}
END_TEST

/* ---- file waiters ---- */

static int write_result_file(const char *dir, int exit_code)
{
    dms_exec_result r;
    make_result(&r, exit_code, "from file");
    char *json = dms_exec_result_to_json(&r);
    dms_exec_result_clear(&r);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/result.json", dir);
    int rc = dms_write_file_atomic(path, json, strlen(json), NULL);
    free(json);
    return rc;
}

static void *write_later(void *arg)
{
    usleep(150 * 1000);
    write_result_file(arg, 9);
    return NULL;
}

START_TEST(test_file_waiter_sees_result_written_later_by_rename)
{
    dms_waiter *w = NULL;
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, NULL, NULL, NULL, &w, NULL), 0);
    ck_assert(!readable(dms_waiter_fd(w), 0));
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, NULL), -DMS_E_TIMEOUT);
    pthread_t th;
    pthread_create(&th, NULL, write_later, tu_dir);
    int64_t t0 = dms_mono_ms();
    ck_assert_int_eq(dms_waiter_result(w, 5000, &got, NULL), 0);
    ck_assert_int_lt(dms_mono_ms() - t0, 900); /* woken by inotify, not by a periodic check */
    pthread_join(th, NULL);
    ck_assert_int_eq(got.exit_code, 9);
    ck_assert_str_eq(got.stdout_data, "from file");
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
}
END_TEST

START_TEST(test_file_waiter_fd_becomes_readable_when_another_process_writes)
{
    dms_waiter *w = NULL;
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, NULL, NULL, NULL, &w, NULL), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dms_waiter_free(w); /* the child's copy */
        usleep(100 * 1000);
        _exit(write_result_file(tu_dir, 11) == 0 ? 0 : 1);
    }
    /* A host's loop: poll, then ask without blocking. The fd may wake early (the writer's temporary file
     * shows up in the same directory), so "not yet" is a legal answer; the result must come within a few
     * wakeups. */
    int rc = -DMS_E_TIMEOUT, wakeups = 0;
    int64_t t0 = dms_mono_ms();
    while (rc == -DMS_E_TIMEOUT && dms_mono_ms() - t0 < 5000) {
        ck_assert(readable(dms_waiter_fd(w), 5000));
        wakeups++;
        rc = dms_waiter_result(w, 0, &got, NULL);
    }
    ck_assert_int_eq(rc, 0);
    ck_assert_int_le(wakeups, 4);
    ck_assert_int_eq(got.exit_code, 11);
    int st;
    waitpid(pid, &st, 0);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
}
END_TEST

/* A result that is already there when the waiter is made must make its fd readable too: a host that polls
 * before it asks would otherwise wait forever. */
START_TEST(test_file_waiter_over_existing_result_is_readable_at_once)
{
    ck_assert_int_eq(write_result_file(tu_dir, 12), 0);
    dms_waiter *w = NULL;
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, NULL, NULL, NULL, &w, NULL), 0);
    ck_assert(readable(dms_waiter_fd(w), 0));
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, NULL), 0);
    ck_assert_int_eq(got.exit_code, 12);
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
}
END_TEST

typedef struct check_state {
    int calls;
    int fail_after;
    bool write_on_call;
    char dir[PATH_MAX];
    int *freed;
} check_state;

static int producer_check(void *ud, dms_error *err)
{
    check_state *s = ud;
    s->calls++;
    if (s->write_on_call) {
        write_result_file(s->dir, 21);
        return 0;
    }
    if (s->calls >= s->fail_after)
        return dms_error_set(err, DMS_E_UNAVAILABLE, NULL, "producer pid 123 is gone");
    return 0;
}

static void check_free(void *ud)
{
    check_state *s = ud;
    (*s->freed)++;
}

START_TEST(test_file_waiter_check_callback_ends_it_with_an_error)
{
    int freed = 0;
    check_state st = {.fail_after = 1, .freed = &freed};
    dms_waiter *w = NULL;
    dms_exec_result got = {0};
    dms_error err = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, producer_check, &st, check_free, &w, &err), 0);
    int64_t t0 = dms_mono_ms();
    ck_assert_int_eq(dms_waiter_result(w, 10000, &got, &err), -DMS_E_UNAVAILABLE);
    int64_t took = dms_mono_ms() - t0;
    ck_assert_int_ge(took, 900); /* about once a second */
    ck_assert_int_lt(took, 3000);
    ck_assert_int_eq(st.calls, 1);
    ck_assert_str_eq(err.message, "producer pid 123 is gone");
    ck_assert_int_eq(freed, 0);
    dms_waiter_free(w);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_file_waiter_check_callback_may_produce_the_result)
{
    int freed = 0;
    check_state st = {.write_on_call = true, .freed = &freed};
    snprintf(st.dir, sizeof(st.dir), "%s", tu_dir);
    dms_waiter *w = NULL;
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, producer_check, &st, check_free, &w, NULL), 0);
    ck_assert_int_eq(dms_waiter_result(w, 10000, &got, NULL), 0);
    ck_assert_int_eq(got.exit_code, 21);
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
    ck_assert_int_eq(freed, 1);
}
END_TEST

START_TEST(test_file_waiter_errors_missing_dir_and_corrupt_file)
{
    int freed = 0;
    check_state st = {.freed = &freed};
    dms_waiter *w = NULL;
    dms_error err = {0};
    char missing[PATH_MAX + 8];
    snprintf(missing, sizeof(missing), "%s/nope", tu_dir);
    ck_assert_int_eq(dms_waiter_new_from_file(missing, producer_check, &st, check_free, &w, &err),
                     -DMS_E_NOT_FOUND);
    ck_assert_ptr_nonnull(strstr(err.message, missing));
    ck_assert_int_eq(freed, 1); /* ownership of ud passed even on failure */

    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/result.json", tu_dir);
    ck_assert_int_eq(dms_write_file_atomic(path, "{\"outcome\":", 11, NULL), 0);
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, NULL, NULL, NULL, &w, &err), 0);
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_result(w, 1000, &got, &err), -DMS_E_PROTOCOL);
    dms_waiter_free(w);
}
END_TEST

/* ---- cancel tokens ---- */

static void *cancel_later(void *arg)
{
    usleep(100 * 1000);
    dms_cancel_token_cancel(arg);
    return NULL;
}

START_TEST(test_cancel_token_fires_once_from_another_thread)
{
    dms_cancel_token *t = NULL;
    ck_assert_int_eq(dms_cancel_token_new(&t, NULL), 0);
    ck_assert(!dms_cancel_token_cancelled(t));
    ck_assert(!readable(dms_cancel_token_fd(t), 0));
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, t);
    ck_assert(readable(dms_cancel_token_fd(t), 5000));
    pthread_join(th, NULL);
    ck_assert(dms_cancel_token_cancelled(t));
    dms_cancel_token_cancel(t); /* idempotent */
    ck_assert(dms_cancel_token_cancelled(t));
    ck_assert(readable(dms_cancel_token_fd(t), 0)); /* stays readable: level, not edge */
    ck_assert(!dms_cancel_token_cancelled(NULL));
    dms_cancel_token_free(t);
    dms_cancel_token_free(NULL);
}
END_TEST

START_TEST(test_cell_waiter_fd_stays_readable_after_the_result_was_taken)
{
    dms_result_cell *c = dms_result_cell_new();
    dms_waiter *w = NULL;
    dms_exec_result r, got = {0};
    ck_assert_int_eq(dms_waiter_new_from_cell(c, &w, NULL), 0);
    make_result(&r, 0, "x");
    dms_result_cell_publish(c, &r);
    dms_exec_result_clear(&r);
    ck_assert(readable(dms_waiter_fd(w), 1000));
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, NULL), 0);
    dms_exec_result_clear(&got);
    /* A host that polls again (a second loop iteration) must not hang on a result that is there. */
    ck_assert(readable(dms_waiter_fd(w), 0));
    ck_assert_int_eq(dms_waiter_result(w, 0, &got, NULL), 0);
    dms_exec_result_clear(&got);
    dms_waiter_free(w);
    dms_result_cell_unref(c);
}
END_TEST

START_TEST(test_file_waiter_ends_when_its_directory_is_removed)
{
    dms_waiter *w = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, NULL, NULL, NULL, &w, &err), 0);
    ck_assert_int_eq(dms_rm_rf(tu_dir, NULL), 0);
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_result(w, 5000, &got, &err), -DMS_E_NOT_FOUND);
    dms_waiter_free(w);
    ck_assert_int_eq(mkdir(tu_dir, 0700), 0); /* for the teardown */
}
END_TEST

static int positive_check(void *ud, dms_error *err)
{
    dms_error_set(err, DMS_E_CANCELLED, NULL, "producer gone");
    return DMS_E_CANCELLED; /* non-zero ends the wait, whatever its sign */
}

START_TEST(test_file_waiter_check_ending_with_a_positive_code)
{
    dms_waiter *w = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_waiter_new_from_file(tu_dir, positive_check, NULL, NULL, &w, &err), 0);
    dms_exec_result got = {0};
    ck_assert_int_eq(dms_waiter_result(w, 5000, &got, &err), -DMS_E_CANCELLED);
    dms_waiter_free(w);
}
END_TEST

static Suite *waiter_suite(void)
{
    Suite *s = suite_create("waiter");
    TCase *tc = tcase_create("cell");
    tcase_add_test(tc, test_cell_waiter_fd_stays_readable_after_the_result_was_taken);
    tcase_add_test(tc, test_cell_get_before_publish_is_timeout_then_returns_a_copy);
    tcase_add_test(tc, test_cell_only_the_first_publish_counts);
    tcase_add_test(tc, test_cell_concurrent_publishers_exactly_one_wins);
    tcase_add_test(tc, test_cell_many_waiting_threads_get_the_same_result);
    tcase_add_test(tc, test_waiter_subscribed_after_publish_wakes_at_once);
    tcase_add_test(tc, test_waiter_fd_is_pollable_and_timeout_leaves_it_waiting);
    tcase_add_test(tc, test_waiter_keeps_the_cell_alive_and_free_before_publish_is_safe);
    suite_add_tcase(s, tc);
    tc = tcase_create("file");
    tcase_add_test(tc, test_file_waiter_ends_when_its_directory_is_removed);
    tcase_add_test(tc, test_file_waiter_check_ending_with_a_positive_code);
    tcase_set_timeout(tc, SLOW_TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_file_waiter_sees_result_written_later_by_rename);
    tcase_add_test(tc, test_file_waiter_fd_becomes_readable_when_another_process_writes);
    tcase_add_test(tc, test_file_waiter_over_existing_result_is_readable_at_once);
    tcase_add_test(tc, test_file_waiter_check_callback_ends_it_with_an_error);
    tcase_add_test(tc, test_file_waiter_check_callback_may_produce_the_result);
    tcase_add_test(tc, test_file_waiter_errors_missing_dir_and_corrupt_file);
    suite_add_tcase(s, tc);
    tc = tcase_create("cancel");
    tcase_add_test(tc, test_cancel_token_fires_once_from_another_thread);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(waiter_suite());
}
