/* test_request.c - the execution request: JSON parsing of every field, refusal of unknown keys, every
 * validation rule (with the field it names and the message it gives), deep copy, and the JSON round trip. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dms/request.h>

#include "request_limits.h"
#include "security.h"
#include "util.h"
#include "testutil.h"

/* A complete request using every field, as a caller would send it. */
static const char FULL_JSON[] =
    "{\"job_id\": \"job-1\", \"execution_id\": \"exec.1_a\","
    " \"engine\": {\"image\": \"localhost:5000/team/app:v1.2\", \"entrypoint\": [\"sh\", \"-c\"],"
    "   \"cmd\": [\"echo hi\"], \"env\": {\"A\": \"1\", \"_B2\": \"x=y\"}, \"working_dir\": \"/work\","
    "   \"user\": \"1000:1000\"},"
    " \"resources\": {\"cpu_millis\": 500, \"memory_bytes\": 67108864, \"pids_limit\": 64, \"disk_bytes\": "
    "1048576,"
    "   \"gpus\": -1},"
    " \"mounts\": [{\"type\": \"bind\", \"source\": \"/tmp\", \"target\": \"/data\", \"read_only\": true},"
    "   {\"type\": \"volume\", \"source\": \"vol-1\", \"target\": \"/vol\"},"
    "   {\"type\": \"tmpfs\", \"target\": \"/scratch\", \"size_bytes\": 1048576}],"
    " \"network\": {\"mode\": \"named\", \"name\": \"droid-net\", \"aliases\": [\"web\", \"api-1\"],"
    "   \"ports\": [{\"container\": 8080, \"host\": 18080, \"protocol\": \"tcp\", \"host_ip\": "
    "\"127.0.0.1\"},"
    "     {\"container\": 53, \"protocol\": \"udp\"}]},"
    " \"labels\": {\"team\": \"core\", \"example.com/tier\": \"gold\"},"
    " \"limits\": {\"result_output_bytes\": 65536, \"log_file_bytes\": 33554432},"
    " \"timeout_ms\": 60000, \"stop_grace_ms\": 5000, \"keep_container\": true, \"role\": \"build\","
    " \"security\": {\"no_new_privileges\": true, \"cap_drop\": [\"ALL\"], \"cap_add\": [\"CHOWN\", "
    "\"NET_BIND_SERVICE\"]},"
    " \"healthcheck\": {\"test\": [\"wget\", \"-q\", \"http://localhost:8080/\"], \"shell\": false,"
    "   \"disable\": false, \"interval_ms\": 200, \"timeout_ms\": 3000, \"start_period_ms\": 1000,"
    "   \"retries\": 5}}";

static dms_exec_request *parse_ok(const char *json)
{
    dms_exec_request *req = NULL;
    dms_error err = {0};
    int r = dms_exec_request_from_json(json, strlen(json), &req, &err);
    ck_assert_msg(r == 0, "parse failed: field=%s message=%s json=%s", err.field, err.message, json);
    ck_assert_ptr_nonnull(req);
    return req;
}

/* Parses json expecting INVALID with err.field == field and the message containing want (if not NULL). */
static void parse_invalid(const char *json, const char *field, const char *want)
{
    dms_exec_request *req = NULL;
    dms_error err = {0};
    int r = dms_exec_request_from_json(json, strlen(json), &req, &err);
    ck_assert_msg(r == -DMS_E_INVALID, "expected INVALID for %s, got %d (%s)", json, r, err.message);
    ck_assert_ptr_null(req);
    ck_assert_int_eq(err.code, DMS_E_INVALID);
    ck_assert_msg(strcmp(err.field, field) == 0, "field \"%s\", expected \"%s\" (message: %s)", err.field,
                  field, err.message);
    if (want)
        ck_assert_msg(strstr(err.message, want) != NULL, "message \"%s\" lacks \"%s\"", err.message, want);
    ck_assert(!err.retryable);
}

/* A request with the minimal valid body plus a fragment spliced in: {"job_id","execution_id", <frag>}. */
static char *with(const char *frag)
{
    return dmsu_strdup_printf("{\"job_id\": \"j1\", \"execution_id\": \"e1\"%s%s}", *frag ? ", " : "", frag);
}

static void frag_invalid(const char *frag, const char *field, const char *want)
{
    char *json = with(frag);
    parse_invalid(json, field, want);
    free(json);
}

static void frag_ok(const char *frag)
{
    char *json = with(frag);
    dms_exec_request_free(parse_ok(json));
    free(json);
}

/* ---- parsing ---- */

START_TEST(test_request_json_parses_every_field)
{
    dms_exec_request *r = parse_ok(FULL_JSON);
    ck_assert_str_eq(r->job_id, "job-1");
    ck_assert_str_eq(r->execution_id, "exec.1_a");
    ck_assert_str_eq(r->engine.image, "localhost:5000/team/app:v1.2");
    ck_assert_uint_eq(dmsu_strv_len(r->engine.entrypoint), 2);
    ck_assert_str_eq(r->engine.entrypoint[0], "sh");
    ck_assert_str_eq(r->engine.entrypoint[1], "-c");
    ck_assert_uint_eq(dmsu_strv_len(r->engine.cmd), 1);
    ck_assert_str_eq(r->engine.cmd[0], "echo hi");
    ck_assert_uint_eq(dmsu_strv_len(r->engine.env), 2);
    ck_assert_str_eq(dmsu_kv_get(r->engine.env, "A"), "1");
    ck_assert_str_eq(dmsu_kv_get(r->engine.env, "_B2"), "x=y");
    ck_assert_str_eq(r->engine.working_dir, "/work");
    ck_assert_str_eq(r->engine.user, "1000:1000");
    ck_assert_int_eq(r->resources.cpu_millis, 500);
    ck_assert_int_eq(r->resources.memory_bytes, 67108864);
    ck_assert_int_eq(r->resources.pids_limit, 64);
    ck_assert_int_eq(r->resources.disk_bytes, 1048576);
    ck_assert_int_eq(r->resources.gpus, -1);
    ck_assert_uint_eq(r->n_mounts, 3);
    ck_assert_int_eq(r->mounts[0].type, DMS_MOUNT_BIND);
    ck_assert_str_eq(r->mounts[0].source, "/tmp");
    ck_assert_str_eq(r->mounts[0].target, "/data");
    ck_assert(r->mounts[0].read_only);
    ck_assert_int_eq(r->mounts[1].type, DMS_MOUNT_VOLUME);
    ck_assert_str_eq(r->mounts[1].source, "vol-1");
    ck_assert(!r->mounts[1].read_only);
    ck_assert_int_eq(r->mounts[2].type, DMS_MOUNT_TMPFS);
    ck_assert_ptr_null(r->mounts[2].source);
    ck_assert_int_eq(r->mounts[2].size_bytes, 1048576);
    ck_assert_int_eq(r->network_mode, DMS_NET_NAMED);
    ck_assert_str_eq(r->network_name, "droid-net");
    ck_assert_uint_eq(dmsu_strv_len(r->network_aliases), 2);
    ck_assert_str_eq(r->network_aliases[0], "web");
    ck_assert_str_eq(r->network_aliases[1], "api-1");
    ck_assert_uint_eq(r->n_ports, 2);
    ck_assert_uint_eq(r->ports[0].container_port, 8080);
    ck_assert_uint_eq(r->ports[0].host_port, 18080);
    ck_assert_str_eq(r->ports[0].protocol, "tcp");
    ck_assert_str_eq(r->ports[0].host_ip, "127.0.0.1");
    ck_assert_uint_eq(r->ports[1].container_port, 53);
    ck_assert_uint_eq(r->ports[1].host_port, 0);
    ck_assert_str_eq(r->ports[1].protocol, "udp");
    ck_assert_ptr_null(r->ports[1].host_ip);
    ck_assert_uint_eq(dmsu_strv_len(r->labels), 2);
    ck_assert_str_eq(dmsu_kv_get(r->labels, "team"), "core");
    ck_assert_str_eq(dmsu_kv_get(r->labels, "example.com/tier"), "gold");
    ck_assert_int_eq(r->limits.result_output_bytes, 65536);
    ck_assert_int_eq(r->limits.log_file_bytes, 33554432);
    ck_assert_int_eq(r->timeout_ms, 60000);
    ck_assert_int_eq(r->stop_grace_ms, 5000);
    ck_assert(r->keep_container);
    ck_assert_str_eq(r->role, "build");
    ck_assert(r->security.no_new_privileges);
    ck_assert_uint_eq(dmsu_strv_len(r->security.cap_drop), 1);
    ck_assert_str_eq(r->security.cap_drop[0], "ALL");
    ck_assert_uint_eq(dmsu_strv_len(r->security.cap_add), 2);
    ck_assert_str_eq(r->security.cap_add[1], "NET_BIND_SERVICE");
    const dms_healthcheck *h = r->healthcheck;
    ck_assert_ptr_nonnull(h);
    ck_assert_uint_eq(dmsu_strv_len(h->test), 3);
    ck_assert_str_eq(h->test[2], "http://localhost:8080/");
    ck_assert(!h->shell && !h->disable);
    ck_assert_int_eq(h->interval_ms, 200);
    ck_assert_int_eq(h->timeout_ms, 3000);
    ck_assert_int_eq(h->start_period_ms, 1000);
    ck_assert_int_eq(h->retries, 5);
    dms_exec_request_free(r);
}
END_TEST

