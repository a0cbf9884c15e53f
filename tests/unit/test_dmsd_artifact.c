/* test_dmsd_artifact.c - taking a job's artifact out of a directory a root workload wrote (jobs/artifact.c):
 * every kind of file it can leave as artifact.tar (a regular file, a symlink to a secret, a dangling link, a
 * hard link, a FIFO, a device node, a socket, a directory, a file too large or sparse) in a temporary
 * directory, what dmsd then serves, and the artifacts an older dmsd left in the workload's tree. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/jobs/artifact.h"
#include "testutil.h"

#define SECRET     "DMS_JWT_SECRET=not-for-the-workload\n"
#define MAX_BYTES  (1024 * 1024)
#define TEST_PATHS 256

static char root[64];
static char from[TEST_PATHS]; /* the package step's out/ */
static char to[TEST_PATHS];   /* the job's own directory */
static char secret[TEST_PATHS];

static void path_in(char *buf, const char *dir, const char *name)
{
    snprintf(buf, TEST_PATHS, "%s/%s", dir, name);
}

static void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static void setup(void)
{
    tu_mkdtemp(root, sizeof(root));
    path_in(from, root, "out");
    path_in(to, root, "job");
    path_in(secret, root, "secret");
    ck_assert_int_eq(mkdir(from, 0755), 0);
    ck_assert_int_eq(mkdir(to, 0700), 0);
    write_file(secret, SECRET, strlen(SECRET));
}

static void teardown(void)
{
    tu_rmtree(root);
}

static void planted(char *buf)
{
    path_in(buf, from, ARTIFACT_NAME);
}

/* The take-out is refused with INVALID, the message names what was there, and nothing was copied. */
static void assert_refused(const char *kind)
{
    dms_error err = {0};
    int64_t bytes = -1;
    ck_assert_int_eq(artifact_take_out(from, to, MAX_BYTES, &bytes, &err), -DMS_E_INVALID);
    ck_assert_msg(strstr(err.message, kind) != NULL, "\"%s\" does not name %s", err.message, kind);
    ck_assert_int_eq(bytes, -1);
    char copy[TEST_PATHS];
    path_in(copy, to, ARTIFACT_NAME);
    struct stat st;
    ck_assert_int_eq(lstat(copy, &st), -1);
    int64_t served = 0;
    ck_assert_int_eq(artifact_open(to, &served, &err), -DMS_E_NOT_FOUND);
}

static void assert_copy_holds(const char *data, size_t len)
{
    char copy[TEST_PATHS];
    path_in(copy, to, ARTIFACT_NAME);
    struct stat st;
    ck_assert_int_eq(lstat(copy, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, (off_t)len);
    dms_error err = {0};
    int64_t bytes = 0;
    int fd = artifact_open(to, &bytes, &err);
    ck_assert_msg(fd >= 0, "%s", err.message);
    ck_assert_int_eq(bytes, (int64_t)len);
    char *buf = calloc(1, len + 1);
    ck_assert_int_eq(read(fd, buf, len + 1), (ssize_t)len);
    ck_assert_int_eq(memcmp(buf, data, len), 0);
    free(buf);
    close(fd);
}

START_TEST(test_a_regular_file_is_copied_into_a_file_of_dmsds_own)
{
    char p[TEST_PATHS];
    planted(p);
    write_file(p, "a tar\n", 6);
    dms_error err = {0};
    int64_t bytes = 0;
    ck_assert_msg(artifact_take_out(from, to, MAX_BYTES, &bytes, &err) == 0, "%s", err.message);
    ck_assert_int_eq(bytes, 6);
    assert_copy_holds("a tar\n", 6);
    /* A copy, not a link: what the workload's tree holds later changes nothing. */
    write_file(p, "changed afterwards\n", 19);
    assert_copy_holds("a tar\n", 6);
    /* Taken out again (another attempt), the new content replaces the old. */
    ck_assert_int_eq(artifact_take_out(from, to, MAX_BYTES, &bytes, &err), 0);
    assert_copy_holds("changed afterwards\n", 19);
}
END_TEST

START_TEST(test_a_symlink_to_a_host_file_is_refused_and_never_followed)
{
    static const char *const targets[] = {NULL /* the secret */, "/proc/self/environ", "/etc/passwd",
                                          "/nonexistent/dangling", "."};
    char p[TEST_PATHS];
    planted(p);
    for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
        unlink(p);
        ck_assert_int_eq(symlink(targets[i] ? targets[i] : secret, p), 0);
        assert_refused("a symbolic link");
    }
}
END_TEST

