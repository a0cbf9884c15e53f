/* test_dmsd_api.c - the HTTP API through a real libmicrohttpd server on a free port, with store and droid
 * registry but no executor: bearer auth on every route, JSON errors with the field at fault, create/list/get/
 * patch, one user never sees another's droids (404), name availability, events, builds, routing errors (404,
 * 405, unknown query parameters), oversized bodies, git check against a local repository, and logs before any
 * run. */
#include <check.h>
#include <curl/curl.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../../dms/api/auth.h"
#include "../../dms/api/handlers.h"
#include "../../dms/app.h"
#include "../../dms/build/git.h"
#include "util.h"
#include "testutil.h"

static const char *secret = "api-test-secret-0123456789abcdef0123456789";
static char dir[64];
static char repos[64]; /* the local repository root (dmsd's data dir, dir, never is one) */
static app a;
static char base[64];
static char *alice, *bob;

static void setup(void)
{
    dms_error err = {0};
    git_libgit2_init(); /* as dmsd's main does: GET /git/check uses libgit2 */
    tu_mkdtemp(dir, sizeof(dir));
    tu_mkdtemp(repos, sizeof(repos));
    char roots[128];
    snprintf(roots, sizeof(roots), "/srv:%s", repos); /* the droids below name repositories in /srv */
    gitx_config gc = {.local_roots = roots, .data_dir = dir};
    ck_assert_msg(gitx_init(&gc, &err) == 0, "%s", err.message);
    memset(&a, 0, sizeof(a));
    a.cfg.data_dir = dir;
    a.cfg.build.keep_releases = 3;
    snprintf(a.ex_error, sizeof(a.ex_error), "none in this test");
    char p[128];
    snprintf(p, sizeof(p), "%s/dms.db", dir);
    ck_assert_int_eq(store_open(&a.st, p, &err), 0);
    ck_assert_int_eq(core_open(&a.core, a.st, &err), 0);
    http_config hc = {.listen = "127.0.0.1:0",
                      .threads = 2,
                      .auth = {.secret = secret, .require_exp = true},
                      .routes = dmsd_routes,
                      .check_id = route_check_owner,
                      .app = &a};
    ck_assert_int_eq(http_start(&a.http, &hc, &err), 0);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", http_port(a.http));
    auth_policy pol = {.secret = secret};
    ck_assert_int_eq(auth_mint(&pol, "alice", 600, &alice, &err), 0);
    ck_assert_int_eq(auth_mint(&pol, "bob", 600, &bob, &err), 0);
}

static void teardown(void)
{
    http_stop(a.http);
    gitx_shutdown();
    git_libgit2_shutdown();
    core_close(a.core);
    store_close(a.st);
    free(alice);
    free(bob);
    tu_rmtree(dir);
    tu_rmtree(repos);
}

typedef struct resp {
    long status;
    dmsu_buf body;
    char header[256]; /* the value of the header asked for */
    const char *want_header;
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    dmsu_buf_append(&((resp *)ud)->body, p, sz * n);
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    resp *r = ud;
    size_t len = sz * n, k = r->want_header ? strlen(r->want_header) : 0;
    if (k && len > k + 2 && strncasecmp(p, r->want_header, k) == 0 && p[k] == ':') {
        snprintf(r->header, sizeof(r->header), "%.*s", (int)(len - k - 2), p + k + 2);
        char *e = r->header + strlen(r->header);
        while (e > r->header && (e[-1] == '\r' || e[-1] == '\n'))
            *--e = '\0';
    }
    return len;
}

/* One request; body may be NULL. Returns the parsed JSON body (or NULL when it is not JSON). */
static json_t *call(const char *method, const char *path, const char *token, const char *body, resp *r)
{
    CURL *h = curl_easy_init();
    char url[512];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct curl_slist *hdrs = NULL;
    char auth[1024];
    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    ck_assert_int_eq(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
}

/* Asserts status and, for an error, the {"error","field"} shape. */
static json_t *expect(const char *method, const char *path, const char *token, const char *body, long status,
                      const char *field)
{
    resp r = {0};
    json_t *j = call(method, path, token, body, &r);
    ck_assert_msg(r.status == status, "%s %s: status %ld, expected %ld: %.*s", method, path, r.status, status,
                  (int)r.body.len, r.body.data ? r.body.data : "");
    if (status >= 400) {
        ck_assert_msg(j && json_is_string(json_object_get(j, "error")), "%s %s: no error message", method,
                      path);
        json_t *f = json_object_get(j, "field");
        ck_assert_msg(f != NULL, "%s %s: no field key", method, path);
        if (field)
            ck_assert_msg(json_is_string(f) && strcmp(json_string_value(f), field) == 0,
                          "%s %s: field %s, expected %s", method, path,
                          json_is_string(f) ? json_string_value(f) : "null", field);
    }
    dmsu_buf_free(&r.body);
    return j;
}

static char *create_droid(const char *name, const char *token)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"repo\":\"/srv/%s.git\",\"env\":{\"A\":\"1\"}}", name,
             name);
    json_t *j = expect("POST", "/droids", token, body, 201, NULL);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return id;
}

