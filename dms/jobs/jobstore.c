/* jobstore.c - jobs and job logs in SQLite (see jobstore.h). */
#include "jobstore.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../store/sqlutil.h"

static int prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql, dms_error *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return sqlutil_error(db, err, "prepare");
    return 0;
}

#define JOB_COLS                                                                                             \
    "id, user_id, project_id, deployment_id, branch, repo_url, build_command, package_manager, dist_dir,"    \
    " status, step, reason, cancel_requested, attempt, commit_sha, cache_volume, cache_warm,"                \
    " artifact_bytes, install_ms, build_ms, exit_code, created_ns, started_ns, finished_ns"

static void row_job(sqlite3_stmt *st, job *j)
{
    job_clear(j);
    int i = 0;
    snprintf(j->id, sizeof(j->id), "%s", (const char *)sqlite3_column_text(st, i++));
    j->user_id = sqlutil_col_text(st, i++);
    j->project_id = sqlutil_col_text(st, i++);
    j->deployment_id = sqlutil_col_text(st, i++);
    j->branch = sqlutil_col_text(st, i++);
    j->repo_url = sqlutil_col_text(st, i++);
    j->build_command = sqlutil_col_text(st, i++);
    int pm = job_pm_parse((const char *)sqlite3_column_text(st, i++));
    j->pm = pm < 0 ? JOB_PM_NONE : (job_pm)pm;
    j->dist_dir = sqlutil_col_text(st, i++);
    int status = job_status_parse((const char *)sqlite3_column_text(st, i++));
    j->status = status < 0 ? JOB_FAILED : (job_status)status;
    j->step = sqlutil_col_text(st, i++);
    j->reason = sqlutil_col_text(st, i++);
    j->cancel_requested = sqlite3_column_int(st, i++) != 0;
    j->attempt = sqlite3_column_int(st, i++);
    j->commit_sha = sqlutil_col_text(st, i++);
    j->cache_volume = sqlutil_col_text(st, i++);
    j->cache_warm = sqlite3_column_int(st, i++) != 0;
    j->artifact_bytes = sqlite3_column_int64(st, i++);
    j->install_ms = sqlite3_column_int64(st, i++);
    j->build_ms = sqlite3_column_int64(st, i++);
    j->exit_code = sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int(st, i);
    i++;
    j->created_ns = sqlite3_column_int64(st, i++);
    j->started_ns = sqlite3_column_int64(st, i++);
    j->finished_ns = sqlite3_column_int64(st, i++);
}

int jobstore_insert(store *s, const job *j, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(
             l.db, &st,
             "INSERT INTO jobs (id, user_id, project_id, deployment_id, branch, repo_url, build_command,"
             " package_manager, dist_dir, status, cache_volume, created_ns)"
             " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
             err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, j->id);
    sqlutil_bind_text(st, 2, j->user_id);
    sqlutil_bind_text(st, 3, j->project_id);
    sqlutil_bind_text(st, 4, j->deployment_id);
    sqlutil_bind_text(st, 5, j->branch);
    sqlutil_bind_text(st, 6, j->repo_url);
    sqlutil_bind_text(st, 7, j->build_command);
    sqlutil_bind_text(st, 8, job_pm_name(j->pm));
    sqlutil_bind_text(st, 9, j->dist_dir);
    sqlutil_bind_text(st, 10, job_status_name(j->status));
    sqlutil_bind_text(st, 11, j->cache_volume);
    sqlite3_bind_int64(st, 12, j->created_ns);
    if (sqlite3_step(st) != SQLITE_DONE) {
        if (sqlite3_extended_errcode(l.db) == SQLITE_CONSTRAINT_PRIMARYKEY)
            return dms_error_set(err, DMS_E_CONFLICT, "id", "job %s exists", j->id);
        return sqlutil_error(l.db, err, "insert job");
    }
    return 0;
}

