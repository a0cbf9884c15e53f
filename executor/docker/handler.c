/* handler.c - one execution's life in the Docker backend: the handler object, the run timeout, cancel. The
 * life itself is in three modules: prepare.c (claim, pull, create, attach, start), capture.c (the output,
 * from the attach or /logs into the log store) and finalize.c (the outcome, the result, the container's
 * removal).
 *
 * The rules this code keeps (each one a bug the Go executors had):
 *   - the handler is registered before any pull or create, so wait/cancel/logs never say "not found" for a
 * job that was started;
 *   - the attach is in place before start, so the capture has the first byte; logs go to our own files;
 *   - the exit code comes from the `die` event (it arrives well before POST /wait would return); the result
 * is published once every byte is captured (die + attach EOF), under a lock, and every waiter is woken;
 *   - a finished execution is never run again: its result.json answers ALREADY_COMPLETE, across processes;
 *   - a cancel is SIGTERM then SIGKILL after the grace period (docker stop?t=), and marks the outcome first,
 * so a cancelled job reads CANCELLED and not "killed by signal 9";
 *   - OOM comes from the oom event or the container state, never from exit code 137 alone. */
#include "docker.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

docker_handler *docker_handler_new(docker_executor *ex, const char *exec_id, const char *job_id)
{
    docker_handler *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->cell = dms_result_cell_new();
    if (!h->cell) {
        free(h);
        return NULL;
    }
    atomic_init(&h->refs, 1);
    atomic_init(&h->abort_prep, false);
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->cond, NULL);
    h->ex = ex;
    h->lock_fd = -1;
    h->exit_code = -1;
    snprintf(h->exec_id, sizeof(h->exec_id), "%s", exec_id);
    snprintf(h->job_id, sizeof(h->job_id), "%s", job_id ? job_id : "");
    docker_container_name(h->name, ex->id, exec_id);
    docker_exec_dir(ex, exec_id, h->dir);
    snprintf(h->cancel_marker, sizeof(h->cancel_marker), "%s/" DOCKER_CANCEL_FILE, h->dir);
    h->grace_ms = DMS_DEFAULT_STOP_GRACE_MS;
    h->result_bytes = DMS_DEFAULT_RESULT_OUTPUT_BYTES;
    return h;
}

docker_handler *docker_handler_ref(docker_handler *h)
{
    if (h)
        atomic_fetch_add(&h->refs, 1);
    return h;
}

void docker_handler_unref(docker_handler *h)
{
    if (!h || atomic_fetch_sub(&h->refs, 1) != 1)
        return;
    dms_logstore_writer_free(h->writer);
    if (h->lock_fd >= 0)
        close(h->lock_fd);
    dmsu_buf_free(&h->frame);
    dms_result_cell_unref(h->cell);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- timeout ---- */

static void stop_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_handler *h = ud;
    if (rc < 0 || (status != 204 && status != 304 && status != 404))
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=stop status=%ld msg=\"%s\"", h->exec_id, status,
                 rc < 0 && err ? err->message : body);
    docker_handler_unref(h);
}

static const docker_xfer_cbs stop_cbs = {.on_done = stop_done};

static void timeout_fired(void *ud, bool cancelled)
{
    docker_handler *h = ud;
    if (!cancelled) {
        pthread_mutex_lock(&h->lock);
        bool running = h->state == DMS_STATE_RUNNING;
        if (running) {
            h->cancel_reason = DMS_CANCEL_TIMEOUT;
            h->state = DMS_STATE_STOPPING;
        }
        h->timeout_timer = 0;
        pthread_mutex_unlock(&h->lock);
        if (running) {
            dms_logf(h->ex->host, DMS_LOG_INFO, "exec=%s op=timeout after_ms=%lld", h->exec_id,
                     (long long)h->timeout_ms);
            char p[200];
            long t = docker_grace_seconds(h->grace_ms);
            snprintf(p, sizeof(p), "/containers/%s/stop?t=%ld", h->container_id, t);
            if (!docker_loop_add(h->ex->loop, "POST", p, NULL, &stop_cbs, docker_handler_ref(h),
                                 t * 1000 + DOCKER_STOP_MARGIN_MS))
                docker_handler_unref(h);
        }
    }
    docker_handler_unref(h);
}

void docker_handler_arm_timeout(docker_handler *h, int64_t delay_ms)
{
    uint64_t id = docker_loop_timer(h->ex->loop, delay_ms, timeout_fired, docker_handler_ref(h));
    pthread_mutex_lock(&h->lock);
    h->timeout_timer = id;
    pthread_mutex_unlock(&h->lock);
}

/* ---- cancel ---- */

static int write_cancel_marker(const char *dir, dms_cancel_reason reason)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_CANCEL_FILE, dir);
    const char *s = reason == DMS_CANCEL_TIMEOUT ? "timeout" : "user";
    dms_error e;
    return dms_write_file_atomic(path, s, strlen(s), &e);
}

