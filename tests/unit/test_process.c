/* test_process.c - the process backend, driven for real through the public API: the registry loads
 * <build>/plugins/libdms-executor-process.so, which spawns <build>/plugins/dms-proc-shim per execution.
 *
 * Every test gets its own executor id (its pid: Check forks each test) under one temporary state root, and
 * every workload carries DMS_PROC_TEST_TAG=<root> in its environment, so the last test can prove the suite
 * left no process (workload or shim) and no cgroup behind. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <dms/backend.h>
#include <dms/executor.h>

#include "util.h"
#include "testutil.h"

#define CASE_TIMEOUT_S 60
#define SHORT_GRACE_MS 1000
#define TAG_VAR        "DMS_PROC_TEST_TAG"

static char root[PATH_MAX]; /* the suite's state root */
static char tag_env[PATH_MAX + 32];
static dms_registry *reg;
static dms_executor *ex;
static char run_tag[16]; /* unique to this run of the suite: the random part of root */
static char exec_id[40]; /* this test's executor id: <run_tag>-<pid> */

/* ---- helpers ---- */

static void setup(void)
{
    dms_error err = {0};
    snprintf(exec_id, sizeof(exec_id), "%s-%d", run_tag, (int)getpid());
    ck_assert_msg(dms_registry_open(&reg, DMS_BUILD_PLUGIN_DIR, &err) == 0, "%s", err.message);
    dms_executor_config cfg = {.state_dir = root};
    ck_assert_msg(dms_executor_open(&ex, reg, "process", exec_id, &cfg, &err) == 0, "%s", err.message);
}

/* The shims are built like us (SAN=1: with ASan+UBSan) and report to their shim.log: once each has exited
 * (its owner lock is free), no report may be there. Returns the first offending log (caller frees), or NULL.
 */
static char *find_sanitizer_reports(void)
{
    char *found = NULL;
    char *dir = dmsu_strdup_printf("%s/process/%s", root, exec_id);
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char *edir = dmsu_strdup_printf("%s/%s", dir, de->d_name);
        for (int64_t until = dms_mono_ms() + 5000; dms_state_lock_held(edir) && dms_mono_ms() < until;)
            usleep(10000);
        char *path = dmsu_strdup_printf("%s/shim.log", edir), *log = NULL;
        if (!found && dms_read_file(path, 1 << 20, &log, NULL, NULL) == 0) {
            if (strstr(log, "Sanitizer") || strstr(log, "runtime error:"))
                found = dmsu_strdup_printf("%s:\n%s", path, log);
            free(log);
        }
        free(path);
        free(edir);
    }
    if (d)
        closedir(d);
    free(dir);
    return found;
}

static void teardown(void)
{
    dms_error err = {0};
    /* Stop what a test left running, so that every shim exits and its log is complete. */
    dms_exec_status *all = NULL;
    size_t n = 0;
    if (ex && dms_executor_list(ex, &all, &n, &err) == 0)
        for (size_t i = 0; i < n; i++)
            if (all[i].state != DMS_STATE_FINISHED)
                dms_executor_cancel(ex, all[i].execution_id, &err);
    free(all);
    char *reports = find_sanitizer_reports();
    /* Clean up before asserting: a failed assertion ends the teardown. */
    if (ex)
        dms_executor_cleanup(ex, NULL, &err);
    dms_executor_close(ex);
    dms_registry_close(reg);
    ex = NULL;
    reg = NULL;
    ck_assert_msg(!reports, "%s", reports);
}

/* Safety net after the suite: whatever a crashed test left, cleanup of each executor under the root removes
 * it. */
static void cleanup_root(void)
{
    char *dir = dmsu_strdup_printf("%s/process", root);
    DIR *d = opendir(dir);
    struct dirent *de;
    dms_registry *r = NULL;
    dms_error err = {0};
    if (d && dms_registry_open(&r, DMS_BUILD_PLUGIN_DIR, &err) == 0) {
        while ((de = readdir(d))) {
            dms_executor *e = NULL;
            dms_executor_config cfg = {.state_dir = root};
            if (de->d_name[0] != '.' && dms_executor_open(&e, r, "process", de->d_name, &cfg, &err) == 0) {
                dms_executor_cleanup(e, NULL, &err);
                dms_executor_close(e);
            }
        }
    }
    dms_registry_close(r);
    if (d)
        closedir(d);
    free(dir);
}

typedef struct job {
    char *cmd[8];
    char *env[8];
    dms_exec_request req;
} job;

/* A request running `sh -c script` with the tag in its environment (plus extra, a "K=V" or NULL). */
static dms_exec_request *job_sh(job *j, const char *id, const char *script, const char *extra_env)
{
    memset(j, 0, sizeof(*j));
    j->cmd[0] = "sh";
    j->cmd[1] = "-c";
    j->cmd[2] = (char *)script;
    j->env[0] = tag_env;
    j->env[1] = (char *)extra_env;
    j->req.job_id = "job1";
    j->req.execution_id = id;
    j->req.engine.cmd = j->cmd;
    j->req.engine.env = j->env;
    j->req.stop_grace_ms = SHORT_GRACE_MS;
    return &j->req;
}

static char *exec_dir(const char *id)
{
    return dmsu_strdup_printf("%s/process/%s/%s", root, exec_id, id);
}

static bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static void start_ok(const dms_exec_request *req)
{
    dms_error err = {0};
    int r = dms_executor_start(ex, req, &err);
    ck_assert_msg(r == 0, "start %s: %s %s", req->execution_id, dms_error_code_name(r), err.message);
}

static void wait_ok(const char *id, int64_t timeout_ms, dms_exec_result *res)
{
    dms_error err = {0};
    int r = dms_executor_wait(ex, id, timeout_ms, res, &err);
    ck_assert_msg(r == 0, "wait %s: %s %s", id, dms_error_code_name(r), err.message);
}

static void run_ok(const dms_exec_request *req, dms_exec_result *res)
{
    start_ok(req);
    wait_ok(req->execution_id, 30000, res);
}

/* The workload's pid, from status (its handle). */
static pid_t workload_pid(const char *id)
{
    dms_exec_status st;
    dms_error err = {0};
    ck_assert_msg(dms_executor_status(ex, id, &st, &err) == 0, "%s", err.message);
    return (pid_t)strtol(st.handle, NULL, 10);
}

static bool pid_running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static void wait_pid_gone(pid_t pid, int64_t ms)
{
    for (int64_t until = dms_mono_ms() + ms; pid_running(pid) && dms_mono_ms() < until;)
        usleep(10000);
}

/* Reads a log stream to its end: "1:<data>" / "2:<data>" per frame, concatenated. */
static char *read_stream(const char *id, const dms_log_options *opts, int64_t frame_timeout_ms)
{
    dms_error err = {0};
    dms_log_stream *s = NULL;
    ck_assert_msg(dms_executor_log_stream(ex, id, opts, &s, &err) == 0, "%s", err.message);
    dmsu_buf b = {0};
    dmsu_buf_append(&b, "", 0);
    dms_log_frame f;
    int r;
    int64_t last_ts = 0;
    while ((r = dms_log_stream_next(s, frame_timeout_ms, &f, &err)) == 1) {
        ck_assert(f.ts_ns > last_ts);
        last_ts = f.ts_ns;
        dmsu_buf_printf(&b, "%d:%.*s", (int)f.stream, (int)f.len, f.data);
    }
    ck_assert_msg(r == 0, "log stream: %s %s", dms_error_code_name(r), err.message);
    dms_log_stream_free(s);
    return b.data;
}

