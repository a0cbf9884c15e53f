/* test_docker_types.c - a request maps to the Engine API's container create body as documented (v1.41). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "docker/types.h"
#include "testutil.h"

static json_t *spec_of(const char *request_json)
{
    dms_exec_request *req = NULL;
    dms_error err = {0};
    int r = dms_exec_request_from_json(request_json, strlen(request_json), &req, &err);
    ck_assert_msg(r == 0, "request: %s", err.message);
    json_t *spec = docker_container_spec(req, "ex1");
    dms_exec_request_free(req);
    ck_assert_ptr_nonnull(spec);
    return spec;
}

static const char *str_at(json_t *o, const char *path)
{
    /* "HostConfig.NetworkMode" */
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = json_object_get(cur, tok);
    return json_string_value(cur);
}

START_TEST(test_spec_maps_engine_fields_and_never_a_tty)
{
    json_t *s = spec_of(
        "{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"dms-test/busybox:latest\","
        "\"entrypoint\":[\"sh\",\"-c\"],\"cmd\":[\"echo hi\"],\"env\":{\"A\":\"1\"},"
        "\"working_dir\":\"/tmp\",\"user\":\"1000:1000\"}}");
    ck_assert_str_eq(str_at(s, "Image"), "dms-test/busybox:latest");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(s, "Entrypoint"), 1)), "-c");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(s, "Cmd"), 0)), "echo hi");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(s, "Env"), 0)), "A=1");
    ck_assert_str_eq(str_at(s, "WorkingDir"), "/tmp");
    ck_assert_str_eq(str_at(s, "User"), "1000:1000");
    ck_assert(json_is_false(json_object_get(s, "Tty")));
    ck_assert_int_eq(json_integer_value(json_object_get(s, "StopTimeout")), 10);
    ck_assert_str_eq(str_at(s, "HostConfig.NetworkMode"), "bridge");
    ck_assert_str_eq(str_at(s, "HostConfig.LogConfig.Type"), DOCKER_LOG_DRIVER);
    json_decref(s);
}
END_TEST

START_TEST(test_spec_leaves_entrypoint_and_cmd_to_the_image_when_unset)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"}}");
    ck_assert_ptr_null(json_object_get(s, "Entrypoint"));
    ck_assert_ptr_null(json_object_get(s, "Cmd"));
    json_decref(s);
}
END_TEST

START_TEST(test_spec_labels_one_per_dimension)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                        "\"labels\":{\"team\":\"a\"}}");
    json_t *l = json_object_get(s, "Labels");
    ck_assert_str_eq(json_string_value(json_object_get(l, "io.dms.managed")), "true");
    ck_assert_str_eq(json_string_value(json_object_get(l, "io.dms.executor")), "ex1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "io.dms.job")), "j1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "io.dms.execution")), "e1");
    ck_assert_str_eq(json_string_value(json_object_get(l, "io.dms.role")), "job");
    ck_assert_str_eq(json_string_value(json_object_get(l, "team")), "a");
    json_decref(s);
}
END_TEST

START_TEST(test_spec_maps_resources)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                        "\"resources\":{\"cpu_millis\":500,\"memory_bytes\":67108864,\"pids_limit\":64}}");
    json_t *h = json_object_get(s, "HostConfig");
    ck_assert_int_eq(json_integer_value(json_object_get(h, "NanoCpus")), 500000000LL);
    ck_assert_int_eq(json_integer_value(json_object_get(h, "Memory")), 67108864LL);
    /* No swap beyond the limit: exceeding it must be an OOM kill. */
    ck_assert_int_eq(json_integer_value(json_object_get(h, "MemorySwap")), 67108864LL);
    ck_assert_int_eq(json_integer_value(json_object_get(h, "PidsLimit")), 64);
    ck_assert_ptr_null(json_object_get(h, "StorageOpt"));
    json_decref(s);
}
END_TEST

