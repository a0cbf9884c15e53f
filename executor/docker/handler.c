/* handler.c - one execution's life in the Docker backend: claim, prepare, attach, start, capture, end.
 *
 * The rules this code keeps (each one a bug the Go executors had):
 *   - the handler is registered before any pull or create, so wait/cancel/logs never say "not found" for a job that
 *     was started;
 *   - the attach is in place before start, so the capture has the first byte; logs go to our own files;
 *   - the exit code comes from the `die` event (it arrives well before POST /wait would return); the result is
 *     published once every byte is captured (die + attach EOF), under a lock, and every waiter is woken;
 *   - a finished execution is never run again: its result.json answers ALREADY_COMPLETE, across processes;
 *   - a cancel is SIGTERM then SIGKILL after the grace period (docker stop?t=), and marks the outcome first, so a
 *     cancelled job reads CANCELLED and not "killed by signal 9";
 *   - OOM comes from the oom event or the container state, never from exit code 137 alone. */
#include "docker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIGNAL_EXIT_BASE 128
#define TINI_FATAL_PREFIX "[FATAL tini ("
#define SIGNAL_MAX 64

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
    dms_buf_free(&h->frame);
    dms_result_cell_unref(h->cell);
    pthread_cond_destroy(&h->cond);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- the end ---- */

static void delete_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_handler *h = ud;
    /* 404 gone already, 409 "removal already in progress" (someone else's cleanup): both are done. */
    if (rc < 0 || (status != 204 && status != 404 && status != 409))
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=remove container=%s status=%ld msg=\"%s\"", h->exec_id, h->name,
                 status, rc < 0 && err ? err->message : body);
    atomic_fetch_sub(&h->ex->pending_removals, 1);
    docker_handler_unref(h);
}

static const docker_xfer_cbs delete_cbs = {.on_done = delete_done};

static int read_cancel_marker(const char *dir)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_CANCEL_FILE, dir);
    char buf[16] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    return strncmp(buf, "timeout", 7) == 0 ? DMS_CANCEL_TIMEOUT : DMS_CANCEL_USER;
}

