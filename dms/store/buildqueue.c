/* buildqueue.c - the build queue as the fair pick reads it (store.h: store_build_candidates).
 *
 * The pick (build/queue.c) needs, for every user with queued builds, enough of them to find one whose droid
 * is not building already: a user holds at most per_user builds at once, so their per_user longest-waiting
 * droids always include a free one while they are under that limit. Two window functions keep the answer that
 * small however many builds one user queues: one build per droid (its longest waiting), then per_user per
 * user. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

/* A retry has waited since it became due, not since it was first queued. */
#define CANDIDATES_SQL                                                                                       \
    "WITH due AS (SELECT b.id, b.droid_id, d.user_id, MAX(b.created_ns, b.next_try_ns) AS since"             \
    "  FROM builds b JOIN droids d ON d.id = b.droid_id WHERE b.status = 'queued' AND b.next_try_ns <= ?1)," \
    " per_droid AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY droid_id ORDER BY since, id) AS rd FROM due)," \
    " per_user AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY since, id) AS ru"              \
    "  FROM per_droid WHERE rd = 1)"                                                                         \
    " SELECT id, droid_id, user_id, since FROM per_user WHERE ru <= ?2 ORDER BY since, id"

static int due_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)err;
    *(int64_t *)ud = sqlite3_column_int64(st, 0); /* NULL reads as 0: none */
    return 1;
}

static int next_due(sqlite3 *db, int64_t now_ns, int64_t *out, dms_error *err)
{
    *out = 0;
    int r = sqlutil_query(db, "next due build",
                          "SELECT MIN(next_try_ns) FROM builds WHERE status = 'queued' AND next_try_ns > ?",
                          SQL_ARGS(SQL_INT(now_ns)), due_row, out, err);
    if (r == 0) /* an aggregate always has its row */
        return sqlutil_error(db, err, "next due build");
    return r < 0 ? r : 0;
}

static int cand_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    store_build_cand *c = sqlutil_vec_push(ud, err);
    if (!c)
        return -DMS_E_NOMEM;
    c->id = sqlite3_column_int64(st, 0);
    snprintf(c->droid_id, sizeof(c->droid_id), "%s", (const char *)sqlite3_column_text(st, 1));
    snprintf(c->user_id, sizeof(c->user_id), "%s", (const char *)sqlite3_column_text(st, 2));
    c->waiting_since_ns = sqlite3_column_int64(st, 3);
    return 0;
}

int store_build_candidates(store *s, int64_t now_ns, int per_user, store_build_cand **out, size_t *n,
                           int64_t *next_due_ns, dms_error *err)
{
    LOCK_DB(s, l);
    sqlutil_vec v = {.size = sizeof(store_build_cand)};
    int r;
    *out = NULL;
    *n = 0;
    if ((r = next_due(l.db, now_ns, next_due_ns, err)) < 0)
        return r;
    if ((r = sqlutil_query(l.db, "queued builds", CANDIDATES_SQL,
                           SQL_ARGS(SQL_INT(now_ns), SQL_INT(per_user)), cand_row, &v, err)) < 0) {
        free(v.items);
        return r;
    }
    *out = v.items;
    *n = v.n;
    return 0;
}
