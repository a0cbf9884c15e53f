/* store.c - the store itself (see store.h): open and close, the schema's migrations, transactions and the
 * lock. Each table's queries live in a file of their own: droidtab.c, eventtab.c, buildtab.c,
 * releasetab.c, runtab.c, imagegc.c (and buildqueue.c, prune.c); they reach the connection through
 * store_db_acquire() (sqlutil.h: LOCK_DB) and query it with sqlutil_query(). */
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
    /* 9: compose droids: the compose file named at create, the services the runner keeps (run/services.h),
     * a release's services (build/composebuild.h), and which service a run is */
    "ALTER TABLE droids ADD COLUMN compose_file TEXT;"
    "ALTER TABLE droids ADD COLUMN services TEXT;"
    "ALTER TABLE releases ADD COLUMN compose TEXT;"
    "ALTER TABLE runs ADD COLUMN service TEXT;",
};

static void lock(store *s)
{
    pthread_mutex_lock(&s->lock);
}
static void unlock(store *s)
{
    pthread_mutex_unlock(&s->lock);
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

static int read_int(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)err;
    *(int *)ud = sqlite3_column_int(st, 0);
    return 1;
}

static int migrate(store *s, dms_error *err)
{
    int r;
    if ((r = exec_sql(s,
                      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                      " applied_ns INTEGER NOT NULL)",
                      err)) < 0)
        return r;
    int have = 0;
    if ((r = sqlutil_query(s->db, "read schema version",
                           "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", SQL_NOARGS, read_int,
                           &have, err)) < 0)
        return r;
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
                 (long long)dms_now_ns());
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
