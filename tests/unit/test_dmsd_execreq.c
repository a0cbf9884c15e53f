/* test_dmsd_execreq.c - the request that starts a droid's container (run/execreq.h), field by field: its ids
 * and image, the limits within the operator's ceilings, the security part, the user's network, the env with
 * $PORT, the port published on 127.0.0.1, the labels and one named volume per droid volume. Pure: no engine.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/confine/confine.h"
#include "../../dms/droids/droid.h"
#include "../../dms/run/execreq.h"
#include "testutil.h"

#define EXEC_ID "d0123456789ab-r3-7"
#define IMAGE   "dms-droid/d0123456789ab:r3"

static confine_config cfg;
static droid *d;

static void setup(void)
{
    confine_config_defaults(&cfg);
    d = droid_new();
    ck_assert_ptr_nonnull(d);
    strcpy(d->id, "d0123456789ab");
    d->user_id = strdup("alice");
    d->name = strdup("web");
    d->port = 8080;
}

static void teardown(void)
{
    droid_free(d);
    d = NULL;
}

static int build(execreq *xr, int64_t release, dms_error *err)
{
    execreq_input in = {.d = d,
                        .exec_id = EXEC_ID,
                        .release = release,
                        .image = IMAGE,
                        .confine = &cfg,
                        .executor_id = "dmsd"};
    return execreq_build(xr, &in, err);
}

static void add_volume(const char *name, const char *path)
{
    d->volumes = realloc(d->volumes, (d->n_volumes + 1) * sizeof(*d->volumes));
    ck_assert_ptr_nonnull(d->volumes);
    d->volumes[d->n_volumes].name = strdup(name);
    d->volumes[d->n_volumes].mount_path = strdup(path);
    d->n_volumes++;
}

static size_t strv_len(char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    return n;
}

static bool strv_has(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], s) == 0)
            return true;
    return false;
}

START_TEST(test_a_plain_droid_gets_its_ids_image_port_network_labels_and_an_init)
{
    execreq xr;
    dms_error err = {0};
    ck_assert_int_eq(build(&xr, 3, &err), 0);
    const dms_exec_request *r = &xr.req;
    ck_assert_str_eq(r->job_id, "d0123456789ab");
    ck_assert_str_eq(r->execution_id, EXEC_ID);
    ck_assert_str_eq(r->engine.image, IMAGE);
    ck_assert_ptr_null(r->engine.cmd);
    ck_assert_ptr_null(r->engine.entrypoint);
    /* its port, on loopback, on any free host port */
    ck_assert_uint_eq(r->n_ports, 1);
    ck_assert_uint_eq(r->ports[0].container_port, 8080);
    ck_assert_uint_eq(r->ports[0].host_port, 0);
    ck_assert_str_eq(r->ports[0].host_ip, "127.0.0.1");
    ck_assert_ptr_null(r->ports[0].protocol);
    /* its user's network, the same name confine/ gives */
    char net[CONFINE_NETWORK_MAX];
    ck_assert_int_eq(confine_user_network("dmsd", "alice", net, sizeof(net), &err), 0);
    ck_assert_int_eq(r->network_mode, DMS_NET_NAMED);
    ck_assert_str_eq(r->network_name, net);
    ck_assert_ptr_nonnull(strstr(r->network_name, "droid-net-u"));
    /* the labels that name the droid and the release */
    ck_assert_uint_eq(strv_len(r->labels), 2);
    ck_assert_str_eq(r->labels[0], "dms.droid=d0123456789ab");
    ck_assert_str_eq(r->labels[1], "dms.release=3");
    ck_assert_int_eq(r->stop_grace_ms, DROID_STOP_GRACE_MS);
    ck_assert(r->init);
    /* no volumes, no run timeout, not kept, not a build, default output limits */
    ck_assert_uint_eq(r->n_mounts, 0);
    ck_assert_int_eq(r->timeout_ms, 0);
    ck_assert(!r->keep_container);
    ck_assert_ptr_null(r->role);
    ck_assert_int_eq(r->limits.result_output_bytes, 0);
    ck_assert_int_eq(dms_exec_request_validate(r, &err), 0);
    execreq_clear(&xr);
}
END_TEST

START_TEST(test_the_env_carries_port_unless_the_droid_sets_it)
{
    execreq xr;
    dms_error err = {0};
    d->port = 3000;
    d->env_json = strdup("{\"A\":\"1\",\"GREETING\":\"hello world\"}");
    ck_assert_int_eq(build(&xr, 1, &err), 0);
    ck_assert_uint_eq(strv_len(xr.req.engine.env), 3);
    ck_assert(strv_has(xr.req.engine.env, "A=1"));
    ck_assert(strv_has(xr.req.engine.env, "GREETING=hello world"));
    ck_assert(strv_has(xr.req.engine.env, "PORT=3000"));
    ck_assert_uint_eq(xr.req.ports[0].container_port, 3000);
    execreq_clear(&xr);

    free(d->env_json);
    d->env_json = strdup("{\"PORT\":\"9000\"}");
    ck_assert_int_eq(build(&xr, 1, &err), 0);
    ck_assert_uint_eq(strv_len(xr.req.engine.env), 1);
    ck_assert_str_eq(xr.req.engine.env[0], "PORT=9000");
    execreq_clear(&xr);
}
END_TEST

