/* buildtab.c - the builds table: the build queue and every build's outcome (see store.h: builds; the fair
 * pick's read is buildqueue.c). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

static const char *const build_names[] = {"queued", "running",   "succeeded",
                                          "failed", "cancelled", "superseded"};

const char *build_status_name(build_status st)
{
    return (unsigned)st < DMS_ARRAY_SIZE(build_names) ? build_names[st] : "unknown";
}

static build_status build_status_parse(const char *s)
{
    for (size_t i = 0; s && i < DMS_ARRAY_SIZE(build_names); i++)
        if (strcmp(build_names[i], s) == 0)
            return (build_status)i;
    return BUILD_FAILED;
}

void store_build_clear(store_build *b)
{
    free(b->branch);
    free(b->commit_pin);
    free(b->commit_sha);
    free(b->image_id);
    free(b->tag);
    free(b->reason);
    memset(b, 0, sizeof(*b));
}

#define BUILD_COLS                                                                                           \
    "id, droid_id, status, attempt, branch, commit_pin, commit_sha, image_id, tag, reason, created_ns,"      \
    " started_ns, finished_ns, next_try_ns"

static void row_build(sqlite3_stmt *st, store_build *b)
{
    memset(b, 0, sizeof(*b));
    b->id = sqlite3_column_int64(st, 0);
    snprintf(b->droid_id, sizeof(b->droid_id), "%s", (const char *)sqlite3_column_text(st, 1));
    b->status = build_status_parse((const char *)sqlite3_column_text(st, 2));
    b->attempt = sqlite3_column_int(st, 3);
    b->branch = sqlutil_col_text(st, 4);
    b->commit_pin = sqlutil_col_text(st, 5);
    b->commit_sha = sqlutil_col_text(st, 6);
    b->image_id = sqlutil_col_text(st, 7);
    b->tag = sqlutil_col_text(st, 8);
    b->reason = sqlutil_col_text(st, 9);
    b->created_ns = sqlite3_column_int64(st, 10);
    b->started_ns = sqlite3_column_int64(st, 11);
    b->finished_ns = sqlite3_column_int64(st, 12);
    b->next_try_ns = sqlite3_column_int64(st, 13);
}

static int build_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)err;
    row_build(st, ud);
    return 1;
}

int store_build_insert(store *s, const char *droid_id, const char *branch, const char *commit_pin,
                       int64_t *id, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(
        l.db, "queue build",
        "INSERT INTO builds (droid_id, status, branch, commit_pin, created_ns)"
        " VALUES (?, 'queued', ?, ?, ?)",
        SQL_ARGS(SQL_TEXT(droid_id), SQL_TEXT(branch), SQL_TEXT(commit_pin), SQL_INT(dms_now_ns())), NULL,
        NULL, err);
    if (r < 0)
        return r;
    if (id)
        *id = sqlite3_last_insert_rowid(l.db);
    return 0;
}

int store_build_update(store *s, const store_build *b, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(
        l.db, "update build",
        "UPDATE builds SET status=?, attempt=?, branch=?, commit_pin=?, commit_sha=?,"
        " image_id=?, tag=?, reason=?, started_ns=?, finished_ns=?, next_try_ns=? WHERE id=?",
        SQL_ARGS(SQL_TEXT(build_status_name(b->status)), SQL_INT(b->attempt), SQL_TEXT(b->branch),
                 SQL_TEXT(b->commit_pin), SQL_TEXT(b->commit_sha), SQL_TEXT(b->image_id), SQL_TEXT(b->tag),
                 SQL_TEXT(b->reason), SQL_INT(b->started_ns), SQL_INT(b->finished_ns),
                 SQL_INT(b->next_try_ns), SQL_INT(b->id)),
        NULL, NULL, err);
    return r < 0 ? r : 0;
}

int store_build_get(store *s, int64_t id, store_build *out, dms_error *err)
{
    LOCK_DB(s, l);
    return sqlutil_query(l.db, "read build", "SELECT " BUILD_COLS " FROM builds WHERE id=?",
                         SQL_ARGS(SQL_INT(id)), build_row, out, err);
}

int store_build_active(store *s, const char *droid_id, store_build *out, dms_error *err)
{
    LOCK_DB(s, l);
    return sqlutil_query(l.db, "active build",
                         "SELECT " BUILD_COLS
                         " FROM builds WHERE droid_id=? AND status IN ('queued','running')"
                         " ORDER BY id DESC LIMIT 1",
                         SQL_ARGS(SQL_TEXT(droid_id)), build_row, out, err);
}

int store_builds_supersede(store *s, const char *droid_id, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "supersede builds",
                          "UPDATE builds SET status='superseded', reason='a newer build was queued',"
                          " finished_ns=? WHERE droid_id=? AND status='queued'",
                          SQL_ARGS(SQL_INT(dms_now_ns()), SQL_TEXT(droid_id)), NULL, NULL, err);
    return r < 0 ? r : 0;
}

int store_builds_cancel_queued(store *s, const char *droid_id, const char *reason, int *n, dms_error *err)
{
    LOCK_DB(s, l);
    int r =
        sqlutil_query(l.db, "cancel builds",
                      "UPDATE builds SET status='cancelled', reason=?, finished_ns=? WHERE droid_id=? AND"
                      " status='queued'",
                      SQL_ARGS(SQL_TEXT(reason), SQL_INT(dms_now_ns()), SQL_TEXT(droid_id)), NULL, NULL, err);
    if (r < 0)
        return r;
    if (n)
        *n = sqlite3_changes(l.db);
    return 0;
}

int store_builds_requeue_running(store *s, int *n, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "requeue builds",
                          "UPDATE builds SET status='queued', next_try_ns=0,"
                          " reason='interrupted by a dmsd restart' WHERE status='running'",
                          SQL_NOARGS, NULL, NULL, err);
    if (r < 0)
        return r;
    *n = sqlite3_changes(l.db);
    return 0;
}

void store_builds_free(store_build *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        store_build_clear(&v[i]);
    free(v);
}

static int build_page_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    store_build *b = sqlutil_vec_push(ud, err);
    if (!b)
        return -DMS_E_NOMEM;
    row_build(st, b);
    return 0;
}

int store_builds_page(store *s, const char *droid_id, int64_t before_id, int limit, store_build **out,
                      size_t *n, dms_error *err)
{
    LOCK_DB(s, l);
    sqlutil_vec v = {.size = sizeof(store_build)};
    int r = sqlutil_query(l.db, "list builds",
                          "SELECT " BUILD_COLS " FROM builds WHERE droid_id=?1 AND (?2 <= 0 OR id < ?2)"
                          " ORDER BY id DESC LIMIT ?3",
                          SQL_ARGS(SQL_TEXT(droid_id), SQL_INT(before_id), SQL_INT(limit > 0 ? limit : -1)),
                          build_page_row, &v, err);
    if (r < 0) {
        store_builds_free(v.items, v.n);
        return r;
    }
    *out = v.items;
    *n = v.n;
    return 0;
}
