/* test_dmsd_confine.c - what dmsd confines users' containers with: a droid's limits within the operator's
 * ceilings (every refusal names its field and the setting), the defaults and a lowered ceiling, the security
 * part, per-user network names, the droid quota (counted under core's lock) and the disk quota (release
 * images plus data directories, never through a symlink). */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/common.h"
#include "../../dms/confine/confine.h"
#include "../../dms/confine/quota.h"
#include "security.h"
#include "util.h"
#include "testutil.h"

static confine_config defaults(void)
{
    confine_config c;
    confine_config_defaults(&c);
    return c;
}

static void assert_refused(const confine_config *c, droid_resources r, const char *field, const char *want)
{
    dms_error err = {0};
    ck_assert_int_eq(confine_check_resources(c, &r, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, field);
    ck_assert_msg(strstr(err.message, want) != NULL, "message \"%s\" lacks \"%s\"", err.message, want);
}

START_TEST(test_a_droid_asks_for_limits_within_the_ceilings)
{
    confine_config c = defaults();
    dms_error err = {0};
    droid_resources none = {0}, within = {.memory_mb = 2048, .cpu_millis = 10, .pids = 8};
    ck_assert_int_eq(confine_check_resources(&c, &none, &err), 0);
    ck_assert_int_eq(confine_check_resources(&c, &within, &err), 0);
    assert_refused(&c, (droid_resources){.memory_mb = 2049}, "resources.memory_mb",
                   "DMS_DROID_MEMORY_MAX_MB=2048");
    assert_refused(&c, (droid_resources){.memory_mb = 5}, "resources.memory_mb", "too small");
    assert_refused(&c, (droid_resources){.cpu_millis = 4000}, "resources.cpu_millis",
                   "DMS_DROID_CPU_MAX_MILLIS");
    assert_refused(&c, (droid_resources){.pids = 100000}, "resources.pids", "DMS_DROID_PIDS_MAX=1024");
    c.droid_max.pids = 100000; /* the operator raises the ceiling: the same ask is fine */
    droid_resources many = {.pids = 100000};
    ck_assert_int_eq(confine_check_resources(&c, &many, &err), 0);
}
END_TEST

START_TEST(test_the_container_gets_its_own_limits_or_the_defaults_never_above_the_ceiling)
{
    confine_config c = defaults();
    droid_resources none = {0}, own = {.memory_mb = 1024, .pids = 64};
    confine_limits l = confine_droid_limits(&c, &none);
    ck_assert_int_eq(l.memory_mb, CONFINE_DROID_MEMORY_MB);
    ck_assert_int_eq(l.cpu_millis, CONFINE_DROID_CPU_MILLIS);
    ck_assert_int_eq(l.pids, CONFINE_DROID_PIDS);
    l = confine_droid_limits(&c, &own);
    ck_assert_int_eq(l.memory_mb, 1024);
    ck_assert_int_eq(l.cpu_millis, CONFINE_DROID_CPU_MILLIS);
    ck_assert_int_eq(l.pids, 64);
    c.droid_max.memory_mb = 768; /* lowered after the droid asked for more */
    ck_assert_int_eq(confine_droid_limits(&c, &own).memory_mb, 768);
    dms_resources r = confine_resources(l);
    ck_assert_int_eq(r.memory_bytes, 1024LL * 1024 * 1024);
    ck_assert_int_eq(r.cpu_millis, CONFINE_DROID_CPU_MILLIS);
    ck_assert_int_eq(r.pids_limit, 64);
    ck_assert(r.memory_bytes >= DMS_MEMORY_MIN_BYTES);
}
END_TEST

START_TEST(test_a_default_above_its_ceiling_is_a_configuration_error)
{
    confine_config c = defaults();
    dms_error err = {0};
    ck_assert_int_eq(confine_config_check(&c, &err), 0);
    c.droid.pids = c.droid_max.pids + 1;
    ck_assert_int_eq(confine_config_check(&c, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "DMS_DROID_PIDS="));
    ck_assert_ptr_nonnull(strstr(err.message, "DMS_DROID_PIDS_MAX="));
}
END_TEST

START_TEST(test_every_container_drops_all_capabilities_but_a_few_and_gains_none)
{
    const dms_security *s = confine_security();
    ck_assert(s->no_new_privileges);
    uint64_t kept = dmsu_security_cap_mask(s, ~UINT64_C(0));
    const char *want[] = {"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID",
                          "KILL",  "SETGID",       "SETUID", "NET_BIND_SERVICE"};
    uint64_t expect = 0;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(want); i++)
        expect |= UINT64_C(1) << dms_capability_number(want[i]);
    ck_assert_uint_eq(kept, expect);
    const char *never[] = {"NET_RAW", "MKNOD",       "SYS_CHROOT", "SETFCAP",
                           "SETPCAP", "AUDIT_WRITE", "SYS_ADMIN"};
    for (size_t i = 0; i < DMS_ARRAY_SIZE(never); i++)
        ck_assert_msg(!(kept & (UINT64_C(1) << dms_capability_number(never[i]))), "%s is kept", never[i]);
    /* And the executor accepts it as it is. */
    dms_exec_request req = {.job_id = "j", .execution_id = "e", .security = *s};
    ck_assert_int_eq(dms_exec_request_validate(&req, NULL), 0);
}
END_TEST