int jobstore_update(store *s, const job *j, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(
             l.db, &st,
             "UPDATE jobs SET status=?, step=?, reason=?, cancel_requested=?, attempt=?, commit_sha=?,"
             " cache_volume=?, cache_warm=?, artifact_bytes=?, install_ms=?, build_ms=?, exit_code=?,"
             " started_ns=?, finished_ns=? WHERE id=?",
             err)) < 0)
        return r;
    int i = 1;
    sqlutil_bind_text(st, i++, job_status_name(j->status));
    sqlutil_bind_text(st, i++, j->step);
    sqlutil_bind_text(st, i++, j->reason);
    sqlite3_bind_int(st, i++, j->cancel_requested);
    sqlite3_bind_int(st, i++, j->attempt);
    sqlutil_bind_text(st, i++, j->commit_sha);
    sqlutil_bind_text(st, i++, j->cache_volume);
    sqlite3_bind_int(st, i++, j->cache_warm);
    sqlite3_bind_int64(st, i++, j->artifact_bytes);
    sqlite3_bind_int64(st, i++, j->install_ms);
    sqlite3_bind_int64(st, i++, j->build_ms);
    if (j->exit_code < 0)
        sqlite3_bind_null(st, i++);
    else
        sqlite3_bind_int(st, i++, j->exit_code);
    sqlite3_bind_int64(st, i++, j->started_ns);
    sqlite3_bind_int64(st, i++, j->finished_ns);
    sqlutil_bind_text(st, i++, j->id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sqlutil_error(l.db, err, "update job");
    if (sqlite3_changes(l.db) == 0)
        return dms_error_set(err, DMS_E_NOT_FOUND, "id", "job %s not found", j->id);
    return 0;
}

static int get_where(locked_db *l, const char *where, const char *a1, const char *a2, job *out,
                     dms_error *err)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT " JOB_COLS " FROM jobs WHERE %s ORDER BY created_ns DESC, id DESC LIMIT 1", where);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(l->db, &st, sql, err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, a1);
    if (a2)
        sqlutil_bind_text(st, 2, a2);
    r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        return 0;
    if (r != SQLITE_ROW)
        return sqlutil_error(l->db, err, "read job");
    row_job(st, out);
    return 1;
}

int jobstore_get(store *s, const char *id, job *out, dms_error *err)
{
    LOCK_DB(s, l);
    int r = get_where(&l, "id=?", id, NULL, out, err);
    if (r == 0)
        return dms_error_set(err, DMS_E_NOT_FOUND, "id", "job %.64s not found", id);
    return r < 0 ? r : 0;
}

int jobstore_find(store *s, const char *user, const char *id_or_deployment, job *out, dms_error *err)
{
    LOCK_DB(s, l);
    int r = get_where(&l, "id=? AND user_id=?", id_or_deployment, user, out, err);
    if (r == 0)
        r = get_where(&l, "deployment_id=? AND user_id=?", id_or_deployment, user, out, err);
    if (r == 0)
        return dms_error_set(err, DMS_E_NOT_FOUND, "id", "job %.64s not found", id_or_deployment);
    return r < 0 ? r : 0;
}

int jobstore_list_json(store *s, const char *user, dmsd_page *pg, json_t **out, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    /* One row more than the page: whether another page follows. */
    if ((r = prepare(l.db, &st,
                     "SELECT " JOB_COLS " FROM jobs WHERE user_id=?1 AND (?2 = 0 OR created_ns < ?3 OR"
                     " (created_ns = ?3 AND id < ?4)) ORDER BY created_ns DESC, id DESC LIMIT ?5",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, user);
    sqlite3_bind_int(st, 2, pg->has_after);
    sqlite3_bind_int64(st, 3, pg->after.n);
    sqlutil_bind_text(st, 4, pg->after.id);
    sqlite3_bind_int(st, 5, pg->limit + 1);
    json_t *a = json_array();
    job j;
    job_init(&j);
    pg->more = false;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (json_array_size(a) == (size_t)pg->limit) {
            pg->more = true;
            r = SQLITE_DONE;
            break;
        }
        row_job(st, &j);
        json_array_append_new(a, job_to_json(&j));
        pg->next.n = j.created_ns;
        snprintf(pg->next.id, sizeof(pg->next.id), "%s", j.id);
    }
    job_clear(&j);
    if (r != SQLITE_DONE) {
        json_decref(a);
        return sqlutil_error(l.db, err, "list jobs");
    }
    *out = a;
    return 0;
}

/* The users with queued jobs: how many each runs, when its latest job started, and since when its oldest
 * queued job waits. *users (caller frees, and the user ids in it) has *n entries. */
static int queue_users(locked_db *l, job_queue_user **users, size_t *n, dms_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    *users = NULL;
    *n = 0;
    if ((r = prepare(l->db, &st,
                     "SELECT q.user_id, MIN(q.created_ns),"
                     " (SELECT COUNT(*) FROM jobs r WHERE r.status='running' AND r.user_id=q.user_id),"
                     " (SELECT COALESCE(MAX(s.started_ns), 0) FROM jobs s WHERE s.user_id=q.user_id)"
                     " FROM jobs q WHERE q.status='queued' GROUP BY q.user_id",
                     err)) < 0)
        return r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        job_queue_user *nu = realloc(*users, (*n + 1) * sizeof(**users));
        char *id = nu ? sqlutil_col_text(st, 0) : NULL;
        if (nu)
            *users = nu;
        if (!id)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        (*users)[(*n)++] = (job_queue_user){.user_id = id,
                                            .waiting_since_ns = sqlite3_column_int64(st, 1),
                                            .running = sqlite3_column_int(st, 2),
                                            .last_started_ns = sqlite3_column_int64(st, 3)};
    }
    return r == SQLITE_DONE ? 0 : sqlutil_error(l->db, err, "queued users");
}

