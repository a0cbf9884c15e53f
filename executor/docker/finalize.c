/* finalize.c - how an execution ends in the Docker backend: the outcome from what is known (die event, oom,
 * cancel, a failed start), the result published to waiters and written to result.json, the container removed
 * off the critical path; the grace for an attach that outlives the exit, and the inspect fallback when no
 * event came. The rules these follow are at the top of handler.c. */
#include "docker.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SIGNAL_EXIT_BASE  128
#define TINI_FATAL_PREFIX "[FATAL tini ("
#define SIGNAL_MAX        64

/* ---- the end ---- */

static void delete_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_handler *h = ud;
    /* 404 gone already, 409 "removal already in progress" (someone else's cleanup): both are done. */
    if (rc < 0 || (status != 204 && status != 404 && status != 409))
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=remove container=%s status=%ld msg=\"%s\"",
                 h->exec_id, h->name, status, rc < 0 && err ? err->message : body);
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

/* Closes the capture; per stream, did it write anything at all (then the excerpt need not walk the capture)?
 * -1: unknown. */
static void close_capture(docker_handler *h, int64_t total[3])
{
    dms_error err = {0};
    if (h->writer) {
        total[DMS_STREAM_STDOUT] = (int64_t)dms_logstore_bytes(h->writer, DMS_STREAM_STDOUT);
        total[DMS_STREAM_STDERR] = (int64_t)dms_logstore_bytes(h->writer, DMS_STREAM_STDERR);
        if (dms_logstore_finish(h->writer, &err) < 0)
            dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture msg=\"%s\"", h->exec_id, err.message);
        dms_logstore_writer_free(h->writer);
        h->writer = NULL;
    }
}

/* The outcome from what is known about the end. Called under h->lock. */
static void judge_outcome(const docker_handler *h, int cancel_reason, dms_exec_result *r)
{
    r->exit_code = h->exited && !h->lost ? h->exit_code : -1;
    r->oom_killed = h->oom;
    r->started_at_ns = h->started_at_ns;
    r->finished_at_ns = h->finished_at_ns ? h->finished_at_ns : dms_now_ns();
    if (h->fail_outcome) {
        r->outcome = h->fail_outcome;
        snprintf(r->error, sizeof(r->error), "%s", h->fail_msg);
    } else if (cancel_reason == DMS_CANCEL_USER) {
        r->outcome = DMS_OUTCOME_CANCELLED;
    } else if (cancel_reason == DMS_CANCEL_TIMEOUT) {
        r->outcome = DMS_OUTCOME_TIMED_OUT;
        snprintf(r->error, sizeof(r->error), "run timeout of %lld ms passed", (long long)h->timeout_ms);
    } else if (h->lost) {
        r->outcome = DMS_OUTCOME_LOST;
        snprintf(r->error, sizeof(r->error), "%s",
                 h->fail_msg[0] ? h->fail_msg : "the container was removed behind our back");
    } else if (h->oom) {
        r->outcome = DMS_OUTCOME_OOM_KILLED;
        snprintf(r->error, sizeof(r->error), "killed for exceeding its memory limit");
    } else if (h->exit_code == 137 && h->memory_bytes > 0 && !h->outside_signal) {
        /* SIGKILL under a memory limit, and nobody asked the engine to kill it (no kill event, no cancel).
         * The engine misses OOM kills that come within ~50 ms of the start (containerd's cgroup v1 OOM watch
         * is not in place yet: measured here, no oom event at all); nothing else SIGKILLs a container's
         * PID 1. */
        r->outcome = DMS_OUTCOME_OOM_KILLED;
        r->oom_killed = true;
        snprintf(r->error, sizeof(r->error),
                 "killed for exceeding its memory limit (SIGKILL with no kill request; the engine reported "
                 "no oom)");
    } else if (h->outside_signal ||
               (h->exit_code > SIGNAL_EXIT_BASE && h->exit_code <= SIGNAL_EXIT_BASE + SIGNAL_MAX)) {
        /* Docker reports death by signal N as exit code 128+N; a kill event we did not cause confirms it. */
        r->outcome = DMS_OUTCOME_SIGNALED;
        r->signal = h->outside_signal ? h->outside_signal : h->exit_code - SIGNAL_EXIT_BASE;
    } else {
        r->outcome = DMS_OUTCOME_EXITED;
    }
    if ((r->outcome == DMS_OUTCOME_CANCELLED || r->outcome == DMS_OUTCOME_TIMED_OUT) &&
        h->exit_code > SIGNAL_EXIT_BASE && h->exit_code <= SIGNAL_EXIT_BASE + SIGNAL_MAX)
        r->signal = h->exit_code - SIGNAL_EXIT_BASE;
}

static void add_excerpts(const docker_handler *h, const int64_t total[3], dms_exec_result *r)
{
    dms_error err = {0};
    for (int s = DMS_STREAM_STDOUT; s <= DMS_STREAM_STDERR; s++) {
        if (total[s] == 0)
            continue;
        char *data = NULL;
        size_t len = 0;
        bool trunc = false;
        if (dms_logstore_excerpt(h->dir, (dms_stream_type)s, (size_t)h->result_bytes, &data, &len, &trunc,
                                 &err) == 0)
            dms_exec_result_set_output(r, s, data, len, trunc);
        free(data);
    }
}

