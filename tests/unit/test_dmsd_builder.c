/* test_dmsd_builder.c - the builder without an engine: the request it makes of the engine for a droid (tag,
 * labels, limits, the Dockerfile's text), how a failed step and a cancel classify the build's end, and what
 * each end does to the build's row, the releases and the droid (through the core, on a real store). The build
 * itself (clone, engine) is the feature suite's (tests/features/dmsd_builds.feature). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../dms/build/builder.h"
#include "../../dms/build/buildreq.h"
#include "../../dms/build/buildstate.h"
#include "../../dms/core/core.h"
#include "util.h"
#include "testutil.h"

/* ---- the request ---- */

START_TEST(test_request_names_the_image_and_labels_it_for_droid_and_build)
{
    build_config cfg = {.memory_mb = 512, .cpu_millis = 1500};
    buildreq bq;
    buildreq_make(&bq, &cfg, "dabc123456789", 42, "/data/droids/dabc/src", "FROM scratch\n");
    ck_assert_str_eq(bq.req.tag, "dms-droid/dabc123456789:b42");
    ck_assert_str_eq(bq.req.build_id, "dabc123456789-b42");
    ck_assert_str_eq(bq.req.job_id, "dabc123456789");
    ck_assert_str_eq(bq.req.context_dir, "/data/droids/dabc/src");
    ck_assert_str_eq(bq.req.labels[0], "dms.droid=dabc123456789");
    ck_assert_str_eq(bq.req.labels[1], "dms.build=42");
    ck_assert_ptr_null(bq.req.labels[2]);
    ck_assert_str_eq(bq.tag, bq.req.tag);
}
END_TEST

START_TEST(test_request_carries_the_limits_and_the_dockerfile_text)
{
    build_config cfg = {.memory_mb = 512, .cpu_millis = 1500};
    const char *text = "FROM dms-stack/node:latest\nRUN true\n";
    buildreq bq;
    buildreq_make(&bq, &cfg, "d1", 1, "/src", text);
    ck_assert_int_eq(bq.req.memory_bytes, 512LL * 1024 * 1024);
    ck_assert_int_eq(bq.req.cpu_millis, 1500);
    ck_assert_ptr_eq(bq.req.dockerfile_text, text);
    ck_assert_ptr_null(bq.req.dockerfile); /* the text, never a path in the checkout */
    ck_assert_ptr_null(bq.req.build_args);
    ck_assert(!bq.req.no_cache);
}
END_TEST

START_TEST(test_request_without_limits_asks_for_none)
{
    build_config cfg = {0};
    buildreq bq;
    buildreq_make(&bq, &cfg, "d1", 7, "/src", NULL);
    ck_assert_int_eq(bq.req.memory_bytes, 0);
    ck_assert_int_eq(bq.req.cpu_millis, 0);
    ck_assert_ptr_null(bq.req.dockerfile_text);
}
END_TEST

/* ---- classifying the end ---- */

START_TEST(test_failed_step_ends_by_its_code_then_retryable)
{
    dms_error err = {0};
    ck_assert_int_eq(buildstate_kind_of(-DMS_E_CANCELLED, &err), BUILD_END_CANCELLED);
    err.retryable = true;
    /* the user's Dockerfile failing is never retried, whatever the flag */
    ck_assert_int_eq(buildstate_kind_of(-DMS_E_BUILD_FAILED, &err), BUILD_END_USER_FAULT);
    ck_assert_int_eq(buildstate_kind_of(-DMS_E_ENGINE, &err), BUILD_END_RETRY);
    err.retryable = false;
    ck_assert_int_eq(buildstate_kind_of(-DMS_E_NOT_FOUND, &err), BUILD_END_USER_FAULT);
}
END_TEST

