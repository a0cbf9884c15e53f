/* follow.c - the follower thread, the droid_follow table and hook secrets (see follow.h). */
#include "follow.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../build/git.h"
#include "../common.h"
#include "../store/sqlutil.h"

#define SHA256_HEX 64
#define REASON_MAX 512

/* ---- the table ---- */

typedef struct follow_row {
    bool follow;
    char *secret_hash;
    char *hmac_key; /* the secret itself (NULL for one set before schema 6): signed hooks need it */
    char *remote_sha;
    char *queued_sha;
    char *last_error;
    int64_t checked_ns;
} follow_row;

static void row_clear(follow_row *r)
{
    free(r->secret_hash);
    free(r->hmac_key);
    free(r->remote_sha);
    free(r->queued_sha);
    free(r->last_error);
    memset(r, 0, sizeof(*r));
}

/* 1 and *out filled, 0 if the droid has no row. */
static int row_get(store *s, const char *id, follow_row *out, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof(*out));
    if (sqlite3_prepare_v2(
            l.db,
            "SELECT follow, secret_hash, remote_sha, queued_sha, last_error, checked_ns, hmac_key"
            " FROM droid_follow WHERE droid_id=?",
            -1, &st, NULL) != SQLITE_OK)
        return sqlutil_error(l.db, err, "read follow");
    sqlutil_bind_text(st, 1, id);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        return 0;
    if (r != SQLITE_ROW)
        return sqlutil_error(l.db, err, "read follow");
    out->follow = sqlite3_column_int(st, 0) != 0;
    out->secret_hash = sqlutil_col_text(st, 1);
    out->remote_sha = sqlutil_col_text(st, 2);
    out->queued_sha = sqlutil_col_text(st, 3);
    out->last_error = sqlutil_col_text(st, 4);
    out->checked_ns = sqlite3_column_int64(st, 5);
    out->hmac_key = sqlutil_col_text(st, 6);
    return 1;
}

static int row_put(store *s, const char *id, const follow_row *r, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(
            l.db,
            "INSERT INTO droid_follow (droid_id, follow, secret_hash, remote_sha, queued_sha,"
            " last_error, checked_ns, hmac_key) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(droid_id) DO UPDATE SET"
            " follow=excluded.follow, secret_hash=excluded.secret_hash, hmac_key=excluded.hmac_key,"
            " remote_sha=excluded.remote_sha, queued_sha=excluded.queued_sha,"
            " last_error=excluded.last_error, checked_ns=excluded.checked_ns",
            -1, &st, NULL) != SQLITE_OK)
        return sqlutil_error(l.db, err, "write follow");
    sqlutil_bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, r->follow);
    sqlutil_bind_text(st, 3, r->secret_hash);
    sqlutil_bind_text(st, 4, r->remote_sha);
    sqlutil_bind_text(st, 5, r->queued_sha);
    sqlutil_bind_text(st, 6, r->last_error);
    sqlite3_bind_int64(st, 7, r->checked_ns);
    sqlutil_bind_text(st, 8, r->hmac_key);
    if (sqlite3_step(st) != SQLITE_DONE)
        return sqlutil_error(l.db, err, "write follow");
    return 0;
}

/* Ids and last checks of the followed droids. Caller frees *ids (dmsu_strv_free) and *checked. */
static int rows_followed(store *s, char ***ids, int64_t **checked, dms_error *err)
{
    LOCK_DB(s, l);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    *ids = NULL;
    *checked = NULL;
    if (sqlite3_prepare_v2(l.db,
                           "SELECT droid_id, checked_ns FROM droid_follow WHERE follow=1 ORDER BY droid_id",
                           -1, &st, NULL) != SQLITE_OK)
        return sqlutil_error(l.db, err, "list follows");
    size_t n = 0;
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t *nc = realloc(*checked, (n + 1) * sizeof(int64_t));
        if (nc)
            *checked = nc;
        if (!nc || dmsu_strv_push(ids, (const char *)sqlite3_column_text(st, 0)) < 0)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        (*checked)[n++] = sqlite3_column_int64(st, 1);
    }
    return r == SQLITE_DONE ? 0 : sqlutil_error(l.db, err, "list follows");
}

