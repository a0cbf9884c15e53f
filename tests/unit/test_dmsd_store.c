/* test_dmsd_store.c - SQLite store: migrations, WAL, droid round trip, name uniqueness, transactions, events,
 * the build queue, releases and runs. Each test gets a fresh database in its own temporary directory. */
#include <check.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/store/store.h"

static char dir[64];
static char path[128];

static void setup(void)
{
    strcpy(dir, "/tmp/dmsd-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/dms.db", dir);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
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
    ck_assert_int_eq(store_schema_version(s), 7);
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
    ck_assert_int_eq(sqlite3_column_int(st, 0), 7);
    ck_assert_int_eq(sqlite3_column_int(st, 1), 7);
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
                     " ALTER TABLE droids DROP COLUMN woken_ns; ALTER TABLE droids DROP COLUMN resources;"
                     " ALTER TABLE releases DROP COLUMN resources;"
                     " ALTER TABLE releases DROP COLUMN image_bytes;"
                     " DELETE FROM schema_migrations WHERE version>=2",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    ck_assert_int_eq(store_schema_version(s), 7);
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
    json_t *ev = NULL;
    ck_assert_int_eq(store_events_json(s, a->id, 0, 0, &ev, &err), 0);
    ck_assert_uint_eq(json_array_size(ev), 0);
    json_decref(ev);
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
    json_t *ev = NULL;
    ck_assert_int_eq(store_events_json(s, "d1", 0, 0, &ev, &err), 0);
    ck_assert_uint_eq(json_array_size(ev), 3);
    json_t *e1 = json_array_get(ev, 1);
    ck_assert_str_eq(json_string_value(json_object_get(e1, "from")), "pending");
    ck_assert_str_eq(json_string_value(json_object_get(e1, "to")), "building");
    ck_assert_str_eq(json_string_value(json_object_get(e1, "reason")), "build 1");
    ck_assert_str_eq(json_string_value(json_object_get(e1, "time")), "1970-01-01T00:00:02.000Z");
    ck_assert(json_is_null(json_object_get(json_array_get(ev, 0), "from")));
    json_int_t second = json_integer_value(json_object_get(e1, "id"));
    json_decref(ev);
    ck_assert_int_eq(store_events_json(s, "d1", second, 0, &ev, &err), 0);
    ck_assert_uint_eq(json_array_size(ev), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(ev, 0), "to")), "failed");
    json_decref(ev);
    ck_assert_int_eq(store_events_json(s, "d1", 0, 1, &ev, &err), 0);
    ck_assert_uint_eq(json_array_size(ev), 1);
    json_decref(ev);
    store_close(s);
}
END_TEST

START_TEST(test_build_queue_order_backoff_supersede_requeue)
{
    store *s = NULL;
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
    int64_t b1, b2, b3;
    ck_assert_int_eq(store_build_insert(s, "d1", "main", NULL, &b1, &err), 0);
    ck_assert_int_eq(store_build_insert(s, "d2", NULL, NULL, &b2, &err), 0);
    store_build b;
    int64_t due = -1;
    ck_assert_int_eq(store_build_next(s, 100, &b, &due, &err), 1);
    ck_assert_int_eq(b.id, b1); /* oldest first */
    ck_assert_str_eq(b.branch, "main");
    ck_assert_int_eq(b.status, BUILD_QUEUED);
    /* b1 fails retryably: back off until 500 */
    b.attempt = 1;
    b.next_try_ns = 500;
    ck_assert_int_eq(store_build_update(s, &b, &err), 0);
    store_build_clear(&b);
    ck_assert_int_eq(store_build_next(s, 100, &b, &due, &err), 1);
    ck_assert_int_eq(b.id, b2);
    ck_assert_ptr_null(b.branch);
    b.status = BUILD_RUNNING;
    ck_assert_int_eq(store_build_update(s, &b, &err), 0);
    store_build_clear(&b);
    ck_assert_int_eq(store_build_next(s, 100, &b, &due, &err), 0);
    ck_assert_int_eq(due, 500);
    ck_assert_int_eq(store_build_next(s, 600, &b, &due, &err), 1);
    ck_assert_int_eq(b.id, b1);
    ck_assert_int_eq(b.attempt, 1);
    store_build_clear(&b);

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

    json_t *list = NULL;
    ck_assert_int_eq(store_builds_json(s, "d1", 0, &list, &err), 0);
    ck_assert_uint_eq(json_array_size(list), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "status")), "superseded");
    json_decref(list);
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
    json_t *j = store_release_to_json(&list[0], 3);
    ck_assert(json_is_true(json_object_get(j, "current")));
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "A")), "1");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(j, "resources"), "memory_mb")), 256);
    json_decref(j);
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

int main(void)
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
    tcase_add_test(tc, test_releases_and_runs);
    tcase_add_test(tc, test_image_gc_queue_backs_off);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