START_TEST(test_timed_out_build_failed_and_is_not_retried)
{
    build_end ea = {.kind = BUILD_END_RETRY};
    ck_assert(buildstate_cancelled(&ea, BUILDQ_TIMED_OUT, "build timed out after 60 s"));
    ck_assert_int_eq(ea.kind, BUILD_END_USER_FAULT);
    ck_assert_str_eq(ea.reason, "build timed out after 60 s");
    ck_assert(!ea.superseded);
}
END_TEST

START_TEST(test_superseded_build_is_cancelled_and_leaves_the_droid_to_the_next)
{
    build_end ea = {.kind = BUILD_END_USER_FAULT};
    ck_assert(buildstate_cancelled(&ea, BUILDQ_SUPERSEDED, "superseded: new code"));
    ck_assert_int_eq(ea.kind, BUILD_END_CANCELLED);
    ck_assert(ea.superseded);
}
END_TEST

START_TEST(test_cancel_without_words_says_cancelled)
{
    build_end ea = {.kind = BUILD_END_RETRY};
    ck_assert(buildstate_cancelled(&ea, BUILDQ_CANCELLED, ""));
    ck_assert_int_eq(ea.kind, BUILD_END_CANCELLED);
    ck_assert_str_eq(ea.reason, "cancelled");
}
END_TEST

START_TEST(test_dmsd_stopping_interrupts_without_ending_the_build)
{
    build_end ea = {.kind = BUILD_END_RETRY};
    ck_assert(!buildstate_cancelled(&ea, BUILDQ_STOPPING, "dmsd is stopping"));
}
END_TEST

START_TEST(test_end_kinds_have_words_for_both_logs)
{
    ck_assert_str_eq(buildstate_kind_name(BUILD_END_OK), "ok");
    ck_assert_str_eq(buildstate_kind_name(BUILD_END_RETRY), "retry");
    ck_assert_str_eq(buildstate_kind_name(BUILD_END_CANCELLED), "cancelled");
    ck_assert_str_eq(buildstate_kind_name(BUILD_END_USER_FAULT), "failed");
    ck_assert_str_eq(buildstate_kind_said(BUILD_END_RETRY), "failed (will retry)");
    ck_assert_str_eq(buildstate_kind_said(BUILD_END_CANCELLED), "cancelled");
    ck_assert_str_eq(buildstate_kind_said(BUILD_END_USER_FAULT), "failed");
}
END_TEST

/* ---- what an end does: through the core, on a real store ---- */

static char dir[64], path[128];
static store *st;
static core *c;

static void setup(void)
{
    dms_error err = {0};
    tu_mkdtemp(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/dms.db", dir);
    ck_assert_int_eq(store_open(&st, path, &err), 0);
    ck_assert_int_eq(core_open(&c, st, &err), 0);
}

static void teardown(void)
{
    core_close(c);
    store_close(st);
    tu_rmtree(dir);
}

/* A new droid (pending, wanted running) and its queued build, begun: the build running, the droid building.
 */
static droid *building(store_build *b)
{
    droid *d = droid_new(), *out = NULL;
    d->name = strdup("web");
    d->user_id = strdup("alice");
    d->repo = strdup("/srv/x.git");
    d->env_json = strdup("{}");
    d->port = 8080;
    dms_error err = {0};
    ck_assert_int_eq(core_create(c, d, &out, &err), 0);
    droid_free(d);
    ck_assert_int_eq(store_build_active(st, out->id, b, &err), 1);
    build_begin ba = {.b = b};
    snprintf(ba.reason, sizeof(ba.reason), "build %lld: cloning", (long long)b->id);
    ck_assert_int_eq(core_mutate(c, NULL, out->id, buildstate_begin, &ba, NULL, &err), 0);
    ck_assert_int_eq(b->status, BUILD_RUNNING);
    ck_assert_int_eq(b->attempt, 1);
    return out;
}

static droid *now(const char *id)
{
    droid *d = core_get_copy(c, id);
    ck_assert_ptr_nonnull(d);
    return d;
}

static build_status status_of(int64_t id)
{
    store_build b = {0};
    ck_assert_int_eq(store_build_get(st, id, &b, NULL), 1);
    build_status s = b.status;
    store_build_clear(&b);
    return s;
}

static int end(droid *d, store_build *b, build_end *ea, build_end_kind kind, const char *reason)
{
    dms_error err = {0};
    ea->b = b;
    ea->kind = kind;
    snprintf(ea->reason, sizeof(ea->reason), "%s", reason);
    return core_mutate(c, NULL, d->id, buildstate_end, ea, NULL, &err);
}

START_TEST(test_begin_marks_the_build_running_and_the_droid_building)
{
    store_build b = {0};
    droid *d = building(&b);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_BUILDING);
    ck_assert_int_eq(status_of(b.id), BUILD_RUNNING);
    /* begun once: a second begin (a stale pick) must not bring it back to life */
    build_begin again = {.b = &b};
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, buildstate_begin, &again, NULL, &err), -DMS_E_CONFLICT);
    ck_assert_ptr_nonnull(strstr(err.message, "no longer queued (running)"));
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