/* ---- secrets ---- */

int follow_hash_secret(const char *s, char *out, dms_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n * 2 != SHA256_HEX)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "sha256 failed");
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[SHA256_HEX] = '\0';
    return 0;
}

/* The follow row of a droid that exists and is not being deleted: 1, 0 (no such droid or row), or < 0. */
static int live_row(store *st, core *c, const char *droid_id, follow_row *row, dms_error *err)
{
    droid *d = core_get_copy(c, droid_id);
    bool alive = d && !d->deleting;
    droid_free(d);
    memset(row, 0, sizeof(*row));
    return alive ? row_get(st, droid_id, row, err) : 0;
}

int follow_verify_secret(store *st, core *c, const char *droid_id, const char *secret, dms_error *err)
{
    follow_row row;
    int r = live_row(st, c, droid_id, &row, err);
    if (r < 0)
        return r;
    bool has = r == 1 && row.secret_hash && strlen(row.secret_hash) == SHA256_HEX;
    char stored[SHA256_HEX + 1] = "";
    if (has)
        memcpy(stored, row.secret_hash, SHA256_HEX + 1);
    row_clear(&row);
    /* Hash first, then compare the hashes in constant time: the time taken says nothing about the secret. */
    char given[SHA256_HEX + 1];
    if ((r = follow_hash_secret(secret ? secret : "", given, err)) < 0)
        return r;
    if (!has)
        return dms_error_set(err, DMS_E_NOT_FOUND, "id", "no droid %.32s with a hook secret", droid_id);
    if (CRYPTO_memcmp(given, stored, SHA256_HEX) != 0)
        return dms_error_set(err, DMS_E_INVALID, HOOK_SECRET_HEADER, "wrong hook secret");
    return 0;
}

/* GitHub and Gitea sign the body with HMAC-SHA256 keyed by the secret: "sha256=<hex>" (X-Hub-Signature-256)
 * or the bare hex (X-Gitea-Signature). */
int follow_verify_signature(store *st, core *c, const char *droid_id, const char *signature, const void *body,
                            size_t len, dms_error *err)
{
    follow_row row;
    int r = live_row(st, c, droid_id, &row, err);
    if (r < 0)
        return r;
    _cleanup_free_ char *key = r == 1 ? row.hmac_key : NULL;
    row.hmac_key = NULL;
    row_clear(&row);
    if (!key)
        return dms_error_set(
            err, DMS_E_NOT_FOUND, "id",
            "no droid %.32s with a hook secret that can check signatures (a secret set before "
            "dmsd could keep it: set it again)",
            droid_id);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)strlen(key), body ? body : (const void *)"", len, md, &n) ||
        n * 2 != SHA256_HEX)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "hmac-sha256 failed");
    static const char hex[] = "0123456789abcdef";
    char want[SHA256_HEX + 1];
    for (unsigned int i = 0; i < n; i++) {
        want[2 * i] = hex[md[i] >> 4];
        want[2 * i + 1] = hex[md[i] & 15];
    }
    want[SHA256_HEX] = '\0';
    const char *given = strncmp(signature, "sha256=", 7) == 0 ? signature + 7 : signature;
    char low[SHA256_HEX + 1] = "";
    if (strlen(given) == SHA256_HEX)
        for (int i = 0; i <= SHA256_HEX; i++)
            low[i] = (char)(given[i] >= 'A' && given[i] <= 'F' ? given[i] - 'A' + 'a' : given[i]);
    if (CRYPTO_memcmp(low, want, SHA256_HEX) != 0)
        return dms_error_set(err, DMS_E_INVALID, HOOK_SIGNATURE_HEADER, "wrong signature");
    return 0;
}

/* ---- the API's side ---- */