START_TEST(test_spec_maps_mounts_of_each_kind)
{
    json_t *s =
        spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},\"mounts\":["
                "{\"type\":\"bind\",\"source\":\"/tmp\",\"target\":\"/host\",\"read_only\":true},"
                "{\"type\":\"volume\",\"source\":\"data\",\"target\":\"/data\"},"
                "{\"type\":\"tmpfs\",\"target\":\"/scratch\",\"size_bytes\":1048576}]}");
    json_t *m = json_object_get(json_object_get(s, "HostConfig"), "Mounts");
    ck_assert_uint_eq(json_array_size(m), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 0), "Type")), "bind");
    ck_assert(json_is_true(json_object_get(json_array_get(m, 0), "ReadOnly")));
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m, 1), "Source")), "data");
    ck_assert_int_eq(json_integer_value(
                         json_object_get(json_object_get(json_array_get(m, 2), "TmpfsOptions"), "SizeBytes")),
                     1048576);
    json_decref(s);
}
END_TEST

START_TEST(test_spec_publishes_ports_on_loopback_by_default)
{
    json_t *s =
        spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                "\"network\":{\"mode\":\"named\",\"name\":\"droid-net\",\"ports\":[{\"container\":8080},"
                "{\"container\":53,\"host\":5353,\"protocol\":\"udp\",\"host_ip\":\"0.0.0.0\"}]}}");
    ck_assert_str_eq(str_at(s, "HostConfig.NetworkMode"), "droid-net");
    ck_assert_ptr_nonnull(json_object_get(json_object_get(s, "ExposedPorts"), "8080/tcp"));
    json_t *pb = json_object_get(json_object_get(s, "HostConfig"), "PortBindings");
    json_t *b = json_array_get(json_object_get(pb, "8080/tcp"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(b, "HostIp")), "127.0.0.1");
    ck_assert_str_eq(json_string_value(json_object_get(b, "HostPort")), "");
    b = json_array_get(json_object_get(pb, "53/udp"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(b, "HostIp")), "0.0.0.0");
    ck_assert_str_eq(json_string_value(json_object_get(b, "HostPort")), "5353");
    json_decref(s);
}
END_TEST

START_TEST(test_spec_gives_network_aliases_to_the_endpoint_of_the_named_network)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                        "\"network\":{\"name\":\"droid.net-1\",\"aliases\":[\"web\",\"www\"]}}");
    ck_assert_str_eq(str_at(s, "HostConfig.NetworkMode"), "droid.net-1");
    json_t *eps = json_object_get(json_object_get(s, "NetworkingConfig"), "EndpointsConfig");
    ck_assert_uint_eq(json_object_size(eps), 1);
    json_t *aliases = json_object_get(json_object_get(eps, "droid.net-1"), "Aliases");
    ck_assert_uint_eq(json_array_size(aliases), 2);
    ck_assert_str_eq(json_string_value(json_array_get(aliases, 0)), "web");
    ck_assert_str_eq(json_string_value(json_array_get(aliases, 1)), "www");
    json_decref(s);

    /* No aliases (or an empty list): no NetworkingConfig, as before. */
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                "\"network\":{\"name\":\"droid-net\",\"aliases\":[]}}");
    ck_assert_ptr_null(json_object_get(s, "NetworkingConfig"));
    json_decref(s);
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                "\"network\":{\"name\":\"droid-net\"}}");
    ck_assert_ptr_null(json_object_get(s, "NetworkingConfig"));
    json_decref(s);
}
END_TEST

static json_int_t int_at(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(json_object_get(o, a), b);
    ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", a, b);
    return json_integer_value(v);
}

