/* droidtab.c - the droids table (see store.h: droids). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

#define DROID_COLS                                                                                           \
    "id, user_id, name, repo, branch, commit_pin, language, port, env, volumes, state, reason, created_ns,"  \
    " updated_ns, want_running, want_release, config_gen, restart_gen, run_id, run_release, run_config_gen," \
    " run_restart_gen, host_port, run_seq, release_seq, crash_count, start_failures, retry_at_ns, "          \
    "commit_sha,"                                                                                            \
    " deleting, keep_volumes, run_addr, snooze, asleep, woken_ns, build_timeout_s, resources, compose_file," \
    " services"

static int bind_droid(sqlite3_stmt *st, const droid *d, const char *volumes, const char *resources)
{
    int i = 1;
    sqlutil_bind_text(st, i++, d->id);
    sqlutil_bind_text(st, i++, d->user_id);
    sqlutil_bind_text(st, i++, d->name);
    sqlutil_bind_text(st, i++, d->repo);
    sqlutil_bind_text(st, i++, d->branch);
    sqlutil_bind_text(st, i++, d->commit);
    sqlutil_bind_text(st, i++, d->language);
    sqlite3_bind_int(st, i++, d->port);
    sqlutil_bind_text(st, i++, d->env_json ? d->env_json : "{}");
    sqlutil_bind_text(st, i++, volumes);
    sqlutil_bind_text(st, i++, droid_state_name(d->state));
    sqlutil_bind_text(st, i++, d->reason);
    sqlite3_bind_int64(st, i++, d->created_ns);
    sqlite3_bind_int64(st, i++, d->updated_ns);
    sqlite3_bind_int(st, i++, d->want_running);
    sqlite3_bind_int64(st, i++, d->want_release);
    sqlite3_bind_int64(st, i++, d->config_gen);
    sqlite3_bind_int64(st, i++, d->restart_gen);
    sqlutil_bind_text(st, i++, d->run_id);
    sqlite3_bind_int64(st, i++, d->run_release);
    sqlite3_bind_int64(st, i++, d->run_config_gen);
    sqlite3_bind_int64(st, i++, d->run_restart_gen);
    sqlite3_bind_int(st, i++, d->host_port);
    sqlite3_bind_int64(st, i++, d->run_seq);
    sqlite3_bind_int64(st, i++, d->release_seq);
    sqlite3_bind_int(st, i++, d->crash_count);
    sqlite3_bind_int(st, i++, d->start_failures);
    sqlite3_bind_int64(st, i++, d->retry_at_ns);
    sqlutil_bind_text(st, i++, d->commit_sha);
    sqlite3_bind_int(st, i++, d->deleting);
    sqlite3_bind_int(st, i++, d->keep_volumes);
    sqlutil_bind_text(st, i++, d->run_addr);
    sqlutil_bind_text(st, i++, d->snooze_json);
    sqlite3_bind_int(st, i++, d->asleep);
    sqlite3_bind_int64(st, i++, d->woken_ns);
    sqlite3_bind_int(st, i++, d->build_timeout_s);
    sqlutil_bind_text(st, i++, resources);
    sqlutil_bind_text(st, i++, d->compose_file);
    sqlutil_bind_text(st, i++, d->services_json);
    return i;
}

static int name_conflict(sqlite3 *db, const droid *d, dms_error *err)
{
    if (sqlite3_extended_errcode(db) == SQLITE_CONSTRAINT_UNIQUE)
        return dms_error_set(err, DMS_E_CONFLICT, "name", "the name \"%s\" is taken", d->name);
    return sqlutil_error(db, err, "write droid");
}

/* Writes d with sql (an INSERT or UPDATE binding DROID_COLS in order): the name's conflict as its own error.
 */
static int write_droid(sqlite3 *db, const char *sql, const droid *d, dms_error *err)
{
    _cleanup_free_ char *vols = droid_volumes_to_json(d);
    _cleanup_free_ char *res = droid_resources_to_json(&d->resources);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if (!vols || !res)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if ((r = sqlutil_prepare(db, &st, sql, SQL_NOARGS, err)) < 0)
        return r;
    bind_droid(st, d, vols, res);
    if (sqlite3_step(st) != SQLITE_DONE)
        return name_conflict(db, d, err);
    return 0;
}

