/* test_dmsd_localrepo.c - local repositories: off by default; allowed beneath DMS_LOCAL_REPO_ROOTS once every
 * symlink and ".." is resolved (the root as configured or as its real path, a relative symlink that stays
 * beneath); refused for a symlink or ".." that leaves the root, an absolute symlink, a sibling directory
 * whose name starts like the root, dmsd's data directory; file:// URLs decoded as libgit2 decodes them; a
 * repository swapped for a symlink after the API accepted it is refused at clone time; what the API checks
 * (POST /job/create names project_repo_url). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <git2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/build/git.h"
#include "../../dms/build/localrepo.h"
#include "../../dms/jobs/job.h"
#include "testutil.h"

/* libgit2 1.5.1 (Debian 12) leaks pcre2 match data on every clone (fixed upstream by libgit2 PR #6382). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libpcre2-8.so\n";
}

static char top[64];         /* everything of a test */
static char root[96];        /* the permitted root: top/root */
static char outside[96];     /* top/outside: a repository nobody may use */
static char data[96];        /* top/root/var: dmsd's data directory, beneath the root */
static localrepo_policy pol; /* roots = root */

/* A bare repository at path with one commit on main. */
static void make_repo(const char *path)
{
    tu_sh("set -e; w=$(mktemp -d %s/w-XXXXXX); git init -q -b main $w; echo hi > $w/f; git -C $w add f; "
          "git -C $w -c user.email=t@t -c user.name=t commit -qm one; git clone -q --bare $w '%s'; rm -rf $w",
          top, path);
}

static void setup(void)
{
    tu_mkdtemp(top, sizeof(top));
    snprintf(root, sizeof(root), "%s/root", top);
    snprintf(outside, sizeof(outside), "%s/outside", top);
    snprintf(data, sizeof(data), "%s/var", root);
    tu_sh("mkdir -p %s/sub %s %s %s/root-evil", root, outside, data, top);
    make_repo(strcat(strcpy((char[128]){0}, root), "/app.git"));
    make_repo(strcat(strcpy((char[128]){0}, root), "/sub/deep.git"));
    make_repo(strcat(strcpy((char[128]){0}, outside), "/secret.git"));
    make_repo(strcat(strcpy((char[128]){0}, data), "/theirs.git"));
    make_repo(strcat(strcpy((char[128]){0}, top), "/root-evil/x.git"));
    dms_error err = {0};
    ck_assert_msg(localrepo_policy_parse(&pol, root, data, &err) == 0, "%s", err.message);
}

static void teardown(void)
{
    localrepo_policy_clear(&pol);
    tu_rmtree(top);
}

/* resolve, expecting code (0: allowed, and then the real path is want) */
static void expect(const char *repo, int code, const char *want)
{
    char real[PATH_MAX];
    dms_error err = {0};
    int r = localrepo_resolve(&pol, repo, "repo", real, sizeof(real), &err);
    ck_assert_msg(r == -code, "%s: want %d, got %d: %s", repo, -code, r, err.message);
    if (code == 0) {
        ck_assert_str_eq(real, want);
        return;
    }
    ck_assert_str_eq(err.field, "repo");
    if (code == DMS_E_FORBIDDEN)
        ck_assert_msg(strstr(err.message, LOCALREPO_ROOTS_SETTING), "%s", err.message);
}

START_TEST(test_local_repositories_are_off_without_roots)
{
    localrepo_policy none;
    dms_error err = {0};
    ck_assert_int_eq(localrepo_policy_parse(&none, "", data, &err), 0);
    char real[PATH_MAX], repo[160];
    snprintf(repo, sizeof(repo), "%s/app.git", root);
    ck_assert_int_eq(localrepo_resolve(&none, repo, "repo", real, sizeof(real), &err), -DMS_E_FORBIDDEN);
    ck_assert_msg(strstr(err.message, LOCALREPO_ROOTS_SETTING), "%s", err.message);
    localrepo_policy_clear(&none);
}
END_TEST

/* Without openat2 (valgrind 3.19, an old kernel, a seccomp profile) the walk refuses every symlink and "..",
 * even those that stay beneath the root: stricter, never looser. */
static bool have_openat2(void)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC};
    long fd = syscall(SYS_openat2, AT_FDCWD, ".", &how, sizeof(how));
    if (fd >= 0)
        close((int)fd);
    return fd >= 0 || (errno != ENOSYS && errno != EPERM);
}

START_TEST(test_a_repository_beneath_a_root_is_allowed_by_its_real_path)
{
    int beneath = have_openat2() ? 0 : DMS_E_FORBIDDEN; /* what a ".." or a link that stays beneath gets */
    char repo[256], want[256];
    snprintf(want, sizeof(want), "%s/app.git", root);
    snprintf(repo, sizeof(repo), "%s/app.git", root);
    expect(repo, 0, want);
    snprintf(repo, sizeof(repo), "%s/app.git/", root);
    expect(repo, 0, want);
    snprintf(repo, sizeof(repo), "%s/sub/../app.git", root); /* ".." that stays beneath */
    expect(repo, beneath, want);
    snprintf(repo, sizeof(repo), "%s//./app.git", root);
    expect(repo, 0, want);
    /* relative symlinks that stay beneath */
    tu_sh("ln -s app.git %s/link.git && ln -s sub %s/s", root, root);
    snprintf(repo, sizeof(repo), "%s/link.git", root);
    expect(repo, beneath, want);
    snprintf(repo, sizeof(repo), "%s/s/deep.git", root);
    snprintf(want, sizeof(want), "%s/sub/deep.git", root);
    expect(repo, beneath, want);
}
END_TEST

