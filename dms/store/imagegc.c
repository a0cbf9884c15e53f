/* imagegc.c - the image_gc table: image removals that failed, retried until the engine agrees (see store.h:
 * image garbage collection). */
#include <sqlite3.h>
#include <stdlib.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

int store_gc_add(store *s, const char *image, const char *droid_id, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "queue image removal",
                          "INSERT OR IGNORE INTO image_gc (image, droid_id) VALUES (?,?)",
                          SQL_ARGS(SQL_TEXT(image), SQL_TEXT(droid_id)), NULL, NULL, err);
    return r < 0 ? r : 0;
}

typedef struct due_rows {
    int64_t now_ns;
    char **images;
    int64_t *next_due_ns;
} due_rows;

static int due_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    due_rows *d = ud;
    int64_t due = sqlite3_column_int64(st, 1);
    if (due > d->now_ns) {
        *d->next_due_ns = due;
        return 1;
    }
    if (dmsu_strv_push(&d->images, (const char *)sqlite3_column_text(st, 0)) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    return 0;
}

int store_gc_due(store *s, int64_t now_ns, char ***images, int64_t *next_due_ns, dms_error *err)
{
    LOCK_DB(s, l);
    *next_due_ns = 0;
    due_rows d = {.now_ns = now_ns, .images = calloc(1, sizeof(char *)), .next_due_ns = next_due_ns};
    if (!d.images)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    int r = sqlutil_query(l.db, "list image removals",
                          "SELECT image, next_try_ns FROM image_gc ORDER BY next_try_ns", SQL_NOARGS, due_row,
                          &d, err);
    if (r < 0) {
        dmsu_strv_free(d.images);
        return r;
    }
    *images = d.images;
    return 0;
}

int store_gc_done(store *s, const char *image, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "finish image removal", "DELETE FROM image_gc WHERE image=?",
                          SQL_ARGS(SQL_TEXT(image)), NULL, NULL, err);
    return r < 0 ? r : 0;
}

int store_gc_retry(store *s, const char *image, int64_t base_ms, int64_t max_ms, const char *error,
                   dms_error *err)
{
    LOCK_DB(s, l);
    /* Exponential backoff on the attempt count, capped. */
    int r = sqlutil_query(
        l.db, "reschedule image removal",
        "UPDATE image_gc SET attempts=attempts+1, last_error=?,"
        " next_try_ns=? + 1000000 * MIN(?, ? << MIN(attempts, 20)) WHERE image=?",
        SQL_ARGS(SQL_TEXT(error), SQL_INT(dms_now_ns()), SQL_INT(max_ms), SQL_INT(base_ms), SQL_TEXT(image)),
        NULL, NULL, err);
    return r < 0 ? r : 0;
}
