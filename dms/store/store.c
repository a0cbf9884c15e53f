/* store.c - SQLite persistence for dmsd (see store.h). */
#include "store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common.h"
#include "sqlutil.h"

/* A writer waits this long for the file lock (another dmsd process, or a checkpoint) before failing. */
#define STORE_BUSY_TIMEOUT_MS 5000
/* Page cache cap in KiB (negative cache_size = KiB): dmsd's whole database stays small; keep RSS small too.
 */
#define STORE_CACHE_KIB 512

struct store {
    sqlite3 *db;
    pthread_mutex_t lock; /* recursive: held across a transaction by its thread */
    int schema_version;
};

/* ---- migrations: append only; a released entry is never edited ---- */
static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE droids ("
    "  id TEXT PRIMARY KEY, user_id TEXT NOT NULL, name TEXT NOT NULL, repo TEXT NOT NULL, branch TEXT,"
    "  commit_pin TEXT, language TEXT, port INTEGER NOT NULL, env TEXT NOT NULL, volumes TEXT NOT NULL,"
    "  state TEXT NOT NULL, reason TEXT, created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,"
    "  want_running INTEGER NOT NULL, want_release INTEGER NOT NULL, config_gen INTEGER NOT NULL,"
    "  restart_gen INTEGER NOT NULL, run_id TEXT, run_release INTEGER NOT NULL, run_config_gen INTEGER NOT "
    "NULL,"
    "  run_restart_gen INTEGER NOT NULL, host_port INTEGER NOT NULL, run_seq INTEGER NOT NULL,"
    "  release_seq INTEGER NOT NULL, crash_count INTEGER NOT NULL, start_failures INTEGER NOT NULL,"
    "  retry_at_ns INTEGER NOT NULL, commit_sha TEXT, deleting INTEGER NOT NULL, keep_volumes INTEGER NOT "
    "NULL);"
    "CREATE UNIQUE INDEX droids_name ON droids(name);"
    "CREATE INDEX droids_user ON droids(user_id);"
    "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, droid_id TEXT NOT NULL, ts_ns INTEGER NOT "
    "NULL,"
    "  from_state TEXT, to_state TEXT NOT NULL, reason TEXT NOT NULL);"
    "CREATE INDEX events_droid ON events(droid_id, id);"
    "CREATE TABLE builds (id INTEGER PRIMARY KEY AUTOINCREMENT, droid_id TEXT NOT NULL, status TEXT NOT NULL,"
    "  attempt INTEGER NOT NULL DEFAULT 0, branch TEXT, commit_pin TEXT, commit_sha TEXT, image_id TEXT,"
    "  tag TEXT, reason TEXT, created_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL DEFAULT 0,"
    "  finished_ns INTEGER NOT NULL DEFAULT 0, next_try_ns INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX builds_droid ON builds(droid_id, id);"
    "CREATE INDEX builds_status ON builds(status, next_try_ns, id);"
    "CREATE TABLE releases (droid_id TEXT NOT NULL, seq INTEGER NOT NULL, build_id INTEGER,"
    "  image_id TEXT NOT NULL, tag TEXT NOT NULL, commit_sha TEXT, env TEXT NOT NULL, port INTEGER NOT NULL,"
    "  created_ns INTEGER NOT NULL, image_removed INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (droid_id, seq));"
    "CREATE TABLE runs (exec_id TEXT PRIMARY KEY, droid_id TEXT NOT NULL, release INTEGER NOT NULL,"
    "  started_ns INTEGER NOT NULL, ended_ns INTEGER NOT NULL DEFAULT 0, outcome TEXT,"
    "  exit_code INTEGER NOT NULL DEFAULT -1, removed INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX runs_droid ON runs(droid_id, started_ns);",
    /* 2: images whose removal failed (engine busy or down) and is retried until it succeeds */
    "CREATE TABLE image_gc (image TEXT PRIMARY KEY, droid_id TEXT NOT NULL, attempts INTEGER NOT NULL "
    "DEFAULT 0,"
    "  next_try_ns INTEGER NOT NULL DEFAULT 0, last_error TEXT);",
    /* 3: build jobs (jobs/): the koalaCI-style one-shot builds, their queue and their logs */
    "CREATE TABLE jobs (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, project_id TEXT NOT NULL,"
    "  deployment_id TEXT NOT NULL, branch TEXT NOT NULL, repo_url TEXT NOT NULL, build_command TEXT NOT "
    "NULL,"
    "  package_manager TEXT NOT NULL, dist_dir TEXT NOT NULL, status TEXT NOT NULL, step TEXT, reason TEXT,"
    "  cancel_requested INTEGER NOT NULL DEFAULT 0, attempt INTEGER NOT NULL DEFAULT 0, commit_sha TEXT,"
    "  cache_volume TEXT, cache_warm INTEGER NOT NULL DEFAULT 0, artifact_bytes INTEGER NOT NULL DEFAULT -1,"
    "  install_ms INTEGER NOT NULL DEFAULT -1, build_ms INTEGER NOT NULL DEFAULT -1, exit_code INTEGER,"
    "  created_ns INTEGER NOT NULL, started_ns INTEGER NOT NULL DEFAULT 0,"
    "  finished_ns INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX jobs_user ON jobs(user_id, created_ns);"
    "CREATE INDEX jobs_queue ON jobs(status, created_ns);"
    "CREATE INDEX jobs_deployment ON jobs(user_id, deployment_id, created_ns);"
    "CREATE TABLE job_logs (job_id TEXT NOT NULL, seq INTEGER NOT NULL, ts_ns INTEGER NOT NULL,"
    "  data BLOB NOT NULL, PRIMARY KEY (job_id, seq));",
    /* 4: droids that follow their branch (follow/): the hook secret's hash and what the follower saw */
    "CREATE TABLE droid_follow (droid_id TEXT PRIMARY KEY, follow INTEGER NOT NULL DEFAULT 0,"
    "  secret_hash TEXT, remote_sha TEXT, queued_sha TEXT, checked_ns INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT);",
    /* 5: routing and snooze: the address the router dials, the snooze schedule, asleep, the last wake */
    "ALTER TABLE droids ADD COLUMN run_addr TEXT;"
    "ALTER TABLE droids ADD COLUMN snooze TEXT;"
    "ALTER TABLE droids ADD COLUMN asleep INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE droids ADD COLUMN woken_ns INTEGER NOT NULL DEFAULT 0;",
    /* 6: the hook secret itself, as the HMAC key of signed hooks (GitHub, Gitea); set with every new secret
     */
    "ALTER TABLE droid_follow ADD COLUMN hmac_key TEXT;",
    /* 7: a droid's own build time limit (0: the operator's default) */
    "ALTER TABLE droids ADD COLUMN build_timeout_s INTEGER NOT NULL DEFAULT 0;",
    /* 8: the container limits a droid asks for (kept in its releases, like env), and the size of each
     * release's image as the engine reported it after the build (the user's disk quota) */
    "ALTER TABLE droids ADD COLUMN resources TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE releases ADD COLUMN resources TEXT NOT NULL DEFAULT '{}';"
    "ALTER TABLE releases ADD COLUMN image_bytes INTEGER NOT NULL DEFAULT 0;",
};

