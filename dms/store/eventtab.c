/* eventtab.c - the events table: a droid's state changes (see store.h: events). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

int store_event_add(store *s, const char *droid_id, int64_t ts_ns, const char *from, const char *to,
                    const char *reason, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "add event",
                          "INSERT INTO events (droid_id, ts_ns, from_state, to_state, reason)"
                          " VALUES (?,?,?,?,?)",
                          SQL_ARGS(SQL_TEXT(droid_id), SQL_INT(ts_ns), SQL_TEXT(from), SQL_TEXT(to),
                                   SQL_TEXT(reason ? reason : "")),
                          NULL, NULL, err);
    return r < 0 ? r : 0;
}

void store_events_free(store_event *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].from);
        free(v[i].to);
        free(v[i].reason);
    }
    free(v);
}

static int event_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    store_event *e = sqlutil_vec_push(ud, err);
    if (!e)
        return -DMS_E_NOMEM;
    e->id = sqlite3_column_int64(st, 0);
    e->ts_ns = sqlite3_column_int64(st, 1);
    e->from = sqlutil_col_text(st, 2);
    e->to = sqlutil_col_text(st, 3);
    e->reason = sqlutil_col_text(st, 4);
    return 0;
}

int store_events_list(store *s, const char *droid_id, int64_t after_id, int limit, store_event **out,
                      size_t *n, dms_error *err)
{
    LOCK_DB(s, l);
    sqlutil_vec v = {.size = sizeof(store_event)};
    int r = sqlutil_query(
        l.db, "list events",
        "SELECT id, ts_ns, from_state, to_state, reason FROM events WHERE droid_id=? AND id>?"
        " ORDER BY id LIMIT ?",
        SQL_ARGS(SQL_TEXT(droid_id), SQL_INT(after_id), SQL_INT(limit > 0 ? limit : -1)), event_row, &v, err);
    if (r < 0) {
        store_events_free(v.items, v.n);
        return r;
    }
    *out = v.items;
    *n = v.n;
    return 0;
}
