/* shim.c - dms-proc-shim, the per-execution supervisor of the process backend (conmon's role for podman).
 *
 * Why a separate program: the plugin lives inside its host (dmsd, dms-exec, a test runner, Python), which has
 * threads. After fork() in a threaded process only async-signal-safe calls are allowed until exec, and a job
 * must outlive the process that started it. So the plugin posix_spawn()s this binary, which is
 * single-threaded: it may fork, read JSON, write logs and results freely, and nothing it does depends on its
 * starter staying alive.
 *
 *   dms-proc-shim run <execution dir>       (fd 3: status pipe to the starter, fd 4: the dir's owner lock)
 *
 * Stage 1 (spawned as a session leader) forks stage 2 and exits at once, so the supervisor is nobody's child
 * to reap (the starter only waits for stage 1) and can never get a controlling terminal. Stage 2 reads
 * spec.json, prepares cgroups, forks the workload (its own session and process group), tells the starter over
 * fd 3 whether exec succeeded (a CLOEXEC pipe from the workload: EOF means exec worked), then captures
 * stdout/stderr into the log store, enforces the run timeout, serves cancel requests from the ctl FIFO, and
 * writes result.json when the workload ends. It holds the owner lock until it exits: a free lock without a
 * result means it died. */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define READ_CHUNK_BYTES (64 * 1024)
/* Capture slices: see capture(). */
#define CAPTURE_SLICE_BYTES 4096
#define CAPTURE_SLICE_LINES 256
/* After the workload's main process ends: how long to read what is left in the pipes. */
#define DRAIN_AFTER_EXIT_MS 1000
/* How long to wait for killed leftovers (adopted orphans) to be reaped. */
#define REAP_LEFTOVERS_MS 2000
/* A signal death reports exit code 128+N, as shells and Docker do. */
#define EXIT_CODE_SIGNAL_BASE 128

/* ---- diagnostics: shim.log (our stderr) ---- */

static const char *log_exec = "?";

void shim_log_set_exec(const char *execution_id)
{
    log_exec = execution_id;
}

void shim_log(const char *level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    (void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "%s.%03ldZ level=%s shim=%d exec=%s %s\n", when, ts.tv_nsec / 1000000, level,
            (int)getpid(), log_exec, msg);
}

/* ---- talking to the starter (fd 3) ---- */