/* link(2) across bind mounts is EXDEV, so a hard link can only name a file of the workload's own tree: it is
 * a regular file, copied; the copy does not share its inode. */
START_TEST(test_a_hard_link_is_a_regular_file_and_the_copy_is_independent)
{
    char other[TEST_PATHS], p[TEST_PATHS];
    path_in(other, from, "other");
    planted(p);
    write_file(other, "linked\n", 7);
    ck_assert_int_eq(link(other, p), 0);
    dms_error err = {0};
    int64_t bytes = 0;
    ck_assert_msg(artifact_take_out(from, to, MAX_BYTES, &bytes, &err) == 0, "%s", err.message);
    assert_copy_holds("linked\n", 7);
    char copy[TEST_PATHS];
    path_in(copy, to, ARTIFACT_NAME);
    struct stat a, b;
    ck_assert_int_eq(stat(copy, &a), 0);
    ck_assert_int_eq(stat(other, &b), 0);
    ck_assert(a.st_ino != b.st_ino);
    ck_assert_int_eq(a.st_nlink, 1);
}
END_TEST

/* Opened for reading, a FIFO blocks until a writer comes: the test's timeout would catch a hang. */
START_TEST(test_a_fifo_is_refused_without_blocking)
{
    char p[TEST_PATHS];
    planted(p);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
    assert_refused("a FIFO");
}
END_TEST

/* A device node a container made with mknod is the host's device when the host opens it. */
START_TEST(test_a_device_node_is_refused_without_being_opened)
{
    char p[TEST_PATHS];
    planted(p);
    if (mknod(p, S_IFCHR | 0644, makedev(1, 5)) != 0) { /* /dev/zero: read, it would never end */
        ck_assert_msg(errno == EPERM && geteuid() != 0, "mknod as root failed: %s", strerror(errno));
        fprintf(stderr, "test_a_device_node_is_refused: not root, mknod is not allowed: part not run\n");
        return;
    }
    assert_refused("a character device");
    unlink(p);
    ck_assert_int_eq(mknod(p, S_IFBLK | 0644, makedev(7, 0)), 0); /* a loop device */
    assert_refused("a block device");
}
END_TEST

START_TEST(test_a_socket_is_refused)
{
    char p[TEST_PATHS];
    planted(p);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p);
    ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_refused("a socket");
    close(s);
}
END_TEST

START_TEST(test_a_directory_is_refused)
{
    char p[TEST_PATHS], inner[TEST_PATHS];
    planted(p);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    path_in(inner, p, "x");
    write_file(inner, "x", 1);
    assert_refused("a directory");
}
END_TEST

START_TEST(test_a_file_larger_than_the_limit_is_refused_dense_or_sparse)
{
    char p[TEST_PATHS];
    planted(p);
    char *big = calloc(1, MAX_BYTES + 1);
    write_file(p, big, MAX_BYTES + 1);
    assert_refused("larger than 1 MB (DMS_JOB_ARTIFACT_MAX_MB)");
    /* At the limit exactly: taken. */
    write_file(p, big, MAX_BYTES);
    dms_error err = {0};
    int64_t bytes = 0;
    ck_assert_msg(artifact_take_out(from, to, MAX_BYTES, &bytes, &err) == 0, "%s", err.message);
    ck_assert_int_eq(bytes, MAX_BYTES);
    free(big);
    /* A terabyte of hole: refused by its size, without a byte read or written. */
    char copy[TEST_PATHS];
    path_in(copy, to, ARTIFACT_NAME);
    unlink(copy);
    int fd = open(p, O_WRONLY | O_TRUNC);
    ck_assert_int_eq(ftruncate(fd, 1LL << 40), 0);
    close(fd);
    assert_refused("larger than");
}
END_TEST