START_TEST(test_each_user_of_each_dmsd_gets_a_network_of_their_own)
{
    char a[CONFINE_NETWORK_MAX], b[CONFINE_NETWORK_MAX], a2[CONFINE_NETWORK_MAX], x[CONFINE_NETWORK_MAX];
    ck_assert_int_eq(confine_user_network("dmsd", "alice", a, sizeof(a), NULL), 0);
    ck_assert_int_eq(confine_user_network("dmsd", "bob", b, sizeof(b), NULL), 0);
    ck_assert_int_eq(confine_user_network("dmsd", "alice", a2, sizeof(a2), NULL), 0);
    ck_assert_int_eq(confine_user_network("feat-1-dmsd", "alice", x, sizeof(x), NULL), 0);
    ck_assert_str_eq(a, a2);
    ck_assert_str_ne(a, b);
    ck_assert_str_ne(a, x);
    /* sha256("alice") = 2bd806c97f0e00af... */
    ck_assert_str_eq(a, "droid-net-u2bd806c97f0e00af");
    ck_assert_str_eq(x, "droid-net-feat-1-dmsd-u2bd806c97f0e00af");
    ck_assert(dms_id_valid(a) && dms_id_valid(x));
    /* An executor id of the longest kind is hashed too, so the name still fits an identifier. */
    char longest[DMS_ID_MAX + 1], l1[CONFINE_NETWORK_MAX], l2[CONFINE_NETWORK_MAX];
    memset(longest, 'e', DMS_ID_MAX);
    longest[DMS_ID_MAX] = '\0';
    ck_assert_int_eq(confine_user_network(longest, "alice", l1, sizeof(l1), NULL), 0);
    longest[0] = 'f';
    ck_assert_int_eq(confine_user_network(longest, "alice", l2, sizeof(l2), NULL), 0);
    ck_assert(dms_id_valid(l1));
    ck_assert_str_ne(l1, l2);
    char legacy[CONFINE_NETWORK_MAX + 16];
    confine_legacy_network("dmsd", legacy, sizeof(legacy));
    ck_assert_str_eq(legacy, "droid-net");
    confine_legacy_network("x1", legacy, sizeof(legacy));
    ck_assert_str_eq(legacy, "droid-net-x1");
}
END_TEST

/* ---- quotas, on a store, core and data dir of their own ---- */

static char dir[64];
static quota_deps A; /* the store, core and data dir the quota reads */

static void setup(void)
{
    dms_error err = {0};
    char p[128];
    tu_mkdtemp(dir, sizeof(dir));
    memset(&A, 0, sizeof(A));
    A.data_dir = dir;
    snprintf(p, sizeof(p), "%s/dms.db", dir);
    ck_assert_int_eq(store_open(&A.st, p, &err), 0);
    ck_assert_int_eq(core_open(&A.core, A.st, &err), 0);
}

static void teardown(void)
{
    core_close(A.core);
    store_close(A.st);
    tu_rmtree(dir);
}

static int create(const char *name, const char *user, droid **out, dms_error *err)
{
    droid *d = droid_new();
    d->name = strdup(name);
    d->user_id = strdup(user);
    d->repo = strdup("/srv/x.git");
    d->env_json = strdup("{}");
    d->port = 8080;
    int r = core_create(A.core, d, out, err);
    droid_free(d);
    return r;
}

