/* jobroutes.c - the build job API, compatible with koalaCI's builder:
 *
 *   POST  /job/create          {project_id, deployment_id, project_branch, project_repo_url,
 *                               project_build_command, project_package_manager, project_dist_directory}
 *                              -> 200 {"data": "OK", "id": "<job id>"}
 *   GET   /job/:id/log         -> {"data": "<log so far>"}; ?follow=1: the log as text/plain, streamed
 *                                 (chunked) until the job ends
 *   PATCH /job/:id/cancel      -> {"data": "Queued for cancellation"}
 *   GET   /job/:id             -> {"data": <the job>}
 *   GET   /job/:id/artifact    -> the dist directory as a tar (application/x-tar)
 *   GET   /jobs                -> {"data": [<a page of the user's jobs, newest first>], "next_cursor"}
 *   DELETE /projects/:id/cache -> {"data": "OK", "volume": ...}: drops the project's dependency cache
 *
 * :id is the job's id or its deployment_id (the user's newest job of that deployment). Another user's job is
 * 404 like a missing one. Errors are dmsd's {"error", "field"} with 400/401/404/409/500/503, and 429
 * when the user has DMS_USER_MAX_JOBS jobs queued or running. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../app.h"
#include "../common.h"
#include "../jobs/jobs.h"
#include "../jobs/jobstore.h"
#include "handlers.h"
#include "page.h"

#define JOB_LOG_READ_BYTES (64 * 1024)                /* one read of a follow */
#define JOB_LOG_REPLY_MAX  (JOB_LOG_MAX_BYTES + 4096) /* the whole log in one JSON string */

static bool need_jobs(app *a, api_req *r)
{
    if (a->jobs)
        return true;
    api_reply_errorf(r, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "no executor, so no build jobs: %s", a->ex_error);
    return false;
}

void route_job_create(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    (void)id;
    if (!need_jobs(a, r))
        return;
    _cleanup_json_ json_t *body = api_body_json(r, &err);
    job j;
    job_init(&j);
    if (!body || job_parse_create(body, &j, &err) < 0 || dmsd_set_str(&j.user_id, api_user(r)) < 0 ||
        jobs_create(a->jobs, &j, &err) < 0) {
        job_clear(&j);
        if (!err.code)
            dms_error_set(&err, DMS_E_NOMEM, NULL, "out of memory");
        api_reply_error(r, &err);
        return;
    }
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:s, s:s}", "data", "OK", "id", j.id));
    job_clear(&j);
}

/* koalaCI's {"data": [...]}, plus where the next page starts: "next_cursor" (null on the last page) and the
 * X-Next-Cursor header of every list route. */
void route_jobs_list(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    json_t *list = NULL;
    dmsd_page pg;
    (void)id;
    if (api_page_parse(r, a->cfg.page_limit, API_CURSOR_TIME_ID, &pg, &err) < 0 ||
        jobstore_list_json(a->st, api_user(r), &pg, &list, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    char next[API_CURSOR_TEXT_MAX];
    api_page_cursor(&pg, API_CURSOR_TIME_ID, next, sizeof(next));
    api_page_reply(
        r, &pg, API_CURSOR_TIME_ID,
        json_pack("{s:o, s:o}", "data", list, "next_cursor", next[0] ? json_string(next) : json_null()));
}

/* The caller's job: true with *j filled (job_clear it), or false with the error answered. */
static bool own_job(app *a, api_req *r, const char *id, job *j)
{
    dms_error err = {0};
    job_init(j);
    if (jobstore_find(a->st, api_user(r), id, j, &err) < 0) {
        api_reply_error(r, &err);
        return false;
    }
    return true;
}

/* koalaCI's GET /job/:id/status: the status alone. */
void route_job_status(void *ap, api_req *r, const char *id)
{
    job j;
    if (!own_job(ap, r, id, &j))
        return;
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "data", job_status_name(j.status)));
    job_clear(&j);
}

void route_job_get(void *ap, api_req *r, const char *id)
{
    job j;
    if (!own_job(ap, r, id, &j))
        return;
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "data", job_to_json(&j)));
    job_clear(&j);
}

void route_job_cancel(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    if (!need_jobs(a, r))
        return;
    if (jobs_cancel(a->jobs, api_user(r), id, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "data", "Queued for cancellation"));
}

/* ---- the log ---- */

typedef struct log_src {
    app *a;
    char id[JOB_ID_SIZE];
    int64_t seq;
    dmsu_buf pending;
    size_t off;
    bool final; /* the job had ended when the last read found nothing new */
} log_src;

