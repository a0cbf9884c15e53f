/* store/sqlutil.h - the few SQLite helpers every module that keeps tables in dmsd's store uses (store.c
 * itself, jobs/jobstore.c, follow/follow.c): statements freed at scope exit, the store's lock for a
 * function's body, NULL-aware text binding and reading, and one mapping of SQLite errors to dms errors. */
#ifndef DMSD_STORE_SQLUTIL_H
#define DMSD_STORE_SQLUTIL_H

#include <sqlite3.h>
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

#endif