static void status_send(shim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status_send(shim *s, const char *fmt, ...)
{
    if (s->status_fd < 0)
        return;
    char line[DMS_ERROR_MSG_MAX + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    /* One write below PIPE_BUF: the starter reads whole lines. */
    ssize_t w;
    do
        w = write(s->status_fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
}

static void status_close(shim *s)
{
    if (s->status_fd >= 0)
        close(s->status_fd);
    s->status_fd = -1;
}

/* ---- the result ---- */

static void finish_and_write_result(shim *s, dms_exec_result *res)
{
    dms_error e = {0};
    char path[PATH_MAX];
    /* Capture first, result second: whoever sees the result and then reads the logs gets all of them, and
     * followers end before waiters wake. */
    if (s->log && dms_logstore_finish(s->log, &e) < 0)
        shim_log("error", "finish the capture: %s", e.message);
    for (int st = DMS_STREAM_STDOUT; st <= DMS_STREAM_STDERR; st++)
        if (s->tail[st].data && proc_tail_to_result(&s->tail[st], res, st) < 0)
            shim_log("error", "out of memory for the output excerpt");
    _cleanup_free_ char *json = dms_exec_result_to_json(res);
    snprintf(path, sizeof(path), "%s/" PROC_RESULT_FILE, s->dir);
    if (!json || dms_write_file_atomic(path, json, strlen(json), &e) < 0)
        shim_log("error", "write %s: %s", path, json ? e.message : "out of memory");
    else
        shim_log("info", "result outcome=%s exit_code=%d signal=%d", dms_outcome_name(res->outcome),
                 res->exit_code, res->signal);
}

static void remove_cgroups(shim *s)
{
    for (size_t i = 0; i < s->sp.n_cgroups; i++) {
        int r = proc_cgroup_remove(s->sp.cgroups[i].dir);
        if (r < 0)
            shim_log("warn", "remove cgroup %s: %s", s->sp.cgroups[i].dir, strerror(-r));
    }
}

/* The workload never ran: the result says why, and the starter hears the same. */
int shim_fail_start_as(shim *s, const dms_error *e, dms_exec_outcome outcome)
{
    shim_log("error", "start failed: %s", e->message);
    dms_exec_result res = {.outcome = outcome, .exit_code = -1};
    if (outcome == DMS_OUTCOME_FAILED)
        snprintf(res.error, sizeof(res.error), "%s", e->message);
    finish_and_write_result(s, &res);
    dms_exec_result_clear(&res);
    remove_cgroups(s);
    status_send(s, "ERR %d %s\t%s\n", e->code, e->field[0] ? e->field : "-", e->message);
    status_close(s);
    return 1;
}

int shim_fail_start(shim *s, const dms_error *e)
{
    return shim_fail_start_as(s, e, DMS_OUTCOME_FAILED);
}

/* ---- stopping ---- */

static void signal_all(shim *s, int sig)
{
    /* The process group first (the workload and what it forked), then the cgroups for whatever left the
     * group. */
    if (!s->child_done)
        kill(-s->child, sig);
    for (size_t i = 0; i < s->sp.n_cgroups; i++)
        proc_cgroup_signal(s->sp.cgroups[i].dir, sig);
}

static void request_stop(shim *s, int reason)
{
    if (s->stop_reason || s->child_done)
        return;
    s->stop_reason = reason;
    shim_log("info", "stop reason=%s grace_ms=%lld", reason == DMS_CANCEL_TIMEOUT ? "timeout" : "user",
             (long long)s->sp.stop_grace_ms);
    signal_all(s, SIGTERM);
    s->kill_deadline = dms_mono_ms() + s->sp.stop_grace_ms;
}

static void force_kill(shim *s)
{
    if (s->killed)
        return;
    s->killed = true;
    shim_log("info", "kill");
    signal_all(s, SIGKILL);
    s->kill_deadline = -1;
}

/* The ctl FIFO rang: "cancel" (graceful, reason from the cancel file) or "kill" (at once). */
static void handle_ctl(shim *s)
{
    char buf[512];
    bool kill_now = false, cancel = false;
    ssize_t n;
    while ((n = read(s->ctl_fd, buf, sizeof(buf) - 1)) > 0) {
        buf[n] = '\0';
        if (strstr(buf, "kill"))
            kill_now = true;
        if (strstr(buf, "cancel"))
            cancel = true;
    }
    char path[PATH_MAX];
    _cleanup_free_ char *why = NULL;
    snprintf(path, sizeof(path), "%s/" PROC_CANCEL_FILE, s->dir);
    bool have_file = dms_read_file(path, 64, &why, NULL, NULL) == 0;
    if (cancel || kill_now || have_file)
        request_stop(s, have_file && strncmp(why, "timeout", 7) == 0 ? DMS_CANCEL_TIMEOUT : DMS_CANCEL_USER);
    if (kill_now)
        force_kill(s);
}

/* ---- reaping ---- */

static void kill_adopted_children(void)
{
    /* We are a subreaper: orphans of the workload that left its process group (and cgroup) end up as our
     * children. The job is over, so they go too. */
    char path[64];
    _cleanup_free_ char *data = NULL;
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)getpid(), (int)getpid());
    if (dms_read_file(path, 64 * 1024, &data, NULL, NULL) < 0)
        return;
    for (char *p = data; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0)
            kill((pid_t)pid, SIGKILL);
        p = end;
        while (*p == ' ' || *p == '\n')
            p++;
    }
}

static void reap(shim *s)
{
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        /* Peek without reaping, so that the workload's status is never taken by a reap of some leftover, and
         * while the workload is a zombie its pid (= its process group id) cannot be reused: killing the group
         * here cannot hit anybody else. */
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == 0)
            return;
        if (si.si_pid != s->child || s->child_done) {
            waitpid(si.si_pid, NULL, 0); /* an orphan we adopted as subreaper */
            continue;
        }
        kill(-s->child, SIGKILL); /* the job ends when its main process does (like a container) */
        for (size_t i = 0; i < s->sp.n_cgroups; i++)
            proc_cgroup_signal(s->sp.cgroups[i].dir, SIGKILL);
        waitpid(s->child, &s->wstatus, 0);
        kill_adopted_children(); /* orphans that left the group already, so the pipes close now */
        s->child_done = true;
        s->finished_ns = dms_now_ns();
        s->drain_deadline = dms_mono_ms() + DRAIN_AFTER_EXIT_MS;
        s->kill_deadline = -1;
    }
}

/* ---- the supervision loop ---- */

