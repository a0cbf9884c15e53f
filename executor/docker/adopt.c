/* adopt.c - executions this process did not start: after a restart (recover), or started by another process
 * (a CLI that started a job and exited). The execution dir holds the truth (spec.json, the capture,
 * result.json); owner.lock says whether a live process is capturing it. We take ownership only when nobody
 * holds the lock, and never call start on an exited container: that would run the job a second time. */
#include "docker.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int docker_inspect(docker_executor *ex, const char *name_or_id, json_t **out, dms_error *err)
{
    char p[200];
    snprintf(p, sizeof(p), "/containers/%s/json", name_or_id);
    docker_response resp;
    int r = docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 200) {
        r = docker_error_from_response(&resp, "inspect container", err);
        dmsu_buf_free(&resp.body);
        return r;
    }
    *out = docker_response_json(&resp, "inspect container", err);
    dmsu_buf_free(&resp.body);
    return *out ? 0 : -DMS_E_PROTOCOL;
}

static bool file_exists(const char *dir, const char *name)
{
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* "2026-11-23T06:57:18.329711234Z" -> ns; 0 for Docker's zero time. */
static int64_t parse_time(const char *s)
{
    if (!s)
        return 0;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s ", s);
    int64_t ns = 0;
    if (!docker_parse_timestamp(buf, strlen(buf), &ns) || ns < 0)
        return 0;
    return ns;
}

void docker_load_spec(docker_handler *h)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_SPEC_FILE, h->dir);
    char *data = NULL;
    size_t len = 0;
    dms_error e;
    if (dms_read_file(path, DOCKER_RESULT_FILE_MAX, &data, &len, &e) < 0)
        return;
    json_t *j = json_loadb(data, len, 0, NULL);
    json_t *rq = json_object_get(j, "request");
    if (rq) {
        json_int_t v;
        if ((v = json_integer_value(json_object_get(rq, "timeout_ms"))) > 0)
            h->timeout_ms = v;
        if ((v = json_integer_value(json_object_get(rq, "stop_grace_ms"))) > 0)
            h->grace_ms = v;
        json_t *lim = json_object_get(rq, "limits");
        if ((v = json_integer_value(json_object_get(lim, "result_output_bytes"))) > 0)
            h->result_bytes = v;
        if ((v = json_integer_value(json_object_get(lim, "log_file_bytes"))) > 0)
            h->log_cap = v;
        h->keep_container = json_is_true(json_object_get(rq, "keep_container"));
        h->init = json_is_true(json_object_get(rq, "init"));
        h->memory_bytes =
            json_integer_value(json_object_get(json_object_get(rq, "resources"), "memory_bytes"));
        const char *job = json_string_value(json_object_get(rq, "job_id"));
        if (job)
            snprintf(h->job_id, sizeof(h->job_id), "%s", job);
    }
    json_decref(j);
    free(data);
}

/* A finished execution from its result.json. */
static int adopt_finished(docker_executor *ex, docker_handler *h, dms_error *err)
{
    docker_load_spec(h); /* the job id, for status */
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/" DOCKER_RESULT_FILE, h->dir);
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = dms_read_file(path, DOCKER_RESULT_FILE_MAX, &data, &len, err);
    if (r < 0)
        return r;
    dms_exec_result res = {0};
    if ((r = dms_exec_result_from_json(data, len, &res, err)) < 0)
        return r;
    dms_result_cell_publish(h->cell, &res);
    h->state = DMS_STATE_FINISHED;
    h->persisted = true;
    h->finalizing = true;
    h->exit_code = res.exit_code;
    h->started_at_ns = res.started_at_ns;
    h->finished_at_ns = res.finished_at_ns;
    dms_exec_result_clear(&res);
    return 0;
}

/* Events about the container from before we listened (an oom, a kill by someone else): the engine keeps
 * recent ones, and since/until make the stream end. Best effort: without them we still have State. */
typedef struct replay_ctx {
    docker_handler *h;
    dmsu_buf line;
} replay_ctx;

