/* test_result.c - execution results: names, copies, output excerpts and the JSON form kept in result.json
 * (round trip, including output that is not valid UTF-8, and the truncated flags). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dms/result.h>

#include "testutil.h"
#include "util.h"

static void round_trip(const dms_exec_result *in, dms_exec_result *out)
{
    char *json = dms_exec_result_to_json(in);
    ck_assert_ptr_nonnull(json);
    dms_error err = {0};
    int r = dms_exec_result_from_json(json, strlen(json), out, &err);
    ck_assert_msg(r == 0, "from_json: %s (json %s)", err.message, json);
    free(json);
}

START_TEST(test_result_names_are_stable)
{
    ck_assert_str_eq(dms_outcome_name(DMS_OUTCOME_EXITED), "exited");
    ck_assert_str_eq(dms_outcome_name(DMS_OUTCOME_OOM_KILLED), "oom_killed");
    ck_assert_str_eq(dms_outcome_name(DMS_OUTCOME_ENGINE_ERROR), "engine_error");
    ck_assert_str_eq(dms_outcome_name((dms_exec_outcome)99), "unknown");
    ck_assert_str_eq(dms_outcome_name((dms_exec_outcome)-1), "unknown");
    ck_assert_str_eq(dms_state_name(DMS_STATE_STOPPING), "stopping");
    ck_assert_str_eq(dms_state_name((dms_exec_state)42), "unknown");
    ck_assert_str_eq(dms_health_name(DMS_HEALTH_NONE), "none");
    ck_assert_str_eq(dms_health_name(DMS_HEALTH_STARTING), "starting");
    ck_assert_str_eq(dms_health_name(DMS_HEALTH_HEALTHY), "healthy");
    ck_assert_str_eq(dms_health_name(DMS_HEALTH_UNHEALTHY), "unhealthy");
    ck_assert_str_eq(dms_health_name((dms_health)7), "unknown");
}
END_TEST

START_TEST(test_result_json_round_trip_keeps_every_field)
{
    for (int o = DMS_OUTCOME_NONE; o <= DMS_OUTCOME_ENGINE_ERROR; o++) {
        dms_exec_result a = {.outcome = (dms_exec_outcome)o,
                             .exit_code = o == DMS_OUTCOME_EXITED ? 3 : -1,
                             .signal = 9,
                             .oom_killed = o == DMS_OUTCOME_OOM_KILLED,
                             .started_at_ns = 1700000000123456789LL,
                             .finished_at_ns = 1700000001987654321LL};
        snprintf(a.error, sizeof(a.error), "why \"%d\"\n", o);
        ck_assert_int_eq(dms_exec_result_set_output(&a, DMS_STREAM_STDOUT, "out\n", 4, true), 0);
        ck_assert_int_eq(dms_exec_result_set_output(&a, DMS_STREAM_STDERR, "err\n", 4, false), 0);
        dms_exec_result b = {0};
        round_trip(&a, &b);
        ck_assert_int_eq(b.outcome, a.outcome);
        ck_assert_int_eq(b.exit_code, a.exit_code);
        ck_assert_int_eq(b.signal, 9);
        ck_assert_int_eq(b.oom_killed, a.oom_killed);
        ck_assert_int_eq(b.started_at_ns, a.started_at_ns);
        ck_assert_int_eq(b.finished_at_ns, a.finished_at_ns);
        ck_assert_str_eq(b.stdout_data, "out\n");
        ck_assert_uint_eq(b.stdout_len, 4);
        ck_assert(b.stdout_truncated);
        ck_assert_str_eq(b.stderr_data, "err\n");
        ck_assert(!b.stderr_truncated);
        ck_assert_str_eq(b.error, a.error);
        dms_exec_result_clear(&a);
        dms_exec_result_clear(&b);
    }
}
END_TEST

START_TEST(test_result_json_sanitises_binary_output)
{
    dms_exec_result a = {.outcome = DMS_OUTCOME_EXITED};
    const char bin[] = "ok\0\xff\xfe caf\xC3\xA9 \xC3";
    ck_assert_int_eq(dms_exec_result_set_output(&a, DMS_STREAM_STDOUT, bin, sizeof(bin) - 1, false), 0);
    ck_assert_uint_eq(a.stdout_len, sizeof(bin) - 1);
    ck_assert_mem_eq(a.stdout_data, bin, sizeof(bin) - 1);
    snprintf(a.error, sizeof(a.error), "bad \xff byte");
    char *json = dms_exec_result_to_json(&a);
    ck_assert_ptr_nonnull(json); /* jansson would refuse invalid UTF-8: it must have been replaced */
    dms_exec_result b = {0};
    ck_assert_int_eq(dms_exec_result_from_json(json, strlen(json), &b, NULL), 0);
    const char want[] = "ok\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD caf\xC3\xA9 \xEF\xBF\xBD";
    ck_assert_uint_eq(b.stdout_len, sizeof(want) - 1);
    ck_assert_mem_eq(b.stdout_data, want, sizeof(want) - 1);
    ck_assert_str_eq(b.error, "bad \xEF\xBF\xBD byte");
    free(json);
    dms_exec_result_clear(&a);
    dms_exec_result_clear(&b);
}
END_TEST

