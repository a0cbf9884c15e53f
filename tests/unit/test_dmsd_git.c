/* test_dmsd_git.c - git check and clone through libgit2 against local repositories made with the git CLI:
 * default branch, branch list, clone of a branch and of a pinned commit, and how failures are classified
 * (missing branch/commit/repo: the user's; connection refused: retryable). */
#include <check.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/build/git.h"
#include "testutil.h"

/* libgit2 1.5.1 (Debian 12) leaks pcre2 match data on every clone (fixed upstream by libgit2 PR #6382, after
 * 1.5): not ours, so LeakSanitizer is told to ignore allocations made inside libpcre2. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpcre2-8.so\n";
}

static char dir[64];
static char bare[128];
static char first_sha[48];

/* A bare repo with branches trunk (default, 2 commits) and dev (1 more); dir is the only local root, and git
 * may connect to loopback (the transport failure below). */
static void setup(void)
{
    git_libgit2_init();
    tu_mkdtemp(dir, sizeof(dir));
    dms_error err = {0};
    gitx_config cfg = {.local_roots = dir, .allow_nets = "127.0.0.0/8"};
    ck_assert_msg(gitx_init(&cfg, &err) == 0, "%s", err.message);
    snprintf(bare, sizeof(bare), "%s/app.git", dir);
    tu_sh("cd %s && git init -q -b trunk work && cd work && git config user.email t@t && git config "
          "user.name t "
          "&& "
          "echo one > f && git add f && git commit -qm one && git rev-parse HEAD > ../first && "
          "echo two > f && git commit -qam two && git checkout -qb dev && echo three > f && git commit -qam "
          "three && "
          "git checkout -q trunk && git clone -q --bare . %s",
          dir, bare);
    char p[128];
    snprintf(p, sizeof(p), "%s/first", dir);
    FILE *f = fopen(p, "r");
    ck_assert_ptr_nonnull(fgets(first_sha, sizeof(first_sha), f));
    (void)fclose(f); /* read only */
    first_sha[40] = '\0';
}

static void teardown(void)
{
    tu_rmtree(dir);
    gitx_shutdown();
    git_libgit2_shutdown();
}

static char *read_file(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    (void)fclose(f); /* read only */
    return buf;
}

START_TEST(test_ls_remote_lists_branches_and_default)
{
    gitx_remote_info info;
    dms_error err = {0};
    ck_assert_int_eq(gitx_ls_remote(bare, &info, &err), 0);
    ck_assert_str_eq(info.default_branch, "trunk");
    ck_assert_uint_eq(info.n_branches, 2);
    ck_assert_str_eq(info.branches[0], "dev");
    ck_assert_str_eq(info.branches[1], "trunk");
    gitx_remote_info_clear(&info);
    char url[160];
    snprintf(url, sizeof(url), "file://%s", bare);
    ck_assert_int_eq(gitx_ls_remote(url, &info, &err), 0);
    ck_assert_str_eq(info.default_branch, "trunk");
    gitx_remote_info_clear(&info);
}
END_TEST

START_TEST(test_check_json_answers_branch_exists)
{
    json_t *j = gitx_check_json(bare, "dev");
    ck_assert(json_is_true(json_object_get(j, "reachable")));
    ck_assert(json_is_true(json_object_get(j, "branch_exists")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "default_branch")), "trunk");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "branches")), 2);
    json_decref(j);
    j = gitx_check_json(bare, "nope");
    ck_assert(json_is_true(json_object_get(j, "reachable")));
    ck_assert(json_is_false(json_object_get(j, "branch_exists")));
    json_decref(j);
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nonexistent.git", dir);
    j = gitx_check_json(missing, NULL);
    ck_assert(json_is_false(json_object_get(j, "reachable")));
    ck_assert(json_is_false(json_object_get(j, "retryable")));
    ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "error")));
    ck_assert_ptr_null(json_object_get(j, "branch_exists"));
    json_decref(j);
}
END_TEST

START_TEST(test_empty_repository_has_no_default_branch)
{
    char empty[160];
    snprintf(empty, sizeof(empty), "%s/empty.git", dir);
    tu_sh("git init -q --bare %s", empty);
    gitx_remote_info info;
    dms_error err = {0};
    ck_assert_int_eq(gitx_ls_remote(empty, &info, &err), 0);
    ck_assert_ptr_null(info.default_branch);
    ck_assert_uint_eq(info.n_branches, 0);
    gitx_remote_info_clear(&info);
}
END_TEST