START_TEST(test_spec_gives_the_health_check_in_nanoseconds)
{
    json_t *s =
        spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                "\"healthcheck\":{\"test\":[\"wget\",\"-q\",\"http://localhost/\"],\"interval_ms\":200,"
                "\"timeout_ms\":3000,\"start_period_ms\":86400000,\"retries\":4}}");
    json_t *test = json_object_get(json_object_get(s, "Healthcheck"), "Test");
    ck_assert_uint_eq(json_array_size(test), 4);
    ck_assert_str_eq(json_string_value(json_array_get(test, 0)), "CMD");
    ck_assert_str_eq(json_string_value(json_array_get(test, 3)), "http://localhost/");
    ck_assert_int_eq(int_at(s, "Healthcheck", "Interval"), 200000000LL);
    ck_assert_int_eq(int_at(s, "Healthcheck", "Timeout"), 3000000000LL);
    ck_assert_int_eq(int_at(s, "Healthcheck", "StartPeriod"), 86400000000000LL); /* a day fits an int64 */
    ck_assert_int_eq(int_at(s, "Healthcheck", "Retries"), 4);
    json_decref(s);

    /* The shell form: CMD-SHELL and the one line; 0 periods and retries inherit (sent as 0). */
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                "\"healthcheck\":{\"test\":[\"test -f /tmp/ready || exit 1\"],\"shell\":true}}");
    test = json_object_get(json_object_get(s, "Healthcheck"), "Test");
    ck_assert_uint_eq(json_array_size(test), 2);
    ck_assert_str_eq(json_string_value(json_array_get(test, 0)), "CMD-SHELL");
    ck_assert_str_eq(json_string_value(json_array_get(test, 1)), "test -f /tmp/ready || exit 1");
    ck_assert_int_eq(int_at(s, "Healthcheck", "Interval"), 0);
    ck_assert_int_eq(int_at(s, "Healthcheck", "Retries"), 0);
    json_decref(s);

    /* Disabled: ["NONE"] and nothing else, so the image's own check does not run either. */
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                "\"healthcheck\":{\"disable\":true}}");
    json_t *hc = json_object_get(s, "Healthcheck");
    ck_assert_uint_eq(json_object_size(hc), 1);
    ck_assert_uint_eq(json_array_size(json_object_get(hc, "Test")), 1);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(hc, "Test"), 0)), "NONE");
    json_decref(s);

    /* None asked for: no Healthcheck, the image's own applies. */
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"}}");
    ck_assert_ptr_null(json_object_get(s, "Healthcheck"));
    json_decref(s);
}
END_TEST

START_TEST(test_health_is_read_from_the_inspected_state)
{
    static const struct {
        const char *state;
        dms_health want;
    } cases[] = {
        {"{\"Running\":true,\"Health\":{\"Status\":\"starting\",\"FailingStreak\":0}}", DMS_HEALTH_STARTING},
        {"{\"Running\":true,\"Health\":{\"Status\":\"healthy\"}}", DMS_HEALTH_HEALTHY},
        {"{\"Running\":true,\"Health\":{\"Status\":\"unhealthy\",\"FailingStreak\":3}}",
         DMS_HEALTH_UNHEALTHY},
        {"{\"Running\":true}", DMS_HEALTH_NONE},
        {"{\"Running\":true,\"Health\":{\"Status\":\"none\"}}", DMS_HEALTH_NONE},
        {"{\"Running\":true,\"Health\":{\"Status\":7}}", DMS_HEALTH_NONE},
        {"{\"Running\":true,\"Health\":null}", DMS_HEALTH_NONE},
        /* Stopped: the engine leaves "unhealthy" behind, but nothing is checked any more. */
        {"{\"Running\":false,\"Status\":\"exited\",\"Health\":{\"Status\":\"unhealthy\"}}", DMS_HEALTH_NONE},
        {"{\"Health\":{\"Status\":\"healthy\"}}", DMS_HEALTH_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *st = json_loads(cases[i].state, 0, NULL);
        ck_assert_ptr_nonnull(st);
        ck_assert_msg(docker_health_of(st) == cases[i].want, "%s", cases[i].state);
        json_decref(st);
    }
    ck_assert_int_eq(docker_health_of(NULL), DMS_HEALTH_NONE);
}
END_TEST

START_TEST(test_spec_init_asks_for_an_init_process)
{
    json_t *s = spec_of(
        "{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},\"init\":true}");
    ck_assert(json_is_true(json_object_get(json_object_get(s, "HostConfig"), "Init")));
    json_decref(s);
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"}}");
    ck_assert_ptr_null(json_object_get(json_object_get(s, "HostConfig"), "Init"));
    json_decref(s);
}
END_TEST