static void free_queue_users(job_queue_user *users, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free((char *)users[i].user_id);
    free(users);
}

/* The user's oldest queued job into *out: 1, or 0 if none. */
static int oldest_queued(locked_db *l, const char *user, job *out, dms_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(l->db, &st,
                     "SELECT " JOB_COLS
                     " FROM jobs WHERE status='queued' AND user_id=? ORDER BY created_ns, id LIMIT 1",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, user);
    r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        return 0;
    if (r != SQLITE_ROW)
        return sqlutil_error(l->db, err, "next job");
    row_job(st, out);
    return 1;
}

int jobstore_claim_next(store *s, int max_running, job *out, dms_error *err)
{
    int r;
    if ((r = store_begin(s, err)) < 0)
        return r;
    LOCK_DB(s, l);
    {
        job_queue_user *users = NULL;
        size_t n = 0;
        r = queue_users(&l, &users, &n, err);
        int pick = r < 0 ? -1 : job_fair_pick(users, n, max_running);
        if (pick >= 0)
            r = oldest_queued(&l, users[pick].user_id, out, err);
        free_queue_users(users, n);
        if (r < 0)
            goto fail;
        if (pick < 0 || r == 0) {
            store_rollback(s);
            return 0;
        }
    }
    out->status = JOB_RUNNING;
    out->attempt++;
    out->started_ns = dms_now_ns();
    out->finished_ns = 0;
    if ((r = jobstore_update(s, out, err)) < 0)
        goto fail;
    r = store_commit(s, err);
    return r < 0 ? r : 1;
fail:
    store_rollback(s);
    return r;
}

int jobstore_check_quota(store *s, const char *user, int max_jobs, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(l.db, &st,
                     "SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running') AND user_id=?", err)) <
        0)
        return r;
    sqlutil_bind_text(st, 1, user);
    if (sqlite3_step(st) != SQLITE_ROW)
        return sqlutil_error(l.db, err, "count jobs");
    int n = sqlite3_column_int(st, 0);
    if (n >= max_jobs)
        return dms_error_set(err, DMS_E_QUOTA, "DMS_USER_MAX_JOBS",
                             "you have %d jobs queued or running, the most DMS_USER_MAX_JOBS allows (%d): "
                             "post this one again once one has ended, or cancel one",
                             n, max_jobs);
    return 0;
}