START_TEST(test_file_urls_are_decoded_like_libgit2_does)
{
    char repo[256], want[256];
    snprintf(want, sizeof(want), "%s/app.git", root);
    snprintf(repo, sizeof(repo), "file://%s/app.git", root);
    expect(repo, 0, want);
    snprintf(repo, sizeof(repo), "FILE://localhost%s/app.git", root);
    expect(repo, 0, want);
    snprintf(repo, sizeof(repo), "file://%s/%%61pp.git", root); /* %61 = a */
    expect(repo, 0, want);
    snprintf(repo, sizeof(repo), "file://%s/sub/%%2e%%2e/%%2e%%2e/outside/secret.git", root); /* ../.. */
    expect(repo, DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "file://%s/app.git%%00x", root);
    expect(repo, DMS_E_INVALID, NULL);
    expect("file://otherhost/srv/x.git", DMS_E_INVALID, NULL);
    expect("file://", DMS_E_INVALID, NULL);
}
END_TEST

START_TEST(test_a_path_that_leaves_the_root_is_refused_however_it_is_spelled)
{
    char repo[256];
    snprintf(repo, sizeof(repo), "%s/outside/secret.git", top);
    expect(repo, DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "%s/../outside/secret.git", root);
    expect(repo, DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "%s/root-evil/x.git", top); /* starts like the root, is not beneath it */
    expect(repo, DMS_E_FORBIDDEN, NULL);
    tu_sh("ln -s ../outside/secret.git %s/rel.git && ln -s %s/secret.git %s/abs.git && ln -s %s %s/dir", root,
          outside, root, outside, root);
    snprintf(repo, sizeof(repo), "%s/rel.git", root);
    expect(repo, DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "%s/abs.git", root);
    expect(repo, DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "%s/dir/secret.git", root);
    expect(repo, DMS_E_FORBIDDEN, NULL);
    /* what exists outside makes no difference to the answer */
    snprintf(repo, sizeof(repo), "%s/dir/no-such.git", root);
    expect(repo, DMS_E_FORBIDDEN, NULL);
    expect("/etc", DMS_E_FORBIDDEN, NULL);
    expect("/no/such/dir", DMS_E_FORBIDDEN, NULL);
    expect("/proc/self/root/etc", DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "%s/theirs.git", data); /* beneath the root, but dmsd's data */
    expect(repo, DMS_E_FORBIDDEN, NULL);
    snprintf(repo, sizeof(repo), "%s/no-such.git", root);
    expect(repo, DMS_E_NOT_FOUND, NULL);
}
END_TEST

START_TEST(test_a_root_is_matched_as_configured_and_as_its_real_path)
{
    char link[128], roots[256], repo[256], want[256];
    snprintf(link, sizeof(link), "%s/root-link", top);
    tu_sh("ln -s %s %s", root, link);
    localrepo_policy p2;
    dms_error err = {0};
    snprintf(roots, sizeof(roots), "%s/::%s/", outside, link); /* empty entries and trailing slashes */
    ck_assert_msg(localrepo_policy_parse(&p2, roots, NULL, &err) == 0, "%s", err.message);
    ck_assert_uint_eq(p2.n_roots, 2);
    char real[PATH_MAX];
    snprintf(want, sizeof(want), "%s/app.git", root);
    snprintf(repo, sizeof(repo), "%s/app.git", link);
    ck_assert_int_eq(localrepo_resolve(&p2, repo, "repo", real, sizeof(real), &err), 0);
    ck_assert_str_eq(real, want);
    ck_assert_int_eq(localrepo_resolve(&p2, want, "repo", real, sizeof(real), &err), 0);
    snprintf(repo, sizeof(repo), "%s/secret.git", outside);
    ck_assert_int_eq(localrepo_resolve(&p2, repo, "repo", real, sizeof(real), &err), 0);
    localrepo_policy_clear(&p2);
}
END_TEST

START_TEST(test_roots_that_are_not_absolute_existing_directories_are_refused)
{
    char file[128], missing[128];
    snprintf(file, sizeof(file), "%s/app.git/HEAD", root);
    snprintf(missing, sizeof(missing), "%s/missing", top);
    const char *bad[] = {"relative/dir", "/srv/../etc", "/srv/./x", file, missing};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        localrepo_policy p2;
        dms_error err = {0};
        ck_assert_msg(localrepo_policy_parse(&p2, bad[i], NULL, &err) == -DMS_E_INVALID, "%s accepted",
                      bad[i]);
        ck_assert_msg(strstr(err.message, LOCALREPO_ROOTS_SETTING) && strstr(err.message, bad[i]), "%s",
                      err.message);
        ck_assert_uint_eq(p2.n_roots, 0);
    }
}
END_TEST

