/* test_dmsd_datadir.c - dmsd's data directory at startup: created private, an older dmsd's open one made
 * private with its top-level dirs, and directories that are not dmsd's to change (shared, someone else's
 * files, a symlink in place of a subdir) refused and left as they were. Each test works in its own tmp dir.
 */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/datadir.h"
#include "testutil.h"

static mode_t mode_of(const char *dir, const char *name)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s%s%s", dir, name ? "/" : "", name ? name : "");
    struct stat st;
    ck_assert_int_eq(lstat(p, &st), 0);
    return st.st_mode & 07777;
}

static void make(const char *dir, const char *name, mode_t mode)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_int_eq(chmod(p, mode), 0);
}

START_TEST(test_datadir_is_created_private_and_resolved)
{
    char path[PATH_MAX], abs[PATH_MAX], want[PATH_MAX + 8];
    mode_t old = umask(0);
    snprintf(path, sizeof(path), "%s/a/../var", tu_dir);
    ck_assert_int_eq(datadir_prepare(path, abs, sizeof(abs), NULL), 0);
    umask(old);
    snprintf(want, sizeof(want), "%s/var", tu_dir);
    ck_assert_str_eq(abs, want);
    ck_assert_int_eq(mode_of(abs, NULL), 0700);
}
END_TEST

START_TEST(test_datadir_of_an_older_dmsd_is_made_private_with_its_top_dirs)
{
    char abs[PATH_MAX];
    make(tu_dir, "var", 0755);
    char var[PATH_MAX + 8];
    snprintf(var, sizeof(var), "%s/var", tu_dir);
    tu_write(var, "dms.db", "");
    make(var, "droids", 0755);
    make(var, "exec", 0750);
    make(var, "caddy", 0700);
    ck_assert_int_eq(datadir_prepare(var, abs, sizeof(abs), NULL), 0);
    ck_assert_int_eq(mode_of(var, NULL), 0700);
    ck_assert_int_eq(mode_of(var, "droids"), 0700);
    ck_assert_int_eq(mode_of(var, "exec"), 0700);
    ck_assert_int_eq(mode_of(var, "caddy"), 0700);
    /* An empty directory made for dmsd is taken and made private too. */
    make(tu_dir, "fresh", 0755);
    snprintf(var, sizeof(var), "%s/fresh", tu_dir);
    ck_assert_int_eq(datadir_prepare(var, abs, sizeof(abs), NULL), 0);
    ck_assert_int_eq(mode_of(var, NULL), 0700);
}
END_TEST

START_TEST(test_datadir_that_is_shared_or_holds_other_files_is_refused_and_left_alone)
{
    char abs[PATH_MAX], p[PATH_MAX + 8];
    dms_error err = {0};
    /* Like /tmp: world-writable and sticky. */
    make(tu_dir, "shared", 01777);
    snprintf(p, sizeof(p), "%s/shared", tu_dir);
    ck_assert_int_eq(datadir_prepare(p, abs, sizeof(abs), &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "DMS_DATA_DIR");
    ck_assert_ptr_nonnull(strstr(err.message, "shared"));
    ck_assert_int_eq(mode_of(p, NULL), 01777);
    /* Like a home directory: open, with files that are not dmsd's. */
    make(tu_dir, "home", 0755);
    snprintf(p, sizeof(p), "%s/home", tu_dir);
    tu_write(p, ".profile", "");
    ck_assert_int_eq(datadir_prepare(p, abs, sizeof(abs), &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "other files"));
    ck_assert_int_eq(mode_of(p, NULL), 0755);
}
END_TEST

START_TEST(test_datadir_never_follows_a_symlink_in_place_of_a_subdir)
{
    char abs[PATH_MAX], var[PATH_MAX + 8], other[PATH_MAX + 8], link[PATH_MAX * 2];
    make(tu_dir, "var", 0700);
    make(tu_dir, "other", 0755);
    snprintf(var, sizeof(var), "%s/var", tu_dir);
    snprintf(other, sizeof(other), "%s/other", tu_dir);
    tu_write(var, "dms.db", "");
    snprintf(link, sizeof(link), "%s/droids", var);
    ck_assert_int_eq(symlink(other, link), 0);
    dms_error err = {0};
    ck_assert_int_lt(datadir_prepare(var, abs, sizeof(abs), &err), 0);
    ck_assert_ptr_nonnull(strstr(err.message, "droids"));
    ck_assert_int_eq(mode_of(other, NULL), 0755);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_datadir");
    TCase *tc = tcase_create("datadir");
    tcase_add_checked_fixture(tc, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(tc, test_datadir_is_created_private_and_resolved);
    tcase_add_test(tc, test_datadir_of_an_older_dmsd_is_made_private_with_its_top_dirs);
    tcase_add_test(tc, test_datadir_that_is_shared_or_holds_other_files_is_refused_and_left_alone);
    tcase_add_test(tc, test_datadir_never_follows_a_symlink_in_place_of_a_subdir);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