static int db_error(store *s, dms_error *err, const char *what)
{
    return sqlutil_error(s->db, err, what);
}

static void lock(store *s)
{
    pthread_mutex_lock(&s->lock);
}
static void unlock(store *s)
{
    pthread_mutex_unlock(&s->lock);
}
/* Every public function takes the (recursive) lock for its whole body. */
static void unlockp(store **s)
{
    if (*s)
        unlock(*s);
}
#define LOCKED(s)                                                                                            \
    lock(s);                                                                                                 \
    __attribute__((cleanup(unlockp))) store *locked_ = (s)

static int prepare(store *s, sqlite3_stmt **st, const char *sql, dms_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK)
        return db_error(s, err, "prepare");
    return 0;
}

static int exec_sql(store *s, const char *sql, dms_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        int r = dms_error_set(err, DMS_E_INTERNAL, NULL, "store: %s", msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return r;
    }
    return 0;
}

/* ---- open, migrations ---- */

static int migrate(store *s, dms_error *err)
{
    int r;
    if ((r = exec_sql(s,
                      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                      " applied_ns INTEGER NOT NULL)",
                      err)) < 0)
        return r;
    _cleanup_stmt_ sqlite3_stmt *q = NULL;
    if ((r = prepare(s, &q, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", err)) < 0)
        return r;
    if (sqlite3_step(q) != SQLITE_ROW)
        return db_error(s, err, "read schema version");
    int have = sqlite3_column_int(q, 0);
    int want = (int)DMS_ARRAY_SIZE(migrations);
    if (have > want)
        return dms_error_set(err, DMS_E_CONFLICT, NULL,
                             "store: the database has schema version %d, newer than this dmsd knows (%d)",
                             have, want);
    for (int v = have + 1; v <= want; v++) {
        if ((r = store_begin(s, err)) < 0)
            return r;
        char rec[128];
        snprintf(rec, sizeof(rec), "INSERT INTO schema_migrations(version, applied_ns) VALUES (%d, %lld)", v,
                 (long long)dmsd_now_ns());
        if ((r = exec_sql(s, migrations[v - 1], err)) < 0 || (r = exec_sql(s, rec, err)) < 0) {
            store_rollback(s);
            return dms_error_prefix(err, "migration %d: ", v);
        }
        if ((r = store_commit(s, err)) < 0)
            return r;
        log_info("component=store op=migrate version=%d", v);
    }
    s->schema_version = want;
    return 0;
}

int store_open(store **out, const char *path, dms_error *err)
{
    store *s = calloc(1, sizeof(*s));
    if (!s)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->lock, &a);
    pthread_mutexattr_destroy(&a);
    /* The store holds hook secrets (the HMAC keys of signed hooks): readable by dmsd's user only. SQLite
     * gives its -wal and -shm files the database file's mode. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        fchmod(fd, 0600);
        close(fd);
    }
    /* NOMUTEX: our own lock serialises every use of the one connection. */
    int rc =
        sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int r = dms_error_set(err, DMS_E_IO, NULL, "store: open %s: %s", path,
                              s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        store_close(s);
        return r;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    char pragmas[256];
    /* WAL: readers never block the writer; synchronous=NORMAL is durable across a dmsd crash (kill -9), and
     * only a power loss may lose the last transactions. foreign_keys is not used: deletes are explicit. */
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-%d; PRAGMA "
             "temp_store=MEMORY;",
             STORE_CACHE_KIB);
    int r;
    if ((r = exec_sql(s, pragmas, err)) < 0 || (r = migrate(s, err)) < 0) {
        dms_error_prefix(err, "open %s: ", path);
        store_close(s);
        return r;
    }
    *out = s;
    return 0;
}

void store_close(store *s)
{
    if (!s)
        return;
    if (s->db)
        sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int store_schema_version(store *s)
{
    return s->schema_version;
}

int store_begin(store *s, dms_error *err)
{
    lock(s);
    int r = exec_sql(s, "BEGIN IMMEDIATE", err);
    if (r < 0)
        unlock(s);
    return r;
}

int store_commit(store *s, dms_error *err)
{
    int r = exec_sql(s, "COMMIT", err);
    if (r < 0)
        exec_sql(s, "ROLLBACK", NULL);
    unlock(s);
    return r;
}

void store_rollback(store *s)
{
    exec_sql(s, "ROLLBACK", NULL);
    unlock(s);
}

sqlite3 *store_db_acquire(store *s)
{
    lock(s);
    return s->db;
}

void store_db_release(store *s)
{
    unlock(s);
}

/* ---- droids ---- */

#define DROID_COLS                                                                                           \
    "id, user_id, name, repo, branch, commit_pin, language, port, env, volumes, state, reason, created_ns,"  \
    " updated_ns, want_running, want_release, config_gen, restart_gen, run_id, run_release, run_config_gen," \
    " run_restart_gen, host_port, run_seq, release_seq, crash_count, start_failures, retry_at_ns, "          \
    "commit_sha,"                                                                                            \
    " deleting, keep_volumes, run_addr, snooze, asleep, woken_ns, build_timeout_s, resources"

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
    return i;
}

static int name_conflict(store *s, const droid *d, dms_error *err)
{
    if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
        return dms_error_set(err, DMS_E_CONFLICT, "name", "the name \"%s\" is taken", d->name);
    return db_error(s, err, "write droid");
}

int store_droid_insert(store *s, const droid *d, dms_error *err)
{
    LOCKED(s);
    _cleanup_free_ char *vols = droid_volumes_to_json(d);
    _cleanup_free_ char *res = droid_resources_to_json(&d->resources);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if (!vols || !res)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if ((r = prepare(s, &st,
                     "INSERT INTO droids (" DROID_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                     "?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     err)) < 0)
        return r;
    bind_droid(st, d, vols, res);
    if (sqlite3_step(st) != SQLITE_DONE)
        return name_conflict(s, d, err);
    return 0;
}

int store_droid_update(store *s, const droid *d, dms_error *err)
{
    LOCKED(s);
    _cleanup_free_ char *vols = droid_volumes_to_json(d);
    _cleanup_free_ char *res = droid_resources_to_json(&d->resources);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if (!vols || !res)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    /* Same column order as DROID_COLS; id is bound first and used in WHERE. */
    if ((r = prepare(
             s, &st,
             "UPDATE droids SET id=?1, user_id=?2, name=?3, repo=?4, branch=?5, commit_pin=?6, language=?7,"
             " port=?8, env=?9, volumes=?10, state=?11, reason=?12, created_ns=?13, updated_ns=?14,"
             " want_running=?15, want_release=?16, config_gen=?17, restart_gen=?18, run_id=?19,"
             " run_release=?20, run_config_gen=?21, run_restart_gen=?22, host_port=?23, run_seq=?24,"
             " release_seq=?25, crash_count=?26, start_failures=?27, retry_at_ns=?28, commit_sha=?29,"
             " deleting=?30, keep_volumes=?31, run_addr=?32, snooze=?33, asleep=?34, woken_ns=?35,"
             " build_timeout_s=?36, resources=?37 WHERE id=?1",
             err)) < 0)
        return r;
    bind_droid(st, d, vols, res);
    if (sqlite3_step(st) != SQLITE_DONE)
        return name_conflict(s, d, err);
    if (sqlite3_changes(s->db) == 0)
        return dms_error_set(err, DMS_E_NOT_FOUND, NULL, "droid %s is not in the store", d->id);
    return 0;
}

int store_droid_delete(store *s, const char *id, dms_error *err)
{
    LOCKED(s);
    static const char *const sql[] = {"DELETE FROM events WHERE droid_id=?",
                                      "DELETE FROM builds WHERE droid_id=?",
                                      "DELETE FROM releases WHERE droid_id=?",
                                      "DELETE FROM runs WHERE droid_id=?",
                                      "DELETE FROM droid_follow WHERE droid_id=?",
                                      "DELETE FROM droids WHERE id=?"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(sql); i++) {
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r = prepare(s, &st, sql[i], err);
        if (r < 0)
            return r;
        sqlutil_bind_text(st, 1, id);
        if (sqlite3_step(st) != SQLITE_DONE)
            return db_error(s, err, "delete droid");
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
    if (droid_volumes_from_json(d, vols, err) < 0 || droid_resources_from_json(res, &d->resources, err) < 0) {
        droid_free(d);
        return NULL;
    }
    return d;
}

int store_droid_load_all(store *s, droid ***out, size_t *n, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "SELECT " DROID_COLS " FROM droids ORDER BY created_ns, id", err)) < 0)
        return r;
    droid **v = NULL;
    size_t len = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        droid **nv = realloc(v, (len + 1) * sizeof(*v));
        droid *d = nv ? row_droid(st, err) : NULL;
        if (nv)
            v = nv;
        if (!d) {
            for (size_t i = 0; i < len; i++)
                droid_free(v[i]);
            free(v);
            return err && err->code ? -err->code : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
        v[len++] = d;
    }
    if (r != SQLITE_DONE) {
        for (size_t i = 0; i < len; i++)
            droid_free(v[i]);
        free(v);
        return db_error(s, err, "load droids");
    }
    *out = v;
    *n = len;
    return 0;
}

/* ---- events ---- */

int store_event_add(store *s, const char *droid_id, int64_t ts_ns, const char *from, const char *to,
                    const char *reason, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "INSERT INTO events (droid_id, ts_ns, from_state, to_state, reason)"
                     " VALUES (?,?,?,?,?)",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlite3_bind_int64(st, 2, ts_ns);
    sqlutil_bind_text(st, 3, from);
    sqlutil_bind_text(st, 4, to);
    sqlutil_bind_text(st, 5, reason ? reason : "");
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "add event");
    return 0;
}

static json_t *text_or_null(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? json_string((const char *)t) : json_null();
}

int store_events_json(store *s, const char *droid_id, int64_t after_id, int limit, json_t **out,
                      dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "SELECT id, ts_ns, from_state, to_state, reason FROM events WHERE droid_id=? AND id>?"
                     " ORDER BY id LIMIT ?",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlite3_bind_int64(st, 2, after_id);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    json_t *a = json_array();
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        char when[32];
        dmsd_format_time(sqlite3_column_int64(st, 1), when, sizeof(when));
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:I, s:o, s:o, s:o}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                         "time", when, "ts_ns", (json_int_t)sqlite3_column_int64(st, 1), "from",
                         text_or_null(st, 2), "to", text_or_null(st, 3), "reason", text_or_null(st, 4)));
    }
    if (r != SQLITE_DONE) {
        json_decref(a);
        return db_error(s, err, "list events");
    }
    *out = a;
    return 0;
}