START_TEST(test_no_artifact_is_not_found)
{
    dms_error err = {0};
    int64_t bytes = -1;
    ck_assert_int_eq(artifact_take_out(from, to, MAX_BYTES, &bytes, &err), -DMS_E_NOT_FOUND);
    ck_assert_int_eq(artifact_open(to, &bytes, &err), -DMS_E_NOT_FOUND);
    char gone[TEST_PATHS];
    path_in(gone, root, "no-such-job");
    ck_assert_int_eq(artifact_open(gone, &bytes, &err), -DMS_E_NOT_FOUND);
}
END_TEST

/* The job's own directory is dmsd's, but neither a link at the copy's name nor at its temporary name makes
 * the take-out write through it. */
START_TEST(test_links_where_the_copy_goes_are_replaced_not_followed)
{
    char p[TEST_PATHS], copy[TEST_PATHS], tmp[TEST_PATHS];
    planted(p);
    write_file(p, "a tar\n", 6);
    path_in(copy, to, ARTIFACT_NAME);
    path_in(tmp, to, ".artifact.tar.tmp");
    ck_assert_int_eq(symlink(secret, copy), 0);
    ck_assert_int_eq(symlink(secret, tmp), 0);
    dms_error err = {0};
    int64_t bytes = 0;
    ck_assert_msg(artifact_take_out(from, to, MAX_BYTES, &bytes, &err) == 0, "%s", err.message);
    assert_copy_holds("a tar\n", 6);
    char buf[64] = "";
    int fd = open(secret, O_RDONLY);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), (ssize_t)strlen(SECRET));
    close(fd);
    ck_assert_str_eq(buf, SECRET);
    struct stat st;
    ck_assert_int_eq(lstat(tmp, &st), -1);
}
END_TEST

/* What the API serves is opened the same way: a link or a FIFO at the copy's name is refused. */
START_TEST(test_open_serves_a_regular_file_only)
{
    char copy[TEST_PATHS];
    path_in(copy, to, ARTIFACT_NAME);
    dms_error err = {0};
    int64_t bytes = 0;
    ck_assert_int_eq(symlink(secret, copy), 0);
    ck_assert_int_eq(artifact_open(to, &bytes, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "symbolic link"));
    unlink(copy);
    ck_assert_int_eq(mkfifo(copy, 0600), 0);
    ck_assert_int_eq(artifact_open(to, &bytes, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "FIFO"));
    unlink(copy);
    /* The job's directory itself a link: not followed either. */
    char linked[TEST_PATHS];
    path_in(linked, root, "linked-job");
    ck_assert_int_eq(symlink(to, linked), 0);
    write_file(copy, "x", 1);
    ck_assert_int_lt(artifact_open(linked, &bytes, &err), 0);
    int fd = artifact_open(to, &bytes, &err);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bytes, 1);
    close(fd);
}
END_TEST

/* An older dmsd served <job>/out/artifact.tar itself. At startup each is taken out the same way: a regular
 * file becomes the job's own copy, a link is refused and never followed; out/ goes either way. */
