/* events.c - one subscription to GET /events per executor, filtered server-side by our executor label: die
 * (with the exit code), oom, kill and destroy as they happen, instead of polling. Measured here: `die`
 * arrives about 50 ms before POST /wait returns on the bridge network, a fifth of a trivial job's life.
 *
 * If the stream drops (daemon restart), it is re-opened with since=<last event> so that nothing is missed,
 * with a capped backoff; meanwhile every running job is inspected once so that an exit in the gap is not
 * lost. */
#include "docker.h"

#include <stdio.h>
#include <string.h>

#define EVENT_LINE_MAX (64 * 1024)

static void events_connect(docker_executor *ex);

static void set_events_state(docker_executor *ex, int state)
{
    pthread_mutex_lock(&ex->lock);
    ex->events_state = state;
    pthread_cond_broadcast(&ex->cond);
    pthread_mutex_unlock(&ex->lock);
}

static void handle_event(docker_executor *ex, json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "Type"));
    const char *action = json_string_value(json_object_get(ev, "Action"));
    json_t *attrs = json_object_get(json_object_get(ev, "Actor"), "Attributes");
    json_int_t tn = json_integer_value(json_object_get(ev, "timeNano"));
    if (tn > ex->events_last_ns)
        ex->events_last_ns = tn;
    if (!type || strcmp(type, "container") != 0 || !action || !attrs)
        return;
    const char *exec_id = json_string_value(json_object_get(attrs, DMS_LABEL_EXECUTION));
    if (!exec_id)
        return;
    docker_handler *h = docker_handler_find(ex, exec_id);
    if (!h)
        return;
    bool check = false, inspect = false;
    pthread_mutex_lock(&h->lock);
    if (strcmp(action, "oom") == 0) {
        h->oom = true;
    } else if (strcmp(action, "kill") == 0) {
        const char *sig = json_string_value(json_object_get(attrs, "signal"));
        int64_t n = sig ? dmsu_parse_i64(sig) : -1;
        if (!h->cancel_reason && n > 0)
            h->outside_signal = (int)n;
    } else if (strcmp(action, "die") == 0) {
        const char *code = json_string_value(json_object_get(attrs, "exitCode"));
        int64_t c = code ? dmsu_parse_i64(code) : -1;
        if (!h->exited) {
            h->exited = true;
            h->exit_code = c >= 0 ? (int)c : -1;
            h->finished_at_ns = tn ? (int64_t)tn : dms_now_ns();
        }
        /* A SIGTERM we did not send, followed by a clean exit, is still an exit, not a signal death. */
        if (h->outside_signal && h->exit_code >= 0 && h->exit_code <= 128)
            h->outside_signal = 0;
        /* Killed (137) with no oom event seen: the oom event may have come before this process listened (an
         * adopted job). The container's State.OOMKilled settles it before the result goes out. */
        if (h->exit_code == 137 && !h->oom && !h->inspect_pending) {
            h->inspect_pending = true;
            inspect = true;
        }
        check = true;
    } else if (strcmp(action, "destroy") == 0) {
        if (!h->exited) {
            h->exited = true;
            h->lost = true;
            h->finished_at_ns = dms_now_ns();
        }
        check = true;
    }
    pthread_mutex_unlock(&h->lock);
    if (inspect)
        docker_handler_inspect_async(h);
    if (check)
        docker_handler_maybe_finalize(h);
    docker_handler_unref(h);
}

static void events_headers(void *ud, long status)
{
    docker_executor *ex = ud;
    if (status != 200)
        return;
    bool was_down;
    pthread_mutex_lock(&ex->lock);
    was_down = ex->events_state == -1;
    pthread_mutex_unlock(&ex->lock);
    ex->events_retry_ms = DOCKER_EVENTS_RETRY_MIN_MS;
    set_events_state(ex, 1);
    if (was_down) {
        /* Anything that ended while we were not listening and is not in the replay: ask the engine. */
        pthread_mutex_lock(&ex->lock);
        for (docker_handler *h = ex->handlers; h; h = h->next)
            if (h->state == DMS_STATE_RUNNING || h->state == DMS_STATE_STOPPING)
                docker_handler_inspect_async(h);
        pthread_mutex_unlock(&ex->lock);
    }
}