/* ---- builds ---- */

static const char *const build_names[] = {"queued", "running",   "succeeded",
                                          "failed", "cancelled", "superseded"};

const char *build_status_name(build_status st)
{
    return (unsigned)st < DMS_ARRAY_SIZE(build_names) ? build_names[st] : "unknown";
}

static build_status build_status_parse(const char *s)
{
    for (size_t i = 0; s && i < DMS_ARRAY_SIZE(build_names); i++)
        if (strcmp(build_names[i], s) == 0)
            return (build_status)i;
    return BUILD_FAILED;
}

void store_build_clear(store_build *b)
{
    free(b->branch);
    free(b->commit_pin);
    free(b->commit_sha);
    free(b->image_id);
    free(b->tag);
    free(b->reason);
    memset(b, 0, sizeof(*b));
}

#define BUILD_COLS                                                                                           \
    "id, droid_id, status, attempt, branch, commit_pin, commit_sha, image_id, tag, reason, created_ns,"      \
    " started_ns, finished_ns, next_try_ns"

static void row_build(sqlite3_stmt *st, store_build *b)
{
    memset(b, 0, sizeof(*b));
    b->id = sqlite3_column_int64(st, 0);
    snprintf(b->droid_id, sizeof(b->droid_id), "%s", (const char *)sqlite3_column_text(st, 1));
    b->status = build_status_parse((const char *)sqlite3_column_text(st, 2));
    b->attempt = sqlite3_column_int(st, 3);
    b->branch = sqlutil_col_text(st, 4);
    b->commit_pin = sqlutil_col_text(st, 5);
    b->commit_sha = sqlutil_col_text(st, 6);
    b->image_id = sqlutil_col_text(st, 7);
    b->tag = sqlutil_col_text(st, 8);
    b->reason = sqlutil_col_text(st, 9);
    b->created_ns = sqlite3_column_int64(st, 10);
    b->started_ns = sqlite3_column_int64(st, 11);
    b->finished_ns = sqlite3_column_int64(st, 12);
    b->next_try_ns = sqlite3_column_int64(st, 13);
}

