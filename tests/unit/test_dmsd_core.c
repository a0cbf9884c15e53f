/* test_dmsd_core.c - the droid registry: create writes droid + event + queued build at once, mutations are
 * all-or-nothing across store and cache, every state change is an event, users see only their own droids, the
 * status body is valid JSON, hooks fire after commit, and a reopened core sees what was committed. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/core/core.h"
#include "util.h"
#include "testutil.h"

static char dir[64], path[128];
static store *st;
static core *c;

static void setup(void)
{
    dms_error err = {0};
    tu_mkdtemp(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/dms.db", dir);
    ck_assert_int_eq(store_open(&st, path, &err), 0);
    ck_assert_int_eq(core_open(&c, st, &err), 0);
}

static void teardown(void)
{
    core_close(c);
    store_close(st);
    tu_rmtree(dir);
}

static droid *create(const char *name, const char *user)
{
    droid *d = droid_new(), *out = NULL;
    d->name = strdup(name);
    d->user_id = strdup(user);
    d->repo = strdup("/srv/x.git");
    d->env_json = strdup("{}");
    d->port = 8080;
    dms_error err = {0};
    ck_assert_int_eq(core_create(c, d, &out, &err), 0);
    droid_free(d);
    return out;
}

static size_t count_events(const char *id)
{
    store_event *ev = NULL;
    size_t n = 0;
    dms_error err = {0};
    ck_assert_int_eq(store_events_list(st, id, 0, 0, &ev, &n, &err), 0);
    store_events_free(ev, n);
    return n;
}

START_TEST(test_create_stores_droid_event_and_build)
{
    droid *d = create("web", "alice");
    ck_assert_int_eq(strlen(d->id), 13);
    ck_assert_int_eq(d->id[0], 'd');
    ck_assert_int_eq(d->state, DROID_PENDING);
    ck_assert(d->want_running);
    ck_assert_uint_eq(count_events(d->id), 1);
    store_build b = {0};
    dms_error err = {0};
    ck_assert_int_eq(store_build_active(st, d->id, &b, &err), 1);
    ck_assert_int_eq(b.status, BUILD_QUEUED);
    store_build_clear(&b);
    ck_assert(!core_name_available(c, "web"));
    ck_assert(core_name_available(c, "api"));
    /* a taken name: nothing is written */
    droid *dup = droid_new(), *out = NULL;
    dup->name = strdup("web");
    dup->user_id = strdup("bob");
    dup->repo = strdup("/r");
    dup->env_json = strdup("{}");
    ck_assert_int_eq(core_create(c, dup, &out, &err), -DMS_E_CONFLICT);
    ck_assert_str_eq(err.field, "name");
    ck_assert_uint_eq(core_count(c), 1);
    droid_free(dup);
    droid_free(d);
}
END_TEST

START_TEST(test_users_see_only_their_own)
{
    droid *a = create("a1", "alice");
    droid *b = create("b1", "bob");
    json_t *j = NULL;
    dms_error err = {0};
    ck_assert_int_eq(core_get_json(c, "alice", a->id, &j, &err), 0);
    json_decref(j);
    ck_assert_int_eq(core_get_json(c, "alice", b->id, &j, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(core_check_owner(c, "bob", a->id, &err), -DMS_E_NOT_FOUND);
    json_t *list = core_list_json(c, "alice", NULL);
    ck_assert_uint_eq(json_array_size(list), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "name")), "a1");
    json_decref(list);
    droid_free(a);
    droid_free(b);
}
END_TEST

START_TEST(test_list_pages_in_creation_order_from_a_cursor)
{
    droid *d[5];
    for (int i = 0; i < 5; i++) {
        char name[8];
        snprintf(name, sizeof(name), "p%d", i);
        d[i] = create(name, "alice");
    }
    droid_free(create("q0", "bob"));
    dmsd_page pg = {.limit = 2};
    const char *seen[6] = {0};
    size_t n = 0;
    for (int pages = 0; pages < 4; pages++) {
        json_t *list = core_list_json(c, "alice", &pg);
        ck_assert_uint_le(json_array_size(list), 2);
        for (size_t i = 0; i < json_array_size(list); i++)
            seen[n++] = strdup(json_string_value(json_object_get(json_array_get(list, i), "name")));
        json_decref(list);
        if (!pg.more)
            break;
        pg.has_after = true;
        pg.after = pg.next;
        if (pages == 0) /* a droid created between two pages is found at the end */
            droid_free(create("p5", "alice"));
    }
    ck_assert_uint_eq(n, 6);
    for (size_t i = 0; i < n; i++) {
        char want[8];
        snprintf(want, sizeof(want), "p%zu", i);
        ck_assert_str_eq(seen[i], want);
        free((void *)seen[i]);
    }
    for (int i = 0; i < 5; i++)
        droid_free(d[i]);
}
END_TEST

