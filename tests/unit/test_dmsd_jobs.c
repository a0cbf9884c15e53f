/* test_dmsd_jobs.c - build jobs without an engine: the koalaCI payload's validation (every failure names its
 * key), the state machine, the cache volume's name, the step scripts and environment (the package step's
 * fixed PATH), the fair pick, and the job store (per user, by deployment id, the queue's fair order, the
 * per-user quota, cancel of queued/running/finished jobs, log chunks, requeue after a crash). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/jobs/job.h"
#include "../../dms/jobs/jobstore.h"
#include "testutil.h"

#define NO_CAP 1000 /* a per-user cap of running jobs no test reaches */

#define GOOD                                                                                                 \
    "\"project_id\":\"p1\",\"deployment_id\":\"d-1\",\"project_branch\":\"main\","                           \
    "\"project_repo_url\":\"https://git.example/app.git\",\"project_build_command\":\"npm run build\","      \
    "\"project_package_manager\":\"npm\",\"project_dist_directory\":\"dist\""

static int parse(const char *json, job *j, dms_error *err)
{
    json_error_t jerr;
    json_t *body = json_loads(json, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(body != NULL, "bad test JSON: %s", jerr.text);
    job_init(j);
    int r = job_parse_create(body, j, err);
    json_decref(body);
    return r;
}

/* The good payload with key replaced by value (raw JSON), or without it (value NULL). */
static void assert_refused(const char *key, const char *value)
{
    char json[2048];
    json_t *o = json_loads("{" GOOD "}", 0, NULL);
    if (value)
        json_object_set_new(o, key, json_loads(value, JSON_DECODE_ANY, NULL));
    else
        json_object_del(o, key);
    char *s = json_dumps(o, JSON_COMPACT);
    snprintf(json, sizeof(json), "%s", s);
    free(s);
    json_decref(o);
    job j;
    dms_error err = {0};
    int r = parse(json, &j, &err);
    job_clear(&j);
    ck_assert_msg(r == -DMS_E_INVALID, "%s: expected INVALID, got %d", json, r);
    ck_assert_msg(strcmp(err.field, key) == 0, "%s: field \"%s\", expected \"%s\" (%s)", json, err.field, key,
                  err.message);
}

START_TEST(test_payload_of_koalaci_is_accepted)
{
    job j;
    dms_error err = {0};
    ck_assert_msg(parse("{" GOOD "}", &j, &err) == 0, "%s", err.message);
    ck_assert_str_eq(j.project_id, "p1");
    ck_assert_str_eq(j.deployment_id, "d-1");
    ck_assert_str_eq(j.branch, "main");
    ck_assert_str_eq(j.repo_url, "https://git.example/app.git");
    ck_assert_str_eq(j.build_command, "npm run build");
    ck_assert_int_eq(j.pm, JOB_PM_NPM);
    ck_assert_str_eq(j.dist_dir, "dist");
    ck_assert_int_eq(j.status, JOB_QUEUED);
    job_clear(&j);
    /* "" is no package manager, like "none" (the later of two equal keys wins in jansson) */
    ck_assert_int_eq(parse("{" GOOD ",\"project_package_manager\":\"\"}", &j, &err), 0);
    ck_assert_int_eq(j.pm, JOB_PM_NONE);
    job_clear(&j);
}
END_TEST

/* koalaCI's README sends the command wrapped in single quotes, which its shell wrapper strips. */
START_TEST(test_one_pair_of_outer_single_quotes_is_stripped)
{
    static const struct {
        const char *given, *runs;
    } cases[] = {
        {"'npm run build && npm run export'", "npm run build && npm run export"},
        {"npm run build", "npm run build"},
        {"echo 'a' 'b'", "echo 'a' 'b'"}, /* quotes inside: as written */
        {"'it'\\''s'", "'it'\\''s'"},     /* more than one pair: as written */
        {"'x'", "x"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *cmd = json_string(cases[i].given);
        char *enc = json_dumps(cmd, JSON_ENCODE_ANY);
        char body[1024];
        /* the later of two equal keys wins in jansson */
        snprintf(body, sizeof(body), "{" GOOD ",\"project_build_command\":%s}", enc);
        free(enc);
        json_decref(cmd);
        job j;
        dms_error err = {0};
        ck_assert_msg(parse(body, &j, &err) == 0, "%s: %s", cases[i].given, err.message);
        ck_assert_str_eq(j.build_command, cases[i].runs);
        job_clear(&j);
    }
    assert_refused("project_build_command", "\"''\""); /* nothing once unquoted */
}
END_TEST

START_TEST(test_every_key_is_required_and_named_when_missing)
{
    static const char *const keys[] = {"project_id",
                                       "deployment_id",
                                       "project_branch",
                                       "project_repo_url",
                                       "project_build_command",
                                       "project_package_manager",
                                       "project_dist_directory"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        assert_refused(keys[i], NULL);
        assert_refused(keys[i], "42");
        assert_refused(keys[i], "null");
    }
}
END_TEST

START_TEST(test_bad_values_are_refused_with_their_key)
{
    assert_refused("project_id", "\"a b\"");
    assert_refused("project_id", "\"-x\"");
    assert_refused("project_id", "\"\"");
    assert_refused("deployment_id", "\"x/../y\"");
    assert_refused("project_branch", "\"a..b\"");
    assert_refused("project_branch", "\"\"");
    assert_refused("project_repo_url", "\"not a url\"");
    assert_refused("project_repo_url", "\"relative/path\"");
    assert_refused("project_build_command", "\"\"");
    assert_refused("project_package_manager", "\"bower\"");
    assert_refused("project_package_manager", "\"NPM\"");
    assert_refused("project_dist_directory", "\"/etc\"");
    assert_refused("project_dist_directory", "\"../up\"");
    assert_refused("project_dist_directory", "\"a/../../b\"");
    assert_refused("project_dist_directory", "\"\"");
    char long_id[JOB_REF_ID_MAX + 8];
    memset(long_id, 'a', sizeof(long_id));
    long_id[0] = '"';
    long_id[JOB_REF_ID_MAX + 2] = '"';
    long_id[JOB_REF_ID_MAX + 3] = '\0';
    assert_refused("project_id", long_id);
}
END_TEST

START_TEST(test_unknown_keys_and_non_objects_are_refused)
{
    job j;
    dms_error err = {0};
    ck_assert_int_eq(parse("{" GOOD ",\"projectid\":\"p\"}", &j, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "projectid");
    job_clear(&j);
    ck_assert_int_eq(parse("[1]", &j, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "body");
    job_clear(&j);
}
END_TEST

START_TEST(test_dist_dir_accepts_nested_and_dot)
{
    dms_error err = {0};
    ck_assert_int_eq(job_validate_dist_dir(".", &err), 0);
    ck_assert_int_eq(job_validate_dist_dir("build/web", &err), 0);
    ck_assert_int_eq(job_validate_dist_dir("a..b/c", &err), 0); /* ".." only as a whole component */
    ck_assert_int_eq(job_validate_dist_dir("x/..", &err), -DMS_E_INVALID);
}
END_TEST

START_TEST(test_state_machine_allows_only_its_edges)
{
    ck_assert(job_can_transition(JOB_QUEUED, JOB_RUNNING));
    ck_assert(job_can_transition(JOB_QUEUED, JOB_CANCELLED));
    ck_assert(!job_can_transition(JOB_QUEUED, JOB_SUCCEEDED));
    ck_assert(!job_can_transition(JOB_QUEUED, JOB_FAILED));
    ck_assert(job_can_transition(JOB_RUNNING, JOB_SUCCEEDED));
    ck_assert(job_can_transition(JOB_RUNNING, JOB_FAILED));
    ck_assert(job_can_transition(JOB_RUNNING, JOB_CANCELLED));
    ck_assert(job_can_transition(JOB_RUNNING, JOB_QUEUED)); /* a restart interrupted it */
    static const job_status finals[] = {JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELLED};
    for (size_t i = 0; i < 3; i++) {
        ck_assert(job_status_final(finals[i]));
        for (int to = JOB_QUEUED; to <= JOB_CANCELLED; to++)
            ck_assert(!job_can_transition(finals[i], (job_status)to));
    }
    ck_assert(!job_status_final(JOB_QUEUED) && !job_status_final(JOB_RUNNING));
    for (int s = JOB_QUEUED; s <= JOB_CANCELLED; s++)
        ck_assert_int_eq(job_status_parse(job_status_name((job_status)s)), s);
    ck_assert_int_eq(job_status_parse("BUILDING"), -1);
    for (int p = JOB_PM_NONE; p <= JOB_PM_PIP; p++)
        ck_assert_int_eq(job_pm_parse(job_pm_name((job_pm)p)), p);
    ck_assert_int_eq(job_pm_parse(""), JOB_PM_NONE);
}
END_TEST

START_TEST(test_cache_volume_is_per_user_and_project)
{
    char a[DMS_ID_MAX + 1], b[DMS_ID_MAX + 1], c[DMS_ID_MAX + 1], d[DMS_ID_MAX + 1];
    dms_error err = {0};
    ck_assert_int_eq(job_cache_volume_name("dmsd", "alice", "web", a, sizeof(a), &err), 0);
    ck_assert_int_eq(job_cache_volume_name("dmsd", "alice", "web", b, sizeof(b), &err), 0);
    ck_assert_str_eq(a, b); /* the same project finds its cache again */
    ck_assert(dms_id_valid(a));
    ck_assert_int_eq(strncmp(a, "dmsd-cache-", 11), 0);
    ck_assert_int_eq(job_cache_volume_name("dmsd", "bob", "web", c, sizeof(c), &err), 0);
    ck_assert_str_ne(a, c); /* another user's project of the same name does not share it */
    ck_assert_int_eq(job_cache_volume_name("dmsd", "ab", "c", c, sizeof(c), &err), 0);
    ck_assert_int_eq(job_cache_volume_name("dmsd", "a", "bc", d, sizeof(d), &err), 0);
    ck_assert_str_ne(c, d);
    char longid[80];
    memset(longid, 'e', 60);
    longid[60] = '\0';
    ck_assert_int_lt(job_cache_volume_name(longid, "a", "b", d, sizeof(d), &err), 0);
}
END_TEST

START_TEST(test_step_scripts_and_env)
{
    ck_assert_ptr_null(job_install_script(JOB_PM_NONE));
    const char *npm = job_install_script(JOB_PM_NPM);
    ck_assert_ptr_nonnull(strstr(npm, "npm ci"));
    ck_assert_ptr_nonnull(strstr(npm, JOB_CACHE_MARK));
    ck_assert_ptr_nonnull(strstr(npm, "package.json"));
    ck_assert_ptr_nonnull(strstr(job_install_script(JOB_PM_YARN), "yarn install"));
    ck_assert_ptr_nonnull(strstr(job_install_script(JOB_PM_PNPM), JOB_PNPM_SPEC));
    ck_assert_ptr_nonnull(strstr(job_install_script(JOB_PM_PIP), "requirements.txt"));
    ck_assert_ptr_nonnull(strstr(job_package_script(), "artifact.tar"));
    job j;
    dms_error err = {0};
    ck_assert_int_eq(parse("{" GOOD "}", &j, &err), 0);
    snprintf(j.id, sizeof(j.id), "jabc");
    char **env = job_step_env(&j, JOB_STEP_BUILD, 256);
    ck_assert_str_eq(dmsu_kv_get(env, "DMS_JOB_ID"), "jabc");
    ck_assert_str_eq(dmsu_kv_get(env, "DMS_DIST_DIR"), "dist");
    ck_assert_str_eq(dmsu_kv_get(env, "npm_config_cache"), JOB_CACHE_DIR "/npm");
    ck_assert_str_eq(dmsu_kv_get(env, "CI"), "true");
    dmsu_strv_free(env);
    j.pm = JOB_PM_PIP;
    env = job_step_env(&j, JOB_STEP_BUILD, 256);
    ck_assert_ptr_nonnull(strstr(dmsu_kv_get(env, "PATH"), JOB_WORKSPACE "/.venv/bin"));
    dmsu_strv_free(env);
    json_t *o = job_to_json(&j);
    ck_assert_str_eq(json_string_value(json_object_get(o, "status")), "queued");
    ck_assert_str_eq(json_string_value(json_object_get(o, "project_package_manager")), "pip");
    ck_assert(json_is_null(json_object_get(o, "artifact")));
    json_decref(o);
    job_clear(&j);
}
END_TEST

/* The package step must not run a tar (or a shell) the build planted on the PATH: .venv/bin for pip, the
 * cache's node_modules/.bin for pnpm. Its PATH is the image's own directories; the others keep theirs. */
START_TEST(test_package_step_gets_a_fixed_path_and_the_artifact_limit)
{
    static const job_pm pms[] = {JOB_PM_NONE, JOB_PM_NPM, JOB_PM_YARN, JOB_PM_PNPM, JOB_PM_PIP};
    job j;
    dms_error err = {0};
    ck_assert_int_eq(parse("{" GOOD "}", &j, &err), 0);
    for (size_t i = 0; i < sizeof(pms) / sizeof(pms[0]); i++) {
        j.pm = pms[i];
        char **env = job_step_env(&j, JOB_STEP_PACKAGE, 3);
        ck_assert_str_eq(dmsu_kv_get(env, "PATH"), JOB_FIXED_PATH);
        ck_assert_str_eq(dmsu_kv_get(env, "DMS_ARTIFACT_MAX_MB"), "3");
        dmsu_strv_free(env);
        env = job_step_env(&j, JOB_STEP_BUILD, 3);
        ck_assert_ptr_null(dmsu_kv_get(env, "DMS_ARTIFACT_MAX_MB"));
        dmsu_strv_free(env);
    }
    j.pm = JOB_PM_PNPM;
    char **env = job_step_env(&j, JOB_STEP_BUILD, 3);
    ck_assert_ptr_nonnull(strstr(dmsu_kv_get(env, "PATH"), JOB_CACHE_DIR "/tools/node_modules/.bin"));
    dmsu_strv_free(env);
    /* No directory a step can write is on the fixed PATH. */
    ck_assert_ptr_null(strstr(JOB_FIXED_PATH, JOB_WORKSPACE));
    ck_assert_ptr_null(strstr(JOB_FIXED_PATH, JOB_CACHE_DIR));
    ck_assert_ptr_null(strstr(JOB_FIXED_PATH, "/usr/local"));
    ck_assert_str_eq(JOB_SHELL, "/bin/sh");
    /* The script names its tools by path, checks where the dist directory leads, and bounds the tar. */
    const char *pkg = job_package_script();
    ck_assert_ptr_nonnull(strstr(pkg, "/bin/tar --one-file-system -C \"$dist\""));
    ck_assert_ptr_nonnull(strstr(pkg, "/bin/realpath -e"));
    ck_assert_ptr_nonnull(strstr(pkg, "ulimit -f $((DMS_ARTIFACT_MAX_MB * 2048))"));
    ck_assert_ptr_nonnull(strstr(pkg, "exit 66"));
    ck_assert_ptr_nonnull(strstr(pkg, "exit 67"));
    ck_assert_ptr_null(strstr(pkg, " tar "));
    job_clear(&j);
}
END_TEST

#define QU(u, r, last, since)                                                                                \
    ((job_queue_user){.user_id = (u), .running = (r), .last_started_ns = (last), .waiting_since_ns = (since)})

START_TEST(test_fair_pick_takes_the_user_with_the_fewest_running)
{
    /* alice came first with many jobs, but she runs 1 and bob 0: bob's job is next. */
    job_queue_user u[] = {QU("alice", 1, 150, 100), QU("bob", 0, 0, 500)};
    ck_assert_int_eq(job_fair_pick(u, 2, 3), 1);
    job_queue_user v[] = {QU("alice", 2, 150, 100), QU("bob", 1, 900, 500), QU("carol", 2, 1, 1)};
    ck_assert_int_eq(job_fair_pick(v, 3, 3), 1);
}
END_TEST

/* The same number running: who has waited longest for a worker, i.e. was served least recently; so with one
 * worker the users take turns, and alice's long queue holds bob back for one job at most. */
START_TEST(test_fair_pick_ties_go_to_the_user_served_least_recently)
{
    /* alice's next job is older than bob's, but her last one started just now; bob never ran one. */
    job_queue_user u[] = {QU("alice", 0, 150, 110), QU("bob", 0, 0, 500)};
    ck_assert_int_eq(job_fair_pick(u, 2, 1), 1);
    /* bob's then started at 600: alice's turn. */
    job_queue_user v[] = {QU("alice", 0, 150, 110), QU("bob", 0, 600, 700)};
    ck_assert_int_eq(job_fair_pick(v, 2, 1), 0);
    /* Both running one, both served at the same time: whose oldest job waits longest. */
    job_queue_user w[] = {QU("bob", 1, 50, 500), QU("alice", 1, 50, 100)};
    ck_assert_int_eq(job_fair_pick(w, 2, 3), 1);
    /* Everything equal: the smaller user id, whatever the order they are listed in. */
    job_queue_user x[] = {QU("zed", 0, 0, 7), QU("amy", 0, 0, 7)};
    ck_assert_int_eq(job_fair_pick(x, 2, 3), 1);
    job_queue_user y[] = {QU("amy", 0, 0, 7), QU("zed", 0, 0, 7)};
    ck_assert_int_eq(job_fair_pick(y, 2, 3), 0);
}
END_TEST

START_TEST(test_fair_pick_passes_over_users_at_their_cap)
{
    job_queue_user u[] = {QU("alice", 1, 5, 100), QU("bob", 1, 6, 500)};
    ck_assert_int_eq(job_fair_pick(u, 2, 1), -1); /* both at the cap: nothing runs */
    job_queue_user v[] = {QU("alice", 1, 5, 100), QU("bob", 0, 9, 500)};
    ck_assert_int_eq(job_fair_pick(v, 2, 1), 1);
    job_queue_user w[] = {QU("alice", 2, 0, 100), QU("bob", 2, 0, 500), QU("carol", 1, 99, 900)};
    ck_assert_int_eq(job_fair_pick(w, 3, 2), 2);
    ck_assert_int_eq(job_fair_pick(NULL, 0, 2), -1);
}
END_TEST

/* ---- the store ---- */

static char dir[64];
static store *st;

static void store_setup(void)
{
    tu_mkdtemp(dir, sizeof(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/dms.db", dir);
    dms_error err = {0};
    ck_assert_msg(store_open(&st, path, &err) == 0, "%s", err.message);
}

static void store_teardown(void)
{
    store_close(st);
    tu_rmtree(dir);
}

static void add_job(const char *id, const char *user, const char *deployment, int64_t created)
{
    job j;
    dms_error err = {0};
    ck_assert_int_eq(parse("{" GOOD "}", &j, &err), 0);
    snprintf(j.id, sizeof(j.id), "%s", id);
    j.user_id = strdup(user);
    free(j.deployment_id);
    j.deployment_id = strdup(deployment);
    j.created_ns = created;
    ck_assert_msg(jobstore_insert(st, &j, &err) == 0, "%s", err.message);
    job_clear(&j);
}

START_TEST(test_store_finds_by_id_or_deployment_and_only_for_its_user)
{
    add_job("j1", "alice", "dep", 100);
    add_job("j2", "alice", "dep", 200);
    add_job("j3", "bob", "dep", 300);
    job j;
    job_init(&j);
    dms_error err = {0};
    ck_assert_int_eq(jobstore_find(st, "alice", "j1", &j, &err), 0);
    ck_assert_str_eq(j.id, "j1");
    ck_assert_str_eq(j.user_id, "alice");
    ck_assert_int_eq(jobstore_find(st, "alice", "dep", &j, &err), 0);
    ck_assert_str_eq(j.id, "j2"); /* the newest of the deployment */
    ck_assert_int_eq(jobstore_find(st, "bob", "j1", &j, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(jobstore_find(st, "bob", "dep", &j, &err), 0);
    ck_assert_str_eq(j.id, "j3");
    ck_assert_int_eq(jobstore_find(st, "carol", "dep", &j, &err), -DMS_E_NOT_FOUND);
    ck_assert_str_eq(err.field, "id");
    json_t *list = NULL;
    dmsd_page pg = {.limit = 10};
    ck_assert_int_eq(jobstore_list_json(st, "alice", &pg, &list, &err), 0);
    ck_assert_int_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "id")), "j2");
    json_decref(list);
    job_clear(&j);
}
END_TEST

START_TEST(test_store_queue_runs_oldest_first_and_cancel_follows_the_state)
{
    add_job("jb", "alice", "d2", 200);
    add_job("ja", "alice", "d1", 100);
    add_job("jc", "alice", "d3", 300);
    job j;
    job_init(&j);
    dms_error err = {0};
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 1);
    ck_assert_str_eq(j.id, "ja");
    ck_assert_int_eq(j.status, JOB_RUNNING);
    ck_assert_int_eq(j.attempt, 1);
    ck_assert_int_gt(j.started_ns, 0);
    job_status was;
    char id[JOB_ID_SIZE];
    /* running: flagged; the worker does the rest */
    ck_assert_int_eq(jobstore_request_cancel(st, "alice", "ja", "x", &was, id, &err), 0);
    ck_assert_int_eq(was, JOB_RUNNING);
    ck_assert_int_eq(jobstore_get(st, "ja", &j, &err), 0);
    ck_assert(j.cancel_requested);
    ck_assert_int_eq(j.status, JOB_RUNNING);
    /* queued: cancelled at once, and the queue skips it */
    ck_assert_int_eq(
        jobstore_request_cancel(st, "alice", "d2", "cancelled before it started", &was, id, &err), 0);
    ck_assert_int_eq(was, JOB_QUEUED);
    ck_assert_str_eq(id, "jb");
    ck_assert_int_eq(jobstore_get(st, "jb", &j, &err), 0);
    ck_assert_int_eq(j.status, JOB_CANCELLED);
    ck_assert_str_eq(j.reason, "cancelled before it started");
    ck_assert_int_gt(j.finished_ns, 0);
    /* finished: CONFLICT; another user's: NOT_FOUND */
    ck_assert_int_eq(jobstore_request_cancel(st, "alice", "jb", "x", &was, id, &err), -DMS_E_CONFLICT);
    ck_assert_int_eq(jobstore_request_cancel(st, "bob", "jc", "x", &was, id, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 1);
    ck_assert_str_eq(j.id, "jc");
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 0);
    job_clear(&j);
}
END_TEST

START_TEST(test_store_requeues_interrupted_jobs_after_a_crash)
{
    add_job("ja", "alice", "d1", 100);
    add_job("jb", "alice", "d2", 200);
    job j;
    job_init(&j);
    dms_error err = {0};
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 1);
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 1);
    job_status was;
    char id[JOB_ID_SIZE];
    ck_assert_int_eq(jobstore_request_cancel(st, "alice", "jb", "x", &was, id, &err), 0);
    char **ids = NULL;
    int *attempts = NULL;
    ck_assert_int_eq(jobstore_requeue_interrupted(st, &ids, &attempts, &err), 0);
    ck_assert_int_eq(dmsu_strv_len(ids), 1);
    ck_assert_str_eq(ids[0], "ja");
    ck_assert_int_eq(attempts[0], 1);
    dmsu_strv_free(ids);
    free(attempts);
    ck_assert_int_eq(jobstore_get(st, "ja", &j, &err), 0);
    ck_assert_int_eq(j.status, JOB_QUEUED);
    ck_assert_ptr_nonnull(strstr(j.reason, "restart"));
    ck_assert_int_eq(jobstore_get(st, "jb", &j, &err), 0);
    ck_assert_int_eq(j.status, JOB_CANCELLED); /* its cancel was asked before the crash */
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 1);
    ck_assert_str_eq(j.id, "ja");
    ck_assert_int_eq(j.attempt, 2);
    job_clear(&j);
}
END_TEST

START_TEST(test_store_log_chunks_are_read_in_order_after_a_seq)
{
    add_job("ja", "alice", "d1", 100);
    dms_error err = {0};
    ck_assert_int_eq(jobstore_log_append(st, "ja", 1, 1, "one\n", 4, &err), 0);
    ck_assert_int_eq(jobstore_log_append(st, "ja", 2, 2, "two\n", 4, &err), 0);
    ck_assert_int_eq(jobstore_log_append(st, "ja", 3, 3, "three\n", 6, &err), 0);
    ck_assert_int_lt(jobstore_log_append(st, "ja", 3, 4, "dup\n", 4, &err), 0); /* seq is unique */
    dmsu_buf b = {0};
    int64_t last = 0;
    ck_assert_int_eq(jobstore_log_read(st, "ja", 0, 1 << 20, &b, &last, &err), 0);
    ck_assert_int_eq(last, 3);
    ck_assert_int_eq(b.len, 14);
    ck_assert_int_eq(memcmp(b.data, "one\ntwo\nthree\n", 14), 0);
    dmsu_buf_reset(&b);
    ck_assert_int_eq(jobstore_log_read(st, "ja", 1, 5, &b, &last, &err), 0); /* stops once 5 bytes are in */
    ck_assert_int_eq(last, 3);
    ck_assert_int_eq(memcmp(b.data, "two\nthree\n", 10), 0);
    dmsu_buf_reset(&b);
    ck_assert_int_eq(jobstore_log_read(st, "ja", 3, 100, &b, &last, &err), 0);
    ck_assert_int_eq(b.len, 0);
    ck_assert_int_eq(last, 3);
    int64_t seq = 0;
    ck_assert_int_eq(jobstore_log_last_seq(st, "ja", &seq, &err), 0);
    ck_assert_int_eq(seq, 3);
    ck_assert_int_eq(jobstore_log_last_seq(st, "nope", &seq, &err), 0);
    ck_assert_int_eq(seq, 0);
    dmsu_buf_free(&b);
}
END_TEST

/* A job's status and start time, as its worker would have left them. */
static void set_job(const char *id, job_status status, int64_t started_ns)
{
    job j;
    job_init(&j);
    dms_error err = {0};
    ck_assert_int_eq(jobstore_get(st, id, &j, &err), 0);
    j.status = status;
    j.started_ns = started_ns;
    ck_assert_int_eq(jobstore_update(st, &j, &err), 0);
    job_clear(&j);
}

static void assert_claims(int max_running, const char *want)
{
    job j;
    job_init(&j);
    dms_error err = {0};
    int r = jobstore_claim_next(st, max_running, &j, &err);
    if (!want) {
        ck_assert_msg(r == 0, "claimed %s, expected nothing", j.id);
    } else {
        ck_assert_msg(r == 1, "claimed nothing, expected %s (%s)", want, err.message);
        ck_assert_str_eq(j.id, want);
        ck_assert_int_eq(j.status, JOB_RUNNING);
    }
    job_clear(&j);
}

/* Alice queued three jobs before bob's one; each user runs one at most. */
START_TEST(test_store_claim_is_fair_across_users_and_keeps_each_users_order)
{
    add_job("ja1", "alice", "d1", 100);
    add_job("ja2", "alice", "d2", 200);
    add_job("ja3", "alice", "d3", 300);
    add_job("jb1", "bob", "d4", 400);
    assert_claims(1, "ja1"); /* nobody ran anything: the oldest */
    assert_claims(1, "jb1"); /* alice is at her cap */
    assert_claims(1, NULL);
    set_job("ja1", JOB_SUCCEEDED, 1000);
    set_job("jb1", JOB_RUNNING, 2000);
    assert_claims(1, "ja2"); /* alice's next, in her order */
    set_job("ja2", JOB_SUCCEEDED, 3000);
    set_job("jb1", JOB_SUCCEEDED, 2000);
    /* One at a time: bob's new job goes before alice's older ja3, alice having been served last. */
    add_job("jb2", "bob", "d5", 600);
    assert_claims(1, "jb2");
    set_job("jb2", JOB_RUNNING, 4000);
    /* With a cap of 2: carol and alice run none, carol never ran one: carol, then alice (bob runs one), then
     * bob. */
    add_job("jc1", "carol", "d6", 700);
    add_job("jb3", "bob", "d7", 800);
    assert_claims(2, "jc1");
    assert_claims(2, "ja3");
    assert_claims(2, "jb3");
    assert_claims(2, NULL);
}
END_TEST

START_TEST(test_store_quota_counts_the_users_queued_and_running_jobs_only)
{
    add_job("ja1", "alice", "d1", 100);
    add_job("ja2", "alice", "d2", 200);
    add_job("jb1", "bob", "d3", 300);
    dms_error err = {0};
    ck_assert_int_eq(jobstore_check_quota(st, "alice", 3, &err), 0);
    ck_assert_int_eq(jobstore_check_quota(st, "alice", 2, &err), -DMS_E_QUOTA);
    ck_assert_str_eq(err.field, "DMS_USER_MAX_JOBS");
    ck_assert_ptr_nonnull(strstr(err.message, "DMS_USER_MAX_JOBS"));
    ck_assert_ptr_nonnull(strstr(err.message, "2 jobs queued or running"));
    ck_assert_int_eq(jobstore_check_quota(st, "bob", 2, &err), 0);
    /* A running job counts; an ended one does not. */
    job j;
    job_init(&j);
    ck_assert_int_eq(jobstore_claim_next(st, NO_CAP, &j, &err), 1);
    ck_assert_str_eq(j.id, "ja1");
    ck_assert_int_eq(jobstore_check_quota(st, "alice", 2, &err), -DMS_E_QUOTA);
    j.status = JOB_FAILED;
    ck_assert_int_eq(jobstore_update(st, &j, &err), 0);
    ck_assert_int_eq(jobstore_check_quota(st, "alice", 2, &err), 0);
    job_status was;
    char id[JOB_ID_SIZE];
    ck_assert_int_eq(jobstore_request_cancel(st, "alice", "ja2", "x", &was, id, &err), 0);
    ck_assert_int_eq(jobstore_check_quota(st, "alice", 1, &err), 0);
    job_clear(&j);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_jobs");
    TCase *tc = tcase_create("job");
    tcase_add_test(tc, test_payload_of_koalaci_is_accepted);
    tcase_add_test(tc, test_one_pair_of_outer_single_quotes_is_stripped);
    tcase_add_test(tc, test_every_key_is_required_and_named_when_missing);
    tcase_add_test(tc, test_bad_values_are_refused_with_their_key);
    tcase_add_test(tc, test_unknown_keys_and_non_objects_are_refused);
    tcase_add_test(tc, test_dist_dir_accepts_nested_and_dot);
    tcase_add_test(tc, test_state_machine_allows_only_its_edges);
    tcase_add_test(tc, test_cache_volume_is_per_user_and_project);
    tcase_add_test(tc, test_step_scripts_and_env);
    tcase_add_test(tc, test_package_step_gets_a_fixed_path_and_the_artifact_limit);
    tcase_add_test(tc, test_fair_pick_takes_the_user_with_the_fewest_running);
    tcase_add_test(tc, test_fair_pick_ties_go_to_the_user_served_least_recently);
    tcase_add_test(tc, test_fair_pick_passes_over_users_at_their_cap);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("store");
    tcase_add_checked_fixture(ts, store_setup, store_teardown);
    tcase_add_test(ts, test_store_finds_by_id_or_deployment_and_only_for_its_user);
    tcase_add_test(ts, test_store_queue_runs_oldest_first_and_cancel_follows_the_state);
    tcase_add_test(ts, test_store_requeues_interrupted_jobs_after_a_crash);
    tcase_add_test(ts, test_store_log_chunks_are_read_in_order_after_a_seq);
    tcase_add_test(ts, test_store_claim_is_fair_across_users_and_keeps_each_users_order);
    tcase_add_test(ts, test_store_quota_counts_the_users_queued_and_running_jobs_only);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