int store_build_insert(store *s, const char *droid_id, const char *branch, const char *commit_pin,
                       int64_t *id, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "INSERT INTO builds (droid_id, status, branch, commit_pin, created_ns)"
                     " VALUES (?, 'queued', ?, ?, ?)",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlutil_bind_text(st, 2, branch);
    sqlutil_bind_text(st, 3, commit_pin);
    sqlite3_bind_int64(st, 4, dmsd_now_ns());
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "queue build");
    if (id)
        *id = sqlite3_last_insert_rowid(s->db);
    return 0;
}

int store_build_update(store *s, const store_build *b, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "UPDATE builds SET status=?, attempt=?, branch=?, commit_pin=?, commit_sha=?,"
                     " image_id=?, tag=?, reason=?, started_ns=?, finished_ns=?, next_try_ns=? WHERE id=?",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, build_status_name(b->status));
    sqlite3_bind_int(st, 2, b->attempt);
    sqlutil_bind_text(st, 3, b->branch);
    sqlutil_bind_text(st, 4, b->commit_pin);
    sqlutil_bind_text(st, 5, b->commit_sha);
    sqlutil_bind_text(st, 6, b->image_id);
    sqlutil_bind_text(st, 7, b->tag);
    sqlutil_bind_text(st, 8, b->reason);
    sqlite3_bind_int64(st, 9, b->started_ns);
    sqlite3_bind_int64(st, 10, b->finished_ns);
    sqlite3_bind_int64(st, 11, b->next_try_ns);
    sqlite3_bind_int64(st, 12, b->id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "update build");
    return 0;
}