void docker_handler_finalize(docker_handler *h)
{
    pthread_mutex_lock(&h->lock);
    if (h->finalizing) {
        pthread_mutex_unlock(&h->lock);
        return;
    }
    h->finalizing = true;
    int cancel_reason = h->cancel_reason;
    pthread_mutex_unlock(&h->lock);
    if (!cancel_reason)
        cancel_reason = read_cancel_marker(h->dir);

    dms_error err = {0};
    /* Per stream: did it write anything at all (then the excerpt need not walk the capture)? -1: unknown. */
    int64_t total[3] = {0, -1, -1};
    if (h->writer) {
        total[DMS_STREAM_STDOUT] = (int64_t)dms_logstore_bytes(h->writer, DMS_STREAM_STDOUT);
        total[DMS_STREAM_STDERR] = (int64_t)dms_logstore_bytes(h->writer, DMS_STREAM_STDERR);
        if (dms_logstore_finish(h->writer, &err) < 0)
            dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture msg=\"%s\"", h->exec_id, err.message);
        dms_logstore_writer_free(h->writer);
        h->writer = NULL;
    }
    dms_exec_result r = {0};
    pthread_mutex_lock(&h->lock);
    r.exit_code = h->exited && !h->lost ? h->exit_code : -1;
    r.oom_killed = h->oom;
    r.started_at_ns = h->started_at_ns;
    r.finished_at_ns = h->finished_at_ns ? h->finished_at_ns : dms_now_ns();
    if (h->fail_outcome) {
        r.outcome = h->fail_outcome;
        snprintf(r.error, sizeof(r.error), "%s", h->fail_msg);
    } else if (cancel_reason == DMS_CANCEL_USER) {
        r.outcome = DMS_OUTCOME_CANCELLED;
    } else if (cancel_reason == DMS_CANCEL_TIMEOUT) {
        r.outcome = DMS_OUTCOME_TIMED_OUT;
        snprintf(r.error, sizeof(r.error), "run timeout of %lld ms passed", (long long)h->timeout_ms);
    } else if (h->lost) {
        r.outcome = DMS_OUTCOME_LOST;
        snprintf(r.error, sizeof(r.error), "%s", h->fail_msg[0] ? h->fail_msg : "the container was removed behind our back");
    } else if (h->oom) {
        r.outcome = DMS_OUTCOME_OOM_KILLED;
        snprintf(r.error, sizeof(r.error), "killed for exceeding its memory limit");
    } else if (h->exit_code == 137 && h->memory_bytes > 0 && !h->outside_signal) {
        /* SIGKILL under a memory limit, and nobody asked the engine to kill it (no kill event, no cancel). The
         * engine misses OOM kills that come within ~50 ms of the start (containerd's cgroup v1 OOM watch is not in
         * place yet: measured here, no oom event at all); nothing else SIGKILLs a container's PID 1. */
        r.outcome = DMS_OUTCOME_OOM_KILLED;
        r.oom_killed = true;
        snprintf(r.error, sizeof(r.error),
                 "killed for exceeding its memory limit (SIGKILL with no kill request; the engine reported no oom)");
    } else if (h->outside_signal || (h->exit_code > SIGNAL_EXIT_BASE && h->exit_code <= SIGNAL_EXIT_BASE + SIGNAL_MAX)) {
        /* Docker reports death by signal N as exit code 128+N; a kill event we did not cause confirms it. */
        r.outcome = DMS_OUTCOME_SIGNALED;
        r.signal = h->outside_signal ? h->outside_signal : h->exit_code - SIGNAL_EXIT_BASE;
    } else {
        r.outcome = DMS_OUTCOME_EXITED;
    }
    if ((r.outcome == DMS_OUTCOME_CANCELLED || r.outcome == DMS_OUTCOME_TIMED_OUT) && h->exit_code > SIGNAL_EXIT_BASE &&
        h->exit_code <= SIGNAL_EXIT_BASE + SIGNAL_MAX)
        r.signal = h->exit_code - SIGNAL_EXIT_BASE;
    bool delete_container = h->container_id[0] && !h->keep_container;
    pthread_mutex_unlock(&h->lock);
    /* Counted before the publish wakes anyone: a host that closes the executor right after the result still lets
     * this removal land. */
    if (delete_container)
        atomic_fetch_add(&h->ex->pending_removals, 1);

    for (int s = DMS_STREAM_STDOUT; s <= DMS_STREAM_STDERR; s++) {
        if (total[s] == 0)
            continue;
        char *data = NULL;
        size_t len = 0;
        bool trunc = false;
        if (dms_logstore_excerpt(h->dir, (dms_stream_type)s, (size_t)h->result_bytes, &data, &len, &trunc, &err) == 0)
            dms_exec_result_set_output(&r, s, data, len, trunc);
        free(data);
    }
    /* Under an init, a program that cannot be executed is not a start error (the init started fine): tini says so
     * on stderr and exits 126/127. It never ran, as without an init: FAILED, naming it. */
    if (h->init && r.outcome == DMS_OUTCOME_EXITED && (r.exit_code == 126 || r.exit_code == 127) && r.stderr_data &&
        strncmp(r.stderr_data, TINI_FATAL_PREFIX, strlen(TINI_FATAL_PREFIX)) == 0 && strstr(r.stderr_data, "exec ")) {
        r.outcome = DMS_OUTCOME_FAILED;
        const char *msg = strstr(r.stderr_data, "] "); /* after "[FATAL tini (7)] " */
        msg = msg ? msg + 2 : r.stderr_data;
        while (*msg == ' ')
            msg++;
        snprintf(r.error, sizeof(r.error), "cannot run: %.*s", (int)strcspn(msg, "\n"), msg);
    }
    /* Waiters first (they are what the caller is blocked on); FINISHED with it, so that a remove right after the
     * result is not refused. Then the file, for other processes and restarts: without fsync (the result can be
     * recomputed from the engine; an fsync here blocked the loop, and every other job, for 8-11 ms). Removal of the
     * execution dir waits for `persisted`. The owner lock is kept until the file is there. */
    pthread_mutex_lock(&h->lock);
    h->state = DMS_STATE_FINISHED;
    uint64_t t1 = h->timeout_timer, t2 = h->grace_timer;
    h->timeout_timer = h->grace_timer = 0;
    pthread_mutex_unlock(&h->lock);
    dms_result_cell_publish(h->cell, &r);
    char *json = dms_exec_result_to_json(&r);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_RESULT_FILE, h->dir);
    if (!json || dms_write_file_replace(path, json, strlen(json), &err) < 0)
        dms_logf(h->ex->host, DMS_LOG_ERROR, "exec=%s op=finalize msg=\"cannot save the result: %s\"", h->exec_id,
                 json ? err.message : "out of memory");
    free(json);
    dms_logf(h->ex->host, DMS_LOG_INFO, "exec=%s op=finish outcome=%s exit_code=%d", h->exec_id,
             dms_outcome_name(r.outcome), r.exit_code);
    dms_exec_result_clear(&r);

    pthread_mutex_lock(&h->lock);
    h->persisted = true;
    if (h->lock_fd >= 0) {
        close(h->lock_fd);
        h->lock_fd = -1;
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    docker_loop_timer_cancel(h->ex->loop, t1);
    docker_loop_timer_cancel(h->ex->loop, t2);
    /* Removal is off the critical path: the result is already out. */
    if (delete_container) {
        char p[160];
        snprintf(p, sizeof(p), "/containers/%s?force=1&v=1", h->container_id);
        if (!docker_loop_add(h->ex->loop, "DELETE", p, NULL, &delete_cbs, docker_handler_ref(h),
                             DOCKER_SHORT_CALL_TIMEOUT_MS)) {
            atomic_fetch_sub(&h->ex->pending_removals, 1);
            docker_handler_unref(h);
        }
    }
}