int follow_take_opts(json_t *body, follow_opts *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return 0; /* the droid's own parser says what is wrong with it */
    json_t *f = json_object_get(body, "follow");
    if (f && !json_is_null(f)) {
        if (!json_is_boolean(f))
            return dms_error_set(err, DMS_E_INVALID, "follow", "follow must be true or false");
        out->has_follow = true;
        out->follow = json_is_true(f);
    }
    json_t *s = json_object_get(body, "hook_secret");
    if (s && !json_is_null(s)) {
        const char *v = json_string_value(s);
        size_t n = v ? strlen(v) : 0;
        if (!v || n != json_string_length(s) || n < HOOK_SECRET_MIN || n > HOOK_SECRET_MAX)
            return dms_error_set(err, DMS_E_INVALID, "hook_secret",
                                 "hook_secret must be a string of %d-%d characters", HOOK_SECRET_MIN,
                                 HOOK_SECRET_MAX);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)v[i] <= 0x20 || (unsigned char)v[i] >= 0x7f)
                return dms_error_set(
                    err, DMS_E_INVALID, "hook_secret",
                    "hook_secret must be printable ASCII without spaces (it travels in a header)");
        out->has_secret = true;
        snprintf(out->secret, sizeof(out->secret), "%s", v);
    }
    json_object_del(body, "follow");
    json_object_del(body, "hook_secret");
    return 0;
}

typedef struct apply_args {
    const follow_opts *opts;
    char *made;
} apply_args;