START_TEST(test_success_records_a_release_and_hands_the_droid_to_the_runner)
{
    store_build b = {0};
    droid *d = building(&b);
    b.image_id = strdup("sha256:feed");
    b.tag = strdup("dms-droid/x:b1");
    b.commit_sha = strdup("0123456789abcdef0123");
    build_end ea = {.image_bytes = 1234};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_OK, ""), 0);
    ck_assert_int_eq(ea.release, 1);
    ck_assert_int_eq(status_of(b.id), BUILD_SUCCEEDED);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_STARTING);
    ck_assert_int_eq(n->want_release, 1);
    ck_assert_str_eq(n->commit_sha, "0123456789abcdef0123");
    store_release rel = {0};
    ck_assert_int_eq(store_release_get(st, d->id, 1, &rel, NULL), 0);
    ck_assert_str_eq(rel.image_id, "sha256:feed");
    ck_assert_int_eq(rel.image_bytes, 1234);
    ck_assert_int_eq(rel.build_id, b.id);
    store_release_clear(&rel);
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

START_TEST(test_retryable_failure_queues_the_build_again_after_the_backoff)
{
    store_build b = {0};
    droid *d = building(&b);
    int64_t before = dms_now_ns();
    build_end ea = {0};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_RETRY, "engine unavailable"), 0);
    ck_assert_int_eq(status_of(b.id), BUILD_QUEUED);
    ck_assert_int_ge(b.next_try_ns, before + builder_backoff_ms(1) * NS_PER_MS);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_PENDING);
    ck_assert_ptr_nonnull(strstr(n->reason, "attempt 1/5 failed: engine unavailable; retrying in 2s"));
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

START_TEST(test_last_retryable_failure_fails_the_droid)
{
    store_build b = {0};
    droid *d = building(&b);
    b.attempt = BUILD_MAX_ATTEMPTS;
    build_end ea = {0};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_RETRY, "engine unavailable"), 0);
    ck_assert_int_eq(status_of(b.id), BUILD_FAILED);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_FAILED);
    ck_assert_ptr_nonnull(strstr(n->reason, "failed after 5 attempts: engine unavailable"));
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

START_TEST(test_users_fault_fails_the_droid_with_the_reason)
{
    store_build b = {0};
    droid *d = building(&b);
    build_end ea = {0};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_USER_FAULT, "step 2/3 RUN false: exit 1"), 0);
    ck_assert_int_eq(status_of(b.id), BUILD_FAILED);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_FAILED);
    char want[128];
    snprintf(want, sizeof(want), "build %lld failed: step 2/3 RUN false: exit 1", (long long)b.id);
    ck_assert_str_eq(n->reason, want);
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