int store_droid_insert(store *s, const droid *d, dms_error *err)
{
    LOCK_DB(s, l);
    return write_droid(l.db,
                       "INSERT INTO droids (" DROID_COLS
                       ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                       "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                       d, err);
}

int store_droid_update(store *s, const droid *d, dms_error *err)
{
    LOCK_DB(s, l);
    /* Same column order as DROID_COLS; id is bound first and used in WHERE. */
    int r = write_droid(
        l.db,
        "UPDATE droids SET id=?1, user_id=?2, name=?3, repo=?4, branch=?5, commit_pin=?6, language=?7,"
        " port=?8, env=?9, volumes=?10, state=?11, reason=?12, created_ns=?13, updated_ns=?14,"
        " want_running=?15, want_release=?16, config_gen=?17, restart_gen=?18, run_id=?19,"
        " run_release=?20, run_config_gen=?21, run_restart_gen=?22, host_port=?23, run_seq=?24,"
        " release_seq=?25, crash_count=?26, start_failures=?27, retry_at_ns=?28, commit_sha=?29,"
        " deleting=?30, keep_volumes=?31, run_addr=?32, snooze=?33, asleep=?34, woken_ns=?35,"
        " build_timeout_s=?36, resources=?37, compose_file=?38, services=?39 WHERE id=?1",
        d, err);
    if (r < 0)
        return r;
    if (sqlite3_changes(l.db) == 0)
        return dms_error_set(err, DMS_E_NOT_FOUND, NULL, "droid %s is not in the store", d->id);
    return 0;
}

int store_droid_delete(store *s, const char *id, dms_error *err)
{
    LOCK_DB(s, l);
    static const char *const sql[] = {
        "DELETE FROM events WHERE droid_id=?",       "DELETE FROM builds WHERE droid_id=?",
        "DELETE FROM releases WHERE droid_id=?",     "DELETE FROM runs WHERE droid_id=?",
        "DELETE FROM droid_follow WHERE droid_id=?", "DELETE FROM droids WHERE id=?"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(sql); i++) {
        int r = sqlutil_query(l.db, "delete droid", sql[i], SQL_ARGS(SQL_TEXT(id)), NULL, NULL, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static droid *row_droid(sqlite3_stmt *st, dms_error *err)
{
    droid *d = droid_new();
    if (!d)
        return NULL;
    int i = 0;
    snprintf(d->id, sizeof(d->id), "%s", (const char *)sqlite3_column_text(st, i++));
    d->user_id = sqlutil_col_text(st, i++);
    d->name = sqlutil_col_text(st, i++);
    d->repo = sqlutil_col_text(st, i++);
    d->branch = sqlutil_col_text(st, i++);
    d->commit = sqlutil_col_text(st, i++);
    d->language = sqlutil_col_text(st, i++);
    d->port = sqlite3_column_int(st, i++);
    d->env_json = sqlutil_col_text(st, i++);
    const char *vols = (const char *)sqlite3_column_text(st, i++);
    int state = droid_state_from_name((const char *)sqlite3_column_text(st, i++));
    d->state = state < 0 ? DROID_FAILED : (droid_state)state;
    d->reason = sqlutil_col_text(st, i++);
    d->created_ns = sqlite3_column_int64(st, i++);
    d->updated_ns = sqlite3_column_int64(st, i++);
    d->want_running = sqlite3_column_int(st, i++) != 0;
    d->want_release = sqlite3_column_int64(st, i++);
    d->config_gen = sqlite3_column_int64(st, i++);
    d->restart_gen = sqlite3_column_int64(st, i++);
    d->run_id = sqlutil_col_text(st, i++);
    d->run_release = sqlite3_column_int64(st, i++);
    d->run_config_gen = sqlite3_column_int64(st, i++);
    d->run_restart_gen = sqlite3_column_int64(st, i++);
    d->host_port = sqlite3_column_int(st, i++);
    d->run_seq = sqlite3_column_int64(st, i++);
    d->release_seq = sqlite3_column_int64(st, i++);
    d->crash_count = sqlite3_column_int(st, i++);
    d->start_failures = sqlite3_column_int(st, i++);
    d->retry_at_ns = sqlite3_column_int64(st, i++);
    d->commit_sha = sqlutil_col_text(st, i++);
    d->deleting = sqlite3_column_int(st, i++) != 0;
    d->keep_volumes = sqlite3_column_int(st, i++) != 0;
    d->run_addr = sqlutil_col_text(st, i++);
    d->snooze_json = sqlutil_col_text(st, i++);
    d->asleep = sqlite3_column_int(st, i++) != 0;
    d->woken_ns = sqlite3_column_int64(st, i++);
    d->build_timeout_s = sqlite3_column_int(st, i++);
    const char *res = (const char *)sqlite3_column_text(st, i++);
    d->compose_file = sqlutil_col_text(st, i++);
    d->services_json = sqlutil_col_text(st, i++);
    if (droid_volumes_from_json(d, vols, err) < 0 || droid_resources_from_json(res, &d->resources, err) < 0) {
        droid_free(d);
        return NULL;
    }
    return d;
}

static void droids_free(droid **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        droid_free(v[i]);
    free(v);
}

static int droid_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    droid **slot = sqlutil_vec_push(ud, err);
    droid *d = slot ? row_droid(st, err) : NULL;
    if (!d) {
        if (slot)
            ((sqlutil_vec *)ud)->n--; /* the slot holds nothing to free */
        return err && err->code ? -err->code : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    *slot = d;
    return 0;
}

int store_droid_load_all(store *s, droid ***out, size_t *n, dms_error *err)
{
    LOCK_DB(s, l);
    sqlutil_vec v = {.size = sizeof(droid *)};
    int r = sqlutil_query(l.db, "load droids", "SELECT " DROID_COLS " FROM droids ORDER BY created_ns, id",
                          SQL_NOARGS, droid_row, &v, err);
    if (r < 0) {
        droids_free(v.items, v.n);
        return r;
    }
    *out = v.items;
    *n = v.n;
    return 0;
}