START_TEST(test_every_route_needs_a_valid_token)
{
    static const char *const paths[] = {
        "/droids",          "/droids/available?name=x", "/git/check?repo=/x", "/droids/x",
        "/droids/x/status", "/droids/x/events",         "/droids/x/logs",     "/nowhere"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
        json_decref(expect("GET", paths[i], NULL, NULL, 401, "Authorization"));
    json_decref(expect("GET", "/droids", "not-a-token", NULL, 401, "Authorization"));
    char *forged = NULL;
    dms_error err = {0};
    auth_policy other = {.secret = "another-secret-0123456789abcdef0123"};
    ck_assert_int_eq(auth_mint(&other, "alice", 60, &forged, &err), 0);
    json_decref(expect("GET", "/droids", forged, NULL, 401, "Authorization"));
    json_decref(expect("POST", "/droids", forged, "{\"name\":\"x\",\"repo\":\"/x\"}", 401, "Authorization"));
    ck_assert(core_name_available(a.core, "x")); /* nothing was created */
    free(forged);
    resp r = {.want_header = "WWW-Authenticate"};
    json_decref(call("GET", "/droids", NULL, NULL, &r));
    ck_assert_str_eq(r.header, "Bearer");
    dmsu_buf_free(&r.body);
}
END_TEST

START_TEST(test_create_returns_pending_droid_and_lists_it)
{
    json_t *j = expect(
        "POST", "/droids", alice,
        "{\"name\":\"web\",\"repo\":\"file:///srv/web.git\",\"port\":3000,\"env\":{\"K\":\"v\"}}", 201, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "pending");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "port")), 3000);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "K")), "v");
    const char *id = json_string_value(json_object_get(j, "id"));
    char path[128];
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *g = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(g, "name")), "web");
    json_decref(g);
    json_t *l = expect("GET", "/droids", alice, NULL, 200, NULL);
    ck_assert_uint_eq(json_array_size(l), 1);
    json_decref(l);
    snprintf(path, sizeof(path), "/droids/%s/status", id);
    json_t *s = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(s, "status")), "pending");
    ck_assert_str_eq(json_string_value(json_object_get(s, "id")), id);
    json_decref(s);
    snprintf(path, sizeof(path), "/droids/%s/events", id);
    json_t *e = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert_uint_eq(json_array_size(e), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 0), "to")), "pending");
    json_decref(e);
    snprintf(path, sizeof(path), "/droids/%s/builds", id);
    json_t *b = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(b, 0), "status")), "queued");
    json_decref(b);
    json_decref(j);
}
END_TEST

START_TEST(test_bad_input_is_4xx_with_the_field)
{
    json_decref(expect("POST", "/droids", alice, "{\"name\":\"Bad Name\",\"repo\":\"/r\"}", 400, "name"));
    json_decref(expect("POST", "/droids", alice, "{\"name\":\"ok\",\"repo\":\"nope\"}", 400, "repo"));
    json_decref(expect("POST", "/droids", alice, "{\"name\":\"ok\",\"repo\":\"/etc\"}", 403, "repo"));
    json_decref(
        expect("POST", "/droids", alice, "{\"name\":\"ok\",\"repo\":\"file:///srv/../etc\"}", 403, "repo"));
    json_decref(
        expect("POST", "/droids", alice, "{\"name\":\"ok\",\"repo\":\"/r\",\"port\":70000}", 400, "port"));
    json_decref(expect("POST", "/droids", alice, "{\"name\":\"ok\",\"repo\":\"/r\",\"env\":{\"1x\":\"\"}}",
                       400, "env.1x"));
    json_decref(
        expect("POST", "/droids", alice, "{\"name\":\"ok\",\"repo\":\"/r\",\"colour\":1}", 400, "colour"));
    json_decref(expect("POST", "/droids", alice, "{\"name\":", 400, "body"));
    json_decref(expect("POST", "/droids", alice, "", 400, "body"));
    json_decref(
        expect("POST", "/droids", alice, "{\"name\":\"a\",\"name\":\"b\",\"repo\":\"/r\"}", 400, "body"));
    ck_assert(core_name_available(a.core, "ok"));
    char *id = create_droid("taken", alice);
    json_decref(expect("POST", "/droids", bob, "{\"name\":\"taken\",\"repo\":\"/srv/r\"}", 409, "name"));
    free(id);
}
END_TEST