START_TEST(test_file_url_percent_encodes_what_is_not_plain)
{
    char url[256];
    dms_error err = {0};
    ck_assert_int_eq(localrepo_file_url("/srv/a b/%x:y.git", url, sizeof(url), &err), 0);
    ck_assert_str_eq(url, "file:///srv/a%20b/%25x%3Ay.git");
    ck_assert_int_eq(localrepo_file_url("/srv/a b", url, 12, &err), -DMS_E_INVALID);
    ck_assert(localrepo_is_local("/x") && localrepo_is_local("File:///x") && !localrepo_is_local("git@h:x") &&
              !localrepo_is_local("https://h/x"));
}
END_TEST

/* ---- through git.h: the API's check and the clone ---- */

static void init_git(void)
{
    dms_error err = {0};
    git_libgit2_init();
    gitx_config cfg = {.local_roots = root, .data_dir = data};
    ck_assert_msg(gitx_init(&cfg, &err) == 0, "%s", err.message);
}

static void fini_git(void)
{
    gitx_shutdown();
    git_libgit2_shutdown();
}

START_TEST(test_a_repository_swapped_for_a_symlink_after_the_check_is_refused_at_clone)
{
    init_git();
    char repo[160], dst[160], sha[GIT_SHA_HEX + 1];
    dms_error err = {0};
    snprintf(repo, sizeof(repo), "%s/swap.git", root);
    make_repo(repo);
    ck_assert_int_eq(gitx_check_access(repo, "repo", &err), 0); /* what POST /droids checks */
    snprintf(dst, sizeof(dst), "%s/c1", top);
    ck_assert_msg(gitx_clone(repo, NULL, NULL, dst, NULL, sha, &err) == 0, "%s", err.message);
    tu_sh("rm -rf %s && ln -s %s/secret.git %s", repo, outside, repo); /* between create and build */
    snprintf(dst, sizeof(dst), "%s/c2", top);
    ck_assert_int_eq(gitx_clone(repo, NULL, NULL, dst, NULL, sha, &err), -DMS_E_FORBIDDEN);
    ck_assert(!err.retryable);
    ck_assert_int_eq(access(dst, F_OK), -1); /* nothing cloned */
    gitx_remote_info info;
    ck_assert_int_eq(gitx_ls_remote(repo, &info, &err), -DMS_E_FORBIDDEN);
    ck_assert_int_eq(gitx_branch_head(repo, NULL, sha, NULL, &err), -DMS_E_FORBIDDEN);
    ck_assert_int_eq(gitx_check_access(repo, "repo", &err), -DMS_E_FORBIDDEN);
    /* a repository that does not exist yet passes the API's check; its clone says it is missing */
    snprintf(repo, sizeof(repo), "file://%s/later.git", root);
    ck_assert_int_eq(gitx_check_access(repo, "repo", &err), 0);
    ck_assert_int_eq(gitx_clone(repo, NULL, NULL, dst, NULL, sha, &err), -DMS_E_NOT_FOUND);
    fini_git();
}
END_TEST

START_TEST(test_a_job_with_a_local_repository_outside_the_roots_is_refused_naming_the_field)
{
    init_git();
    char body[1024];
    snprintf(body, sizeof(body),
             "{\"project_id\":\"p\",\"deployment_id\":\"d\",\"project_branch\":\"main\","
             "\"project_repo_url\":\"file://%s/secret.git\",\"project_build_command\":\"true\","
             "\"project_package_manager\":\"none\",\"project_dist_directory\":\"dist\"}",
             outside);
    json_t *j = json_loads(body, 0, NULL);
    job jb;
    job_init(&jb);
    dms_error err = {0};
    ck_assert_int_eq(job_parse_create(j, &jb, &err), -DMS_E_FORBIDDEN);
    ck_assert_str_eq(err.field, "project_repo_url");
    job_clear(&jb);
    json_decref(j);
    fini_git();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_localrepo");
    TCase *tc = tcase_create("localrepo");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_local_repositories_are_off_without_roots);
    tcase_add_test(tc, test_a_repository_beneath_a_root_is_allowed_by_its_real_path);
    tcase_add_test(tc, test_file_urls_are_decoded_like_libgit2_does);
    tcase_add_test(tc, test_a_path_that_leaves_the_root_is_refused_however_it_is_spelled);
    tcase_add_test(tc, test_a_root_is_matched_as_configured_and_as_its_real_path);
    tcase_add_test(tc, test_roots_that_are_not_absolute_existing_directories_are_refused);
    tcase_add_test(tc, test_file_url_percent_encodes_what_is_not_plain);
    tcase_add_test(tc, test_a_repository_swapped_for_a_symlink_after_the_check_is_refused_at_clone);
    tcase_add_test(tc, test_a_job_with_a_local_repository_outside_the_roots_is_refused_naming_the_field);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