START_TEST(test_result_json_without_output_round_trips_as_empty)
{
    dms_exec_result a = {.outcome = DMS_OUTCOME_FAILED, .exit_code = -1};
    snprintf(a.error, sizeof(a.error), "image missing");
    dms_exec_result b = {0};
    round_trip(&a, &b);
    ck_assert_int_eq(b.outcome, DMS_OUTCOME_FAILED);
    ck_assert_uint_eq(b.stdout_len, 0);
    ck_assert_uint_eq(b.stderr_len, 0);
    ck_assert_str_eq(b.error, "image missing");
    dms_exec_result_clear(&b);
}
END_TEST

START_TEST(test_result_from_json_accepts_only_required_keys)
{
    const char *j = "{\"outcome\": \"exited\", \"exit_code\": 0, \"signal\": 0}";
    dms_exec_result b;
    memset(&b, 0x5a, sizeof(b)); /* from_json must initialise everything */
    ck_assert_int_eq(dms_exec_result_from_json(j, strlen(j), &b, NULL), 0);
    ck_assert_int_eq(b.outcome, DMS_OUTCOME_EXITED);
    ck_assert_ptr_null(b.stdout_data);
    ck_assert_ptr_null(b.stderr_data);
    ck_assert(!b.oom_killed);
    ck_assert_str_eq(b.error, "");
    dms_exec_result_clear(&b);
    /* Optional keys given in another order and some absent. */
    j = "{\"stderr\": \"e\", \"error\": \"x\", \"exit_code\": 2, \"signal\": 0, \"outcome\": \"signaled\"}";
    ck_assert_int_eq(dms_exec_result_from_json(j, strlen(j), &b, NULL), 0);
    ck_assert_int_eq(b.outcome, DMS_OUTCOME_SIGNALED);
    ck_assert_str_eq(b.stderr_data, "e");
    ck_assert_str_eq(b.error, "x");
    dms_exec_result_clear(&b);
}
END_TEST

START_TEST(test_result_from_json_refuses_garbage_as_protocol_error)
{
    dms_exec_result b = {0};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_result_from_json("{", 1, &b, &err), -DMS_E_PROTOCOL);
    const char *j = "{\"outcome\": \"exited\"}";
    ck_assert_int_eq(dms_exec_result_from_json(j, strlen(j), &b, &err), -DMS_E_PROTOCOL);
    ck_assert_ptr_nonnull(strstr(err.message, "exit_code"));
    j = "{\"outcome\": 1, \"exit_code\": 0, \"signal\": 0}";
    ck_assert_int_eq(dms_exec_result_from_json(j, strlen(j), &b, &err), -DMS_E_PROTOCOL);
    dms_exec_result_clear(&b);
}
END_TEST

START_TEST(test_result_copy_is_deep)
{
    dms_exec_result a = {.outcome = DMS_OUTCOME_EXITED, .exit_code = 7};
    dms_exec_result_set_output(&a, DMS_STREAM_STDOUT, "abc", 3, true);
    dms_exec_result b = {0};
    ck_assert_int_eq(dms_exec_result_copy(&b, &a, NULL), 0);
    ck_assert_ptr_ne(a.stdout_data, b.stdout_data);
    ck_assert_str_eq(b.stdout_data, "abc");
    ck_assert(b.stdout_truncated);
    ck_assert_ptr_null(b.stderr_data);
    dms_exec_result_clear(&a);
    ck_assert_str_eq(b.stdout_data, "abc");
    ck_assert_int_eq(b.exit_code, 7);
    dms_exec_result_clear(&b);
    ck_assert_ptr_null(b.stdout_data);
    ck_assert_int_eq(b.exit_code, 0);
    dms_exec_result_clear(NULL);
}
END_TEST

START_TEST(test_result_set_output_replaces_and_terminates)
{
    dms_exec_result a = {0};
    dms_exec_result_set_output(&a, DMS_STREAM_STDERR, "first", 5, false);
    dms_exec_result_set_output(&a, DMS_STREAM_STDERR, "xy", 2, true);
    ck_assert_str_eq(a.stderr_data, "xy");
    ck_assert_uint_eq(a.stderr_len, 2);
    ck_assert(a.stderr_truncated);
    dms_exec_result_set_output(&a, DMS_STREAM_STDOUT, NULL, 0, false);
    ck_assert_str_eq(a.stdout_data, "");
    dms_exec_result_clear(&a);
}
END_TEST

START_TEST(test_result_large_output_round_trips)
{
    enum { BIG = 1 << 20 };
    char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)('a' + i % 26);
    dms_exec_result a = {.outcome = DMS_OUTCOME_EXITED};
    dms_exec_result_set_output(&a, DMS_STREAM_STDOUT, big, BIG, true);
    dms_exec_result b = {0};
    round_trip(&a, &b);
    ck_assert_uint_eq(b.stdout_len, BIG);
    ck_assert_mem_eq(b.stdout_data, big, BIG);
    free(big);
    dms_exec_result_clear(&a);
    dms_exec_result_clear(&b);
}
END_TEST

static Suite *result_suite(void)
{
    Suite *s = suite_create("result");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_result_names_are_stable);
    tcase_add_test(tc, test_result_json_round_trip_keeps_every_field);
    tcase_add_test(tc, test_result_json_sanitises_binary_output);
    tcase_add_test(tc, test_result_json_without_output_round_trips_as_empty);
    tcase_add_test(tc, test_result_from_json_accepts_only_required_keys);
    tcase_add_test(tc, test_result_from_json_refuses_garbage_as_protocol_error);
    tcase_add_test(tc, test_result_copy_is_deep);
    tcase_add_test(tc, test_result_set_output_replaces_and_terminates);
    tcase_add_test(tc, test_result_large_output_round_trips);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(result_suite());
}
