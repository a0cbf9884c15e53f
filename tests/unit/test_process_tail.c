/* test_process_tail.c - the shim's per-stream tail ring (executor/process/shim_tail.c, compiled in): whatever
 * the sizes and splits of the appends, it holds exactly the last cap bytes, and says whether there were more.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "process/shim.h"
#include "testutil.h"

#define ROUNDS 2000

/* Appends random chunks to a ring of cap bytes and to a reference buffer; compares the excerpt with the tail
 * of the reference after every append. */
static void check_cap(size_t cap, unsigned seed)
{
    srand(seed);
    proc_tail t;
    ck_assert_int_eq(proc_tail_init(&t, cap), 0);
    size_t ref_cap = 1 << 20, ref_len = 0;
    char *ref = malloc(ref_cap);
    ck_assert_ptr_nonnull(ref);
    for (int i = 0; i < ROUNDS && ref_len < ref_cap - 4096; i++) {
        /* Mostly small chunks (wrap-around), sometimes one larger than the ring. */
        size_t n = rand() % 8 == 0 ? (size_t)(rand() % (int)(3 * cap + 2)) : (size_t)(rand() % 7);
        if (ref_len + n > ref_cap)
            break;
        for (size_t k = 0; k < n; k++)
            ref[ref_len + k] = (char)('a' + (ref_len + k) % 26);
        proc_tail_append(&t, ref + ref_len, n);
        ref_len += n;
        dms_exec_result res = {0};
        ck_assert_int_eq(proc_tail_to_result(&t, &res, DMS_STREAM_STDOUT), 0);
        size_t want = ref_len < cap ? ref_len : cap;
        ck_assert_uint_eq(res.stdout_len, want);
        ck_assert_msg(memcmp(res.stdout_data, ref + ref_len - want, want) == 0, "cap %zu after %zu bytes",
                      cap, ref_len);
        ck_assert_int_eq(res.stdout_truncated, ref_len > cap);
        ck_assert_int_eq(res.stdout_data[want], '\0');
        dms_exec_result_clear(&res);
    }
    ck_assert_uint_eq(t.total, ref_len);
    free(ref);
    proc_tail_free(&t);
}

START_TEST(test_process_tail_keeps_exactly_the_last_bytes_across_wraps)
{
    size_t caps[] = {1, 2, 3, 7, 64, 1000, 4096};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        check_cap(caps[i], (unsigned)(i + 1));
}
END_TEST

START_TEST(test_process_tail_of_zero_bytes_is_empty_and_counts_truncation)
{
    proc_tail t;
    ck_assert_int_eq(proc_tail_init(&t, 0), 0);
    proc_tail_append(&t, "abc", 3);
    dms_exec_result res = {0};
    ck_assert_int_eq(proc_tail_to_result(&t, &res, DMS_STREAM_STDERR), 0);
    ck_assert_uint_eq(res.stderr_len, 0);
    ck_assert(res.stderr_truncated);
    dms_exec_result_clear(&res);
    proc_tail_free(&t);

    ck_assert_int_eq(proc_tail_init(&t, 16), 0);
    ck_assert_int_eq(proc_tail_to_result(&t, &res, DMS_STREAM_STDOUT), 0);
    ck_assert_uint_eq(res.stdout_len, 0);
    ck_assert(!res.stdout_truncated);
    dms_exec_result_clear(&res);
    proc_tail_free(&t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("process_tail");
    TCase *tc = tcase_create("ring");
    tcase_add_test(tc, test_process_tail_keeps_exactly_the_last_bytes_across_wraps);
    tcase_add_test(tc, test_process_tail_of_zero_bytes_is_empty_and_counts_truncation);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
