/* state.c - the process backend's operations that read and act on execution directories: wait, cancel, logs,
 * status, list, remove, recover, cleanup, and the reaping of executions whose shim died.
 *
 * Every answer comes from the directory (see proc.h), never from memory, so these work the same from the
 * process that started the execution, from another executor object, or after a restart. Liveness is the owner
 * lock (held by the shim for as long as it lives); pids are only trusted together with their /proc start
 * time. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
/* Cleanup kills at once; the shim then finishes within this. */
#define CLEANUP_KILL_WAIT_MS 5000
/* For the remains of a dead shim's workload to go. */
#define ORPHAN_KILL_WAIT_MS 2000
#define POLL_STEP_NS        (20 * 1000 * 1000)

/* ---- paths and small files ---- */

int proc_exec_dir(const proc_executor *p, const char *execution_id, char *buf, size_t size, dms_error *err)
{
    if (dms_snprintf_ok(buf, size, "%s/%s", p->state_dir, execution_id) < 0)
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
    return dms_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) == 0 && stat(path, &st) == 0;
}

static json_t *read_json(const char *dir, const char *name)
{
    char path[PATH_MAX];
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (dms_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0 ||
        dms_read_file(path, PROC_STATE_FILE_MAX_BYTES, &data, &len, NULL) < 0)
        return NULL;
    return json_loadb(data, len, 0, NULL);
}

static int read_result(const char *dir, dms_exec_result *out, dms_error *err)
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

static const char *base_name(const char *dir)
{
    const char *s = strrchr(dir, '/');
    return s ? s + 1 : dir;
}

static void sleep_step(void)
{
    struct timespec ts = {0, POLL_STEP_NS};
    nanosleep(&ts, NULL);
}

/* What the shim recorded once the workload ran. */
typedef struct shim_state {
    pid_t shim_pid;
    uint64_t shim_start;
    pid_t pid; /* also the process group id */
    uint64_t start_time;
    int64_t started_at_ns;
} shim_state;

static bool shim_state_read(const char *dir, shim_state *st)
{
    memset(st, 0, sizeof(*st));
    _cleanup_json_ json_t *o = read_json(dir, PROC_SHIM_FILE);
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
    _cleanup_json_ json_t *o = read_json(dir, PROC_SPEC_FILE);
    return o ? json_integer_value(json_object_get(o, key)) : 0;
}

/* The cgroup dirs of an execution, from spec.json; each is removed (after killing what is in it). */
static void remove_spec_cgroups(const char *dir)
{
    _cleanup_json_ json_t *o = read_json(dir, PROC_SPEC_FILE);
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
static int kill_workload(const shim_state *st, int sig)
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
    shim_state st;
    bool ran = shim_state_read(dir, &st);
    int killed = ran ? kill_workload(&st, SIGKILL) : 0;
    for (int64_t until = dms_mono_ms() + ORPHAN_KILL_WAIT_MS; killed && dms_mono_ms() < until;) {
        if (!proc_alive(st.pid, st.start_time))
            break;
        sleep_step();
    }
    remove_spec_cgroups(dir);
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
        dms_logf(host, DMS_LOG_WARN, "exec=%s op=reap outcome=%s killed=%d", base_name(dir),
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
                             base_name(dir));
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

static int existing_dir(const proc_executor *p, const char *id, char *dir, size_t size, dms_error *err)
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
    int r = existing_dir(cookie, execution_id, dir, sizeof(dir), err);
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
static void mark_cancel(const char *dir, int reason)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/" PROC_CANCEL_FILE ".%d.%lld", dir, (int)getpid(),
             (long long)dms_now_ns());
    snprintf(path, sizeof(path), "%s/" PROC_CANCEL_FILE, dir);
    const char *why = reason == DMS_CANCEL_TIMEOUT ? "timeout\n" : "user\n";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
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
static void ring(const char *dir, const char *msg)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/" PROC_CTL_FIFO, dir);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t w = write(fd, msg, strlen(msg));
    (void)w;
    close(fd);
}

/* The shim does not answer: kill it and the workload ourselves (both verified by start time). */
static void hard_kill(const char *dir)
{
    shim_state st;
    if (!shim_state_read(dir, &st))
        return;
    kill_workload(&st, SIGKILL);
    if (proc_alive(st.shim_pid, st.shim_start))
        kill(st.shim_pid, SIGKILL);
}

