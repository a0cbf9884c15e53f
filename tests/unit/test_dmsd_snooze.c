/* test_dmsd_snooze.c - snooze inside dmsd: the snoozed state's transitions, the store keeping the new droid
 * fields, PUT /snooze's validation and clearing through core, and what a droid shows of its schedule. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../dms/app.h"
#include "../../dms/common.h"
#include "../../dms/snooze/snooze.h"
#include "../../dms/snooze/tz.h"
#include "testutil.h"

START_TEST(test_snoozed_state_transitions)
{
    ck_assert_str_eq(droid_state_name(DROID_SNOOZED), "snoozed");
    /* to sleep: from running or starting, or back to it after a rebuild that failed while asleep */
    ck_assert(droid_transition_allowed(DROID_RUNNING, DROID_SNOOZED));
    ck_assert(droid_transition_allowed(DROID_STARTING, DROID_SNOOZED));
    ck_assert(droid_transition_allowed(DROID_BUILDING, DROID_SNOOZED));
    ck_assert(droid_transition_allowed(DROID_PENDING, DROID_SNOOZED));
    ck_assert(!droid_transition_allowed(DROID_STOPPED, DROID_SNOOZED));
    ck_assert(!droid_transition_allowed(DROID_FAILED, DROID_SNOOZED));
    ck_assert(!droid_transition_allowed(DROID_SNOOZED, DROID_SNOOZED));
    /* out of it: woken (starting, never straight to running), stopped, a rebuild, a failed one */
    ck_assert(droid_transition_allowed(DROID_SNOOZED, DROID_STARTING));
    ck_assert(!droid_transition_allowed(DROID_SNOOZED, DROID_RUNNING));
    ck_assert(droid_transition_allowed(DROID_SNOOZED, DROID_STOPPED));
    ck_assert(droid_transition_allowed(DROID_SNOOZED, DROID_PENDING));
    ck_assert(droid_transition_allowed(DROID_SNOOZED, DROID_FAILED));
    ck_assert(!droid_state_is_active(DROID_SNOOZED));
}
END_TEST

/* ---- a store and core in a temp dir; a snooze object (it binds the wake listener) ---- */

static char dir[64];
static app A;

static void up(void)
{
    tu_mkdtemp(dir, sizeof(dir)); /* anew per test: CK_FORK=no shares the process */
    char p[512];
    snprintf(p, sizeof(p), "%s/dms.db", dir);
    dms_error err = {0};
    memset(&A, 0, sizeof(A));
    ck_assert_int_eq(store_open(&A.st, p, &err), 0);
    ck_assert_int_eq(core_open(&A.core, A.st, &err), 0);
    ck_assert_msg(snooze_open(&A.snooze, A.core, &err) == 0, "%s", err.message);
}

static void down(void)
{
    snooze_close(A.snooze);
    core_close(A.core);
    store_close(A.st);
    tu_rmtree(dir);
    tz_cache_clear();
}

static char *create(const char *name)
{
    json_t *body = json_pack("{s:s, s:s}", "name", name, "repo", "/nowhere");
    droid *d = droid_new(), *out = NULL;
    dms_error err = {0};
    d->user_id = strdup("u");
    ck_assert_int_eq(droid_parse_create(body, d, &err), 0);
    ck_assert_int_eq(core_create(A.core, d, &out, &err), 0);
    char *id = strdup(out->id);
    droid_free(d);
    droid_free(out);
    json_decref(body);
    return id;
}

static int mut_fields(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    (void)ud;
    (void)err;
    dmsd_set_str(&d->run_id, "x-r1-1");
    dmsd_set_str(&d->run_addr, "172.18.0.9:8080");
    dmsd_set_str(&d->snooze_json, "{\"windows\":[],\"idle_timeout_s\":60}");
    d->asleep = true;
    d->woken_ns = 1234567890123LL;
    d->state = DROID_SNOOZED;
    return 0;
}

START_TEST(test_store_keeps_the_route_and_snooze_fields)
{
    char *id = create("kept");
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(A.core, NULL, id, mut_fields, NULL, NULL, &err), 0);
    droid **all = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_droid_load_all(A.st, &all, &n, &err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(all[0]->run_addr, "172.18.0.9:8080");
    ck_assert_str_eq(all[0]->snooze_json, "{\"windows\":[],\"idle_timeout_s\":60}");
    ck_assert(all[0]->asleep);
    ck_assert_int_eq(all[0]->woken_ns, 1234567890123LL);
    ck_assert_int_eq(all[0]->state, DROID_SNOOZED);
    droid *c = droid_copy(all[0]);
    ck_assert_str_eq(c->run_addr, all[0]->run_addr);
    ck_assert_ptr_ne(c->run_addr, all[0]->run_addr);
    droid_free(c);
    droid_free(all[0]);
    free(all);
    free(id);
}
END_TEST

static int put(const char *id, const char *json, droid **out, dms_error *err)
{
    json_t *body = json ? json_loads(json, 0, NULL) : NULL;
    int r = snooze_set(A.snooze, "u", id, body, out, err);
    json_decref(body);
    return r;
}