/* grace 0: SIGKILL at once (POST kill; 409 "not running" means it is done). */
static int stop_container(docker_executor *ex, const char *name_or_id, int64_t grace_ms, dms_error *err)
{
    if (grace_ms == 0) {
        char kp[200];
        snprintf(kp, sizeof(kp), "/containers/%s/kill?signal=SIGKILL", name_or_id);
        docker_response kr;
        int kr_rc = docker_call(&ex->client, "POST", kp, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &kr, err);
        if (kr_rc == 0 && kr.status != 204 && kr.status != 409 && kr.status != 404)
            kr_rc = docker_error_from_response(&kr, "kill container", err);
        dmsu_buf_free(&kr.body);
        return kr_rc;
    }
    char p[200];
    long t = docker_grace_seconds(grace_ms);
    snprintf(p, sizeof(p), "/containers/%s/stop?t=%ld", name_or_id, t);
    docker_response resp;
    /* Stop timeouts are seconds on the wire; the HTTP timeout is the grace period plus a margin. */
    int r = docker_call(&ex->client, "POST", p, NULL, t * 1000 + DOCKER_STOP_MARGIN_MS, &resp, err);
    if (r == 0 && resp.status != 204 && resp.status != 304 && resp.status != 404)
        r = docker_error_from_response(&resp, "stop container", err);
    dmsu_buf_free(&resp.body);
    return r;
}

/* Another process owns it: mark, stop through the engine, and wait for its result file. */
static int cancel_in_other_process(docker_executor *ex, const char *exec_id, dms_cancel_reason reason,
                                   int64_t grace_ms, dms_error *err)
{
    int r;
    char dir[PATH_MAX], name[DOCKER_NAME_MAX];
    docker_exec_dir(ex, exec_id, dir);
    docker_container_name(name, ex->id, exec_id);
    write_cancel_marker(dir, reason);
    docker_handler *spec = docker_handler_new(ex, exec_id, NULL);
    int64_t grace = DMS_DEFAULT_STOP_GRACE_MS;
    if (spec) {
        docker_load_spec(spec);
        grace = spec->grace_ms;
        docker_handler_unref(spec);
    }
    if (grace_ms >= 0)
        grace = grace_ms;
    if ((r = stop_container(ex, name, grace, err)) < 0)
        return r;
    dms_waiter *w = NULL;
    if ((r = dms_waiter_new_from_file(dir, NULL, NULL, NULL, &w, err)) < 0)
        return r;
    dms_exec_result res = {0};
    r = dms_waiter_result(w, grace + DOCKER_CANCEL_WAIT_EXTRA_MS, &res, err);
    dms_waiter_free(w);
    dms_exec_result_clear(&res);
    return r;
}

int docker_cancel(docker_executor *ex, const char *exec_id, dms_cancel_reason reason, int64_t grace_ms,
                  dms_error *err)
{
    docker_handler *h = NULL;
    int r = docker_get(ex, exec_id, &h, err);
    if (r < 0)
        return r;
    if (r == 0)
        return cancel_in_other_process(ex, exec_id, reason, grace_ms, err);
    pthread_mutex_lock(&h->lock);
    dms_exec_state st = h->state;
    bool first = false;
    if (st == DMS_STATE_FINISHED) {
        pthread_mutex_unlock(&h->lock);
        docker_handler_unref(h);
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id", "execution %s has already finished",
                             exec_id);
    }
    if (!h->cancel_reason) {
        h->cancel_reason = (int)reason;
        first = true;
    }
    if (st == DMS_STATE_PREPARING)
        atomic_store(&h->abort_prep, true);
    else if (st == DMS_STATE_RUNNING)
        h->state = DMS_STATE_STOPPING;
    char cid[80];
    snprintf(cid, sizeof(cid), "%s", h->container_id);
    int64_t grace = grace_ms >= 0 ? grace_ms : h->grace_ms;
    pthread_mutex_unlock(&h->lock);
    if (first)
        write_cancel_marker(h->dir, reason);
    if (st != DMS_STATE_PREPARING && cid[0]) {
        dms_logf(ex->host, DMS_LOG_INFO, "exec=%s op=cancel grace_ms=%lld", exec_id, (long long)grace);
        if ((r = stop_container(ex, cid, grace, err)) < 0) {
            docker_handler_unref(h);
            return r;
        }
    }
    /* Returns once it has ended: the die event (or the start thread, during preparation) finalizes it. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (grace + DOCKER_CANCEL_WAIT_EXTRA_MS) / 1000;
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    while (h->state != DMS_STATE_FINISHED && rc == 0)
        rc = pthread_cond_timedwait(&h->cond, &h->lock, &deadline);
    bool done = h->state == DMS_STATE_FINISHED;
    pthread_mutex_unlock(&h->lock);
    if (!done && st == DMS_STATE_RUNNING)
        /* No die event came (events down?): ask the engine, which finalizes if it has ended. */
        docker_handler_inspect_async(h);
    docker_handler_unref(h);
    if (!done)
        return dms_error_set(err, DMS_E_TIMEOUT, NULL,
                             "execution %s: stop sent, but its end was not seen in time", exec_id);
    return 0;
}