static int replay_sink(void *ud, const char *data, size_t len)
{
    replay_ctx *rc = ud;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') {
            dmsu_buf_append(&rc->line, data + i, 1);
            continue;
        }
        json_t *ev = rc->line.len ? json_loadb(rc->line.data, rc->line.len, 0, NULL) : NULL;
        const char *action = json_string_value(json_object_get(ev, "Action"));
        json_t *attrs = json_object_get(json_object_get(ev, "Actor"), "Attributes");
        pthread_mutex_lock(&rc->h->lock);
        if (action && !strcmp(action, "oom"))
            rc->h->oom = true;
        else if (action && !strcmp(action, "kill") && !rc->h->cancel_reason) {
            int64_t sig = dmsu_parse_i64(json_string_value(json_object_get(attrs, "signal")));
            if (sig > 0)
                rc->h->outside_signal = (int)sig;
        }
        pthread_mutex_unlock(&rc->h->lock);
        json_decref(ev);
        dmsu_buf_reset(&rc->line);
    }
    return 0;
}

static void replay_events(docker_executor *ex, docker_handler *h, int64_t since_ns)
{
    char filter[256];
    snprintf(filter, sizeof(filter), "{\"type\":[\"container\"],\"container\":[\"%s\"]}", h->container_id);
    _cleanup_free_ char *ef = docker_escape(filter);
    int64_t now = dms_now_ns();
    char path[512];
    snprintf(path, sizeof(path), "/events?filters=%s&since=%lld&until=%lld.%09lld", ef ? ef : "",
             (long long)(since_ns > 0 ? since_ns / 1000000000LL : 0), (long long)(now / 1000000000LL),
             (long long)(now % 1000000000LL));
    replay_ctx rc = {.h = h, .line = {.max = 64 * 1024}};
    docker_response resp;
    dms_error e;
    docker_call_stream(&ex->client, "GET", path, NULL, NULL, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, NULL,
                       replay_sink, &rc, &resp, &e);
    dmsu_buf_free(&rc.line);
    dmsu_buf_free(&resp.body);
}

/* We hold owner.lock and there is no result: find the container and carry on where the last owner stopped. */
static int adopt_live(docker_executor *ex, docker_handler *h, dms_error *err)
{
    docker_load_spec(h);
    json_t *j = NULL;
    int r = docker_inspect(ex, h->name, &j, err);
    if (r == -DMS_E_NOT_FOUND) {
        /* Claimed but no container: the starter died before create, or it was removed behind our back. */
        h->lost = true;
        h->exited = true;
        snprintf(h->fail_msg, sizeof(h->fail_msg),
                 "no container %s: its start did not complete, or it was removed behind our back", h->name);
        dms_logstore_writer_open(&h->writer, h->dir, h->log_cap, err);
        docker_handler_finalize(h);
        return 0;
    }
    if (r < 0)
        return r;
    json_t *labels = json_object_get(json_object_get(j, "Config"), "Labels");
    const char *owner = json_string_value(json_object_get(labels, DMS_LABEL_EXECUTOR));
    if (!owner || strcmp(owner, ex->id) != 0) {
        json_decref(j);
        return dms_error_set(err, DMS_E_CONFLICT, "execution_id",
                             "container %s exists but does not carry io.dms.executor=%s; not touching it",
                             h->name, ex->id);
    }
    json_t *st = json_object_get(j, "State");
    bool running = json_is_true(json_object_get(st, "Running"));
    const char *status = json_string_value(json_object_get(st, "Status"));
    /* Registered already: the loop may deliver events meanwhile, hence the lock. */
    pthread_mutex_lock(&h->lock);
    snprintf(h->container_id, sizeof(h->container_id), "%s", json_string_value(json_object_get(j, "Id")));
    h->started_at_ns = parse_time(json_string_value(json_object_get(st, "StartedAt")));
    if (!running && !h->exited) {
        h->exited = true;
        h->exit_code = (int)json_integer_value(json_object_get(st, "ExitCode"));
        h->finished_at_ns = parse_time(json_string_value(json_object_get(st, "FinishedAt")));
        if (status && strcmp(status, "created") == 0) {
            h->fail_outcome = DMS_OUTCOME_FAILED;
            snprintf(h->fail_msg, sizeof(h->fail_msg), "container %s was created but never started", h->name);
        }
    }
    if (json_is_true(json_object_get(st, "OOMKilled")))
        h->oom = true;
    h->state = running ? DMS_STATE_RUNNING : DMS_STATE_STOPPING;
    pthread_mutex_unlock(&h->lock);
    int64_t created = parse_time(json_string_value(json_object_get(j, "Created")));
    json_decref(j);
    replay_events(ex, h, created);

    /* Resume the capture from the engine's copy, skipping what we already have. */
    dms_logstore_info info;
    if ((r = dms_logstore_info_read(h->dir, &info, err)) < 0)
        return r;
    if (info.finished) {
        /* The capture ended but the result was not written: only the result is missing. */
        pthread_mutex_lock(&h->lock);
        h->capture_expected = false;
        pthread_mutex_unlock(&h->lock);
    } else {
        if ((r = dms_logstore_writer_open(&h->writer, h->dir, h->log_cap, err)) < 0)
            return r;
        if ((r = docker_handler_capture(h, true, running, err)) < 0)
            return r;
    }
    if (running && h->timeout_ms > 0 && h->started_at_ns > 0) {
        int64_t left = h->timeout_ms - (dms_now_ns() - h->started_at_ns) / 1000000;
        docker_handler_arm_timeout(h, left > 0 ? left : 0);
    }
    return 0;
}

