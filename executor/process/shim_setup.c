/* shim_setup.c - dms-proc-shim before the workload runs: the spec, the capture, signals, the ctl FIFO and
 * cgroups (shim_prepare_run), then the fork, the move into the cgroups and the exec handshake
 * (shim_spawn_workload); and shim.json, which says who supervises the workload. shim.c supervises what these
 * start. */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

int shim_write_state(shim *s, dms_error *err)
{
    uint64_t my_start = 0;
    proc_stat_read(getpid(), &my_start, NULL);
    _cleanup_json_ json_t *o = json_pack(
        "{s:i,s:I,s:i,s:I,s:I}", "shim_pid", (int)getpid(), "shim_start", (json_int_t)my_start, "pid",
        (int)s->child, "start_time", (json_int_t)s->child_start, "started_at_ns", (json_int_t)s->started_ns);
    _cleanup_free_ char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" PROC_SHIM_FILE, s->dir);
    if (!json)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return dms_write_file_atomic(path, json, strlen(json), err);
}

static int setup_signals(shim *s, dms_error *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    s->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (s->sfd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "signalfd");
    return 0;
}

/* Everything before the fork: spec, capture, excerpt rings, signals, ctl FIFO, cgroups, and a cancel that
 * came first. 0, or 1 once fail_start() has reported and written the result. */
int shim_prepare_run(shim *s)
{
    dms_error e = {0};
    char path[PATH_MAX];
    int r;
    if ((r = proc_spec_load(s->dir, &s->sp, &e)) < 0) {
        /* Without a spec we cannot even open the capture with its limits; report and leave a result. */
        s->sp.result_output_bytes = DMS_DEFAULT_RESULT_OUTPUT_BYTES;
        dms_error e2;
        if (dms_logstore_writer_open(&s->log, s->dir, 0, &e2) < 0)
            s->log = NULL;
        return shim_fail_start(s, &e);
    }
    shim_log_set_exec(s->sp.execution_id);
    if ((r = dms_logstore_writer_open(&s->log, s->dir, s->sp.log_file_bytes, &e)) < 0)
        return shim_fail_start(s, &e);
    for (int st = DMS_STREAM_STDOUT; st <= DMS_STREAM_STDERR; st++)
        if (proc_tail_init(&s->tail[st], (size_t)s->sp.result_output_bytes) < 0) {
            dms_error_set(&e, DMS_E_NOMEM, NULL, "out of memory for the output excerpts");
            return shim_fail_start(s, &e);
        }
    if ((r = setup_signals(s, &e)) < 0)
        return shim_fail_start(s, &e);
    snprintf(path, sizeof(path), "%s/" PROC_CTL_FIFO, s->dir);
    /* O_RDWR: we are a writer too, so the FIFO never reports EOF when a canceller closes it. */
    s->ctl_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (s->ctl_fd < 0) {
        dms_error_set_errno(&e, DMS_E_IO, errno, "open %s", path);
        return shim_fail_start(s, &e);
    }
    for (size_t i = 0; i < s->sp.n_cgroups; i++) {
        proc_cg_item *ci = &s->sp.cgroups[i];
        if ((r = proc_cgroup_setup(ci->dir, ci->version, ci->ctrl, ci->value, &e)) < 0)
            return shim_fail_start(s, &e);
    }
    /* Cancelled while we were being started: do not run it at all. */
    snprintf(path, sizeof(path), "%s/" PROC_CANCEL_FILE, s->dir);
    if (access(path, F_OK) == 0) {
        dms_error_set(&e, DMS_E_CANCELLED, NULL, "cancelled before the workload started");
        return shim_fail_start_as(s, &e, DMS_OUTCOME_CANCELLED);
    }
    return 0;
}

/* Forks the workload, puts it into its cgroups, lets it exec and learns whether that worked. 0, or 1 once
 * fail_start() has reported and written the result. */
int shim_spawn_workload(shim *s)
{
    dms_error e = {0};
    int r = 0;
    int out[2], errp[2], fail[2], go[2];
    if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || pipe2(fail, O_CLOEXEC) || pipe2(go, O_CLOEXEC)) {
        dms_error_set_errno(&e, DMS_E_IO, errno, "pipe");
        return shim_fail_start(s, &e);
    }
    pid_t pid = fork();
    if (pid < 0) {
        dms_error_set_errno(&e, DMS_E_START_FAILED, errno, "fork");
        return shim_fail_start(s, &e);
    }
    if (pid == 0)
        proc_child_run(&s->sp, go[0], go[1], fail[1], out[1], errp[1]);
    s->child = pid;
    close(out[1]);
    close(errp[1]);
    close(fail[1]);
    close(go[0]);
    s->out_fd = out[0];
    s->err_fd = errp[0];
    fcntl(s->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(s->err_fd, F_SETFL, O_NONBLOCK);
    /* Into the cgroups before it runs a single instruction of the workload. */
    for (size_t i = 0; i < s->sp.n_cgroups && r == 0; i++)
        r = proc_cgroup_attach(s->sp.cgroups[i].dir, pid, &e);
    if (r < 0) {
        close(go[1]);
        close(fail[0]);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return shim_fail_start(s, &e);
    }
    proc_stat_read(pid, &s->child_start, NULL);
    ssize_t w = write(go[1], "g", 1);
    close(go[1]);
    proc_exec_failure f = {0};
    ssize_t n;
    do
        n = read(fail[0], &f, sizeof(f));
    while (n < 0 && errno == EINTR);
    close(fail[0]);
    if (w != 1 || n != 0) {
        if (n != (ssize_t)sizeof(f))
            f = (proc_exec_failure){.stage = PROC_STAGE_SETUP, .err = w != 1 ? errno : EIO};
        waitpid(pid, NULL, 0);
        /* Output the failed child wrote (none normally) still goes to the capture. */
        proc_child_describe(&s->sp, &f, &e);
        return shim_fail_start(s, &e);
    }
    return 0;
}