START_TEST(test_request_json_minimal_leaves_defaults)
{
    dms_exec_request *r = parse_ok("{\"job_id\": \"j\", \"execution_id\": \"e\"}");
    ck_assert_ptr_null(r->engine.image);
    ck_assert_ptr_null(r->engine.entrypoint);
    ck_assert_ptr_null(r->engine.cmd);
    ck_assert_ptr_null(r->engine.env);
    ck_assert_ptr_null(r->labels);
    ck_assert_uint_eq(r->n_mounts, 0);
    ck_assert_uint_eq(r->n_ports, 0);
    ck_assert_int_eq(r->network_mode, DMS_NET_DEFAULT);
    ck_assert_int_eq(r->timeout_ms, 0);
    ck_assert(!r->keep_container);
    ck_assert_ptr_null(r->role);
    dms_exec_request_free(r);
}
END_TEST

START_TEST(test_request_json_empty_array_means_explicitly_empty)
{
    dms_exec_request *r =
        parse_ok("{\"job_id\": \"j\", \"execution_id\": \"e\", \"engine\": {\"entrypoint\": [], "
                 "\"cmd\": null}}");
    ck_assert_ptr_nonnull(r->engine.entrypoint);
    ck_assert_ptr_null(r->engine.entrypoint[0]);
    ck_assert_ptr_null(r->engine.cmd); /* null = unset, the image's default */
    dms_exec_request_free(r);
}
END_TEST

START_TEST(test_request_json_env_and_labels_accept_arrays)
{
    frag_ok("\"engine\": {\"env\": [\"A=1\", \"B=\"]}, \"labels\": [\"k=v\"]");
    dms_exec_request *r =
        parse_ok("{\"job_id\": \"j\", \"execution_id\": \"e\", \"engine\": {\"env\": [\"A=1\", "
                 "\"B=\"]}, \"labels\": [\"k=v\"]}");
    ck_assert_str_eq(r->engine.env[0], "A=1");
    ck_assert_str_eq(dmsu_kv_get(r->engine.env, "B"), "");
    ck_assert_str_eq(r->labels[0], "k=v");
    dms_exec_request_free(r);
}
END_TEST

START_TEST(test_request_json_network_modes)
{
    static const struct {
        const char *frag;
        dms_network_mode mode;
    } cases[] = {
        {"\"network\": {\"mode\": \"default\"}", DMS_NET_DEFAULT},
        {"\"network\": {\"mode\": \"bridge\"}", DMS_NET_DEFAULT},
        {"\"network\": {\"mode\": \"none\"}", DMS_NET_NONE},
        {"\"network\": {\"mode\": \"host\"}", DMS_NET_HOST},
        {"\"network\": {\"mode\": \"named\", \"name\": \"n1\"}", DMS_NET_NAMED},
        {"\"network\": {\"name\": \"n1\"}", DMS_NET_NAMED}, /* a name alone implies named */
        {"\"network\": {}", DMS_NET_DEFAULT},
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(cases); i++) {
        char *json = with(cases[i].frag);
        dms_exec_request *r = parse_ok(json);
        ck_assert_msg(r->network_mode == cases[i].mode, "%s: mode %d", cases[i].frag, r->network_mode);
        dms_exec_request_free(r);
        free(json);
    }
    frag_invalid("\"network\": {\"mode\": \"overlay\"}", "network.mode", "default, none, host or named");
    frag_invalid("\"network\": {\"mode\": \"named\"}", "network.name", "required");
    frag_invalid("\"network\": {\"mode\": \"named\", \"name\": \"bad name\"}", "network.name", NULL);
}
END_TEST

START_TEST(test_request_json_unknown_keys_are_refused_with_the_field_named)
{
    frag_invalid("\"jobid\": \"x\"", "jobid", "unknown field \"jobid\"");
    frag_invalid("\"engine\": {\"imag\": \"busybox\"}", "engine.imag", "unknown field \"engine.imag\"");
    frag_invalid("\"resources\": {\"memory\": 1}", "resources.memory", "unknown field");
    frag_invalid(
        "\"mounts\": [{\"type\": \"tmpfs\", \"target\": \"/a\"}, {\"type\": \"tmpfs\", \"traget\": \"/b\"}]",
        "mounts[1].traget", "unknown field");
    frag_invalid("\"network\": {\"ports\": [{\"container\": 80, \"hostport\": 1}]}",
                 "network.ports[0].hostport", "unknown field");
    frag_invalid("\"network\": {\"mod\": \"none\"}", "network.mod", NULL);
    frag_invalid("\"limits\": {\"log_bytes\": 1}", "limits.log_bytes", NULL);
}
END_TEST