int store_build_get(store *s, int64_t id, store_build *out, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "SELECT " BUILD_COLS " FROM builds WHERE id=?", err)) < 0)
        return r;
    sqlite3_bind_int64(st, 1, id);
    r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        return 0;
    if (r != SQLITE_ROW)
        return db_error(s, err, "read build");
    row_build(st, out);
    return 1;
}

int store_build_active(store *s, const char *droid_id, store_build *out, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "SELECT " BUILD_COLS " FROM builds WHERE droid_id=? AND status IN ('queued','running')"
                     " ORDER BY id DESC LIMIT 1",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        return 0;
    if (r != SQLITE_ROW)
        return db_error(s, err, "active build");
    row_build(st, out);
    return 1;
}

int store_builds_supersede(store *s, const char *droid_id, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "UPDATE builds SET status='superseded', reason='a newer build was queued',"
                     " finished_ns=? WHERE droid_id=? AND status='queued'",
                     err)) < 0)
        return r;
    sqlite3_bind_int64(st, 1, dmsd_now_ns());
    sqlutil_bind_text(st, 2, droid_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "supersede builds");
    return 0;
}

int store_builds_cancel_queued(store *s, const char *droid_id, const char *reason, int *n, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "UPDATE builds SET status='cancelled', reason=?, finished_ns=? WHERE droid_id=? AND"
                     " status='queued'",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, reason);
    sqlite3_bind_int64(st, 2, dmsd_now_ns());
    sqlutil_bind_text(st, 3, droid_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "cancel builds");
    if (n)
        *n = sqlite3_changes(s->db);
    return 0;
}

