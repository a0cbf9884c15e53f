/* test_dmsd_jobstep.c - a job step's request without an engine (jobs/jobstep.h): the builder image by package
 * manager, the workspace (read-only for the package step), the cache volume (never for the package step), the
 * package step's out/, the build-job and step labels, the job limits, the timeout, the user's network, an
 * init as PID 1. Running a step is the feature suite's (tests/features/dmsd_jobs.feature). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/jobs/jobs.h"
#include "../../dms/jobs/jobstep.h"

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

int main(void)
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
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
