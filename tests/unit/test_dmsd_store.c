/* test_dmsd_store.c - SQLite store: migrations, WAL, droid round trip, name uniqueness, transactions, events,
 * the build queue, releases and runs; pages of lists; retention (prune in batches, never what is current).
 * Each test gets a fresh database in its own temporary directory. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/common.h"
#include <dms/backend.h>

#include "../../dms/jobs/jobstore.h"
#include "../../dms/retain.h"
#include "../../dms/store/prune.h"
#include "../../dms/store/store.h"
#include "testutil.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    tu_mkdtemp(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/dms.db", dir);
}

static void teardown(void)
{
    tu_rmtree(dir);
}

static droid *make_droid(const char *id, const char *name, const char *user)
{
    droid *d = droid_new();
    snprintf(d->id, sizeof(d->id), "%s", id);
    d->name = strdup(name);
    d->user_id = strdup(user);
    d->repo = strdup("/srv/r.git");
    d->env_json = strdup("{\"A\":\"1\"}");
    d->port = 8080;
    d->created_ns = d->updated_ns = 1000;
    d->reason = strdup("created");
    return d;
}

START_TEST(test_open_migrates_once_and_uses_wal)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    ck_assert_int_eq(store_schema_version(s), 9);
    store_close(s);
    ck_assert_int_eq(store_open(&s, path, &err), 0); /* reopening applies nothing twice */
    store_close(s);

    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    ck_assert_int_eq(
        sqlite3_prepare_v2(db, "SELECT COUNT(*), MAX(version) FROM schema_migrations", -1, &st, NULL),
        SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(st, 0), 9);
    ck_assert_int_eq(sqlite3_column_int(st, 1), 9);
    sqlite3_finalize(st);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_open_upgrades_an_older_schema)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    store_close(s);
    /* make it a version-1 database, as an older dmsd left it */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(db,
                     "DROP TABLE image_gc; DROP TABLE jobs; DROP TABLE job_logs;"
                     " DROP TABLE droid_follow; ALTER TABLE droids DROP COLUMN run_addr;"
                     " ALTER TABLE droids DROP COLUMN snooze; ALTER TABLE droids DROP COLUMN asleep;"
                     " ALTER TABLE droids DROP COLUMN woken_ns;"
                     " ALTER TABLE droids DROP COLUMN build_timeout_s;"
                     " ALTER TABLE droids DROP COLUMN resources;"
                     " ALTER TABLE releases DROP COLUMN resources;"
                     " ALTER TABLE releases DROP COLUMN image_bytes;"
                     " ALTER TABLE droids DROP COLUMN compose_file; ALTER TABLE droids DROP COLUMN services;"
                     " ALTER TABLE releases DROP COLUMN compose; ALTER TABLE runs DROP COLUMN service;"
                     " DELETE FROM schema_migrations WHERE version>=2",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    ck_assert_int_eq(store_schema_version(s), 9);
    ck_assert_int_eq(store_gc_add(s, "sha256:x", "d1", &err), 0); /* the table of migration 2 is back */
    store_close(s);
}
END_TEST

START_TEST(test_open_refuses_a_newer_schema)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    store_close(s);
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO schema_migrations VALUES (99, 0)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(store_open(&s, path, &err), -DMS_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(err.message, "99"));
}
END_TEST

