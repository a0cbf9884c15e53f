/* test_dmsd_droid.c - the droid model: create/patch validation (every failure names its field) and JSON. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../dms/droids/droid.h"
#include "testutil.h"

static int parse_create(const char *json, droid **out, dms_error *err)
{
    json_error_t jerr;
    json_t *body = json_loads(json, 0, &jerr);
    ck_assert_msg(body != NULL, "bad test JSON: %s", jerr.text);
    droid *d = droid_new();
    int r = droid_parse_create(body, d, err);
    json_decref(body);
    if (r < 0 || !out)
        droid_free(d);
    else
        *out = d;
    return r;
}

static void assert_invalid(const char *json, const char *field)
{
    dms_error err = {0};
    int r = parse_create(json, NULL, &err);
    ck_assert_msg(r == -DMS_E_INVALID, "%s: expected INVALID, got %d (%s)", json, r, err.message);
    ck_assert_msg(strcmp(err.field, field) == 0, "%s: field \"%s\", expected \"%s\" (%s)", json, err.field,
                  field, err.message);
    ck_assert_str_ne(err.message, "");
}

START_TEST(test_create_minimal_gets_defaults)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"web-1\",\"repo\":\"file:///srv/app.git\"}", &d, &err), 0);
    ck_assert_str_eq(d->name, "web-1");
    ck_assert_str_eq(d->repo, "file:///srv/app.git");
    ck_assert_ptr_null(d->branch); /* the remote's default branch, resolved later */
    ck_assert_ptr_null(d->commit);
    ck_assert_int_eq(d->port, DROID_DEFAULT_PORT);
    ck_assert_str_eq(d->env_json, "{}");
    ck_assert_int_eq(d->state, DROID_PENDING);
    droid_free(d);
}
END_TEST

START_TEST(test_create_full_body_is_kept)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"api\",\"repo\":\"/srv/git/api.git\",\"branch\":\"feature/x\","
                                  "\"commit\":\"0123abc\",\"language\":\"go\",\"port\":3000,"
                                  "\"env\":{\"B\":\"2\",\"A\":\"1\"},"
                                  "\"volumes\":[{\"name\":\"data\",\"mount_path\":\"/data\"}]}",
                                  &d, &err),
                     0);
    ck_assert_str_eq(d->branch, "feature/x");
    ck_assert_str_eq(d->commit, "0123abc");
    ck_assert_str_eq(d->language, "go");
    ck_assert_int_eq(d->port, 3000);
    ck_assert_str_eq(d->env_json, "{\"A\":\"1\",\"B\":\"2\"}"); /* canonical: keys sorted */
    ck_assert_uint_eq(d->n_volumes, 1);
    ck_assert_str_eq(d->volumes[0].name, "data");
    ck_assert_str_eq(d->volumes[0].mount_path, "/data");
    droid_free(d);
}
END_TEST

START_TEST(test_create_port_comes_from_env_port)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"PORT\":\"9000\"}}", &d, &err),
                     0);
    ck_assert_int_eq(d->port, 9000);
    droid_free(d);
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"port\":8000,\"env\":{\"PORT\":\"9000\"}}", "env.PORT");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"PORT\":\"http\"}}", "env.PORT");
}
END_TEST

START_TEST(test_create_rejects_bad_names)
{
    assert_invalid("{\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":\"\",\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":\"Web\",\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":\"a_b\",\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":\"-a\",\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":\"a-\",\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":\"a.b\",\"repo\":\"/r\"}", "name");
    assert_invalid("{\"name\":7,\"repo\":\"/r\"}", "name");
    assert_invalid(
        "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"repo\":\"/r\"}",
        "name"); /* 64 > 63 */
}
END_TEST

START_TEST(test_create_rejects_bad_repos)
{
    assert_invalid("{\"name\":\"a\"}", "repo");
    assert_invalid("{\"name\":\"a\",\"repo\":\"relative/path\"}", "repo");
    assert_invalid("{\"name\":\"a\",\"repo\":\"ftp://x/y\"}", "repo");
    assert_invalid("{\"name\":\"a\",\"repo\":\"https://\"}", "repo");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/a b\"}", "repo");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/a\\nb\"}", "repo");
    dms_error err = {0};
    ck_assert_int_eq(droid_validate_repo("git@github.com:o/r.git", &err), 0);
    ck_assert_int_eq(droid_validate_repo("https://github.com/o/r", &err), 0);
}
END_TEST

START_TEST(test_create_rejects_bad_branch_commit_language)
{
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"branch\":\"a..b\"}", "branch");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"branch\":\"-x\"}", "branch");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"branch\":\"x.lock\"}", "branch");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"branch\":\"a b\"}", "branch");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"branch\":\"\"}", "branch");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"commit\":\"xyz1234\"}", "commit");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"commit\":\"abc\"}", "commit");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"language\":\"C++\"}", "language");
}
END_TEST

START_TEST(test_create_rejects_bad_ports_and_env)
{
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"port\":0}", "port");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"port\":65536}", "port");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"port\":\"80\"}", "port");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"port\":80.5}", "port");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"env\":[\"A=1\"]}", "env");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"1A\":\"x\"}}", "env.1A");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"A-B\":\"x\"}}", "env.A-B");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"A\":1}}", "env.A");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"A\":null}}", "env.A");
}
END_TEST

