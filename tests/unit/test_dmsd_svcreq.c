/* test_dmsd_svcreq.c - what a compose droid's service runs with, without an engine: the release's compose
 * member read back (compose/release.h), the request of one service (run/execreq.h: execreq_build_service),
 * the digest of a service's build inputs (build/srchash.h) and the compose_file a create may name. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../../dms/build/srchash.h"
#include "../../dms/compose/release.h"
#include "../../dms/confine/confine.h"
#include "../../dms/droids/droid.h"
#include "../../dms/run/execreq.h"
#include "../../executor/util.h"
#include "testutil.h"

static const char *const FILE_TEXT =
    "services:\n"
    "  web:\n"
    "    build: ./web\n"
    "    ports: [\"8080\"]\n"
    "    environment: {MODE: web, SHARED: from-file}\n"
    "  worker:\n"
    "    image: dms-stack/python:latest\n"
    "    command: [\"python3\", \"w.py\"]\n"
    "    working_dir: /app\n"
    "    user: \"1000\"\n"
    "    environment: [\"MODE=${MODE:-worker}\"]\n"
    "    volumes: [\"data:/data\"]\n"
    "    labels: {team: blue}\n"
    "    depends_on: {web: {condition: service_healthy}}\n"
    "    healthcheck: {test: [\"CMD\", \"true\"], interval: 2s, retries: 4}\n"
    "    deploy: {resources: {limits: {memory: 64m, cpus: '0.5'}}}\n"
    "volumes:\n"
    "  data: {}\n";

static confine_config cfg;
static droid *d;
static char *member;

static void setup(void)
{
    confine_config_defaults(&cfg);
    d = droid_new();
    strcpy(d->id, "d0123456789ab");
    d->user_id = strdup("alice");
    d->name = strdup("shop");
    d->port = 8080;
    d->env_json = strdup("{\"SHARED\":\"from-droid\",\"ONLY\":\"droid\"}");
    json_t *m = json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:b, s:[s]}, s:{s:s, s:s, s:b}}}", "file",
                          "compose.yaml", "text", FILE_TEXT, "services", "web", "image", "sha256:aaa", "tag",
                          "dms-droid/x:b1-web", "built", 1, "env_file", "FROM_FILE=1", "worker", "image",
                          "sha256:bbb", "tag", "dms-stack/python:latest", "built", 0);
    member = json_dumps(m, JSON_COMPACT);
    json_decref(m);
}

static void teardown(void)
{
    droid_free(d);
    free(member);
}

static bool has(char *const *v, const char *s)
{
    for (; v && *v; v++)
        if (strcmp(*v, s) == 0)
            return true;
    return false;
}

START_TEST(test_a_release_member_reads_back_with_its_images_env_files_and_what_it_built)
{
    compose_release cr;
    dms_error err = {0};
    ck_assert_int_eq(compose_release_load(member, NULL, &cr, &err), 0);
    ck_assert_uint_eq(cr.f->n_services, 2);
    ck_assert_str_eq(cr.f->services[cr.f->route_service].name, "web");
    ck_assert_str_eq(compose_release_image(&cr, "worker"), "sha256:bbb");
    ck_assert_ptr_null(compose_release_image(&cr, "nope"));
    ck_assert_uint_eq(json_array_size(compose_release_env_file(&cr, "web")), 1);
    ck_assert_ptr_null(compose_release_env_file(&cr, "worker"));
    compose_release_clear(&cr);
    char **built = compose_release_built(member);
    ck_assert_ptr_nonnull(built);
    ck_assert(has(built, "sha256:aaa") && !has(built, "sha256:bbb"));
    dmsu_strv_free(built);
    ck_assert_ptr_null(compose_release_built(NULL));
    ck_assert_int_eq(compose_release_load("{\"text\": 3}", NULL, &cr, &err), -DMS_E_INTERNAL);
    compose_release_clear(&cr);
}
END_TEST

static int build_service(execreq *xr, compose_release *cr, const char *name, int routed_port)
{
    dms_error err = {0};
    ck_assert_int_eq(compose_release_load(member, NULL, cr, &err), 0);
    const compose_service *s = compose_find(cr->f, name);
    execreq_input in = {.d = d,
                        .exec_id = "d0123456789ab-worker-4",
                        .release = 2,
                        .image = compose_release_image(cr, name),
                        .confine = &cfg,
                        .executor_id = "dmsd"};
    svcreq_input sin = {.svc = s, .env_file = compose_release_env_file(cr, name), .routed_port = routed_port};
    return execreq_build_service(xr, &in, &sin, &err);
}

START_TEST(test_a_service_runs_what_its_file_says_on_the_droids_network_under_its_name)
{
    execreq xr;
    compose_release cr;
    ck_assert_int_eq(build_service(&xr, &cr, "worker", 0), 0);
    const dms_exec_request *q = &xr.req;
    ck_assert_str_eq(q->engine.image, "sha256:bbb");
    ck_assert_str_eq(q->engine.cmd[0], "python3");
    ck_assert_str_eq(q->engine.working_dir, "/app");
    ck_assert_str_eq(q->engine.user, "1000");
    ck_assert_str_eq(q->network_name, "droid-net-d0123456789ab");
    ck_assert_str_eq(q->network_aliases[0], "worker");
    ck_assert_ptr_null(q->network_aliases[1]);
    ck_assert_uint_eq(q->n_ports, 0); /* only the routed service is published */
    ck_assert(has(q->labels, "dms.droid=d0123456789ab") && has(q->labels, "dms.release=2") &&
              has(q->labels, "dms.service=worker") && has(q->labels, "team=blue"));
    ck_assert_uint_eq(q->n_mounts, 1);
    ck_assert_str_eq(q->mounts[0].source, "d0123456789ab-data");
    ck_assert_str_eq(q->mounts[0].target, "/data");
    ck_assert_ptr_nonnull(q->healthcheck);
    ck_assert_str_eq(q->healthcheck->test[0], "true");
    ck_assert_int_eq(q->healthcheck->interval_ms, 2000);
    ck_assert_int_eq(q->healthcheck->retries, 4);
    ck_assert_int_eq(q->resources.memory_bytes, 64LL * 1024 * 1024); /* below the droid's default: lowered */
    ck_assert_int_eq(q->resources.cpu_millis, 500);
    ck_assert(q->init && q->security.no_new_privileges);
    ck_assert(has(q->engine.env, "MODE=worker") && has(q->engine.env, "ONLY=droid"));
    ck_assert(!has(q->engine.env, "PORT=8080")); /* $PORT is the routed service's */
    execreq_clear(&xr);
    compose_release_clear(&cr);
}
END_TEST