START_TEST(test_droid_round_trip_keeps_every_field)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    droid *d = make_droid("d000000000001", "web", "alice");
    d->branch = strdup("main");
    d->commit = strdup("abcdef0");
    d->state = DROID_RUNNING;
    d->want_running = true;
    d->want_release = 3;
    d->config_gen = 4;
    d->restart_gen = 5;
    d->run_id = strdup("d000000000001-r3-7");
    d->run_release = 3;
    d->host_port = 32768;
    d->run_seq = 7;
    d->release_seq = 3;
    d->crash_count = 2;
    d->retry_at_ns = 99;
    d->commit_sha = strdup("0123456789012345678901234567890123456789");
    d->build_timeout_s = 42;
    d->volumes = calloc(1, sizeof(droid_volume));
    d->volumes[0].name = strdup("data");
    d->volumes[0].mount_path = strdup("/data");
    d->n_volumes = 1;
    d->resources = (droid_resources){.memory_mb = 1024, .pids = 64};
    ck_assert_int_eq(store_droid_insert(s, d, &err), 0);
    droid **all = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_droid_load_all(s, &all, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    droid *g = all[0];
    ck_assert_str_eq(g->id, d->id);
    ck_assert_str_eq(g->user_id, "alice");
    ck_assert_str_eq(g->branch, "main");
    ck_assert_str_eq(g->commit, "abcdef0");
    ck_assert_ptr_null(g->language);
    ck_assert_int_eq(g->state, DROID_RUNNING);
    ck_assert(g->want_running);
    ck_assert_int_eq(g->want_release, 3);
    ck_assert_int_eq(g->config_gen, 4);
    ck_assert_int_eq(g->restart_gen, 5);
    ck_assert_str_eq(g->run_id, "d000000000001-r3-7");
    ck_assert_int_eq(g->host_port, 32768);
    ck_assert_int_eq(g->run_seq, 7);
    ck_assert_int_eq(g->crash_count, 2);
    ck_assert_int_eq(g->retry_at_ns, 99);
    ck_assert_str_eq(g->commit_sha, d->commit_sha);
    ck_assert_int_eq(g->build_timeout_s, 42);
    ck_assert_uint_eq(g->n_volumes, 1);
    ck_assert_str_eq(g->volumes[0].mount_path, "/data");
    ck_assert_int_eq(g->resources.memory_mb, 1024);
    ck_assert_int_eq(g->resources.cpu_millis, 0);
    ck_assert_int_eq(g->resources.pids, 64);
    droid_free(g);
    free(all);

    d->state = DROID_STOPPED;
    free(d->run_id);
    d->run_id = NULL;
    ck_assert_int_eq(store_droid_update(s, d, &err), 0);
    ck_assert_int_eq(store_droid_load_all(s, &all, &n, &err), 0);
    ck_assert_int_eq(all[0]->state, DROID_STOPPED);
    ck_assert_ptr_null(all[0]->run_id);
    droid_free(all[0]);
    free(all);
    droid_free(d);
    store_close(s);
}
END_TEST

START_TEST(test_names_are_unique_across_users)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    droid *a = make_droid("d000000000001", "web", "alice");
    droid *b = make_droid("d000000000002", "web", "bob");
    ck_assert_int_eq(store_droid_insert(s, a, &err), 0);
    ck_assert_int_eq(store_droid_insert(s, b, &err), -DMS_E_CONFLICT);
    ck_assert_str_eq(err.field, "name");
    free(b->name);
    b->name = strdup("api");
    ck_assert_int_eq(store_droid_insert(s, b, &err), 0);
    free(b->name);
    b->name = strdup("web"); /* renaming onto a taken name */
    ck_assert_int_eq(store_droid_update(s, b, &err), -DMS_E_CONFLICT);
    droid *ghost = make_droid("d00000000000f", "ghost", "x");
    ck_assert_int_eq(store_droid_update(s, ghost, &err), -DMS_E_NOT_FOUND);
    droid_free(a);
    droid_free(b);
    droid_free(ghost);
    store_close(s);
}
END_TEST