int jobstore_requeue_interrupted(store *s, char ***ids, int **attempts, dms_error *err)
{
    int r;
    *ids = NULL;
    *attempts = NULL;
    if ((r = store_begin(s, err)) < 0)
        return r;
    LOCK_DB(s, l);
    {
        _cleanup_stmt_ sqlite3_stmt *q = NULL;
        if ((r = prepare(l.db, &q,
                         "SELECT id, attempt FROM jobs WHERE status='running' AND cancel_requested=0", err)) <
            0)
            goto fail;
        size_t n = 0;
        while ((r = sqlite3_step(q)) == SQLITE_ROW) {
            int *na = realloc(*attempts, (n + 1) * sizeof(int));
            if (!na || dmsu_strv_push(ids, (const char *)sqlite3_column_text(q, 0)) < 0) {
                if (na)
                    *attempts = na;
                r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
                goto fail;
            }
            *attempts = na;
            (*attempts)[n++] = sqlite3_column_int(q, 1);
        }
        if (r != SQLITE_DONE) {
            r = sqlutil_error(l.db, err, "interrupted jobs");
            goto fail;
        }
    }
    static const char *const sql[] = {
        "UPDATE jobs SET status='cancelled', reason='cancelled while dmsd was stopped', finished_ns=?1"
        " WHERE status='running' AND cancel_requested=1",
        "UPDATE jobs SET status='queued', reason='interrupted by a dmsd restart: started again', step=NULL"
        " WHERE status='running'",
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(sql); i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        if ((r = prepare(l.db, &st, sql[i], err)) < 0)
            goto fail;
        if (i == 0)
            sqlite3_bind_int64(st, 1, dms_now_ns());
        if (sqlite3_step(st) != SQLITE_DONE) {
            r = sqlutil_error(l.db, err, "requeue jobs");
            goto fail;
        }
    }
    return store_commit(s, err);
fail:
    store_rollback(s);
    dmsu_strv_free(*ids);
    free(*attempts);
    *ids = NULL;
    *attempts = NULL;
    return r;
}

int jobstore_request_cancel(store *s, const char *user, const char *id_or_deployment, const char *reason,
                            job_status *was, char *id_out, dms_error *err)
{
    int r;
    job j;
    job_init(&j);
    if ((r = store_begin(s, err)) < 0)
        return r;
    if ((r = jobstore_find(s, user, id_or_deployment, &j, err)) < 0)
        goto fail;
    *was = j.status;
    snprintf(id_out, JOB_ID_SIZE, "%s", j.id);
    if (job_status_final(j.status)) {
        r = dms_error_set(err, DMS_E_CONFLICT, "id", "job %s has already finished (%s)", j.id,
                          job_status_name(j.status));
        goto fail;
    }
    if (j.status == JOB_QUEUED) {
        j.status = JOB_CANCELLED;
        j.finished_ns = dms_now_ns();
        if (dmsd_set_str(&j.reason, reason) < 0) {
            r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
            goto fail;
        }
    }
    j.cancel_requested = true;
    if ((r = jobstore_update(s, &j, err)) < 0)
        goto fail;
    job_clear(&j);
    return store_commit(s, err);
fail:
    job_clear(&j);
    store_rollback(s);
    return r;
}

int jobstore_log_append(store *s, const char *id, int64_t seq, int64_t ts_ns, const char *data, size_t len,
                        dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(l.db, &st, "INSERT INTO job_logs (job_id, seq, ts_ns, data) VALUES (?,?,?,?)", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, ts_ns);
    sqlite3_bind_blob(st, 4, data, (int)len, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sqlutil_error(l.db, err, "append job log");
    return 0;
}

int jobstore_log_read(store *s, const char *id, int64_t after_seq, size_t max_bytes, dmsu_buf *out,
                      int64_t *last_seq, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    *last_seq = after_seq;
    if ((r = prepare(l.db, &st, "SELECT seq, data FROM job_logs WHERE job_id=? AND seq>? ORDER BY seq",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, after_seq);
    while (out->len < max_bytes && (r = sqlite3_step(st)) == SQLITE_ROW) {
        const void *d = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        if (n > 0 && dmsu_buf_append(out, d, (size_t)n) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        *last_seq = sqlite3_column_int64(st, 0);
        r = SQLITE_DONE;
    }
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        return sqlutil_error(l.db, err, "read job log");
    return 0;
}

int jobstore_log_last_seq(store *s, const char *id, int64_t *seq, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    *seq = 0;
    if ((r = prepare(l.db, &st, "SELECT COALESCE(MAX(seq), 0) FROM job_logs WHERE job_id=?", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, id);
    if (sqlite3_step(st) != SQLITE_ROW)
        return sqlutil_error(l.db, err, "last log seq");
    *seq = sqlite3_column_int64(st, 0);
    return 0;
}