START_TEST(test_the_env_is_the_droids_then_the_env_files_then_the_services_own)
{
    execreq xr;
    compose_release cr;
    ck_assert_int_eq(build_service(&xr, &cr, "web", 8080), 0);
    char *const *env = xr.req.engine.env;
    ck_assert(has(env, "SHARED=from-file")); /* environment: over the droid's env */
    ck_assert(has(env, "ONLY=droid") && has(env, "FROM_FILE=1") && has(env, "MODE=web"));
    ck_assert(has(env, "PORT=8080"));
    ck_assert_uint_eq(xr.req.n_ports, 1);
    ck_assert_int_eq(xr.req.ports[0].container_port, 8080);
    ck_assert_str_eq(xr.req.ports[0].host_ip, "127.0.0.1");
    ck_assert_ptr_null(xr.req.healthcheck); /* none in the file: the image's own */
    execreq_clear(&xr);
    compose_release_clear(&cr);
}
END_TEST

/* ---- srchash ---- */

static char dir[256];

static void put(const char *rel, const char *text)
{
    tu_write(dir, rel, text);
}

static void digest(char out[SRCHASH_HEX + 1], const char *dockerfile, char *const *args, const char *target)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(srchash_context(fd, dockerfile, args, target, out), 0);
    close(fd);
    ck_assert_uint_eq(strlen(out), SRCHASH_HEX);
}

START_TEST(test_the_digest_changes_with_any_input_and_only_then)
{
    snprintf(dir, sizeof(dir), "%s/ctx", tu_dir);
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    put("a.txt", "one");
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    put("sub/b.txt", "two");
    char h1[SRCHASH_HEX + 1], h2[SRCHASH_HEX + 1];
    digest(h1, "FROM x", NULL, NULL);
    digest(h2, "FROM x", NULL, NULL);
    ck_assert_str_eq(h1, h2);
    digest(h2, "FROM y", NULL, NULL);
    ck_assert_str_ne(h1, h2);
    char *args[] = {"K=1", NULL};
    digest(h2, "FROM x", args, NULL);
    ck_assert_str_ne(h1, h2);
    digest(h2, "FROM x", NULL, "dev");
    ck_assert_str_ne(h1, h2);
    put("sub/b.txt", "twO");
    digest(h2, "FROM x", NULL, NULL);
    ck_assert_str_ne(h1, h2);
    put("sub/b.txt", "two");
    digest(h2, "FROM x", NULL, NULL);
    ck_assert_str_eq(h1, h2);
    /* A link is hashed as a link: where it points, never what is there. */
    char link[320];
    snprintf(link, sizeof(link), "%s/l", dir);
    ck_assert_int_eq(symlink("/etc/hostname", link), 0);
    digest(h2, "FROM x", NULL, NULL);
    ck_assert_str_ne(h1, h2);
}
END_TEST

START_TEST(test_a_compose_file_path_must_stay_inside_the_repository)
{
    static const char *const good[] = {"compose.yaml", "deploy/compose.prod.yml", "a_b-c/d.yaml"};
    static const char *const bad[] = {"",          "/etc/compose.yaml", "../x.yaml", "a/../b.yaml",
                                      "a//b.yaml", "./x.yaml",          "a/",        "x y.yaml",
                                      "a\\b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        ck_assert_msg(droid_validate_compose_path(good[i], NULL) == 0, "%s", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        dms_error err = {0};
        ck_assert_msg(droid_validate_compose_path(bad[i], &err) == -DMS_E_INVALID, "%s", bad[i]);
        ck_assert_str_eq(err.field, "compose_file");
    }
    ck_assert_int_eq(droid_validate_compose_path(NULL, NULL), -DMS_E_INVALID);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_svcreq");
    TCase *tc = tcase_create("svcreq");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_a_release_member_reads_back_with_its_images_env_files_and_what_it_built);
    tcase_add_test(tc, test_a_service_runs_what_its_file_says_on_the_droids_network_under_its_name);
    tcase_add_test(tc, test_the_env_is_the_droids_then_the_env_files_then_the_services_own);
    tcase_add_test(tc, test_a_compose_file_path_must_stay_inside_the_repository);
    suite_add_tcase(s, tc);
    TCase *th = tcase_create("srchash");
    tcase_add_checked_fixture(th, tu_tmpdir_setup, tu_tmpdir_teardown);
    tcase_add_test(th, test_the_digest_changes_with_any_input_and_only_then);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
