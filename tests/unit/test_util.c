/* test_util.c - the small helpers of libdms-executor: errors, string vectors, capped buffers, UTF-8
 * sanitising, integer parsing, and the state-file helpers (atomic write, capped read, rm -rf, owner locks).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dms/backend.h>

#include "util.h"
#include "testutil.h"

/* ---- errors ---- */

START_TEST(test_error_set_returns_negative_code_and_fills_every_field)
{
    dms_error err = {0};
    int r = dms_error_set(&err, DMS_E_INVALID, "engine.image", "image %s is bad", "x");
    ck_assert_int_eq(r, -DMS_E_INVALID);
    ck_assert_int_eq(err.code, DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.image");
    ck_assert_str_eq(err.message, "image x is bad");
    ck_assert(!err.retryable);
    ck_assert_int_eq(err.sys_errno, 0);
    /* A negative code is taken as its positive form. */
    ck_assert_int_eq(dms_error_set(&err, -DMS_E_ENGINE, NULL, "daemon"), -DMS_E_ENGINE);
    ck_assert_int_eq(err.code, DMS_E_ENGINE);
    ck_assert_str_eq(err.field, "");
    ck_assert(err.retryable);
}
END_TEST

START_TEST(test_error_set_accepts_null_err)
{
    ck_assert_int_eq(dms_error_set(NULL, DMS_E_IO, NULL, "x"), -DMS_E_IO);
    ck_assert_int_eq(dms_error_set_errno(NULL, DMS_E_IO, ENOENT, "x"), -DMS_E_IO);
    ck_assert_int_eq(dms_error_prefix(NULL, "p"), -DMS_E_INTERNAL);
    dms_error_clear(NULL);
}
END_TEST

START_TEST(test_error_set_errno_appends_strerror_and_records_errno)
{
    dms_error err = {0};
    dms_error_set_errno(&err, DMS_E_IO, ENOENT, "open %s", "/x");
    ck_assert_int_eq(err.sys_errno, ENOENT);
    char want[128];
    snprintf(want, sizeof(want), "open /x: %s", strerror(ENOENT));
    ck_assert_str_eq(err.message, want);
}
END_TEST

START_TEST(test_error_message_is_truncated_not_overflowed)
{
    dms_error err = {0};
    char big[DMS_ERROR_MSG_MAX * 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    dms_error_set(&err, DMS_E_INVALID, big, "%s", big);
    ck_assert_uint_eq(strlen(err.message), DMS_ERROR_MSG_MAX - 1);
    ck_assert_uint_eq(strlen(err.field), DMS_ERROR_FIELD_MAX - 1);
    dms_error_set_errno(&err, DMS_E_IO, EIO, "%s", big);
    ck_assert_uint_eq(strlen(err.message), DMS_ERROR_MSG_MAX - 1);
    dms_error_prefix(&err, "%s", big);
    ck_assert_uint_eq(strlen(err.message), DMS_ERROR_MSG_MAX - 1);
}
END_TEST

START_TEST(test_error_prefix_keeps_code_and_prepends_context)
{
    dms_error err = {0};
    dms_error_set(&err, DMS_E_NOT_FOUND, "execution_id", "no such execution");
    ck_assert_int_eq(dms_error_prefix(&err, "wait %s: ", "e1"), -DMS_E_NOT_FOUND);
    ck_assert_str_eq(err.message, "wait e1: no such execution");
    ck_assert_str_eq(err.field, "execution_id");
    dms_error_clear(&err);
    ck_assert_int_eq(err.code, DMS_OK);
    ck_assert_str_eq(err.message, "");
}
END_TEST

START_TEST(test_error_code_names_are_stable_and_never_null)
{
    ck_assert_str_eq(dms_error_code_name(DMS_E_INVALID), "INVALID");
    ck_assert_str_eq(dms_error_code_name(-DMS_E_NOT_FOUND), "NOT_FOUND");
    ck_assert_str_eq(dms_error_code_name(DMS_E_INTERNAL), "INTERNAL");
    ck_assert_str_eq(dms_error_code_name(DMS_E_QUOTA), "QUOTA");
    ck_assert(!dms_error_code_retryable(DMS_E_QUOTA));
    ck_assert_str_eq(dms_error_code_name(DMS_E__COUNT), "UNKNOWN");
    ck_assert_str_eq(dms_error_code_name(12345), "UNKNOWN");
    for (int c = 0; c < DMS_E__COUNT; c++)
        ck_assert_str_ne(dms_error_code_name(c), "UNKNOWN");
    ck_assert(dms_error_code_retryable(DMS_E_UNAVAILABLE));
    ck_assert(!dms_error_code_retryable(DMS_E_BUILD_FAILED));
    ck_assert(!dms_error_code_retryable(DMS_E_INVALID));
    ck_assert_str_eq(dms_error_code_name(DMS_E_FORBIDDEN), "FORBIDDEN");
    ck_assert(!dms_error_code_retryable(DMS_E_FORBIDDEN));
}
END_TEST

/* ---- string vectors, kv ---- */

START_TEST(test_strv_copy_push_len_and_free)
{
    char *src[] = {"a", "bb", NULL};
    char **c = dmsu_strv_copy(src);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(dmsu_strv_len(c), 2);
    ck_assert_ptr_ne(c[0], src[0]);
    ck_assert_str_eq(c[1], "bb");
    ck_assert_int_eq(dmsu_strv_push(&c, "ccc"), 0);
    ck_assert_uint_eq(dmsu_strv_len(c), 3);
    ck_assert_str_eq(c[2], "ccc");
    ck_assert_ptr_null(c[3]);
    dmsu_strv_free(c);
    ck_assert_ptr_null(dmsu_strv_copy(NULL));
    ck_assert_uint_eq(dmsu_strv_len(NULL), 0);
    char **v = NULL;
    ck_assert_int_eq(dmsu_strv_push(&v, "x"), 0);
    ck_assert_uint_eq(dmsu_strv_len(v), 1);
    dmsu_strv_free(v);
    dmsu_strv_free(NULL);
}
END_TEST

START_TEST(test_strv_contains_matches_whole_entries_and_accepts_null)
{
    char *v[] = {"NET_RAW", "ALL", NULL};
    ck_assert(dmsu_strv_contains(v, "ALL"));
    ck_assert(!dmsu_strv_contains(v, "NET"));
    ck_assert(!dmsu_strv_contains(NULL, "ALL"));
}
END_TEST

START_TEST(test_kv_get_matches_whole_keys_only)
{
    char *kv[] = {"host=unix:///x", "hostname=h", "empty=", "noeq", NULL};
    ck_assert_str_eq(dmsu_kv_get(kv, "host"), "unix:///x");
    ck_assert_str_eq(dmsu_kv_get(kv, "hostname"), "h");
    ck_assert_str_eq(dmsu_kv_get(kv, "empty"), "");
    ck_assert_ptr_null(dmsu_kv_get(kv, "hos"));
    ck_assert_ptr_null(dmsu_kv_get(kv, "noeq"));
    ck_assert_ptr_null(dmsu_kv_get(NULL, "host"));
}
END_TEST

START_TEST(test_snprintf_ok_reports_truncation)
{
    char buf[4];
    ck_assert_int_eq(dmsu_snprintf_ok(buf, sizeof(buf), "%s", "abc"), 0);
    ck_assert_int_eq(dmsu_snprintf_ok(buf, sizeof(buf), "%s", "abcd"), -1);
    ck_assert_str_eq(buf, "abc");
    char *s = dmsu_strdup_printf("%d-%s", 7, "x");
    ck_assert_str_eq(s, "7-x");
    free(s);
}
END_TEST

/* ---- buffers ---- */

START_TEST(test_buf_append_grows_and_stays_nul_terminated)
{
    dmsu_buf b = {0};
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(dmsu_buf_append(&b, "0123456789", 10), 0);
    ck_assert_uint_eq(b.len, 10000);
    ck_assert_int_eq(b.data[b.len], '\0');
    ck_assert(!b.overflow);
    dmsu_buf_consume(&b, 9995);
    ck_assert_str_eq(b.data, "56789");
    dmsu_buf_consume(&b, 100);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    ck_assert_int_eq(dmsu_buf_printf(&b, "%s=%d", "k", 42), 0);
    ck_assert_str_eq(b.data, "k=42");
    dmsu_buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    dmsu_buf_free(&b);
    ck_assert_ptr_null(b.data);
}
END_TEST

START_TEST(test_buf_cap_keeps_first_max_bytes_and_flags_overflow)
{
    dmsu_buf b = {.max = 8};
    ck_assert_int_eq(dmsu_buf_append(&b, "12345", 5), 0);
    ck_assert(!b.overflow);
    ck_assert_int_eq(dmsu_buf_append(&b, "67890", 5), 0);
    ck_assert(b.overflow);
    ck_assert_uint_eq(b.len, 8);
    ck_assert_str_eq(b.data, "12345678");
    ck_assert_int_eq(dmsu_buf_append(&b, "x", 1), 0);
    ck_assert_uint_eq(b.len, 8);
    dmsu_buf_reset(&b);
    ck_assert(!b.overflow);
    dmsu_buf_free(&b);
}
END_TEST

/* ---- UTF-8 ---- */

START_TEST(test_utf8_sanitize_keeps_valid_text_and_replaces_the_rest)
{
    size_t n = 0;
    const char ok[] = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80";
    char *s = dmsu_utf8_sanitize(ok, strlen(ok), &n);
    ck_assert_str_eq(s, ok);
    ck_assert_uint_eq(n, strlen(ok));
    free(s);
    /* NUL, a lone continuation byte, a truncated sequence, an overlong form, a surrogate, beyond U+10FFFF. */
    const char bad[] = "a\0b\x80"
                       "c\xE2\x82"
                       "d\xC0\xAF"
                       "e\xED\xA0\x80"
                       "f\xF4\x90\x80\x80";
    s = dmsu_utf8_sanitize(bad, sizeof(bad) - 1, &n);
    ck_assert_uint_eq(n, strlen(s));
    ck_assert_ptr_null(memchr(s, '\0', n));
    /* Every byte that is not part of a valid sequence becomes U+FFFD; the ASCII letters survive in order. */
    const char *want = "a\xEF\xBF\xBD"
                       "b\xEF\xBF\xBD"
                       "c\xEF\xBF\xBD\xEF\xBF\xBD"
                       "d\xEF\xBF\xBD\xEF\xBF\xBD"
                       "e\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                       "f\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD";
    ck_assert_str_eq(s, want);
    free(s);
    s = dmsu_utf8_sanitize("", 0, &n);
    ck_assert_str_eq(s, "");
    ck_assert_uint_eq(n, 0);
    free(s);
}
END_TEST

START_TEST(test_utf8_valid_accepts_what_sanitize_keeps_and_nothing_else)
{
    ck_assert(dmsu_utf8_valid(""));
    ck_assert(dmsu_utf8_valid("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF"));
    const char *bad[] = {
        "\x80",                 /* a lone continuation byte */
        "c\xE2\x82",            /* a truncated sequence at the end */
        "\xE2\x82x",            /* ... and in the middle */
        "\xC0\xAF",             /* an overlong form */
        "\xE0\x80\xAF",         /* a 3-byte overlong form */
        "\xED\xA0\x80",         /* a surrogate */
        "\xF4\x90\x80\x80",     /* beyond U+10FFFF */
        "\xF8\x88\x80\x80\x80", /* a 5-byte form */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(!dmsu_utf8_valid(bad[i]), "bad[%zu] accepted", i);
        size_t n = 0;
        char *s = dmsu_utf8_sanitize(bad[i], strlen(bad[i]), &n);
        ck_assert(dmsu_utf8_valid(s));
        free(s);
    }
}
END_TEST

START_TEST(test_parse_i64_refuses_signs_garbage_and_overflow)
{
    ck_assert_int_eq(dmsu_parse_i64("0"), 0);
    ck_assert_int_eq(dmsu_parse_i64("9223372036854775807"), INT64_MAX);
    ck_assert_int_eq(dmsu_parse_i64("9223372036854775808"), -1);
    ck_assert_int_eq(dmsu_parse_i64("-1"), -1);
    ck_assert_int_eq(dmsu_parse_i64("+1"), -1);
    ck_assert_int_eq(dmsu_parse_i64("12a"), -1);
    ck_assert_int_eq(dmsu_parse_i64(""), -1);
    ck_assert_int_eq(dmsu_parse_i64(NULL), -1);
}
END_TEST

START_TEST(test_parse_i64_prefix_reads_the_number_a_line_starts_with)
{
    const char *end = NULL;
    ck_assert_int_eq(dmsu_parse_i64_prefix("\t  1234 kB\n", &end), 1234);
    ck_assert_str_eq(end, " kB\n");
    ck_assert_int_eq(dmsu_parse_i64_prefix("404 Not Found", &end), 404);
    ck_assert_str_eq(end, " Not Found");
    ck_assert_int_eq(dmsu_parse_i64_prefix("0", &end), 0);
    ck_assert_str_eq(end, "");
    ck_assert_int_eq(dmsu_parse_i64_prefix("9223372036854775807/tcp", NULL), INT64_MAX);
    const char *bad[] = {"", "  ", "kB 12", "-1", "+1", "\n12", "9223372036854775808"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(dmsu_parse_i64_prefix(bad[i], &end), -1);
        ck_assert_ptr_eq(end, bad[i]);
    }
    ck_assert_int_eq(dmsu_parse_i64_prefix(NULL, &end), -1);
    ck_assert_ptr_null(end);
}
END_TEST

/* ---- state files ---- */

START_TEST(test_mkdir_p_creates_nested_dirs_and_is_idempotent)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/a/b/c/", tu_dir);
    ck_assert_int_eq(dms_mkdir_p(p, true, NULL), 0);
    ck_assert_int_eq(dms_mkdir_p(p, true, NULL), 0);
    struct stat st;
    snprintf(p, sizeof(p), "%s/a/b/c", tu_dir);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    /* A file in the way is an error that names it. */
    snprintf(p, sizeof(p), "%s/f", tu_dir);
    ck_assert_int_eq(dms_write_file_atomic(p, "x", 1, NULL), 0);
    dms_error err = {0};
    ck_assert_int_eq(dms_mkdir_p(p, false, &err), -DMS_E_IO);
    ck_assert_ptr_nonnull(strstr(err.message, p));
}
END_TEST

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

START_TEST(test_mkdir_p_makes_every_directory_it_creates_private_whatever_the_umask)
{
    mode_t old = umask(0);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/x/y/z", tu_dir);
    ck_assert_int_eq(dms_mkdir_p(p, false, NULL), 0);
    umask(old);
    ck_assert_int_eq(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/x/y", tu_dir);
    ck_assert_int_eq(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/x", tu_dir);
    ck_assert_int_eq(mode_of(p), 0700);
}
END_TEST

START_TEST(test_mkdir_p_private_last_tightens_an_existing_dir_and_nothing_else)
{
    char p[PATH_MAX], q[PATH_MAX + 8];
    snprintf(p, sizeof(p), "%s/old", tu_dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_int_eq(chmod(p, 0755), 0);
    ck_assert_int_eq(chmod(tu_dir, 0755), 0);
    /* Without private_last an existing directory keeps its mode. */
    ck_assert_int_eq(dms_mkdir_p(p, false, NULL), 0);
    ck_assert_int_eq(mode_of(p), 0755);
    ck_assert_int_eq(dms_mkdir_p(p, true, NULL), 0);
    ck_assert_int_eq(mode_of(p), 0700);
    ck_assert_int_eq(mode_of(tu_dir), 0755); /* its parent is not ours to change */
    /* A symlink in its place is refused, and what it points to keeps its mode. */
    snprintf(q, sizeof(q), "%s/link", tu_dir);
    ck_assert_int_eq(chmod(p, 0755), 0);
    ck_assert_int_eq(symlink(p, q), 0);
    dms_error err = {0};
    ck_assert_int_eq(dms_mkdir_p(q, true, &err), -DMS_E_IO);
    ck_assert_ptr_nonnull(strstr(err.message, q));
    ck_assert_int_eq(mode_of(p), 0755);
}
END_TEST

START_TEST(test_state_files_are_private_whatever_the_umask)
{
    mode_t old = umask(0);
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/spec.json", tu_dir);
    const char *spec = "{\"env\":[\"K=secret\"]}";
    ck_assert_int_eq(dms_write_file_atomic(p, spec, strlen(spec), NULL), 0);
    ck_assert_int_eq(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s/result.json", tu_dir);
    ck_assert_int_eq(dms_write_file_replace(p, "{}", 2, NULL), 0);
    ck_assert_int_eq(mode_of(p), 0600);
    int fd = -1;
    ck_assert_int_eq(dms_state_lock(tu_dir, &fd, NULL), 1);
    close(fd);
    umask(old);
    snprintf(p, sizeof(p), "%s/owner.lock", tu_dir);
    ck_assert_int_eq(mode_of(p), 0600);
}
END_TEST

START_TEST(test_env_minimal_holds_path_and_what_is_asked_for_only)
{
    char *saved_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("DMS_JWT_SECRET", "s3cret-of-the-host", 1);
    setenv("DMS_TEST_KEPT", "kept", 1);
    setenv("PATH", "/opt/x/bin:/usr/bin", 1);
    const char *const keep[] = {"DMS_TEST_KEPT", "DMS_TEST_ABSENT", NULL};
    const char *const extra[] = {"HOME=/var/lib/x", NULL};
    char **env = dmsu_env_minimal(keep, extra);
    ck_assert_ptr_nonnull(env);
    ck_assert_uint_eq(dmsu_strv_len(env), 3);
    ck_assert_str_eq(env[0], "PATH=/opt/x/bin:/usr/bin");
    ck_assert_str_eq(env[1], "DMS_TEST_KEPT=kept");
    ck_assert_str_eq(env[2], "HOME=/var/lib/x");
    dmsu_strv_free(env);
    /* Without a PATH of the caller's, the default one. */
    unsetenv("PATH");
    env = dmsu_env_minimal(NULL, NULL);
    ck_assert_uint_eq(dmsu_strv_len(env), 1);
    ck_assert_str_eq(env[0], "PATH=" DMS_DEFAULT_PATH);
    dmsu_strv_free(env);
    if (saved_path)
        setenv("PATH", saved_path, 1);
    free(saved_path);
    unsetenv("DMS_JWT_SECRET");
    unsetenv("DMS_TEST_KEPT");
}
END_TEST

START_TEST(test_write_atomic_then_read_file_round_trips_and_caps)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/r.json", tu_dir);
    ck_assert_int_eq(dms_write_file_atomic(p, "hello\0world", 11, NULL), 0);
    char *data = NULL;
    size_t len = 0;
    ck_assert_int_eq(dms_read_file(p, 11, &data, &len, NULL), 0);
    ck_assert_uint_eq(len, 11);
    ck_assert_mem_eq(data, "hello\0world", 11);
    ck_assert_int_eq(data[11], '\0');
    free(data);
    dms_error err = {0};
    ck_assert_int_eq(dms_read_file(p, 10, &data, &len, &err), -DMS_E_IO);
    ck_assert_ptr_nonnull(strstr(err.message, "larger than 10"));
    snprintf(p, sizeof(p), "%s/missing", tu_dir);
    ck_assert_int_eq(dms_read_file(p, 10, &data, &len, &err), -DMS_E_NOT_FOUND);
    /* An empty file reads as an empty, NUL-terminated buffer. */
    snprintf(p, sizeof(p), "%s/empty", tu_dir);
    ck_assert_int_eq(dms_write_file_atomic(p, "", 0, NULL), 0);
    ck_assert_int_eq(dms_read_file(p, 10, &data, &len, NULL), 0);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(data, "");
    free(data);
}
END_TEST

START_TEST(test_rm_rf_removes_trees_and_accepts_missing)
{
    char p[PATH_MAX], f[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/t/u/v", tu_dir);
    ck_assert_int_eq(dms_mkdir_p(p, false, NULL), 0);
    snprintf(f, sizeof(f), "%s/file", p);
    ck_assert_int_eq(dms_write_file_atomic(f, "x", 1, NULL), 0);
    snprintf(f, sizeof(f), "%s/t/link", tu_dir);
    ck_assert_int_eq(symlink("/etc", f), 0); /* must remove the link, not follow it */
    snprintf(p, sizeof(p), "%s/t", tu_dir);
    ck_assert_int_eq(dms_rm_rf(p, NULL), 0);
    ck_assert_int_eq(access(p, F_OK), -1);
    ck_assert_int_eq(access("/etc/passwd", F_OK), 0);
    ck_assert_int_eq(dms_rm_rf(p, NULL), 0);
}
END_TEST

/* A workload (root in a container, writing a bind-mounted workspace) can make a tree deeper than any fixed
 * recursion limit, with links, FIFOs and names that collide with the remover's own. All of it goes, and
 * nothing outside is touched. */
START_TEST(test_rm_rf_removes_a_tree_of_any_depth_without_following_anything)
{
    enum { DEPTH = 300 };
    char top[PATH_MAX], victim[PATH_MAX];
    snprintf(top, sizeof(top), "%s/deep", tu_dir);
    snprintf(victim, sizeof(victim), "%s/victim", tu_dir);
    ck_assert_int_eq(mkdir(top, 0755), 0);
    ck_assert_int_eq(dms_write_file_atomic(victim, "keep", 4, NULL), 0);
    int fd = open(top, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(mkdirat(fd, ".dms-rm-0", 0755), 0); /* the name the first hoist would take */
    ck_assert_int_eq(mkdirat(fd, ".dms-rm-1", 0755), 0);
    int sub = openat(fd, ".dms-rm-1", O_RDONLY | O_DIRECTORY);
    ck_assert_int_eq(mkdirat(sub, "x", 0755), 0);
    close(sub);
    for (int i = 0; i < DEPTH; i++) {
        ck_assert_int_eq(mkdirat(fd, "d", 0755), 0);
        if (i % 50 == 0) {
            ck_assert_int_eq(symlinkat(victim, fd, "link"), 0);
            ck_assert_int_eq(symlinkat(tu_dir, fd, "dirlink"), 0);
            ck_assert_int_eq(mkfifoat(fd, "fifo", 0644), 0);
        }
        int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(next, 0);
        close(fd);
        fd = next;
    }
    ck_assert_int_eq(openat(fd, "leaf", O_WRONLY | O_CREAT, 0644) >= 0, 1);
    close(fd);
    dms_error err = {0};
    ck_assert_msg(dms_rm_rf(top, &err) == 0, "%s", err.message);
    ck_assert_int_eq(access(top, F_OK), -1);
    char buf[8] = "";
    fd = open(victim, O_RDONLY);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4);
    close(fd);
    ck_assert_str_eq(buf, "keep");
    ck_assert_int_eq(access(tu_dir, F_OK), 0);
}
END_TEST

START_TEST(test_state_lock_is_exclusive_across_processes)
{
    int fd = -1;
    ck_assert_int_eq(dms_state_lock_held(tu_dir), 0);
    ck_assert_int_eq(dms_state_lock(tu_dir, &fd, NULL), 1);
    ck_assert_int_eq(dms_state_lock_held(tu_dir), 1);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int cfd = -1;
        int r = dms_state_lock(tu_dir, &cfd, NULL);
        _exit(r == 0 && dms_state_lock_held(tu_dir) == 1 ? 0 : 1);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The probe must not have released the lock. */
    ck_assert_int_eq(dms_state_lock_held(tu_dir), 1);
    close(fd);
    ck_assert_int_eq(dms_state_lock_held(tu_dir), 0);
}
END_TEST

START_TEST(test_random_ids_have_the_prefix_twelve_hex_digits_and_differ)
{
    char a[16], b[16], tiny[8];
    ck_assert_int_eq(dmsu_random_id(a, sizeof(a), "d"), 0);
    ck_assert_int_eq(dmsu_random_id(b, sizeof(b), "d"), 0);
    ck_assert_uint_eq(strlen(a), 13);
    ck_assert_int_eq(a[0], 'd');
    ck_assert_uint_eq(strspn(a + 1, "0123456789abcdef"), 12);
    ck_assert_str_ne(a, b);
    ck_assert_int_eq(dmsu_random_id(tiny, sizeof(tiny), "e-"), -1); /* truncation is reported */
}
END_TEST

START_TEST(test_clocks_move_forward)
{
    int64_t a = dms_now_ns(), m = dms_mono_ms();
    ck_assert_int_gt(a, 1600000000LL * 1000000000LL);
    usleep(20 * 1000);
    ck_assert_int_gt(dms_now_ns(), a);
    ck_assert_int_ge(dms_mono_ms() - m, 19);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_error_set_returns_negative_code_and_fills_every_field);
    tcase_add_test(tc, test_error_set_accepts_null_err);
    tcase_add_test(tc, test_error_set_errno_appends_strerror_and_records_errno);
    tcase_add_test(tc, test_error_message_is_truncated_not_overflowed);
    tcase_add_test(tc, test_error_prefix_keeps_code_and_prepends_context);
    tcase_add_test(tc, test_error_code_names_are_stable_and_never_null);
    suite_add_tcase(s, tc);
    tc = tcase_create("strings");
    tcase_add_test(tc, test_strv_copy_push_len_and_free);
    tcase_add_test(tc, test_strv_contains_matches_whole_entries_and_accepts_null);
    tcase_add_test(tc, test_kv_get_matches_whole_keys_only);
    tcase_add_test(tc, test_snprintf_ok_reports_truncation);
    tcase_add_test(tc, test_buf_append_grows_and_stays_nul_terminated);
    tcase_add_test(tc, test_buf_cap_keeps_first_max_bytes_and_flags_overflow);
    tcase_add_test(tc, test_utf8_sanitize_keeps_valid_text_and_replaces_the_rest);
    tcase_add_test(tc, test_utf8_valid_accepts_what_sanitize_keeps_and_nothing_else);
    tcase_add_test(tc, test_parse_i64_refuses_signs_garbage_and_overflow);
    tcase_add_test(tc, test_parse_i64_prefix_reads_the_number_a_line_starts_with);
    suite_add_tcase(s, tc);
    tc = tcase_create("files");
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_mkdir_p_creates_nested_dirs_and_is_idempotent);
    tcase_add_test(tc, test_mkdir_p_makes_every_directory_it_creates_private_whatever_the_umask);
    tcase_add_test(tc, test_mkdir_p_private_last_tightens_an_existing_dir_and_nothing_else);
    tcase_add_test(tc, test_state_files_are_private_whatever_the_umask);
    tcase_add_test(tc, test_env_minimal_holds_path_and_what_is_asked_for_only);
    tcase_add_test(tc, test_write_atomic_then_read_file_round_trips_and_caps);
    tcase_add_test(tc, test_rm_rf_removes_trees_and_accepts_missing);
    tcase_add_test(tc, test_rm_rf_removes_a_tree_of_any_depth_without_following_anything);
    tcase_add_test(tc, test_state_lock_is_exclusive_across_processes);
    tcase_add_test(tc, test_clocks_move_forward);
    tcase_add_test(tc, test_random_ids_have_the_prefix_twelve_hex_digits_and_differ);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(util_suite());
}
