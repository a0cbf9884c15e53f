/* prepare.c - the start of an execution in the Docker backend: claim the id across processes, then image,
 * network, volumes, create, attach (before start, so the capture has the first byte) and start. Every failure
 * after the claim ends the execution through fail_start(), so waiters learn why. The rules these follow are
 * at the top of handler.c. */
#include "docker.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    dmsu_buf_free(&resp.body);
    return r;
}

/* A named volume carries the executor's labels and the job that created it (io.dms.job): a volume kept after
 * its droid was deleted can still be traced to it. It outlives executions; cleanup removes it with the rest.
 */
static int ensure_volume(docker_executor *ex, const char *name, const char *job_id, dms_error *err)
{
    _cleanup_json_ json_t *labels = docker_labels(ex->id, job_id, NULL, "volume");
    _cleanup_json_ json_t *body =
        json_pack("{s:s,s:s,s:O}", "Name", name, "Driver", "local", "Labels", labels);
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
    dmsu_buf_free(&resp.body);
    return r;
}

static int already(docker_handler *h, dms_error *err)
{
    char rp[PATH_MAX + 16];
    snprintf(rp, sizeof(rp), "%s/" DOCKER_RESULT_FILE, h->dir);
    if (access(rp, F_OK) == 0)
        return dms_error_set(err, DMS_E_ALREADY_COMPLETE, "execution_id",
                             "execution %s has already run to completion; it is never run twice", h->exec_id);
    return dms_error_set(err, DMS_E_ALREADY_STARTED, "execution_id", "execution %s is already started",
                         h->exec_id);
}

/* Claims the execution id across processes. The execution dir appears already locked and with its spec: it is
 * prepared under a private name and renamed into place (rename refuses an existing dir), so nobody can ever
 * see it unlocked and mistake it for an orphan. */
static int claim(docker_executor *ex, docker_handler *h, const dms_exec_request *req, dms_error *err)
{
    if (access(h->dir, F_OK) == 0)
        return already(h, err);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/" DOCKER_CLAIM_PREFIX "%s-%d-%llx", ex->host->state_dir, h->exec_id,
             (int)getpid(), (unsigned long long)dms_now_ns());
    if (mkdir(tmp, DMS_PRIVATE_DIR_MODE) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", tmp);
    int r = dms_state_lock(tmp, &h->lock_fd, err);
    if (r <= 0) {
        dms_rm_rf(tmp, NULL);
        return r == 0 ? dms_error_set(err, DMS_E_INTERNAL, NULL, "a fresh claim %s is locked by someone else",
                                      tmp)
                      : r;
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
                             rc   ? "no answer in time"
                             : st ? "engine refused it"
                                  : "connection failed");
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
           strstr(msg, "permission denied") || strstr(msg, "exec format error") ||
           strstr(msg, "not a directory");
}

/* Image, network and volumes; stops early when cancelled. 0, or the error fail_start() recorded. */
static int prepare_engine(docker_executor *ex, docker_handler *h, const dms_exec_request *req, dms_error *err)
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
        if (req->mounts[i].type == DMS_MOUNT_VOLUME &&
            (r = ensure_volume(ex, req->mounts[i].source, req->job_id, err)) < 0)
            return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    if (aborted(h)) {
        dms_error_set(err, DMS_E_CANCELLED, NULL, "execution %s was cancelled during preparation",
                      h->exec_id);
        return fail_start(h, DMS_OUTCOME_CANCELLED, -DMS_E_CANCELLED, err);
    }
    return 0;
}