START_TEST(test_spec_maps_the_security_part_to_host_config)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                        "\"security\":{\"no_new_privileges\":true,\"cap_drop\":[\"ALL\"],"
                        "\"cap_add\":[\"CHOWN\",\"NET_BIND_SERVICE\"]}}");
    json_t *h = json_object_get(s, "HostConfig");
    ck_assert_uint_eq(json_array_size(json_object_get(h, "SecurityOpt")), 1);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(h, "SecurityOpt"), 0)),
                     "no-new-privileges");
    ck_assert_uint_eq(json_array_size(json_object_get(h, "CapDrop")), 1);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(h, "CapDrop"), 0)), "ALL");
    ck_assert_uint_eq(json_array_size(json_object_get(h, "CapAdd")), 2);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(h, "CapAdd"), 1)), "NET_BIND_SERVICE");
    json_decref(s);
    /* Unset: the engine's defaults, nothing sent. */
    s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"}}");
    h = json_object_get(s, "HostConfig");
    ck_assert_ptr_null(json_object_get(h, "SecurityOpt"));
    ck_assert_ptr_null(json_object_get(h, "CapDrop"));
    ck_assert_ptr_null(json_object_get(h, "CapAdd"));
    json_decref(s);
}
END_TEST

START_TEST(test_spec_network_none_and_host)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"},"
                        "\"network\":{\"mode\":\"none\"}}");
    ck_assert_str_eq(str_at(s, "HostConfig.NetworkMode"), "none");
    json_decref(s);
}
END_TEST