START_TEST(test_a_user_at_the_droid_quota_gets_forbidden_and_nothing_is_created)
{
    dms_error err = {0};
    droid *d = NULL;
    core_set_user_max_droids(A.core, 2);
    ck_assert_int_eq(create("a1", "alice", &d, &err), 0);
    droid_free(d);
    ck_assert_int_eq(create("a2", "alice", &d, &err), 0);
    droid_free(d);
    ck_assert_int_eq(create("a3", "alice", NULL, &err), -DMS_E_FORBIDDEN);
    ck_assert_str_eq(err.field, "quota.droids");
    ck_assert_ptr_nonnull(strstr(err.message, "DMS_USER_MAX_DROIDS"));
    ck_assert_uint_eq(core_count_user(A.core, "alice"), 2);
    ck_assert(core_name_available(A.core, "a3"));
    droid **all = NULL;
    size_t n = 0;
    ck_assert_int_eq(store_droid_load_all(A.st, &all, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    for (size_t i = 0; i < n; i++)
        droid_free(all[i]);
    free(all);
    /* Another user's count is their own. */
    ck_assert_int_eq(create("b1", "bob", &d, &err), 0);
    droid_free(d);
}
END_TEST

static void write_file(const char *path, size_t bytes)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    char buf[4096];
    memset(buf, 'x', sizeof(buf));
    for (size_t done = 0; done < bytes; done += sizeof(buf))
        ck_assert_int_eq(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
}

START_TEST(test_disk_use_counts_images_and_data_dirs_but_never_follows_a_link)
{
    dms_error err = {0};
    droid *d = NULL;
    ck_assert_int_eq(create("web", "alice", &d, &err), 0);
    char ddir[256], p[320];
    ck_assert_int_eq(dmsd_droid_dir(dir, d->id, ddir, sizeof(ddir)), 0);
    ck_assert_int_eq(dms_mkdir_p(ddir, false, &err), 0);
    snprintf(p, sizeof(p), "%s/build.out", ddir);
    write_file(p, 1024 * 1024);
    /* A clone holding a link to a big host file: the link is counted, not the file. */
    char big[128];
    snprintf(big, sizeof(big), "%s/host-file", dir);
    write_file(big, 8 * 1024 * 1024);
    snprintf(p, sizeof(p), "%s/src", ddir);
    ck_assert_int_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/src/link", ddir);
    ck_assert_int_eq(symlink(big, p), 0);
    store_release rel = {.seq = 1, .image_id = "sha256:1", .tag = "t", .image_bytes = 3 * 1024 * 1024};
    strcpy(rel.droid_id, d->id);
    ck_assert_int_eq(store_release_insert(A.st, &rel, &err), 0);
    int64_t used = 0;
    ck_assert_int_eq(quota_disk_used(&A, "alice", &used, &err), 0);
    ck_assert_int_ge(used, 4 * 1024 * 1024);
    ck_assert_int_lt(used, 5 * 1024 * 1024);
    ck_assert_int_eq(quota_disk_used(&A, "bob", &used, &err), 0);
    ck_assert_int_eq(used, 0);

    A.user_max_disk_mb = 5;
    ck_assert_int_eq(quota_check_disk(&A, "alice", &err), 0);
    A.user_max_disk_mb = 4;
    ck_assert_int_eq(quota_check_disk(&A, "alice", &err), -DMS_E_FORBIDDEN);
    ck_assert_str_eq(err.field, "quota.disk_mb");
    ck_assert_ptr_nonnull(strstr(err.message, "DMS_USER_MAX_DISK_MB"));
    ck_assert_int_eq(quota_check_disk(&A, "bob", &err), 0);
    droid_free(d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_confine");
    TCase *tc = tcase_create("confine");
    tcase_add_test(tc, test_a_droid_asks_for_limits_within_the_ceilings);
    tcase_add_test(tc, test_the_container_gets_its_own_limits_or_the_defaults_never_above_the_ceiling);
    tcase_add_test(tc, test_a_default_above_its_ceiling_is_a_configuration_error);
    tcase_add_test(tc, test_every_container_drops_all_capabilities_but_a_few_and_gains_none);
    tcase_add_test(tc, test_each_user_of_each_dmsd_gets_a_network_of_their_own);
    suite_add_tcase(s, tc);
    tc = tcase_create("quota");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_user_at_the_droid_quota_gets_forbidden_and_nothing_is_created);
    tcase_add_test(tc, test_disk_use_counts_images_and_data_dirs_but_never_follows_a_link);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
