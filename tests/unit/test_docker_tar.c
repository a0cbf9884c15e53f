/* test_docker_tar.c - the build context tar (executor/docker/tar.c) of a tree a hostile repository made:
 * symlinks go in as symlinks (never followed, wherever they point), the caller's reserved file cannot be
 * replaced by one of the tree, .git and FIFOs stay out. */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "docker/tar.h"
#include "util.h"
#include "testutil.h"

#define RESERVED "reserved.Dockerfile"

static char dir[PATH_MAX];

static void setup(void)
{
    char p[PATH_MAX * 2];
    tu_mkdtemp(dir, sizeof(dir));
    snprintf(p, sizeof(p), "%s/sub", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/.git", dir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    tu_write(dir, "a.txt", "a");
    tu_write(dir, "sub/b.txt", "bb");
    tu_write(dir, ".git/HEAD", "ref");
    tu_write(dir, RESERVED, "FROM the-users-choice\n");
    snprintf(p, sizeof(p), "%s/host", dir);
    ck_assert_int_eq(symlink("/etc/passwd", p), 0);
    snprintf(p, sizeof(p), "%s/dirlink", dir);
    ck_assert_int_eq(symlink("/etc", p), 0);
    snprintf(p, sizeof(p), "%s/fifo", dir);
    ck_assert_int_eq(mkfifo(p, 0644), 0);
}

static void teardown(void)
{
    tu_rmtree(dir);
}

typedef struct entry {
    char name[256];
    char type;
    char link[256];
    char data[64];
} entry;

/* The ustar entries of the archive (names under 100 bytes here, so no pax records). */
static size_t read_tar(int fd, entry *out, size_t max)
{
    size_t n = 0;
    char h[512];
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    while (read(fd, h, sizeof(h)) == (ssize_t)sizeof(h) && h[0] && n < max) {
        entry *e = &out[n++];
        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%.100s", h);
        e->type = h[156];
        snprintf(e->link, sizeof(e->link), "%.100s", h + 157);
        size_t size = strtoul(h + 124, NULL, 8);
        size_t padded = (size + 511) / 512 * 512;
        char *body = malloc(padded + 1);
        ck_assert_int_eq(read(fd, body, padded), (ssize_t)padded);
        snprintf(e->data, sizeof(e->data), "%.*s", (int)size, body);
        free(body);
    }
    return n;
}

static const entry *find(const entry *v, size_t n, const char *name)
{
    const entry *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0) {
            ck_assert_msg(!found, "%s is in the archive twice", name);
            found = &v[i];
        }
    return found;
}

START_TEST(test_symlinks_are_archived_as_symlinks_and_the_reserved_name_is_ours)
{
    char tmpl[] = "/tmp/dms-test-tar-out-XXXXXX";
    int fd = mkstemp(tmpl);
    ck_assert_int_ge(fd, 0);
    unlink(tmpl);
    int64_t bytes = 0;
    dms_error err = {0};
    const char *ours = "FROM dms-stack/busybox\n";
    ck_assert_msg(docker_tar_dir(dir, RESERVED, ours, strlen(ours), fd, &bytes, &err) == 0, "%s",
                  err.message);
    entry v[32];
    size_t n = read_tar(fd, v, 32);
    close(fd);
    const entry *e = find(v, n, "host");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->type, '2');
    ck_assert_str_eq(e->link, "/etc/passwd");
    ck_assert_str_eq(e->data, "");
    e = find(v, n, "dirlink");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->type, '2');
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strncmp(v[i].name, "dirlink/", 8) != 0 && strncmp(v[i].name, ".git", 4) != 0 &&
                          strcmp(v[i].name, "fifo") != 0,
                      "%s should not be in the archive", v[i].name);
    ck_assert_str_eq(find(v, n, "sub/b.txt")->data, "bb");
    ck_assert_int_eq(find(v, n, "sub/")->type, '5');
    e = find(v, n, RESERVED);
    ck_assert_ptr_nonnull(e);
    ck_assert_str_eq(e->data, ours);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("docker_tar");
    TCase *tc = tcase_create("tar");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_symlinks_are_archived_as_symlinks_and_the_reserved_name_is_ours);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