static int to_building(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    return core_tx_set_state(tx, d, DROID_BUILDING, "build 1", err);
}

static int to_running_then_fail(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    free(d->name);
    d->name = strdup("renamed");
    int r = core_tx_set_state(tx, d, DROID_STARTING, "starting", err);
    if (r < 0)
        return r;
    return dms_error_set(err, DMS_E_ENGINE, NULL, "the engine said no");
}

static int impossible(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    return core_tx_set_state(tx, d, DROID_RUNNING, "jump", err); /* pending -> running does not exist */
}

START_TEST(test_failed_mutation_changes_nothing)
{
    droid *d = create("web", "alice");
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, to_running_then_fail, NULL, NULL, &err), -DMS_E_ENGINE);
    droid *g = core_get_copy(c, d->id);
    ck_assert_str_eq(g->name, "web");
    ck_assert_int_eq(g->state, DROID_PENDING);
    droid_free(g);
    ck_assert_uint_eq(count_events(d->id), 1); /* the event of the aborted change was rolled back */
    ck_assert_int_eq(core_mutate(c, NULL, d->id, impossible, NULL, NULL, &err), -DMS_E_CONFLICT);
    ck_assert_uint_eq(count_events(d->id), 1);
    ck_assert_int_eq(core_mutate(c, NULL, d->id, to_building, NULL, NULL, &err), 0);
    ck_assert_uint_eq(count_events(d->id), 2);
    /* another user cannot mutate it */
    ck_assert_int_eq(core_mutate(c, "bob", d->id, to_building, NULL, NULL, &err), -DMS_E_NOT_FOUND);
    droid_free(d);
}
END_TEST

static int with_quote(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    return core_tx_set_state(tx, d, DROID_FAILED, "build failed: \"RUN make\" said\n\tno \\ way", err);
}

START_TEST(test_status_body_is_valid_json)
{
    droid *d = create("web", "alice");
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, with_quote, NULL, NULL, &err), 0);
    char *body = NULL;
    size_t len = 0;
    ck_assert_int_eq(core_status_body(c, "alice", d->id, &body, &len, &err), 0);
    json_error_t jerr;
    json_t *j = json_loadb(body, len, 0, &jerr);
    ck_assert_msg(j != NULL, "status body is not JSON: %s (%s)", body, jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "failed");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
                     "build failed: \"RUN make\" said\n\tno \\ way");
    ck_assert(json_is_null(json_object_get(j, "url")));
    json_decref(j);
    free(body);
    ck_assert_int_eq(core_status_body(c, "bob", d->id, &body, &len, &err), -DMS_E_NOT_FOUND);
    droid_free(d);
}
END_TEST

static int published_on_1234(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)ud;
    d->want_release = 4;
    d->host_port = 1234;
    free(d->run_id);
    d->run_id = strdup("web-r4-1");
    return core_tx_set_state(tx, d, DROID_FAILED, "a \"q\" \\ \n\t\x01 \xff", err);
}

static void route_view(void *ud, const droid *d, json_t *obj)
{
    (void)ud;
    json_object_set_new(obj, "url", core_url_json(d));
    json_object_set_new(obj, "route_url", json_string("http://web.localhost:8000/"));
}

/* The bytes clients have always read (when the body was built by hand), but for control characters, which
 * are escaped the short way now (\n, not \u000a), and text that is not UTF-8, made so. */
START_TEST(test_status_body_keeps_its_members_in_order)
{
    droid *d = create("web", "alice");
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, published_on_1234, NULL, NULL, &err), 0);
    droid *now = core_get_copy(c, d->id);
    char updated[32], want[512];
    dmsd_format_time(now->updated_ns, updated, sizeof(updated));
    char *body = NULL;
    size_t len = 0;
    ck_assert_int_eq(core_status_body(c, "alice", d->id, &body, &len, &err), 0);
    snprintf(
        want, sizeof(want),
        "{\"id\":\"%s\",\"name\":\"web\",\"status\":\"failed\",\"reason\":\"a \\\"q\\\" \\\\ \\n\\t\\u0001 "
        "\xef\xbf\xbd\",\"release\":4,\"url\":\"http://127.0.0.1:1234\",\"updated_at\":\"%s\"}",
        d->id, updated);
    ck_assert_str_eq(body, want);
    ck_assert_uint_eq(len, strlen(want));
    free(body);
    core_set_view(c, &(core_view){.status_json = route_view});
    ck_assert_int_eq(core_status_body(c, "alice", d->id, &body, &len, &err), 0);
    ck_assert_ptr_nonnull(strstr(body, ",\"release\":4,\"url\":\"http://127.0.0.1:1234\",\"route_url\":"
                                       "\"http://web.localhost:8000/\",\"updated_at\":\""));
    free(body);
    core_set_view(c, NULL);
    droid_free(now);
    droid_free(d);
}
END_TEST