int store_builds_requeue_running(store *s, int *n, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "UPDATE builds SET status='queued', next_try_ns=0,"
                     " reason='interrupted by a dmsd restart' WHERE status='running'",
                     err)) < 0)
        return r;
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "requeue builds");
    *n = sqlite3_changes(s->db);
    return 0;
}

static json_t *time_or_null(int64_t ns)
{
    if (!ns)
        return json_null();
    char when[32];
    dmsd_format_time(ns, when, sizeof(when));
    return json_string(when);
}

int store_builds_json(store *s, const char *droid_id, int64_t before_id, int limit, json_t **out,
                      dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "SELECT " BUILD_COLS " FROM builds WHERE droid_id=?1 AND (?2 <= 0 OR id < ?2)"
                     " ORDER BY id DESC LIMIT ?3",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlite3_bind_int64(st, 2, before_id);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    json_t *a = json_array();
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_build b;
        row_build(st, &b);
        json_array_append_new(
            a, json_pack("{s:I, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)b.id,
                         "status", build_status_name(b.status), "attempt", b.attempt, "branch",
                         b.branch ? json_string(b.branch) : json_null(), "commit",
                         b.commit_pin ? json_string(b.commit_pin) : json_null(), "commit_sha",
                         b.commit_sha ? json_string(b.commit_sha) : json_null(), "image_id",
                         b.image_id ? json_string(b.image_id) : json_null(), "reason",
                         b.reason ? json_string(b.reason) : json_null(), "created_at",
                         time_or_null(b.created_ns), "started_at", time_or_null(b.started_ns), "finished_at",
                         time_or_null(b.finished_ns)));
        store_build_clear(&b);
    }
    if (r != SQLITE_DONE) {
        json_decref(a);
        return db_error(s, err, "list builds");
    }
    *out = a;
    return 0;
}

/* ---- releases ---- */

void store_release_clear(store_release *r)
{
    free(r->image_id);
    free(r->tag);
    free(r->commit_sha);
    free(r->env_json);
    free(r->resources_json);
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
    "image_bytes"

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
}

int store_release_insert(store *s, const store_release *rel, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "INSERT INTO releases (" RELEASE_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, rel->droid_id);
    sqlite3_bind_int64(st, 2, rel->seq);
    sqlite3_bind_int64(st, 3, rel->build_id);
    sqlutil_bind_text(st, 4, rel->image_id);
    sqlutil_bind_text(st, 5, rel->tag);
    sqlutil_bind_text(st, 6, rel->commit_sha);
    sqlutil_bind_text(st, 7, rel->env_json ? rel->env_json : "{}");
    sqlite3_bind_int(st, 8, rel->port);
    sqlite3_bind_int64(st, 9, rel->created_ns);
    sqlite3_bind_int(st, 10, rel->image_removed);
    sqlutil_bind_text(st, 11, rel->resources_json ? rel->resources_json : "{}");
    sqlite3_bind_int64(st, 12, rel->image_bytes);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "add release");
    return 0;
}