/* Blocks until the execution's first line has been captured (so the workload runs its script by now). */
static void wait_first_line(const char *id)
{
    dms_error err = {0};
    dms_log_options follow = DMS_LOG_OPTIONS_INIT;
    follow.follow = true;
    dms_log_stream *s;
    dms_log_frame f;
    ck_assert_int_eq(dms_executor_log_stream(ex, id, &follow, &s, &err), 0);
    ck_assert_msg(dms_log_stream_next(s, 5000, &f, &err) == 1, "no first line: %s", err.message);
    dms_log_stream_free(s);
}

static double ms_since(int64_t t0)
{
    return (double)(dms_mono_ms() - t0);
}

/* Processes whose environment holds our tag, or whose command line names our root (shims): "pid cmd" lines.
 */
static char *tagged_processes(void)
{
    dmsu_buf b = {0};
    dmsu_buf_append(&b, "", 0);
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d && (de = readdir(d))) {
        pid_t pid = (pid_t)strtol(de->d_name, NULL, 10);
        if (pid <= 0 || pid == getpid() || !pid_running(pid))
            continue;
        char path[64];
        bool hit = false;
        const char *files[] = {"environ", "cmdline"};
        for (int i = 0; i < 2 && !hit; i++) {
            snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, files[i]);
            char *data = NULL;
            size_t len = 0;
            if (dms_read_file(path, 1 << 20, &data, &len, NULL) == 0) {
                for (size_t k = 0; k + 1 < len; k++)
                    if (data[k] == '\0')
                        data[k] = ' ';
                hit = strstr(data, root) != NULL;
                free(data);
            }
        }
        if (hit)
            dmsu_buf_printf(&b, "%d ", (int)pid);
    }
    if (d)
        closedir(d);
    return b.data;
}

/* ---- exit codes, signals, environment, working dir ---- */

START_TEST(test_process_exit_zero_is_exited_with_code_zero_and_output)
{
    job j;
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "echo hello; echo oops >&2", NULL), &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert_int_eq(res.signal, 0);
    ck_assert_str_eq(res.stdout_data, "hello\n");
    ck_assert_str_eq(res.stderr_data, "oops\n");
    ck_assert(res.started_at_ns > 0 && res.finished_at_ns >= res.started_at_ns);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_nonzero_exit_code_is_reported)
{
    job j;
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "exit 7", NULL), &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_int_eq(res.exit_code, 7);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_signal_we_did_not_send_is_signaled)
{
    job j;
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "kill -SEGV $$", NULL), &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_SIGNALED);
    ck_assert_int_eq(res.signal, SIGSEGV);
    ck_assert_int_eq(res.exit_code, 128 + SIGSEGV);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_environment_is_only_the_requests_plus_default_path)
{
    /* Something in our own environment that must not leak into the workload's. */
    setenv("DMS_PROC_TEST_HOST_ONLY", "leak", 1);
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1", NULL, "FOO=bar baz");
    j.cmd[0] = "env"; /* not a shell: it prints exactly what it got */
    j.cmd[1] = NULL;
    run_ok(req, &res);
    char *want = dmsu_strdup_printf("%s\nFOO=bar baz\n"
                                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
                                    tag_env);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert_str_eq(res.stdout_data, want);
    free(want);
    dms_exec_result_clear(&res);

    /* A PATH of its own replaces the default, and is the one used to find the program. */
    job k;
    req = job_sh(&k, "e2", NULL, "PATH=/usr/bin");
    k.cmd[0] = "env";
    k.cmd[1] = NULL;
    run_ok(req, &res);
    want = dmsu_strdup_printf("%s\nPATH=/usr/bin\n", tag_env);
    ck_assert_str_eq(res.stdout_data, want);
    free(want);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_working_dir_is_the_requested_one_or_a_private_work_dir)
{
    char wd[64];
    tu_mkdtemp(wd, sizeof(wd));
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1", "pwd; echo x > here", NULL);
    req->engine.working_dir = wd;
    run_ok(req, &res);
    char *want = dmsu_strdup_printf("%s\n", wd);
    ck_assert_str_eq(res.stdout_data, want);
    free(want);
    char *file = dmsu_strdup_printf("%s/here", wd);
    ck_assert(path_exists(file));
    unlink(file);
    free(file);
    rmdir(wd);
    dms_exec_result_clear(&res);

    job k;
    run_ok(job_sh(&k, "e2", "pwd", NULL), &res);
    char *dir = exec_dir("e2");
    want = dmsu_strdup_printf("%s/work\n", dir);
    ck_assert_str_eq(res.stdout_data, want);
    free(want);
    free(dir);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_missing_working_dir_fails_the_start_naming_it)
{
    job j;
    dms_error err = {0};
    dms_exec_request *req = job_sh(&j, "e1", "true", NULL);
    req->engine.working_dir = "/nonexistent/dms/wd";
    int r = dms_executor_start(ex, req, &err);
    ck_assert_int_eq(r, -DMS_E_START_FAILED);
    ck_assert_str_eq(err.field, "engine.working_dir");
    ck_assert_ptr_nonnull(strstr(err.message, "/nonexistent/dms/wd"));
}
END_TEST