START_TEST(test_a_droid_without_limits_gets_the_defaults_and_one_above_a_ceiling_gets_the_ceiling)
{
    execreq xr;
    dms_error err = {0};
    ck_assert_int_eq(build(&xr, 1, &err), 0);
    ck_assert_int_eq(xr.req.resources.memory_bytes, (int64_t)CONFINE_DROID_MEMORY_MB * 1024 * 1024);
    ck_assert_int_eq(xr.req.resources.cpu_millis, CONFINE_DROID_CPU_MILLIS);
    ck_assert_int_eq(xr.req.resources.pids_limit, CONFINE_DROID_PIDS);
    ck_assert_int_eq(xr.req.resources.disk_bytes, 0);
    ck_assert_int_eq(xr.req.resources.gpus, 0);
    execreq_clear(&xr);

    d->resources = (droid_resources){.memory_mb = 1024, .cpu_millis = 250, .pids = 64};
    ck_assert_int_eq(build(&xr, 1, &err), 0);
    ck_assert_int_eq(xr.req.resources.memory_bytes, 1024LL * 1024 * 1024);
    ck_assert_int_eq(xr.req.resources.cpu_millis, 250);
    ck_assert_int_eq(xr.req.resources.pids_limit, 64);
    execreq_clear(&xr);

    /* the operator lowered a ceiling after the droid asked for more: it is held to the new one */
    cfg.droid_max.memory_mb = 768;
    ck_assert_int_eq(build(&xr, 1, &err), 0);
    ck_assert_int_eq(xr.req.resources.memory_bytes, 768LL * 1024 * 1024);
    execreq_clear(&xr);
}
END_TEST

START_TEST(test_every_droid_gets_the_security_part_of_confine)
{
    execreq xr;
    dms_error err = {0};
    ck_assert_int_eq(build(&xr, 1, &err), 0);
    const dms_security *want = confine_security();
    ck_assert(xr.req.security.no_new_privileges);
    ck_assert_ptr_eq(xr.req.security.cap_drop, want->cap_drop);
    ck_assert_ptr_eq(xr.req.security.cap_add, want->cap_add);
    ck_assert_str_eq(xr.req.security.cap_drop[0], DMS_CAP_ALL);
    ck_assert(!strv_has(xr.req.security.cap_add, "NET_RAW"));
    ck_assert(strv_has(xr.req.security.cap_add, "NET_BIND_SERVICE"));
    execreq_clear(&xr);
}
END_TEST

START_TEST(test_each_volume_is_a_named_volume_of_the_droid_mounted_where_it_asked)
{
    execreq xr;
    dms_error err = {0};
    add_volume("data", "/var/lib/app");
    add_volume("cache", "/cache");
    ck_assert_int_eq(build(&xr, 12, &err), 0);
    ck_assert_uint_eq(xr.req.n_mounts, 2);
    ck_assert_int_eq(xr.req.mounts[0].type, DMS_MOUNT_VOLUME);
    ck_assert_str_eq(xr.req.mounts[0].source, "d0123456789ab-data");
    ck_assert_str_eq(xr.req.mounts[0].target, "/var/lib/app");
    ck_assert(!xr.req.mounts[0].read_only);
    ck_assert_int_eq(xr.req.mounts[0].size_bytes, 0);
    ck_assert_int_eq(xr.req.mounts[1].type, DMS_MOUNT_VOLUME);
    ck_assert_str_eq(xr.req.mounts[1].source, "d0123456789ab-cache");
    ck_assert_str_eq(xr.req.mounts[1].target, "/cache");
    ck_assert_str_eq(xr.req.labels[1], "dms.release=12");
    ck_assert_int_eq(dms_exec_request_validate(&xr.req, &err), 0);
    execreq_clear(&xr);
}
END_TEST

START_TEST(test_each_user_and_each_dmsd_gets_another_network)
{
    execreq a, b, c;
    dms_error err = {0};
    ck_assert_int_eq(build(&a, 1, &err), 0);
    free(d->user_id);
    d->user_id = strdup("bob");
    ck_assert_int_eq(build(&b, 1, &err), 0);
    execreq_input in = {
        .d = d, .exec_id = EXEC_ID, .release = 1, .image = IMAGE, .confine = &cfg, .executor_id = "other"};
    ck_assert_int_eq(execreq_build(&c, &in, &err), 0);
    ck_assert_str_ne(a.req.network_name, b.req.network_name);
    ck_assert_str_ne(b.req.network_name, c.req.network_name);
    ck_assert_ptr_nonnull(strstr(c.req.network_name, "droid-net-other-u"));
    execreq_clear(&a);
    execreq_clear(&b);
    execreq_clear(&c);
}
END_TEST

START_TEST(test_a_stored_env_that_is_not_an_object_fails_the_build)
{
    execreq xr;
    dms_error err = {0};
    d->env_json = strdup("[1]");
    ck_assert_int_eq(build(&xr, 1, &err), -DMS_E_INTERNAL);
    ck_assert_str_eq(err.field, "env");
    ck_assert_ptr_null(xr.req.engine.env);
    execreq_clear(&xr);
    execreq_clear(&xr); /* twice is harmless */
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_execreq");
    TCase *tc = tcase_create("execreq");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_plain_droid_gets_its_ids_image_port_network_labels_and_an_init);
    tcase_add_test(tc, test_the_env_carries_port_unless_the_droid_sets_it);
    tcase_add_test(tc,
                   test_a_droid_without_limits_gets_the_defaults_and_one_above_a_ceiling_gets_the_ceiling);
    tcase_add_test(tc, test_every_droid_gets_the_security_part_of_confine);
    tcase_add_test(tc, test_each_volume_is_a_named_volume_of_the_droid_mounted_where_it_asked);
    tcase_add_test(tc, test_each_user_and_each_dmsd_gets_another_network);
    tcase_add_test(tc, test_a_stored_env_that_is_not_an_object_fails_the_build);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