START_TEST(test_cancelled_build_stops_the_droid)
{
    store_build b = {0};
    droid *d = building(&b);
    build_end ea = {0};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_CANCELLED, "cancelled by the user"), 0);
    ck_assert_int_eq(status_of(b.id), BUILD_CANCELLED);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_STOPPED);
    ck_assert_str_eq(n->reason, "cancelled by the user");
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

START_TEST(test_superseded_build_leaves_the_droid_as_it_is)
{
    store_build b = {0};
    droid *d = building(&b);
    build_end ea = {.superseded = true};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_CANCELLED, "superseded"), 0);
    ck_assert_int_eq(status_of(b.id), BUILD_CANCELLED);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_BUILDING);
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

static int serve(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    (void)ud;
    (void)err;
    d->run_id = strdup("dabc-r1");
    d->run_release = 3;
    return 0;
}

START_TEST(test_failure_while_an_older_release_serves_keeps_it_serving)
{
    store_build b = {0};
    droid *d = building(&b);
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, serve, NULL, NULL, &err), 0);
    build_end ea = {0};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_USER_FAULT, "no Dockerfile"), 0);
    droid *n = now(d->id);
    ck_assert_int_eq(n->state, DROID_RUNNING);
    ck_assert_ptr_nonnull(strstr(n->reason, "failed: no Dockerfile; still serving release 3"));
    droid_free(n);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

static int start_deleting(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    (void)tx;
    (void)ud;
    (void)err;
    d->deleting = true;
    return 0;
}

START_TEST(test_build_of_a_deleted_droid_is_an_orphan)
{
    store_build b = {0};
    droid *d = building(&b);
    dms_error err = {0};
    ck_assert_int_eq(core_mutate(c, NULL, d->id, start_deleting, NULL, NULL, &err), 0);
    build_end ea = {0};
    ck_assert_int_eq(end(d, &b, &ea, BUILD_END_OK, ""), 0);
    ck_assert(ea.orphan);
    ck_assert_int_eq(ea.release, 0);
    ck_assert_int_eq(status_of(b.id), BUILD_CANCELLED);
    droid_free(d);
    store_build_clear(&b);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_builder");
    TCase *req = tcase_create("request");
    tcase_add_test(req, test_request_names_the_image_and_labels_it_for_droid_and_build);
    tcase_add_test(req, test_request_carries_the_limits_and_the_dockerfile_text);
    tcase_add_test(req, test_request_without_limits_asks_for_none);
    suite_add_tcase(s, req);
    TCase *cls = tcase_create("classify");
    tcase_add_test(cls, test_failed_step_ends_by_its_code_then_retryable);
    tcase_add_test(cls, test_timed_out_build_failed_and_is_not_retried);
    tcase_add_test(cls, test_superseded_build_is_cancelled_and_leaves_the_droid_to_the_next);
    tcase_add_test(cls, test_cancel_without_words_says_cancelled);
    tcase_add_test(cls, test_dmsd_stopping_interrupts_without_ending_the_build);
    tcase_add_test(cls, test_end_kinds_have_words_for_both_logs);
    suite_add_tcase(s, cls);
    TCase *st_ = tcase_create("state");
    tcase_add_checked_fixture(st_, setup, teardown);
    tcase_add_test(st_, test_begin_marks_the_build_running_and_the_droid_building);
    tcase_add_test(st_, test_success_records_a_release_and_hands_the_droid_to_the_runner);
    tcase_add_test(st_, test_retryable_failure_queues_the_build_again_after_the_backoff);
    tcase_add_test(st_, test_last_retryable_failure_fails_the_droid);
    tcase_add_test(st_, test_users_fault_fails_the_droid_with_the_reason);
    tcase_add_test(st_, test_cancelled_build_stops_the_droid);
    tcase_add_test(st_, test_superseded_build_leaves_the_droid_as_it_is);
    tcase_add_test(st_, test_failure_while_an_older_release_serves_keeps_it_serving);
    tcase_add_test(st_, test_build_of_a_deleted_droid_is_an_orphan);
    suite_add_tcase(s, st_);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
