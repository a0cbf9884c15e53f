/* executor.c - the Docker backend's executor object (one per executor id) and its ops table, the plugin's one
 * exported symbol. Operations on one execution are in prepare.c (start), handler.c (cancel) and adopt.c
 * (recover, status). */
#include "docker.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CLEANUP_FINALIZE_WAIT_MS 10000

void docker_exec_dir(const docker_executor *ex, const char *exec_id, char out[PATH_MAX])
{
    snprintf(out, PATH_MAX, "%s/%s", ex->host->state_dir, exec_id);
}

docker_handler *docker_handler_find(docker_executor *ex, const char *exec_id)
{
    pthread_mutex_lock(&ex->lock);
    docker_handler *found = NULL;
    for (docker_handler *h = ex->handlers; h; h = h->next)
        if (strcmp(h->exec_id, exec_id) == 0) {
            found = docker_handler_ref(h);
            break;
        }
    pthread_mutex_unlock(&ex->lock);
    return found;
}

/* Drops the oldest finished handlers beyond DOCKER_FINISHED_KEEP (they reload from result.json on demand).
 * Called with ex->lock held; returns the dropped ones for unref outside the lock. */
static docker_handler *evict_finished(docker_executor *ex)
{
    size_t finished = 0;
    for (docker_handler *h = ex->handlers; h; h = h->next)
        if (h->state == DMS_STATE_FINISHED)
            finished++;
    docker_handler *dropped = NULL;
    if (finished <= DOCKER_FINISHED_KEEP)
        return NULL;
    /* The list is newest first: drop finished ones from the tail. */
    size_t seen = 0;
    for (docker_handler **pp = &ex->handlers; *pp;) {
        docker_handler *h = *pp;
        if (h->state == DMS_STATE_FINISHED && ++seen > DOCKER_FINISHED_KEEP) {
            *pp = h->next;
            ex->n_handlers--;
            h->next = dropped;
            dropped = h;
            continue;
        }
        pp = &h->next;
    }
    return dropped;
}

void docker_handler_register(docker_executor *ex, docker_handler *h)
{
    docker_handler_ref(h);
    pthread_mutex_lock(&ex->lock);
    h->next = ex->handlers;
    ex->handlers = h;
    ex->n_handlers++;
    docker_handler *dropped = evict_finished(ex);
    pthread_mutex_unlock(&ex->lock);
    while (dropped) {
        docker_handler *next = dropped->next;
        docker_handler_unref(dropped);
        dropped = next;
    }
}

void docker_handler_unregister(docker_executor *ex, docker_handler *h)
{
    bool found = false;
    pthread_mutex_lock(&ex->lock);
    for (docker_handler **pp = &ex->handlers; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            ex->n_handlers--;
            found = true;
            break;
        }
    pthread_mutex_unlock(&ex->lock);
    if (found)
        docker_handler_unref(h);
}

/* ---- create / destroy / is_installed ---- */

static void docker_destroy(void *cookie);

static int docker_create(void **cookie, const char *executor_id, const dms_host_services *host,
                         dms_error *err)
{
    docker_executor *ex = calloc(1, sizeof(*ex));
    if (!ex)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    snprintf(ex->id, sizeof(ex->id), "%s", executor_id);
    ex->host = host;
    pthread_mutex_init(&ex->lock, NULL);
    pthread_mutex_init(&ex->adopt_lock, NULL);
    pthread_cond_init(&ex->cond, NULL);
    atomic_init(&ex->shutting_down, false);
    atomic_init(&ex->pending_removals, 0);
    int r = docker_client_init(&ex->client, host, err);
    if (r < 0) {
        pthread_cond_destroy(&ex->cond);
        pthread_mutex_destroy(&ex->lock);
        free(ex);
        return r;
    }
    if ((r = docker_loop_new(&ex->loop, &ex->client, host, err)) < 0) {
        docker_client_destroy(&ex->client);
        pthread_cond_destroy(&ex->cond);
        pthread_mutex_destroy(&ex->lock);
        free(ex);
        return r;
    }
    /* The engine may be down now and up later: that is not a reason to refuse the executor (a host must
     * survive a daemon restart); is_installed says why, and operations fail with UNAVAILABLE until it
     * answers. */
    dms_error pe = {0};
    bool up = docker_client_ping(&ex->client, DOCKER_CREATE_PING_TIMEOUT_MS, &pe) == 0;
    if (!up) /* info: the operation that needs the engine reports it as its error */
        dms_logf(host, DMS_LOG_INFO, "executor=%s op=create msg=\"%s\"", executor_id, pe.message);
    docker_events_start(ex, up);
    *cookie = ex;
    return 0;
}