bool docker_handler_wait_persisted(docker_handler *h, int64_t timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    while (!h->persisted && rc == 0)
        rc = pthread_cond_timedwait(&h->cond, &h->lock, &deadline);
    bool ok = h->persisted;
    pthread_mutex_unlock(&h->lock);
    return ok;
}

static void grace_fired(void *ud, bool cancelled)
{
    docker_handler *h = ud;
    if (!cancelled) {
        pthread_mutex_lock(&h->lock);
        bool capture_pending = !h->capture_done;
        h->grace_timer = 0;
        pthread_mutex_unlock(&h->lock);
        if (capture_pending) {
            dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture msg=\"output still open %d ms after exit; closing\"",
                     h->exec_id, DOCKER_ATTACH_GRACE_MS);
            docker_loop_abort(h->ex->loop, h->capture_xfer);
        }
    }
    docker_handler_unref(h);
}

void docker_handler_maybe_finalize(docker_handler *h)
{
    pthread_mutex_lock(&h->lock);
    /* While preparing, the starting thread owns the end (a failed start removes its container, and that
     * container's destroy event must not make the job "lost"); it checks again once the job runs. */
    bool preparing = h->state == DMS_STATE_PREPARING;
    bool ready = h->exited && !h->capture_expected && !h->inspect_pending && !preparing;
    /* An attach ends right after the exit; a /logs backfill (adopted job) ends by itself, however long it is. */
    bool arm_grace = h->exited && !ready && !preparing && !h->grace_timer && !h->capture_is_logs;
    if (arm_grace)
        h->grace_timer = UINT64_MAX; /* placeholder until the id is known */
    pthread_mutex_unlock(&h->lock);
    if (ready) {
        docker_handler_finalize(h);
        return;
    }
    if (arm_grace) {
        uint64_t id = docker_loop_timer(h->ex->loop, DOCKER_ATTACH_GRACE_MS, grace_fired, docker_handler_ref(h));
        pthread_mutex_lock(&h->lock);
        if (h->grace_timer == UINT64_MAX)
            h->grace_timer = id;
        pthread_mutex_unlock(&h->lock);
    }
}

/* ---- inspect fallback ---- */

static void inspect_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_handler *h = ud;
    json_t *j = rc == 0 && status == 200 ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *st = json_object_get(j, "State");
    pthread_mutex_lock(&h->lock);
    h->inspect_pending = false;
    if (rc == 0 && status == 404) {
        if (!h->exited) {
            h->exited = true;
            h->lost = true;
        }
    } else if (st && !json_is_true(json_object_get(st, "Running"))) {
        if (!h->exited) {
            h->exited = true;
            h->exit_code = (int)json_integer_value(json_object_get(st, "ExitCode"));
        }
        if (json_is_true(json_object_get(st, "OOMKilled")))
            h->oom = true;
    }
    pthread_mutex_unlock(&h->lock);
    json_decref(j);
    /* Whatever it said (or failed to say), the end no longer waits for it. */
    docker_handler_maybe_finalize(h);
    docker_handler_unref(h);
}

static const docker_xfer_cbs inspect_cbs = {.on_done = inspect_done};

void docker_handler_inspect_async(docker_handler *h)
{
    char p[160];
    pthread_mutex_lock(&h->lock);
    snprintf(p, sizeof(p), "/containers/%s/json", h->container_id[0] ? h->container_id : h->name);
    pthread_mutex_unlock(&h->lock);
    if (!docker_loop_add(h->ex->loop, "GET", p, NULL, &inspect_cbs, docker_handler_ref(h), DOCKER_SHORT_CALL_TIMEOUT_MS))
        docker_handler_unref(h);
}

/* ---- capture ---- */

/* Adopted capture: a frame from /logs is "<RFC3339Nano> <payload>"; skip what the capture already has. */
static int logs_frame(docker_handler *h, int stream, const char *data, size_t len, bool frame_end)
{
    if (dms_buf_append(&h->frame, data, len) < 0)
        return -DMS_E_NOMEM;
    if (!frame_end)
        return 0;
    int64_t ts = 0;
    size_t off = docker_parse_timestamp(h->frame.data ? h->frame.data : "", h->frame.len, &ts);
    const char *p = h->frame.data + off;
    size_t n = h->frame.len - off;
    int r = 0;
    if (h->skip[stream] >= n) {
        h->skip[stream] -= n;
    } else {
        p += h->skip[stream];
        n -= h->skip[stream];
        h->skip[stream] = 0;
        dms_error err;
        bool partial = n == 0 || p[n - 1] != '\n';
        r = dms_logstore_write_frame(h->writer, (dms_stream_type)stream, ts, partial, p, n, &err);
    }
    dms_buf_reset(&h->frame);
    return r;
}

