/* test_dmsd_sqlutil.c - the store's query helper (store/sqlutil.c): parameters bound in order (NULL text as
 * SQL NULL), every row handed over or a stop on the callback's word, errors mapped with the statement's
 * context, and the growing array the table files collect rows in. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/store/sqlutil.h"
#include "testutil.h"

static sqlite3 *db;

static void setup(void)
{
    ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
    ck_assert_int_eq(
        sqlite3_exec(db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER, note TEXT)", NULL, NULL, NULL),
        SQLITE_OK);
}

static void teardown(void)
{
    sqlite3_close(db);
}

static int put(const char *k, int64_t v, const char *note, dms_error *err)
{
    return sqlutil_query(db, "put", "INSERT INTO t (k, v, note) VALUES (?, ?, ?)",
                         SQL_ARGS(SQL_TEXT(k), SQL_INT(v), SQL_TEXT(note)), NULL, NULL, err);
}

typedef struct seen {
    int calls;
    int stop_at; /* 1-based; 0: never */
    int64_t sum;
    bool null_note;
} seen;

static int count_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)err;
    seen *s = ud;
    s->calls++;
    s->sum += sqlite3_column_int64(st, 0);
    if (sqlite3_column_type(st, 1) == SQLITE_NULL)
        s->null_note = true;
    return s->calls == s->stop_at ? 1 : 0;
}

START_TEST(test_query_binds_in_order_and_hands_over_every_row)
{
    dms_error err = {0};
    ck_assert_int_eq(put("a", 1, "x", &err), 0); /* a statement without rows: 0 */
    ck_assert_int_eq(put("b", 2, NULL, &err), 0);
    ck_assert_int_eq(put("c", 40000000000LL, "z", &err), 0); /* 64 bits kept */
    ck_assert_int_eq(sqlite3_changes(db), 1);
    seen s = {0};
    ck_assert_int_eq(sqlutil_query(db, "sum", "SELECT v, note FROM t WHERE k >= ?1 ORDER BY k",
                                   SQL_ARGS(SQL_TEXT("a")), count_row, &s, &err),
                     3);
    ck_assert_int_eq(s.calls, 3);
    ck_assert_int_eq(s.sum, 40000000003LL);
    ck_assert(s.null_note); /* NULL text bound as SQL NULL */
}
END_TEST

START_TEST(test_query_stops_where_the_callback_says)
{
    dms_error err = {0};
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_int_eq(put(k, i, "n", &err), 0);
    }
    seen s = {.stop_at = 2};
    ck_assert_int_eq(
        sqlutil_query(db, "first two", "SELECT v, note FROM t ORDER BY k", SQL_NOARGS, count_row, &s, &err),
        2);
    ck_assert_int_eq(s.calls, 2);
    ck_assert_int_eq(s.sum, 1);
}
END_TEST

static int fail_row(sqlite3_stmt *st, void *ud, dms_error *err)
{
    (void)st;
    (void)ud;
    return dms_error_set(err, DMS_E_INVALID, "row", "bad row");
}

START_TEST(test_query_errors_carry_their_context)
{
    dms_error err = {0};
    ck_assert_int_eq(put("a", 1, NULL, &err), 0);
    /* a key taken: CONFLICT, naming the statement */
    ck_assert_int_eq(put("a", 2, NULL, &err), -DMS_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(err.message, "put: "));
    /* SQL that does not prepare */
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sqlutil_query(db, "x", "SELECT nope FROM t", SQL_NOARGS, NULL, NULL, &err),
                     -DMS_E_INTERNAL);
    ck_assert_ptr_nonnull(strstr(err.message, "store: prepare: "));
    /* a callback's error is the query's */
    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(sqlutil_query(db, "x", "SELECT v FROM t", SQL_NOARGS, fail_row, NULL, &err),
                     -DMS_E_INVALID);
    ck_assert_str_eq(err.message, "bad row");
}
END_TEST

START_TEST(test_vec_grows_and_zeroes_each_item)
{
    dms_error err = {0};
    sqlutil_vec v = {.size = sizeof(int64_t[3])};
    for (int i = 0; i < 100; i++) {
        int64_t *item = sqlutil_vec_push(&v, &err);
        ck_assert_ptr_nonnull(item);
        ck_assert(item[0] == 0 && item[1] == 0 && item[2] == 0);
        item[0] = i;
    }
    ck_assert_uint_eq(v.n, 100);
    ck_assert_int_eq(((int64_t(*)[3])v.items)[99][0], 99);
    free(v.items);
}
END_TEST

static Suite *suite(void)
{
    Suite *su = suite_create("dmsd_sqlutil");
    TCase *tc = tcase_create("sqlutil");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_query_binds_in_order_and_hands_over_every_row);
    tcase_add_test(tc, test_query_stops_where_the_callback_says);
    tcase_add_test(tc, test_query_errors_carry_their_context);
    tcase_add_test(tc, test_vec_grows_and_zeroes_each_item);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    return tu_run(suite());
}
