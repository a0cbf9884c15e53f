/* test_beneath.c - reading inside a tree a user controls (executor/beneath.c), and the atomic write's temp
 * file (executor/fsutil.c): no symlink is followed, no path leads out, nothing hangs on a FIFO. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dms/backend.h>

#include "testutil.h"
#include "util.h"

static char dir[PATH_MAX];
static int dfd = -1;

static void link_at(const char *target, const char *rel)
{
    char p[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    ck_assert_int_eq(symlink(target, p), 0);
}

/* A tree with what a hostile repository plants: links to a host file, to a directory inside, and a FIFO. */
static void setup(void)
{
    tu_mkdtemp(dir, sizeof(dir));
    char p[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s/sub", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    tu_write(dir, "a.txt", "a");
    tu_write(dir, "sub/b.txt", "b");
    link_at("/etc/passwd", "host");
    link_at("sub", "sublink");
    link_at("a.txt", "inner");
    snprintf(p, sizeof(p), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(dfd, 0);
}

static void teardown(void)
{
    close(dfd);
    tu_rmtree(dir);
}

static int read_rel(const char *rel, char **text, dms_error *err)
{
    size_t len;
    *text = NULL;
    return dmsu_read_file_beneath(dfd, rel, 1024, text, &len, err);
}

START_TEST(test_files_beneath_the_directory_are_read)
{
    char *t;
    ck_assert_int_eq(read_rel("a.txt", &t, NULL), 0);
    ck_assert_str_eq(t, "a");
    free(t);
    ck_assert_int_eq(read_rel("sub/b.txt", &t, NULL), 0);
    ck_assert_str_eq(t, "b");
    free(t);
    ck_assert_int_eq(read_rel("./sub//b.txt", &t, NULL), 0);
    free(t);
}
END_TEST

START_TEST(test_no_symlink_is_followed_even_one_that_stays_inside)
{
    const char *rels[] = {"host", "sublink/b.txt", "inner", NULL};
    for (size_t i = 0; rels[i]; i++) {
        char *t;
        dms_error err = {0};
        ck_assert_int_eq(read_rel(rels[i], &t, &err), -DMS_E_INVALID);
        ck_assert_ptr_null(t);
        ck_assert_msg(strstr(err.message, "symbolic link"), "%s: %s", rels[i], err.message);
        ck_assert_ptr_null(
            strstr(err.message, "/etc")); /* the message names the user's path, not the target */
    }
}
END_TEST

START_TEST(test_paths_that_lead_out_are_refused)
{
    const char *rels[] = {"../a.txt", "sub/../../x", "/etc/passwd", NULL};
    for (size_t i = 0; rels[i]; i++) {
        char *t;
        dms_error err = {0};
        ck_assert_int_eq(read_rel(rels[i], &t, &err), -DMS_E_INVALID);
        ck_assert_msg(strstr(err.message, "outside"), "%s: %s", rels[i], err.message);
    }
    ck_assert_int_eq(dmsu_open_beneath(dfd, "../", O_RDONLY), -EXDEV);
    ck_assert_int_eq(dmsu_open_beneath(dfd, "host", O_PATH), -ELOOP);
}
END_TEST

START_TEST(test_a_fifo_is_refused_without_blocking_and_a_missing_file_is_not_found)
{
    char *t;
    dms_error err = {0};
    ck_assert_int_eq(read_rel("fifo", &t, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "not a regular file"));
    ck_assert_int_eq(read_rel("sub", &t, &err), -DMS_E_INVALID);
    ck_assert_int_eq(read_rel("nothing", &t, &err), -DMS_E_NOT_FOUND);
}
END_TEST

/* The final name of an atomic write is replaced (rename), never written through, even when someone planted a
 * symlink there; the target stays as it was. */
START_TEST(test_atomic_write_replaces_a_planted_symlink_instead_of_writing_through_it)
{
    char target[PATH_MAX * 2], p[PATH_MAX * 2];
    snprintf(target, sizeof(target), "%s/target", dir);
    tu_write(dir, "target", "untouched");
    snprintf(p, sizeof(p), "%s/state.json", dir);
    ck_assert_int_eq(symlink(target, p), 0);
    ck_assert_int_eq(dms_write_file_atomic(p, "new", 3, NULL), 0);
    char *t = NULL;
    size_t len;
    ck_assert_int_eq(dms_read_file(target, 64, &t, &len, NULL), 0);
    ck_assert_str_eq(t, "untouched");
    free(t);
    struct stat st;
    ck_assert_int_eq(lstat(p, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
}
END_TEST

/* Kernels before 5.6, and seccomp profiles that predate openat2, answer ENOSYS: this process (Check forks one
 * per test) gets such a filter, and the walk of O_NOFOLLOW opens must refuse exactly what openat2 refuses. */
static void deny_openat2(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(f) / sizeof(f[0]), .filter = f};
    ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
    ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
    ck_assert_int_eq((int)syscall(SYS_openat2, dfd, "a.txt", NULL, 0), -1);
    ck_assert_int_eq(errno, ENOSYS);
}

START_TEST(test_without_openat2_the_walk_refuses_the_same)
{
    deny_openat2();
    char *t;
    dms_error err = {0};
    ck_assert_int_eq(read_rel("sub/b.txt", &t, NULL), 0);
    ck_assert_str_eq(t, "b");
    free(t);
    const char *links[] = {"host", "sublink/b.txt", "inner", NULL};
    for (size_t i = 0; links[i]; i++)
        ck_assert_msg(read_rel(links[i], &t, &err) == -DMS_E_INVALID && strstr(err.message, "symbolic link"),
                      "%s", links[i]);
    const char *out[] = {"../a.txt", "sub/../../x", "/etc/passwd", NULL};
    for (size_t i = 0; out[i]; i++)
        ck_assert_msg(read_rel(out[i], &t, &err) == -DMS_E_INVALID && strstr(err.message, "outside"), "%s",
                      out[i]);
    ck_assert_int_eq(read_rel("fifo", &t, &err), -DMS_E_INVALID);
    ck_assert_int_eq(read_rel("nothing", &t, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(dmsu_open_beneath(dfd, "host", O_PATH), -ELOOP);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("beneath");
    TCase *tc = tcase_create("beneath");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_files_beneath_the_directory_are_read);
    tcase_add_test(tc, test_no_symlink_is_followed_even_one_that_stays_inside);
    tcase_add_test(tc, test_paths_that_lead_out_are_refused);
    tcase_add_test(tc, test_a_fifo_is_refused_without_blocking_and_a_missing_file_is_not_found);
    tcase_add_test(tc, test_atomic_write_replaces_a_planted_symlink_instead_of_writing_through_it);
    tcase_add_test(tc, test_without_openat2_the_walk_refuses_the_same);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