START_TEST(test_request_json_wrong_types_name_the_field)
{
    frag_invalid("\"engine\": {\"image\": 5}", "engine.image", "must be a string");
    frag_invalid("\"engine\": {\"cmd\": \"echo hi\"}", "engine.cmd", "array of strings");
    frag_invalid("\"engine\": {\"cmd\": [\"a\", 1]}", "engine.cmd", "engine.cmd[1]");
    frag_invalid("\"engine\": {\"env\": {\"A\": 1}}", "engine.env", "engine.env.A must be a string");
    frag_invalid("\"engine\": {\"env\": \"A=1\"}", "engine.env", NULL);
    frag_invalid("\"engine\": []", "engine", "must be an object");
    frag_invalid("\"resources\": {\"cpu_millis\": 1.5}", "resources.cpu_millis", "integer");
    frag_invalid("\"resources\": {\"cpu_millis\": \"500\"}", "resources.cpu_millis", "integer");
    frag_invalid("\"keep_container\": 1", "keep_container", "true or false");
    frag_invalid("\"mounts\": {}", "mounts", "array");
    frag_invalid("\"mounts\": [{\"type\": \"nfs\", \"target\": \"/a\"}]", "mounts[0].type",
                 "bind, volume or tmpfs");
    frag_invalid("\"mounts\": [{\"target\": \"/a\"}]", "mounts[0].type", NULL);
    frag_invalid("\"network\": {\"ports\": {}}", "network.ports", "array");
    frag_invalid("\"timeout_ms\": -1", "timeout_ms", NULL);
    /* NUL inside a string cannot reach a C string: the parser refuses it. */
    frag_invalid("\"engine\": {\"cmd\": [\"a\\u0000b\"]}", "", "not valid JSON");
}
END_TEST

START_TEST(test_request_json_syntax_errors_and_duplicates_are_invalid)
{
    dms_exec_request *req = NULL;
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_from_json("{\"job_id\": ", 11, &req, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "not valid JSON"));
    const char *dup = "{\"job_id\": \"a\", \"job_id\": \"b\", \"execution_id\": \"e\"}";
    ck_assert_int_eq(dms_exec_request_from_json(dup, strlen(dup), &req, &err), -DMS_E_INVALID);
    ck_assert_int_eq(dms_exec_request_from_json("[]", 2, &req, &err), -DMS_E_INVALID);
    ck_assert_ptr_nonnull(strstr(err.message, "JSON object"));
    /* The length is honoured: trailing bytes beyond len are not read. */
    const char *j = "{\"job_id\": \"j\", \"execution_id\": \"e\"}garbage";
    ck_assert_int_eq(dms_exec_request_from_json(j, strlen(j) - 7, &req, &err), 0);
    dms_exec_request_free(req);
}
END_TEST

/* ---- validation rules ---- */

START_TEST(test_request_ids_must_be_identifiers)
{
    ck_assert(dms_id_valid("a"));
    ck_assert(dms_id_valid("A-1_b.c"));
    ck_assert(dms_id_valid("0abc"));
    char longest[DMS_ID_MAX + 2];
    memset(longest, 'x', DMS_ID_MAX);
    longest[DMS_ID_MAX] = '\0';
    ck_assert(dms_id_valid(longest));
    longest[DMS_ID_MAX] = 'x';
    longest[DMS_ID_MAX + 1] = '\0';
    ck_assert(!dms_id_valid(longest));
    ck_assert(!dms_id_valid(""));
    ck_assert(!dms_id_valid(NULL));
    ck_assert(!dms_id_valid("-a"));
    ck_assert(!dms_id_valid(".a"));
    ck_assert(!dms_id_valid("_a"));
    ck_assert(!dms_id_valid("a/b"));
    ck_assert(!dms_id_valid("a b"));
    ck_assert(!dms_id_valid("a\xC3\xA9"));
    parse_invalid("{\"execution_id\": \"e\"}", "job_id", "job_id must be 1-64 characters");
    parse_invalid("{\"job_id\": \"j\"}", "execution_id", "execution_id must be");
    parse_invalid("{\"job_id\": \"../x\", \"execution_id\": \"e\"}", "job_id", NULL);
    parse_invalid("{\"job_id\": \"j\", \"execution_id\": \"e/1\"}", "execution_id", NULL);
}
END_TEST

START_TEST(test_request_image_references_valid)
{
    static const char *const ok[] = {
        "busybox",
        "busybox:latest",
        "library/busybox",
        "docker.io/library/busybox:1.36.1",
        "localhost:5000/x/y:tag",
        "localhost/x",
        "Registry.Example.com:443/team/app",
        "a/b_c/d__e/f-g/h--i/j.k",
        "dms-test/app:latest",
        "x:Tag_1.2-rc",
        "x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "x:t@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "localhost:5000/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(ok); i++)
        ck_assert_msg(dms_image_ref_valid(ok[i]), "%s should be valid", ok[i]);
}
END_TEST

START_TEST(test_request_image_references_invalid)
{
    static const char *const bad[] = {
        "",
        "Busybox",
        "busyBox",
        "a//b",
        "a/",
        "/a",
        "a:",
        "a:-tag",
        "a:.tag",
        "a:t:t",
        "a..b",
        "a___b",
        "a_-b",
        "-a",
        "a-",
        "a b",
        "a:tag with space",
        "x@",
        "x@sha256",
        "x@sha256:",
        "x@:0123456789abcdef0123456789abcdef",
        "x@sha256:XYZ",
        "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        /* Digests follow the reference grammar: an algorithm name and at least 32 hex digits (64 for sha256).
         */
        "x@sha256:abc",
        "x@sha256:0123456789abcdef0123456789abcdef",
        "x@sh/a:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "x@sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF",
    };
    for (size_t i = 0; i < DMS_ARRAY_SIZE(bad); i++)
        ck_assert_msg(!dms_image_ref_valid(bad[i]), "%s should be invalid", bad[i]);
    ck_assert(!dms_image_ref_valid(NULL));
    char longref[300];
    memset(longref, 'a', sizeof(longref) - 1);
    longref[sizeof(longref) - 1] = '\0';
    ck_assert(!dms_image_ref_valid(longref));
    char longtag[140] = "a:";
    memset(longtag + 2, 't', 129);
    longtag[131] = '\0';
    ck_assert(!dms_image_ref_valid(longtag));
    frag_invalid("\"engine\": {\"image\": \"Busybox\"}", "engine.image",
                 "engine.image \"Busybox\" is not a valid image reference");
}
END_TEST

START_TEST(test_request_env_rules)
{
    frag_ok("\"engine\": {\"env\": [\"A=1\", \"_b=\", \"C9=x=y\"]}");
    frag_invalid("\"engine\": {\"env\": [\"A=1\", \"NOEQUALS\"]}", "engine.env[1]", "is not KEY=VALUE");
    frag_invalid("\"engine\": {\"env\": [\"1A=x\"]}", "engine.env[0]", "key \"1A\" must match");
    frag_invalid("\"engine\": {\"env\": [\"A-B=x\"]}", "engine.env[0]", "key \"A-B\"");
    frag_invalid("\"engine\": {\"env\": [\"=x\"]}", "engine.env[0]", NULL);
    frag_invalid("\"engine\": {\"env\": {\"A B\": \"x\"}}", "engine.env[0]", NULL);
    frag_invalid("\"engine\": {\"env\": {\"A=B\": \"x\"}}", "engine.env", "must not contain '='");
    frag_invalid("\"engine\": {\"env\": [\"A=1\", \"B=2\", \"A=3\"]}", "engine.env[2]",
                 "key \"A\" is set twice");
    /* A key that is a prefix of another is not a duplicate. */
    frag_ok("\"engine\": {\"env\": [\"A=1\", \"AB=2\", \"ABC=3\"]}");
}
END_TEST

START_TEST(test_request_engine_paths_and_user)
{
    frag_invalid("\"engine\": {\"working_dir\": \"rel\"}", "engine.working_dir", "absolute");
    frag_ok("\"engine\": {\"user\": \"nobody\"}");
    frag_ok("\"engine\": {\"user\": \"1000\"}");
    frag_invalid("\"engine\": {\"user\": \"\"}", "engine.user", NULL);
    frag_invalid("\"engine\": {\"user\": \"a b\"}", "engine.user", NULL);
}
END_TEST

START_TEST(test_request_mount_rules)
{
    frag_ok("\"mounts\": [{\"type\": \"bind\", \"source\": \"/tmp\", \"target\": \"/t\"}]");
    frag_invalid(
        "\"mounts\": [{\"type\": \"bind\", \"source\": \"/nonexistent/dms-test\", \"target\": \"/t\"}]",
        "mounts[0].source", "host path /nonexistent/dms-test does not exist");
    frag_invalid("\"mounts\": [{\"type\": \"bind\", \"source\": \"tmp\", \"target\": \"/t\"}]",
                 "mounts[0].source", "absolute host path");
    frag_invalid("\"mounts\": [{\"type\": \"bind\", \"target\": \"/t\"}]", "mounts[0].source",
                 "absolute host path");
    frag_invalid("\"mounts\": [{\"type\": \"bind\", \"source\": \"/tmp\", \"target\": \"t\"}]",
                 "mounts[0].target", "absolute path");
    frag_invalid("\"mounts\": [{\"type\": \"bind\", \"source\": \"/tmp\", \"target\": \"/\"}]",
                 "mounts[0].target", "other than /");
    frag_invalid("\"mounts\": [{\"type\": \"tmpfs\"}]", "mounts[0].target", NULL);
    frag_ok("\"mounts\": [{\"type\": \"volume\", \"source\": \"data-1\", \"target\": \"/v\"}]");
    frag_invalid("\"mounts\": [{\"type\": \"volume\", \"source\": \"/tmp\", \"target\": \"/v\"}]",
                 "mounts[0].source", "volume name");
    frag_invalid("\"mounts\": [{\"type\": \"volume\", \"target\": \"/v\"}]", "mounts[0].source",
                 "volume name");
    frag_invalid("\"mounts\": [{\"type\": \"tmpfs\", \"source\": \"x\", \"target\": \"/s\"}]",
                 "mounts[0].source", "takes no source");
    frag_invalid("\"mounts\": [{\"type\": \"tmpfs\", \"target\": \"/s\", \"size_bytes\": -1}]",
                 "mounts[0].size_bytes", NULL);
    frag_invalid(
        "\"mounts\": [{\"type\": \"tmpfs\", \"target\": \"/s\"}, {\"type\": \"volume\", \"source\": \"v\","
        " \"target\": \"/s\"}]",
        "mounts[1].target", "/s is mounted twice");

    /* Through the C struct: an out-of-range type, a NULL array. */
    dms_mount m = {.type = 9, .target = "/x"};
    dms_exec_request req = {.job_id = "j", .execution_id = "e", .mounts = &m, .n_mounts = 1};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "mounts[0].type");
    req.mounts = NULL;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "mounts");
}
END_TEST

