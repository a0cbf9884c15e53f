/* store/sqlutil.h - the few SQLite helpers every module that keeps tables in dmsd's store uses (the store's
 * own table files, jobs/jobstore.c, follow/follow.c): one query helper (prepare, bind, step through the rows,
 * finalize: sqlutil_query), statements freed at scope exit, the store's lock for a function's body,
 * NULL-aware text binding and reading, a growing array for a query's rows, and one mapping of SQLite errors
 * to dms errors. */
#ifndef DMSD_STORE_SQLUTIL_H
#define DMSD_STORE_SQLUTIL_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dms/error.h>

#include "store.h"

static inline void sqlutil_finalizep(sqlite3_stmt **st)
{
    sqlite3_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(sqlutil_finalizep)))

/* The store's lock for a function's whole body (recursive: fine inside a transaction). Outside store.c. */
typedef struct locked_db {
    store *s;
    sqlite3 *db;
} locked_db;
static inline void sqlutil_releasep(locked_db *l)
{
    if (l->s)
        store_db_release(l->s);
}
#define LOCK_DB(s, name)                                                                                     \
    __attribute__((cleanup(sqlutil_releasep))) locked_db name = {(s), store_db_acquire(s)}

/* A unique key taken: CONFLICT; busy, I/O, disk full: IO (worth a retry); anything else: INTERNAL. */
static inline int sqlutil_error(sqlite3 *db, dms_error *err, const char *what)
{
    int rc = sqlite3_extended_errcode(db);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return dms_error_set(err, DMS_E_CONFLICT, NULL, "%s: %s", what, sqlite3_errmsg(db));
    int base = rc & 0xff;
    int code = base == SQLITE_BUSY || base == SQLITE_IOERR || base == SQLITE_FULL ? DMS_E_IO : DMS_E_INTERNAL;
    return dms_error_set(err, code, NULL, "store: %s: %s", what, sqlite3_errmsg(db));
}

static inline void sqlutil_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* The column as a malloc'd string, NULL for SQL NULL (or no memory). */
static inline char *sqlutil_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

/* ---- the query helper ---- */

/* One parameter of a statement: text (NULL binds SQL NULL) or an integer (any C integer or bool, as int64).
 */
typedef struct sqlarg {
    enum { SQLARG_TEXT, SQLARG_INT } type;
    const char *text;
    int64_t i;
} sqlarg;
#define SQL_TEXT(v) ((sqlarg){.type = SQLARG_TEXT, .text = (v)})
#define SQL_INT(v)  ((sqlarg){.type = SQLARG_INT, .i = (int64_t)(v)})
/* The args and nargs parameters of sqlutil_query from a list of SQL_TEXT/SQL_INT: ?1, ?2, ... in order. */
#define SQL_ARGS(...) ((const sqlarg[]){__VA_ARGS__}), (sizeof((sqlarg[]){__VA_ARGS__}) / sizeof(sqlarg))
#define SQL_NOARGS    NULL, 0

/* Called with each row: 0 to go on, 1 to stop here (the query succeeds), or -DMS_E_* with err set to fail. */
typedef int (*sqlutil_row_fn)(sqlite3_stmt *st, void *ud, dms_error *err);

/* Prepares sql on db, binds args to ?1..?nargs, steps through every row calling row (NULL: a statement that
 * returns none), and finalizes. Returns the number of rows row was called with (0 for INSERT, UPDATE,
 * DELETE: read sqlite3_changes(db) or sqlite3_last_insert_rowid(db) after), or -DMS_E_*: a failed prepare
 * is "store: prepare: ...", a failed step "store: <what>: ..." with sqlutil_error's codes, a failed row
 * callback what it set. The caller holds the store's lock (LOCK_DB or a transaction). */
int sqlutil_query(sqlite3 *db, const char *what, const char *sql, const sqlarg *args, size_t nargs,
                  sqlutil_row_fn row, void *ud, dms_error *err);
/* Prepares sql and binds args, for a statement the caller steps itself (one whose failure it maps to an
 * error of its own). "store: prepare: ..." on failure. */
int sqlutil_prepare(sqlite3 *db, sqlite3_stmt **st, const char *sql, const sqlarg *args, size_t nargs,
                    dms_error *err);

/* A row callback for a query of one text column: pushes it onto the NULL-terminated array at ud (a char ***,
 * dmsu_strv_push). */
int sqlutil_strv_row(sqlite3_stmt *st, void *ud, dms_error *err);

/* A growing array of fixed-size items, for a query's rows. Zeroed it is empty; the caller frees items. */
typedef struct sqlutil_vec {
    void *items;
    size_t n, cap;
    size_t size; /* of one item */
} sqlutil_vec;
/* A new zeroed item at the end; NULL (and err set) when out of memory. */
void *sqlutil_vec_push(sqlutil_vec *v, dms_error *err);

#endif