static int demux_cb(void *ud, int stream, const char *data, size_t len, bool frame_end)
{
    docker_handler *h = ud;
    if (stream == DOCKER_FRAME_SYSTEMERR) {
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture systemerr=\"%.*s\"", h->exec_id, (int)len, data);
        return 0;
    }
    if (!h->writer)
        return 0;
    if (h->capture_is_logs)
        return logs_frame(h, stream, data, len, frame_end);
    dms_error err;
    return dms_logstore_write(h->writer, (dms_stream_type)stream, 0, data, len, &err);
}

static void capture_headers(void *ud, long status)
{
    docker_handler *h = ud;
    pthread_mutex_lock(&h->lock);
    h->capture_headers = true;
    h->capture_status = status;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

static int capture_data(void *ud, const char *data, size_t len)
{
    docker_handler *h = ud;
    int r = docker_demux_feed(&h->demux, data, len, demux_cb, h);
    if (r < 0) {
        dms_logf(h->ex->host, DMS_LOG_ERROR, "exec=%s op=capture msg=\"malformed output stream (%d)\"", h->exec_id, r);
        return r == -1 ? -DMS_E_PROTOCOL : r;
    }
    /* One write(2) per callback: followers see output within one network read of it arriving. */
    dms_error err;
    if (h->writer && dms_logstore_flush(h->writer, &err) < 0) {
        dms_logf(h->ex->host, DMS_LOG_ERROR, "exec=%s op=capture msg=\"%s\"", h->exec_id, err.message);
        return -DMS_E_IO;
    }
    return 0;
}

static void capture_again(void *ud, bool cancelled)
{
    docker_handler *h = ud;
    dms_error err;
    if (cancelled || atomic_load(&h->ex->shutting_down) || docker_handler_capture(h, true, true, &err) < 0) {
        pthread_mutex_lock(&h->lock);
        h->capture_expected = false;
        pthread_mutex_unlock(&h->lock);
        docker_handler_maybe_finalize(h);
    }
    docker_handler_unref(h);
}

static uint64_t captured_bytes(const docker_handler *h)
{
    return h->writer ? dms_logstore_bytes(h->writer, DMS_STREAM_STDOUT) + dms_logstore_bytes(h->writer, DMS_STREAM_STDERR)
                     : 0;
}

static void capture_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_handler *h = ud;
    if (atomic_load(&h->ex->shutting_down)) {
        /* Our process is going away mid-capture: nothing is finished. The capture on disk stays resumable and the
         * next owner (another process, or recover) carries on from it. */
        docker_handler_unref(h);
        return;
    }
    if (rc < 0 && rc != -DMS_E_CANCELLED)
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture msg=\"%s\"", h->exec_id, err ? err->message : "");
    else if (rc == 0 && (status < 200 || status >= 300))
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture status=%ld body=\"%.*s\"", h->exec_id, status,
                 (int)(len > 200 ? 200 : len), body);
    if (!docker_demux_at_boundary(&h->demux))
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture msg=\"output stream ended inside a frame; the bytes "
                 "that arrived are kept\"", h->exec_id);
    pthread_mutex_lock(&h->lock);
    bool exited = h->exited;
    pthread_mutex_unlock(&h->lock);
    /* An adopted capture reads GET /logs. Measured on 20.10: a follow can end before it has delivered all the
     * output of a job that wrote fast and exited. So a pass is repeated (skipping what we have) until one brings
     * nothing new after the exit is known; a follow that ended while the job runs (a dropped connection) goes on. */
    if (h->capture_is_logs)
        dms_logf(h->ex->host, DMS_LOG_DEBUG, "exec=%s op=capture pass_end rc=%d status=%ld exited=%d before=%llu now=%llu",
                 h->exec_id, rc, status, exited, (unsigned long long)h->pass_start_bytes,
                 (unsigned long long)captured_bytes(h));
    if (h->capture_is_logs && rc != -DMS_E_CANCELLED && status == 200 && !atomic_load(&h->ex->shutting_down)) {
        bool progressed = captured_bytes(h) > h->pass_start_bytes;
        if (progressed || !exited) {
            docker_demux_reset(&h->demux);
            dms_buf_reset(&h->frame);
            docker_loop_timer(h->ex->loop, progressed ? 0 : DOCKER_LOGS_REPASS_IDLE_MS, capture_again, h);
            return; /* the timer owns our reference */
        }
    }
    pthread_mutex_lock(&h->lock);
    h->capture_done = true;
    h->capture_expected = false;
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    int events_state = 0;
    pthread_mutex_lock(&h->ex->lock);
    events_state = h->ex->events_state;
    pthread_mutex_unlock(&h->ex->lock);
    if (exited)
        docker_handler_maybe_finalize(h);
    else if (events_state != 1)
        /* Without events the end of the output is our best hint that it ended: ask the engine. */
        docker_handler_inspect_async(h);
    docker_handler_unref(h);
}