static int mut_apply(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    apply_args *aa = ud;
    store *st = core_tx_store(tx);
    follow_row row;
    int r = row_get(st, d->id, &row, err);
    if (r < 0)
        return r;
    bool was = row.follow;
    if (aa->opts->has_follow)
        row.follow = aa->opts->follow;
    char hash[SHA256_HEX + 1];
    char made[HOOK_SECRET_BUF] = "";
    if (!aa->opts->has_secret && row.follow && !row.secret_hash) {
        if ((r = dmsd_random_hex(made, HOOK_SECRET_HEX_BYTES, err)) < 0) {
            row_clear(&row);
            return r;
        }
    }
    const char *plain = aa->opts->has_secret ? aa->opts->secret : made[0] ? made : NULL;
    if (plain) {
        if ((r = follow_hash_secret(plain, hash, err)) < 0 ||
            (r = dmsd_set_str(&row.secret_hash, hash)) < 0 || (r = dmsd_set_str(&row.hmac_key, plain)) < 0) {
            row_clear(&row);
            return r < 0 && err && err->code ? r : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
    }
    if (row.follow && !was)
        dmsd_set_str(&row.queued_sha, NULL); /* a fresh start: the current head counts */
    r = row_put(st, d->id, &row, err);
    char why[160];
    snprintf(why, sizeof(why), "%s%s%s",
             row.follow != was ? (row.follow ? "follows its branch now" : "no longer follows its branch")
                               : "",
             row.follow != was && plain ? "; " : "", plain ? "hook secret set" : "");
    row_clear(&row);
    if (r < 0)
        return r;
    if (why[0] && (r = core_tx_note(tx, d, why, err)) < 0)
        return r;
    snprintf(aa->made, HOOK_SECRET_BUF, "%s", made);
    return 0;
}

int follow_apply(core *c, follower *f, const char *droid_id, const follow_opts *opts, char *made_secret,
                 dms_error *err)
{
    made_secret[0] = '\0';
    if (!opts->has_follow && !opts->has_secret)
        return 0;
    apply_args aa = {.opts = opts, .made = made_secret};
    int r = core_mutate(c, NULL, droid_id, mut_apply, &aa, NULL, err);
    if (r == 0 && f && (opts->follow || opts->has_secret))
        follower_check_now(f, droid_id);
    return r;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

void follow_add_json(store *st, json_t *dj)
{
    const char *id = json_string_value(json_object_get(dj, "id"));
    if (!id)
        return;
    follow_row row;
    if (row_get(st, id, &row, NULL) < 0)
        return;
    char url[96], when[32] = "";
    snprintf(url, sizeof(url), "/droids/%s/hooks/push", id);
    if (row.checked_ns)
        dmsd_format_time(row.checked_ns, when, sizeof(when));
    json_object_set_new(dj, "follow", json_boolean(row.follow));
    json_object_set_new(dj, "hook",
                        json_pack("{s:s, s:b, s:o, s:o, s:o, s:o}", "url", url, "secret_set",
                                  row.secret_hash != NULL, "remote_sha", str_or_null(row.remote_sha),
                                  "queued_sha", str_or_null(row.queued_sha), "checked_at",
                                  when[0] ? json_string(when) : json_null(), "error",
                                  str_or_null(row.last_error)));
    row_clear(&row);
}

/* ---- the follower ---- */

struct follower {
    store *st;
    core *core;
    int64_t interval_ns;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    char **now; /* droids to look at at once (hooks) */
};

typedef struct rebuild_args {
    const char *sha;
    const char *resolved;
    bool queued;
} rebuild_args;

/* Queues a build of the branch's head, as PATCH {"branch"} does; the old release keeps serving. */
static int mut_rebuild(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    rebuild_args *ra = ud;
    store *st = core_tx_store(tx);
    int r;
    if (d->deleting || d->commit)
        return 0;
    if (!d->branch && ra->resolved[0] && dmsd_set_str(&d->branch, ra->resolved) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    follow_row row;
    if ((r = row_get(st, d->id, &row, err)) < 0)
        return r;
    r = dmsd_set_str(&row.queued_sha, ra->sha);
    if (r == 0)
        r = row_put(st, d->id, &row, err);
    row_clear(&row);
    if (r < 0)
        return r;
    /* A queued build clones the branch head when it starts, so it covers this one; so does the first build
     * of a droid that never ran (it is cloning the head about now). A running one may have cloned an older
     * head: a new build follows it. */
    store_build b = {0};
    int found = store_build_active(st, d->id, &b, err);
    bool covered = found == 1 && (b.status == BUILD_QUEUED || !d->commit_sha);
    store_build_clear(&b);
    if (found < 0)
        return found;
    if (covered)
        return 0;
    if ((r = store_builds_supersede(st, d->id, err)) < 0 ||
        (r = store_build_insert(st, d->id, d->branch, NULL, NULL, err)) < 0)
        return r;
    char why[320];
    snprintf(why, sizeof(why), "branch %s moved to %.12s: rebuild queued (follow)",
             d->branch ? d->branch : "?", ra->sha);
    if (d->state == DROID_RUNNING || d->state == DROID_STARTING || d->state == DROID_BUILDING)
        r = core_tx_note(tx, d, why, err);
    else
        r = core_tx_set_state(tx, d, DROID_PENDING, why, err);
    if (r < 0)
        return r;
    core_tx_kick_builder(tx);
    ra->queued = true;
    return 0;
}

static void record(follower *f, const char *id, const char *remote_sha, const char *error)
{
    follow_row row;
    if (row_get(f->st, id, &row, NULL) != 1)
        return;
    if (remote_sha)
        dmsd_set_str(&row.remote_sha, remote_sha);
    dmsd_set_str(&row.last_error, error);
    row.checked_ns = dms_now_ns();
    row_put(f->st, id, &row, NULL);
    row_clear(&row);
}

static void check(follower *f, const char *id, const char *why)
{
    droid *d = core_get_copy(f->core, id);
    if (!d || d->deleting) {
        droid_free(d);
        return;
    }
    char msg[REASON_MAX];
    if (d->commit) {
        snprintf(msg, sizeof(msg), "pinned to commit %.12s: there is no branch head to follow", d->commit);
        record(f, id, NULL, msg);
        droid_free(d);
        return;
    }
    if (!d->want_running) {
        record(f, id, NULL, "stopped: followed again once started");
        droid_free(d);
        return;
    }
    char sha[GIT_SHA_HEX + 1] = "", resolved[GITX_BRANCH_MAX] = "";
    dms_error err = {0};
    if (gitx_branch_head(d->repo, d->branch, sha, resolved, &err) < 0) {
        log_warn("droid=%s op=follow error=\"%s\"", id, err.message);
        record(f, id, NULL, err.message);
        droid_free(d);
        return;
    }
    record(f, id, sha, NULL);
    follow_row row = {0};
    bool queued_already =
        row_get(f->st, id, &row, NULL) == 1 && row.queued_sha && strcmp(row.queued_sha, sha) == 0;
    row_clear(&row);
    bool deployed = d->commit_sha && strcmp(d->commit_sha, sha) == 0;
    log_debug("droid=%s op=follow via=%s head=%.12s deployed=%d queued=%d", id, why, sha, deployed,
              queued_already);
    if (!deployed && !queued_already) {
        rebuild_args ra = {.sha = sha, .resolved = resolved};
        if (core_mutate(f->core, NULL, id, mut_rebuild, &ra, NULL, &err) < 0)
            log_warn("droid=%s op=follow-rebuild error=\"%s\"", id, err.message);
        else if (ra.queued)
            log_info("droid=%s op=follow head=%.12s via=%s note=\"rebuild queued\"", id, sha, why);
    }
    droid_free(d);
}

static void *follower_main(void *arg)
{
    follower *f = arg;
    pthread_mutex_lock(&f->lock);
    while (!f->stop) {
        char **now = f->now;
        f->now = NULL;
        pthread_mutex_unlock(&f->lock);
        for (size_t i = 0; now && now[i]; i++)
            check(f, now[i], "hook");
        dmsu_strv_free(now);
        char **ids = NULL;
        int64_t *checked = NULL;
        int64_t t = dms_now_ns();
        int64_t next = t + f->interval_ns;
        if (rows_followed(f->st, &ids, &checked, NULL) == 0) {
            for (size_t i = 0; ids && ids[i]; i++) {
                int64_t due = checked[i] + f->interval_ns;
                if (due <= t)
                    check(f, ids[i], "poll");
                else if (due < next)
                    next = due;
            }
        }
        dmsu_strv_free(ids);
        free(checked);
        pthread_mutex_lock(&f->lock);
        if (f->stop || f->now)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait_ns = next - dms_now_ns();
        if (wait_ns < NS_PER_MS)
            wait_ns = NS_PER_MS;
        int64_t deadline = (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec + wait_ns;
        ts.tv_sec = deadline / NS_PER_SEC;
        ts.tv_nsec = deadline % NS_PER_SEC;
        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

int follower_start(follower **out, store *st, core *c, int interval_s, dms_error *err)
{
    if (interval_s < FOLLOW_MIN_INTERVAL_S || interval_s > FOLLOW_MAX_INTERVAL_S)
        return dms_error_set(err, DMS_E_INVALID, "DMS_FOLLOW_INTERVAL_S",
                             "the follow interval must be %d-%d s", FOLLOW_MIN_INTERVAL_S,
                             FOLLOW_MAX_INTERVAL_S);
    follower *f = calloc(1, sizeof(*f));
    if (!f)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    f->st = st;
    f->core = c;
    f->interval_ns = (int64_t)interval_s * NS_PER_SEC;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    if (pthread_create(&f->thread, NULL, follower_main, f) != 0) {
        follower_stop(f);
        return dms_error_set(err, DMS_E_IO, NULL, "cannot start the follower");
    }
    f->started = true;
    *out = f;
    return 0;
}

void follower_stop(follower *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    f->stop = true;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    if (f->started)
        pthread_join(f->thread, NULL);
    dmsu_strv_free(f->now);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

void follower_check_now(follower *f, const char *droid_id)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->lock);
    bool there = false;
    for (size_t i = 0; f->now && f->now[i] && !there; i++)
        there = strcmp(f->now[i], droid_id) == 0;
    if (!there)
        dmsu_strv_push(&f->now, droid_id);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}