int proc_op_cancel(void *cookie, const char *execution_id, dms_cancel_reason reason, dms_error *err)
{
    proc_executor *p = cookie;
    char dir[PATH_MAX];
    int r = existing_dir(p, execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    if (proc_file_exists(dir, PROC_RESULT_FILE))
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id", "execution %s has already finished",
                             execution_id);
    mark_cancel(dir, reason);
    ring(dir, "cancel\n");
    int64_t grace = spec_int(dir, "stop_grace_ms");
    if (grace <= 0)
        grace = DMS_DEFAULT_STOP_GRACE_MS;
    dms_exec_result res = {0};
    r = wait_result(dir, grace + CANCEL_MARGIN_MS, &res, err);
    if (r == -DMS_E_TIMEOUT) {
        dms_logf(p->host, DMS_LOG_WARN, "exec=%s op=cancel the supervisor did not finish in time: killing",
                 execution_id);
        ring(dir, "kill\n");
        r = wait_result(dir, CANCEL_KILL_WAIT_MS, &res, err);
    }
    if (r == -DMS_E_TIMEOUT) {
        hard_kill(dir);
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
    int r = existing_dir(cookie, execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    char *ud = strdup(dir);
    if (!ud)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return dms_logstore_stream_open(dir, opts, stream_idle, ud, free, out, err);
}

/* ---- status, list, remove ---- */

static int fill_status(const proc_executor *p, const char *dir, const char *id, dms_exec_status *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->execution_id, sizeof(out->execution_id), "%s", id);
    out->exit_code = -1;
    _cleanup_json_ json_t *req = read_json(dir, PROC_REQUEST_FILE);
    const char *job = json_string_value(json_object_get(req, "job_id"));
    snprintf(out->job_id, sizeof(out->job_id), "%s", job ? job : "");
    proc_reap_orphan(dir, p->host, NULL);
    shim_state st;
    bool ran = shim_state_read(dir, &st);
    if (ran) {
        snprintf(out->handle, sizeof(out->handle), "%d", (int)st.pid);
        out->started_at_ns = st.started_at_ns;
    }
    dms_exec_result res = {0};
    if (read_result(dir, &res, NULL) == 0) {
        out->state = DMS_STATE_FINISHED;
        out->outcome = res.outcome;
        out->exit_code = res.exit_code;
        out->started_at_ns = res.started_at_ns;
        out->finished_at_ns = res.finished_at_ns;
        dms_exec_result_clear(&res);
    } else if (ran) {
        out->state = proc_file_exists(dir, PROC_CANCEL_FILE) ? DMS_STATE_STOPPING : DMS_STATE_RUNNING;
    } else {
        out->state = DMS_STATE_PREPARING;
    }
    return 0;
}

int proc_op_status(void *cookie, const char *execution_id, dms_exec_status *out, dms_error *err)
{
    char dir[PATH_MAX];
    int r = existing_dir(cookie, execution_id, dir, sizeof(dir), err);
    return r < 0 ? r : fill_status(cookie, dir, execution_id, out);
}

/* Calls fn for every execution directory of this executor. */
static int each_execution(const proc_executor *p,
                          int (*fn)(const proc_executor *, const char *dir, const char *id, void *ctx),
                          void *ctx, dms_error *err)
{
    DIR *d = opendir(p->state_dir);
    if (!d)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", p->state_dir);
    struct dirent *de;
    int r = 0;
    while (r == 0 && (de = readdir(d))) {
        char dir[PATH_MAX];
        if (!dms_id_valid(de->d_name) || proc_exec_dir(p, de->d_name, dir, sizeof(dir), NULL) < 0 ||
            !proc_dir_exists(dir))
            continue;
        r = fn(p, dir, de->d_name, ctx);
    }
    closedir(d);
    return r;
}

typedef struct list_ctx {
    dms_exec_status *items;
    size_t n, cap;
} list_ctx;

static int list_one(const proc_executor *p, const char *dir, const char *id, void *ctx)
{
    list_ctx *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        dms_exec_status *n = realloc(l->items, cap * sizeof(*n));
        if (!n)
            return -DMS_E_NOMEM;
        l->items = n;
        l->cap = cap;
    }
    fill_status(p, dir, id, &l->items[l->n++]);
    return 0;
}

int proc_op_list(void *cookie, dms_exec_status **out, size_t *n, dms_error *err)
{
    list_ctx l = {0};
    int r = each_execution(cookie, list_one, &l, err);
    if (r < 0) {
        free(l.items);
        return r == -DMS_E_NOMEM ? dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory") : r;
    }
    if (!l.items && !(l.items = calloc(1, sizeof(*l.items))))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    *out = l.items;
    *n = l.n;
    return 0;
}

