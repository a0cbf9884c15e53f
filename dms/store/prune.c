/* prune.c - retention's SQL (see prune.h). */
#include "prune.h"

#include <sqlite3.h>

#include "../common.h"
#include "sqlutil.h"

#define JOB_FINISHED "('succeeded','failed','cancelled')"

/* Runs one DELETE with ?1 = droid or job id, ?2 = keep, ?3 = batch (a statement may leave some unused:
 * binding one it lacks is a harmless SQLITE_RANGE); *n = rows it deleted. */
static int delete_batch(store *s, const char *sql, const char *id, int keep, int batch, int *n,
                        dms_error *err)
{
    *n = 0;
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "prune", sql, SQL_ARGS(SQL_TEXT(id), SQL_INT(keep), SQL_INT(batch)), NULL,
                          NULL, err);
    if (r < 0)
        return r;
    *n = sqlite3_changes(l.db);
    return 0;
}

int prune_droid_ids(store *s, char ***ids, dms_error *err)
{
    LOCK_DB(s, l);
    char **v = calloc(1, sizeof(char *));
    if (!v)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    int r = sqlutil_query(l.db, "list droids", "SELECT id FROM droids ORDER BY id", SQL_NOARGS,
                          sqlutil_strv_row, &v, err);
    if (r < 0) {
        dmsu_strv_free(v);
        return r;
    }
    *ids = v;
    return 0;
}

int prune_events(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err)
{
    *n = 0;
    if (keep <= 0)
        return 0;
    return delete_batch(s,
                        "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE droid_id=?1"
                        " ORDER BY id DESC LIMIT ?3 OFFSET ?2)",
                        droid_id, keep, batch, n, err);
}

int prune_builds(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err)
{
    *n = 0;
    if (keep <= 0)
        return 0;
    return delete_batch(s,
                        "DELETE FROM builds WHERE id IN (SELECT id FROM (SELECT id, status FROM builds"
                        " WHERE droid_id=?1 ORDER BY id DESC LIMIT -1 OFFSET ?2)"
                        " WHERE status NOT IN ('queued','running') AND id NOT IN (SELECT r.build_id FROM"
                        " releases r JOIN droids d ON d.id = r.droid_id WHERE r.droid_id=?1 AND r.build_id IS"
                        " NOT NULL AND r.seq IN (d.want_release, d.run_release)) LIMIT ?3)",
                        droid_id, keep, batch, n, err);
}

int prune_releases(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err)
{
    *n = 0;
    if (keep <= 0)
        return 0;
    return delete_batch(s,
                        "DELETE FROM releases WHERE droid_id=?1 AND seq IN (SELECT seq FROM (SELECT seq,"
                        " image_removed FROM releases WHERE droid_id=?1 ORDER BY seq DESC LIMIT -1 OFFSET ?2)"
                        " WHERE image_removed=1 AND seq NOT IN (SELECT want_release FROM droids WHERE id=?1"
                        " UNION SELECT run_release FROM droids WHERE id=?1) LIMIT ?3)",
                        droid_id, keep, batch, n, err);
}

int prune_runs(store *s, const char *droid_id, int keep, int batch, int *n, dms_error *err)
{
    *n = 0;
    if (keep <= 0)
        return 0;
    return delete_batch(s,
                        "DELETE FROM runs WHERE exec_id IN (SELECT exec_id FROM (SELECT exec_id, removed FROM"
                        " runs WHERE droid_id=?1 ORDER BY started_ns DESC, exec_id DESC LIMIT -1 OFFSET ?2)"
                        " WHERE removed=1 AND exec_id NOT IN (SELECT run_id FROM droids WHERE id=?1 AND"
                        " run_id IS NOT NULL) LIMIT ?3)",
                        droid_id, keep, batch, n, err);
}

int prune_jobs_due(store *s, int keep, int64_t before_ns, int batch, char ***ids, dms_error *err)
{
    *ids = NULL;
    LOCK_DB(s, l);
    char **v = calloc(1, sizeof(char *));
    if (!v)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    int r =
        sqlutil_query(l.db, "list jobs to prune",
                      "SELECT id FROM (SELECT id, status, created_ns, finished_ns, ROW_NUMBER() OVER"
                      " (PARTITION BY user_id ORDER BY created_ns DESC, id DESC) AS rn FROM jobs)"
                      " WHERE status IN " JOB_FINISHED " AND ((?1 > 0 AND rn > ?1) OR (?2 > 0 AND"
                      " finished_ns < ?2)) ORDER BY created_ns, id LIMIT ?3",
                      SQL_ARGS(SQL_INT(keep), SQL_INT(before_ns), SQL_INT(batch)), sqlutil_strv_row, &v, err);
    if (r < 0) {
        dmsu_strv_free(v);
        return r;
    }
    *ids = v;
    return 0;
}

int prune_job_logs(store *s, const char *job_id, int batch, int *n, dms_error *err)
{
    /* Never the log of a job that is still queued or running. */
    return delete_batch(s,
                        "DELETE FROM job_logs WHERE rowid IN (SELECT rowid FROM job_logs WHERE job_id=?1"
                        " AND NOT EXISTS (SELECT 1 FROM jobs WHERE id=?1 AND status NOT IN"
                        " " JOB_FINISHED ") LIMIT ?3)",
                        job_id, 0, batch, n, err);
}

int prune_job(store *s, const char *job_id, int *n, dms_error *err)
{
    /* Only once its log is gone: a sweep cut short finds the job again and finishes. */
    return delete_batch(s,
                        "DELETE FROM jobs WHERE id=?1 AND status IN " JOB_FINISHED
                        " AND NOT EXISTS (SELECT 1 FROM job_logs WHERE job_id=?1)",
                        job_id, 0, 1, n, err);
}
