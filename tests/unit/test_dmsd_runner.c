/* test_dmsd_runner.c - the runner reconciling droids through the in-memory test backend (tests/plugins,
 * "memtest"): a store and core in a temp dir, the executor over memtest, no router. memtest "runs" a request
 * at once and exits with the env's EXIT, so a droid wanted running starts, exits, and is restarted with
 * backoff; a removed image fails it without a start; a stop and a delete follow what is wanted. */
#include <check.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/app.h"
#include "../../dms/run/runner.h"
#include "testutil.h"

#define WAIT_MS 5000 /* far above what a pass takes; the tests never depend on it being short */
#define POLL_MS 10

static char dir[64];
static app A;

static void hook_droid(void *ud, const char *id)
{
    app *a = ud;
    runner_kick(a->runner, id);
}

static void hook_build(void *ud)
{
    (void)ud;
}

static void quiet_log(void *ctx, dms_log_level level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
}

static void up(void)
{
    tu_mkdtemp(dir, sizeof(dir)); /* anew per test: CK_FORK=no shares the process */
    memset(&A, 0, sizeof(A));
    A.cfg.data_dir = dir;
    A.cfg.executor_id = "dmsd-test";
    confine_config_defaults(&A.cfg.confine);
    char p[PATH_MAX], exe[PATH_MAX], plugins[PATH_MAX], state[PATH_MAX];
    snprintf(p, sizeof(p), "%s/dms.db", dir);
    dms_error err = {0};
    ck_assert_int_eq(store_open(&A.st, p, &err), 0);
    ck_assert_int_eq(core_open(&A.core, A.st, &err), 0);
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    snprintf(plugins, sizeof(plugins), "%s/plugins", dirname(exe));
    snprintf(state, sizeof(state), "%s/exec", dir);
    ck_assert_msg(dms_registry_open(&A.reg, plugins, &err) == 0, "%s", err.message);
    dms_executor_config cfg = {.state_dir = state, .log = quiet_log};
    ck_assert_msg(dms_executor_open(&A.ex, A.reg, "memtest", "dmsd-test", &cfg, &err) == 0, "%s",
                  err.message);
    core_set_hooks(A.core, &(core_hooks){.build_queued = hook_build, .droid_changed = hook_droid, .ud = &A});
    runner_deps rd = {
        .st = A.st, .core = A.core, .ex = A.ex, .data_dir = A.cfg.data_dir, .confine = &A.cfg.confine};
    ck_assert_msg(runner_start(&A.runner, &rd, &err) == 0, "%s", err.message);
}

static void down(void)
{
    runner_stop(A.runner);
    dms_executor_close(A.ex);
    dms_registry_close(A.reg);
    core_close(A.core);
    store_close(A.st);
    tu_rmtree(dir);
}

typedef struct want {
    bool running;
    bool deleting;
    const char *env_json;
} want;

static int mut_want(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    const want *w = ud;
    (void)err;
    d->want_running = w->running;
    d->want_release = 1;
    d->deleting = w->deleting;
    if (w->env_json)
        dmsd_set_str(&d->env_json, w->env_json);
    d->state = w->running ? DROID_STARTING : d->state;
    core_tx_kick_runner(tx);
    return 0;
}

/* A droid with release 1 built (image_removed as given), not yet wanted running. */
static char *create(const char *name, bool image_removed)
{
    json_t *body = json_pack("{s:s, s:s}", "name", name, "repo", "/nowhere");
    droid *d = droid_new(), *out = NULL;
    dms_error err = {0};
    d->user_id = strdup("alice");
    ck_assert_int_eq(droid_parse_create(body, d, &err), 0);
    ck_assert_msg(core_create(A.core, d, &out, &err) == 0, "%s", err.message);
    char *id = strdup(out->id);
    char tag[64];
    snprintf(tag, sizeof(tag), "dms-droid/%s:r1", id);
    store_release rel = {.seq = 1,
                         .build_id = 1,
                         .image_id = "sha256:0123",
                         .tag = tag,
                         .port = 8080,
                         .image_removed = image_removed};
    snprintf(rel.droid_id, sizeof(rel.droid_id), "%s", id);
    ck_assert_msg(store_release_insert(A.st, &rel, &err) == 0, "%s", err.message);
    droid_free(d);
    droid_free(out);
    json_decref(body);
    return id;
}

static void set_want(const char *id, want w)
{
    dms_error err = {0};
    ck_assert_msg(core_mutate(A.core, NULL, id, mut_want, &w, NULL, &err) == 0, "%s", err.message);
}