int proc_op_remove(void *cookie, const char *execution_id, dms_error *err)
{
    proc_executor *p = cookie;
    char dir[PATH_MAX];
    int r = existing_dir(p, execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    proc_reap_orphan(dir, p->host, NULL);
    if (!proc_file_exists(dir, PROC_RESULT_FILE) || dms_state_lock_held(dir))
        return dms_error_set(err, DMS_E_CONFLICT, "execution_id",
                             "execution %s is still running; cancel it first", execution_id);
    remove_spec_cgroups(dir);
    if ((r = dms_rm_rf(dir, err)) < 0)
        return r;
    dms_logf(p->host, DMS_LOG_INFO, "exec=%s op=remove", execution_id);
    return 0;
}

/* ---- recover ---- */

typedef struct recover_ctx {
    size_t running, finished, reaped;
} recover_ctx;

static int recover_one(const proc_executor *p, const char *dir, const char *id, void *ctx)
{
    recover_ctx *rc = ctx;
    if (proc_file_exists(dir, PROC_RESULT_FILE)) {
        rc->finished++;
        return 0;
    }
    shim_state st;
    bool ran = shim_state_read(dir, &st);
    if (ran && proc_alive(st.shim_pid, st.shim_start) && dms_state_lock_held(dir)) {
        dms_logf(p->host, DMS_LOG_INFO, "exec=%s op=recover state=running shim=%d pid=%d", id,
                 (int)st.shim_pid, (int)st.pid);
        rc->running++;
        return 0;
    }
    /* No live shim under that pid (a recycled pid has another start time): give it its result. */
    if (proc_reap_orphan(dir, p->host, NULL) > 0)
        rc->reaped++;
    else if (dms_state_lock_held(dir))
        rc->running++; /* being started right now */
    else
        rc->finished++;
    return 0;
}

int proc_op_recover(void *cookie, size_t *adopted, dms_error *err)
{
    proc_executor *p = cookie;
    recover_ctx rc = {0};
    int r = each_execution(p, recover_one, &rc, err);
    if (r < 0)
        return r;
    *adopted = rc.running + rc.finished + rc.reaped;
    dms_logf(p->host, DMS_LOG_INFO, "executor=%s op=recover running=%zu finished=%zu lost=%zu", p->id,
             rc.running, rc.finished, rc.reaped);
    return 0;
}

/* ---- cleanup ---- */

typedef struct cleanup_ctx {
    dms_cleanup_report *report;
    dms_error *err;
    int first_error; /* negative code of the first failure, or 0 */
} cleanup_ctx;

static void wait_lock_free(const char *dir, int64_t ms)
{
    for (int64_t until = dms_mono_ms() + ms; dms_state_lock_held(dir) && dms_mono_ms() < until;)
        sleep_step();
}

static int cleanup_one(const proc_executor *p, const char *dir, const char *id, void *ctx)
{
    cleanup_ctx *c = ctx;
    bool killed = false;
    if (!proc_file_exists(dir, PROC_RESULT_FILE)) {
        if (dms_state_lock_held(dir)) {
            /* Live: the shim kills at once and writes its result; if it does not, we kill it. */
            mark_cancel(dir, DMS_CANCEL_USER);
            ring(dir, "kill\n");
            wait_lock_free(dir, CLEANUP_KILL_WAIT_MS);
            if (dms_state_lock_held(dir)) {
                hard_kill(dir);
                wait_lock_free(dir, CLEANUP_KILL_WAIT_MS);
            }
            killed = true;
        } else {
            shim_state st;
            killed = shim_state_read(dir, &st) && proc_alive(st.pid, st.start_time);
        }
        proc_reap_orphan(dir, p->host, NULL);
    }
    remove_spec_cgroups(dir);
    if (killed)
        c->report->containers++;
    dms_error e;
    int r = dms_rm_rf(dir, &e);
    if (r < 0) {
        c->report->errors++;
        if (!c->first_error && c->err)
            *c->err = e;
        if (!c->first_error)
            c->first_error = r;
    } else {
        c->report->state_dirs++;
    }
    dms_logf(p->host, DMS_LOG_INFO, "exec=%s op=cleanup killed=%d", id, killed);
    return 0;
}

/* Cgroups of this executor that no execution directory names any more (a crash between the two removals). */
static void cleanup_cgroups(const proc_executor *p)
{
    char prefix[DMS_ID_MAX + 32];
    snprintf(prefix, sizeof(prefix), PROC_CGROUP_PREFIX "%s@", p->id);
    for (int c = 0; c < PROC_CG__COUNT; c++) {
        const proc_cg_base *b = &p->cg.base[c];
        if (!b->version)
            continue;
        DIR *d = opendir(b->dir);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            char path[PATH_MAX];
            if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
                dms_snprintf_ok(path, sizeof(path), "%s/%s", b->dir, de->d_name) < 0)
                continue;
            int r = proc_cgroup_remove(path);
            dms_logf(p->host, r < 0 ? DMS_LOG_WARN : DMS_LOG_INFO, "executor=%s op=cleanup cgroup=%s%s%s",
                     p->id, path, r < 0 ? " error=" : "", r < 0 ? strerror(-r) : "");
        }
        closedir(d);
    }
}

int proc_op_cleanup(void *cookie, dms_cleanup_report *report, dms_error *err)
{
    proc_executor *p = cookie;
    cleanup_ctx c = {.report = report, .err = err};
    int r = each_execution(p, cleanup_one, &c, err);
    cleanup_cgroups(p);
    if (r < 0)
        return r;
    dms_logf(p->host, DMS_LOG_INFO, "executor=%s op=cleanup processes=%d state_dirs=%d errors=%d", p->id,
             report->containers, report->state_dirs, report->errors);
    return c.first_error;
}
