/* sqlutil.c - the store's query helper (see sqlutil.h). */
#include "sqlutil.h"

#include "../common.h"

static void bind_args(sqlite3_stmt *st, const sqlarg *args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++) {
        if (args[i].type == SQLARG_TEXT)
            sqlutil_bind_text(st, (int)i + 1, args[i].text);
        else
            sqlite3_bind_int64(st, (int)i + 1, args[i].i);
    }
}

int sqlutil_prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql, const sqlarg *args, size_t nargs,
                    dms_error *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
        return sqlutil_error(db, err, "prepare");
    bind_args(*st, args, nargs);
    return 0;
}

int sqlutil_query(sqlite3 *db, const char *what, const char *sql, const sqlarg *args, size_t nargs,
                  sqlutil_row_fn row, void *ud, dms_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r = sqlutil_prepare(db, &st, sql, args, nargs, err);
    if (r < 0)
        return r;
    int rows = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (!row)
            continue; /* a statement without a callback: its rows are not wanted */
        rows++;
        int k = row(st, ud, err);
        if (k < 0)
            return k;
        if (k > 0)
            return rows;
    }
    if (r != SQLITE_DONE)
        return sqlutil_error(db, err, what); /* before the statement is finalized: its error is still there */
    return rows;
}

void *sqlutil_vec_push(sqlutil_vec *v, dms_error *err)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        void *items = realloc(v->items, cap * v->size);
        if (!items) {
            dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
            return NULL;
        }
        v->items = items;
        v->cap = cap;
    }
    void *item = (char *)v->items + v->n++ * v->size;
    memset(item, 0, v->size);
    return item;
}

int sqlutil_strv_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    if (dmsu_strv_push(ud, (const char *)sqlite3_column_text(st, 0)) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}
