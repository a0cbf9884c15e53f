/* test_dmsd_state.c - the droid state machine: names, the transition table, and its checks. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/build/builder.h"
#include "../../dms/droids/state.h"
#include "../../dms/run/runner.h"
#include "testutil.h"

START_TEST(test_state_names_round_trip)
{
    for (int s = 0; s < DROID_STATE_COUNT; s++)
        ck_assert_int_eq(droid_state_from_name(droid_state_name((droid_state)s)), s);
    ck_assert_str_eq(droid_state_name(DROID_RUNNING), "running");
    ck_assert_str_eq(droid_state_name((droid_state)99), "unknown");
    ck_assert_int_eq(droid_state_from_name("snoozed"), DROID_SNOOZED);
    ck_assert_int_eq(droid_state_from_name("asleep"), -1);
    ck_assert_int_eq(droid_state_from_name(NULL), -1);
}
END_TEST

START_TEST(test_happy_path_is_allowed)
{
    ck_assert(droid_transition_allowed(DROID_PENDING, DROID_BUILDING));
    ck_assert(droid_transition_allowed(DROID_BUILDING, DROID_STARTING));
    ck_assert(droid_transition_allowed(DROID_STARTING, DROID_RUNNING));
}
END_TEST

START_TEST(test_running_is_reached_only_from_starting)
{
    for (int s = 0; s < DROID_STATE_COUNT; s++)
        if (s != DROID_STARTING && s != DROID_BUILDING)
            ck_assert_msg(!droid_transition_allowed((droid_state)s, DROID_RUNNING), "%s -> running",
                          droid_state_name((droid_state)s));
    /* building -> running: a rebuild failed while the old container kept serving */
    ck_assert(droid_transition_allowed(DROID_BUILDING, DROID_RUNNING));
}
END_TEST

START_TEST(test_self_transitions_only_for_starting)
{
    for (int s = 0; s < DROID_STATE_COUNT; s++)
        ck_assert_int_eq(droid_transition_allowed((droid_state)s, (droid_state)s), s == DROID_STARTING);
}
END_TEST

START_TEST(test_every_state_can_fail_or_stop)
{
    for (int s = 0; s < DROID_STATE_COUNT; s++) {
        if (s != DROID_STOPPED)
            ck_assert(droid_transition_allowed((droid_state)s, DROID_STOPPED));
        if (s != DROID_FAILED && s != DROID_STOPPED)
            ck_assert(droid_transition_allowed((droid_state)s, DROID_FAILED));
    }
    ck_assert(!droid_transition_allowed(DROID_STOPPED, DROID_FAILED));
}
END_TEST

START_TEST(test_check_needs_reason_and_names_states)
{
    dms_error err = {0};
    ck_assert_int_eq(droid_transition_check(DROID_PENDING, DROID_BUILDING, "build 1", &err), 0);
    ck_assert_int_eq(droid_transition_check(DROID_PENDING, DROID_BUILDING, "", &err), -DMS_E_INVALID);
    ck_assert_int_eq(droid_transition_check(DROID_PENDING, DROID_BUILDING, NULL, &err), -DMS_E_INVALID);
    ck_assert_int_eq(droid_transition_check(DROID_STOPPED, DROID_RUNNING, "x", &err), -DMS_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(err.message, "stopped"));
    ck_assert_ptr_nonnull(strstr(err.message, "running"));
    ck_assert(!droid_transition_allowed((droid_state)-1, DROID_RUNNING));
    ck_assert(!droid_transition_allowed(DROID_PENDING, DROID_STATE_COUNT));
}
END_TEST

START_TEST(test_active_states)
{
    ck_assert(droid_state_is_active(DROID_STARTING));
    ck_assert(droid_state_is_active(DROID_RUNNING));
    ck_assert(!droid_state_is_active(DROID_STOPPED));
    ck_assert(!droid_state_is_active(DROID_FAILED));
    ck_assert(!droid_state_is_active(DROID_BUILDING));
    ck_assert(!droid_state_is_active(DROID_SNOOZED));
}
END_TEST

START_TEST(test_retry_backoff_doubles_and_is_capped)
{
    ck_assert_int_eq(runner_backoff_ms(1), RUN_BACKOFF_BASE_MS);
    ck_assert_int_eq(runner_backoff_ms(2), 2 * RUN_BACKOFF_BASE_MS);
    ck_assert_int_eq(runner_backoff_ms(4), 8 * RUN_BACKOFF_BASE_MS);
    ck_assert_int_eq(runner_backoff_ms(40), RUN_BACKOFF_MAX_MS);
    ck_assert_int_eq(builder_backoff_ms(1), BUILD_BACKOFF_BASE_MS);
    ck_assert_int_eq(builder_backoff_ms(3), 4 * BUILD_BACKOFF_BASE_MS);
    ck_assert_int_eq(builder_backoff_ms(100), BUILD_BACKOFF_MAX_MS);
    for (int i = 1; i < 20; i++)
        ck_assert(runner_backoff_ms(i + 1) >= runner_backoff_ms(i));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_state");
    TCase *tc = tcase_create("state");
    tcase_add_test(tc, test_state_names_round_trip);
    tcase_add_test(tc, test_happy_path_is_allowed);
    tcase_add_test(tc, test_running_is_reached_only_from_starting);
    tcase_add_test(tc, test_self_transitions_only_for_starting);
    tcase_add_test(tc, test_every_state_can_fail_or_stop);
    tcase_add_test(tc, test_check_needs_reason_and_names_states);
    tcase_add_test(tc, test_active_states);
    tcase_add_test(tc, test_retry_backoff_doubles_and_is_capped);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