/* Hands output to the log store in slices, each flushed on its own. The store rotates before a flush that
 * would cross the file cap, so a file stays within the cap only if every flush is smaller than it; a 64 KiB
 * read of short lines is ~190 KB of records (28 bytes of header per line), which made one file three times
 * the smallest cap (64 KiB). A slice of at most CAPTURE_SLICE_BYTES and CAPTURE_SLICE_LINES lines is at most
 * ~11 KiB of records. */
static void capture(shim *s, dms_stream_type stream, const char *data, size_t len)
{
    dms_error e;
    while (len > 0) {
        size_t piece = len < CAPTURE_SLICE_BYTES ? len : CAPTURE_SLICE_BYTES;
        const char *p = data, *end = data + piece;
        for (int lines = 0; lines < CAPTURE_SLICE_LINES && p < end; lines++) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            p = nl ? nl + 1 : end;
        }
        piece = (size_t)(p - data);
        if (dms_logstore_write(s->log, stream, 0, data, piece, &e) < 0 || dms_logstore_flush(s->log, &e) < 0)
            shim_log("error", "capture: %s", e.message);
        data += piece;
        len -= piece;
    }
}

static void pump(shim *s, int *fd, dms_stream_type stream)
{
    char buf[READ_CHUNK_BYTES];
    ssize_t n = read(*fd, buf, sizeof(buf));
    if (n > 0) {
        proc_tail_append(&s->tail[stream], buf, (size_t)n);
        capture(s, stream, buf, (size_t)n);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(*fd);
        *fd = -1;
    }
}