static ssize_t log_read(void *ud, char *buf, size_t max)
{
    log_src *s = ud;
    if (s->off >= s->pending.len) {
        dmsu_buf_reset(&s->pending);
        s->off = 0;
        /* Read the status first: a job writes its last chunk before it is marked final, so "final, then
         * nothing new" means the end. */
        job j;
        job_init(&j);
        bool final = jobstore_get(s->a->st, s->id, &j, NULL) == 0 && job_status_final(j.status);
        job_clear(&j);
        if (jobstore_log_read(s->a->st, s->id, s->seq, JOB_LOG_READ_BYTES, &s->pending, &s->seq, NULL) < 0)
            return API_STREAM_ERROR;
        if (!s->pending.len)
            return final ? API_STREAM_END : API_STREAM_AGAIN;
    }
    size_t n = s->pending.len - s->off;
    if (n > max)
        n = max;
    memcpy(buf, s->pending.data + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static int log_fd(void *ud)
{
    (void)ud;
    return -1; /* the stream layer's tick: a follow looks at the store every 100 ms */
}

static void log_free(void *ud)
{
    log_src *s = ud;
    dmsu_buf_free(&s->pending);
    free(s);
}

static const api_stream_ops log_ops = {log_read, log_fd, log_free};

void route_job_log(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    bool follow = false;
    job j;
    job_init(&j);
    if (api_query_bool(r, "follow", &follow, &err) < 0 ||
        jobstore_find(a->st, api_user(r), id, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (follow) {
        log_src *s = calloc(1, sizeof(*s));
        if (!s) {
            job_clear(&j);
            api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
            return;
        }
        s->a = a;
        snprintf(s->id, sizeof(s->id), "%s", j.id);
        job_clear(&j);
        api_reply_stream(r, MHD_HTTP_OK, "text/plain; charset=utf-8", &log_ops, s, NULL, NULL);
        return;
    }
    dmsu_buf buf = {0};
    int64_t last = 0;
    if (jobstore_log_read(a->st, j.id, 0, JOB_LOG_REPLY_MAX, &buf, &last, &err) < 0) {
        job_clear(&j);
        dmsu_buf_free(&buf);
        api_reply_error(r, &err);
        return;
    }
    job_clear(&j);
    size_t clean_len = 0;
    _cleanup_free_ char *clean = dmsu_utf8_sanitize(buf.data ? buf.data : "", buf.len, &clean_len);
    dmsu_buf_free(&buf);
    if (!clean) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:s%}", "data", clean, clean_len));
}

/* ---- the artifact ---- */

typedef struct file_src {
    int fd;
} file_src;

static ssize_t file_read(void *ud, char *buf, size_t max)
{
    file_src *f = ud;
    for (;;) {
        ssize_t n = read(f->fd, buf, max);
        if (n > 0)
            return n;
        if (n == 0)
            return API_STREAM_END;
        if (errno != EINTR)
            return API_STREAM_ERROR;
    }
}

static int file_fd(void *ud)
{
    (void)ud;
    return -1;
}

static void file_free(void *ud)
{
    file_src *f = ud;
    close(f->fd);
    free(f);
}

static const api_stream_ops file_ops = {file_read, file_fd, file_free};

void route_job_artifact(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    job j;
    job_init(&j);
    if (!need_jobs(a, r))
        return;
    if (jobstore_find(a->st, api_user(r), id, &j, &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (!job_status_final(j.status)) {
        api_reply_errorf(r, MHD_HTTP_CONFLICT, "id", "job %s is %s: no artifact yet", j.id,
                         job_status_name(j.status));
        job_clear(&j);
        return;
    }
    /* Only the copy dmsd took out of the package step's tree, opened without following a link, a regular file
     * only (jobs/artifact.h): never anything a workload wrote. */
    int64_t bytes = 0;
    int fd = j.artifact_bytes < 0 ? -DMS_E_NOT_FOUND : jobs_artifact_open(a->jobs, j.id, &bytes, &err);
    if (fd < 0) {
        if (fd != -DMS_E_NOT_FOUND)
            log_warn("job=%s op=artifact error=\"%s\"", j.id, err.message);
        api_reply_errorf(r, MHD_HTTP_NOT_FOUND, "id", "job %s has no artifact (it %s)", j.id,
                         job_status_name(j.status));
        job_clear(&j);
        return;
    }
    file_src *f = malloc(sizeof(*f));
    if (!f) {
        close(fd);
        job_clear(&j);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    f->fd = fd;
    char disposition[128];
    snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s.tar\"", j.deployment_id);
    job_clear(&j);
    api_reply_stream(r, MHD_HTTP_OK, "application/x-tar", &file_ops, f, "Content-Disposition", disposition);
}

/* ---- DELETE /projects/:id/cache ---- */

void route_project_cache_delete(void *ap, api_req *r, const char *id)
{
    app *a = ap;
    dms_error err = {0};
    char vol[DMS_ID_MAX + 1];
    if (!need_jobs(a, r))
        return;
    if (job_validate_ref_id(id, "project_id", &err) < 0 ||
        job_cache_volume_name(a->cfg.executor_id, api_user(r), id, vol, sizeof(vol), &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    /* The volume's name is the user's: another user's project of the same name has another volume. */
    int rc = dms_executor_remove_volume(a->ex, vol, &err);
    if (rc == -DMS_E_NOT_FOUND) {
        api_reply_errorf(r, MHD_HTTP_NOT_FOUND, "id", "project %s has no dependency cache", id);
        return;
    }
    if (rc < 0) {
        if (rc == -DMS_E_CONFLICT)
            dms_error_prefix(&err, "a job of project %s is running: ", id);
        api_reply_error(r, &err);
        return;
    }
    api_reply_json(r, MHD_HTTP_OK, json_pack("{s:s, s:s}", "data", "OK", "volume", vol));
}
