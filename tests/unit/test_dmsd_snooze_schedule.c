/* test_dmsd_snooze_schedule.c - time zones (TZif files and their POSIX footer rules) and snooze schedules:
 * strict parsing with named fields, windows across midnight, across DST changes, merged windows. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/snooze/schedule.h"
#include "../../dms/snooze/tz.h"
#include "testutil.h"

static int64_t at(int64_t y, unsigned mo, unsigned d, int h, int mi)
{
    return tz_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60;
}

static const tz *zone(const char *name)
{
    const tz *z = NULL;
    dms_error err = {0};
    ck_assert_msg(tz_get(name, &z, &err) == 0, "%s: %s", name, err.message);
    return z;
}

/* ---- a TZif file written by hand: one type, no transitions, a footer rule ---- */

static size_t put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
    return 4;
}

static size_t header(unsigned char *p, char version, uint32_t typecnt, uint32_t charcnt)
{
    memset(p, 0, 44);
    memcpy(p, "TZif", 4);
    p[4] = (unsigned char)version;
    put32(p + 36, typecnt);
    put32(p + 40, charcnt);
    return 44;
}

static size_t footer_only_tzif(unsigned char *buf, int32_t utoff, const char *rule)
{
    size_t n = 0;
    for (int block = 0; block < 2; block++) {
        n += header(buf + n, '2', 1, 4);
        n += put32(buf + n, (uint32_t)utoff);
        buf[n++] = 0; /* isdst */
        buf[n++] = 0; /* desigidx */
        memcpy(buf + n, "XXX", 4);
        n += 4;
    }
    buf[n++] = '\n';
    memcpy(buf + n, rule, strlen(rule));
    n += strlen(rule);
    buf[n++] = '\n';
    return n;
}

static tz *rule_zone(const char *rule)
{
    unsigned char buf[512];
    size_t n = footer_only_tzif(buf, 0, rule);
    tz *z = NULL;
    dms_error err = {0};
    ck_assert_msg(tz_parse(buf, n, rule, &z, &err) == 0, "%s: %s", rule, err.message);
    return z;
}

/* ---- tz ---- */

START_TEST(test_tz_paris_offsets_follow_the_table)
{
    const tz *p = zone("Europe/Paris");
    ck_assert_int_eq(tz_offset_at(p, at(2024, 1, 15, 12, 0)), 3600);
    ck_assert_int_eq(tz_offset_at(p, at(2024, 7, 15, 12, 0)), 7200);
    /* 2024-03-31 01:00 UTC: CET -> CEST, to the second */
    ck_assert_int_eq(tz_offset_at(p, at(2024, 3, 31, 1, 0) - 1), 3600);
    ck_assert_int_eq(tz_offset_at(p, at(2024, 3, 31, 1, 0)), 7200);
    ck_assert_int_eq(tz_offset_at(p, at(2024, 10, 27, 1, 0) - 1), 7200);
    ck_assert_int_eq(tz_offset_at(p, at(2024, 10, 27, 1, 0)), 3600);
}
END_TEST

START_TEST(test_tz_after_the_table_uses_the_footer_rule)
{
    const tz *p = zone("Europe/Paris");
    /* TZif tables stop in 2037; 2050 comes from "CET-1CEST,M3.5.0,M10.5.0/3" */
    ck_assert_int_eq(tz_offset_at(p, at(2050, 7, 1, 0, 0)), 7200);
    ck_assert_int_eq(tz_offset_at(p, at(2050, 12, 1, 0, 0)), 3600);
    /* last Sunday of March 2050 is the 27th; the change is at 01:00 UTC */
    ck_assert_int_eq(tz_offset_at(p, at(2050, 3, 27, 1, 0) - 1), 3600);
    ck_assert_int_eq(tz_offset_at(p, at(2050, 3, 27, 1, 0)), 7200);
    const tz *ny = zone("America/New_York");
    ck_assert_int_eq(tz_offset_at(ny, at(2060, 1, 10, 0, 0)), -5 * 3600);
    ck_assert_int_eq(tz_offset_at(ny, at(2060, 6, 10, 0, 0)), -4 * 3600);
}
END_TEST