START_TEST(test_artifacts_an_older_dmsd_left_in_out_are_adopted_safely)
{
    char jobs[TEST_PATHS], p[TEST_PATHS];
    path_in(jobs, root, "jobs");
    static const char *const dirs[] = {"jobs/j1", "jobs/j1/out", "jobs/j2", "jobs/j2/out",
                                       "jobs/j3", "jobs/j3/out", "jobs/x4", "jobs/x4/out"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char d[TEST_PATHS];
        if (i == 0)
            ck_assert_int_eq(mkdir(jobs, 0700), 0);
        path_in(d, root, dirs[i]);
        ck_assert_int_eq(mkdir(d, 0755), 0);
    }
    path_in(p, root, "jobs/j1/out/" ARTIFACT_NAME);
    write_file(p, "old tar\n", 8);
    path_in(p, root, "jobs/j2/out/" ARTIFACT_NAME);
    ck_assert_int_eq(symlink(secret, p), 0);
    path_in(p, root, "jobs/j3/out/" ARTIFACT_NAME);
    write_file(p, "stale\n", 6);
    path_in(p, root, "jobs/j3/" ARTIFACT_NAME); /* already taken out: left alone */
    write_file(p, "current\n", 8);
    path_in(p, root, "jobs/x4/out/" ARTIFACT_NAME); /* not a job's directory */
    write_file(p, "x\n", 2);
    ck_assert_int_eq(artifact_adopt_legacy(jobs, MAX_BYTES), 1);
    dms_error err = {0};
    int64_t bytes = 0;
    path_in(p, root, "jobs/j1");
    int fd = artifact_open(p, &bytes, &err);
    ck_assert_msg(fd >= 0, "%s", err.message);
    ck_assert_int_eq(bytes, 8);
    close(fd);
    path_in(p, root, "jobs/j1/out");
    ck_assert_int_eq(access(p, F_OK), -1);
    path_in(p, root, "jobs/j2");
    ck_assert_int_eq(artifact_open(p, &bytes, &err), -DMS_E_NOT_FOUND);
    path_in(p, root, "jobs/j2/out");
    ck_assert_int_eq(access(p, F_OK), -1);
    path_in(p, root, "jobs/j3");
    fd = artifact_open(p, &bytes, &err);
    ck_assert_int_eq(bytes, 8);
    close(fd);
    path_in(p, root, "jobs/x4/out");
    ck_assert_int_eq(access(p, F_OK), 0);
    char buf[64] = "";
    fd = open(secret, O_RDONLY);
    ck_assert_int_eq(read(fd, buf, sizeof(buf)), (ssize_t)strlen(SECRET));
    close(fd);
}
END_TEST

START_TEST(test_kinds_are_named_for_messages)
{
    ck_assert_str_eq(artifact_kind(S_IFREG | 0644), "a regular file");
    ck_assert_str_eq(artifact_kind(S_IFLNK | 0777), "a symbolic link");
    ck_assert_str_eq(artifact_kind(S_IFIFO), "a FIFO");
    ck_assert_str_eq(artifact_kind(S_IFCHR), "a character device");
    ck_assert_str_eq(artifact_kind(S_IFBLK), "a block device");
    ck_assert_str_eq(artifact_kind(S_IFSOCK), "a socket");
    ck_assert_str_eq(artifact_kind(S_IFDIR), "a directory");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_artifact");
    TCase *tc = tcase_create("take_out");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_regular_file_is_copied_into_a_file_of_dmsds_own);
    tcase_add_test(tc, test_a_symlink_to_a_host_file_is_refused_and_never_followed);
    tcase_add_test(tc, test_a_hard_link_is_a_regular_file_and_the_copy_is_independent);
    tcase_add_test(tc, test_a_fifo_is_refused_without_blocking);
    tcase_add_test(tc, test_a_device_node_is_refused_without_being_opened);
    tcase_add_test(tc, test_a_socket_is_refused);
    tcase_add_test(tc, test_a_directory_is_refused);
    tcase_add_test(tc, test_a_file_larger_than_the_limit_is_refused_dense_or_sparse);
    tcase_add_test(tc, test_no_artifact_is_not_found);
    tcase_add_test(tc, test_links_where_the_copy_goes_are_replaced_not_followed);
    tcase_add_test(tc, test_open_serves_a_regular_file_only);
    tcase_add_test(tc, test_artifacts_an_older_dmsd_left_in_out_are_adopted_safely);
    tcase_add_test(tc, test_kinds_are_named_for_messages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