START_TEST(test_docker_requires_an_image)
{
    dms_exec_request req = {.job_id = "j", .execution_id = "e"};
    dms_error err = {0};
    ck_assert_int_eq(docker_validate_request(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.image");
}
END_TEST

START_TEST(test_grace_rounds_up_to_whole_seconds)
{
    ck_assert_int_eq(docker_grace_seconds(0), 10);
    ck_assert_int_eq(docker_grace_seconds(1), 1);
    ck_assert_int_eq(docker_grace_seconds(1000), 1);
    ck_assert_int_eq(docker_grace_seconds(1001), 2);
}
END_TEST

START_TEST(test_image_ref_splits_for_pull)
{
    char name[128], tag[128];
    docker_split_image_ref("busybox", name, tag);
    ck_assert_str_eq(name, "busybox");
    ck_assert_str_eq(tag, "latest");
    docker_split_image_ref("localhost:5000/a/b:1.2", name, tag);
    ck_assert_str_eq(name, "localhost:5000/a/b");
    ck_assert_str_eq(tag, "1.2");
    docker_split_image_ref("localhost:5000/a", name, tag);
    ck_assert_str_eq(name, "localhost:5000/a");
    ck_assert_str_eq(tag, "latest");
    docker_split_image_ref("a@sha256:abcd", name, tag);
    ck_assert_str_eq(name, "a@sha256:abcd");
    ck_assert_str_eq(tag, "");
}
END_TEST

START_TEST(test_container_name_is_deterministic)
{
    char n[DOCKER_NAME_MAX];
    docker_container_name(n, "ex1", "e-1");
    ck_assert_str_eq(n, "dms-ex1-e-1");
}
END_TEST

static void expect_labelled(const char *in, const char *want)
{
    char *got = docker_label_stages(in, strlen(in), "LABEL x=1");
    if (!want) {
        ck_assert_ptr_null(got);
        return;
    }
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    free(got);
}

START_TEST(test_labels_go_after_every_from_and_at_the_end_of_every_stage)
{
    expect_labelled("FROM a AS b\nRUN x\nfrom b\nCMD y",
                    "FROM a AS b\nLABEL x=1\nRUN x\nLABEL x=1\nfrom b\nLABEL x=1\nCMD y\nLABEL x=1\n");
    expect_labelled("ARG V=1\n  FROM \\\n   a:$V\nRUN x\n",
                    "ARG V=1\n  FROM \\\n   a:$V\nLABEL x=1\nRUN x\nLABEL x=1\n");
    /* The escape directive changes the continuation character. */
    expect_labelled("# escape=`\nFROM a `\n  AS b\nRUN x\n",
                    "# escape=`\nFROM a `\n  AS b\nLABEL x=1\nRUN x\nLABEL x=1\n");
    /* A FROMAGE is not a FROM; no FROM at all, or a file ending inside an instruction: not edited. */
    expect_labelled("FROMAGE x\n", NULL);
    expect_labelled("FROM a \\\n", NULL);
    expect_labelled("FROM a\nRUN echo \\\n", NULL);
}
END_TEST

/* The engine skips comment and blank lines inside a continuation: a LABEL put after one would be joined to
 * the FROM (and a later line of it would become an instruction of its own). The label goes where the engine
 * ends the instruction, and every other byte stays. */
START_TEST(test_labels_go_where_the_engine_ends_the_from)
{
    expect_labelled("FROM a \\\n# AS c\n\n  AS b\nRUN x\n",
                    "FROM a \\\n# AS c\n\n  AS b\nLABEL x=1\nRUN x\nLABEL x=1\n");
    /* A FROM word inside a RUN's continuation is no FROM. */
    expect_labelled("FROM a\nRUN echo \\\nFROM b\n", "FROM a\nLABEL x=1\nRUN echo \\\nFROM b\nLABEL x=1\n");
    /* CRLF line ends; a directive after a comment is a comment (the escape stays \\). */
    expect_labelled("FROM a \\\r\n  AS b\r\nRUN x\r\n",
                    "FROM a \\\r\n  AS b\r\nLABEL x=1\nRUN x\r\nLABEL x=1\n");
    expect_labelled("# hello\n# escape=`\nFROM a `\nRUN x\n",
                    "# hello\n# escape=`\nFROM a `\nLABEL x=1\nRUN x\nLABEL x=1\n");
    /* A stage's end is before the next FROM's first line, after the comments between them. */
    expect_labelled(
        "FROM a\nLABEL io.dms.executor=x\n# next\nFROM b\n",
        "FROM a\nLABEL x=1\nLABEL io.dms.executor=x\n# next\nLABEL x=1\nFROM b\nLABEL x=1\nLABEL x=1\n");
}
END_TEST

/* An image's labels are inherited by the containers made from it: every io.dms.* key dms reads from a
 * container must be set at create, whatever the request leaves out, or a Dockerfile's LABEL would supply it.
 */
START_TEST(test_spec_sets_every_label_dms_reads_so_no_image_can_supply_one)
{
    json_t *s = spec_of("{\"job_id\":\"j1\",\"execution_id\":\"e1\",\"engine\":{\"image\":\"busybox\"}}");
    json_t *l = json_object_get(s, "Labels");
    const char *keys[] = {DMS_LABEL_MANAGED, DMS_LABEL_EXECUTOR,  DMS_LABEL_BACKEND,
                          DMS_LABEL_JOB,     DMS_LABEL_EXECUTION, DMS_LABEL_ROLE};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        ck_assert_msg(json_is_string(json_object_get(l, keys[i])), "%s is not set at create", keys[i]);
    ck_assert_str_eq(json_string_value(json_object_get(l, DMS_LABEL_BACKEND)), "docker");
    json_decref(s);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("docker_types");
    TCase *tc = tcase_create("spec");
    tcase_add_test(tc, test_spec_maps_engine_fields_and_never_a_tty);
    tcase_add_test(tc, test_spec_leaves_entrypoint_and_cmd_to_the_image_when_unset);
    tcase_add_test(tc, test_spec_labels_one_per_dimension);
    tcase_add_test(tc, test_spec_maps_resources);
    tcase_add_test(tc, test_spec_maps_mounts_of_each_kind);
    tcase_add_test(tc, test_spec_publishes_ports_on_loopback_by_default);
    tcase_add_test(tc, test_spec_network_none_and_host);
    tcase_add_test(tc, test_spec_maps_the_security_part_to_host_config);
    tcase_add_test(tc, test_spec_gives_network_aliases_to_the_endpoint_of_the_named_network);
    tcase_add_test(tc, test_spec_gives_the_health_check_in_nanoseconds);
    tcase_add_test(tc, test_health_is_read_from_the_inspected_state);
    tcase_add_test(tc, test_spec_init_asks_for_an_init_process);
    tcase_add_test(tc, test_labels_go_after_every_from_and_at_the_end_of_every_stage);
    tcase_add_test(tc, test_labels_go_where_the_engine_ends_the_from);
    tcase_add_test(tc, test_spec_sets_every_label_dms_reads_so_no_image_can_supply_one);
    tcase_add_test(tc, test_docker_requires_an_image);
    tcase_add_test(tc, test_grace_rounds_up_to_whole_seconds);
    tcase_add_test(tc, test_image_ref_splits_for_pull);
    tcase_add_test(tc, test_container_name_is_deterministic);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
