/* capture.c - an execution's output, from the engine into its log store: the attach of a fresh start (in
 * place before start, so the capture has the first byte), or repeated GET /logs passes for an adopted job,
 * fed through the demuxer. The loop thread drives it once queued (docker.h says who touches which field). The
 * rules these follow are at the top of handler.c. */
#include "docker.h"

#include <stdio.h>
#include <string.h>

/* Adopted capture: a frame from /logs is "<RFC3339Nano> <payload>"; skip what the capture already has. */
static int logs_frame(docker_handler *h, int stream, const char *data, size_t len, bool frame_end)
{
    if (dmsu_buf_append(&h->frame, data, len) < 0)
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
    dmsu_buf_reset(&h->frame);
    return r;
}

static int demux_cb(void *ud, int stream, const char *data, size_t len, bool frame_end)
{
    docker_handler *h = ud;
    if (stream == DOCKER_FRAME_SYSTEMERR) {
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture systemerr=\"%.*s\"", h->exec_id, (int)len,
                 data);
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
        dms_logf(h->ex->host, DMS_LOG_ERROR, "exec=%s op=capture msg=\"malformed output stream (%d)\"",
                 h->exec_id, r);
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
    return h->writer ? dms_logstore_bytes(h->writer, DMS_STREAM_STDOUT) +
                           dms_logstore_bytes(h->writer, DMS_STREAM_STDERR)
                     : 0;
}

static void capture_done(void *ud, int rc, long status, const char *body, size_t len, const dms_error *err)
{
    docker_handler *h = ud;
    if (atomic_load(&h->ex->shutting_down)) {
        /* Our process is going away mid-capture: nothing is finished. The capture on disk stays resumable and
         * the next owner (another process, or recover) carries on from it. */
        docker_handler_unref(h);
        return;
    }
    if (rc < 0 && rc != -DMS_E_CANCELLED)
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture msg=\"%s\"", h->exec_id,
                 err ? err->message : "");
    else if (rc == 0 && (status < 200 || status >= 300))
        dms_logf(h->ex->host, DMS_LOG_WARN, "exec=%s op=capture status=%ld body=\"%.*s\"", h->exec_id, status,
                 (int)(len > 200 ? 200 : len), body);
    if (!docker_demux_at_boundary(&h->demux))
        dms_logf(h->ex->host, DMS_LOG_WARN,
                 "exec=%s op=capture msg=\"output stream ended inside a frame; the bytes "
                 "that arrived are kept\"",
                 h->exec_id);
    pthread_mutex_lock(&h->lock);
    bool exited = h->exited;
    pthread_mutex_unlock(&h->lock);
    /* An adopted capture reads GET /logs. Measured on 20.10: a follow can end before it has delivered all the
     * output of a job that wrote fast and exited. So a pass is repeated (skipping what we have) until one
     * brings nothing new after the exit is known; a follow that ended while the job runs (a dropped
     * connection) goes on. */
    if (h->capture_is_logs)
        dms_logf(h->ex->host, DMS_LOG_DEBUG,
                 "exec=%s op=capture pass_end rc=%d status=%ld exited=%d before=%llu now=%llu", h->exec_id,
                 rc, status, exited, (unsigned long long)h->pass_start_bytes,
                 (unsigned long long)captured_bytes(h));
    if (h->capture_is_logs && rc != -DMS_E_CANCELLED && status == 200 &&
        !atomic_load(&h->ex->shutting_down)) {
        bool progressed = captured_bytes(h) > h->pass_start_bytes;
        if (progressed || !exited) {
            docker_demux_reset(&h->demux);
            dmsu_buf_reset(&h->frame);
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
        snprintf(p, sizeof(p), "/containers/%s/logs?stdout=1&stderr=1&timestamps=1&follow=%d",
                 h->container_id, follow ? 1 : 0);
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