START_TEST(test_request_resource_bounds)
{
    frag_ok("\"resources\": {\"memory_bytes\": 0}");
    frag_ok("\"resources\": {\"memory_bytes\": 6291456}");
    frag_invalid("\"resources\": {\"memory_bytes\": 6291455}", "resources.memory_bytes",
                 "at least 6291456 (6 MiB)");
    frag_invalid("\"resources\": {\"memory_bytes\": 1}", "resources.memory_bytes", "6 MiB");
    frag_invalid("\"resources\": {\"memory_bytes\": -1}", "resources.memory_bytes", NULL);
    frag_ok("\"resources\": {\"cpu_millis\": 1024000}");
    frag_invalid("\"resources\": {\"cpu_millis\": 1024001}", "resources.cpu_millis", NULL);
    frag_invalid("\"resources\": {\"cpu_millis\": -1}", "resources.cpu_millis", NULL);
    frag_invalid("\"resources\": {\"pids_limit\": -1}", "resources.pids_limit", NULL);
    frag_invalid("\"resources\": {\"disk_bytes\": -1}", "resources.disk_bytes", NULL);
    frag_invalid("\"resources\": {\"gpus\": -2}", "resources.gpus", NULL);
    frag_ok("\"resources\": {\"gpus\": 2}");

    dms_exec_request req = {.job_id = "j", .execution_id = "e"};
    dms_error err = {0};
    req.resources.memory_bytes = DMS_MEMORY_MIN_BYTES - 1;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "resources.memory_bytes");
    req.resources.memory_bytes = DMS_MEMORY_MIN_BYTES;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), 0);
    req.resources.gpus = -2;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "resources.gpus");
}
END_TEST

START_TEST(test_request_port_rules)
{
    frag_ok("\"network\": {\"ports\": [{\"container\": 80}]}");
    frag_ok("\"network\": {\"mode\": \"named\", \"name\": \"n\", \"ports\": [{\"container\": 80}]}");
    frag_invalid("\"network\": {\"mode\": \"none\", \"ports\": [{\"container\": 80}]}", "network.ports",
                 "cannot be published with network mode none");
    frag_invalid("\"network\": {\"mode\": \"host\", \"ports\": [{\"container\": 80}]}", "network.ports",
                 "network mode host");
    frag_invalid("\"network\": {\"ports\": [{\"host\": 80}]}", "network.ports[0].container", "required");
    frag_invalid("\"network\": {\"ports\": [{\"container\": 0}]}", "network.ports[0].container", NULL);
    frag_invalid("\"network\": {\"ports\": [{\"container\": 65536}]}", "network.ports[0].container", NULL);
    frag_invalid("\"network\": {\"ports\": [{\"container\": 80, \"host\": 70000}]}", "network.ports[0].host",
                 NULL);
    frag_invalid("\"network\": {\"ports\": [{\"container\": 80, \"protocol\": \"sctp\"}]}",
                 "network.ports[0]", "tcp or udp");
    frag_invalid("\"network\": {\"ports\": [{\"container\": 80, \"host_ip\": \"localhost\"}]}",
                 "network.ports[0]", "not an IP address");
    frag_ok("\"network\": {\"ports\": [{\"container\": 80, \"host_ip\": \"::1\"}]}");
    frag_invalid(
        "\"network\": {\"ports\": [{\"container\": 80}, {\"container\": 80, \"protocol\": \"tcp\"}]}",
        "network.ports[1]", "port 80/tcp is published twice");
    frag_ok("\"network\": {\"ports\": [{\"container\": 53}, {\"container\": 53, \"protocol\": \"udp\"}]}");
}
END_TEST