int store_user_image_bytes(store *s, const char *user_id, int64_t *out, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(
             s, &st,
             "SELECT COALESCE(SUM(r.image_bytes), 0) FROM releases r JOIN droids d ON d.id = r.droid_id"
             " WHERE d.user_id = ? AND r.image_removed = 0",
             err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, user_id);
    if (sqlite3_step(st) != SQLITE_ROW)
        return db_error(s, err, "sum the user's image sizes");
    *out = sqlite3_column_int64(st, 0);
    return 0;
}

int store_release_get(store *s, const char *droid_id, int64_t seq, store_release *out, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "SELECT " RELEASE_COLS " FROM releases WHERE droid_id=? AND seq=?", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlite3_bind_int64(st, 2, seq);
    r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        return dms_error_set(err, DMS_E_NOT_FOUND, "release", "release %lld does not exist", (long long)seq);
    if (r != SQLITE_ROW)
        return db_error(s, err, "get release");
    row_release(st, out);
    return 0;
}

int store_releases_list(store *s, const char *droid_id, store_release **out, size_t *n, dms_error *err)
{
    return store_releases_page(s, droid_id, 0, 0, out, n, err);
}

int store_releases_page(store *s, const char *droid_id, int64_t before_seq, int limit, store_release **out,
                        size_t *n, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "SELECT " RELEASE_COLS " FROM releases WHERE droid_id=?1 AND (?2 <= 0 OR seq < ?2)"
                     " ORDER BY seq DESC LIMIT ?3",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlite3_bind_int64(st, 2, before_seq);
    sqlite3_bind_int(st, 3, limit > 0 ? limit : -1);
    store_release *v = NULL;
    size_t len = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_release *nv = realloc(v, (len + 1) * sizeof(*v));
        if (!nv) {
            store_releases_free(v, len);
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
        v = nv;
        row_release(st, &v[len++]);
    }
    if (r != SQLITE_DONE) {
        store_releases_free(v, len);
        return db_error(s, err, "list releases");
    }
    *out = v;
    *n = len;
    return 0;
}

int store_release_mark_removed(store *s, const char *droid_id, int64_t seq, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "UPDATE releases SET image_removed=1 WHERE droid_id=? AND seq=?", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, droid_id);
    sqlite3_bind_int64(st, 2, seq);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "mark release image removed");
    return 0;
}

json_t *store_release_to_json(const store_release *r, int64_t current_seq)
{
    json_t *env = json_loads(r->env_json ? r->env_json : "{}", 0, NULL);
    json_t *res = json_loads(r->resources_json ? r->resources_json : "{}", 0, NULL);
    return json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:i, s:o, s:b, s:b, s:o, s:I}", "release",
                     (json_int_t)r->seq, "build", (json_int_t)r->build_id, "image_id",
                     r->image_id ? r->image_id : "", "tag", r->tag ? r->tag : "", "commit_sha",
                     r->commit_sha ? json_string(r->commit_sha) : json_null(), "env",
                     env ? env : json_object(), "port", r->port, "created_at", time_or_null(r->created_ns),
                     "image_available", !r->image_removed, "current", r->seq == current_seq, "resources",
                     res ? res : json_object(), "image_bytes", (json_int_t)r->image_bytes);
}

/* ---- runs ---- */

int store_run_insert(store *s, const char *exec_id, const char *droid_id, int64_t release, int64_t started_ns,
                     dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st,
                     "INSERT OR REPLACE INTO runs (exec_id, droid_id, release, started_ns) VALUES (?,?,?,?)",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, exec_id);
    sqlutil_bind_text(st, 2, droid_id);
    sqlite3_bind_int64(st, 3, release);
    sqlite3_bind_int64(st, 4, started_ns);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "add run");
    return 0;
}

int store_run_end(store *s, const char *exec_id, int64_t ended_ns, const char *outcome, int exit_code,
                  dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "UPDATE runs SET ended_ns=?, outcome=?, exit_code=? WHERE exec_id=?", err)) < 0)
        return r;
    sqlite3_bind_int64(st, 1, ended_ns);
    sqlutil_bind_text(st, 2, outcome);
    sqlite3_bind_int(st, 3, exit_code);
    sqlutil_bind_text(st, 4, exec_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "end run");
    return 0;
}

int store_run_mark_removed(store *s, const char *exec_id, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "UPDATE runs SET removed=1 WHERE exec_id=?", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, exec_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "mark run removed");
    return 0;
}