static int kicks_builder, kicks_runner;
static void on_build(void *ud)
{
    (void)ud;
    kicks_builder++;
}
static void on_droid(void *ud, const char *id)
{
    (void)ud;
    (void)id;
    kicks_runner++;
}
static int kick(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)d;
    (void)err;
    core_tx_kick_runner(tx);
    return *(int *)ud;
}

START_TEST(test_hooks_fire_only_after_commit)
{
    core_set_hooks(c, &(core_hooks){.build_queued = on_build, .droid_changed = on_droid});
    kicks_builder = kicks_runner = 0;
    droid *d = create("web", "alice");
    ck_assert_int_eq(kicks_builder, 1); /* create queues a build */
    int ok = 0, fail = -DMS_E_INTERNAL;
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, kick, &fail, NULL, &err), fail);
    ck_assert_int_eq(kicks_runner, 0);
    ck_assert_int_eq(core_mutate(c, NULL, d->id, kick, &ok, NULL, &err), 0);
    ck_assert_int_eq(kicks_runner, 1);
    droid_free(d);
}
END_TEST

static int purge(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)d;
    (void)ud;
    (void)err;
    core_tx_purge(tx);
    return 0;
}

START_TEST(test_purge_and_reopen)
{
    droid *a = create("a1", "alice");
    droid *b = create("b1", "alice");
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, a->id, purge, NULL, NULL, &err), 0);
    ck_assert_ptr_null(core_get_copy(c, a->id));
    ck_assert(core_name_available(c, "a1"));
    ck_assert_uint_eq(count_events(a->id), 0);
    ck_assert_int_eq(core_mutate(c, NULL, b->id, to_building, NULL, NULL, &err), 0);
    /* a restart: a new core over the same store sees exactly what was committed */
    core_close(c);
    ck_assert_int_eq(core_open(&c, st, &err), 0);
    ck_assert_uint_eq(core_count(c), 1);
    droid *g = core_get_copy(c, b->id);
    ck_assert_int_eq(g->state, DROID_BUILDING);
    ck_assert_str_eq(g->reason, "build 1");
    droid_free(g);
    droid_free(a);
    droid_free(b);
}
END_TEST

START_TEST(test_many_droids_grow_the_table)
{
    char name[32];
    char ids[200][DROID_ID_SIZE];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "d-%d", i);
        droid *d = create(name, i % 2 ? "alice" : "bob");
        strcpy(ids[i], d->id);
        droid_free(d);
    }
    ck_assert_uint_eq(core_count(c), 200);
    dms_error err = {0};
    for (int i = 0; i < 200; i += 2)
        ck_assert_int_eq(core_mutate(c, NULL, ids[i], purge, NULL, NULL, &err), 0);
    for (int i = 0; i < 200; i++) {
        droid *g = core_get_copy(c, ids[i]);
        ck_assert_int_eq(g != NULL, i % 2 == 1);
        droid_free(g);
    }
    json_t *l = core_list_json(c, "alice", NULL);
    ck_assert_uint_eq(json_array_size(l), 100);
    json_decref(l);
    char **all = core_ids(c);
    size_t n = 0;
    while (all[n])
        n++;
    ck_assert_uint_eq(n, 100);
    dmsu_strv_free(all);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_create_stores_droid_event_and_build);
    tcase_add_test(tc, test_users_see_only_their_own);
    tcase_add_test(tc, test_list_pages_in_creation_order_from_a_cursor);
    tcase_add_test(tc, test_failed_mutation_changes_nothing);
    tcase_add_test(tc, test_status_body_is_valid_json);
    tcase_add_test(tc, test_status_body_keeps_its_members_in_order);
    tcase_add_test(tc, test_hooks_fire_only_after_commit);
    tcase_add_test(tc, test_purge_and_reopen);
    tcase_add_test(tc, test_many_droids_grow_the_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