START_TEST(test_process_workload_gets_only_stdio_fds)
{
    job j;
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "ls /proc/$$/fd", NULL), &res);
    ck_assert_str_eq(res.stdout_data, "0\n1\n2\n");
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_leftovers_die_when_the_main_process_ends)
{
    /* One in the job's process group, one that left it with setsid: both go when sh exits, like a container's
     * processes when its PID 1 does, and the job ends without waiting for their pipes. */
    job j;
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "sleep 30 & echo $!; setsid sleep 31 & echo $!; sleep 0.2", NULL), &res);
    /* From sh's exit to the result: had the setsid'd sleep kept the pipes open, the shim would have waited
     * for its drain deadline (1 s) first. Measured from the job's own end, so a slow machine does not matter.
     */
    double after_exit_ms = (double)(dms_now_ns() - res.finished_at_ns) / 1e6;
    ck_assert_msg(after_exit_ms < 800, "result came %.0f ms after the job ended", after_exit_ms);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    char *end_a = NULL, *end_b = NULL;
    int a = (int)strtol(res.stdout_data, &end_a, 10), b = (int)strtol(end_a, &end_b, 10);
    ck_assert_msg(end_a != res.stdout_data && end_b != end_a, "want two pids: %s", res.stdout_data);
    wait_pid_gone(a, 2000);
    wait_pid_gone(b, 2000);
    ck_assert_msg(!pid_running(a), "same-group leftover %d survived", a);
    ck_assert_msg(!pid_running(b), "setsid leftover %d survived", b);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_many_executions_are_tracked_without_threads)
{
    enum { N = 40 };
    job jobs[N];
    char ids[N][16], scripts[N][64];
    dms_waiter *w[N];
    dms_error err = {0};
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%d", i);
        snprintf(scripts[i], sizeof(scripts[i]), "sleep 0.3; echo %d; exit %d", i, i % 5);
        start_ok(job_sh(&jobs[i], ids[i], scripts[i], NULL));
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(dms_executor_waiter(ex, ids[i], &w[i], &err), 0);
    /* No thread per job: this test process has its own thread plus the library's one directory-watch thread
     * (executor/watch.c), shared by every waiter and log stream, however many jobs there are. */
    DIR *d = opendir("/proc/self/task");
    int threads = 0;
    for (struct dirent *de; (de = readdir(d));)
        threads += de->d_name[0] != '.';
    closedir(d);
    ck_assert_int_le(threads, 2);
    int done = 0;
    bool got[N] = {false};
    for (int64_t until = dms_mono_ms() + 20000; done < N && dms_mono_ms() < until;) {
        struct pollfd p[N];
        for (int i = 0; i < N; i++)
            p[i] = (struct pollfd){.fd = got[i] ? -1 : dms_waiter_fd(w[i]), .events = POLLIN};
        poll(p, N, 1000);
        for (int i = 0; i < N; i++) {
            dms_exec_result res = {0};
            if (got[i] || dms_waiter_result(w[i], 0, &res, &err) != 0)
                continue;
            got[i] = true;
            done++;
            char want[16];
            snprintf(want, sizeof(want), "%d\n", i);
            ck_assert_int_eq(res.exit_code, i % 5);
            ck_assert_str_eq(res.stdout_data, want);
            dms_exec_result_clear(&res);
        }
    }
    ck_assert_int_eq(done, N);
    for (int i = 0; i < N; i++)
        dms_waiter_free(w[i]);
}
END_TEST

/* ---- start errors ---- */

START_TEST(test_process_missing_program_is_start_failed_and_result_failed)
{
    job j;
    dms_error err = {0};
    dms_exec_request *req = job_sh(&j, "e1", NULL, NULL);
    j.cmd[0] = "dms-no-such-program";
    j.cmd[1] = NULL;
    int r = dms_executor_start(ex, req, &err);
    ck_assert_int_eq(r, -DMS_E_START_FAILED);
    ck_assert_str_eq(err.field, "engine.cmd");
    ck_assert_ptr_nonnull(strstr(err.message, "\"dms-no-such-program\""));
    ck_assert_ptr_nonnull(strstr(err.message, "no such file or directory"));
    dms_exec_result res = {0};
    wait_ok("e1", 0, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_FAILED);
    ck_assert_int_eq(res.exit_code, -1);
    ck_assert_ptr_nonnull(strstr(res.error, "\"dms-no-such-program\": no such file"));
    dms_exec_result_clear(&res);
    /* Failed is finished: the id is not run again. */
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_ALREADY_COMPLETE);
}
END_TEST

START_TEST(test_process_empty_command_is_invalid_and_creates_nothing)
{
    dms_error err = {0};
    char *env[] = {tag_env, NULL};
    dms_exec_request req = {
        .job_id = "j", .execution_id = "e1", .engine = {.image = "ignored:latest", .env = env}};
    ck_assert_int_eq(dms_executor_start(ex, &req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.cmd");
    char *dir = exec_dir("e1");
    ck_assert(!path_exists(dir));
    free(dir);
    ck_assert_int_eq(dms_executor_wait(ex, "e1", 0, &(dms_exec_result){0}, &err), -DMS_E_NOT_FOUND);
}
END_TEST

START_TEST(test_process_refuses_what_it_cannot_do_naming_the_field)
{
    job j;
    dms_error err = {0};
    dms_mount m = {.type = DMS_MOUNT_TMPFS, .target = "/data"};
    dms_exec_request *req = job_sh(&j, "e1", "true", NULL);
    req->mounts = &m;
    req->n_mounts = 1;
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "mounts");

    req = job_sh(&j, "e1", "true", NULL);
    dms_port port = {.container_port = 8080};
    req->ports = &port;
    req->n_ports = 1;
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "network.ports");

    req = job_sh(&j, "e1", "true", NULL);
    req->network_mode = DMS_NET_NAMED;
    req->network_name = "droid-net";
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "network.mode");

    req = job_sh(&j, "e1", "true", NULL);
    char *aliases[] = {"web", NULL};
    req->network_mode = DMS_NET_NAMED;
    req->network_name = "droid-net";
    req->network_aliases = aliases;
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "network.aliases");
    ck_assert_msg(strstr(err.message, "no named networks"), "%s", err.message);

    req = job_sh(&j, "e1", "true", NULL);
    char *test[] = {"true", NULL};
    dms_healthcheck hc = {.test = test, .interval_ms = 200};
    req->healthcheck = &hc;
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "healthcheck");
    ck_assert_msg(strstr(err.message, "does not run health checks"), "%s", err.message);

    req = job_sh(&j, "e1", "true", NULL);
    req->resources.disk_bytes = 1 << 30;
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "resources.disk_bytes");

    char *dir = exec_dir("e1");
    ck_assert(!path_exists(dir));
    free(dir);

    /* host and default networks are fine. */
    dms_exec_result res = {0};
    req = job_sh(&j, "e2", "echo ok", NULL);
    req->network_mode = DMS_NET_HOST;
    run_ok(req, &res);
    ck_assert_str_eq(res.stdout_data, "ok\n");
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_network_none_has_only_loopback)
{
    if (geteuid() != 0)
        return; /* needs a network namespace: NOT_SUPPORTED as non-root, tested by the refusal above */
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '", NULL);
    req->network_mode = DMS_NET_NONE;
    run_ok(req, &res);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert_str_eq(res.stdout_data, "lo\n");
    dms_exec_result_clear(&res);
}
END_TEST

/* ---- ids are claimed once ---- */

START_TEST(test_process_same_id_is_already_started_then_already_complete)
{
    char marker[] = "/tmp/dms-proc-runs.XXXXXX";
    int fd = mkstemp(marker);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *script = dmsu_strdup_printf("echo ran >> %s; sleep 1", marker);
    job j;
    dms_error err = {0};
    dms_exec_request *req = job_sh(&j, "e1", script, NULL);
    start_ok(req);
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_ALREADY_STARTED);
    ck_assert_str_eq(err.field, "execution_id");
    dms_exec_result res = {0};
    wait_ok("e1", 10000, &res);
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_ALREADY_COMPLETE);
    /* From another executor object (new registry), too: the claim lives in the state dir. */
    dms_registry *reg2;
    dms_executor *ex2;
    dms_executor_config cfg = {.state_dir = root};
    ck_assert_int_eq(dms_registry_open(&reg2, DMS_BUILD_PLUGIN_DIR, &err), 0);
    ck_assert_int_eq(dms_executor_open(&ex2, reg2, "process", exec_id, &cfg, &err), 0);
    ck_assert_int_eq(dms_executor_start(ex2, req, &err), -DMS_E_ALREADY_COMPLETE);
    dms_executor_close(ex2);
    dms_registry_close(reg2);
    char *data = NULL;
    ck_assert_int_eq(dms_read_file(marker, 4096, &data, NULL, &err), 0);
    ck_assert_str_eq(data, "ran\n");
    free(data);
    unlink(marker);
    free(script);
    dms_exec_result_clear(&res);
}
END_TEST