static const docker_xfer_cbs capture_cbs = {
    .on_headers = capture_headers,
    .on_data = capture_data,
    .on_done = capture_done,
};

int docker_handler_capture(docker_handler *h, bool from_logs, bool follow, dms_error *err)
{
    char p[256];
    h->capture_is_logs = from_logs;
    if (from_logs) {
        /* Full history each pass; what the capture already has is skipped, counted in bytes per stream. */
        h->skip[DMS_STREAM_STDOUT] = h->writer ? dms_logstore_bytes(h->writer, DMS_STREAM_STDOUT) : 0;
        h->skip[DMS_STREAM_STDERR] = h->writer ? dms_logstore_bytes(h->writer, DMS_STREAM_STDERR) : 0;
        h->pass_start_bytes = h->skip[DMS_STREAM_STDOUT] + h->skip[DMS_STREAM_STDERR];
    }
    if (from_logs)
        snprintf(p, sizeof(p), "/containers/%s/logs?stdout=1&stderr=1&timestamps=1&follow=%d", h->container_id,
                 follow ? 1 : 0);
    else
        snprintf(p, sizeof(p), "/containers/%s/attach?stream=1&stdout=1&stderr=1", h->container_id);
    pthread_mutex_lock(&h->lock);
    h->capture_headers = false;
    h->capture_done = false;
    h->capture_expected = true;
    pthread_mutex_unlock(&h->lock);
    uint64_t id = docker_loop_add(h->ex->loop, from_logs ? "GET" : "POST", p, NULL, &capture_cbs,
                                  docker_handler_ref(h), 0);
    if (!id) {
        pthread_mutex_lock(&h->lock);
        h->capture_expected = false;
        pthread_mutex_unlock(&h->lock);
        docker_handler_unref(h);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "cannot queue the output capture");
    }
    pthread_mutex_lock(&h->lock);
    h->capture_xfer = id;
    pthread_mutex_unlock(&h->lock);
    return 0;
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

/* ---- start ---- */

/* Ends a start that failed before the workload ran: the result says why, and the id is spent. */
static int fail_start(docker_handler *h, dms_exec_outcome outcome, int rc, dms_error *err)
{
    /* The engine failing (an error it answered, no answer, nonsense, a broken socket) is not the workload's
     * fault: a waiter tells it from a workload that cannot run by the outcome. */
    if (outcome == DMS_OUTCOME_FAILED && err &&
        (err->code == DMS_E_ENGINE || err->code == DMS_E_UNAVAILABLE || err->code == DMS_E_PROTOCOL ||
         err->code == DMS_E_IO))
        outcome = DMS_OUTCOME_ENGINE_ERROR;
    pthread_mutex_lock(&h->lock);
    h->fail_outcome = outcome;
    snprintf(h->fail_msg, sizeof(h->fail_msg), "%s", err ? err->message : "start failed");
    pthread_mutex_unlock(&h->lock);
    docker_handler_finalize(h);
    return rc;
}

static int remove_container_now(docker_executor *ex, const char *id)
{
    char p[200];
    docker_response resp;
    dms_error e;
    snprintf(p, sizeof(p), "/containers/%s?force=1&v=1", id);
    int r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, &e);
    dms_buf_free(&resp.body);
    return r;
}

/* A named volume carries the executor's labels and the job that created it (io.dms.job): a volume kept after
 * its droid was deleted can still be traced to it. It outlives executions; cleanup removes it with the rest. */
static int ensure_volume(docker_executor *ex, const char *name, const char *job_id, dms_error *err)
{
    _cleanup_json_ json_t *labels = docker_labels(ex->id, job_id, NULL, "volume");
    _cleanup_json_ json_t *body = json_pack("{s:s,s:s,s:O}", "Name", name, "Driver", "local", "Labels", labels);
    _cleanup_free_ char *js = json_dumps(body, JSON_COMPACT);
    docker_response resp;
    /* 201 also for an existing volume (measured): idempotent, and an existing volume keeps its labels. */
    int r = docker_call(&ex->client, "POST", "/volumes/create", js, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 201) {
        char what[160];
        snprintf(what, sizeof(what), "create volume %s", name);
        r = docker_error_from_response(&resp, what, err);
    }
    dms_buf_free(&resp.body);
    return r;
}