START_TEST(test_create_rejects_bad_volumes)
{
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":{}}", "volumes");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\"}]}",
                   "volumes[0].mount_path");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"D\",\"mount_path\":\"/d\"}]}",
                   "volumes[0].name");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\",\"mount_path\":\"d\"}]}",
                   "volumes[0].mount_path");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\",\"mount_path\":\"/\"}]}",
                   "volumes[0].mount_path");
    assert_invalid(
        "{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\",\"mount_path\":\"/a/../b\"}]}",
        "volumes[0].mount_path");
    assert_invalid(
        "{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\",\"mount_path\":\"/d\",\"x\":1}]}",
        "volumes[0].x");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\",\"mount_path\":\"/d\"},"
                   "{\"name\":\"d\",\"mount_path\":\"/e\"}]}",
                   "volumes[1].name");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"d\",\"mount_path\":\"/d\"},"
                   "{\"name\":\"e\",\"mount_path\":\"/d\"}]}",
                   "volumes[1].mount_path");
}
END_TEST

START_TEST(test_create_refuses_unknown_keys_and_non_objects)
{
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"nmae\":\"x\"}", "nmae");
    assert_invalid("[1]", "body");
}
END_TEST

static int parse_patch(const droid *cur, const char *json, droid_patch *p, dms_error *err)
{
    json_t *body = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(body);
    int r = droid_parse_patch(body, cur, p, err);
    json_decref(body);
    return r;
}

START_TEST(test_patch_sets_only_given_fields)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"a\",\"repo\":\"/r\"}", &d, &err), 0);
    droid_patch p;
    ck_assert_int_eq(parse_patch(d, "{\"port\":9090}", &p, &err), 0);
    ck_assert(p.has_port);
    ck_assert_int_eq(p.port, 9090);
    ck_assert(!p.has_branch && !p.has_commit);
    ck_assert_ptr_null(p.name);
    ck_assert_ptr_null(p.env_json);
    droid_patch_clear(&p);

    ck_assert_int_eq(parse_patch(d, "{\"commit\":null,\"branch\":\"dev\",\"name\":\"b\"}", &p, &err), 0);
    ck_assert(p.has_commit);
    ck_assert_ptr_null(p.commit);
    ck_assert_str_eq(p.branch, "dev");
    ck_assert_str_eq(p.name, "b");
    droid_patch_clear(&p);

    /* null: back to the repository's default branch */
    ck_assert_int_eq(parse_patch(d, "{\"branch\":null}", &p, &err), 0);
    ck_assert(p.has_branch);
    ck_assert_ptr_null(p.branch);
    droid_patch_clear(&p);
    ck_assert_int_lt(parse_patch(d, "{\"branch\":\"\"}", &p, &err), 0);
    ck_assert_str_eq(err.field, "branch");

    ck_assert_int_eq(parse_patch(d, "{\"env\":{\"PORT\":\"7000\"}}", &p, &err), 0);
    ck_assert(p.has_port);
    ck_assert_int_eq(p.port, 7000);
    droid_patch_clear(&p);
    droid_free(d);
}
END_TEST

START_TEST(test_patch_rejects_bad_input)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"a\",\"repo\":\"/r\",\"env\":{\"PORT\":\"8080\"}}", &d, &err),
                     0);
    droid_patch p;
    ck_assert_int_eq(parse_patch(d, "{}", &p, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "body");
    ck_assert_int_eq(parse_patch(d, "{\"repo\":\"/x\"}", &p, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "repo");
    ck_assert_int_eq(parse_patch(d, "{\"name\":\"A\"}", &p, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "name");
    ck_assert_int_eq(parse_patch(d, "{\"commit\":5}", &p, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "commit");
    /* the stored env pins PORT=8080: a port change alone contradicts it */
    ck_assert_int_eq(parse_patch(d, "{\"port\":9000}", &p, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "port");
    droid_free(d);
}
END_TEST

START_TEST(test_env_vector_adds_port)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(
        parse_create("{\"name\":\"a\",\"repo\":\"/r\",\"port\":5000,\"env\":{\"X\":\"a=b\"}}", &d, &err), 0);
    char **v = NULL;
    ck_assert_int_eq(droid_env_vector(d, &v, &err), 0);
    ck_assert_str_eq(v[0], "X=a=b");
    ck_assert_str_eq(v[1], "PORT=5000");
    ck_assert_ptr_null(v[2]);
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
    droid_free(d);
}
END_TEST

START_TEST(test_to_json_and_copy_round_trip)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(
        parse_create("{\"name\":\"a\",\"repo\":\"/r\",\"volumes\":[{\"name\":\"v\",\"mount_path\":\"/v\"}]}",
                     &d, &err),
        0);
    strcpy(d->id, "d0123456789ab");
    d->user_id = strdup("u1");
    droid *c = droid_copy(d);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_ne(c->name, d->name);
    ck_assert_str_eq(c->name, d->name);
    ck_assert_str_eq(c->volumes[0].mount_path, "/v");
    json_t *j = droid_to_json(c);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "d0123456789ab");
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "pending");
    ck_assert(json_is_null(json_object_get(j, "branch")));
    ck_assert(json_is_null(json_object_get(j, "url")));
    ck_assert_ptr_null(json_object_get(j, "user_id")); /* the owner is not part of the public form */
    ck_assert_str_eq(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "volumes"), 0), "name")), "v");
    json_decref(j);
    char *vj = droid_volumes_to_json(c);
    droid *e = droid_new();
    ck_assert_int_eq(droid_volumes_from_json(e, vj, &err), 0);
    ck_assert_uint_eq(e->n_volumes, 1);
    char name[80];
    strcpy(e->id, d->id);
    ck_assert_int_eq(droid_volume_engine_name(e, 0, name, sizeof(name)), 0);
    ck_assert_str_eq(name, "d0123456789ab-v");
    free(vj);
    droid_free(e);
    droid_free(c);
    droid_free(d);
}
END_TEST