START_TEST(test_other_users_droids_are_not_found)
{
    char *id = create_droid("mine", alice);
    char path[128];
    static const char *const subs[] = {"", "/status", "/events", "/logs", "/releases", "/builds"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        snprintf(path, sizeof(path), "/droids/%s%s", id, subs[i]);
        json_decref(expect("GET", path, bob, NULL, 404, NULL));
    }
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_decref(expect("PATCH", path, bob, "{\"name\":\"stolen\"}", 404, NULL));
    json_decref(expect("DELETE", path, bob, NULL, 404, NULL));
    snprintf(path, sizeof(path), "/droids/%s/build/cancel", id);
    json_decref(expect("POST", path, bob, NULL, 404, NULL));
    json_t *l = expect("GET", "/droids", bob, NULL, 200, NULL);
    ck_assert_uint_eq(json_array_size(l), 0);
    json_decref(l);
    json_decref(expect("GET", "/droids/dffffffffffff", alice, NULL, 404, "id"));
    droid *d = core_get_copy(a.core, id);
    ck_assert_str_eq(d->name, "mine");
    droid_free(d);
    free(id);
}
END_TEST

START_TEST(test_patch_changes_and_validates)
{
    char *id = create_droid("before", alice);
    char path[128];
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = expect("PATCH", path, alice, "{\"name\":\"after\",\"env\":{\"A\":\"2\"}}", 200, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "after");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "env"), "A")), "2");
    json_decref(j);
    ck_assert(core_name_available(a.core, "before"));
    json_decref(expect("PATCH", path, alice, "{\"repo\":\"/x\"}", 400, "repo"));
    json_decref(expect("PATCH", path, alice, "{}", 400, "body"));
    json_decref(expect("PATCH", path, alice, "{\"commit\":\"zz\"}", 400, "commit"));
    char *other = create_droid("other", alice);
    json_decref(expect("PATCH", path, alice, "{\"name\":\"other\"}", 409, "name"));
    /* a branch change queues a rebuild; the older queued build is superseded */
    json_decref(expect("PATCH", path, alice, "{\"branch\":\"dev\"}", 200, NULL));
    snprintf(path, sizeof(path), "/droids/%s/builds", id);
    json_t *b = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert_uint_eq(json_array_size(b), 2);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(b, 0), "branch")), "dev");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(b, 1), "status")), "superseded");
    json_decref(b);
    free(other);
    free(id);
}
END_TEST

START_TEST(test_availability_and_routing_errors)
{
    char *id = create_droid("busy", alice);
    json_t *j = expect("GET", "/droids/available?name=busy", bob, NULL, 200, NULL);
    ck_assert(json_is_false(json_object_get(j, "available")));
    json_decref(j);
    j = expect("GET", "/droids/available?name=free-one", bob, NULL, 200, NULL);
    ck_assert(json_is_true(json_object_get(j, "available")));
    json_decref(j);
    json_decref(expect("GET", "/droids/available?name=NO", bob, NULL, 400, "name"));
    json_decref(expect("GET", "/droids/available", bob, NULL, 400, "name"));
    json_decref(expect("GET", "/droids?colour=red", alice, NULL, 400, "colour"));
    json_decref(expect("GET", "/nowhere", alice, NULL, 404, NULL));
    resp r = {.want_header = "Allow"};
    json_decref(call("PUT", "/droids", alice, "{}", &r));
    ck_assert_int_eq(r.status, 405);
    ck_assert_ptr_nonnull(strstr(r.header, "GET"));
    ck_assert_ptr_nonnull(strstr(r.header, "POST"));
    dmsu_buf_free(&r.body);
    char path[128];
    snprintf(path, sizeof(path), "/droids/%s/events?limit=x", id);
    json_decref(expect("GET", path, alice, NULL, 400, "limit"));
    snprintf(path, sizeof(path), "/droids/%s/restart?force=maybe", id);
    json_decref(expect("POST", path, alice, NULL, 400, "force"));
    free(id);
}
END_TEST

START_TEST(test_lifecycle_without_executor_is_503)
{
    char *id = create_droid("idle", alice);
    char path[128];
    snprintf(path, sizeof(path), "/droids/%s/start", id);
    json_decref(expect("POST", path, alice, NULL, 503, NULL));
    snprintf(path, sizeof(path), "/droids/%s/rollback", id);
    json_decref(expect("POST", path, alice, "{\"release\":1}", 503, NULL));
    free(id);
}
END_TEST

START_TEST(test_oversized_body_is_413)
{
    size_t n = 2 * 1024 * 1024;
    char *big = malloc(n + 1);
    memset(big, ' ', n);
    big[0] = '{';
    big[n - 1] = '}';
    big[n] = '\0';
    json_decref(expect("POST", "/droids", alice, big, 413, "body"));
    free(big);
}
END_TEST