START_TEST(test_set_validates_stores_canonically_and_clears)
{
    char *id = create("sched");
    droid *out = NULL;
    dms_error err = {0};
    ck_assert_int_eq(put(id, "{\"windows\":[{\"from\":\"22:00\",\"to\":\"25:00\"}]}", &out, &err),
                     -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "windows[0].to");
    ck_assert_int_eq(put(id, "{\"idle_timeout_s\": 30}", &out, &err), 0);
    ck_assert_str_eq(out->snooze_json, "{\"windows\":[],\"idle_timeout_s\":30}");
    droid_free(out);
    /* another user's droid is not found */
    ck_assert_int_eq(snooze_set(A.snooze, "someone-else", id, NULL, NULL, &err), -DMS_E_NOT_FOUND);
    /* cleared (NULL body = DELETE / empty body) */
    ck_assert_int_eq(put(id, NULL, &out, &err), 0);
    ck_assert_ptr_null(out->snooze_json);
    droid_free(out);
    /* {} is the empty schedule too */
    ck_assert_int_eq(put(id, "{\"idle_timeout_s\": 30}", NULL, &err), 0);
    ck_assert_int_eq(put(id, "{}", &out, &err), 0);
    ck_assert_ptr_null(out->snooze_json);
    droid_free(out);
    free(id);
}
END_TEST

static int mut_asleep(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    (void)ud;
    (void)err;
    d->asleep = true;
    d->want_running = true;
    d->state = DROID_SNOOZED;
    return 0;
}

START_TEST(test_clearing_the_schedule_wakes_a_sleeping_droid)
{
    char *id = create("sleeper");
    dms_error err = {0};
    droid *out = NULL;
    ck_assert_int_eq(put(id, "{\"idle_timeout_s\": 30}", NULL, &err), 0);
    ck_assert_int_eq(core_mutate(A.core, NULL, id, mut_asleep, NULL, NULL, &err), 0);
    ck_assert_int_eq(put(id, NULL, &out, &err), 0);
    ck_assert(!out->asleep);
    ck_assert_int_eq(out->state, DROID_STARTING);
    ck_assert_str_eq(out->reason, "woken: its snooze schedule was cleared");
    ck_assert_int_gt(out->woken_ns, 0);
    droid_free(out);
    free(id);
}
END_TEST

/* "HH:MM" of now + delta_min in UTC */
static void hhmm(int delta_min, char *buf, size_t size)
{
    time_t t = time(NULL) + delta_min * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    ck_assert_uint_gt(strftime(buf, size, "%H:%M", &tm), 0);
}

START_TEST(test_a_droid_shows_its_next_sleep_and_wake)
{
    char *id = create("shown");
    dms_error err = {0};
    char from[8], to[8], body[256];
    hhmm(-60, from, sizeof(from));
    hhmm(60, to, sizeof(to));
    snprintf(body, sizeof(body), "{\"windows\":[{\"from\":\"%s\",\"to\":\"%s\"}],\"idle_timeout_s\":120}",
             from, to);
    droid *d = NULL;
    ck_assert_int_eq(put(id, body, &d, &err), 0);
    /* awake inside a window, never woken in it: it sleeps as soon as nothing is connected */
    d->want_running = true;
    d->state = DROID_RUNNING;
    json_t *o = json_object();
    snooze_describe(A.snooze, d, o);
    json_t *s = json_object_get(o, "snooze");
    ck_assert(json_is_true(json_object_get(s, "in_window")));
    ck_assert(json_is_false(json_object_get(s, "asleep")));
    ck_assert(json_is_string(json_object_get(s, "next_sleep_at")));
    ck_assert(json_is_null(json_object_get(s, "next_wake_at")));
    ck_assert_int_eq(json_integer_value(json_object_get(s, "idle_timeout_s")), 120);
    json_decref(o);
    /* asleep: it wakes at the window's end (before that, on a request) */
    d->asleep = true;
    d->state = DROID_SNOOZED;
    o = json_object();
    snooze_describe(A.snooze, d, o);
    s = json_object_get(o, "snooze");
    ck_assert(json_is_true(json_object_get(s, "asleep")));
    const char *wake = json_string_value(json_object_get(s, "next_wake_at"));
    ck_assert_ptr_nonnull(wake);
    ck_assert_ptr_nonnull(strstr(wake, to)); /* "...T<to>:00.000Z" in UTC */
    ck_assert(json_is_null(json_object_get(s, "next_sleep_at")));
    json_decref(o);
    o = json_object();
    snooze_status(A.snooze, d, o);
    char *status = json_dumps(o, JSON_COMPACT);
    ck_assert_ptr_nonnull(
        strstr(status, "{\"snooze\":{\"asleep\":true,\"in_window\":true,\"next_wake_at\":\""));
    ck_assert_ptr_nonnull(strstr(status, "\",\"next_sleep_at\":null}}"));
    free(status);
    json_decref(o);
    /* no schedule: null */
    free(d->snooze_json);
    d->snooze_json = NULL;
    o = json_object();
    snooze_describe(A.snooze, d, o);
    ck_assert(json_is_null(json_object_get(o, "snooze")));
    json_decref(o);
    droid_free(d);
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_snooze");
    TCase *t = tcase_create("state");
    tcase_add_test(t, test_snoozed_state_transitions);
    suite_add_tcase(s, t);
    t = tcase_create("core");
    tcase_add_checked_fixture(t, up, down);
    tcase_add_test(t, test_store_keeps_the_route_and_snooze_fields);
    tcase_add_test(t, test_set_validates_stores_canonically_and_clears);
    tcase_add_test(t, test_clearing_the_schedule_wakes_a_sleeping_droid);
    tcase_add_test(t, test_a_droid_shows_its_next_sleep_and_wake);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