static void docker_destroy(void *cookie)
{
    docker_executor *ex = cookie;
    if (!ex)
        return;
    /* Finished containers are removed off the critical path; let removals in flight land (a CLI exits right
     * after the result), bounded. */
    int64_t deadline = dms_mono_ms() + DOCKER_DRAIN_WAIT_MS;
    while (atomic_load(&ex->pending_removals) > 0 && dms_mono_ms() < deadline)
        usleep(2000);
    atomic_store(&ex->shutting_down, true);
    /* Running jobs keep running: only our tracking stops (another executor object can adopt them). */
    docker_loop_free(ex->loop);
    pthread_mutex_lock(&ex->lock);
    docker_handler *h = ex->handlers;
    ex->handlers = NULL;
    pthread_mutex_unlock(&ex->lock);
    while (h) {
        docker_handler *next = h->next;
        docker_handler_unref(h);
        h = next;
    }
    dmsu_buf_free(&ex->events_line);
    docker_client_destroy(&ex->client);
    pthread_cond_destroy(&ex->cond);
    pthread_mutex_destroy(&ex->adopt_lock);
    pthread_mutex_destroy(&ex->lock);
    free(ex);
}

static bool docker_is_installed(void *cookie, dms_error *why)
{
    docker_executor *ex = cookie;
    return docker_client_ping(&ex->client, DOCKER_PING_TIMEOUT_MS, why) == 0;
}

static int docker_start_op(void *cookie, const dms_exec_request *req, dms_error *err)
{
    return docker_start(cookie, req, err);
}

/* ---- wait ---- */

typedef struct orphan_ctx {
    docker_executor *ex;
    char exec_id[DMS_ID_MAX + 1];
    char dir[PATH_MAX];
} orphan_ctx;

static orphan_ctx *orphan_new(docker_executor *ex, const char *exec_id)
{
    orphan_ctx *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->ex = ex;
    snprintf(o->exec_id, sizeof(o->exec_id), "%s", exec_id);
    docker_exec_dir(ex, exec_id, o->dir);
    return o;
}

/* The process that owned the execution went away: take it over, so that someone finishes it. */
static int orphan_adopt(orphan_ctx *o, dms_error *err)
{
    if (dms_state_lock_held(o->dir))
        return 0;
    docker_handler *h = NULL;
    int r = docker_get(o->ex, o->exec_id, &h, err);
    docker_handler_unref(h);
    return r < 0 ? r : 0;
}

static int orphan_check(void *ud, dms_error *err)
{
    return orphan_adopt(ud, err);
}

static bool orphan_idle(void *ud)
{
    dms_error e;
    if (orphan_adopt(ud, &e) < 0)
        return true; /* cannot carry on: end the stream rather than hang */
    return false;
}

static int docker_subscribe(void *cookie, const char *exec_id, dms_waiter **out, dms_error *err)
{
    docker_executor *ex = cookie;
    docker_handler *h = NULL;
    int r = docker_get(ex, exec_id, &h, err);
    if (r < 0)
        return r;
    if (h) {
        r = dms_waiter_new_from_cell(h->cell, out, err);
        docker_handler_unref(h);
        return r;
    }
    orphan_ctx *o = orphan_new(ex, exec_id);
    if (!o)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return dms_waiter_new_from_file(o->dir, orphan_check, o, free, out, err);
}

static int docker_cancel_op(void *cookie, const char *exec_id, dms_cancel_reason reason, int64_t grace_ms,
                            dms_error *err)
{
    return docker_cancel(cookie, exec_id, reason, grace_ms, err);
}

/* ---- logs ---- */

static int docker_log_stream(void *cookie, const char *exec_id, const dms_log_options *opts,
                             dms_log_stream **out, dms_error *err)
{
    docker_executor *ex = cookie;
    docker_handler *h = NULL;
    /* Make sure somebody is capturing (adopting an orphan if needed) before we read the capture. */
    int r = docker_get(ex, exec_id, &h, err);
    if (r < 0)
        return r;
    docker_handler_unref(h);
    orphan_ctx *o = orphan_new(ex, exec_id);
    if (!o)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return dms_logstore_stream_open(o->dir, opts, orphan_idle, o, free, out, err);
}

/* ---- cleanup ---- */