START_TEST(test_clone_default_branch_records_head)
{
    char dst[160], sha[GIT_SHA_HEX + 1], f[200];
    dms_error err = {0};
    snprintf(dst, sizeof(dst), "%s/c1", dir);
    ck_assert_int_eq(gitx_clone(bare, NULL, NULL, dst, NULL, sha, &err), 0);
    ck_assert_uint_eq(strlen(sha), 40);
    snprintf(f, sizeof(f), "%s/f", dst);
    ck_assert_str_eq(read_file(f), "two\n");
}
END_TEST

START_TEST(test_clone_branch_and_pinned_commit)
{
    char dst[160], sha[GIT_SHA_HEX + 1], f[200];
    dms_error err = {0};
    snprintf(dst, sizeof(dst), "%s/c2", dir);
    ck_assert_int_eq(gitx_clone(bare, "dev", NULL, dst, NULL, sha, &err), 0);
    snprintf(f, sizeof(f), "%s/f", dst);
    ck_assert_str_eq(read_file(f), "three\n");
    snprintf(dst, sizeof(dst), "%s/c3", dir);
    char short_sha[8];
    snprintf(short_sha, sizeof(short_sha), "%.7s", first_sha);
    ck_assert_int_eq(gitx_clone(bare, "trunk", short_sha, dst, NULL, sha, &err), 0);
    ck_assert_str_eq(sha, first_sha);
    snprintf(f, sizeof(f), "%s/f", dst);
    ck_assert_str_eq(read_file(f), "one\n");
}
END_TEST

START_TEST(test_clone_failures_are_classified)
{
    char dst[160], sha[GIT_SHA_HEX + 1];
    dms_error err = {0};
    snprintf(dst, sizeof(dst), "%s/c4", dir);
    ck_assert_int_eq(gitx_clone(bare, "nope", NULL, dst, NULL, sha, &err), -DMS_E_NOT_FOUND);
    ck_assert_str_eq(err.field, "branch");
    ck_assert(!err.retryable);
    snprintf(dst, sizeof(dst), "%s/c5", dir);
    ck_assert_int_eq(gitx_clone(bare, NULL, "abcdef0123", dst, NULL, sha, &err), -DMS_E_NOT_FOUND);
    ck_assert_str_eq(err.field, "commit");
    snprintf(dst, sizeof(dst), "%s/c6", dir);
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/nonexistent.git", dir);
    int r = gitx_clone(missing, NULL, NULL, dst, NULL, sha, &err);
    ck_assert(r < 0 && r != -DMS_E_UNAVAILABLE);
    ck_assert(!err.retryable);
    /* nothing listens on port 1: a transport failure, worth a retry */
    snprintf(dst, sizeof(dst), "%s/c7", dir);
    ck_assert_int_eq(gitx_clone("http://127.0.0.1:1/x.git", NULL, NULL, dst, NULL, sha, &err),
                     -DMS_E_UNAVAILABLE);
    ck_assert(err.retryable);
}
END_TEST

START_TEST(test_clone_honours_cancel)
{
    char dst[160], sha[GIT_SHA_HEX + 1];
    dms_error err = {0};
    dms_cancel_token *t = NULL;
    ck_assert_int_eq(dms_cancel_token_new(&t, &err), 0);
    dms_cancel_token_cancel(t);
    snprintf(dst, sizeof(dst), "%s/c8", dir);
    char url[160];
    snprintf(url, sizeof(url), "file://%s", bare);
    ck_assert_int_eq(gitx_clone(url, NULL, NULL, dst, t, sha, &err), -DMS_E_CANCELLED);
    dms_cancel_token_free(t);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_git");
    TCase *tc = tcase_create("git");
    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_ls_remote_lists_branches_and_default);
    tcase_add_test(tc, test_check_json_answers_branch_exists);
    tcase_add_test(tc, test_empty_repository_has_no_default_branch);
    tcase_add_test(tc, test_clone_default_branch_records_head);
    tcase_add_test(tc, test_clone_branch_and_pinned_commit);
    tcase_add_test(tc, test_clone_failures_are_classified);
    tcase_add_test(tc, test_clone_honours_cancel);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