START_TEST(test_request_network_alias_rules)
{
    frag_ok("\"network\": {\"name\": \"n\", \"aliases\": [\"web\", \"db-1\", \"0\", \"a1b2\"]}");
    frag_ok("\"network\": {\"mode\": \"named\", \"name\": \"n\", \"aliases\": []}");
    /* 63 characters is the longest DNS label. */
    frag_ok("\"network\": {\"name\": \"n\", \"aliases\": "
            "[\"a23456789012345678901234567890123456789012345678901234567890123\"]}");
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": "
                 "[\"a234567890123456789012345678901234567890123456789012345678901234\"]}",
                 "network.aliases[0]", "not a DNS label");
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"web\", \"Web\"]}", "network.aliases[1]",
                 "\"Web\" is not a DNS label");
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"-web\"]}", "network.aliases[0]", NULL);
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"web-\"]}", "network.aliases[0]", NULL);
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"\"]}", "network.aliases[0]", NULL);
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"web.local\"]}", "network.aliases[0]", NULL);
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"we_b\"]}", "network.aliases[0]", NULL);
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"caf\\u00e9\"]}", "network.aliases[0]", NULL);
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [\"web\", \"db\", \"web\"]}",
                 "network.aliases[2]", "\"web\" is given twice");
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": \"web\"}", "network.aliases",
                 "array of strings");
    frag_invalid("\"network\": {\"name\": \"n\", \"aliases\": [7]}", "network.aliases", NULL);
    /* Only a named network has members to find the alias. */
    frag_invalid("\"network\": {\"aliases\": [\"web\"]}", "network.aliases", "only for mode \"named\"");
    frag_invalid("\"network\": {\"mode\": \"none\", \"aliases\": [\"web\"]}", "network.aliases", NULL);
    frag_invalid("\"network\": {\"mode\": \"host\", \"aliases\": []}", "network.aliases", NULL);

    /* At most DMS_NETWORK_ALIASES_MAX, in JSON and in a caller-built request alike. */
    char *many[DMS_NETWORK_ALIASES_MAX + 2] = {0};
    char names[DMS_NETWORK_ALIASES_MAX + 1][8];
    for (int i = 0; i <= DMS_NETWORK_ALIASES_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "s%d", i);
        many[i] = names[i];
    }
    dms_exec_request req = {.job_id = "j",
                            .execution_id = "e",
                            .network_mode = DMS_NET_NAMED,
                            .network_name = "n",
                            .network_aliases = many};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "network.aliases");
    ck_assert_msg(strstr(err.message, "at most 16"), "%s", err.message);
    many[DMS_NETWORK_ALIASES_MAX] = NULL;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), 0);
    char *json = dms_exec_request_to_json(&req);
    dms_exec_request *back = parse_ok(json);
    ck_assert_uint_eq(dmsu_strv_len(back->network_aliases), DMS_NETWORK_ALIASES_MAX);
    ck_assert_str_eq(back->network_aliases[DMS_NETWORK_ALIASES_MAX - 1], "s15");
    free(json);
    dms_exec_request_free(back);
    req.network_mode = DMS_NET_DEFAULT;
    req.network_name = NULL;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "network.aliases");
}
END_TEST

START_TEST(test_request_healthcheck_rules)
{
    frag_ok("\"healthcheck\": {\"test\": [\"true\"]}");
    frag_ok(
        "\"healthcheck\": {\"test\": [\"wget -q -O /dev/null http://localhost/ || exit 1\"], \"shell\": true,"
        " \"interval_ms\": 86400000, \"timeout_ms\": 1, \"start_period_ms\": 0, \"retries\": 1000}");
    frag_ok("\"healthcheck\": {\"disable\": true}");
    frag_ok("\"healthcheck\": {\"disable\": true, \"shell\": false, \"interval_ms\": 1000}");
    frag_ok("\"healthcheck\": {\"test\": [\"check\", \"\"]}"); /* an empty argument is an argument */
    frag_ok("\"healthcheck\": null");
    dms_exec_request *r = parse_ok("{\"job_id\": \"j\", \"execution_id\": \"e\", \"healthcheck\": null}");
    ck_assert_ptr_null(r->healthcheck);
    dms_exec_request_free(r);

    frag_invalid("\"healthcheck\": {}", "healthcheck.test", "required");
    frag_invalid("\"healthcheck\": {\"test\": []}", "healthcheck.test", "required");
    frag_invalid("\"healthcheck\": {\"test\": [\"\"]}", "healthcheck.test[0]", "must not be empty");
    frag_invalid("\"healthcheck\": {\"test\": [\"\"], \"shell\": true}", "healthcheck.test[0]",
                 "command line");
    frag_invalid("\"healthcheck\": {\"test\": [\"a\", \"b\"], \"shell\": true}", "healthcheck.test",
                 "exactly one command line");
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"disable\": true}", "healthcheck.test",
                 "left out when disable");
    frag_invalid("\"healthcheck\": {\"disable\": true, \"shell\": true}", "healthcheck.shell", NULL);
    frag_invalid("\"healthcheck\": {\"test\": [\"a\", 1]}", "healthcheck.test", "healthcheck.test[1]");
    frag_invalid("\"healthcheck\": {\"test\": \"true\"}", "healthcheck.test", "array of strings");
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"interval_ms\": -1}", "healthcheck.interval_ms",
                 "between 0 and 86400000");
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"timeout_ms\": 86400001}",
                 "healthcheck.timeout_ms", NULL);
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"start_period_ms\": 1.5}",
                 "healthcheck.start_period_ms", "integer");
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"retries\": 1001}", "healthcheck.retries", NULL);
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"retries\": -1}", "healthcheck.retries", NULL);
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"shell\": \"yes\"}", "healthcheck.shell",
                 "true or false");
    frag_invalid("\"healthcheck\": {\"test\": [\"true\"], \"interval\": 5}", "healthcheck.interval",
                 "unknown field");
    frag_invalid("\"healthcheck\": [\"true\"]", "healthcheck", "must be an object");

    /* A caller-built request is held to the same rules, each naming its field. */
    char *test[] = {"check", NULL, NULL};
    dms_healthcheck h = {.test = test, .interval_ms = 200, .retries = 3};
    dms_exec_request req = {.job_id = "j", .execution_id = "e", .healthcheck = &h};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), 0);
    char *json = dms_exec_request_to_json(&req);
    dms_exec_request *back = parse_ok(json);
    ck_assert_str_eq(back->healthcheck->test[0], "check");
    ck_assert_int_eq(back->healthcheck->interval_ms, 200);
    ck_assert_int_eq(back->healthcheck->retries, 3);
    free(json);
    dms_exec_request_free(back);
    h.timeout_ms = HEALTH_DURATION_MAX_MS + 1;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "healthcheck.timeout_ms");
    h.timeout_ms = 0;
    h.retries = -1;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "healthcheck.retries");
    h.retries = 0;
    /* Each string is bounded: a test item one byte too long is refused, naming it. */
    char *big = malloc(HEALTH_TEST_ITEM_MAX + 2);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', HEALTH_TEST_ITEM_MAX + 1);
    big[HEALTH_TEST_ITEM_MAX + 1] = '\0';
    test[1] = big;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "healthcheck.test[1]");
    big[HEALTH_TEST_ITEM_MAX] = '\0';
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), 0);
    free(big);
    test[1] = "caf\xC3"; /* cut inside a character: JSON could not carry it */
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "healthcheck.test[1]");
    ck_assert_msg(strstr(err.message, "UTF-8"), "%s", err.message);
    test[1] = NULL;
    h.test = NULL;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "healthcheck.test");
    h.disable = true;
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), 0);
    /* A disabled check's JSON carries no test and reads back as disabled. */
    json = dms_exec_request_to_json(&req);
    ck_assert_ptr_null(strstr(json, "\"test\""));
    back = parse_ok(json);
    ck_assert(back->healthcheck->disable);
    ck_assert_ptr_null(back->healthcheck->test);
    free(json);
    dms_exec_request_free(back);
}
END_TEST