typedef struct cleanup_ctx {
    docker_executor *ex;
    dms_cleanup_report *report;
    dms_error *err;
    int first_rc;
} cleanup_ctx;

static void cleanup_fail(cleanup_ctx *c, int rc, const dms_error *e)
{
    c->report->errors++;
    if (!c->first_rc) {
        c->first_rc = rc;
        if (c->err && e)
            *c->err = *e;
    }
}

/* Lists a kind of labelled resource and deletes each; counts what was removed (404 counts as done, not
 * removed). */
static void remove_labelled(cleanup_ctx *c, const char *list_path, const char *array_key, const char *id_key,
                            const char *delete_fmt, int *count)
{
    docker_executor *ex = c->ex;
    char filter[256];
    snprintf(filter, sizeof(filter), "{\"label\":[\"%s=%s\"]}", DMS_LABEL_EXECUTOR, ex->id);
    _cleanup_free_ char *ef = docker_escape(filter);
    char path[512];
    snprintf(path, sizeof(path), "%s%sfilters=%s", list_path, strchr(list_path, '?') ? "&" : "?",
             ef ? ef : "");
    docker_response resp;
    dms_error e = {0};
    int r = docker_call(&ex->client, "GET", path, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, &e);
    if (r == 0 && resp.status != 200)
        r = docker_error_from_response(&resp, list_path, &e);
    if (r < 0) {
        dmsu_buf_free(&resp.body);
        cleanup_fail(c, r, &e);
        return;
    }
    json_t *j = docker_response_json(&resp, list_path, &e);
    dmsu_buf_free(&resp.body);
    json_t *arr = array_key ? json_object_get(j, array_key) : j;
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item)
    {
        const char *id = json_string_value(json_object_get(item, id_key));
        if (!id)
            continue;
        char p[400];
        snprintf(p, sizeof(p), delete_fmt, id);
        r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, &e);
        if (r == 0 && (resp.status == 200 || resp.status == 204))
            (*count)++; // NOLINT(bugprone-branch-clone): two reasons to count, each with its comment
        else if (r == 0 && resp.status == 409 &&
                 strstr(resp.body.data ? resp.body.data : "", "already in progress"))
            (*count)++; /* being removed right now (our own async removal): it is going */
        else if (r == 0 && resp.status != 404)
            r = docker_error_from_response(&resp, p, &e);
        dmsu_buf_free(&resp.body);
        if (r < 0)
            cleanup_fail(c, r, &e);
    }
    json_decref(j);
}

static int docker_cleanup(void *cookie, dms_cleanup_report *report, dms_error *err)
{
    docker_executor *ex = cookie;
    cleanup_ctx c = {.ex = ex, .report = report, .err = err};
    /* Jobs we track end as cancelled, not as "killed by signal 9". */
    pthread_mutex_lock(&ex->lock);
    for (docker_handler *h = ex->handlers; h; h = h->next) {
        pthread_mutex_lock(&h->lock);
        if (h->state != DMS_STATE_FINISHED && !h->cancel_reason)
            h->cancel_reason = DMS_CANCEL_USER;
        if (h->state == DMS_STATE_PREPARING)
            atomic_store(&h->abort_prep, true);
        pthread_mutex_unlock(&h->lock);
    }
    pthread_mutex_unlock(&ex->lock);

    remove_labelled(&c, "/containers/json?all=1", NULL, "Id", "/containers/%s?force=1&v=1",
                    &report->containers);
    remove_labelled(&c, "/networks", NULL, "Id", "/networks/%s", &report->networks);
    remove_labelled(&c, "/volumes", "Volumes", "Name", "/volumes/%s", &report->volumes);
    remove_labelled(&c, "/images/json", NULL, "Id", "/images/%s?force=1", &report->images);

    /* Let the handlers see their containers go (die/destroy events), then forget them. */
    int64_t deadline = dms_mono_ms() + CLEANUP_FINALIZE_WAIT_MS;
    for (;;) {
        bool live = false;
        pthread_mutex_lock(&ex->lock);
        for (docker_handler *h = ex->handlers; h; h = h->next)
            if ((h->state != DMS_STATE_FINISHED && h->state != DMS_STATE_PREPARING) ||
                (h->state == DMS_STATE_FINISHED && !h->persisted && h->finalizing))
                live = true;
        pthread_mutex_unlock(&ex->lock);
        if (!live || dms_mono_ms() > deadline)
            break;
        usleep(20000);
    }
    pthread_mutex_lock(&ex->lock);
    docker_handler *keep = NULL, *drop = NULL;
    for (docker_handler *h = ex->handlers, *next; h; h = next) {
        next = h->next;
        if (h->state == DMS_STATE_PREPARING) {
            h->next = keep; /* its start is still running and will clean up after itself */
            keep = h;
        } else {
            h->next = drop;
            drop = h;
            ex->n_handlers--;
        }
    }
    ex->handlers = keep;
    pthread_mutex_unlock(&ex->lock);
    while (drop) {
        docker_handler *next = drop->next;
        docker_handler_unref(drop);
        drop = next;
    }
    DIR *d = opendir(ex->host->state_dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            char p[PATH_MAX];
            if (!strncmp(de->d_name, DOCKER_CLAIM_PREFIX, strlen(DOCKER_CLAIM_PREFIX))) {
                /* A claim a crashed start left behind (a live one holds its lock). */
                snprintf(p, sizeof(p), "%s/%s", ex->host->state_dir, de->d_name);
                if (!dms_state_lock_held(p))
                    dms_rm_rf(p, NULL);
                continue;
            }
            if (de->d_name[0] == '.' || !dms_id_valid(de->d_name))
                continue;
            docker_handler *h = docker_handler_find(ex, de->d_name);
            docker_handler_unref(h);
            if (h)
                continue; /* still preparing */
            docker_exec_dir(ex, de->d_name, p);
            dms_error e;
            if (dms_rm_rf(p, &e) == 0)
                report->state_dirs++;
            else
                cleanup_fail(&c, -e.code, &e);
        }
        closedir(d);
    }
    dms_logf(ex->host, DMS_LOG_INFO,
             "executor=%s op=cleanup containers=%d networks=%d volumes=%d images=%d state_dirs=%d errors=%d",
             ex->id, report->containers, report->networks, report->volumes, report->images,
             report->state_dirs, report->errors);
    return c.first_rc;
}