static void supervise(shim *s)
{
    for (;;) {
        if (s->child_done && (s->out_fd < 0 && s->err_fd < 0))
            break;
        int64_t now = dms_mono_ms();
        if (s->run_deadline >= 0 && now >= s->run_deadline && !s->child_done) {
            s->run_deadline = -1;
            request_stop(s, DMS_CANCEL_TIMEOUT);
        }
        if (s->kill_deadline >= 0 && now >= s->kill_deadline)
            force_kill(s);
        if (s->child_done && now >= s->drain_deadline) {
            /* Something outside the job's group still holds the pipes open: stop reading. */
            break;
        }
        int64_t next = -1;
        int64_t deadlines[3] = {s->run_deadline, s->kill_deadline, s->child_done ? s->drain_deadline : -1};
        for (int i = 0; i < 3; i++)
            if (deadlines[i] >= 0 && (next < 0 || deadlines[i] < next))
                next = deadlines[i];
        int timeout = next < 0 ? -1 : (int)(next - now > 0 ? next - now : 0);
        struct pollfd p[4] = {
            {.fd = s->out_fd, .events = POLLIN},
            {.fd = s->err_fd, .events = POLLIN},
            {.fd = s->sfd, .events = POLLIN},
            {.fd = s->ctl_fd, .events = POLLIN},
        };
        int r = poll(p, 4, timeout);
        if (r < 0 && errno != EINTR) {
            shim_log("error", "poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents)
            pump(s, &s->out_fd, DMS_STREAM_STDOUT);
        if (p[1].revents)
            pump(s, &s->err_fd, DMS_STREAM_STDERR);
        if (p[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGCHLD)
                    reap(s);
                else
                    request_stop(s, DMS_CANCEL_USER); /* SIGTERM/SIGINT/SIGHUP to the shim: stop the job */
            }
            reap(s); /* signals coalesce: reap whatever is there */
        }
        if (p[3].revents & POLLIN)
            handle_ctl(s);
        dms_error e;
        if (dms_logstore_flush(s->log, &e) < 0)
            shim_log("error", "capture: %s", e.message);
    }
}

static void build_result(shim *s, dms_exec_result *res)
{
    res->started_at_ns = s->started_ns;
    res->finished_at_ns = s->finished_ns ? s->finished_ns : dms_now_ns();
    for (size_t i = 0; i < s->sp.n_cgroups; i++)
        if (s->sp.cgroups[i].ctrl == PROC_CG_MEMORY &&
            proc_cgroup_oom_killed(s->sp.cgroups[i].dir, s->sp.cgroups[i].version))
            res->oom_killed = true;
    int st = s->wstatus;
    if (WIFEXITED(st)) {
        res->exit_code = WEXITSTATUS(st);
        res->outcome = DMS_OUTCOME_EXITED;
    } else if (WIFSIGNALED(st)) {
        res->signal = WTERMSIG(st);
        res->exit_code = EXIT_CODE_SIGNAL_BASE + res->signal;
        res->outcome = DMS_OUTCOME_SIGNALED;
    } else {
        res->exit_code = -1;
        res->outcome = DMS_OUTCOME_LOST;
        snprintf(res->error, sizeof(res->error), "unexpected wait status %d", st);
    }
    /* Like Docker's State.OOMKilled: the cgroup's OOM killer hit something of the job (here a shell's child
     * that took the shell down with "Killed", exit 137), so the memory limit is why it ended. */
    if (res->oom_killed)
        res->outcome = DMS_OUTCOME_OOM_KILLED;
    /* Stopped by us: whatever the exit looked like, the outcome is the reason we stopped it. */
    if (s->stop_reason == DMS_CANCEL_USER)
        res->outcome = DMS_OUTCOME_CANCELLED;
    else if (s->stop_reason == DMS_CANCEL_TIMEOUT)
        res->outcome = DMS_OUTCOME_TIMED_OUT;
}

static int run(shim *s)
{
    int r = shim_prepare_run(s);
    if (r == 0)
        r = shim_spawn_workload(s);
    if (r != 0)
        return r;
    dms_error e = {0};
    pid_t pid = s->child;
    /* exec worked. */
    s->started_ns = dms_now_ns();
    if (s->sp.timeout_ms > 0)
        s->run_deadline = dms_mono_ms() + s->sp.timeout_ms;
    if (shim_write_state(s, &e) < 0)
        shim_log("error", "%s", e.message);
    shim_log("info", "started pid=%d argv0=%s", (int)pid, s->sp.argv[0]);
    status_send(s, "OK %d\n", (int)pid);
    status_close(s);
    /* A cancel that arrived while we were starting rang a FIFO nobody read yet: look once. */
    handle_ctl(s);
    supervise(s);
    reap(s);
    kill_adopted_children();
    int64_t until = dms_mono_ms() + REAP_LEFTOVERS_MS;
    while (waitpid(-1, NULL, WNOHANG) >= 0 && dms_mono_ms() < until) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    dms_exec_result res = {0};
    build_result(s, &res);
    finish_and_write_result(s, &res);
    dms_exec_result_clear(&res);
    remove_cgroups(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr,
                "usage: %s run <execution dir>\n(started by the process backend of dms, not by hand)\n",
                argv[0]);
        return 2;
    }
    shim s = {.dir = argv[2],
              .status_fd = PROC_SHIM_STATUS_FD,
              .child = -1,
              .out_fd = -1,
              .err_fd = -1,
              .sfd = -1,
              .ctl_fd = -1,
              .run_deadline = -1,
              .kill_deadline = -1,
              .drain_deadline = -1};
    if (fcntl(PROC_SHIM_STATUS_FD, F_GETFD) < 0 || fcntl(PROC_SHIM_LOCK_FD, F_GETFD) < 0) {
        fprintf(stderr, "%s: fds 3 (status) and 4 (owner lock) must be open\n", argv[0]);
        return 2;
    }
    /* Stage 1: leave a stage 2 behind and exit, so our starter reaps us at once and the supervisor is adopted
     * by init (or the nearest subreaper). */
    pid_t pid = fork();
    if (pid < 0) {
        dprintf(PROC_SHIM_STATUS_FD, "ERR %d -\tfork the supervisor: %s\n", DMS_E_START_FAILED,
                strerror(errno));
        return 1;
    }
    if (pid > 0)
        _exit(0);
    /* Stage 2. Keep nothing we did not ask for, and no fd may reach the workload. */
    close_range(PROC_SHIM_LOCK_FD + 1, ~0U, 0);
    fcntl(PROC_SHIM_STATUS_FD, F_SETFD, FD_CLOEXEC);
    fcntl(PROC_SHIM_LOCK_FD, F_SETFD, FD_CLOEXEC);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    uint64_t my_start = 0;
    proc_stat_read(getpid(), &my_start, NULL);
    dprintf(PROC_SHIM_STATUS_FD, "SHIM %d %llu\n", (int)getpid(), (unsigned long long)my_start);
    int rc = run(&s);
    if (s.log)
        dms_logstore_writer_free(s.log);
    int fds[] = {s.out_fd, s.err_fd, s.sfd, s.ctl_fd};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    proc_spec_free(&s.sp);
    for (int st = 0; st < 3; st++)
        proc_tail_free(&s.tail[st]);
    status_close(&s);
    /* Exiting releases the owner lock (fd 4): only now is the execution not "live". */
    return rc;
}