START_TEST(test_to_json_shows_a_reason_that_is_not_utf8)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"a\",\"repo\":\"/r\"}", &d, &err), 0);
    strcpy(d->id, "d0123456789ab");
    d->reason = strdup("git said \xff\xfe here");
    json_t *j = droid_to_json(d);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
                     "git said \xef\xbf\xbd\xef\xbf\xbd here");
    json_decref(j);
    droid_free(d);
}
END_TEST

START_TEST(test_resources_are_kept_as_asked_and_refused_naming_the_key)
{
    droid *d = NULL;
    dms_error err = {0};
    ck_assert_int_eq(parse_create("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"memory_mb\":1024,"
                                  "\"pids\":null}}",
                                  &d, &err),
                     0);
    ck_assert_int_eq(d->resources.memory_mb, 1024);
    ck_assert_int_eq(d->resources.cpu_millis, 0);
    ck_assert_int_eq(d->resources.pids, 0);
    char *stored = droid_resources_to_json(&d->resources);
    ck_assert_str_eq(stored, "{\"memory_mb\":1024}");
    droid_resources back = {0};
    ck_assert_int_eq(droid_resources_from_json(stored, &back, &err), 0);
    ck_assert_int_eq(memcmp(&back, &d->resources, sizeof(back)), 0);
    free(stored);
    json_t *j = droid_to_json(d);
    json_t *res = json_object_get(j, "resources");
    ck_assert_int_eq(json_integer_value(json_object_get(res, "memory_mb")), 1024);
    ck_assert(json_is_null(json_object_get(res, "cpu_millis")));
    json_decref(j);

    droid_patch p;
    ck_assert_int_eq(parse_patch(d, "{\"resources\":{\"cpu_millis\":500}}", &p, &err), 0);
    ck_assert(p.has_resources);
    ck_assert_int_eq(p.resources.cpu_millis, 500);
    ck_assert_int_eq(p.resources.memory_mb, 0); /* the whole set is replaced: left out = the default */
    droid_patch_clear(&p);
    ck_assert_int_eq(parse_patch(d, "{\"resources\":null}", &p, &err), 0);
    ck_assert(p.has_resources);
    ck_assert_int_eq(p.resources.memory_mb, 0);
    droid_patch_clear(&p);
    ck_assert_int_eq(parse_patch(d, "{\"resources\":{\"memory\":1}}", &p, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "resources.memory");
    droid_free(d);

    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"memory_mb\":0}}", "resources.memory_mb");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"cpu_millis\":-5}}",
                   "resources.cpu_millis");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"pids\":\"64\"}}", "resources.pids");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"pids\":1.5}}", "resources.pids");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"memory_mb\":4294967296}}",
                   "resources.memory_mb");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":{\"disk_mb\":1}}", "resources.disk_mb");
    assert_invalid("{\"name\":\"a\",\"repo\":\"/r\",\"resources\":[512]}", "resources");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_droid");
    TCase *tc = tcase_create("droid");
    tcase_add_test(tc, test_create_minimal_gets_defaults);
    tcase_add_test(tc, test_create_full_body_is_kept);
    tcase_add_test(tc, test_create_port_comes_from_env_port);
    tcase_add_test(tc, test_create_rejects_bad_names);
    tcase_add_test(tc, test_create_rejects_bad_repos);
    tcase_add_test(tc, test_create_rejects_bad_branch_commit_language);
    tcase_add_test(tc, test_create_rejects_bad_ports_and_env);
    tcase_add_test(tc, test_create_rejects_bad_volumes);
    tcase_add_test(tc, test_create_refuses_unknown_keys_and_non_objects);
    tcase_add_test(tc, test_patch_sets_only_given_fields);
    tcase_add_test(tc, test_patch_rejects_bad_input);
    tcase_add_test(tc, test_env_vector_adds_port);
    tcase_add_test(tc, test_to_json_and_copy_round_trip);
    tcase_add_test(tc, test_resources_are_kept_as_asked_and_refused_naming_the_key);
    tcase_add_test(tc, test_to_json_shows_a_reason_that_is_not_utf8);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