/* ---- remove ---- */

static int docker_remove(void *cookie, const char *exec_id, dms_error *err)
{
    docker_executor *ex = cookie;
    docker_handler *h = NULL;
    int r = docker_get(ex, exec_id, &h, err);
    if (r < 0)
        return r;
    if (!h)
        return dms_error_set(err, DMS_E_CONFLICT, "execution_id",
                             "execution %s is running in another process", exec_id);
    pthread_mutex_lock(&h->lock);
    bool finished = h->state == DMS_STATE_FINISHED;
    pthread_mutex_unlock(&h->lock);
    if (!finished) {
        docker_handler_unref(h);
        return dms_error_set(err, DMS_E_CONFLICT, "execution_id",
                             "execution %s is still running; cancel it first", exec_id);
    }
    /* Finished a moment ago: its result file is being written into the dir we are about to remove. */
    docker_handler_wait_persisted(h, DOCKER_PERSIST_WAIT_MS);
    char p[DOCKER_NAME_MAX + 40];
    snprintf(p, sizeof(p), "/containers/%s?force=1&v=1", h->name);
    docker_response resp;
    r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r == 0 && resp.status != 204 && resp.status != 404)
        r = docker_error_from_response(&resp, "remove container", err);
    dmsu_buf_free(&resp.body);
    if (r == 0)
        r = dms_rm_rf(h->dir, err);
    docker_handler_unregister(ex, h);
    docker_handler_unref(h);
    return r;
}

static const dms_executor_ops docker_ops = {
    .abi_version = DMS_EXECUTOR_ABI_VERSION,
    .size = sizeof(dms_executor_ops),
    .name = "docker",
    .description = "containers through the Docker Engine API (unix socket, API 1.41)",
    .create = docker_create,
    .destroy = docker_destroy,
    .is_installed = docker_is_installed,
    .start = docker_start_op,
    .subscribe = docker_subscribe,
    .cancel = docker_cancel_op,
    .log_stream = docker_log_stream,
    .cleanup = docker_cleanup,
    .status = docker_status,
    .list = docker_list,
    .remove = docker_remove,
    .recover = docker_recover,
    .build = docker_build,
    .remove_image = docker_remove_image,
    .image_info = docker_image_info,
    .remove_volume = docker_remove_volume,
    .remove_network = docker_remove_network,
};

DMS_PLUGIN_EXPORT const dms_executor_ops *dms_executor_plugin_entry(void);

const dms_executor_ops *dms_executor_plugin_entry(void)
{
    return &docker_ops;
}
