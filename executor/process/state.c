/* state.c - the process backend's operations that read and act on execution directories: wait, cancel, logs,
 * status, list, remove, recover, cleanup, and the reaping of executions whose shim died.
 *
 * Every answer comes from the directory (see proc.h), never from memory, so these work the same from the
 * process that started the execution, from another executor object, or after a restart. Liveness is the owner
 * lock (held by the shim for as long as it lives); pids are only trusted together with their /proc start
 * time. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Beyond the grace period: for the shim to notice the cancel, kill and write the result. */
#define CANCEL_MARGIN_MS 5000
/* After escalating to SIGKILL ourselves. */
#define CANCEL_KILL_WAIT_MS 5000
/* For the remains of a dead shim's workload to go. */
#define ORPHAN_KILL_WAIT_MS 2000
#define POLL_STEP_NS        (20 * 1000 * 1000)

/* ---- paths and small files ---- */

int proc_exec_dir(const proc_executor *p, const char *execution_id, char *buf, size_t size, dms_error *err)
{
    if (dmsu_snprintf_ok(buf, size, "%s/%s", p->state_dir, execution_id) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "state dir path too long for execution %s",
                             execution_id);
    return 0;
}

bool proc_dir_exists(const char *dir)
{
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

bool proc_file_exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    return dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) == 0 && stat(path, &st) == 0;
}

json_t *proc_read_json(const char *dir, const char *name)
{
    char path[PATH_MAX];
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0 ||
        dms_read_file(path, PROC_STATE_FILE_MAX_BYTES, &data, &len, NULL) < 0)
        return NULL;
    return json_loadb(data, len, 0, NULL);
}

int proc_read_result(const char *dir, dms_exec_result *out, dms_error *err)
{
    char path[PATH_MAX];
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/" PROC_RESULT_FILE, dir);
    int r = dms_read_file(path, PROC_STATE_FILE_MAX_BYTES * 16, &data, &len, err);
    if (r < 0)
        return r;
    return dms_exec_result_from_json(data, len, out, err);
}

const char *proc_base_name(const char *dir)
{
    const char *s = strrchr(dir, '/');
    return s ? s + 1 : dir;
}

void proc_sleep_step(void)
{
    struct timespec ts = {0, POLL_STEP_NS};
    nanosleep(&ts, NULL);
}

bool proc_shim_state_read(const char *dir, proc_shim_state *st)
{
    memset(st, 0, sizeof(*st));
    _cleanup_json_ json_t *o = proc_read_json(dir, PROC_SHIM_FILE);
    int shim_pid = 0, pid = 0;
    json_int_t shim_start = 0, start = 0, started = 0;
    if (!o || json_unpack(o, "{s:i,s:I,s:i,s:I,s:I}", "shim_pid", &shim_pid, "shim_start", &shim_start, "pid",
                          &pid, "start_time", &start, "started_at_ns", &started) < 0)
        return false;
    st->shim_pid = shim_pid;
    st->shim_start = (uint64_t)shim_start;
    st->pid = pid;
    st->start_time = (uint64_t)start;
    st->started_at_ns = started;
    return pid > 0;
}

static int64_t spec_int(const char *dir, const char *key)
{
    _cleanup_json_ json_t *o = proc_read_json(dir, PROC_SPEC_FILE);
    return o ? json_integer_value(json_object_get(o, key)) : 0;
}

/* The cgroup dirs of an execution, from spec.json; each is removed (after killing what is in it). */
void proc_remove_spec_cgroups(const char *dir)
{
    _cleanup_json_ json_t *o = proc_read_json(dir, PROC_SPEC_FILE);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(o, "cgroups"), i, c)
    {
        const char *cdir = json_string_value(json_object_get(c, "dir"));
        if (cdir)
            proc_cgroup_remove(cdir);
    }
}

/* 0, DMS_CANCEL_USER or DMS_CANCEL_TIMEOUT, from the cancel file. */
static int cancel_reason(const char *dir)
{
    char path[PATH_MAX];
    _cleanup_free_ char *why = NULL;
    snprintf(path, sizeof(path), "%s/" PROC_CANCEL_FILE, dir);
    if (dms_read_file(path, 64, &why, NULL, NULL) < 0)
        return 0;
    return strncmp(why, "timeout", 7) == 0 ? DMS_CANCEL_TIMEOUT : DMS_CANCEL_USER;
}

/* Kills the workload's process group if the recorded leader is still that process. 1 if it was alive. */
static int kill_workload(const proc_shim_state *st, int sig)
{
    if (st->pid <= 0 || !proc_alive(st->pid, st->start_time))
        return 0;
    kill(-st->pid, sig);
    kill(st->pid, sig); /* in case it left its group */
    return 1;
}

/* ---- results written by the plugin (the shim could not) ---- */

