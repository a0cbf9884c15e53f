/* test_dmsd_follow.c - following a branch without an engine: the follow/hook_secret keys of a create or patch
 * body, the secret's hash and its check (right, wrong, unknown droid, none made yet), the secret made once
 * when follow is turned on, and the head of a remote branch (git ls-remote through libgit2, no clone). */
#include <check.h>
#include <git2.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/api/history.h"
#include "../../dms/build/git.h"
#include "../../dms/follow/follow.h"
#include "testutil.h"

static char dir[64];

static int take(const char *json, follow_opts *o, json_t **left, dms_error *err)
{
    json_t *body = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(body);
    int r = follow_take_opts(body, o, err);
    if (left)
        *left = body;
    else
        json_decref(body);
    return r;
}

START_TEST(test_take_opts_removes_its_keys_and_validates_them)
{
    follow_opts o;
    dms_error err = {0};
    json_t *left = NULL;
    ck_assert_int_eq(
        take("{\"name\":\"a\",\"follow\":true,\"hook_secret\":\"0123456789abcdef\"}", &o, &left, &err), 0);
    ck_assert(o.has_follow && o.follow && o.has_secret);
    ck_assert_str_eq(o.secret, "0123456789abcdef");
    ck_assert_int_eq(json_object_size(left), 1); /* only the droid's own key is left for its parser */
    ck_assert_ptr_nonnull(json_object_get(left, "name"));
    json_decref(left);
    ck_assert_int_eq(take("{\"name\":\"a\"}", &o, NULL, &err), 0);
    ck_assert(!o.has_follow && !o.has_secret);
    ck_assert_int_eq(take("{\"follow\":false}", &o, NULL, &err), 0);
    ck_assert(o.has_follow && !o.follow);
    ck_assert_int_eq(take("{\"follow\":\"yes\"}", &o, NULL, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "follow");
    ck_assert_int_eq(take("{\"hook_secret\":\"short\"}", &o, NULL, &err), -DMS_E_INVALID);
    ck_assert_str_eq(err.field, "hook_secret");
    ck_assert_int_eq(take("{\"hook_secret\":\"has a space in it!!\"}", &o, NULL, &err), -DMS_E_INVALID);
    ck_assert_int_eq(take("{\"hook_secret\":12345678901234567}", &o, NULL, &err), -DMS_E_INVALID);
}
END_TEST

START_TEST(test_secret_hash_is_sha256_hex)
{
    char h[65];
    ck_assert_int_eq(follow_hash_secret("abc", h, NULL), 0);
    ck_assert_str_eq(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* ---- with a store and a core (no engine, no follower) ---- */

static store *st;
static core *co;

static void core_setup(void)
{
    tu_mkdtemp(dir, sizeof(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/dms.db", dir);
    dms_error err = {0};
    ck_assert_int_eq(store_open(&st, path, &err), 0);
    ck_assert_int_eq(core_open(&co, st, &err), 0);
}

static void core_teardown(void)
{
    core_close(co);
    store_close(st);
    tu_rmtree(dir);
}

static char *create_droid(const char *name)
{
    droid *d = droid_new(), *out = NULL;
    d->name = strdup(name);
    d->user_id = strdup("alice");
    d->repo = strdup("/srv/x.git");
    d->env_json = strdup("{}");
    d->port = 8080;
    dms_error err = {0};
    ck_assert_int_eq(core_create(co, d, &out, &err), 0);
    char *id = strdup(out->id);
    droid_free(d);
    droid_free(out);
    return id;
}

START_TEST(test_follow_on_makes_a_secret_once_and_the_hook_checks_it)
{
    char *id = create_droid("web");
    dms_error err = {0};
    ck_assert_int_eq(follow_verify_secret(st, co, id, "anything-at-all-1234", &err), -DMS_E_NOT_FOUND);
    follow_opts o = {.has_follow = true, .follow = true};
    char made[HOOK_SECRET_BUF];
    ck_assert_int_eq(follow_apply(co, NULL, id, &o, made, &err), 0);
    ck_assert_int_eq(strlen(made), 2 * HOOK_SECRET_HEX_BYTES);
    ck_assert_int_eq(follow_verify_secret(st, co, id, made, &err), 0);
    char wrong[HOOK_SECRET_BUF];
    snprintf(wrong, sizeof(wrong), "%s", made);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    ck_assert_int_eq(follow_verify_secret(st, co, id, wrong, &err), -DMS_E_INVALID);
    ck_assert_int_eq(follow_verify_secret(st, co, id, "", &err), -DMS_E_INVALID);
    ck_assert_int_eq(follow_verify_secret(st, co, "dnosuchdroid0", made, &err), -DMS_E_NOT_FOUND);
    /* Turning it on again keeps the secret: nothing new is shown. */
    char again[HOOK_SECRET_BUF];
    ck_assert_int_eq(follow_apply(co, NULL, id, &o, again, &err), 0);
    ck_assert_str_eq(again, "");
    ck_assert_int_eq(follow_verify_secret(st, co, id, made, &err), 0);
    /* A secret of the user's own replaces it. */
    follow_opts s = {.has_secret = true};
    snprintf(s.secret, sizeof(s.secret), "my-own-secret-123456");
    ck_assert_int_eq(follow_apply(co, NULL, id, &s, again, &err), 0);
    ck_assert_str_eq(again, "");
    ck_assert_int_eq(follow_verify_secret(st, co, id, "my-own-secret-123456", &err), 0);
    ck_assert_int_eq(follow_verify_secret(st, co, id, made, &err), -DMS_E_INVALID);
    /* Signed as GitHub and Gitea sign: HMAC-SHA256 of the body keyed by the secret (python's hmac says so).
     */
    static const char body[] = "{\"ref\":\"refs/heads/main\"}";
    static const char mac[] = "f50396739491dae54143cceebae4db69e217d1d767e559d1dc5689c0349fa7b5";
    char sig[80];
    snprintf(sig, sizeof(sig), "sha256=%s", mac);
    ck_assert_int_eq(follow_verify_signature(st, co, id, sig, body, strlen(body), &err), 0);
    ck_assert_int_eq(follow_verify_signature(st, co, id, mac, body, strlen(body), &err),
                     0);         /* Gitea: bare hex */
    for (char *c = sig; *c; c++) /* hex in capitals is the same signature */
        *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 'a' + 'A' : *c);
    ck_assert_int_eq(follow_verify_signature(st, co, id, sig + 7, body, strlen(body), &err), 0);
    ck_assert_int_eq(follow_verify_signature(st, co, id, "sha256=00", body, strlen(body), &err),
                     -DMS_E_INVALID);
    ck_assert_int_eq(follow_verify_signature(st, co, id, mac, body, strlen(body) - 1, &err), -DMS_E_INVALID);
    ck_assert_int_eq(follow_verify_signature(st, co, "dnosuchdroid0", mac, body, strlen(body), &err),
                     -DMS_E_NOT_FOUND);
    /* The droid's JSON says follow and the hook, never the secret. */
    json_t *j = NULL;
    ck_assert_int_eq(core_get_json(co, "alice", id, &j, &err), 0);
    follow_add_json(st, j);
    ck_assert(json_is_true(json_object_get(j, "follow")));
    json_t *hook = json_object_get(j, "hook");
    ck_assert(json_is_true(json_object_get(hook, "secret_set")));
    char *dump = json_dumps(j, 0);
    ck_assert_ptr_null(strstr(dump, "my-own-secret"));
    free(dump);
    json_decref(j);
    /* Events tell the story. */
    json_t *ev = NULL;
    ck_assert_int_eq(history_events_json(st, id, 0, 0, &ev, &err), 0);
    dump = json_dumps(ev, 0);
    ck_assert_ptr_nonnull(strstr(dump, "follows its branch now; hook secret set"));
    free(dump);
    json_decref(ev);
    free(id);
}
END_TEST

START_TEST(test_deleting_a_droid_drops_its_follow_row)
{
    char *id = create_droid("gone");
    follow_opts o = {.has_follow = true, .follow = true};
    char made[HOOK_SECRET_BUF];
    dms_error err = {0};
    ck_assert_int_eq(follow_apply(co, NULL, id, &o, made, &err), 0);
    ck_assert_int_eq(store_droid_delete(st, id, &err), 0);
    sqlite3 *db = store_db_acquire(st);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM droid_follow WHERE droid_id='%s'", id);
    sqlite3_stmt *q = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_int_eq(sqlite3_column_int(q, 0), 0);
    sqlite3_finalize(q);
    store_db_release(st);
    ck_assert_int_eq(follow_verify_secret(st, co, id, made, &err), -DMS_E_NOT_FOUND);
    free(id);
}
END_TEST

/* ---- the head of a remote branch ---- */

START_TEST(test_branch_head_of_a_remote_without_cloning)
{
    tu_mkdtemp(dir, sizeof(dir));
    git_libgit2_init();
    dms_error err = {0};
    gitx_config gc = {.local_roots = dir};
    ck_assert_msg(gitx_init(&gc, &err) == 0, "%s", err.message);
    tu_sh("cd %s && git init -q -b trunk w && cd w && git -c user.email=t@t -c user.name=t commit -q "
          "--allow-empty -m one"
          " && git branch other && git -c user.email=t@t -c user.name=t commit -q --allow-empty -m two"
          " && cd .. && git clone -q --bare w r.git",
          dir);
    char repo[128], sha[GIT_SHA_HEX + 1], resolved[GITX_BRANCH_MAX], want[GIT_SHA_HEX + 8], cmd[256];
    snprintf(repo, sizeof(repo), "%s/r.git", dir);
    ck_assert_msg(gitx_branch_head(repo, NULL, sha, resolved, &err) == 0, "%s", err.message);
    ck_assert_str_eq(resolved, "trunk"); /* the default branch */
    snprintf(cmd, sizeof(cmd), "git -C %s/w rev-parse trunk", dir);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(fgets(want, sizeof(want), p));
    pclose(p);
    want[GIT_SHA_HEX] = '\0';
    ck_assert_str_eq(sha, want);
    ck_assert_int_eq(gitx_branch_head(repo, "other", sha, resolved, &err), 0);
    ck_assert_str_eq(resolved, "other");
    ck_assert_str_ne(sha, want); /* one commit behind */
    ck_assert_int_eq(gitx_branch_head(repo, "nope", sha, NULL, &err), -DMS_E_NOT_FOUND);
    ck_assert_str_eq(err.field, "branch");
    snprintf(repo, sizeof(repo), "%s/missing.git", dir);
    ck_assert_int_lt(gitx_branch_head(repo, NULL, sha, NULL, &err), 0);
    ck_assert(!err.retryable); /* a local path that is not a repository is the user's */
    gitx_shutdown();
    git_libgit2_shutdown();
    tu_rmtree(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_follow");
    TCase *tc = tcase_create("opts");
    tcase_add_test(tc, test_take_opts_removes_its_keys_and_validates_them);
    tcase_add_test(tc, test_secret_hash_is_sha256_hex);
    tcase_add_test(tc, test_branch_head_of_a_remote_without_cloning);
    suite_add_tcase(s, tc);
    TCase *tcc = tcase_create("core");
    tcase_add_checked_fixture(tcc, core_setup, core_teardown);
    tcase_add_test(tcc, test_follow_on_makes_a_secret_once_and_the_hook_checks_it);
    tcase_add_test(tcc, test_deleting_a_droid_drops_its_follow_row);
    suite_add_tcase(s, tcc);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