START_TEST(test_request_label_rules)
{
    frag_ok("\"labels\": {\"a.b/c-d_e\": \"\"}");
    frag_invalid("\"labels\": {\"io.dms.job\": \"x\"}", "labels[0]", "reserved");
    frag_invalid("\"labels\": [\"ok=1\", \"io.dms.managed=false\"]", "labels[1]", "reserved");
    frag_invalid("\"labels\": [\"novalue\"]", "labels[0]", "is not key=value");
    frag_invalid("\"labels\": [\"=v\"]", "labels[0]", NULL);
    frag_invalid("\"labels\": {\"bad key\": \"v\"}", "labels[0]", NULL);
}
END_TEST

START_TEST(test_request_limits_timeout_grace_and_role)
{
    frag_ok("\"limits\": {\"result_output_bytes\": 16777216, \"log_file_bytes\": 65536}");
    frag_invalid("\"limits\": {\"result_output_bytes\": 16777217}", "limits.result_output_bytes", NULL);
    frag_invalid("\"limits\": {\"log_file_bytes\": 65535}", "limits.log_file_bytes", "at least 65536");
    frag_invalid("\"limits\": {\"log_file_bytes\": -1}", "limits.log_file_bytes", NULL);
    frag_ok("\"timeout_ms\": 0, \"stop_grace_ms\": 3600000");
    frag_invalid("\"stop_grace_ms\": 3600001", "stop_grace_ms", NULL);
    frag_invalid("\"stop_grace_ms\": -5", "stop_grace_ms", NULL);
    frag_ok("\"role\": \"job\"");
    frag_invalid("\"role\": \"network\"", "role", "job or build");

    dms_exec_request req = {.job_id = "j", .execution_id = "e", .timeout_ms = -1};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "timeout_ms");
    ck_assert_int_eq(dms_exec_request_validate(NULL, &err), -DMS_E_INVALID);
}
END_TEST

/* Strings that cannot travel as JSON (the engine API, result files, dmsd) must be refused up front, not
 * silently dropped later by the JSON encoder. */