typedef struct racer {
    pthread_t th;
    const dms_exec_request *req;
    int rc;
} racer;

static void *race_start(void *arg)
{
    racer *r = arg;
    dms_error err = {0};
    r->rc = dms_executor_start(ex, r->req, &err);
    return NULL;
}

START_TEST(test_process_concurrent_starts_of_one_id_run_it_once)
{
    enum { RACERS = 8 };
    char marker[] = "/tmp/dms-proc-race.XXXXXX";
    int fd = mkstemp(marker);
    ck_assert_int_ge(fd, 0);
    close(fd);
    char *script = dmsu_strdup_printf("echo ran >> %s", marker);
    job j;
    dms_exec_request *req = job_sh(&j, "e1", script, NULL);
    racer r[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer){.req = req};
        ck_assert_int_eq(pthread_create(&r[i].th, NULL, race_start, &r[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join(r[i].th, NULL);
        ok += r[i].rc == 0;
        ck_assert_msg(r[i].rc == 0 || r[i].rc == -DMS_E_ALREADY_STARTED || r[i].rc == -DMS_E_ALREADY_COMPLETE,
                      "start: %s", dms_error_code_name(r[i].rc));
    }
    ck_assert_int_eq(ok, 1);
    dms_exec_result res = {0};
    wait_ok("e1", 10000, &res);
    char *data = NULL;
    ck_assert_int_eq(dms_read_file(marker, 4096, &data, NULL, NULL), 0);
    ck_assert_str_eq(data, "ran\n");
    free(data);
    unlink(marker);
    free(script);
    dms_exec_result_clear(&res);
}
END_TEST

static void *race_cancel(void *arg)
{
    (void)arg;
    dms_error err = {0};
    /* Until the execution exists; then once (it waits for the end). */
    while (dms_executor_cancel(ex, "e1", &err) == -DMS_E_NOT_FOUND)
        ;
    return NULL;
}

START_TEST(test_process_cancel_racing_the_start_ends_it_as_cancelled)
{
    /* The cancel lands before exec (start then says CANCELLED and nothing runs) or after (it runs and is
     * stopped); either way the execution ends CANCELLED and nothing keeps running. */
    for (int round = 0; round < 5; round++) {
        char id[16];
        snprintf(id, sizeof(id), "e1");
        job j;
        dms_error err = {0};
        pthread_t th;
        ck_assert_int_eq(pthread_create(&th, NULL, race_cancel, NULL), 0);
        int rc = dms_executor_start(ex, job_sh(&j, id, "exec sleep 30", NULL), &err);
        pthread_join(th, NULL);
        ck_assert_msg(rc == 0 || rc == -DMS_E_CANCELLED, "start: %s %s", dms_error_code_name(rc),
                      err.message);
        dms_exec_result res = {0};
        wait_ok(id, 10000, &res);
        ck_assert_int_eq(res.outcome, DMS_OUTCOME_CANCELLED);
        dms_exec_result_clear(&res);
        ck_assert_int_eq(dms_executor_remove(ex, id, &err), 0);
    }
}
END_TEST

/* ---- cancel and timeouts ---- */

START_TEST(test_process_cancel_stops_the_job_as_cancelled)
{
    job j;
    dms_error err = {0};
    dms_exec_request *req = job_sh(&j, "e1", "echo started; exec sleep 30", NULL);
    req->stop_grace_ms = 20000; /* a cancel that waited for SIGKILL would take this long */
    start_ok(req);
    wait_first_line("e1");
    pid_t pid = workload_pid("e1");
    ck_assert(pid > 0 && pid_running(pid));
    int64_t t0 = dms_mono_ms();
    ck_assert_msg(dms_executor_cancel(ex, "e1", &err) == 0, "%s", err.message);
    ck_assert_msg(ms_since(t0) < 10000, "sleep dies of SIGTERM at once, took %.0f ms", ms_since(t0));
    ck_assert(!pid_running(pid));
    dms_exec_result res = {0};
    wait_ok("e1", 0, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_CANCELLED);
    ck_assert_int_eq(res.signal, SIGTERM);
    ck_assert_str_eq(res.stdout_data, "started\n");
    dms_exec_result_clear(&res);
    ck_assert_int_eq(dms_executor_cancel(ex, "e1", &err), -DMS_E_ALREADY_COMPLETE);
    ck_assert_int_eq(dms_executor_cancel(ex, "nope", &err), -DMS_E_NOT_FOUND);
}
END_TEST

START_TEST(test_process_cancel_kills_a_job_that_ignores_sigterm_after_the_grace)
{
    job j;
    dms_error err = {0};
    dms_exec_request *req = job_sh(&j, "e1", "trap '' TERM; echo ready; while :; do sleep 0.1; done", NULL);
    start_ok(req);
    wait_first_line("e1"); /* the shell has installed its trap */
    int64_t t0 = dms_mono_ms();
    ck_assert_msg(dms_executor_cancel(ex, "e1", &err) == 0, "%s", err.message);
    double took = ms_since(t0);
    ck_assert_msg(took >= SHORT_GRACE_MS - 50 && took < SHORT_GRACE_MS + 3000, "cancel took %.0f ms", took);
    dms_exec_result res = {0};
    wait_ok("e1", 0, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_CANCELLED);
    ck_assert_int_eq(res.signal, SIGKILL);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_run_timeout_ends_as_timed_out)
{
    job j;
    dms_exec_result res = {0};
    dms_error err = {0};
    dms_exec_request *req = job_sh(&j, "e1", "exec sleep 30", NULL);
    req->timeout_ms = 300;
    int64_t t0 = dms_mono_ms();
    ck_assert_msg(dms_executor_run(ex, req, &res, &err) == 0, "%s", err.message);
    ck_assert_msg(ms_since(t0) >= 300 && ms_since(t0) < 3000, "run took %.0f ms", ms_since(t0));
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_TIMED_OUT);
    ck_assert_int_eq(res.signal, SIGTERM);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_wait_timeout_leaves_it_running)
{
    job j;
    dms_error err = {0};
    start_ok(job_sh(&j, "e1", "sleep 1; echo done", NULL));
    dms_exec_result res = {0};
    ck_assert_int_eq(dms_executor_wait(ex, "e1", 200, &res, &err), -DMS_E_TIMEOUT);
    dms_exec_status st;
    ck_assert_int_eq(dms_executor_status(ex, "e1", &st, &err), 0);
    ck_assert_int_eq(st.state, DMS_STATE_RUNNING);
    ck_assert_str_eq(st.job_id, "job1");
    ck_assert(pid_running((pid_t)strtol(st.handle, NULL, 10)));
    wait_ok("e1", 10000, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_str_eq(res.stdout_data, "done\n");
    ck_assert_int_eq(dms_executor_status(ex, "e1", &st, &err), 0);
    ck_assert_int_eq(st.state, DMS_STATE_FINISHED);
    ck_assert_int_eq(st.outcome, DMS_OUTCOME_EXITED);
    ck_assert_int_eq(st.exit_code, 0);
    dms_exec_result_clear(&res);
    ck_assert_int_eq(dms_executor_wait(ex, "unknown", 0, &res, &err), -DMS_E_NOT_FOUND);
}
END_TEST

/* A disabled check asks for nothing, so it is no reason to refuse; the health is none, as for every job here.
 */
START_TEST(test_process_runs_a_disabled_health_check_and_reports_no_health)
{
    job j;
    dms_error err = {0};
    dms_healthcheck hc = {.disable = true};
    dms_exec_request *req = job_sh(&j, "e1", "sleep 1", NULL);
    req->healthcheck = &hc;
    start_ok(req);
    dms_exec_status st;
    ck_assert_int_eq(dms_executor_status(ex, "e1", &st, &err), 0);
    ck_assert_int_eq(st.state, DMS_STATE_RUNNING);
    ck_assert_int_eq(st.health, DMS_HEALTH_NONE);
    dms_exec_result res = {0};
    wait_ok("e1", 10000, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_waiter_fd_becomes_readable_when_it_ends)
{
    job j;
    dms_error err = {0};
    start_ok(job_sh(&j, "e1", "sleep 0.3; exit 4", NULL));
    dms_waiter *w;
    ck_assert_int_eq(dms_executor_waiter(ex, "e1", &w, &err), 0);
    dms_exec_result res = {0};
    ck_assert_int_eq(dms_waiter_result(w, 0, &res, &err), -DMS_E_TIMEOUT);
    ck_assert_int_eq(dms_waiter_result(w, 10000, &res, &err), 0);
    ck_assert_int_eq(res.exit_code, 4);
    dms_exec_result_clear(&res);
    dms_waiter_free(w);
}
END_TEST

/* ---- logs ---- */

START_TEST(test_process_logs_keep_stdout_and_stderr_apart_with_tail)
{
    job j;
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "echo o1; echo e1 >&2; echo o2; echo e2 >&2; printf o3", NULL), &res);
    dms_exec_result_clear(&res);
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    opts.no_stderr = true;
    char *got = read_stream("e1", &opts, 1000);
    ck_assert_str_eq(got, "1:o1\n1:o2\n1:o3");
    free(got);
    opts = (dms_log_options)DMS_LOG_OPTIONS_INIT;
    opts.no_stdout = true;
    got = read_stream("e1", &opts, 1000);
    ck_assert_str_eq(got, "2:e1\n2:e2\n");
    free(got);
    opts = (dms_log_options)DMS_LOG_OPTIONS_INIT;
    opts.no_stderr = true;
    opts.tail_lines = 2;
    got = read_stream("e1", &opts, 1000);
    ck_assert_str_eq(got, "1:o2\n1:o3");
    free(got);
    opts.tail_lines = 0;
    got = read_stream("e1", &opts, 1000);
    ck_assert_str_eq(got, "");
    free(got);
}
END_TEST

START_TEST(test_process_log_follow_gets_live_lines_and_ends_with_the_job)
{
    job j;
    start_ok(job_sh(&j, "e1", "echo first; sleep 0.5; echo second >&2; sleep 0.3; echo third", NULL));
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    opts.follow = true;
    int64_t t0 = dms_mono_ms();
    char *got = read_stream("e1", &opts, 10000);
    ck_assert_str_eq(got, "1:first\n2:second\n1:third\n");
    ck_assert_msg(ms_since(t0) >= 700, "the follow ended with the job, not before (%.0f ms)", ms_since(t0));
    free(got);
    /* since: only what came at or after a timestamp. */
    dms_error err = {0};
    dms_log_stream *s;
    dms_log_frame f;
    dms_log_options all = DMS_LOG_OPTIONS_INIT;
    ck_assert_int_eq(dms_executor_log_stream(ex, "e1", &all, &s, &err), 0);
    ck_assert_int_eq(dms_log_stream_next(s, 0, &f, &err), 1);
    ck_assert_int_eq(dms_log_stream_next(s, 0, &f, &err), 1);
    int64_t second_ts = f.ts_ns;
    dms_log_stream_free(s);
    opts = (dms_log_options)DMS_LOG_OPTIONS_INIT;
    opts.since_ns = second_ts;
    got = read_stream("e1", &opts, 1000);
    ck_assert_str_eq(got, "2:second\n1:third\n");
    free(got);
    ck_assert_int_eq(dms_executor_log_stream(ex, "unknown", &all, &s, &err), -DMS_E_NOT_FOUND);
}
END_TEST

START_TEST(test_process_runs_as_the_requested_user)
{
    if (geteuid() != 0)
        return; /* switching users needs root; as non-root it is NOT_SUPPORTED */
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1", "id -u; id -g; touch x && echo wrote", NULL);
    req->engine.user = "nobody";
    run_ok(req, &res);
    ck_assert_str_eq(res.stdout_data, "65534\n65534\nwrote\n"); /* its private work dir is its own */
    dms_exec_result_clear(&res);
    req = job_sh(&j, "e2", "id -u; id -g", NULL);
    req->engine.user = "1234:5678";
    run_ok(req, &res);
    ck_assert_str_eq(res.stdout_data, "1234\n5678\n");
    dms_exec_result_clear(&res);
    dms_error err = {0};
    req = job_sh(&j, "e3", "true", NULL);
    req->engine.user = "dms-no-such-user";
    ck_assert_int_eq(dms_executor_start(ex, req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.user");
}
END_TEST

START_TEST(test_process_large_output_is_truncated_in_the_result_and_whole_in_the_log)
{
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1", "seq 1 100000", NULL);
    req->limits.result_output_bytes = 1000;
    run_ok(req, &res);
    ck_assert(res.stdout_truncated);
    ck_assert_int_eq(res.stdout_len, 1000);
    ck_assert_str_eq(res.stdout_data + 1000 - 7, "100000\n");
    ck_assert(!res.stderr_truncated);
    dms_exec_result_clear(&res);
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    char *all = read_stream("e1", &opts, 1000);
    ck_assert_int_eq(strlen(all), 588895 + 2 * 100000); /* seq's bytes plus "1:" per line */
    ck_assert_int_eq(strncmp(all, "1:1\n1:2\n", 8), 0);
    free(all);
}
END_TEST

START_TEST(test_process_capture_files_stay_within_their_cap)
{
    /* Short lines cost 28 bytes of record header each: the shim's flushes must stay below the cap for the log
     * store's rotation to hold it. */
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1", "seq 1 500000", NULL);
    req->limits.log_file_bytes = 64 * 1024;
    run_ok(req, &res);
    ck_assert_str_eq(res.stdout_data + res.stdout_len - 7, "500000\n");
    dms_exec_result_clear(&res);
    char *dir = exec_dir("e1");
    const char *files[] = {"log", "log.1"};
    for (int i = 0; i < 2; i++) {
        char *path = dmsu_strdup_printf("%s/%s", dir, files[i]);
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_msg(st.st_size <= 64 * 1024, "%s is %lld bytes", path, (long long)st.st_size);
        free(path);
    }
    free(dir);
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    opts.tail_lines = 1;
    char *last = read_stream("e1", &opts, 1000);
    ck_assert_str_eq(last, "1:500000\n");
    free(last);
}
END_TEST

/* ---- recover, a dead shim, cleanup ---- */

START_TEST(test_process_recover_from_a_second_executor_finds_the_running_job_and_its_result)
{
    job j;
    dms_error err = {0};
    start_ok(job_sh(&j, "e1", "sleep 1; echo done", NULL));
    job k;
    dms_exec_result res = {0};
    run_ok(job_sh(&k, "e2", "exit 3", NULL), &res);
    dms_exec_result_clear(&res);

    dms_registry *reg2;
    dms_executor *ex2;
    dms_executor_config cfg = {.state_dir = root};
    ck_assert_int_eq(dms_registry_open(&reg2, DMS_BUILD_PLUGIN_DIR, &err), 0);
    ck_assert_int_eq(dms_executor_open(&ex2, reg2, "process", exec_id, &cfg, &err), 0);
    ck_assert_ptr_ne(ex2, ex);
    size_t adopted = 0;
    ck_assert_msg(dms_executor_recover(ex2, &adopted, &err) == 0, "%s", err.message);
    ck_assert_int_eq(adopted, 2);
    dms_exec_status st;
    ck_assert_int_eq(dms_executor_status(ex2, "e1", &st, &err), 0);
    ck_assert_int_eq(st.state, DMS_STATE_RUNNING);
    ck_assert(pid_running((pid_t)strtol(st.handle, NULL, 10)));
    dms_exec_status *all = NULL;
    size_t n = 0;
    ck_assert_int_eq(dms_executor_list(ex2, &all, &n, &err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(all[0].execution_id, "e1"); /* sorted by the library, whatever the plugin's order */
    ck_assert_str_eq(all[1].execution_id, "e2");
    ck_assert_int_eq(all[0].state, DMS_STATE_RUNNING);
    free(all);
    ck_assert_int_eq(dms_executor_wait(ex2, "e1", 10000, &res, &err), 0);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_str_eq(res.stdout_data, "done\n");
    dms_exec_result_clear(&res);
    ck_assert_int_eq(dms_executor_wait(ex2, "e2", 0, &res, &err), 0);
    ck_assert_int_eq(res.exit_code, 3);
    dms_exec_result_clear(&res);
    dms_executor_close(ex2);
    dms_registry_close(reg2);
}
END_TEST

START_TEST(test_process_a_dead_shim_makes_the_job_lost_and_its_workload_killed)
{
    job j;
    dms_error err = {0};
    start_ok(job_sh(&j, "e1", "echo before; exec sleep 30", NULL));
    wait_first_line("e1");
    pid_t pid = workload_pid("e1");
    char *dir = exec_dir("e1");
    char *path = dmsu_strdup_printf("%s/shim.json", dir);
    char *data = NULL;
    ck_assert_int_eq(dms_read_file(path, 4096, &data, NULL, &err), 0);
    const char *sp = strstr(data, "\"shim_pid\":");
    ck_assert_ptr_nonnull(sp);
    pid_t shim = (pid_t)strtol(sp + strlen("\"shim_pid\":"), NULL, 10);
    ck_assert(shim > 0 && kill(shim, SIGKILL) == 0);
    wait_pid_gone(shim, 5000);
    dms_exec_result res = {0};
    wait_ok("e1", 10000, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_LOST);
    ck_assert_ptr_nonnull(strstr(res.error, "supervisor"));
    ck_assert_str_eq(res.stdout_data, "before\n");
    wait_pid_gone(pid, 3000);
    ck_assert(!pid_running(pid));
    dms_exec_result_clear(&res);
    free(data);
    free(path);
    free(dir);
}
END_TEST

START_TEST(test_process_supervisor_gets_no_host_environment_and_no_host_fd)
{
    /* What the host holds stays the host's: a secret in its environment, a file it opened without O_CLOEXEC.
     */
    setenv("DMS_PROC_TEST_HOST_SECRET", "host-only", 1);
    char *leak_path = dmsu_strdup_printf("%s/host-only.fd", root);
    int leak = open(leak_path, O_WRONLY | O_CREAT, 0600); /* no O_CLOEXEC, on purpose */
    ck_assert_int_ge(leak, 0);
    job j;
    dms_error err = {0};
    start_ok(job_sh(&j, "e1", "echo up; exec sleep 30", NULL));
    wait_first_line("e1");
    char *dir = exec_dir("e1");
    char *path = dmsu_strdup_printf("%s/shim.json", dir);
    char *data = NULL;
    ck_assert_int_eq(dms_read_file(path, 4096, &data, NULL, &err), 0);
    const char *sp = strstr(data, "\"shim_pid\":");
    ck_assert_ptr_nonnull(sp);
    pid_t shim = (pid_t)strtol(sp + strlen("\"shim_pid\":"), NULL, 10);
    char proc[64], *env = NULL;
    size_t len = 0;
    snprintf(proc, sizeof(proc), "/proc/%d/environ", (int)shim);
    ck_assert_int_eq(dms_read_file(proc, 1 << 20, &env, &len, &err), 0);
    ck_assert_ptr_null(memmem(env, len, "DMS_PROC_TEST_HOST_SECRET", 25));
    ck_assert_ptr_nonnull(memmem(env, len, "PATH=", 5));
    snprintf(proc, sizeof(proc), "/proc/%d/fd", (int)shim);
    DIR *d = opendir(proc);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        char link[PATH_MAX + 64], target[PATH_MAX] = "";
        snprintf(link, sizeof(link), "%s/%s", proc, de->d_name);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n > 0)
            target[n] = '\0';
        ck_assert_msg(strcmp(target, leak_path) != 0, "the supervisor holds the host's fd %s", de->d_name);
    }
    closedir(d);
    ck_assert_msg(dms_executor_cancel(ex, "e1", &err) == 0, "%s", err.message);
    close(leak);
    unsetenv("DMS_PROC_TEST_HOST_SECRET");
    free(env);
    free(data);
    free(path);
    free(dir);
    free(leak_path);
}
END_TEST

START_TEST(test_process_recover_does_not_trust_a_pid_with_another_start_time)
{
    /* A state dir whose recorded pids now belong to somebody else (pid reuse): simulated with a live process
     * of ours and a start time that is not its own. recover must not signal it, and the execution is LOST. */
    pid_t victim = fork();
    ck_assert_int_ge(victim, 0);
    if (victim == 0) {
        setsid();
        execlp("sleep", "sleep", "30", (char *)NULL);
        _exit(127);
    }
    char *dir = exec_dir("e1");
    ck_assert_int_eq(dms_mkdir_p(dir, true, NULL), 0);
    char *state = dmsu_strdup_printf("{\"shim_pid\":%d,\"shim_start\":1,\"pid\":%d,\"start_time\":1,"
                                     "\"started_at_ns\":5}",
                                     (int)victim, (int)victim);
    char *path = dmsu_strdup_printf("%s/shim.json", dir);
    ck_assert_int_eq(dms_write_file_atomic(path, state, strlen(state), NULL), 0);
    usleep(100 * 1000);
    ck_assert(pid_running(victim));
    size_t adopted = 0;
    dms_error err = {0};
    ck_assert_int_eq(dms_executor_recover(ex, &adopted, &err), 0);
    ck_assert_int_eq(adopted, 1);
    ck_assert_msg(pid_running(victim), "recover killed a process that only shares a pid with the job");
    dms_exec_result res = {0};
    wait_ok("e1", 0, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_LOST);
    dms_exec_result_clear(&res);
    kill(victim, SIGKILL);
    waitpid(victim, NULL, 0);
    free(path);
    free(state);
    free(dir);
}
END_TEST

START_TEST(test_process_remove_forgets_a_finished_job_and_refuses_a_running_one)
{
    job j, k;
    dms_error err = {0};
    dms_exec_result res = {0};
    run_ok(job_sh(&j, "e1", "true", NULL), &res);
    dms_exec_result_clear(&res);
    start_ok(job_sh(&k, "e2", "exec sleep 30", NULL));
    ck_assert_int_eq(dms_executor_remove(ex, "e2", &err), -DMS_E_CONFLICT);
    ck_assert_int_eq(dms_executor_remove(ex, "e1", &err), 0);
    char *dir = exec_dir("e1");
    ck_assert(!path_exists(dir));
    free(dir);
    ck_assert_int_eq(dms_executor_status(ex, "e1", &(dms_exec_status){0}, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(dms_executor_remove(ex, "e1", &err), -DMS_E_NOT_FOUND);
}
END_TEST

START_TEST(test_process_cleanup_kills_and_removes_everything_and_is_idempotent)
{
    job a, b, c;
    dms_error err = {0};
    dms_exec_result res = {0};
    run_ok(job_sh(&a, "done1", "true", NULL), &res);
    dms_exec_result_clear(&res);
    start_ok(job_sh(&b, "live1", "exec sleep 30", NULL));
    /* One that ignores SIGTERM, with a long grace: cleanup must not wait for it. */
    dms_exec_request *ignorer = job_sh(&c, "live2", "trap '' TERM; sleep 30 & wait", NULL);
    ignorer->stop_grace_ms = 30000;
    start_ok(ignorer);
    pid_t p1 = workload_pid("live1"), p2 = workload_pid("live2");
    /* From a second executor object: cleanup finds the work through the state dir, not memory. */
    dms_registry *reg2;
    dms_executor *ex2;
    dms_executor_config cfg = {.state_dir = root};
    ck_assert_int_eq(dms_registry_open(&reg2, DMS_BUILD_PLUGIN_DIR, &err), 0);
    ck_assert_int_eq(dms_executor_open(&ex2, reg2, "process", exec_id, &cfg, &err), 0);
    dms_cleanup_report rep;
    int64_t t0 = dms_mono_ms();
    ck_assert_msg(dms_executor_cleanup(ex2, &rep, &err) == 0, "%s", err.message);
    ck_assert_msg(ms_since(t0) < 15000, "cleanup took %.0f ms: it waited for the grace period", ms_since(t0));
    ck_assert_int_eq(rep.containers, 2);
    ck_assert_int_eq(rep.state_dirs, 3);
    ck_assert_int_eq(rep.errors, 0);
    ck_assert(!pid_running(p1));
    ck_assert(!pid_running(p2));
    char *dir = dmsu_strdup_printf("%s/process/%s", root, exec_id);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    int entries = 0;
    while ((de = readdir(d)))
        entries += de->d_name[0] != '.';
    closedir(d);
    ck_assert_int_eq(entries, 0);
    free(dir);
    ck_assert_int_eq(dms_executor_cleanup(ex2, &rep, &err), 0);
    ck_assert_int_eq(rep.containers, 0);
    ck_assert_int_eq(rep.state_dirs, 0);
    ck_assert_int_eq(dms_executor_wait(ex, "live1", 0, &res, &err), -DMS_E_NOT_FOUND);
    dms_executor_close(ex2);
    dms_registry_close(reg2);
}
END_TEST

/* ---- limits ---- */

/* Whether this machine gives us a writable cgroup for a controller (what the backend probes, done by hand).
 */
static bool cgroup_controller_usable(const char *ctrl)
{
    char *data = NULL;
    bool ok = false;
    if (dms_read_file("/proc/self/cgroup", 1 << 16, &data, NULL, NULL) < 0)
        return false;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        if (strcmp(c1 + 1, ctrl) == 0) {
            char *probe =
                dmsu_strdup_printf("/sys/fs/cgroup/%s%s/dms-test-probe.%d", ctrl, c2 + 1, (int)getpid());
            ok = mkdir(probe, 0755) == 0 && rmdir(probe) == 0;
            free(probe);
        }
    }
    free(data);
    return ok;
}

START_TEST(test_process_memory_limit_in_a_cgroup_ends_as_oom_killed)
{
    if (!cgroup_controller_usable("memory")) {
        fprintf(stderr, "skip: no writable v1 memory cgroup here\n");
        return;
    }
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(
        &j, "e1", "grep memory /proc/self/cgroup; head -c 200000000 /dev/zero | tail > /dev/null", NULL);
    req->resources.memory_bytes = 32LL * 1024 * 1024;
    run_ok(req, &res);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_OOM_KILLED);
    ck_assert(res.oom_killed);
    char *cg = dmsu_strdup_printf("dms-proc@%s@e1\n", exec_id);
    ck_assert_msg(strstr(res.stdout_data, cg), "the job ran in its cgroup: %s", res.stdout_data);
    free(cg);
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_pids_limit_in_a_cgroup_stops_forks)
{
    if (!cgroup_controller_usable("pids")) {
        fprintf(stderr, "skip: no writable v1 pids cgroup here\n");
        return;
    }
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req =
        job_sh(&j, "e1", "for i in 1 2 3 4 5 6 7 8; do sleep 1 & done; wait; echo all", NULL);
    req->resources.pids_limit = 4;
    run_ok(req, &res);
    ck_assert_ptr_null(strstr(res.stdout_data, "all"));
    ck_assert_ptr_nonnull(strstr(res.stderr_data, "fork"));
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_cpu_limit_sets_the_cfs_quota_of_its_cgroup)
{
    if (!cgroup_controller_usable("cpu")) {
        fprintf(stderr, "skip: no writable v1 cpu cgroup here\n");
        return;
    }
    job j;
    dms_exec_result res = {0};
    dms_exec_request *req = job_sh(&j, "e1",
                                   "d=/sys/fs/cgroup/cpu$(grep ':cpu:' /proc/self/cgroup | cut -d: -f3); cat "
                                   "$d/cpu.cfs_quota_us $d/cpu.cfs_period_us",
                                   NULL);
    req->resources.cpu_millis = 250;
    run_ok(req, &res);
    ck_assert_str_eq(res.stdout_data, "25000\n100000\n");
    dms_exec_result_clear(&res);
}
END_TEST

START_TEST(test_process_without_cgroups_memory_falls_back_to_rlimit_and_the_rest_is_refused)
{
    dms_error err = {0};
    dms_executor *nocg;
    char id[48];
    snprintf(id, sizeof(id), "%s-nocg", exec_id);
    char *opts[] = {"cgroups=off", NULL};
    dms_executor_config cfg = {.state_dir = root, .options = opts};
    ck_assert_msg(dms_executor_open(&nocg, reg, "process", id, &cfg, &err) == 0, "%s", err.message);
    job j;
    dms_exec_result res = {0};
    /* RLIMIT_AS: the allocation fails inside the program instead of an OOM kill. */
    dms_exec_request *req = job_sh(&j, "e1", "head -c 200000000 /dev/zero | tail > /dev/null", NULL);
    req->resources.memory_bytes = 64LL * 1024 * 1024;
    ck_assert_int_eq(dms_executor_run(nocg, req, &res, &err), 0);
    ck_assert_int_eq(res.outcome, DMS_OUTCOME_EXITED);
    ck_assert_int_ne(res.exit_code, 0);
    ck_assert(!res.oom_killed);
    ck_assert_ptr_nonnull(strstr(res.stderr_data, "memory"));
    dms_exec_result_clear(&res);
    if (geteuid() == 0) {
        req = job_sh(&j, "e2", "true", NULL);
        req->resources.pids_limit = 10;
        ck_assert_int_eq(dms_executor_start(nocg, req, &err), -DMS_E_NOT_SUPPORTED);
        ck_assert_str_eq(err.field, "resources.pids_limit");
    }
    req = job_sh(&j, "e3", "true", NULL);
    req->resources.cpu_millis = 500;
    ck_assert_int_eq(dms_executor_start(nocg, req, &err), -DMS_E_NOT_SUPPORTED);
    ck_assert_str_eq(err.field, "resources.cpu_millis");
    dms_cleanup_report rep;
    ck_assert_int_eq(dms_executor_cleanup(nocg, &rep, &err), 0);
    ck_assert_int_eq(rep.state_dirs, 1);
    dms_executor_close(nocg);
    /* Unknown options are refused, so a typo does not silently do nothing. */
    char *bad[] = {"cgroup=off", NULL};
    cfg.options = bad;
    ck_assert_int_eq(dms_executor_open(&nocg, reg, "process", "other", &cfg, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "cgroup=off"));
}
END_TEST

/* ---- the last test: nothing left behind ---- */

START_TEST(test_process_suite_leaves_no_processes_and_no_cgroups)
{
    char *left = tagged_processes();
    ck_assert_msg(left[0] == '\0', "processes left behind: %s", left);
    free(left);
    const char *bases[] = {"/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/cpu"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bases); i++) {
        char *cmd = dmsu_strdup_printf("find %s -maxdepth 4 -name 'dms-proc@%s-*' 2>/dev/null | grep -q .",
                                       bases[i], run_tag);
        ck_assert_msg(system(cmd) != 0, "cgroups left under %s", bases[i]);
        free(cmd);
    }
}
END_TEST

static Suite *process_suite(void)
{
    Suite *s = suite_create("process");
    TCase *tc = tcase_create("jobs");
    tcase_set_timeout(tc, CASE_TIMEOUT_S);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_process_exit_zero_is_exited_with_code_zero_and_output);
    tcase_add_test(tc, test_process_nonzero_exit_code_is_reported);
    tcase_add_test(tc, test_process_signal_we_did_not_send_is_signaled);
    tcase_add_test(tc, test_process_environment_is_only_the_requests_plus_default_path);
    tcase_add_test(tc, test_process_working_dir_is_the_requested_one_or_a_private_work_dir);
    tcase_add_test(tc, test_process_missing_working_dir_fails_the_start_naming_it);
    tcase_add_test(tc, test_process_workload_gets_only_stdio_fds);
    tcase_add_test(tc, test_process_leftovers_die_when_the_main_process_ends);
    tcase_add_test(tc, test_process_many_executions_are_tracked_without_threads);
    tcase_add_test(tc, test_process_missing_program_is_start_failed_and_result_failed);
    tcase_add_test(tc, test_process_empty_command_is_invalid_and_creates_nothing);
    tcase_add_test(tc, test_process_refuses_what_it_cannot_do_naming_the_field);
    tcase_add_test(tc, test_process_network_none_has_only_loopback);
    tcase_add_test(tc, test_process_same_id_is_already_started_then_already_complete);
    tcase_add_test(tc, test_process_concurrent_starts_of_one_id_run_it_once);
    tcase_add_test(tc, test_process_cancel_racing_the_start_ends_it_as_cancelled);
    tcase_add_test(tc, test_process_cancel_stops_the_job_as_cancelled);
    tcase_add_test(tc, test_process_cancel_kills_a_job_that_ignores_sigterm_after_the_grace);
    tcase_add_test(tc, test_process_run_timeout_ends_as_timed_out);
    tcase_add_test(tc, test_process_wait_timeout_leaves_it_running);
    tcase_add_test(tc, test_process_runs_a_disabled_health_check_and_reports_no_health);
    tcase_add_test(tc, test_process_waiter_fd_becomes_readable_when_it_ends);
    tcase_add_test(tc, test_process_logs_keep_stdout_and_stderr_apart_with_tail);
    tcase_add_test(tc, test_process_log_follow_gets_live_lines_and_ends_with_the_job);
    tcase_add_test(tc, test_process_runs_as_the_requested_user);
    tcase_add_test(tc, test_process_large_output_is_truncated_in_the_result_and_whole_in_the_log);
    tcase_add_test(tc, test_process_capture_files_stay_within_their_cap);
    tcase_add_test(tc, test_process_recover_from_a_second_executor_finds_the_running_job_and_its_result);
    tcase_add_test(tc, test_process_recover_does_not_trust_a_pid_with_another_start_time);
    tcase_add_test(tc, test_process_a_dead_shim_makes_the_job_lost_and_its_workload_killed);
    tcase_add_test(tc, test_process_supervisor_gets_no_host_environment_and_no_host_fd);
    tcase_add_test(tc, test_process_remove_forgets_a_finished_job_and_refuses_a_running_one);
    tcase_add_test(tc, test_process_cleanup_kills_and_removes_everything_and_is_idempotent);
    tcase_add_test(tc, test_process_memory_limit_in_a_cgroup_ends_as_oom_killed);
    tcase_add_test(tc, test_process_pids_limit_in_a_cgroup_stops_forks);
    tcase_add_test(tc, test_process_cpu_limit_sets_the_cfs_quota_of_its_cgroup);
    tcase_add_test(tc, test_process_without_cgroups_memory_falls_back_to_rlimit_and_the_rest_is_refused);
    suite_add_tcase(s, tc);
    /* Runs after every other case (Check runs cases in order), in a fresh child. */
    TCase *last = tcase_create("leaks");
    tcase_add_test(last, test_process_suite_leaves_no_processes_and_no_cgroups);
    suite_add_tcase(s, last);
    return s;
}

int main(void)
{
    snprintf(root, sizeof(root), "/tmp/dms-test-process.XXXXXX");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 2;
    }
    snprintf(tag_env, sizeof(tag_env), TAG_VAR "=%s", root);
    snprintf(run_tag, sizeof(run_tag), "t%s", strrchr(root, '.') + 1);
    int rc = tu_run(process_suite());
    cleanup_root();
    dms_rm_rf(root, NULL);
    return rc;
}