static int runs_query(store *s, const char *droid_id, store_run **out, size_t *n, dms_error *err)
{
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(
             s, &st,
             droid_id ? "SELECT exec_id, droid_id, release, started_ns, ended_ns, outcome, exit_code, removed"
                        " FROM runs WHERE removed=0 AND droid_id=? ORDER BY started_ns, exec_id"
                      : "SELECT exec_id, droid_id, release, started_ns, ended_ns, outcome, exit_code, removed"
                        " FROM runs WHERE removed=0 ORDER BY started_ns, exec_id",
             err)) < 0)
        return r;
    if (droid_id)
        sqlutil_bind_text(st, 1, droid_id);
    store_run *v = NULL;
    size_t len = 0;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        store_run *nv = realloc(v, (len + 1) * sizeof(*v));
        if (!nv) {
            free(v);
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
        v = nv;
        store_run *run = &v[len++];
        memset(run, 0, sizeof(*run));
        snprintf(run->exec_id, sizeof(run->exec_id), "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(run->droid_id, sizeof(run->droid_id), "%s", (const char *)sqlite3_column_text(st, 1));
        run->release = sqlite3_column_int64(st, 2);
        run->started_ns = sqlite3_column_int64(st, 3);
        run->ended_ns = sqlite3_column_int64(st, 4);
        const unsigned char *o = sqlite3_column_text(st, 5);
        snprintf(run->outcome, sizeof(run->outcome), "%s", o ? (const char *)o : "");
        run->exit_code = sqlite3_column_int(st, 6);
        run->removed = sqlite3_column_int(st, 7) != 0;
    }
    if (r != SQLITE_DONE) {
        free(v);
        return db_error(s, err, "list runs");
    }
    *out = v;
    *n = len;
    return 0;
}

int store_runs_list(store *s, const char *droid_id, store_run **out, size_t *n, dms_error *err)
{
    LOCKED(s);
    return runs_query(s, droid_id, out, n, err);
}

int store_runs_all(store *s, store_run **out, size_t *n, dms_error *err)
{
    LOCKED(s);
    return runs_query(s, NULL, out, n, err);
}

/* ---- image garbage collection ---- */

int store_gc_add(store *s, const char *image, const char *droid_id, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "INSERT OR IGNORE INTO image_gc (image, droid_id) VALUES (?,?)", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, image);
    sqlutil_bind_text(st, 2, droid_id);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "queue image removal");
    return 0;
}

int store_gc_due(store *s, int64_t now_ns, char ***images, int64_t *next_due_ns, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    *next_due_ns = 0;
    if ((r = prepare(s, &st, "SELECT image, next_try_ns FROM image_gc ORDER BY next_try_ns", err)) < 0)
        return r;
    char **v = calloc(1, sizeof(char *));
    if (!v)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t due = sqlite3_column_int64(st, 1);
        if (due > now_ns) {
            *next_due_ns = due;
            break;
        }
        if (dms_strv_push(&v, (const char *)sqlite3_column_text(st, 0)) < 0) {
            dms_strv_free(v);
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
    }
    if (r != SQLITE_DONE && r != SQLITE_ROW) {
        dms_strv_free(v);
        return db_error(s, err, "list image removals");
    }
    *images = v;
    return 0;
}

int store_gc_done(store *s, const char *image, dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    if ((r = prepare(s, &st, "DELETE FROM image_gc WHERE image=?", err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, image);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "finish image removal");
    return 0;
}

int store_gc_retry(store *s, const char *image, int64_t base_ms, int64_t max_ms, const char *error,
                   dms_error *err)
{
    LOCKED(s);
    _cleanup_stmt_ sqlite3_stmt *st = NULL;
    int r;
    /* Exponential backoff on the attempt count, capped. */
    if ((r = prepare(s, &st,
                     "UPDATE image_gc SET attempts=attempts+1, last_error=?,"
                     " next_try_ns=? + 1000000 * MIN(?, ? << MIN(attempts, 20)) WHERE image=?",
                     err)) < 0)
        return r;
    sqlutil_bind_text(st, 1, error);
    sqlite3_bind_int64(st, 2, dmsd_now_ns());
    sqlite3_bind_int64(st, 3, max_ms);
    sqlite3_bind_int64(st, 4, base_ms);
    sqlutil_bind_text(st, 5, image);
    if (sqlite3_step(st) != SQLITE_DONE)
        return db_error(s, err, "reschedule image removal");
    return 0;
}
