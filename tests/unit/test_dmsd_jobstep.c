/* test_dmsd_jobstep.c - a job step without an engine (jobs/jobstep.h). Its request: the builder image by
 * package manager, the workspace (read-only for the package step), the cache volume (never for the package
 * step), the package step's out/, the build-job and step labels, the job limits, the timeout, the user's
 * network, an init as PID 1. Its run, through the in-memory test backend (tests/plugins, memtest: a step
 * "runs" at once, its cmd items as output lines): the output and dmsd's own lines in the job's log, the step
 * recorded, a cancel before the start, dmsd's stop. A real container (signals, the grace, timeouts) is the
 * feature suite's (tests/features/dmsd_jobs.feature, security_jobs.feature). */
#include <check.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/jobs/jobs.h"
#include "../../dms/jobs/jobstep.h"
#include "../../dms/jobs/jobstore.h"
#include "testutil.h"

static job j;

static void setup(void)
{
    job_init(&j);
    snprintf(j.id, sizeof(j.id), "jabc");
    j.user_id = strdup("alice");
    j.project_id = strdup("p1");
    j.build_command = strdup("npm run build");
    j.dist_dir = strdup("dist");
    j.pm = JOB_PM_NPM;
    j.attempt = 2;
    j.cache_volume = strdup("dms-cache-x");
}

static void teardown(void)
{
    job_clear(&j);
}

static jobstep_in in_for(job_step step)
{
    return (jobstep_in){.j = &j,
                        .step = step,
                        .script = "echo hi",
                        .src = "/data/jobs/jabc/src",
                        .out = "/data/jobs/jabc/out",
                        .executor_id = "dms",
                        .limits = {.memory_mb = 1024, .cpu_millis = 2000, .pids = 512},
                        .timeout_ms = 60000,
                        .artifact_max_mb = 8};
}

START_TEST(test_install_step_gets_the_workspace_and_the_cache)
{
    jobstep_in in = in_for(JOB_STEP_INSTALL);
    jobstep_req r;
    char reason[256] = "";
    ck_assert_int_eq(jobstep_request(&r, &in, reason, sizeof(reason)), 0);
    ck_assert_str_eq(r.req.execution_id, "jabc-install-2");
    ck_assert_str_eq(r.req.job_id, "jabc");
    ck_assert_str_eq(r.req.engine.image, JOB_IMAGE_NODE);
    ck_assert_str_eq(r.req.engine.working_dir, JOB_WORKSPACE);
    ck_assert_str_eq(r.req.engine.cmd[0], JOB_SHELL);
    ck_assert_str_eq(r.req.engine.cmd[1], "-c");
    ck_assert_str_eq(r.req.engine.cmd[2], "echo hi");
    ck_assert_ptr_null(r.req.engine.cmd[3]);
    ck_assert_ptr_nonnull(r.req.engine.env);
    ck_assert_uint_eq(r.req.n_mounts, 2);
    ck_assert_int_eq(r.req.mounts[0].type, DMS_MOUNT_BIND);
    ck_assert_str_eq(r.req.mounts[0].source, "/data/jobs/jabc/src");
    ck_assert_str_eq(r.req.mounts[0].target, JOB_WORKSPACE);
    ck_assert(!r.req.mounts[0].read_only);
    ck_assert_int_eq(r.req.mounts[1].type, DMS_MOUNT_VOLUME);
    ck_assert_str_eq(r.req.mounts[1].source, "dms-cache-x");
    ck_assert_str_eq(r.req.mounts[1].target, JOB_CACHE_DIR);
    jobstep_request_clear(&r);
}
END_TEST

START_TEST(test_package_step_reads_the_workspace_and_writes_only_out)
{
    jobstep_in in = in_for(JOB_STEP_PACKAGE);
    jobstep_req r;
    char reason[256] = "";
    ck_assert_int_eq(jobstep_request(&r, &in, reason, sizeof(reason)), 0);
    ck_assert_str_eq(r.req.execution_id, "jabc-package-2");
    ck_assert_uint_eq(r.req.n_mounts, 2);
    ck_assert_str_eq(r.req.mounts[0].target, JOB_WORKSPACE);
    ck_assert(r.req.mounts[0].read_only);
    /* no cache: none of the tools a build may have planted there */
    ck_assert_int_eq(r.req.mounts[1].type, DMS_MOUNT_BIND);
    ck_assert_str_eq(r.req.mounts[1].source, "/data/jobs/jabc/out");
    ck_assert_str_eq(r.req.mounts[1].target, JOB_OUT_DIR);
    ck_assert(!r.req.mounts[1].read_only);
    jobstep_request_clear(&r);
}
END_TEST