/* Waits until the droid is in state `state` with `reason` in its reason (NULL: any); returns a copy (caller
 * frees), or fails the test with what the droid is instead. */
static droid *wait_for(const char *id, droid_state state, const char *reason)
{
    for (int waited = 0;; waited += POLL_MS) {
        droid *d = core_get_copy(A.core, id);
        ck_assert_ptr_nonnull(d);
        if (d->state == state && (!reason || (d->reason && strstr(d->reason, reason))))
            return d;
        if (waited >= WAIT_MS)
            ck_abort_msg("droid %s is %s (\"%s\"), not %s (\"%s\")", id, droid_state_name(d->state),
                         d->reason ? d->reason : "", droid_state_name(state), reason ? reason : "");
        droid_free(d);
        usleep(POLL_MS * 1000);
    }
}

START_TEST(test_a_droid_whose_container_exits_is_restarted_with_backoff)
{
    char *id = create("exits", false);
    set_want(id, (want){.running = true, .env_json = "{\"EXIT\":\"3\"}"});
    droid *d = wait_for(id, DROID_STARTING, "container exited with code 3; restart 1/5 in 1s");
    ck_assert_int_eq(d->crash_count, 1);
    ck_assert_int_eq(d->start_failures, 0); /* it ran: starting works */
    ck_assert_ptr_null(d->run_id);
    ck_assert_int_gt(d->retry_at_ns, 0);
    /* the run was recorded (before its start) and its end with it */
    store_run *runs = NULL;
    size_t n = 0;
    dms_error err = {0};
    ck_assert_int_eq(store_runs_list(A.st, id, &runs, &n, &err), 0);
    ck_assert_uint_ge(n, 1);
    char want_exec[64];
    snprintf(want_exec, sizeof(want_exec), "%s-r1-1", id);
    ck_assert_str_eq(runs[0].exec_id, want_exec);
    ck_assert_int_eq(runs[0].release, 1);
    ck_assert_str_eq(runs[0].outcome, "exited");
    ck_assert_int_eq(runs[0].exit_code, 3);
    free(runs);
    droid_free(d);
    free(id);
}
END_TEST

START_TEST(test_a_release_whose_image_was_removed_fails_without_a_start)
{
    char *id = create("gone", true);
    set_want(id, (want){.running = true});
    droid *d = wait_for(id, DROID_FAILED, "the image of release 1 was removed");
    ck_assert_ptr_nonnull(strstr(d->reason, "container would not start after 1 attempt"));
    ck_assert_int_eq(d->retry_at_ns, 0);
    store_run *runs = NULL;
    size_t n = 0;
    dms_error err = {0};
    ck_assert_int_eq(store_runs_list(A.st, id, &runs, &n, &err), 0);
    ck_assert_uint_eq(n, 0); /* nothing was started */
    free(runs);
    droid_free(d);
    free(id);
}
END_TEST

START_TEST(test_a_droid_no_longer_wanted_running_is_stopped)
{
    char *id = create("stops", false);
    set_want(id, (want){.running = true});
    droid_free(wait_for(id, DROID_STARTING, "restart 1/5"));
    set_want(id, (want){.running = false});
    droid *d = wait_for(id, DROID_STOPPED, "stopped on request");
    ck_assert_ptr_null(d->run_id);
    droid_free(d);
    free(id);
}
END_TEST

START_TEST(test_a_deleted_droid_is_purged_with_its_directory)
{
    char *id = create("deleted", false);
    char ddir[PATH_MAX];
    ck_assert_int_eq(app_droid_dir(&A, id, ddir, sizeof(ddir)), 0);
    dms_error err = {0};
    ck_assert_int_eq(dms_mkdir_p(ddir, false, &err), 0);
    set_want(id, (want){.running = false, .deleting = true});
    droid *d = NULL;
    for (int waited = 0; (d = core_get_copy(A.core, id)) && waited < WAIT_MS; waited += POLL_MS) {
        droid_free(d);
        usleep(POLL_MS * 1000);
    }
    ck_assert_ptr_null(d);
    ck_assert_int_ne(access(ddir, F_OK), 0);
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_runner");
    TCase *tc = tcase_create("reconcile");
    tcase_add_checked_fixture(tc, up, down);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_a_droid_whose_container_exits_is_restarted_with_backoff);
    tcase_add_test(tc, test_a_release_whose_image_was_removed_fails_without_a_start);
    tcase_add_test(tc, test_a_droid_no_longer_wanted_running_is_stopped);
    tcase_add_test(tc, test_a_deleted_droid_is_purged_with_its_directory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
