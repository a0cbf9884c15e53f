/* test_dmsd_history.c - a droid's events, builds and releases as the API shows them (api/history.c): the
 * exact bytes the store built before the JSON moved out of it, members in the same order. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/api/history.h"
#include "../../dms/store/store.h"
#include "testutil.h"

static char dir[64];
static char path[128];
static store *s;

static void setup(void)
{
    tu_mkdtemp(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/dms.db", dir);
    dms_error err = {0};
    ck_assert_int_eq(store_open(&s, path, &err), 0);
}

static void teardown(void)
{
    store_close(s);
    tu_rmtree(dir);
}

/* j as the API sends it (compact), then freed. */
static char *dump(json_t *j)
{
    ck_assert_ptr_nonnull(j);
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return t;
}

START_TEST(test_events_read_as_they_always_did)
{
    dms_error err = {0};
    ck_assert_int_eq(store_event_add(s, "d1", 1500000000, NULL, "pending", "created", &err), 0);
    ck_assert_int_eq(store_event_add(s, "d1", 2000000000, "pending", "building", "say \"hi\"\n\tbye", &err),
                     0);
    json_t *j = NULL;
    ck_assert_int_eq(history_events_json(s, "d1", 0, 0, &j, &err), 0);
    char *t = dump(j);
    ck_assert_str_eq(t,
                     "[{\"id\":1,\"time\":\"1970-01-01T00:00:01.500Z\",\"ts_ns\":1500000000,\"from\":null,"
                     "\"to\":\"pending\",\"reason\":\"created\"},{\"id\":2,\"time\":\"1970-01-01T00:00:02."
                     "000Z\",\"ts_ns\":2000000000,\"from\":\"pending\",\"to\":\"building\",\"reason\":\"say "
                     "\\\"hi\\\"\\n\\tbye\"}]");
    free(t);
    ck_assert_int_eq(history_events_json(s, "d1", 1, 0, &j, &err), 0); /* after event 1 */
    ck_assert_uint_eq(json_array_size(j), 1);
    json_decref(j);
}
END_TEST

START_TEST(test_builds_read_as_they_always_did)
{
    dms_error err = {0};
    int64_t id;
    ck_assert_int_eq(store_build_insert(s, "d1", "dev", "abc", &id, &err), 0);
    ck_assert_int_eq(store_build_insert(s, "d1", NULL, NULL, &id, &err), 0);
    store_build b;
    ck_assert_int_eq(store_build_get(s, id, &b, &err), 1);
    b.status = BUILD_FAILED;
    b.attempt = 2;
    b.commit_sha = strdup("deadbeef");
    b.image_id = strdup("sha256:1");
    b.reason = strdup("oops");
    b.started_ns = 3000000000;
    b.finished_ns = 4000000001;
    ck_assert_int_eq(store_build_update(s, &b, &err), 0);
    store_build_clear(&b);
    json_t *j = NULL;
    ck_assert_int_eq(history_builds_json(s, "d1", 0, 0, &j, &err), 0);
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v) /* the store's clock */
    {
        ck_assert(json_is_string(json_object_get(v, "created_at")));
        json_object_set_new(v, "created_at", json_string("X"));
    }
    char *t = dump(j);
    ck_assert_str_eq(
        t, "[{\"id\":2,\"status\":\"failed\",\"attempt\":2,\"branch\":null,\"commit\":null,"
           "\"commit_sha\":\"deadbeef\",\"image_id\":\"sha256:1\",\"reason\":\"oops\",\"created_at\":"
           "\"X\",\"started_at\":\"1970-01-01T00:00:03.000Z\",\"finished_at\":\"1970-01-01T00:00:"
           "04.000Z\"},{\"id\":1,\"status\":\"queued\",\"attempt\":0,\"branch\":\"dev\",\"commit\":"
           "\"abc\",\"commit_sha\":null,\"image_id\":null,\"reason\":null,\"created_at\":\"X\","
           "\"started_at\":null,\"finished_at\":null}]");
    free(t);
    ck_assert_int_eq(history_builds_json(s, "d1", 2, 0, &j, &err), 0); /* below build 2 */
    ck_assert_uint_eq(json_array_size(j), 1);
    json_decref(j);
}
END_TEST

START_TEST(test_a_release_reads_as_it_always_did)
{
    store_release r = {.seq = 3,
                       .build_id = 7,
                       .image_id = "sha256:2",
                       .tag = "dms-droid/d1:r3",
                       .commit_sha = "c0ffee",
                       .env_json = "{\"A\":\"1\",\"B\":\"x\"}",
                       .port = 8080,
                       .created_ns = 5000000000,
                       .image_removed = true,
                       .resources_json = "{\"memory_mb\":256}",
                       .image_bytes = 12345};
    char *t = dump(history_release_json(&r, 3));
    ck_assert_str_eq(t, "{\"release\":3,\"build\":7,\"image_id\":\"sha256:2\",\"tag\":\"dms-droid/d1:r3\","
                        "\"commit_sha\":\"c0ffee\",\"env\":{\"A\":\"1\",\"B\":\"x\"},\"port\":8080,\"created_"
                        "at\":\"1970-01-01T00:00:05.000Z\",\"image_available\":false,\"current\":true,"
                        "\"resources\":{\"memory_mb\":256},\"image_bytes\":12345}");
    free(t);
    store_release empty = {.seq = 1}; /* every optional member missing */
    t = dump(history_release_json(&empty, 3));
    ck_assert_str_eq(
        t, "{\"release\":1,\"build\":0,\"image_id\":\"\",\"tag\":\"\",\"commit_sha\":null,\"env\":{},"
           "\"port\":0,\"created_at\":null,\"image_available\":true,\"current\":false,\"resources\":"
           "{},\"image_bytes\":0}");
    free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *su = suite_create("dmsd_history");
    TCase *tc = tcase_create("history");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_events_read_as_they_always_did);
    tcase_add_test(tc, test_builds_read_as_they_always_did);
    tcase_add_test(tc, test_a_release_reads_as_it_always_did);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return tu_run(suite());
}