/* POST /containers/create; on success the handler holds the container's id. */
static int create_container(docker_executor *ex, docker_handler *h, const dms_exec_request *req,
                            dms_error *err)
{
    _cleanup_json_ json_t *spec = docker_container_spec(req, ex->id);
    _cleanup_free_ char *body = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    if (!body)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    char path[DOCKER_NAME_MAX + 64];
    snprintf(path, sizeof(path), "/containers/create?name=%s", h->name);
    docker_response resp;
    int r = docker_call(&ex->client, "POST", path, body, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status != 201) {
        char what[DOCKER_NAME_MAX + 32];
        snprintf(what, sizeof(what), "create container %s", h->name);
        r = docker_error_from_response(&resp, what, err);
        if (r == -DMS_E_NOT_FOUND) {
            r = dms_error_set(err, DMS_E_IMAGE, "engine.image",
                              "create container %s: image %s is not present", h->name, req->engine.image);
        } else if (req->resources.disk_bytes > 0 && strstr(err->message, "storage-opt")) {
            char msg[DMS_ERROR_MSG_MAX];
            snprintf(msg, sizeof(msg), "%s", err->message);
            r = dms_error_set(
                err, DMS_E_NOT_SUPPORTED, "resources.disk_bytes",
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
            r = j ? dms_error_set(err, DMS_E_PROTOCOL, NULL, "create container %s: no Id in the answer",
                                  h->name)
                  : -DMS_E_PROTOCOL;
        }
        json_decref(j);
    }
    dmsu_buf_free(&resp.body);
    return r;
}

/* POST /containers/{id}/start; *started is when it was answered. */
static int start_container(docker_executor *ex, docker_handler *h, const dms_exec_request *req,
                           int64_t *started, dms_error *err)
{
    char path[DOCKER_NAME_MAX + 64];
    docker_response resp;
    snprintf(path, sizeof(path), "/containers/%s/start", h->container_id);
    int r = docker_call(&ex->client, "POST", path, NULL, DOCKER_START_TIMEOUT_MS, &resp, err);
    /* A created container holds its network by name only: removed in between (404), or made twice by creates
     * that raced (ambiguous), it is mended and the start tried again (network.c). */
    for (int i = 0; i < DOCKER_NETWORK_START_ATTEMPTS && r == 0 && req->network_mode == DMS_NET_NAMED; i++) {
        bool missing = docker_network_missing(&resp), ambiguous = !missing && docker_network_ambiguous(&resp);
        if (!missing && !ambiguous)
            break;
        dmsu_buf_free(&resp.body);
        r = missing ? docker_ensure_network(ex, req->network_name, err)
                    : docker_network_dedupe(ex, req->network_name, err);
        if (r == 0)
            r = docker_call(&ex->client, "POST", path, NULL, DOCKER_START_TIMEOUT_MS, &resp, err);
    }
    *started = dms_now_ns();
    if (r == -DMS_E_TIMEOUT && started_anyway(ex, h)) {
        /* The engine was slow to answer, but the container did start: it is running (or ran). */
        dms_logf(ex->host, DMS_LOG_WARN,
                 "exec=%s op=start msg=\"the engine answered start late; it started\"", h->exec_id);
        r = 0;
        resp.status = 204;
    }
    if (r == 0 && resp.status != 204 && resp.status != 304) {
        char msg[DMS_ERROR_MSG_MAX];
        docker_response_message(&resp, msg, sizeof(msg));
        const char *prog = req->engine.entrypoint && req->engine.entrypoint[0] ? req->engine.entrypoint[0]
                           : req->engine.cmd && req->engine.cmd[0]             ? req->engine.cmd[0]
                                                                               : "the image's command";
        if (looks_like_bad_entrypoint(msg) || resp.status == 400)
            r = dms_error_set(err, DMS_E_START_FAILED, "engine.entrypoint", "start %s: cannot run %s: %s",
                              h->name, prog, msg);
        else
            r = docker_error_from_response(&resp, "start container", err);
    }
    dmsu_buf_free(&resp.body);
    return r;
}

/* The container runs: timers, a die that came while preparing, a cancel that came between create and start.
 */
static int mark_running(docker_executor *ex, docker_handler *h, int64_t started)
{
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

/* Everything after the claim: image, network, volumes, create, attach, start. Every failure ends the
 * execution through fail_start(), so waiters learn why. */
static int launch(docker_executor *ex, docker_handler *h, const dms_exec_request *req, dms_error *err)
{
    int r = prepare_engine(ex, h, req, err);
    if (r < 0)
        return r;
    if ((r = create_container(ex, h, req, err)) < 0)
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    if (aborted(h)) {
        remove_container_now(ex, h->container_id);
        h->container_id[0] = '\0';
        dms_error_set(err, DMS_E_CANCELLED, NULL, "execution %s was cancelled during preparation",
                      h->exec_id);
        return fail_start(h, DMS_OUTCOME_CANCELLED, -DMS_E_CANCELLED, err);
    }

    /* Attach before start, so the capture has the first byte. From here the loop thread drives the writer. */
    if ((r = docker_handler_capture(h, false, true, err)) < 0 || (r = wait_attached(h, err)) < 0) {
        docker_loop_abort(ex->loop, h->capture_xfer);
        remove_container_now(ex, h->container_id);
        h->container_id[0] = '\0';
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    }

    int64_t started = 0;
    if ((r = start_container(ex, h, req, &started, err)) < 0) {
        docker_loop_abort(ex->loop, h->capture_xfer);
        if (!h->keep_container)
            remove_container_now(ex, h->container_id);
        h->container_id[0] = '\0';
        return fail_start(h, DMS_OUTCOME_FAILED, r, err);
    }
    return mark_running(ex, h, started);
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
    dms_logf(ex->host, DMS_LOG_INFO, "exec=%s job=%s op=start image=%s", h->exec_id, h->job_id,
             req->engine.image);
    r = launch(ex, h, req, err);
    docker_handler_unref(h);
    return r;
}
