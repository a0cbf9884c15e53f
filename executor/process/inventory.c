/* inventory.c - the process backend's view over all of an executor's executions: status, list, remove,
 * recover and cleanup. Everything is found by scanning the executor's state directory, never from memory, so
 * a second executor object or a restarted host sees (and cleans) the same. */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* Cleanup kills at once; the shim then finishes within this. */
#define CLEANUP_KILL_WAIT_MS 5000
/* After its result, a shim only removes cgroups and exits (slower under a leak checker). */
#define SHIM_EXIT_WAIT_MS 5000

/* ---- status, list, remove ---- */

static int fill_status(const proc_executor *p, const char *dir, const char *id, dms_exec_status *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->execution_id, sizeof(out->execution_id), "%s", id);
    out->exit_code = -1;
    _cleanup_json_ json_t *req = proc_read_json(dir, PROC_REQUEST_FILE);
    const char *job = json_string_value(json_object_get(req, "job_id"));
    snprintf(out->job_id, sizeof(out->job_id), "%s", job ? job : "");
    proc_reap_orphan(dir, p->host, NULL);
    proc_shim_state st;
    bool ran = proc_shim_state_read(dir, &st);
    if (ran) {
        snprintf(out->handle, sizeof(out->handle), "%d", (int)st.pid);
        out->started_at_ns = st.started_at_ns;
    }
    dms_exec_result res = {0};
    if (proc_read_result(dir, &res, NULL) == 0) {
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
    int r = proc_existing_dir(cookie, execution_id, dir, sizeof(dir), err);
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
    dms_exec_status_fn each;
    void *userdata;
} list_ctx;

static int list_one(const proc_executor *p, const char *dir, const char *id, void *ctx)
{
    list_ctx *l = ctx;
    dms_exec_status st;
    fill_status(p, dir, id, &st);
    return l->each(l->userdata, &st);
}

int proc_op_list(void *cookie, dms_exec_status_fn each, void *userdata, dms_error *err)
{
    list_ctx l = {each, userdata};
    return each_execution(cookie, list_one, &l, err);
}

static void wait_lock_free(const char *dir, int64_t ms)
{
    for (int64_t until = dms_mono_ms() + ms; dms_state_lock_held(dir) && dms_mono_ms() < until;)
        proc_sleep_step();
}

int proc_op_remove(void *cookie, const char *execution_id, dms_error *err)
{
    proc_executor *p = cookie;
    char dir[PATH_MAX];
    int r = proc_existing_dir(p, execution_id, dir, sizeof(dir), err);
    if (r < 0)
        return r;
    proc_reap_orphan(dir, p->host, NULL);
    if (!proc_file_exists(dir, PROC_RESULT_FILE))
        return dms_error_set(err, DMS_E_CONFLICT, "execution_id",
                             "execution %s is still running; cancel it first", execution_id);
    /* Finished: its shim writes the result last, then only removes cgroups and exits. */
    wait_lock_free(dir, SHIM_EXIT_WAIT_MS);
    if (dms_state_lock_held(dir))
        return dms_error_set(err, DMS_E_CONFLICT, "execution_id",
                             "execution %s has finished but its supervisor has not exited", execution_id);
    proc_remove_spec_cgroups(dir);
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
    proc_shim_state st;
    bool ran = proc_shim_state_read(dir, &st);
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

static int cleanup_one(const proc_executor *p, const char *dir, const char *id, void *ctx)
{
    cleanup_ctx *c = ctx;
    bool killed = false;
    if (!proc_file_exists(dir, PROC_RESULT_FILE)) {
        if (dms_state_lock_held(dir)) {
            /* Live: the shim kills at once and writes its result; if it does not, we kill it. */
            proc_mark_cancel(dir, DMS_CANCEL_USER);
            proc_ring(dir, "kill\n");
            wait_lock_free(dir, CLEANUP_KILL_WAIT_MS);
            if (dms_state_lock_held(dir)) {
                proc_hard_kill(dir);
                wait_lock_free(dir, CLEANUP_KILL_WAIT_MS);
            }
            killed = true;
        } else {
            proc_shim_state st;
            killed = proc_shim_state_read(dir, &st) && proc_alive(st.pid, st.start_time);
        }
        proc_reap_orphan(dir, p->host, NULL);
    }
    wait_lock_free(dir, SHIM_EXIT_WAIT_MS); /* a finished execution's shim may still be exiting */
    proc_remove_spec_cgroups(dir);
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
                dmsu_snprintf_ok(path, sizeof(path), "%s/%s", b->dir, de->d_name) < 0)
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
