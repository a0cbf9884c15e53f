/* runtab.c - the runs table: every container execution of a droid (see store.h: runs). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

int store_run_insert_service(store *s, const char *exec_id, const char *droid_id, const char *service,
                             int64_t release, int64_t started_ns, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "add run",
                          "INSERT OR REPLACE INTO runs (exec_id, droid_id, release, started_ns, service)"
                          " VALUES (?,?,?,?,?)",
                          SQL_ARGS(SQL_TEXT(exec_id), SQL_TEXT(droid_id), SQL_INT(release),
                                   SQL_INT(started_ns), SQL_TEXT(service)),
                          NULL, NULL, err);
    return r < 0 ? r : 0;
}

int store_run_insert(store *s, const char *exec_id, const char *droid_id, int64_t release, int64_t started_ns,
                     dms_error *err)
{
    return store_run_insert_service(s, exec_id, droid_id, NULL, release, started_ns, err);
}

int store_run_end(store *s, const char *exec_id, int64_t ended_ns, const char *outcome, int exit_code,
                  dms_error *err)
{
    LOCK_DB(s, l);
    int r =
        sqlutil_query(l.db, "end run", "UPDATE runs SET ended_ns=?, outcome=?, exit_code=? WHERE exec_id=?",
                      SQL_ARGS(SQL_INT(ended_ns), SQL_TEXT(outcome), SQL_INT(exit_code), SQL_TEXT(exec_id)),
                      NULL, NULL, err);
    return r < 0 ? r : 0;
}

int store_run_mark_removed(store *s, const char *exec_id, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "mark run removed", "UPDATE runs SET removed=1 WHERE exec_id=?",
                          SQL_ARGS(SQL_TEXT(exec_id)), NULL, NULL, err);
    return r < 0 ? r : 0;
}

static int run_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    store_run *run = sqlutil_vec_push(ud, err);
    if (!run)
        return -DMS_E_NOMEM;
    snprintf(run->exec_id, sizeof(run->exec_id), "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(run->droid_id, sizeof(run->droid_id), "%s", (const char *)sqlite3_column_text(st, 1));
    run->release = sqlite3_column_int64(st, 2);
    run->started_ns = sqlite3_column_int64(st, 3);
    run->ended_ns = sqlite3_column_int64(st, 4);
    const unsigned char *o = sqlite3_column_text(st, 5);
    snprintf(run->outcome, sizeof(run->outcome), "%s", o ? (const char *)o : "");
    run->exit_code = sqlite3_column_int(st, 6);
    run->removed = sqlite3_column_int(st, 7) != 0;
    const unsigned char *svc = sqlite3_column_text(st, 8);
    snprintf(run->service, sizeof(run->service), "%s", svc ? (const char *)svc : "");
    return 0;
}

#define RUN_SELECT                                                                                           \
    "SELECT exec_id, droid_id, release, started_ns, ended_ns, outcome, exit_code, removed, service FROM "    \
    "runs"

static int runs_query(store *s, const char *droid_id, store_run **out, size_t *n, dms_error *err)
{
    LOCK_DB(s, l);
    sqlutil_vec v = {.size = sizeof(store_run)};
    int r = droid_id
                ? sqlutil_query(l.db, "list runs",
                                RUN_SELECT " WHERE removed=0 AND droid_id=? ORDER BY started_ns, exec_id",
                                SQL_ARGS(SQL_TEXT(droid_id)), run_row, &v, err)
                : sqlutil_query(l.db, "list runs", RUN_SELECT " WHERE removed=0 ORDER BY started_ns, exec_id",
                                SQL_NOARGS, run_row, &v, err);
    if (r < 0) {
        free(v.items);
        return r;
    }
    *out = v.items;
    *n = v.n;
    return 0;
}

int store_runs_list(store *s, const char *droid_id, store_run **out, size_t *n, dms_error *err)
{
    return runs_query(s, droid_id, out, n, err);
}

int store_runs_all(store *s, store_run **out, size_t *n, dms_error *err)
{
    return runs_query(s, NULL, out, n, err);
}
