/* releasetab.c - the releases table: one per successful build, numbered per droid (see store.h: releases). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "sqlutil.h"
#include "store.h"

void store_release_clear(store_release *r)
{
    free(r->image_id);
    free(r->tag);
    free(r->commit_sha);
    free(r->env_json);
    free(r->resources_json);
    free(r->compose_json);
    memset(r, 0, sizeof(*r));
}

void store_releases_free(store_release *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        store_release_clear(&r[i]);
    free(r);
}

#define RELEASE_COLS                                                                                         \
    "droid_id, seq, build_id, image_id, tag, commit_sha, env, port, created_ns, image_removed, resources, "  \
    "image_bytes, compose"

static void row_release(sqlite3_stmt *st, store_release *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->droid_id, sizeof(r->droid_id), "%s", (const char *)sqlite3_column_text(st, 0));
    r->seq = sqlite3_column_int64(st, 1);
    r->build_id = sqlite3_column_int64(st, 2);
    r->image_id = sqlutil_col_text(st, 3);
    r->tag = sqlutil_col_text(st, 4);
    r->commit_sha = sqlutil_col_text(st, 5);
    r->env_json = sqlutil_col_text(st, 6);
    r->port = sqlite3_column_int(st, 7);
    r->created_ns = sqlite3_column_int64(st, 8);
    r->image_removed = sqlite3_column_int(st, 9) != 0;
    r->resources_json = sqlutil_col_text(st, 10);
    r->image_bytes = sqlite3_column_int64(st, 11);
    r->compose_json = sqlutil_col_text(st, 12);
}

int store_release_insert(store *s, const store_release *rel, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(
        l.db, "add release", "INSERT INTO releases (" RELEASE_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        SQL_ARGS(SQL_TEXT(rel->droid_id), SQL_INT(rel->seq), SQL_INT(rel->build_id), SQL_TEXT(rel->image_id),
                 SQL_TEXT(rel->tag), SQL_TEXT(rel->commit_sha),
                 SQL_TEXT(rel->env_json ? rel->env_json : "{}"), SQL_INT(rel->port), SQL_INT(rel->created_ns),
                 SQL_INT(rel->image_removed), SQL_TEXT(rel->resources_json ? rel->resources_json : "{}"),
                 SQL_INT(rel->image_bytes), SQL_TEXT(rel->compose_json)),
        NULL, NULL, err);
    return r < 0 ? r : 0;
}

static int int64_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)err;
    *(int64_t *)ud = sqlite3_column_int64(st, 0);
    return 1;
}

int store_user_image_bytes(store *s, const char *user_id, int64_t *out, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(
        l.db, "sum the user's image sizes",
        "SELECT COALESCE(SUM(r.image_bytes), 0) FROM releases r JOIN droids d ON d.id = r.droid_id"
        " WHERE d.user_id = ? AND r.image_removed = 0",
        SQL_ARGS(SQL_TEXT(user_id)), int64_row, out, err);
    if (r == 0) /* an aggregate always has its row */
        return sqlutil_error(l.db, err, "sum the user's image sizes");
    return r < 0 ? r : 0;
}

static int release_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)err;
    row_release(st, ud);
    return 1;
}

int store_release_get(store *s, const char *droid_id, int64_t seq, store_release *out, dms_error *err)
{
    LOCK_DB(s, l);
    int r =
        sqlutil_query(l.db, "get release", "SELECT " RELEASE_COLS " FROM releases WHERE droid_id=? AND seq=?",
                      SQL_ARGS(SQL_TEXT(droid_id), SQL_INT(seq)), release_row, out, err);
    if (r == 0)
        return dms_error_set(err, DMS_E_NOT_FOUND, "release", "release %lld does not exist", (long long)seq);
    return r < 0 ? r : 0;
}

int store_releases_list(store *s, const char *droid_id, store_release **out, size_t *n, dms_error *err)
{
    return store_releases_page(s, droid_id, 0, 0, out, n, err);
}

static int release_page_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    store_release *rel = sqlutil_vec_push(ud, err);
    if (!rel)
        return -DMS_E_NOMEM;
    row_release(st, rel);
    return 0;
}

int store_releases_page(store *s, const char *droid_id, int64_t before_seq, int limit, store_release **out,
                        size_t *n, dms_error *err)
{
    LOCK_DB(s, l);
    sqlutil_vec v = {.size = sizeof(store_release)};
    int r = sqlutil_query(l.db, "list releases",
                          "SELECT " RELEASE_COLS " FROM releases WHERE droid_id=?1 AND (?2 <= 0 OR seq < ?2)"
                          " ORDER BY seq DESC LIMIT ?3",
                          SQL_ARGS(SQL_TEXT(droid_id), SQL_INT(before_seq), SQL_INT(limit > 0 ? limit : -1)),
                          release_page_row, &v, err);
    if (r < 0) {
        store_releases_free(v.items, v.n);
        return r;
    }
    *out = v.items;
    *n = v.n;
    return 0;
}

int store_release_mark_removed(store *s, const char *droid_id, int64_t seq, dms_error *err)
{
    LOCK_DB(s, l);
    int r = sqlutil_query(l.db, "mark release image removed",
                          "UPDATE releases SET image_removed=1 WHERE droid_id=? AND seq=?",
                          SQL_ARGS(SQL_TEXT(droid_id), SQL_INT(seq)), NULL, NULL, err);
    return r < 0 ? r : 0;
}