static int already(docker_handler *h, dms_error *err)
{
    char rp[PATH_MAX + 16];
    snprintf(rp, sizeof(rp), "%s/" DOCKER_RESULT_FILE, h->dir);
    if (access(rp, F_OK) == 0)
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id",
                             "execution %s has already run to completion; it is never run twice", h->exec_id);
    return dms_error_set(err, DMS_E_ALREADY_STARTED, "execution_id", "execution %s is already started", h->exec_id);
}

/* Claims the execution id across processes. The execution dir appears already locked and with its spec: it is
 * prepared under a private name and renamed into place (rename refuses an existing dir), so nobody can ever see
 * it unlocked and mistake it for an orphan. */
static int claim(docker_executor *ex, docker_handler *h, const dms_exec_request *req, dms_error *err)
{
    if (access(h->dir, F_OK) == 0)
        return already(h, err);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/" DOCKER_CLAIM_PREFIX "%s-%d-%llx", ex->host->state_dir, h->exec_id, (int)getpid(),
             (unsigned long long)dms_now_ns());
    if (mkdir(tmp, DMS_PRIVATE_DIR_MODE) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", tmp);
    int r = dms_state_lock(tmp, &h->lock_fd, err);
    if (r <= 0) {
        dms_rm_rf(tmp, NULL);
        return r == 0 ? dms_error_set(err, DMS_E_INTERNAL, NULL, "a fresh claim %s is locked by someone else", tmp) : r;
    }
    _cleanup_free_ char *rq = dms_exec_request_to_json(req);
    _cleanup_json_ json_t *spec =
        json_pack("{s:s,s:s,s:I,s:o?}", "container_name", h->name, "executor", ex->id, "created_ns",
                  (json_int_t)dms_now_ns(), "request", rq ? json_loads(rq, 0, NULL) : NULL);
    _cleanup_free_ char *js = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_SPEC_FILE, tmp);
    if (!js)
        r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    else
        r = dms_write_file_atomic(path, js, strlen(js), err);
    if (r == 0 && rename(tmp, h->dir) != 0) {
        int e = errno;
        r = (e == EEXIST || e == ENOTEMPTY) ? already(h, err)
                                            : dms_error_set_errno(err, DMS_E_IO, e, "claim %s", h->dir);
    }
    if (r < 0) {
        close(h->lock_fd);
        h->lock_fd = -1;
        dms_rm_rf(tmp, NULL);
        return r;
    }
    return dms_logstore_writer_open(&h->writer, h->dir, h->log_cap, err);
}

/* Cancelled during preparation, by this process or (through the cancel file) by another one. */
static bool aborted(docker_handler *h)
{
    docker_abort a = {.flag = &h->abort_prep, .marker_path = h->cancel_marker};
    return docker_abort_requested(&a);
}

static int wait_attached(docker_handler *h, dms_error *err)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += DOCKER_ATTACH_WAIT_MS / 1000;
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    while (!h->capture_headers && !h->capture_done && rc == 0)
        rc = pthread_cond_timedwait(&h->cond, &h->lock, &deadline);
    bool ok = h->capture_headers && h->capture_status >= 200 && h->capture_status < 300;
    long st = h->capture_status;
    pthread_mutex_unlock(&h->lock);
    if (!ok)
        return dms_error_set(err, DMS_E_ENGINE, NULL, "attach to container %s failed (%s)", h->name,
                             rc ? "no answer in time" : st ? "engine refused it" : "connection failed");
    return 0;
}

/* After a start call that timed out: did the engine start the container anyway? */
static bool started_anyway(docker_executor *ex, docker_handler *h)
{
    json_t *j = NULL;
    if (docker_inspect(ex, h->container_id, &j, NULL) < 0)
        return false;
    const char *at = json_string_value(json_object_get(json_object_get(j, "State"), "StartedAt"));
    bool started = at && strncmp(at, "0001-", 5) != 0; /* Go's zero time: never started */
    json_decref(j);
    return started;
}

static bool looks_like_bad_entrypoint(const char *msg)
{
    return strstr(msg, "executable file not found") || strstr(msg, "no such file or directory") ||
           strstr(msg, "permission denied") || strstr(msg, "exec format error") || strstr(msg, "not a directory");
}

/* Everything after the claim: image, network, volumes, create, attach, start. Every failure ends the execution
 * through fail_start(), so waiters learn why. */