START_TEST(test_tz_southern_hemisphere_dst_spans_the_new_year)
{
    const tz *syd = zone("Australia/Sydney");
    ck_assert_int_eq(tz_offset_at(syd, at(2024, 1, 15, 0, 0)), 11 * 3600);
    ck_assert_int_eq(tz_offset_at(syd, at(2024, 7, 15, 0, 0)), 10 * 3600);
    ck_assert_int_eq(tz_offset_at(syd, at(2055, 1, 15, 0, 0)), 11 * 3600);
    ck_assert_int_eq(tz_offset_at(syd, at(2055, 7, 15, 0, 0)), 10 * 3600);
}
END_TEST

START_TEST(test_tz_utc_and_fixed_zones)
{
    ck_assert_int_eq(tz_offset_at(zone("UTC"), at(2024, 6, 1, 0, 0)), 0);
    ck_assert_int_eq(tz_offset_at(zone("Asia/Kolkata"), at(2024, 6, 1, 0, 0)), 5 * 3600 + 1800);
    ck_assert_int_eq(tz_offset_at(zone("Etc/GMT+3"), at(2024, 6, 1, 0, 0)), -3 * 3600); /* POSIX sign */
}
END_TEST

START_TEST(test_tz_local_time_in_a_gap_moves_forward)
{
    const tz *p = zone("Europe/Paris");
    /* 02:30 does not exist on 2024-03-31: it is read as 03:30 CEST = 01:30 UTC */
    ck_assert_int_eq(tz_to_utc(p, at(2024, 3, 31, 2, 30)), at(2024, 3, 31, 1, 30));
    ck_assert_int_eq(tz_to_local(p, tz_to_utc(p, at(2024, 3, 31, 2, 30))), at(2024, 3, 31, 3, 30));
    /* around it, times are themselves */
    ck_assert_int_eq(tz_to_utc(p, at(2024, 3, 31, 1, 59)), at(2024, 3, 31, 0, 59));
    ck_assert_int_eq(tz_to_utc(p, at(2024, 3, 31, 3, 0)), at(2024, 3, 31, 1, 0));
}
END_TEST

START_TEST(test_tz_local_time_in_an_overlap_is_the_earlier)
{
    const tz *p = zone("Europe/Paris");
    /* 02:30 happens twice on 2024-10-27 (00:30 and 01:30 UTC) */
    ck_assert_int_eq(tz_to_utc(p, at(2024, 10, 27, 2, 30)), at(2024, 10, 27, 0, 30));
    ck_assert_int_eq(tz_to_utc(p, at(2024, 10, 27, 3, 0)), at(2024, 10, 27, 2, 0));
}
END_TEST

START_TEST(test_tz_round_trips_every_hour_of_a_year)
{
    const char *zones[] = {"Europe/Paris", "America/New_York", "Australia/Sydney", "Asia/Tokyo", "UTC"};
    for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
        const tz *z = zone(zones[i]);
        for (int64_t t = at(2024, 1, 1, 0, 0); t < at(2025, 1, 1, 0, 0); t += 3600) {
            int64_t l = tz_to_local(z, t);
            int64_t back = tz_to_utc(z, l);
            /* in an overlap the earlier instant comes back; it shows the same wall time */
            ck_assert_int_eq(tz_to_local(z, back), l);
            ck_assert(back <= t);
        }
    }
}
END_TEST

