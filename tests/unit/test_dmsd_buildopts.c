/* test_dmsd_buildopts.c - a droid's build_timeout_s (build/buildopts.c): taken out of a create or patch body,
 * checked against the operator's maximum with an error naming the field and the setting, null for the
 * default; and the limit a build gets when the maximum was lowered after the droid chose its own. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/build/buildopts.h"
#include "testutil.h"

static int take(const char *json, int max_s, build_opts *o, json_t **left, dms_error *err)
{
    json_t *body = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(body);
    int r = build_opts_take(body, max_s, o, err);
    if (left)
        *left = body;
    else
        json_decref(body);
    return r;
}

START_TEST(test_take_removes_the_key_and_keeps_the_rest)
{
    build_opts o;
    dms_error err = {0};
    json_t *left = NULL;
    ck_assert_int_eq(take("{\"name\":\"a\",\"build_timeout_s\":60}", 60, &o, &left, &err), 0);
    ck_assert(o.has_timeout);
    ck_assert_int_eq(o.timeout_s, 60);
    ck_assert_ptr_null(json_object_get(left, "build_timeout_s"));
    ck_assert_str_eq(json_string_value(json_object_get(left, "name")), "a");
    json_decref(left);
    ck_assert_int_eq(take("{\"name\":\"a\"}", 60, &o, NULL, &err), 0);
    ck_assert(!o.has_timeout);
    ck_assert_int_eq(take("{\"build_timeout_s\":null}", 60, &o, NULL, &err), 0);
    ck_assert(o.has_timeout);
    ck_assert_int_eq(o.timeout_s, 0);                     /* back to the operator's default */
    ck_assert_int_eq(take("[1]", 60, &o, NULL, &err), 0); /* not an object: the droid's parser says so */
}
END_TEST

START_TEST(test_take_refuses_what_is_not_a_number_of_seconds_within_the_maximum)
{
    static const char *const bad[] = {"0", "-5", "1.5", "\"soon\"", "true", "61", "99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        build_opts o;
        dms_error err = {0};
        char json[64];
        snprintf(json, sizeof(json), "{\"build_timeout_s\":%s}", bad[i]);
        ck_assert_int_eq(take(json, 60, &o, NULL, &err), -DMS_E_INVALID);
        ck_assert_str_eq(err.field, "build_timeout_s");
        ck_assert_msg(strstr(err.message, "60"), "%s: %s", bad[i], err.message);
    }
    build_opts o;
    dms_error err = {0};
    ck_assert_int_eq(take("{\"build_timeout_s\":61}", 60, &o, NULL, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "DMS_BUILD_TIMEOUT_MAX_S"));
}
END_TEST

START_TEST(test_a_build_gets_the_droids_limit_never_above_the_maximum)
{
    build_config cfg = {.timeout_s = 1800, .timeout_max_s = 3600};
    ck_assert_int_eq(build_timeout_effective(&cfg, 0), 1800);
    ck_assert_int_eq(build_timeout_effective(&cfg, 5), 5);
    ck_assert_int_eq(build_timeout_effective(&cfg, 3600), 3600);
    cfg.timeout_max_s = 600; /* lowered since the droid chose 3600 */
    ck_assert_int_eq(build_timeout_effective(&cfg, 3600), 600);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_buildopts");
    TCase *tc = tcase_create("buildopts");
    tcase_add_test(tc, test_take_removes_the_key_and_keeps_the_rest);
    tcase_add_test(tc, test_take_refuses_what_is_not_a_number_of_seconds_within_the_maximum);
    tcase_add_test(tc, test_a_build_gets_the_droids_limit_never_above_the_maximum);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