/* Under an init, a program that cannot be executed is not a start error (the init started fine): tini says so
 * on stderr and exits 126/127. It never ran, as without an init: FAILED, naming it. */
static void judge_init_exec_failure(const docker_handler *h, dms_exec_result *r)
{
    if (h->init && r->outcome == DMS_OUTCOME_EXITED && (r->exit_code == 126 || r->exit_code == 127) &&
        r->stderr_data && strncmp(r->stderr_data, TINI_FATAL_PREFIX, strlen(TINI_FATAL_PREFIX)) == 0 &&
        strstr(r->stderr_data, "exec ")) {
        r->outcome = DMS_OUTCOME_FAILED;
        const char *msg = strstr(r->stderr_data, "] "); /* after "[FATAL tini (7)] " */
        msg = msg ? msg + 2 : r->stderr_data;
        while (*msg == ' ')
            msg++;
        snprintf(r->error, sizeof(r->error), "cannot run: %.*s", (int)strcspn(msg, "\n"), msg);
    }
}

/* Waiters first (they are what the caller is blocked on); FINISHED with it, so that a remove right after the
 * result is not refused. Then the file, for other processes and restarts: without fsync (the result can be
 * recomputed from the engine; an fsync here blocked the loop, and every other job, for 8-11 ms). Removal of
 * the execution dir waits for `persisted`. The owner lock is kept until the file is there. */
static void publish_and_persist(docker_handler *h, const dms_exec_result *r)
{
    dms_error err = {0};
    pthread_mutex_lock(&h->lock);
    h->state = DMS_STATE_FINISHED;
    uint64_t t1 = h->timeout_timer, t2 = h->grace_timer;
    h->timeout_timer = h->grace_timer = 0;
    pthread_mutex_unlock(&h->lock);
    dms_result_cell_publish(h->cell, r);
    char *json = dms_exec_result_to_json(r);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_RESULT_FILE, h->dir);
    if (!json || dms_write_file_replace(path, json, strlen(json), &err) < 0)
        dms_logf(h->ex->host, DMS_LOG_ERROR, "exec=%s op=finalize msg=\"cannot save the result: %s\"",
                 h->exec_id, json ? err.message : "out of memory");
    free(json);
    dms_logf(h->ex->host, DMS_LOG_INFO, "exec=%s op=finish outcome=%s exit_code=%d", h->exec_id,
             dms_outcome_name(r->outcome), r->exit_code);

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
}

/* Removal is off the critical path: the result is already out. pending_removals was counted by the caller. */
static void remove_container_async(docker_handler *h)
{
    char p[160];
    snprintf(p, sizeof(p), "/containers/%s?force=1&v=1", h->container_id);
    if (!docker_loop_add(h->ex->loop, "DELETE", p, NULL, &delete_cbs, docker_handler_ref(h),
                         DOCKER_SHORT_CALL_TIMEOUT_MS)) {
        atomic_fetch_sub(&h->ex->pending_removals, 1);
        docker_handler_unref(h);
    }
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

    int64_t total[3] = {0, -1, -1};
    close_capture(h, total);
    dms_exec_result r = {0};
    pthread_mutex_lock(&h->lock);
    judge_outcome(h, cancel_reason, &r);
    bool delete_container = h->container_id[0] && !h->keep_container;
    pthread_mutex_unlock(&h->lock);
    /* Counted before the publish wakes anyone: a host that closes the executor right after the result still
     * lets this removal land. */
    if (delete_container)
        atomic_fetch_add(&h->ex->pending_removals, 1);

    add_excerpts(h, total, &r);
    judge_init_exec_failure(h, &r);
    publish_and_persist(h, &r);
    dms_exec_result_clear(&r);
    if (delete_container)
        remove_container_async(h);
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
            dms_logf(h->ex->host, DMS_LOG_WARN,
                     "exec=%s op=capture msg=\"output still open %d ms after exit; closing\"", h->exec_id,
                     DOCKER_ATTACH_GRACE_MS);
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
    /* An attach ends right after the exit; a /logs backfill (adopted job) ends by itself, however long it is.
     */
    bool arm_grace = h->exited && !ready && !preparing && !h->grace_timer && !h->capture_is_logs;
    if (arm_grace)
        h->grace_timer = UINT64_MAX; /* placeholder until the id is known */
    pthread_mutex_unlock(&h->lock);
    if (ready) {
        docker_handler_finalize(h);
        return;
    }
    if (arm_grace) {
        uint64_t id =
            docker_loop_timer(h->ex->loop, DOCKER_ATTACH_GRACE_MS, grace_fired, docker_handler_ref(h));
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
    if (!docker_loop_add(h->ex->loop, "GET", p, NULL, &inspect_cbs, docker_handler_ref(h),
                         DOCKER_SHORT_CALL_TIMEOUT_MS))
        docker_handler_unref(h);
}