START_TEST(test_tz_footer_rules)
{
    tz *z = rule_zone("<+0330>-3:30");
    ck_assert_int_eq(tz_offset_at(z, at(2024, 1, 1, 0, 0)), 3 * 3600 + 1800);
    tz_free(z);
    /* rules default to the US ones when only the names are given */
    z = rule_zone("EST5EDT");
    ck_assert_int_eq(tz_offset_at(z, at(2024, 1, 10, 0, 0)), -5 * 3600);
    ck_assert_int_eq(tz_offset_at(z, at(2024, 7, 10, 0, 0)), -4 * 3600);
    /* second Sunday of March 2024 is the 10th, 02:00 EST = 07:00 UTC */
    ck_assert_int_eq(tz_offset_at(z, at(2024, 3, 10, 7, 0) - 1), -5 * 3600);
    ck_assert_int_eq(tz_offset_at(z, at(2024, 3, 10, 7, 0)), -4 * 3600);
    tz_free(z);
    /* Israel's rule: Thursday of the fourth week of March at 26:00 (i.e. Friday 02:00) */
    z = rule_zone("IST-2IDT,M3.4.4/26,M10.5.0");
    ck_assert_int_eq(tz_offset_at(z, at(2024, 3, 29, 0, 0) - 1), 2 * 3600); /* Fri 02:00 IST = 00:00 UTC */
    ck_assert_int_eq(tz_offset_at(z, at(2024, 3, 29, 0, 0)), 3 * 3600);
    tz_free(z);
    /* Julian days without Feb 29: J60 is March 1 in every year */
    z = rule_zone("AAA0BBB,J60/0,J300/0");
    ck_assert_int_eq(tz_offset_at(z, at(2024, 3, 1, 0, 0) - 1), 0);
    ck_assert_int_eq(tz_offset_at(z, at(2024, 3, 1, 0, 0)), 3600);
    tz_free(z);
}
END_TEST