START_TEST(test_git_check_of_a_local_repository)
{
    tu_sh("cd %s && git init -q -b main w && cd w && git -c user.email=t@t -c user.name=t commit -q "
          "--allow-empty "
          "-m x && git branch dev && git clone -q --bare . ../r.git && cp -r ../r.git %s/",
          repos, dir);
    char path[256];
    snprintf(path, sizeof(path), "/git/check?repo=%s/r.git&branch=dev", repos);
    json_t *j = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert(json_is_true(json_object_get(j, "reachable")));
    ck_assert(json_is_true(json_object_get(j, "branch_exists")));
    ck_assert_str_eq(json_string_value(json_object_get(j, "default_branch")), "main");
    ck_assert_uint_eq(json_array_size(json_object_get(j, "branches")), 2);
    json_decref(j);
    snprintf(path, sizeof(path), "/git/check?repo=%s/missing.git", repos);
    j = expect("GET", path, alice, NULL, 200, NULL);
    ck_assert(json_is_false(json_object_get(j, "reachable")));
    json_decref(j);
    /* outside the roots, or in dmsd's own data: refused before anything is read */
    snprintf(path, sizeof(path), "/git/check?repo=%s/r.git", dir);
    json_decref(expect("GET", path, alice, NULL, 403, "repo"));
    json_decref(expect("GET", "/git/check?repo=/etc", alice, NULL, 403, "repo"));
    json_decref(expect("GET", "/git/check?repo=file:///etc", alice, NULL, 403, "repo"));
    json_decref(expect("GET", "/git/check?repo=ftp://x", alice, NULL, 400, "repo"));
    json_decref(expect("GET", "/git/check", alice, NULL, 400, "repo"));
}
END_TEST

/* The operator narrows DMS_LOCAL_REPO_ROOTS: a change that rebuilds a droid whose repository is no longer
 * permitted is refused; one that only restarts it is not. */
START_TEST(test_a_rebuild_from_a_repository_no_longer_permitted_is_refused)
{
    char *id = create_droid("narrowed", alice); /* /srv/narrowed.git */
    char path[128];
    snprintf(path, sizeof(path), "/droids/%s", id);
    gitx_shutdown();
    dms_error err = {0};
    gitx_config gc = {.local_roots = repos, .data_dir = dir};
    ck_assert_msg(gitx_init(&gc, &err) == 0, "%s", err.message);
    json_decref(expect("PATCH", path, alice, "{\"branch\":\"dev\"}", 403, "repo"));
    json_decref(expect("PATCH", path, alice, "{\"commit\":\"abcdef0\"}", 403, "repo"));
    json_decref(expect("PATCH", path, alice, "{\"env\":{\"A\":\"3\"}}", 200, NULL));
    free(id);
}
END_TEST

START_TEST(test_logs_before_any_run)
{
    char *id = create_droid("quiet", alice);
    char path[128];
    snprintf(path, sizeof(path), "/droids/%s/logs", id);
    resp r = {.want_header = "X-Last-Log-Nano"};
    json_decref(call("GET", path, alice, NULL, &r));
    ck_assert_int_eq(r.status, 200);
    ck_assert_uint_eq(r.body.len, 0);
    ck_assert_str_eq(r.header, "0");
    dmsu_buf_free(&r.body);
    snprintf(path, sizeof(path), "/droids/%s/logs?build.out", id);
    json_decref(expect("GET", path, alice, NULL, 404, "build.out"));
    snprintf(path, sizeof(path), "/droids/%s/logs?build.out&build.err", id);
    json_decref(expect("GET", path, alice, NULL, 400, "build.err"));
    snprintf(path, sizeof(path), "/droids/%s/logs?from=abc", id);
    json_decref(expect("GET", path, alice, NULL, 400, "from"));
    snprintf(path, sizeof(path), "/droids/%s/logs?format=xml", id);
    json_decref(expect("GET", path, alice, NULL, 400, "format"));
    free(id);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_every_route_needs_a_valid_token);
    tcase_add_test(tc, test_create_returns_pending_droid_and_lists_it);
    tcase_add_test(tc, test_bad_input_is_4xx_with_the_field);
    tcase_add_test(tc, test_other_users_droids_are_not_found);
    tcase_add_test(tc, test_patch_changes_and_validates);
    tcase_add_test(tc, test_availability_and_routing_errors);
    tcase_add_test(tc, test_lifecycle_without_executor_is_503);
    tcase_add_test(tc, test_oversized_body_is_413);
    tcase_add_test(tc, test_git_check_of_a_local_repository);
    tcase_add_test(tc, test_a_rebuild_from_a_repository_no_longer_permitted_is_refused);
    tcase_add_test(tc, test_logs_before_any_run);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = tu_run(suite());
    curl_global_cleanup();
    return rc;
}