int proc_write_result(const char *dir, dms_exec_result *res, dms_error *err)
{
    dms_logstore_writer *w = NULL;
    dms_error e;
    /* End the capture so that followers stop; ALREADY_COMPLETE means the shim got that far. */
    if (dms_logstore_writer_open(&w, dir, 0, &e) == 0) {
        dms_logstore_finish(w, NULL);
        dms_logstore_writer_free(w);
    }
    int64_t cap = spec_int(dir, "result_output_bytes");
    if (cap <= 0)
        cap = DMS_DEFAULT_RESULT_OUTPUT_BYTES;
    for (int s = DMS_STREAM_STDOUT; s <= DMS_STREAM_STDERR; s++) {
        char *data = NULL;
        size_t len = 0;
        bool trunc = false;
        if (dms_logstore_excerpt(dir, (dms_stream_type)s, (size_t)cap, &data, &len, &trunc, &e) == 0) {
            dms_exec_result_set_output(res, s, data, len, trunc);
            free(data);
        }
    }
    _cleanup_free_ char *json = dms_exec_result_to_json(res);
    if (!json)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" PROC_RESULT_FILE, dir);
    return dms_write_file_atomic(path, json, strlen(json), err);
}

int proc_reap_orphan(const char *dir, const dms_host_services *host, dms_error *err)
{
    if (proc_file_exists(dir, PROC_RESULT_FILE) || dms_state_lock_held(dir))
        return 0;
    _cleanup_close_ int lock = -1;
    int r = dms_state_lock(dir, &lock, err);
    if (r <= 0)
        return r; /* 0: somebody else is on it */
    /* The shim may have written its result just before it exited and let the lock go. */
    if (proc_file_exists(dir, PROC_RESULT_FILE))
        return 0;
    proc_shim_state st;
    bool ran = proc_shim_state_read(dir, &st);
    int killed = ran ? kill_workload(&st, SIGKILL) : 0;
    for (int64_t until = dms_mono_ms() + ORPHAN_KILL_WAIT_MS; killed && dms_mono_ms() < until;) {
        if (!proc_alive(st.pid, st.start_time))
            break;
        proc_sleep_step();
    }
    proc_remove_spec_cgroups(dir);
    int why = cancel_reason(dir);
    dms_exec_result res = {
        .exit_code = -1, .started_at_ns = ran ? st.started_at_ns : 0, .finished_at_ns = dms_now_ns()};
    if (why)
        res.outcome = why == DMS_CANCEL_TIMEOUT ? DMS_OUTCOME_TIMED_OUT : DMS_OUTCOME_CANCELLED;
    else
        res.outcome = ran ? DMS_OUTCOME_LOST : DMS_OUTCOME_FAILED;
    if (!why)
        snprintf(res.error, sizeof(res.error), "%s",
                 ran ? "its supervisor (dms-proc-shim) died without a result; the workload was killed (see "
                       "shim.log)"
                     : "the start was interrupted before the workload ran (see shim.log)");
    r = proc_write_result(dir, &res, err);
    if (host)
        dms_logf(host, DMS_LOG_WARN, "exec=%s op=reap outcome=%s killed=%d", proc_base_name(dir),
                 dms_outcome_name(res.outcome), killed);
    dms_exec_result_clear(&res);
    return r < 0 ? r : 1;
}

/* ---- wait ---- */

static int wait_check(void *ud, dms_error *err)
{
    const char *dir = ud;
    if (!proc_dir_exists(dir))
        return dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", "execution %s was removed",
                             proc_base_name(dir));
    int r = proc_reap_orphan(dir, NULL, err);
    return r < 0 ? r : 0;
}

static int open_waiter(const char *dir, dms_waiter **out, dms_error *err)
{
    char *ud = strdup(dir);
    if (!ud)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return dms_waiter_new_from_file(dir, wait_check, ud, free, out, err);
}

int proc_existing_dir(const proc_executor *p, const char *id, char *dir, size_t size, dms_error *err)
{
    int r = proc_exec_dir(p, id, dir, size, err);
    if (r < 0)
        return r;
    if (!proc_dir_exists(dir))
        return dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", "no execution %s in process executor %s",
                             id, p->id);
    return 0;
}

int proc_op_subscribe(void *cookie, const char *execution_id, dms_waiter **out, dms_error *err)
{
    char dir[PATH_MAX];
    int r = proc_existing_dir(cookie, execution_id, dir, sizeof(dir), err);
    return r < 0 ? r : open_waiter(dir, out, err);
}

static int wait_result(const char *dir, int64_t timeout_ms, dms_exec_result *res, dms_error *err)
{
    dms_waiter *w = NULL;
    int r = open_waiter(dir, &w, err);
    if (r < 0)
        return r;
    r = dms_waiter_result(w, timeout_ms, res, err);
    dms_waiter_free(w);
    return r;
}

/* ---- cancel ---- */