START_TEST(test_rollback_leaves_nothing_half_written)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    droid *a = make_droid("d000000000001", "web", "alice");
    ck_assert_int_eq(store_begin(s, &err), 0);
    ck_assert_int_eq(store_droid_insert(s, a, &err), 0);
    ck_assert_int_eq(store_event_add(s, a->id, 1, NULL, "pending", "created", &err), 0);
    store_rollback(s);
    droid **all = NULL;
    size_t n = 9;
    ck_assert_int_eq(store_droid_load_all(s, &all, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    free(all);
    store_event *ev = NULL;
    ck_assert_int_eq(store_events_list(s, a->id, 0, 0, &ev, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    store_events_free(ev, n);
    droid_free(a);
    store_close(s);
}
END_TEST

START_TEST(test_events_page_by_id)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    ck_assert_int_eq(store_event_add(s, "d1", 1000000000, NULL, "pending", "created", &err), 0);
    ck_assert_int_eq(store_event_add(s, "d1", 2000000000, "pending", "building", "build 1", &err), 0);
    ck_assert_int_eq(store_event_add(s, "d2", 3000000000, NULL, "pending", "other droid", &err), 0);
    ck_assert_int_eq(store_event_add(s, "d1", 4000000000, "building", "failed", "Dockerfile step", &err), 0);
    store_event *ev = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_events_list(s, "d1", 0, 0, &ev, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(ev[1].from, "pending");
    ck_assert_str_eq(ev[1].to, "building");
    ck_assert_str_eq(ev[1].reason, "build 1");
    ck_assert_int_eq(ev[1].ts_ns, 2000000000);
    ck_assert_ptr_null(ev[0].from);
    int64_t second = ev[1].id;
    store_events_free(ev, n);
    ck_assert_int_eq(store_events_list(s, "d1", second, 0, &ev, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(ev[0].to, "failed");
    store_events_free(ev, n);
    ck_assert_int_eq(store_events_list(s, "d1", 0, 1, &ev, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    store_events_free(ev, n);
    store_close(s);
}
END_TEST

/* The first candidate, as the build queue would start it with nothing running: 1 and *b, or 0. */
static int next_build(store *s, int64_t now, store_build *b, int64_t *due)
{
    store_build_cand *c = NULL;
    size_t n = 0;
    dms_error err = {0};
    ck_assert_int_eq(store_build_candidates(s, now, 16, &c, &n, due, &err), 0);
    int r = n ? store_build_get(s, c[0].id, b, &err) : 0;
    free(c);
    return r;
}

static void add_user_droid(store *s, const char *id, const char *name, const char *user)
{
    dms_error err = {0};
    droid *d = make_droid(id, name, user);
    ck_assert_int_eq(store_droid_insert(s, d, &err), 0);
    droid_free(d);
}

START_TEST(test_build_queue_order_backoff_supersede_requeue)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    add_user_droid(s, "d1", "web1", "alice");
    add_user_droid(s, "d2", "web2", "alice");
    int64_t b1, b2, b3;
    ck_assert_int_eq(store_build_insert(s, "d1", "main", NULL, &b1, &err), 0);
    ck_assert_int_eq(store_build_insert(s, "d2", NULL, NULL, &b2, &err), 0);
    int64_t now = dms_now_ns() + NS_PER_SEC, later = now + 10 * NS_PER_SEC;
    store_build b;
    int64_t due = -1;
    ck_assert_int_eq(next_build(s, now, &b, &due), 1);
    ck_assert_int_eq(b.id, b1); /* oldest first */
    ck_assert_str_eq(b.branch, "main");
    ck_assert_int_eq(b.status, BUILD_QUEUED);
    ck_assert_int_eq(due, 0); /* nothing waits for a later time */
    /* b1 fails retryably: back off until later */
    b.attempt = 1;
    b.next_try_ns = later;
    ck_assert_int_eq(store_build_update(s, &b, &err), 0);
    store_build_clear(&b);
    ck_assert_int_eq(next_build(s, now, &b, &due), 1);
    ck_assert_int_eq(b.id, b2);
    ck_assert_ptr_null(b.branch);
    ck_assert_int_eq(due, later);
    b.status = BUILD_RUNNING;
    ck_assert_int_eq(store_build_update(s, &b, &err), 0);
    store_build_clear(&b);
    ck_assert_int_eq(next_build(s, now, &b, &due), 0);
    ck_assert_int_eq(due, later);
    ck_assert_int_eq(next_build(s, later, &b, &due), 1);
    ck_assert_int_eq(b.id, b1);
    ck_assert_int_eq(b.attempt, 1);
    store_build_clear(&b);
    ck_assert_int_eq(store_build_get(s, 999, &b, &err), 0); /* no such build */

    /* a newer build of d1 supersedes the queued one */
    ck_assert_int_eq(store_builds_supersede(s, "d1", &err), 0);
    ck_assert_int_eq(store_build_insert(s, "d1", "dev", NULL, &b3, &err), 0);
    ck_assert_int_eq(store_build_active(s, "d1", &b, &err), 1);
    ck_assert_int_eq(b.id, b3);
    store_build_clear(&b);

    /* after a crash the running build is queued again */
    int n = 0;
    ck_assert_int_eq(store_builds_requeue_running(s, &n, &err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(store_build_active(s, "d2", &b, &err), 1);
    ck_assert_int_eq(b.status, BUILD_QUEUED);
    store_build_clear(&b);

    store_build *list = NULL;
    size_t nb = 0;
    ck_assert_int_eq(store_builds_page(s, "d1", 0, 0, &list, &nb, &err), 0);
    ck_assert_uint_eq(nb, 2);
    ck_assert_int_eq(list[1].status, BUILD_SUPERSEDED);
    store_builds_free(list, nb);
    store_close(s);
}
END_TEST

/* Builds queued at given times (created_ns), so that "waited longest" is exact. */
static int64_t queue_at(store *s, const char *droid_id, int64_t created_ns)
{
    dms_error err = {0};
    int64_t id;
    ck_assert_int_eq(store_build_insert(s, droid_id, NULL, NULL, &id, &err), 0);
    sqlite3 *db; /* created_ns is the store's own clock: set it behind its back */
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof(sql), "UPDATE builds SET created_ns=%lld WHERE id=%lld", (long long)created_ns,
             (long long)id);
    ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    return id;
}

START_TEST(test_build_candidates_are_one_per_droid_and_a_few_per_user_longest_waiting_first)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    add_user_droid(s, "a1", "a1", "alice");
    add_user_droid(s, "a2", "a2", "alice");
    add_user_droid(s, "a3", "a3", "alice");
    add_user_droid(s, "b1", "b1", "bob");
    int64_t a1_old = queue_at(s, "a1", 100);
    queue_at(s, "a1", 150); /* a second queued build of a1: never a candidate beside the first */
    int64_t a2 = queue_at(s, "a2", 200), a3 = queue_at(s, "a3", 300), b1 = queue_at(s, "b1", 400);
    /* a retry of a3's is due at 500: it has waited since then, not since it was queued */
    store_build b;
    ck_assert_int_eq(store_build_get(s, a3, &b, &err), 1);
    b.next_try_ns = 500;
    ck_assert_int_eq(store_build_update(s, &b, &err), 0);
    store_build_clear(&b);
    store_build_cand *c = NULL;
    size_t n = 0;
    int64_t due = -1;
    ck_assert_int_eq(store_build_candidates(s, 1000, 2, &c, &n, &due, &err), 0);
    /* one per droid (a1's oldest), at most 2 of alice's (a3 left out), bob's too; longest waiting first */
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(c[0].id, a1_old);
    ck_assert_str_eq(c[0].user_id, "alice");
    ck_assert_int_eq(c[1].id, a2);
    ck_assert_int_eq(c[2].id, b1);
    ck_assert_str_eq(c[2].droid_id, "b1");
    ck_assert_str_eq(c[2].user_id, "bob");
    ck_assert_int_eq(c[2].waiting_since_ns, 400);
    free(c);
    ck_assert_int_eq(store_build_candidates(s, 1000, 16, &c, &n, &due, &err), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(c[3].id, a3);
    ck_assert_int_eq(c[3].waiting_since_ns, 500);
    free(c);
    /* before a3's retry is due it is no candidate, and its due time is the next one */
    ck_assert_int_eq(store_build_candidates(s, 450, 16, &c, &n, &due, &err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(due, 500);
    free(c);
    store_close(s);
}
END_TEST

START_TEST(test_releases_and_runs)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    for (int i = 1; i <= 3; i++) {
        char img[32];
        snprintf(img, sizeof(img), "sha256:%d", i);
        store_release r = {.seq = i,
                           .build_id = 10 + i,
                           .image_id = img,
                           .tag = "dms-droid/d1:r1",
                           .env_json = "{\"A\":\"1\"}",
                           .port = 8080,
                           .resources_json = "{\"memory_mb\":256}",
                           .image_bytes = 1000 * i,
                           .created_ns = i};
        strcpy(r.droid_id, "d1");
        ck_assert_int_eq(store_release_insert(s, &r, &err), 0);
    }
    store_release r;
    ck_assert_int_eq(store_release_get(s, "d1", 2, &r, &err), 0);
    ck_assert_str_eq(r.image_id, "sha256:2");
    ck_assert(!r.image_removed);
    store_release_clear(&r);
    ck_assert_int_eq(store_release_get(s, "d1", 9, &r, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(store_release_mark_removed(s, "d1", 1, &err), 0);
    store_release *list;
    size_t n;
    ck_assert_int_eq(store_releases_list(s, "d1", &list, &n, &err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(list[0].seq, 3); /* newest first */
    ck_assert(list[2].image_removed);
    ck_assert_str_eq(list[0].env_json, "{\"A\":\"1\"}");
    ck_assert_str_eq(list[0].resources_json, "{\"memory_mb\":256}");
    ck_assert_int_eq(list[0].image_bytes, 3000);
    store_releases_free(list, n);

    /* A user's disk: the images of the releases still kept, of their droids only. */
    droid *owner = make_droid("d1", "web", "alice");
    ck_assert_int_eq(store_droid_insert(s, owner, &err), 0);
    droid_free(owner);
    int64_t bytes = -1;
    ck_assert_int_eq(store_user_image_bytes(s, "alice", &bytes, &err), 0);
    ck_assert_int_eq(bytes, 2000 + 3000); /* release 1's image was removed */
    ck_assert_int_eq(store_user_image_bytes(s, "bob", &bytes, &err), 0);
    ck_assert_int_eq(bytes, 0);

    ck_assert_int_eq(store_run_insert(s, "d1-r1-1", "d1", 1, 10, &err), 0);
    ck_assert_int_eq(store_run_insert(s, "d1-r2-2", "d1", 2, 20, &err), 0);
    ck_assert_int_eq(store_run_end(s, "d1-r1-1", 15, "exited", 1, &err), 0);
    ck_assert_int_eq(store_run_mark_removed(s, "d1-r2-2", &err), 0);
    store_run *runs;
    ck_assert_int_eq(store_runs_list(s, "d1", &runs, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(runs[0].outcome, "exited");
    ck_assert_int_eq(runs[0].exit_code, 1);
    free(runs);

    ck_assert_int_eq(store_droid_delete(s, "d1", &err), 0);
    ck_assert_int_eq(store_releases_list(s, "d1", &list, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    free(list);
    ck_assert_int_eq(store_runs_all(s, &runs, &n, &err), 0);
    ck_assert_uint_eq(n, 0);
    free(runs);
    store_close(s);
}
END_TEST

/* ---- pages and retention ---- */

static store *open_store(void)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    return s;
}

static void add_events(store *s, const char *droid_id, int n)
{
    dms_error err = {0};
    ck_assert_int_eq(store_begin(s, &err), 0);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(store_event_add(s, droid_id, i + 1, "a", "b", "x", &err), 0);
    ck_assert_int_eq(store_commit(s, &err), 0);
}

static int64_t count(store *s, const char *sql)
{
    sqlite3 *db = store_db_acquire(s);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    store_db_release(s);
    return v;
}

static void exec(store *s, const char *sql)
{
    sqlite3 *db = store_db_acquire(s);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    store_db_release(s);
}

/* A droid row with the releases it wants and runs (the rest as make_droid). */
static void add_droid(store *s, const char *id, int64_t want_release, int64_t run_release, const char *run_id)
{
    droid *d = make_droid(id, id, "alice");
    d->want_release = want_release;
    d->run_release = run_release;
    d->run_id = run_id ? strdup(run_id) : NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_droid_insert(s, d, &err), 0);
    droid_free(d);
}

START_TEST(test_builds_and_releases_page_from_a_cursor_newest_first)
{
    store *s = open_store();
    dms_error err = {0};
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(store_build_insert(s, "d1", NULL, NULL, NULL, &err), 0);
    store_build *page = NULL;
    size_t nb = 0;
    ck_assert_int_eq(store_builds_page(s, "d1", 0, 2, &page, &nb, &err), 0);
    ck_assert_uint_eq(nb, 2);
    ck_assert_int_eq(page[1].id, 4);
    store_builds_free(page, nb);
    ck_assert_int_eq(store_builds_page(s, "d1", 4, 0, &page, &nb, &err), 0); /* the rest, from below 4 */
    ck_assert_uint_eq(nb, 3);
    ck_assert_int_eq(page[0].id, 3);
    store_builds_free(page, nb);
    for (int i = 1; i <= 4; i++) {
        store_release r = {.seq = i, .image_id = "sha256:x", .tag = "t", .env_json = "{}", .port = 80};
        strcpy(r.droid_id, "d1");
        ck_assert_int_eq(store_release_insert(s, &r, &err), 0);
    }
    store_release *rel = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_releases_page(s, "d1", 3, 1, &rel, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(rel[0].seq, 2);
    store_releases_free(rel, n);
    store_close(s);
}
END_TEST

START_TEST(test_jobs_page_by_creation_time_then_id_with_ties)
{
    store *s = open_store();
    /* Five jobs, two of them created in the same nanosecond: the id breaks the tie. */
    exec(s, "INSERT INTO jobs (id, user_id, project_id, deployment_id, branch, repo_url, build_command,"
            " package_manager, dist_dir, status, created_ns) VALUES"
            " ('ja','alice','p','d','main','r','c','none','.','queued',100),"
            " ('jb','alice','p','d','main','r','c','none','.','queued',200),"
            " ('jc','alice','p','d','main','r','c','none','.','queued',200),"
            " ('jd','alice','p','d','main','r','c','none','.','queued',300),"
            " ('je','bob','p','d','main','r','c','none','.','queued',250)");
    const char *want[] = {"jd", "jc", "jb", "ja"};
    dmsd_page pg = {.limit = 2};
    size_t seen = 0;
    for (int pages = 0; pages < 3; pages++) {
        json_t *list = NULL;
        dms_error err = {0};
        ck_assert_int_eq(jobstore_list_json(s, "alice", &pg, &list, &err), 0);
        for (size_t i = 0; i < json_array_size(list); i++)
            ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, i), "id")), want[seen++]);
        json_decref(list);
        if (!pg.more)
            break;
        pg.has_after = true;
        pg.after = pg.next;
    }
    ck_assert_uint_eq(seen, 4);
    ck_assert(!pg.more);
    store_close(s);
}
END_TEST

START_TEST(test_prune_events_keeps_the_newest_of_each_droid_in_batches)
{
    store *s = open_store();
    dms_error err = {0};
    add_events(s, "d1", 1200);
    add_events(s, "d2", 5);
    int n = 0;
    ck_assert_int_eq(prune_events(s, "d1", 100, 500, &n, &err), 0);
    ck_assert_int_eq(n, 500);
    ck_assert_int_eq(prune_events(s, "d1", 100, 500, &n, &err), 0);
    ck_assert_int_eq(prune_events(s, "d1", 100, 500, &n, &err), 0);
    ck_assert_int_eq(n, 100);
    ck_assert_int_eq(prune_events(s, "d1", 100, 500, &n, &err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM events WHERE droid_id='d1'"), 100);
    ck_assert_int_eq(count(s, "SELECT MIN(ts_ns) FROM events WHERE droid_id='d1'"), 1101); /* the newest */
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM events WHERE droid_id='d2'"), 5);
    ck_assert_int_eq(prune_events(s, "d2", 0, 500, &n, &err), 0); /* 0 keeps everything */
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM events WHERE droid_id='d2'"), 5);
    store_close(s);
}
END_TEST

START_TEST(test_prune_builds_never_takes_an_active_build_or_the_current_releases)
{
    store *s = open_store();
    dms_error err = {0};
    add_droid(s, "d1", 2, 1, NULL);
    /* builds 1..8: 1 queued (a retry waiting), 2 running, 3..8 finished; releases 1 and 2 come from 3 and 4
     */
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(store_build_insert(s, "d1", NULL, NULL, NULL, &err), 0);
    exec(s, "UPDATE builds SET status='running' WHERE id=2");
    exec(s, "UPDATE builds SET status='failed' WHERE id>=3");
    exec(s, "INSERT INTO releases (droid_id, seq, build_id, image_id, tag, env, port, created_ns) VALUES"
            " ('d1',1,3,'i','t','{}',80,1), ('d1',2,4,'i','t','{}',80,2)");
    int n = 0;
    ck_assert_int_eq(prune_builds(s, "d1", 2, 500, &n, &err), 0);
    /* kept: the newest two (8, 7), queued 1, running 2, and 3 and 4 (releases 1 and 2 are current) */
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM builds WHERE id IN (5,6)"), 0);
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM builds"), 6);
    store_close(s);
}
END_TEST

START_TEST(test_prune_releases_only_takes_old_ones_whose_image_is_gone)
{
    store *s = open_store();
    dms_error err = {0};
    add_droid(s, "d1", 6, 1, NULL); /* runs release 1 (its image gone: still current), wants 6 */
    for (int i = 1; i <= 6; i++) {
        store_release r = {.seq = i,
                           .image_id = "sha256:x",
                           .tag = "t",
                           .env_json = "{}",
                           .port = 80,
                           .image_removed = i <= 4};
        strcpy(r.droid_id, "d1");
        ck_assert_int_eq(store_release_insert(s, &r, &err), 0);
    }
    int n = 0;
    ck_assert_int_eq(prune_releases(s, "d1", 1, 500, &n, &err), 0);
    ck_assert_int_eq(n, 3); /* 2, 3, 4; not 1 (current), 5 (its image is there), 6 (newest) */
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM releases WHERE seq IN (1,5,6)"), 3);
    store_close(s);
}
END_TEST

START_TEST(test_prune_runs_keeps_the_current_one_and_those_with_logs)
{
    store *s = open_store();
    dms_error err = {0};
    add_droid(s, "d1", 1, 1, "d1-r1-1");
    const char *ids[] = {"d1-r1-1", "d1-r1-2", "d1-r1-3", "d1-r1-4", "d1-r1-5"};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(store_run_insert(s, ids[i], "d1", 1, 10 * (i + 1), &err), 0);
        if (i != 2) /* run 3 still has its logs */
            ck_assert_int_eq(store_run_mark_removed(s, ids[i], &err), 0);
    }
    int n = 0;
    ck_assert_int_eq(prune_runs(s, "d1", 1, 500, &n, &err), 0);
    ck_assert_int_eq(n, 2); /* 2 and 4: 1 is current, 3 has logs, 5 is the newest */
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM runs WHERE exec_id IN ('d1-r1-1','d1-r1-3','d1-r1-5')"),
                     3);
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM runs"), 3);
    store_close(s);
}
END_TEST

static void add_raw_job(store *s, const char *id, const char *user, const char *status, int64_t created,
                        int64_t finished)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO jobs (id, user_id, project_id, deployment_id, branch, repo_url, build_command,"
             " package_manager, dist_dir, status, created_ns, finished_ns) VALUES"
             " ('%s','%s','p','d','main','r','c','none','.','%s',%lld,%lld);"
             "INSERT INTO job_logs (job_id, seq, ts_ns, data) VALUES ('%s',1,1,'a'), ('%s',2,2,'b')",
             id, user, status, (long long)created, (long long)finished, id, id);
    exec(s, sql);
}

/* jobs/<id>/out/artifact.tar under the test's dir, as a job leaves it. */
static void add_job_dir(const char *id)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/jobs/%s/out", dir, id);
    ck_assert_int_eq(dms_mkdir_p(p, false, NULL), 0);
    snprintf(p, sizeof(p), "%s/jobs/%s/out/artifact.tar", dir, id);
    ck_assert_int_eq(dms_write_file_atomic(p, "tar", 3, NULL), 0);
}

static bool job_dir_exists(const char *id)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/jobs/%s", dir, id);
    return access(p, F_OK) == 0;
}

START_TEST(test_prune_jobs_by_count_and_age_never_unfinished_ones)
{
    store *s = open_store();
    dms_error err = {0};
    const int64_t day = 86400LL * 1000000000LL, now = 1000 * day;
    add_raw_job(s, "ja1", "alice", "succeeded", 1, now - 40 * day); /* old */
    add_raw_job(s, "ja2", "alice", "failed", 2, now - 2 * day);
    add_raw_job(s, "ja3", "alice", "cancelled", 3, now - 1 * day);
    add_raw_job(s, "ja4", "alice", "running", 4, 0);
    add_raw_job(s, "ja5", "alice", "queued", 5, 0);
    add_raw_job(s, "jb1", "bob", "succeeded", 6, now - 1 * day);
    char **ids = NULL;
    /* The newest 2 of each user: alice's 1..3 are beyond them, but only finished ones go. */
    ck_assert_int_eq(prune_jobs_due(s, 2, 0, 50, &ids, &err), 0);
    ck_assert_uint_eq(dmsu_strv_len(ids), 3);
    ck_assert_str_eq(ids[0], "ja1");
    ck_assert_str_eq(ids[2], "ja3");
    dmsu_strv_free(ids);
    /* By age alone: finished more than 30 days before now. */
    ck_assert_int_eq(prune_jobs_due(s, 0, now - 30 * day, 50, &ids, &err), 0);
    ck_assert_uint_eq(dmsu_strv_len(ids), 1);
    ck_assert_str_eq(ids[0], "ja1");
    dmsu_strv_free(ids);
    /* An unfinished job keeps its log and its row whatever is asked. */
    int n = -1;
    ck_assert_int_eq(prune_job_logs(s, "ja4", 500, &n, &err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(prune_job(s, "ja4", &n, &err), 0);
    ck_assert_int_eq(n, 0);
    /* A finished one: its row goes only once its log has. */
    ck_assert_int_eq(prune_job(s, "ja1", &n, &err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(prune_job_logs(s, "ja1", 500, &n, &err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(prune_job(s, "ja1", &n, &err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM jobs"), 5);
    store_close(s);
}
END_TEST

START_TEST(test_retain_sweep_prunes_every_kind_and_the_jobs_directories)
{
    store *s = open_store();
    dms_error err = {0};
    add_droid(s, "d1", 0, 0, NULL);
    add_events(s, "d1", 30);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(store_build_insert(s, "d1", NULL, NULL, NULL, &err), 0);
    exec(s, "UPDATE builds SET status='succeeded'");
    const int64_t old = 1; /* finished at the epoch: long ago */
    add_raw_job(s, "jold", "alice", "succeeded", 1, old);
    add_raw_job(s, "jrun", "alice", "running", 2, 0);
    add_raw_job(s, "jnew", "alice", "succeeded", 3, dms_now_ns());
    add_job_dir("jold");
    add_job_dir("jrun");
    add_job_dir("jnew");
    retain_config cfg = {.events = 10, .builds = 1, .runs = 1, .jobs = 100, .jobs_days = 30};
    retain_counts c;
    ck_assert_int_eq(retain_sweep(s, dir, &cfg, NULL, &c, &err), 0);
    ck_assert_int_eq(c.events, 20);
    ck_assert_int_eq(c.builds, 3);
    ck_assert_int_eq(c.jobs, 1);
    ck_assert(!job_dir_exists("jold"));
    ck_assert(job_dir_exists("jrun"));
    ck_assert(job_dir_exists("jnew"));
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM job_logs WHERE job_id='jold'"), 0);
    ck_assert_int_eq(count(s, "SELECT COUNT(*) FROM jobs"), 2);
    /* A second sweep finds nothing more. */
    ck_assert_int_eq(retain_sweep(s, dir, &cfg, NULL, &c, &err), 0);
    ck_assert_int_eq(c.events + c.builds + c.releases + c.runs + c.jobs, 0);
    /* A stop asked before a sweep prunes nothing. */
    add_events(s, "d1", 30);
    atomic_bool stop = true;
    ck_assert_int_eq(retain_sweep(s, dir, &cfg, &stop, &c, &err), 0);
    ck_assert_int_eq(c.events, 0);
    store_close(s);
}
END_TEST

START_TEST(test_image_gc_queue_backs_off)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    ck_assert_int_eq(store_gc_add(s, "sha256:aa", "d1", &err), 0);
    ck_assert_int_eq(store_gc_add(s, "sha256:aa", "d1", &err), 0); /* once only */
    ck_assert_int_eq(store_gc_add(s, "sha256:bb", "d2", &err), 0);
    char **due = NULL;
    int64_t next = 0;
    ck_assert_int_eq(store_gc_due(s, 1, &due, &next, &err), 0);
    ck_assert_ptr_nonnull(due[0]);
    ck_assert_ptr_nonnull(due[1]);
    ck_assert_ptr_null(due[2]);
    for (char **p = due; *p; p++)
        free(*p);
    free(due);
    ck_assert_int_eq(store_gc_retry(s, "sha256:aa", 5000, 600000, "engine busy", &err), 0);
    ck_assert_int_eq(store_gc_done(s, "sha256:bb", &err), 0);
    int64_t now = 2000000000000000000LL;
    ck_assert_int_eq(store_gc_due(s, 1, &due, &next, &err), 0);
    ck_assert_ptr_null(due[0]); /* aa waits for its backoff */
    ck_assert(next > 1);
    free(due);
    ck_assert_int_eq(store_gc_due(s, now, &due, &next, &err), 0);
    ck_assert_str_eq(due[0], "sha256:aa");
    free(due[0]);
    free(due);
    store_close(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_open_migrates_once_and_uses_wal);
    tcase_add_test(tc, test_open_upgrades_an_older_schema);
    tcase_add_test(tc, test_open_refuses_a_newer_schema);
    tcase_add_test(tc, test_droid_round_trip_keeps_every_field);
    tcase_add_test(tc, test_names_are_unique_across_users);
    tcase_add_test(tc, test_rollback_leaves_nothing_half_written);
    tcase_add_test(tc, test_events_page_by_id);
    tcase_add_test(tc, test_build_queue_order_backoff_supersede_requeue);
    tcase_add_test(tc, test_build_candidates_are_one_per_droid_and_a_few_per_user_longest_waiting_first);
    tcase_add_test(tc, test_releases_and_runs);
    tcase_add_test(tc, test_image_gc_queue_backs_off);
    tcase_add_test(tc, test_builds_and_releases_page_from_a_cursor_newest_first);
    tcase_add_test(tc, test_jobs_page_by_creation_time_then_id_with_ties);
    tcase_add_test(tc, test_prune_events_keeps_the_newest_of_each_droid_in_batches);
    tcase_add_test(tc, test_prune_builds_never_takes_an_active_build_or_the_current_releases);
    tcase_add_test(tc, test_prune_releases_only_takes_old_ones_whose_image_is_gone);
    tcase_add_test(tc, test_prune_runs_keeps_the_current_one_and_those_with_logs);
    tcase_add_test(tc, test_prune_jobs_by_count_and_age_never_unfinished_ones);
    tcase_add_test(tc, test_retain_sweep_prunes_every_kind_and_the_jobs_directories);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
