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

static int next_due(sqlite3 *db, int64_t now_ns, int64_t *out, dms_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    *out = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT MIN(next_try_ns) FROM builds WHERE status = 'queued' AND next_try_ns > ?",
                           -1, &st, NULL) != SQLITE_OK)
        return sqlutil_error(db, err, "next due build");
    sqlite3_bind_int64(st, 1, now_ns);
    if (sqlite3_step(st) != SQLITE_ROW)
        return sqlutil_error(db, err, "next due build");
    *out = sqlite3_column_int64(st, 0); /* NULL reads as 0: none */
    return 0;
}

static int append(store_build_cand **arr, size_t *n, size_t *cap, sqlite3_stmt *st, dms_error *err)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        store_build_cand *na = realloc(*arr, ncap * sizeof(**arr));
        if (!na)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        *arr = na;
        *cap = ncap;
    }
    store_build_cand *c = &(*arr)[(*n)++];
    memset(c, 0, sizeof(*c));
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
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    store_build_cand *arr = NULL;
    size_t len = 0, cap = 0;
    int r;
    *out = NULL;
    *n = 0;
    if ((r = next_due(l.db, now_ns, next_due_ns, err)) < 0)
        return r;
    if (sqlite3_prepare_v2(l.db, CANDIDATES_SQL, -1, &st, NULL) != SQLITE_OK)
        return sqlutil_error(l.db, err, "queued builds");
    sqlite3_bind_int64(st, 1, now_ns);
    sqlite3_bind_int(st, 2, per_user);
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (append(&arr, &len, &cap, st, err) < 0) {
            free(arr);
            return -DMS_E_NOMEM;
        }
    }
    if (r != SQLITE_DONE) {
        free(arr);
        return sqlutil_error(l.db, err, "queued builds");
    }
    *out = arr;
    *n = len;
    return 0;
}