static int get_locked(docker_executor *ex, const char *exec_id, docker_handler **out, dms_error *err);

int docker_get(docker_executor *ex, const char *exec_id, docker_handler **out, dms_error *err)
{
    *out = docker_handler_find(ex, exec_id);
    if (*out)
        return 1;
    /* Adoption is serialised (a dedicated lock, so it blocks only other adoptions): two threads adopting one
     * execution would otherwise race for its owner.lock, and the loser would take this very process for
     * another. */
    pthread_mutex_lock(&ex->adopt_lock);
    int r = get_locked(ex, exec_id, out, err);
    pthread_mutex_unlock(&ex->adopt_lock);
    return r;
}

static int get_locked(docker_executor *ex, const char *exec_id, docker_handler **out, dms_error *err)
{
    *out = docker_handler_find(ex, exec_id);
    if (*out)
        return 1;
    docker_handler *h = docker_handler_new(ex, exec_id, NULL);
    if (!h)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    struct stat st;
    int r;
    if (stat(h->dir, &st) != 0) {
        /* No state: a labelled container without it (state dir removed) is still ours to adopt. */
        json_t *j = NULL;
        r = docker_inspect(ex, h->name, &j, err);
        json_decref(j);
        if (r == -DMS_E_NOT_FOUND) {
            docker_handler_unref(h);
            return dms_error_set(err, DMS_E_NOT_FOUND, "execution_id", "no execution %s in executor %s",
                                 exec_id, ex->id);
        }
        if (r < 0) {
            docker_handler_unref(h);
            return r;
        }
        if (mkdir(h->dir, DMS_PRIVATE_DIR_MODE) != 0 && errno != EEXIST) {
            docker_handler_unref(h);
            return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", h->dir);
        }
    }
    if (file_exists(h->dir, DOCKER_RESULT_FILE)) {
        if ((r = adopt_finished(ex, h, err)) < 0) {
            docker_handler_unref(h);
            return r;
        }
    } else {
        r = dms_state_lock(h->dir, &h->lock_fd, err);
        if (r <= 0) {
            docker_handler_unref(h);
            if (r == 0) {
                /* A live process owns it... unless it finished between our two looks. */
                if (file_exists(h->dir, DOCKER_RESULT_FILE))
                    return get_locked(ex, exec_id, out, err);
                return 0;
            }
            return r;
        }
        if (file_exists(h->dir, DOCKER_RESULT_FILE)) {
            /* The owner finished just before we took the lock. */
            if ((r = adopt_finished(ex, h, err)) < 0) {
                docker_handler_unref(h);
                return r;
            }
        } else {
            /* Register first, so that events about it reach it while we catch up; its output is still to be
             * captured, so a die event meanwhile cannot finish it early. */
            h->capture_expected = true;
            h->capture_is_logs = true;
            docker_handler_register(ex, h);
            r = adopt_live(ex, h, err);
            if (r < 0) {
                docker_handler_unregister(ex, h);
                docker_handler_unref(h);
                return r;
            }
            dms_logf(ex->host, DMS_LOG_INFO, "exec=%s op=adopt state=%s", exec_id, dms_state_name(h->state));
            if (h->exited)
                docker_handler_maybe_finalize(h);
            *out = h;
            return 1;
        }
    }
    docker_handler_register(ex, h);
    *out = h;
    return 1;
}

/* ---- recover, status, list ---- */

typedef struct idset {
    char **ids;
} idset;