static int events_data(void *ud, const char *data, size_t len)
{
    docker_executor *ex = ud;
    while (len > 0) {
        const char *nl = memchr(data, '\n', len);
        size_t take = nl ? (size_t)(nl - data) : len;
        if (dmsu_buf_append(&ex->events_line, data, take) < 0)
            return -DMS_E_NOMEM;
        if (ex->events_line.overflow) {
            dms_logf(ex->host, DMS_LOG_WARN, "op=events msg=\"event longer than %d bytes dropped\"",
                     EVENT_LINE_MAX);
            dmsu_buf_reset(&ex->events_line);
        }
        if (!nl)
            break;
        if (ex->events_line.len) {
            json_error_t jerr;
            json_t *ev = json_loadb(ex->events_line.data, ex->events_line.len, 0, &jerr);
            if (ev)
                handle_event(ex, ev);
            else
                dms_logf(ex->host, DMS_LOG_WARN, "op=events msg=\"unparsable event: %s\"", jerr.text);
            json_decref(ev);
        }
        dmsu_buf_reset(&ex->events_line);
        data += take + 1;
        len -= take + 1;
    }
    return 0;
}

static void events_retry(void *ud, bool cancelled)
{
    docker_executor *ex = ud;
    if (!cancelled && !atomic_load(&ex->shutting_down))
        events_connect(ex);
}

static void events_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_executor *ex = ud;
    ex->events_xfer = 0;
    dmsu_buf_reset(&ex->events_line);
    pthread_mutex_lock(&ex->lock);
    bool was_up = ex->events_state == 1;
    pthread_mutex_unlock(&ex->lock);
    set_events_state(ex, -1);
    if (atomic_load(&ex->shutting_down) || rc == -DMS_E_CANCELLED)
        return;
    /* A stream that was up and dropped is news; an engine that is not there yet is said once, by whoever
     * needs it. */
    dms_logf(ex->host, was_up ? DMS_LOG_WARN : DMS_LOG_INFO,
             "op=events msg=\"event stream ended (%s); reconnecting in %lld ms\"",
             rc < 0 && err ? err->message : "engine closed it", (long long)ex->events_retry_ms);
    docker_loop_timer(ex->loop, ex->events_retry_ms, events_retry, ex);
    ex->events_retry_ms *= 2;
    if (ex->events_retry_ms > DOCKER_EVENTS_RETRY_MAX_MS)
        ex->events_retry_ms = DOCKER_EVENTS_RETRY_MAX_MS;
}

static const docker_xfer_cbs events_cbs = {
    .on_headers = events_headers,
    .on_data = events_data,
    .on_done = events_done,
};

static void events_connect(docker_executor *ex)
{
    char filter[256];
    /* Only what ends a job or says how: every other event of every container would be parsed for nothing. */
    snprintf(
        filter, sizeof(filter),
        "{\"type\":[\"container\"],\"event\":[\"die\",\"oom\",\"kill\",\"destroy\"],\"label\":[\"%s=%s\"]}",
        DMS_LABEL_EXECUTOR, ex->id);
    _cleanup_free_ char *ef = docker_escape(filter);
    char path[640];
    if (ex->events_last_ns > 0)
        snprintf(path, sizeof(path), "/events?filters=%s&since=%lld.%09lld", ef ? ef : "",
                 (long long)(ex->events_last_ns / 1000000000LL),
                 (long long)(ex->events_last_ns % 1000000000LL));
    else
        snprintf(path, sizeof(path), "/events?filters=%s", ef ? ef : "");
    ex->events_xfer = docker_loop_add(ex->loop, "GET", path, NULL, &events_cbs, ex, 0);
}

static void events_connect_on_loop(void *ud, bool cancelled)
{
    if (!cancelled)
        events_connect(ud);
}

void docker_events_start(docker_executor *ex, bool wait_for_it)
{
    ex->events_line.max = EVENT_LINE_MAX;
    ex->events_retry_ms = DOCKER_EVENTS_RETRY_MIN_MS;
    docker_loop_post(ex->loop, events_connect_on_loop, ex);
    if (!wait_for_it)
        return;
    /* Wait (bounded) until it is in place, so that the first job's die event cannot be missed. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += DOCKER_EVENTS_CONNECT_WAIT_MS / 1000;
    pthread_mutex_lock(&ex->lock);
    int rc = 0;
    while (ex->events_state == 0 && rc == 0)
        rc = pthread_cond_timedwait(&ex->cond, &ex->lock, &deadline);
    int st = ex->events_state;
    pthread_mutex_unlock(&ex->lock);
    if (st != 1)
        dms_logf(ex->host, DMS_LOG_WARN,
                 "op=events msg=\"no event stream yet; exits will be learned from the engine state until it "
                 "is up\"");
}