static int launch(docker_executor *ex, docker_handler *h, const dms_exec_request *req, dms_error *err)
{
    int r = docker_image_present(ex, req->engine.image, err);
    if (r == 0 && !aborted(h)) {
        docker_abort a = {.flag = &h->abort_prep, .marker_path = h->cancel_marker};
        r = docker_pull(ex, req->engine.image, &a, err);
    }
    if (r < 0 && r != -DMS_E_CANCELLED)
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    if (req->network_mode == DMS_NET_NAMED && !aborted(h) &&
        (r = docker_ensure_network(ex, req->network_name, err)) < 0)
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    for (size_t i = 0; i < req->n_mounts && !aborted(h); i++)
        if (req->mounts[i].type == DMS_MOUNT_VOLUME && (r = ensure_volume(ex, req->mounts[i].source, req->job_id, err)) < 0)
            return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    if (aborted(h)) {
        dms_error_set(err, DMS_E_CANCELLED, NULL, "execution %s was cancelled during preparation", h->exec_id);
        return fail_start(h, DMS_OUTCOME_CANCELLED, -DMS_E_CANCELLED, err);
    }

    /* Create. */
    _cleanup_json_ json_t *spec = docker_container_spec(req, ex->id);
    _cleanup_free_ char *body = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    if (!body) {
        dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        return fail_start(h, DMS_OUTCOME_FAILED, -DMS_E_NOMEM, err);
    }
    char path[DOCKER_NAME_MAX + 64];
    snprintf(path, sizeof(path), "/containers/create?name=%s", h->name);
    docker_response resp;
    r = docker_call(&ex->client, "POST", path, body, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status != 201) {
        char what[DOCKER_NAME_MAX + 32];
        snprintf(what, sizeof(what), "create container %s", h->name);
        r = docker_error_from_response(&resp, what, err);
        if (r == -DMS_E_NOT_FOUND) {
            r = dms_error_set(err, DMS_E_IMAGE, "engine.image", "create container %s: image %s is not present", h->name,
                              req->engine.image);
        } else if (req->resources.disk_bytes > 0 && strstr(err->message, "storage-opt")) {
            char msg[DMS_ERROR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", err->message);
            r = dms_error_set(err, DMS_E_NOT_SUPPORTED, "resources.disk_bytes",
                              "resources.disk_bytes: this engine's storage driver cannot limit disk size (%s)", msg);
        }
    }
    if (r == 0) {
        json_t *j = docker_response_json(&resp, "create container", err);
        const char *id = json_string_value(json_object_get(j, "Id"));
        if (id) {
            pthread_mutex_lock(&h->lock);
            snprintf(h->container_id, sizeof(h->container_id), "%s", id);
            pthread_mutex_unlock(&h->lock);
        } else {
            r = j ? dms_error_set(err, DMS_E_PROTOCOL, NULL, "create container %s: no Id in the answer", h->name)
                  : -DMS_E_PROTOCOL;
        }
        json_decref(j);
    }
    dms_buf_free(&resp.body);
    if (r < 0)
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    if (aborted(h)) {
        remove_container_now(ex, h->container_id);
        h->container_id[0] = '\0';
        dms_error_set(err, DMS_E_CANCELLED, NULL, "execution %s was cancelled during preparation", h->exec_id);
        return fail_start(h, DMS_OUTCOME_CANCELLED, -DMS_E_CANCELLED, err);
    }

    /* Attach before start, so the capture has the first byte. From here the loop thread drives the writer. */
    if ((r = docker_handler_capture(h, false, true, err)) < 0 || (r = wait_attached(h, err)) < 0) {
        docker_loop_abort(ex->loop, h->capture_xfer);
        remove_container_now(ex, h->container_id);
        h->container_id[0] = '\0';
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    }

    snprintf(path, sizeof(path), "/containers/%s/start", h->container_id);
    r = docker_call(&ex->client, "POST", path, NULL, DOCKER_START_TIMEOUT_MS, &resp, err);
    /* A created container holds its network by name only: removed in between (404), or made twice by creates
     * that raced (ambiguous), it is mended and the start tried again (network.c). */
    for (int i = 0; i < DOCKER_NETWORK_START_ATTEMPTS && r == 0 && req->network_mode == DMS_NET_NAMED; i++) {
        bool missing = docker_network_missing(&resp), ambiguous = !missing && docker_network_ambiguous(&resp);
        if (!missing && !ambiguous)
            break;
        dms_buf_free(&resp.body);
        r = missing ? docker_ensure_network(ex, req->network_name, err)
                    : docker_network_dedupe(ex, req->network_name, err);
        if (r == 0)
            r = docker_call(&ex->client, "POST", path, NULL, DOCKER_START_TIMEOUT_MS, &resp, err);
    }
    int64_t started = dms_now_ns();
    if (r == -DMS_E_TIMEOUT && started_anyway(ex, h)) {
        /* The engine was slow to answer, but the container did start: it is running (or ran). */
        dms_logf(ex->host, DMS_LOG_WARN, "exec=%s op=start msg=\"the engine answered start late; it started\"",
                 h->exec_id);
        r = 0;
        resp.status = 204;
    }
    if (r == 0 && resp.status != 204 && resp.status != 304) {
        char msg[DMS_ERROR_MSG_MAX];
        docker_response_message(&resp, msg, sizeof(msg));
        const char *prog = req->engine.entrypoint && req->engine.entrypoint[0] ? req->engine.entrypoint[0]
                           : req->engine.cmd && req->engine.cmd[0]            ? req->engine.cmd[0]
                                                                              : "the image's command";
        if (looks_like_bad_entrypoint(msg) || resp.status == 400)
            r = dms_error_set(err, DMS_E_START_FAILED, "engine.entrypoint", "start %s: cannot run %s: %s", h->name,
                              prog, msg);
        else
            r = docker_error_from_response(&resp, "start container", err);
    }
    dms_buf_free(&resp.body);
    if (r < 0) {
        docker_loop_abort(ex->loop, h->capture_xfer);
        if (!h->keep_container)
            remove_container_now(ex, h->container_id);
        h->container_id[0] = '\0';
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    }
    pthread_mutex_lock(&h->lock);
    h->started_at_ns = started;
    if (h->state == DMS_STATE_PREPARING)
        h->state = DMS_STATE_RUNNING;
    bool cancel_now = aborted(h);
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
    if (h->timeout_ms > 0)
        docker_handler_arm_timeout(h, h->timeout_ms);
    /* It may have ended already (a die event while we were still preparing). */
    docker_handler_maybe_finalize(h);
    if (cancel_now) {
        /* A cancel arrived between create and start: it is waiting for the end; stop it now. */
        dms_error ignored;
        docker_cancel(ex, h->exec_id, DMS_CANCEL_USER, -1, &ignored);
    }
    return 0;
}

int docker_start(docker_executor *ex, const dms_exec_request *req, dms_error *err)
{
    int r = docker_validate_request(req, err);
    if (r < 0)
        return r;
    docker_handler *existing = docker_handler_find(ex, req->execution_id);
    if (existing) {
        pthread_mutex_lock(&existing->lock);
        bool done = existing->state == DMS_STATE_FINISHED;
        pthread_mutex_unlock(&existing->lock);
        docker_handler_unref(existing);
        if (done)
            return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id",
                                 "execution %s has already run to completion; it is never run twice",
                                 req->execution_id);
        return dms_error_set(err, DMS_E_ALREADY_STARTED, "execution_id", "execution %s is already started",
                             req->execution_id);
    }
    docker_handler *h = docker_handler_new(ex, req->execution_id, req->job_id);
    if (!h)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    h->timeout_ms = req->timeout_ms;
    h->grace_ms = req->stop_grace_ms > 0 ? req->stop_grace_ms : DMS_DEFAULT_STOP_GRACE_MS;
    h->result_bytes = req->limits.result_output_bytes > 0 ? req->limits.result_output_bytes
                                                          : DMS_DEFAULT_RESULT_OUTPUT_BYTES;
    h->log_cap = req->limits.log_file_bytes;
    h->memory_bytes = req->resources.memory_bytes;
    h->keep_container = req->keep_container;
    h->init = req->init;
    h->state = DMS_STATE_PREPARING;
    if ((r = claim(ex, h, req, err)) < 0) {
        if (r != -DMS_E_ALREADY_STARTED && r != -DMS_E_ALREADY_COMPLETE && h->lock_fd >= 0) {
            /* Claimed, but the capture could not be opened: give the id back. */
            dms_rm_rf(h->dir, NULL);
        }
        docker_handler_unref(h);
        return r;
    }
    /* Registered before pull and create: wait, cancel and logs find it from here on. */
    docker_handler_register(ex, h);
    dms_logf(ex->host, DMS_LOG_INFO, "exec=%s job=%s op=start image=%s", h->exec_id, h->job_id, req->engine.image);
    r = launch(ex, h, req, err);
    docker_handler_unref(h);
    return r;
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
        dms_buf_free(&kr.body);
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
    dms_buf_free(&resp.body);
    return r;
}

int docker_cancel(docker_executor *ex, const char *exec_id, dms_cancel_reason reason, int64_t grace_ms,
                  dms_error *err)
{
    docker_handler *h = NULL;
    int r = docker_get(ex, exec_id, &h, err);
    if (r < 0)
        return r;
    if (r == 0) {
        /* Another process owns it: mark, stop through the engine, and wait for its result file. */
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
        return dms_error_set(err, DMS_E_TIMEOUT, NULL, "execution %s: stop sent, but its end was not seen in time",
                             exec_id);
    return 0;
}