START_TEST(test_step_without_a_cache_volume_mounts_only_the_workspace)
{
    free(j.cache_volume);
    j.cache_volume = NULL;
    j.pm = JOB_PM_NONE;
    jobstep_in in = in_for(JOB_STEP_BUILD);
    jobstep_req r;
    char reason[256] = "";
    ck_assert_int_eq(jobstep_request(&r, &in, reason, sizeof(reason)), 0);
    ck_assert_uint_eq(r.req.n_mounts, 1);
    ck_assert_str_eq(r.req.engine.image, JOB_IMAGE_BASE);
    jobstep_request_clear(&r);
}
END_TEST

START_TEST(test_step_is_labelled_with_its_job_and_step)
{
    jobstep_in in = in_for(JOB_STEP_BUILD);
    jobstep_req r;
    char reason[256] = "";
    ck_assert_int_eq(jobstep_request(&r, &in, reason, sizeof(reason)), 0);
    ck_assert_str_eq(r.req.labels[0], "dms.build-job=jabc");
    ck_assert_str_eq(r.req.labels[1], "dms.step=build");
    ck_assert_ptr_null(r.req.labels[2]);
    jobstep_request_clear(&r);
}
END_TEST

START_TEST(test_step_runs_confined_on_its_users_network_under_an_init)
{
    jobstep_in in = in_for(JOB_STEP_BUILD);
    jobstep_req r;
    char reason[256] = "";
    ck_assert_int_eq(jobstep_request(&r, &in, reason, sizeof(reason)), 0);
    ck_assert_int_eq(r.req.resources.memory_bytes, 1024LL * 1024 * 1024);
    ck_assert_int_eq(r.req.resources.cpu_millis, 2000);
    ck_assert_int_eq(r.req.resources.pids_limit, 512);
    ck_assert_int_eq(r.req.timeout_ms, 60000);
    ck_assert_int_eq(r.req.stop_grace_ms, JOB_STOP_GRACE_MS);
    ck_assert(r.req.init);
    ck_assert_int_eq(r.req.network_mode, DMS_NET_NAMED);
    char net[CONFINE_NETWORK_MAX];
    ck_assert_int_eq(confine_user_network("dms", "alice", net, sizeof(net), NULL), 0);
    ck_assert_str_eq(r.req.network_name, net);
    jobstep_request_clear(&r);
}
END_TEST

START_TEST(test_builder_image_follows_the_package_manager)
{
    ck_assert_str_eq(jobs_builder_image(JOB_PM_YARN), JOB_IMAGE_NODE);
    ck_assert_str_eq(jobs_builder_image(JOB_PM_PNPM), JOB_IMAGE_NODE);
    ck_assert_str_eq(jobs_builder_image(JOB_PM_PIP), JOB_IMAGE_PYTHON);
    ck_assert_str_eq(jobs_builder_image(JOB_PM_NONE), JOB_IMAGE_BASE);
}
END_TEST

/* ---- the run, through memtest ---- */

static char tmp[PATH_MAX];
static store *st;
static dms_registry *reg;
static dms_executor *ex;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static jobrun_env env;
static job_slot sl;
static run_ctx c;

