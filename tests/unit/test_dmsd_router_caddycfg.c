/* test_dmsd_router_caddycfg.c - the Caddy JSON builder: one route per droid by @id, the three kinds of route,
 * the drain upstream, the whole config (and that Caddy itself accepts it: `caddy validate`). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/router/caddycfg.h"
#include "testutil.h"

static const char *str_at(json_t *j, const char *path)
{
    /* path like "handle.0.upstreams.1.dial" */
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (json_is_array(cur))
            cur = json_array_get(cur, (size_t)strtol(tok, NULL, 10));
        else
            cur = json_object_get(cur, tok);
    }
    return json_string_value(cur);
}

static json_t *at_path(json_t *j, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = j;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_is_array(cur) ? json_array_get(cur, (size_t)strtol(tok, NULL, 10))
                                 : json_object_get(cur, tok);
    return cur;
}

static route_spec proxy(void)
{
    route_spec r = {.kind = ROUTE_PROXY};
    snprintf(r.droid_id, sizeof(r.droid_id), "d0123456789ab");
    snprintf(r.host, sizeof(r.host), "web.localhost");
    snprintf(r.dial, sizeof(r.dial), "172.18.0.5:8080");
    return r;
}

START_TEST(test_proxy_route_matches_the_host_and_dials_the_container)
{
    route_spec r = proxy();
    json_t *j = caddycfg_route(&r);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str_at(j, "@id"), "dms-d0123456789ab");
    ck_assert_str_eq(str_at(j, "match.0.host.0"), "web.localhost");
    ck_assert(json_is_true(json_object_get(j, "terminal")));
    ck_assert_str_eq(str_at(j, "handle.0.handler"), "reverse_proxy");
    ck_assert_str_eq(str_at(j, "handle.0.upstreams.0.dial"), "172.18.0.5:8080");
    ck_assert_int_eq(json_array_size(at_path(j, "handle.0.upstreams")), 1);
    ck_assert_str_eq(str_at(j, "handle.0.load_balancing.selection_policy.policy"), "first");
    json_decref(j);
}
END_TEST

START_TEST(test_a_draining_upstream_is_listed_after_the_new_one)
{
    route_spec r = proxy();
    snprintf(r.drain, sizeof(r.drain), "172.18.0.4:8080");
    json_t *j = caddycfg_route(&r);
    ck_assert_int_eq(json_array_size(at_path(j, "handle.0.upstreams")), 2);
    ck_assert_str_eq(str_at(j, "handle.0.upstreams.0.dial"), "172.18.0.5:8080");
    ck_assert_str_eq(str_at(j, "handle.0.upstreams.1.dial"), "172.18.0.4:8080");
    json_decref(j);
    /* the same address twice is listed once */
    snprintf(r.drain, sizeof(r.drain), "%s", r.dial);
    j = caddycfg_route(&r);
    ck_assert_int_eq(json_array_size(at_path(j, "handle.0.upstreams")), 1);
    json_decref(j);
}
END_TEST

START_TEST(test_wake_route_names_the_droid_and_keeps_the_default_transport)
{
    route_spec r = proxy();
    r.kind = ROUTE_WAKE;
    snprintf(r.dial, sizeof(r.dial), "127.0.0.1:40123");
    json_t *j = caddycfg_route(&r);
    ck_assert_str_eq(str_at(j, "handle.0.upstreams.0.dial"), "127.0.0.1:40123");
    ck_assert_str_eq(str_at(j, "handle.0.headers.request.set." CADDY_WAKE_HEADER ".0"), "d0123456789ab");
    /* a held request would die at the next reload with keep-alive off or flush_interval set (Caddy 2.6.2) */
    ck_assert_ptr_null(at_path(j, "handle.0.transport"));
    ck_assert_ptr_null(at_path(j, "handle.0.flush_interval"));
    json_decref(j);
}
END_TEST

START_TEST(test_down_route_answers_503_with_the_message)
{
    route_spec r = proxy();
    r.kind = ROUTE_DOWN;
    r.dial[0] = '\0';
    snprintf(r.message, sizeof(r.message), "droid web is stopped\n");
    json_t *j = caddycfg_route(&r);
    ck_assert_str_eq(str_at(j, "handle.0.handler"), "static_response");
    ck_assert_int_eq(json_integer_value(at_path(j, "handle.0.status_code")), 503);
    ck_assert_str_eq(str_at(j, "handle.0.body"), "droid web is stopped\n");
    json_decref(j);
}
END_TEST

START_TEST(test_spec_equality_covers_every_field)
{
    route_spec a = proxy(), b = proxy();
    ck_assert(route_spec_equal(&a, &b));
    b.kind = ROUTE_WAKE;
    ck_assert(!route_spec_equal(&a, &b));
    b = proxy();
    snprintf(b.host, sizeof(b.host), "other.localhost");
    ck_assert(!route_spec_equal(&a, &b));
    b = proxy();
    snprintf(b.drain, sizeof(b.drain), "1.2.3.4:5");
    ck_assert(!route_spec_equal(&a, &b));
    b = proxy();
    snprintf(b.message, sizeof(b.message), "x");
    ck_assert(!route_spec_equal(&a, &b));
}
END_TEST