START_TEST(test_request_strings_must_be_valid_utf8)
{
    char *cmd[] = {"echo", "caf\xE9", NULL};
    dms_exec_request req = {.job_id = "j", .execution_id = "e", .engine = {.cmd = cmd}};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_validate(&req, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.cmd[1]");
    ck_assert_ptr_nonnull(strstr(err.message, "UTF-8"));
    char *env[] = {"A=\xFF", NULL};
    dms_exec_request req2 = {.job_id = "j", .execution_id = "e", .engine = {.env = env}};
    ck_assert_int_eq(dms_exec_request_validate(&req2, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.env[0]");
    char *ok[] = {"caf\xC3\xA9", NULL};
    dms_exec_request req3 = {
        .job_id = "j", .execution_id = "e", .engine = {.cmd = ok, .working_dir = "/d\xC3\xA9"}};
    ck_assert_int_eq(dms_exec_request_validate(&req3, &err), 0);
    dms_exec_request req4 = {.job_id = "j", .execution_id = "e", .engine = {.working_dir = "/\x80"}};
    ck_assert_int_eq(dms_exec_request_validate(&req4, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "engine.working_dir");
}
END_TEST

/* ---- ownership and round trips ---- */

static void assert_strv_eq(char *const *a, char *const *b)
{
    ck_assert((a == NULL) == (b == NULL));
    if (!a)
        return;
    ck_assert_uint_eq(dmsu_strv_len(a), dmsu_strv_len(b));
    for (size_t i = 0; a[i]; i++)
        ck_assert_str_eq(a[i], b[i]);
}

static void assert_str_eq_null(const char *a, const char *b)
{
    ck_assert((a == NULL) == (b == NULL));
    if (a)
        ck_assert_str_eq(a, b);
}

static void assert_requests_equal(const dms_exec_request *a, const dms_exec_request *b)
{
    assert_str_eq_null(a->job_id, b->job_id);
    assert_str_eq_null(a->execution_id, b->execution_id);
    assert_str_eq_null(a->engine.image, b->engine.image);
    assert_strv_eq(a->engine.entrypoint, b->engine.entrypoint);
    assert_strv_eq(a->engine.cmd, b->engine.cmd);
    assert_strv_eq(a->engine.env, b->engine.env);
    assert_str_eq_null(a->engine.working_dir, b->engine.working_dir);
    assert_str_eq_null(a->engine.user, b->engine.user);
    ck_assert_int_eq(a->resources.cpu_millis, b->resources.cpu_millis);
    ck_assert_int_eq(a->resources.memory_bytes, b->resources.memory_bytes);
    ck_assert_int_eq(a->resources.disk_bytes, b->resources.disk_bytes);
    ck_assert_int_eq(a->resources.pids_limit, b->resources.pids_limit);
    ck_assert_int_eq(a->resources.gpus, b->resources.gpus);
    ck_assert_uint_eq(a->n_mounts, b->n_mounts);
    for (size_t i = 0; i < a->n_mounts; i++) {
        ck_assert_int_eq(a->mounts[i].type, b->mounts[i].type);
        assert_str_eq_null(a->mounts[i].source, b->mounts[i].source);
        assert_str_eq_null(a->mounts[i].target, b->mounts[i].target);
        ck_assert_int_eq(a->mounts[i].read_only, b->mounts[i].read_only);
        ck_assert_int_eq(a->mounts[i].size_bytes, b->mounts[i].size_bytes);
    }
    ck_assert_int_eq(a->network_mode, b->network_mode);
    assert_str_eq_null(a->network_name, b->network_name);
    ck_assert_uint_eq(a->n_ports, b->n_ports);
    for (size_t i = 0; i < a->n_ports; i++) {
        ck_assert_uint_eq(a->ports[i].container_port, b->ports[i].container_port);
        ck_assert_uint_eq(a->ports[i].host_port, b->ports[i].host_port);
        assert_str_eq_null(a->ports[i].protocol, b->ports[i].protocol);
        assert_str_eq_null(a->ports[i].host_ip, b->ports[i].host_ip);
    }
    assert_strv_eq(a->labels, b->labels);
    ck_assert_int_eq(a->limits.result_output_bytes, b->limits.result_output_bytes);
    ck_assert_int_eq(a->limits.log_file_bytes, b->limits.log_file_bytes);
    ck_assert_int_eq(a->timeout_ms, b->timeout_ms);
    ck_assert_int_eq(a->stop_grace_ms, b->stop_grace_ms);
    ck_assert_int_eq(a->keep_container, b->keep_container);
    assert_str_eq_null(a->role, b->role);
    ck_assert_int_eq(a->security.no_new_privileges, b->security.no_new_privileges);
    assert_strv_eq(a->security.cap_drop, b->security.cap_drop);
    assert_strv_eq(a->security.cap_add, b->security.cap_add);
    assert_strv_eq(a->network_aliases, b->network_aliases);
    ck_assert_int_eq(a->healthcheck == NULL, b->healthcheck == NULL);
    if (a->healthcheck) {
        const dms_healthcheck *ha = a->healthcheck, *hb = b->healthcheck;
        assert_strv_eq(ha->test, hb->test);
        ck_assert_int_eq(ha->shell, hb->shell);
        ck_assert_int_eq(ha->disable, hb->disable);
        ck_assert_int_eq(ha->interval_ms, hb->interval_ms);
        ck_assert_int_eq(ha->timeout_ms, hb->timeout_ms);
        ck_assert_int_eq(ha->start_period_ms, hb->start_period_ms);
        ck_assert_int_eq(ha->retries, hb->retries);
    }
}

START_TEST(test_request_copy_is_deep_and_frees_cleanly)
{
    dms_exec_request *a = parse_ok(FULL_JSON);
    dms_exec_request *b = NULL;
    ck_assert_int_eq(dms_exec_request_copy(a, &b, NULL), 0);
    assert_requests_equal(a, b);
    ck_assert_ptr_ne(a->job_id, b->job_id);
    ck_assert_ptr_ne(a->mounts, b->mounts);
    ck_assert_ptr_ne(a->mounts[0].source, b->mounts[0].source);
    ck_assert_ptr_ne(a->ports[0].host_ip, b->ports[0].host_ip);
    ck_assert_ptr_ne(a->engine.env[0], b->engine.env[0]);
    ck_assert_ptr_ne(a->security.cap_add, b->security.cap_add);
    ck_assert_ptr_ne(a->security.cap_add[0], b->security.cap_add[0]);
    ck_assert_ptr_ne(a->network_aliases, b->network_aliases);
    ck_assert_ptr_ne(a->network_aliases[1], b->network_aliases[1]);
    ck_assert_ptr_ne(a->healthcheck, b->healthcheck);
    ck_assert_ptr_ne(a->healthcheck->test, b->healthcheck->test);
    ck_assert_ptr_ne(a->healthcheck->test[0], b->healthcheck->test[0]);
    dms_exec_request_free(a); /* b must stand on its own */
    ck_assert_int_eq(dms_exec_request_validate(b, NULL), 0);
    ck_assert_str_eq(b->mounts[2].target, "/scratch");
    dms_exec_request_free(b);
    dms_exec_request_free(NULL);

    /* A caller-built request (borrowed pointers) copies too. */
    char *cmd[] = {"true", NULL};
    dms_exec_request c = {.job_id = "j", .execution_id = "e", .engine = {.cmd = cmd}};
    ck_assert_int_eq(dms_exec_request_copy(&c, &b, NULL), 0);
    assert_requests_equal(&c, b);
    dms_exec_request_free(b);
}
END_TEST

START_TEST(test_request_to_json_from_json_round_trip)
{
    dms_exec_request *a = parse_ok(FULL_JSON);
    char *json = dms_exec_request_to_json(a);
    ck_assert_ptr_nonnull(json);
    dms_exec_request *b = parse_ok(json);
    assert_requests_equal(a, b);
    /* And once more: the JSON form is a fixed point. */
    char *json2 = dms_exec_request_to_json(b);
    ck_assert_str_eq(json, json2);
    free(json);
    free(json2);
    dms_exec_request_free(a);
    dms_exec_request_free(b);

    /* Explicitly empty lists, unicode text and the minimal request survive too. */
    a = parse_ok("{\"job_id\": \"j\", \"execution_id\": \"e\", \"engine\": {\"entrypoint\": [], "
                 "\"cmd\": [\"echo\", \"caf\\u00e9 \\u20ac\", \"\"]}, \"network\": {\"mode\": \"none\"}}");
    json = dms_exec_request_to_json(a);
    b = parse_ok(json);
    assert_requests_equal(a, b);
    ck_assert_ptr_nonnull(b->engine.entrypoint);
    ck_assert_ptr_null(b->engine.entrypoint[0]);
    ck_assert_str_eq(b->engine.cmd[1], "caf\xC3\xA9 \xE2\x82\xAC");
    free(json);
    dms_exec_request_free(a);
    dms_exec_request_free(b);
}
END_TEST

START_TEST(test_request_to_json_of_caller_built_request_round_trips)
{
    char *ep[] = {"/bin/sh", "-c", NULL};
    char *env[] = {"K=V", NULL};
    char *labels[] = {"a=b", NULL};
    dms_mount mounts[] = {{.type = DMS_MOUNT_TMPFS, .target = "/t", .size_bytes = 4096}};
    dms_port ports[] = {{.container_port = 8080}};
    dms_exec_request a = {.job_id = "j",
                          .execution_id = "e",
                          .engine = {.image = "busybox", .entrypoint = ep, .env = env},
                          .resources = {.cpu_millis = 250, .memory_bytes = DMS_MEMORY_MIN_BYTES},
                          .mounts = mounts,
                          .n_mounts = 1,
                          .ports = ports,
                          .n_ports = 1,
                          .labels = labels,
                          .timeout_ms = 1000};
    ck_assert_int_eq(dms_exec_request_validate(&a, NULL), 0);
    char *json = dms_exec_request_to_json(&a);
    dms_exec_request *b = parse_ok(json);
    assert_requests_equal(&a, b);
    free(json);
    dms_exec_request_free(b);
}
END_TEST

/* ---- the security part ---- */

START_TEST(test_request_security_names_known_capabilities_only)
{
    frag_ok("\"security\": {\"cap_drop\": [\"ALL\"], \"cap_add\": [\"CHOWN\", \"KILL\"]}");
    frag_ok("\"security\": {\"cap_drop\": [\"NET_RAW\", \"MKNOD\"], \"no_new_privileges\": false}");
    frag_ok("\"security\": {\"cap_add\": [\"CHECKPOINT_RESTORE\"]}");
    frag_invalid("\"security\": {\"cap_drop\": [\"NET_RWA\"]}", "security.cap_drop[0]",
                 "unknown capability \"NET_RWA\"");
    /* One spelling only: the kernel's name without CAP_, upper case. */
    frag_invalid("\"security\": {\"cap_add\": [\"KILL\", \"CAP_CHOWN\"]}", "security.cap_add[1]",
                 "without CAP_");
    frag_invalid("\"security\": {\"cap_add\": [\"chown\"]}", "security.cap_add[0]", "unknown capability");
    frag_invalid("\"security\": {\"cap_add\": [\"\"]}", "security.cap_add[0]", "unknown capability");
}
END_TEST

START_TEST(test_request_security_refuses_a_capability_dropped_and_added_or_listed_twice)
{
    frag_invalid("\"security\": {\"cap_drop\": [\"NET_RAW\"], \"cap_add\": [\"NET_RAW\"]}",
                 "security.cap_drop[0]", "either dropped or added");
    frag_invalid("\"security\": {\"cap_drop\": [\"ALL\"], \"cap_add\": [\"ALL\"]}", "security.cap_drop[0]",
                 NULL);
    frag_invalid("\"security\": {\"cap_add\": [\"KILL\", \"CHOWN\", \"KILL\"]}", "security.cap_add[2]",
                 "listed twice");
}
END_TEST

START_TEST(test_request_security_wrong_shapes_name_the_field)
{
    frag_invalid("\"security\": []", "security", "must be an object");
    frag_invalid("\"security\": {\"no_new_privs\": true}", "security.no_new_privs", "unknown field");
    frag_invalid("\"security\": {\"no_new_privileges\": 1}", "security.no_new_privileges", "true or false");
    frag_invalid("\"security\": {\"cap_drop\": \"ALL\"}", "security.cap_drop", "array of strings");
    frag_invalid("\"security\": {\"cap_add\": [13]}", "security.cap_add", "security.cap_add[0]");
}
END_TEST

START_TEST(test_request_security_of_a_caller_built_request_is_validated)
{
    char *drop[] = {"ALL", NULL}, *add[] = {"SETUID", "FROB", NULL};
    dms_exec_request a = {.job_id = "j", .execution_id = "e", .security = {.cap_drop = drop, .cap_add = add}};
    dms_error err = {0};
    ck_assert_int_eq(dms_exec_request_validate(&a, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "security.cap_add[1]");
    add[1] = NULL;
    ck_assert_int_eq(dms_exec_request_validate(&a, &err), 0);
}
END_TEST

START_TEST(test_request_capability_names_and_numbers_are_the_kernels)
{
    ck_assert_int_eq(dms_capability_number("CHOWN"), 0);
    ck_assert_int_eq(dms_capability_number("NET_BIND_SERVICE"), 10);
    ck_assert_int_eq(dms_capability_number("NET_RAW"), 13);
    ck_assert_int_eq(dms_capability_number("SYS_ADMIN"), 21);
    ck_assert_int_eq(dms_capability_number("MKNOD"), 27);
    ck_assert_int_eq(dms_capability_number("SETFCAP"), 31);
    ck_assert_int_eq(dms_capability_number("CHECKPOINT_RESTORE"), DMS_CAP_LAST);
    ck_assert_int_eq(dms_capability_number("ALL"), -1);
    ck_assert_int_eq(dms_capability_number(NULL), -1);
    ck_assert_str_eq(dms_capability_name(13), "NET_RAW");
    ck_assert_ptr_null(dms_capability_name(DMS_CAP_LAST + 1));
    ck_assert_ptr_null(dms_capability_name(-1));
    for (int i = 0; i <= DMS_CAP_LAST; i++)
        ck_assert_int_eq(dms_capability_number(dms_capability_name(i)), i);
}
END_TEST

START_TEST(test_request_capability_mask_drops_then_adds_as_docker_does)
{
    const uint64_t all = (UINT64_C(1) << (DMS_CAP_LAST + 1)) - 1, raw = UINT64_C(1) << 13;
    char *drop_all[] = {"ALL", NULL}, *drop_raw[] = {"NET_RAW", NULL},
         *add[] = {"NET_BIND_SERVICE", "KILL", NULL};
    char *add_all[] = {"ALL", NULL};
    dms_security s = {0};
    ck_assert(!dmsu_security_has_caps(&s));
    ck_assert_uint_eq(dmsu_security_cap_mask(&s, ~UINT64_C(0)), all); /* bits beyond the last one are cut */
    s.cap_drop = drop_all;
    s.cap_add = add;
    ck_assert(dmsu_security_has_caps(&s));
    ck_assert_uint_eq(dmsu_security_cap_mask(&s, all), (UINT64_C(1) << 10) | (UINT64_C(1) << 5));
    s.cap_drop = drop_raw;
    s.cap_add = NULL;
    ck_assert_uint_eq(dmsu_security_cap_mask(&s, all), all & ~raw);
    ck_assert_uint_eq(dmsu_security_cap_mask(&s, raw | 1), 1);
    s.cap_drop = NULL;
    s.cap_add = add_all;
    ck_assert_uint_eq(dmsu_security_cap_mask(&s, 0), all);
    s.cap_drop = drop_raw; /* as Docker has it: ALL added still leaves out what is named in the drop list */
    ck_assert_uint_eq(dmsu_security_cap_mask(&s, 0), all & ~raw);
}
END_TEST

static int parse_err(const char *json, dms_error *err)
{
    dms_exec_request *req = NULL;
    int r = dms_exec_request_from_json(json, strlen(json), &req, err);
    dms_exec_request_free(req);
    return r;
}

START_TEST(test_request_refuses_duplicate_label_keys_host_ports_and_a_stray_network_name)
{
    dms_error err = {0};
    ck_assert_int_eq(
        parse_err("{\"job_id\":\"j\",\"execution_id\":\"e\",\"labels\":[\"a=1\",\"a=2\"]}", &err),
        -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "labels[1]");
    ck_assert_int_eq(
        parse_err("{\"job_id\":\"j\",\"execution_id\":\"e\",\"network\":{\"ports\":[{\"container\":80,"
                  "\"host\":8080},{\"container\":81,\"host\":8080}]}}",
                  &err),
        -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "network.ports[1]");
    ck_assert(strstr(err.message, "host port 8080"));
    ck_assert_int_eq(
        parse_err("{\"job_id\":\"j\",\"execution_id\":\"e\",\"network\":{\"mode\":\"none\",\"name\":\"x\"}}",
                  &err),
        -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "network.name");
    /* A name with no mode means "named". */
    ck_assert_int_eq(
        parse_err("{\"job_id\":\"j\",\"execution_id\":\"e\",\"network\":{\"name\":\"x\"}}", &err), 0);
}
END_TEST

static Suite *request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("json");
    tcase_add_test(tc, test_request_json_parses_every_field);
    tcase_add_test(tc, test_request_json_minimal_leaves_defaults);
    tcase_add_test(tc, test_request_json_empty_array_means_explicitly_empty);
    tcase_add_test(tc, test_request_json_env_and_labels_accept_arrays);
    tcase_add_test(tc, test_request_json_network_modes);
    tcase_add_test(tc, test_request_json_unknown_keys_are_refused_with_the_field_named);
    tcase_add_test(tc, test_request_json_wrong_types_name_the_field);
    tcase_add_test(tc, test_request_json_syntax_errors_and_duplicates_are_invalid);
    suite_add_tcase(s, tc);
    tc = tcase_create("validation");
    tcase_add_test(tc, test_request_refuses_duplicate_label_keys_host_ports_and_a_stray_network_name);
    tcase_add_test(tc, test_request_ids_must_be_identifiers);
    tcase_add_test(tc, test_request_image_references_valid);
    tcase_add_test(tc, test_request_image_references_invalid);
    tcase_add_test(tc, test_request_env_rules);
    tcase_add_test(tc, test_request_engine_paths_and_user);
    tcase_add_test(tc, test_request_mount_rules);
    tcase_add_test(tc, test_request_resource_bounds);
    tcase_add_test(tc, test_request_port_rules);
    tcase_add_test(tc, test_request_network_alias_rules);
    tcase_add_test(tc, test_request_healthcheck_rules);
    tcase_add_test(tc, test_request_label_rules);
    tcase_add_test(tc, test_request_limits_timeout_grace_and_role);
    tcase_add_test(tc, test_request_strings_must_be_valid_utf8);
    suite_add_tcase(s, tc);
    tc = tcase_create("security");
    tcase_add_test(tc, test_request_security_names_known_capabilities_only);
    tcase_add_test(tc, test_request_security_refuses_a_capability_dropped_and_added_or_listed_twice);
    tcase_add_test(tc, test_request_security_wrong_shapes_name_the_field);
    tcase_add_test(tc, test_request_security_of_a_caller_built_request_is_validated);
    tcase_add_test(tc, test_request_capability_names_and_numbers_are_the_kernels);
    tcase_add_test(tc, test_request_capability_mask_drops_then_adds_as_docker_does);
    suite_add_tcase(s, tc);
    tc = tcase_create("ownership");
    tcase_add_test(tc, test_request_copy_is_deep_and_frees_cleanly);
    tcase_add_test(tc, test_request_to_json_from_json_round_trip);
    tcase_add_test(tc, test_request_to_json_of_caller_built_request_round_trips);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(request_suite());
}