START_TEST(test_tz_refuses_bad_data_and_names)
{
    tz *z = NULL;
    dms_error err = {0};
    const unsigned char junk[] = "not a zone file at all, longer than a header, really it is not";
    ck_assert_int_eq(tz_parse(junk, sizeof(junk), "junk", &z, &err), -DMS_E_INVALID);
    unsigned char buf[512];
    size_t n = footer_only_tzif(buf, 0, "UTC0");
    ck_assert_int_eq(tz_parse(buf, 60, "cut", &z, &err), -DMS_E_INVALID); /* truncated */
    n = footer_only_tzif(buf, 0, "CET-1CEST,M13.5.0,M10.5.0");
    ck_assert_int_eq(tz_parse(buf, n, "month 13", &z, &err), -DMS_E_INVALID);
    ck_assert_int_eq(tz_load("Mars/Olympus_Mons", &z, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(tz_load("Europe", &z, &err), -DMS_E_NOT_FOUND); /* a directory */
    const char *bad[] = {"../../etc/passwd", "/etc/localtime", "Europe//Paris", "Europe/", "", "a b", "-x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!tz_name_valid(bad[i]), "%s", bad[i]);
        ck_assert_int_eq(tz_load(bad[i], &z, &err), -DMS_E_INVALID);
    }
    ck_assert(tz_name_valid("America/Argentina/Buenos_Aires"));
    ck_assert(tz_name_valid("Etc/GMT+3"));
}
END_TEST

/* ---- schedules: parsing ---- */

static int parse(const char *json, snooze_schedule *s, dms_error *err)
{
    json_error_t jerr;
    json_t *j = json_loads(json, JSON_DECODE_ANY, &jerr);
    ck_assert_msg(j != NULL, "test JSON: %s", jerr.text);
    int r = schedule_parse(j, s, err);
    json_decref(j);
    return r;
}

START_TEST(test_schedule_parses_and_prints_canonically)
{
    snooze_schedule s;
    dms_error err = {0};
    ck_assert_int_eq(parse("{\"windows\":[{\"from\":\"22:00\",\"to\":\"07:00\",\"tz\":\"Europe/Paris\"}],"
                           "\"idle_timeout_s\":600}",
                           &s, &err),
                     0);
    ck_assert_int_eq(s.n_windows, 1);
    ck_assert_int_eq(s.windows[0].from_min, 22 * 60);
    ck_assert_int_eq(s.windows[0].to_min, 7 * 60);
    char *str = schedule_to_string(&s);
    ck_assert_str_eq(str, "{\"windows\":[{\"from\":\"22:00\",\"to\":\"07:00\",\"tz\":\"Europe/Paris\"}],"
                          "\"idle_timeout_s\":600}");
    snooze_schedule again;
    ck_assert_int_eq(schedule_parse_string(str, &again, &err), 0);
    ck_assert_int_eq(again.idle_timeout_s, 600);
    free(str);
}
END_TEST

START_TEST(test_schedule_defaults)
{
    snooze_schedule s;
    dms_error err = {0};
    ck_assert_int_eq(parse("{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\"}]}", &s, &err), 0);
    ck_assert_str_eq(tz_name(s.windows[0].zone), "UTC");
    ck_assert_int_eq(s.idle_timeout_s, SNOOZE_IDLE_DEFAULT_S);
    ck_assert_int_eq(parse("{\"idle_timeout_s\": 30}", &s, &err), 0);
    ck_assert_int_eq(s.n_windows, 0);
    ck_assert_int_eq(s.idle_timeout_s, 30);
    const char *empty[] = {"{}", "null", "{\"windows\": []}",
                           "{\"windows\": null, \"idle_timeout_s\": null}"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        ck_assert_int_eq(parse(empty[i], &s, &err), 0);
        ck_assert_msg(schedule_is_empty(&s), "%s", empty[i]);
    }
    ck_assert_int_eq(schedule_parse(NULL, &s, &err), 0);
    ck_assert(schedule_is_empty(&s));
}
END_TEST

START_TEST(test_schedule_errors_name_the_field)
{
    static const struct {
        const char *json, *field;
    } cases[] = {
        {"{\"windows\":[{\"from\":\"25:00\",\"to\":\"07:00\"}]}", "windows[0].from"},
        {"{\"windows\":[{\"from\":\"7:00\",\"to\":\"08:00\"}]}", "windows[0].from"},
        {"{\"windows\":[{\"from\":\"07:60\",\"to\":\"08:00\"}]}", "windows[0].from"},
        {"{\"windows\":[{\"from\":\"07:00\",\"to\":\"24:00\"}]}", "windows[0].to"},
        {"{\"windows\":[{\"from\":\"07:00\",\"to\":\"07:00 \"}]}", "windows[0].to"},
        {"{\"windows\":[{\"from\":700,\"to\":\"08:00\"}]}", "windows[0].from"},
        {"{\"windows\":[{\"to\":\"08:00\"}]}", "windows[0].from"},
        {"{\"windows\":[{\"from\":\"08:00\"}]}", "windows[0].to"},
        {"{\"windows\":[{\"from\":\"08:00\",\"to\":\"08:00\"}]}", "windows[0].to"},
        {"{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\"},{\"from\":\"03:00\",\"to\":\"04:00\",\"tz\":"
         "\"Mars/Base\"}]}",
         "windows[1].tz"},
        {"{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\",\"tz\":\"../../etc/passwd\"}]}",
         "windows[0].tz"},
        {"{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\",\"tz\":3}]}", "windows[0].tz"},
        {"{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\",\"zone\":\"UTC\"}]}", "windows[0].zone"},
        {"{\"windows\":[\"22:00-07:00\"]}", "windows[0]"},
        {"{\"windows\":{\"from\":\"22:00\"}}", "windows"},
        {"{\"idle_timeout_s\":-5}", "idle_timeout_s"},
        {"{\"idle_timeout_s\":0}", "idle_timeout_s"},
        {"{\"idle_timeout_s\":99999999999}", "idle_timeout_s"},
        {"{\"idle_timeout_s\":\"600\"}", "idle_timeout_s"},
        {"{\"idle_timeout_s\":1.5}", "idle_timeout_s"},
        {"{\"idle_timeout\":600}", "idle_timeout"},
        {"[1,2]", "body"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snooze_schedule s;
        dms_error err = {0};
        ck_assert_msg(parse(cases[i].json, &s, &err) == -DMS_E_INVALID, "accepted %s", cases[i].json);
        ck_assert_msg(strcmp(err.field, cases[i].field) == 0, "%s: field %s, not %s (%s)", cases[i].json,
                      err.field, cases[i].field, err.message);
        ck_assert(err.message[0]);
    }
    /* too many windows */
    char big[4096] = "{\"windows\":[";
    for (int i = 0; i <= SNOOZE_WINDOWS_MAX; i++)
        strcat(big, i ? ",{\"from\":\"01:00\",\"to\":\"02:00\"}" : "{\"from\":\"01:00\",\"to\":\"02:00\"}");
    strcat(big, "]}");
    snooze_schedule s;
    dms_error err = {0};
    ck_assert_int_eq(parse(big, &s, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "windows");
    /* the unknown zone is named in the message */
    ck_assert_int_eq(
        parse("{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\",\"tz\":\"Mars/Base\"}]}", &s, &err),
        -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "Mars/Base"));
}
END_TEST

/* ---- schedules: evaluation ---- */

static snooze_schedule sched(const char *json)
{
    snooze_schedule s;
    dms_error err = {0};
    ck_assert_msg(parse(json, &s, &err) == 0, "%s: %s", json, err.message);
    return s;
}

START_TEST(test_window_across_midnight)
{
    snooze_schedule s =
        sched("{\"windows\":[{\"from\":\"22:00\",\"to\":\"07:00\",\"tz\":\"Europe/Paris\"}]}");
    int64_t start, end;
    /* 2024-01-15 23:00 CET = 22:00 UTC: inside, from 21:00 UTC to 06:00 UTC the next day */
    ck_assert(schedule_window_at(&s, at(2024, 1, 15, 22, 0), &start, &end));
    ck_assert_int_eq(start, at(2024, 1, 15, 21, 0));
    ck_assert_int_eq(end, at(2024, 1, 16, 6, 0));
    /* 03:00 CET the next morning is in the same window */
    ck_assert(schedule_window_at(&s, at(2024, 1, 16, 2, 0), &start, &end));
    ck_assert_int_eq(start, at(2024, 1, 15, 21, 0));
    /* the bounds: start inclusive, end exclusive */
    ck_assert(schedule_window_at(&s, at(2024, 1, 15, 21, 0), NULL, NULL));
    ck_assert(!schedule_window_at(&s, at(2024, 1, 16, 6, 0), NULL, NULL));
    /* noon: outside; the next one starts at 22:00 CET */
    ck_assert(!schedule_window_at(&s, at(2024, 1, 16, 11, 0), &start, &end));
    ck_assert_int_eq(schedule_next_start(&s, at(2024, 1, 16, 11, 0)), at(2024, 1, 16, 21, 0));
    /* in summer the same wall times are an hour earlier in UTC */
    ck_assert(schedule_window_at(&s, at(2024, 7, 15, 20, 30), &start, &end));
    ck_assert_int_eq(start, at(2024, 7, 15, 20, 0));
    ck_assert_int_eq(end, at(2024, 7, 16, 5, 0));
}
END_TEST

START_TEST(test_window_across_dst_changes_keeps_wall_times)
{
    snooze_schedule s =
        sched("{\"windows\":[{\"from\":\"22:00\",\"to\":\"07:00\",\"tz\":\"Europe/Paris\"}]}");
    int64_t start, end;
    /* spring: 22:00 CET (21:00 UTC) to 07:00 CEST (05:00 UTC): 8 hours */
    ck_assert(schedule_window_at(&s, at(2024, 3, 31, 2, 0), &start, &end));
    ck_assert_int_eq(start, at(2024, 3, 30, 21, 0));
    ck_assert_int_eq(end, at(2024, 3, 31, 5, 0));
    /* autumn: 22:00 CEST (20:00 UTC) to 07:00 CET (06:00 UTC): 10 hours */
    ck_assert(schedule_window_at(&s, at(2024, 10, 27, 3, 0), &start, &end));
    ck_assert_int_eq(start, at(2024, 10, 26, 20, 0));
    ck_assert_int_eq(end, at(2024, 10, 27, 6, 0));
}
END_TEST

START_TEST(test_window_inside_a_dst_gap_skips_that_day)
{
    snooze_schedule s =
        sched("{\"windows\":[{\"from\":\"02:00\",\"to\":\"03:00\",\"tz\":\"Europe/Paris\"}]}");
    /* 2024-03-31 02:00-03:00 does not exist in Paris: the next start after Saturday noon is Monday 02:00 CEST
     */
    ck_assert_int_eq(schedule_next_start(&s, at(2024, 3, 30, 11, 0)), at(2024, 4, 1, 0, 0));
    ck_assert(!schedule_window_at(&s, at(2024, 3, 31, 1, 0), NULL, NULL));
    /* a window that only starts in the gap begins at the gap's end (03:00 CEST = 01:00 UTC) */
    snooze_schedule g =
        sched("{\"windows\":[{\"from\":\"02:30\",\"to\":\"05:00\",\"tz\":\"Europe/Paris\"}]}");
    int64_t start, end;
    ck_assert(schedule_window_at(&g, at(2024, 3, 31, 2, 0), &start, &end));
    ck_assert_int_eq(start, at(2024, 3, 31, 1, 30));
    ck_assert_int_eq(end, at(2024, 3, 31, 3, 0));
}
END_TEST

START_TEST(test_touching_windows_merge)
{
    snooze_schedule s =
        sched("{\"windows\":[{\"from\":\"22:00\",\"to\":\"00:00\"},{\"from\":\"00:00\",\"to\":\"07:00\"}]}");
    int64_t start, end;
    ck_assert(schedule_window_at(&s, at(2024, 5, 1, 23, 0), &start, &end));
    ck_assert_int_eq(start, at(2024, 5, 1, 22, 0));
    ck_assert_int_eq(end, at(2024, 5, 2, 7, 0));
    ck_assert_int_eq(schedule_next_start(&s, at(2024, 5, 1, 23, 0)), at(2024, 5, 2, 22, 0));
}
END_TEST

START_TEST(test_windows_in_different_zones)
{
    snooze_schedule s = sched("{\"windows\":[{\"from\":\"01:00\",\"to\":\"02:00\",\"tz\":\"Asia/Tokyo\"},"
                              "{\"from\":\"01:00\",\"to\":\"02:00\",\"tz\":\"America/New_York\"}]}");
    /* 01:00 JST = 16:00 UTC the day before; 01:00 EDT = 05:00 UTC */
    ck_assert(schedule_window_at(&s, at(2024, 6, 1, 16, 30), NULL, NULL));
    ck_assert(schedule_window_at(&s, at(2024, 6, 2, 5, 30), NULL, NULL));
    ck_assert(!schedule_window_at(&s, at(2024, 6, 2, 3, 0), NULL, NULL));
    ck_assert_int_eq(schedule_next_start(&s, at(2024, 6, 2, 3, 0)), at(2024, 6, 2, 5, 0));
}
END_TEST

START_TEST(test_no_windows_no_window)
{
    snooze_schedule s = sched("{\"idle_timeout_s\": 60}");
    ck_assert(!schedule_window_at(&s, at(2024, 6, 1, 0, 0), NULL, NULL));
    ck_assert_int_eq(schedule_next_start(&s, at(2024, 6, 1, 0, 0)), 0);
}
END_TEST

static void teardown(void)
{
    tz_cache_clear();
}

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_snooze_schedule");
    TCase *t = tcase_create("tz");
    tcase_add_checked_fixture(t, NULL, teardown);
    tcase_add_test(t, test_tz_paris_offsets_follow_the_table);
    tcase_add_test(t, test_tz_after_the_table_uses_the_footer_rule);
    tcase_add_test(t, test_tz_southern_hemisphere_dst_spans_the_new_year);
    tcase_add_test(t, test_tz_utc_and_fixed_zones);
    tcase_add_test(t, test_tz_local_time_in_a_gap_moves_forward);
    tcase_add_test(t, test_tz_local_time_in_an_overlap_is_the_earlier);
    tcase_add_test(t, test_tz_round_trips_every_hour_of_a_year);
    tcase_add_test(t, test_tz_footer_rules);
    tcase_add_test(t, test_tz_refuses_bad_data_and_names);
    suite_add_tcase(s, t);
    t = tcase_create("schedule");
    tcase_add_checked_fixture(t, NULL, teardown);
    tcase_add_test(t, test_schedule_parses_and_prints_canonically);
    tcase_add_test(t, test_schedule_defaults);
    tcase_add_test(t, test_schedule_errors_name_the_field);
    tcase_add_test(t, test_window_across_midnight);
    tcase_add_test(t, test_window_across_dst_changes_keeps_wall_times);
    tcase_add_test(t, test_window_inside_a_dst_gap_skips_that_day);
    tcase_add_test(t, test_touching_windows_merge);
    tcase_add_test(t, test_windows_in_different_zones);
    tcase_add_test(t, test_no_windows_no_window);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