/* Records why it is being stopped; the first reason wins (link fails if the file exists). */
void proc_mark_cancel(const char *dir, int reason)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/" PROC_CANCEL_FILE ".%d.%lld", dir, (int)getpid(),
             (long long)dms_now_ns());
    snprintf(path, sizeof(path), "%s/" PROC_CANCEL_FILE, dir);
    const char *why = reason == DMS_CANCEL_TIMEOUT ? "timeout\n" : "user\n";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
    if (fd < 0)
        return;
    ssize_t w = write(fd, why, strlen(why));
    close(fd);
    if (w == (ssize_t)strlen(why))
        (void)link(tmp, path);
    unlink(tmp);
}

/* Rings the shim's doorbell. No reader (ENXIO) means the shim is not there (yet or any more): the cancel file
 * covers the first case, the orphan reaper the second. */
void proc_ring(const char *dir, const char *msg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" PROC_CTL_FIFO, dir);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    /* If the shim exits between our open and our write, the write raises SIGPIPE, which would kill a host
     * that does not ignore it. Block it in this thread for the write and swallow the one it raised (the way
     * libcurl guards its sends). */
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t w = write(fd, msg, strlen(msg));
    if (w < 0 && errno == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fd);
}

/* The shim does not answer: kill it and the workload ourselves (both verified by start time). */
void proc_hard_kill(const char *dir)
{
    proc_shim_state st;
    if (!proc_shim_state_read(dir, &st))
        return;
    kill_workload(&st, SIGKILL);
    if (proc_alive(st.shim_pid, st.shim_start))
        kill(st.shim_pid, SIGKILL);
}

int proc_op_cancel(void *cookie, const char *execution_id, dms_cancel_reason reason, int64_t grace_ms,
                   dms_error *err)
{
    proc_executor *p = cookie;
    char dir[PATH_MAX];
    int r = proc_existing_dir(p, execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    if (proc_file_exists(dir, PROC_RESULT_FILE))
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id", "execution %s has already finished",
                             execution_id);
    proc_mark_cancel(dir, reason);
    int64_t grace = spec_int(dir, "stop_grace_ms");
    if (grace <= 0)
        grace = DMS_DEFAULT_STOP_GRACE_MS;
    dms_exec_result res = {0};
    if (grace_ms == 0) {
        /* At once: the shim SIGKILLs the group. */
        proc_ring(dir, "kill\n");
        r = wait_result(dir, CANCEL_KILL_WAIT_MS, &res, err);
    } else if (grace_ms > 0 && grace_ms < grace) {
        /* A shorter grace than the shim's own: we send the SIGKILL ourselves when it runs out. */
        proc_ring(dir, "cancel\n");
        r = wait_result(dir, grace_ms, &res, err);
        if (r == -DMS_E_TIMEOUT) {
            proc_ring(dir, "kill\n");
            r = wait_result(dir, CANCEL_KILL_WAIT_MS, &res, err);
        }
    } else {
        proc_ring(dir, "cancel\n");
        r = wait_result(dir, grace + CANCEL_MARGIN_MS, &res, err);
    }
    if (r == -DMS_E_TIMEOUT) {
        dms_logf(p->host, DMS_LOG_WARN, "exec=%s op=cancel the supervisor did not finish in time: killing",
                 execution_id);
        proc_ring(dir, "kill\n");
        r = wait_result(dir, CANCEL_KILL_WAIT_MS, &res, err);
    }
    if (r == -DMS_E_TIMEOUT) {
        proc_hard_kill(dir);
        r = wait_result(dir, CANCEL_KILL_WAIT_MS, &res, err);
    }
    if (r < 0)
        return dms_error_prefix(err, "cancel %s: ", execution_id);
    dms_logf(p->host, DMS_LOG_INFO, "exec=%s op=cancel outcome=%s", execution_id,
             dms_outcome_name(res.outcome));
    dms_exec_result_clear(&res);
    return 0;
}

/* ---- logs ---- */

static bool stream_idle(void *ud)
{
    const char *dir = ud;
    if (!proc_dir_exists(dir))
        return true;
    if (dms_state_lock_held(dir))
        return false;
    /* The shim is gone. If it ended the capture, the reader has yet to reach the end marker: keep reading. If
     * it died, end the capture for it (and give the execution its result). */
    proc_reap_orphan(dir, NULL, NULL);
    dms_logstore_info info;
    return !(dms_logstore_info_read(dir, &info, NULL) == 0 && info.finished);
}

int proc_op_log_stream(void *cookie, const char *execution_id, const dms_log_options *opts,
                       dms_log_stream **out, dms_error *err)
{
    char dir[PATH_MAX];
    int r = proc_existing_dir(cookie, execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    char *ud = strdup(dir);
    if (!ud)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return dms_logstore_stream_open(dir, opts, stream_idle, ud, free, out, err);
}