static void idset_add(idset *s, const char *id)
{
    for (size_t i = 0; s->ids && s->ids[i]; i++)
        if (strcmp(s->ids[i], id) == 0)
            return;
    dmsu_strv_push(&s->ids, id);
}

/* Every execution id of this executor: state dirs plus labelled containers. */
static int all_ids(docker_executor *ex, idset *s, dms_error *err)
{
    DIR *d = opendir(ex->host->state_dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)))
            if (de->d_name[0] != '.' && dms_id_valid(de->d_name))
                idset_add(s, de->d_name);
        closedir(d);
    }
    char filter[256];
    snprintf(filter, sizeof(filter), "{\"label\":[\"%s=%s\"]}", DMS_LABEL_EXECUTOR, ex->id);
    _cleanup_free_ char *ef = docker_escape(filter);
    char path[512];
    snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", ef ? ef : "");
    docker_response resp;
    int r = docker_call(&ex->client, "GET", path, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, err);
    if (r < 0)
        return r;
    if (resp.status != 200) {
        r = docker_error_from_response(&resp, "list containers", err);
        dmsu_buf_free(&resp.body);
        return r;
    }
    json_t *a = docker_response_json(&resp, "list containers", err);
    dmsu_buf_free(&resp.body);
    size_t i;
    json_t *c;
    json_array_foreach(a, i, c)
    {
        const char *e = json_string_value(json_object_get(json_object_get(c, "Labels"), DMS_LABEL_EXECUTION));
        const char *role = json_string_value(json_object_get(json_object_get(c, "Labels"), DMS_LABEL_ROLE));
        if (e && dms_id_valid(e) && (!role || strcmp(role, "build") != 0))
            idset_add(s, e);
    }
    json_decref(a);
    return 0;
}

int docker_recover(void *cookie, size_t *adopted, dms_error *err)
{
    docker_executor *ex = cookie;
    idset s = {0};
    int r = all_ids(ex, &s, err);
    size_t n = 0, k = 0;
    // NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers
    docker_handler **adoptees = calloc(dmsu_strv_len(s.ids) + 1, sizeof(*adoptees));
    if (!adoptees) {
        dmsu_strv_free(s.ids);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    for (size_t i = 0; r == 0 && s.ids && s.ids[i]; i++) {
        docker_handler *h = NULL;
        dms_error e = {0};
        int rr = docker_get(ex, s.ids[i], &h, &e);
        if (rr == 1) {
            n++;
            adoptees[k++] = h;
        } else if (rr < 0 && rr != -DMS_E_NOT_FOUND) {
            dms_logf(ex->host, DMS_LOG_WARN, "exec=%s op=recover msg=\"%s\"", s.ids[i], e.message);
        }
    }
    /* Jobs that ended while nobody watched are finished now (output caught up, result written, container
     * removed), so that a host that recovers and exits leaves everything settled. Bounded. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += DOCKER_RECOVER_SETTLE_MS / 1000;
    for (size_t i = 0; i < k; i++) {
        docker_handler *h = adoptees[i];
        pthread_mutex_lock(&h->lock);
        int rc = 0;
        while (h->exited && h->state != DMS_STATE_FINISHED && rc == 0)
            rc = pthread_cond_timedwait(&h->cond, &h->lock, &deadline);
        pthread_mutex_unlock(&h->lock);
        docker_handler_unref(h);
    }
    free(adoptees);
    dmsu_strv_free(s.ids);
    *adopted = n;
    return r;
}

static void fill_ports(json_t *j, dms_exec_status *out)
{
    json_t *ns = json_object_get(j, "NetworkSettings");
    json_t *ports = json_object_get(ns, "Ports");
    const char *key;
    json_t *v;
    json_object_foreach(ports, key, v)
    {
        if (!json_is_array(v) || out->n_ports >= DMS_STATUS_MAX_PORTS)
            continue;
        /* The key is "<container port>/<protocol>" ("8080/tcp"). */
        const char *slash;
        int64_t cp = dmsu_parse_i64_prefix(key, &slash);
        if (cp < 0 || cp > UINT16_MAX || *slash != '/' || !slash[1])
            continue;
        char proto[8];
        snprintf(proto, sizeof(proto), "%s", slash + 1);
        size_t i;
        json_t *b;
        json_array_foreach(v, i, b)
        {
            int64_t hp = dmsu_parse_i64(json_string_value(json_object_get(b, "HostPort")));
            if (hp <= 0 || out->n_ports >= DMS_STATUS_MAX_PORTS)
                continue;
            out->ports[out->n_ports].container_port = (uint16_t)cp;
            out->ports[out->n_ports].host_port = (uint16_t)hp;
            snprintf(out->ports[out->n_ports].protocol, sizeof(out->ports[0].protocol), "%s", proto);
            out->n_ports++;
            break;
        }
    }
    const char *ip = json_string_value(json_object_get(ns, "IPAddress"));
    if (!ip || !*ip) {
        json_t *nets = json_object_get(ns, "Networks");
        json_object_foreach(nets, key, v)
        {
            ip = json_string_value(json_object_get(v, "IPAddress"));
            if (ip && *ip)
                break;
        }
    }
    if (ip)
        snprintf(out->ip_address, sizeof(out->ip_address), "%s", ip);
}