static void run_setup(void)
{
    setup();
    char exe[PATH_MAX], plugins[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    snprintf(plugins, sizeof(plugins), "%s/plugins", dirname(exe));
    tu_mkdtemp(tmp, sizeof(tmp));
    char path[PATH_MAX + 32];
    dms_error err = {0};
    snprintf(path, sizeof(path), "%s/dms.db", tmp);
    ck_assert_int_eq(store_open(&st, path, &err), 0);
    ck_assert_msg(dms_registry_open(&reg, plugins, &err) == 0, "%s", err.message);
    snprintf(path, sizeof(path), "%s/exec", tmp);
    dms_executor_config cfg = {.state_dir = path};
    ck_assert_msg(dms_executor_open(&ex, reg, "memtest", "jobstep", &cfg, &err) == 0, "%s", err.message);
    env = (jobrun_env){.st = st,
                       .ex = ex,
                       .data_dir = tmp,
                       .limits = {.memory_mb = 256, .cpu_millis = 1000, .pids = 256},
                       .lock = &lock,
                       .step_timeout_ms = 60000,
                       .artifact_max_mb = 8};
    memset(&sl, 0, sizeof(sl));
    ck_assert_int_eq(dms_cancel_token_new(&sl.token, &err), 0);
    j.status = JOB_RUNNING;
    j.deployment_id = strdup("d-1");
    j.branch = strdup("main");
    j.repo_url = strdup("https://git.example/app.git");
    ck_assert_msg(jobstore_insert(st, &j, &err) == 0, "%s", err.message);
    memset(&c, 0, sizeof(c));
    c = (run_ctx){.env = &env, .sl = &sl, .j = &j, .kind = JOBRUN_FAILED};
    c.log.st = st;
    c.log.id = j.id;
    snprintf(c.src, sizeof(c.src), "%s/src", tmp);
    snprintf(c.out, sizeof(c.out), "%s/out", tmp);
    ck_assert_int_eq(dms_mkdir_p(c.src, false, NULL), 0);
    ck_assert_int_eq(dms_mkdir_p(c.out, false, NULL), 0);
}

static void run_teardown(void)
{
    dmsu_buf_free(&c.log.buf);
    dms_cancel_token_free(sl.token);
    dms_executor_close(ex);
    dms_registry_close(reg);
    store_close(st);
    tu_rmtree(tmp);
    teardown();
}

/* The job's whole log as the store has it (caller frees). */
static char *log_text(void)
{
    joblog_flush(&c.log);
    dmsu_buf b = {0};
    int64_t last = 0;
    ck_assert_int_eq(jobstore_log_read(st, j.id, 0, 1 << 20, &b, &last, NULL), 0);
    dmsu_buf_append(&b, "", 1);
    return b.data;
}

START_TEST(test_step_output_and_dmsd_lines_go_to_the_jobs_log)
{
    int64_t ms = -1;
    ck_assert_int_eq(jobstep_run(&c, JOB_STEP_BUILD, "echo built", &ms), 0);
    ck_assert_int_ge(ms, 0);
    char *text = log_text();
    ck_assert_msg(strstr(text, "[dms] step build in " JOB_IMAGE_NODE ": npm run build\n"), "%s", text);
    ck_assert_msg(strstr(text, "/bin/sh\n-c\necho built\n"), "%s", text); /* memtest: the cmd as output */
    ck_assert_msg(strstr(text, "[dms] step build done in "), "%s", text);
    free(text);
    job now;
    job_init(&now);
    ck_assert_int_eq(jobstore_get(st, j.id, &now, NULL), 0);
    ck_assert_str_eq(now.step, "build");
    job_clear(&now);
}
END_TEST

START_TEST(test_install_step_notices_a_warm_cache)
{
    ck_assert_int_eq(jobstep_run(&c, JOB_STEP_INSTALL, JOBLOG_CACHE_WARM_MARK " (since yesterday)", NULL), 0);
    ck_assert(c.log.cache_warm); /* memtest writes the script as a line of its own */
    char *text = log_text();
    ck_assert_msg(strstr(text, "[dms] step install in "), "%s", text);
    free(text);
    ck_assert(!c.log.watch_cache); /* only while the install step runs */
}
END_TEST

START_TEST(test_cancel_asked_before_the_start_runs_nothing)
{
    dms_cancel_token_cancel(sl.token);
    ck_assert_int_eq(jobstep_run(&c, JOB_STEP_INSTALL, "echo never", NULL), -1);
    ck_assert_int_eq(c.kind, JOBRUN_CANCELLED);
    ck_assert_str_eq(c.reason, "cancelled during install");
    char *text = log_text();
    ck_assert_ptr_null(strstr(text, "echo never"));
    free(text);
}
END_TEST

START_TEST(test_dmsd_stopping_interrupts_instead_of_cancelling)
{
    sl.stopping = true;
    dms_cancel_token_cancel(sl.token);
    ck_assert_int_eq(jobstep_run(&c, JOB_STEP_BUILD, "echo never", NULL), -1);
    ck_assert_int_eq(c.kind, JOBRUN_INTERRUPTED);
    ck_assert_str_eq(c.reason, "interrupted: dmsd is stopping");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_jobstep");
    TCase *tc = tcase_create("request");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_install_step_gets_the_workspace_and_the_cache);
    tcase_add_test(tc, test_package_step_reads_the_workspace_and_writes_only_out);
    tcase_add_test(tc, test_step_without_a_cache_volume_mounts_only_the_workspace);
    tcase_add_test(tc, test_step_is_labelled_with_its_job_and_step);
    tcase_add_test(tc, test_step_runs_confined_on_its_users_network_under_an_init);
    tcase_add_test(tc, test_builder_image_follows_the_package_manager);
    suite_add_tcase(s, tc);
    TCase *run = tcase_create("run");
    tcase_add_checked_fixture(run, run_setup, run_teardown);
    tcase_set_timeout(run, 20);
    tcase_add_test(run, test_step_output_and_dmsd_lines_go_to_the_jobs_log);
    tcase_add_test(run, test_install_step_notices_a_warm_cache);
    tcase_add_test(run, test_cancel_asked_before_the_start_runs_nothing);
    tcase_add_test(run, test_dmsd_stopping_interrupts_instead_of_cancelling);
    suite_add_tcase(s, run);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