static json_t *full(route_spec *r, size_t n)
{
    caddycfg_base b = {
        .admin = "unix//tmp/dms-test-admin.sock", .listen = "127.0.0.1:18000", .state_dir = "/tmp/x"};
    return caddycfg_full(&b, r, n);
}

START_TEST(test_full_config_has_admin_logs_server_and_catchall_last)
{
    route_spec r[2] = {proxy(), proxy()};
    snprintf(r[1].droid_id, sizeof(r[1].droid_id), "d2");
    snprintf(r[1].host, sizeof(r[1].host), "two.localhost");
    json_t *j = full(r, 2);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(str_at(j, "admin.listen"), "unix//tmp/dms-test-admin.sock");
    ck_assert_str_eq(str_at(j, "admin.origins.0"), CADDY_ADMIN_ORIGIN);
    ck_assert(json_is_false(at_path(j, "admin.config.persist")));
    ck_assert_str_eq(str_at(j, "apps.http.servers." CADDY_SERVER_NAME ".listen.0"), "127.0.0.1:18000");
    ck_assert(json_is_true(at_path(j, "apps.http.servers." CADDY_SERVER_NAME ".automatic_https.disable")));
    json_t *routes = at_path(j, "apps.http.servers." CADDY_SERVER_NAME ".routes");
    ck_assert_int_eq(json_array_size(routes), 3);
    ck_assert_str_eq(str_at(routes, "0.@id"), "dms-d0123456789ab");
    ck_assert_str_eq(str_at(routes, "1.@id"), "dms-d2");
    ck_assert_str_eq(str_at(routes, "2.@id"), CADDY_CATCHALL_ID);
    ck_assert_int_eq(json_integer_value(at_path(routes, "2.handle.0.status_code")), 404);
    ck_assert_str_eq(str_at(j, "logging.logs." CADDY_ACCESS_LOGGER ".writer.filename"), "/tmp/x/access.log");
    ck_assert_str_eq(str_at(j, "logging.logs." CADDY_ACCESS_LOGGER ".include.0"),
                     "http.log.access." CADDY_ACCESS_LOGGER);
    ck_assert_str_eq(str_at(j, "logging.logs.default.exclude.0"), "http.log.access." CADDY_ACCESS_LOGGER);
    json_decref(j);
    /* no droid: only the catch-all */
    j = full(NULL, 0);
    ck_assert_int_eq(json_array_size(at_path(j, "apps.http.servers." CADDY_SERVER_NAME ".routes")), 1);
    json_decref(j);
}
END_TEST

START_TEST(test_caddy_accepts_the_config)
{
    route_spec r[3] = {proxy(), proxy(), proxy()};
    snprintf(r[0].drain, sizeof(r[0].drain), "172.18.0.4:8080");
    r[1].kind = ROUTE_WAKE;
    snprintf(r[1].droid_id, sizeof(r[1].droid_id), "d2");
    snprintf(r[1].host, sizeof(r[1].host), "two.localhost");
    r[2].kind = ROUTE_DOWN;
    snprintf(r[2].droid_id, sizeof(r[2].droid_id), "d3");
    snprintf(r[2].host, sizeof(r[2].host), "three.localhost");
    snprintf(r[2].message, sizeof(r[2].message), "stopped");
    char dir[64];
    tu_mkdtemp(dir, sizeof(dir));
    caddycfg_base b = {
        .admin = "unix//tmp/dms-test-admin.sock", .listen = "127.0.0.1:18000", .state_dir = dir};
    json_t *j = caddycfg_full(&b, r, 3);
    char path[256], cmd[1024];
    snprintf(path, sizeof(path), "%s/caddy.json", dir);
    ck_assert_int_eq(json_dump_file(j, path, 0), 0);
    json_decref(j);
    const char *bin = getenv("DMS_CADDY_BIN");
    snprintf(cmd, sizeof(cmd),
             "HOME=%s XDG_DATA_HOME=%s XDG_CONFIG_HOME=%s %s validate --config %s >%s/out 2>&1", dir, dir,
             dir, bin && *bin ? bin : "caddy", path, dir);
    int rc = system(cmd);
    if (rc != 0)
        tu_sh("cat %s/out >&2", dir);
    tu_rmtree(dir);
    ck_assert_msg(rc == 0, "caddy validate refused the config (exit %d); is caddy installed?", rc);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_router_caddycfg");
    TCase *t = tcase_create("routes");
    tcase_add_test(t, test_proxy_route_matches_the_host_and_dials_the_container);
    tcase_add_test(t, test_a_draining_upstream_is_listed_after_the_new_one);
    tcase_add_test(t, test_wake_route_names_the_droid_and_keeps_the_default_transport);
    tcase_add_test(t, test_down_route_answers_503_with_the_message);
    tcase_add_test(t, test_spec_equality_covers_every_field);
    tcase_add_test(t, test_full_config_has_admin_logs_server_and_catchall_last);
    suite_add_tcase(s, t);
    t = tcase_create("caddy");
    tcase_set_timeout(t, 20);
    tcase_add_test(t, test_caddy_accepts_the_config);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