int docker_status(void *cookie, const char *exec_id, dms_exec_status *out, dms_error *err)
{
    docker_executor *ex = cookie;
    docker_handler *h = NULL;
    int r = docker_get(ex, exec_id, &h, err);
    if (r < 0)
        return r;
    snprintf(out->execution_id, sizeof(out->execution_id), "%s", exec_id);
    out->exit_code = -1;
    char name[DOCKER_NAME_MAX];
    docker_container_name(name, ex->id, exec_id);
    if (h) {
        pthread_mutex_lock(&h->lock);
        out->state = h->state;
        snprintf(out->job_id, sizeof(out->job_id), "%s", h->job_id);
        snprintf(out->handle, sizeof(out->handle), "%s", h->container_id);
        out->started_at_ns = h->started_at_ns;
        out->finished_at_ns = h->finished_at_ns;
        pthread_mutex_unlock(&h->lock);
        if (out->state == DMS_STATE_FINISHED) {
            dms_exec_result res = {0};
            if (dms_result_cell_get(h->cell, &res, NULL) == 0) {
                out->outcome = res.outcome;
                out->exit_code = res.exit_code;
                out->started_at_ns = res.started_at_ns;
                out->finished_at_ns = res.finished_at_ns;
            }
            dms_exec_result_clear(&res);
        }
        docker_handler_unref(h);
    } else {
        /* Owned by another live process: the engine says where it stands (no container yet: still preparing).
         */
        out->state = DMS_STATE_PREPARING;
        char dir[PATH_MAX];
        docker_exec_dir(ex, exec_id, dir);
        docker_handler tmp = {0};
        snprintf(tmp.dir, sizeof(tmp.dir), "%s", dir);
        docker_load_spec(&tmp);
        snprintf(out->job_id, sizeof(out->job_id), "%s", tmp.job_id);
    }
    if (out->state != DMS_STATE_FINISHED) {
        json_t *j = NULL;
        if (docker_inspect(ex, out->handle[0] ? out->handle : name, &j, NULL) == 0) {
            json_t *st = json_object_get(j, "State");
            const char *status = json_string_value(json_object_get(st, "Status"));
            if (!h) {
                if (json_is_true(json_object_get(st, "Running")))
                    out->state = DMS_STATE_RUNNING;
                else if (status && strcmp(status, "created") != 0)
                    out->state = DMS_STATE_STOPPING; /* exited; its owner is finishing it */
            }
            snprintf(out->handle, sizeof(out->handle), "%s", json_string_value(json_object_get(j, "Id")));
            fill_ports(j, out);
            out->health = docker_health_of(st); /* the engine runs the check: ours or adopted alike */
            if (!out->started_at_ns)
                out->started_at_ns = parse_time(json_string_value(json_object_get(st, "StartedAt")));
            const char *job = json_string_value(
                json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"), DMS_LABEL_JOB));
            if (job && !out->job_id[0])
                snprintf(out->job_id, sizeof(out->job_id), "%s", job);
        }
        json_decref(j);
    }
    return 0;
}

int docker_list(void *cookie, dms_exec_status_fn each, void *userdata, dms_error *err)
{
    docker_executor *ex = cookie;
    idset s = {0};
    int r = all_ids(ex, &s, err);
    for (size_t i = 0; r == 0 && s.ids && s.ids[i]; i++) {
        dms_exec_status st = {0};
        dms_error e;
        if (docker_status(ex, s.ids[i], &st, &e) == 0) /* gone since it was listed: not listed */
            r = each(userdata, &st);
    }
    dmsu_strv_free(s.ids);
    return r;
}
