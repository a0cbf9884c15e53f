/* test_dmsd_buildqueue.c - who builds next (build/queue.c): the fair pick as a table of running and queued
 * builds per user, then the queue object over a real store: a droid in one slot at most, a user held to their
 * share, the time limit, the first cause of a cancel winning, and a stop that releases every worker. */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../../dms/build/queue.h"
#include "../../dms/common.h"
#include "testutil.h"

#define MAX_ROWS         8
#define POLL_INTERVAL_MS 20
#define POLL_DEADLINE_MS 10000

/* ---- the fair pick, as a table ---- */

typedef struct pick_case {
    const char *what;
    const char *running;    /* "user:droid user:droid ..." */
    const char *candidates; /* the same, longest waiting first */
    int user_max;
    const char *expect; /* the droid that starts, or NULL for none */
} pick_case;

static const pick_case cases[] = {
    {"nothing queued", "", "", 2, NULL},
    {"one user, nothing running: their longest waiting", "", "alice:a1 alice:a2", 2, "a1"},
    {"a user at their share waits; the other user goes", "alice:a1 alice:a2", "alice:a3 bob:b1", 2, "b1"},
    {"fewest running first, whoever waited longer", "alice:a1", "alice:a2 bob:b1", 2, "b1"},
    {"equal running: who waited longest", "alice:a1 bob:b1", "bob:b2 alice:a2", 2, "b2"},
    {"a droid never builds twice at once", "alice:a1", "alice:a1 alice:a2", 2, "a2"},
    {"every candidate's droid is building", "alice:a1 bob:b1", "alice:a1 bob:b1", 2, NULL},
    {"every candidate's user is at their share", "alice:a1 alice:a2", "alice:a3 alice:a4", 2, NULL},
    {"share of one: each user one build at a time", "alice:a1", "alice:a2 carol:c1", 1, "c1"},
    {"three users: the one with none running, though it waited least", "alice:a1 bob:b1",
     "alice:a2 bob:b2 carol:c1", 2, "c1"},
    {"among users with none running: the longest waiting", "alice:a1", "carol:c1 bob:b1 alice:a2", 2, "c1"},
};

typedef struct rows {
    char users[MAX_ROWS][16];
    char droids[MAX_ROWS][16];
    size_t n;
} rows;

static void parse_rows(const char *spec, rows *r)
{
    memset(r, 0, sizeof(*r));
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        ck_assert_uint_lt(r->n, MAX_ROWS);
        char *colon = strchr(tok, ':');
        ck_assert_ptr_nonnull(colon);
        *colon = '\0';
        snprintf(r->users[r->n], sizeof(r->users[0]), "%s", tok);
        snprintf(r->droids[r->n], sizeof(r->droids[0]), "%s", colon + 1);
        r->n++;
    }
}

START_TEST(test_fair_pick_follows_the_table)
{
    const pick_case *c = &cases[_i];
    rows run, q;
    parse_rows(c->running, &run);
    parse_rows(c->candidates, &q);
    buildq_busy busy[MAX_ROWS];
    store_build_cand cands[MAX_ROWS];
    for (size_t i = 0; i < run.n; i++)
        busy[i] = (buildq_busy){run.droids[i], run.users[i]};
    for (size_t i = 0; i < q.n; i++) {
        memset(&cands[i], 0, sizeof(cands[i]));
        cands[i].id = (int64_t)i + 1;
        snprintf(cands[i].droid_id, sizeof(cands[i].droid_id), "%s", q.droids[i]);
        snprintf(cands[i].user_id, sizeof(cands[i].user_id), "%s", q.users[i]);
        cands[i].waiting_since_ns = (int64_t)i;
    }
    int got = buildq_pick(cands, q.n, busy, run.n, c->user_max);
    const char *got_droid = got >= 0 ? cands[got].droid_id : NULL;
    if (!c->expect)
        ck_assert_msg(got < 0, "%s: expected nobody, got %s", c->what, got_droid);
    else
        ck_assert_msg(got >= 0 && strcmp(got_droid, c->expect) == 0, "%s: expected %s, got %s", c->what,
                      c->expect, got_droid ? got_droid : "nobody");
}
END_TEST

/* ---- the queue over a real store ---- */

static char dir[64];
static store *st;

static void store_setup(void)
{
    tu_mkdtemp(dir, sizeof(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/dms.db", dir);
    dms_error err = {0};
    ck_assert_int_eq(store_open(&st, path, &err), 0);
}

static void store_teardown(void)
{
    store_close(st);
    tu_rmtree(dir);
}

static int64_t queue_build(const char *droid_id, const char *user)
{
    dms_error err = {0};
    droid *d = droid_new();
    snprintf(d->id, sizeof(d->id), "%s", droid_id);
    d->name = strdup(droid_id);
    d->user_id = strdup(user);
    d->repo = strdup("/srv/r.git");
    d->env_json = strdup("{}");
    d->port = 8080;
    d->reason = strdup("created");
    store_droid_insert(st, d, NULL); /* a second build of the same droid: already there */
    droid_free(d);
    int64_t id;
    ck_assert_int_eq(store_build_insert(st, droid_id, NULL, NULL, &id, &err), 0);
    usleep(1000); /* distinct queued-at times: "waited longest" is then the order of queuing */
    return id;
}

static bool poll_until(bool (*cond)(void *), void *arg)
{
    for (int waited = 0; waited < POLL_DEADLINE_MS; waited += POLL_INTERVAL_MS) {
        if (cond(arg))
            return true;
        usleep(POLL_INTERVAL_MS * 1000);
    }
    return cond(arg);
}

static bool token_cancelled(void *arg)
{
    return dms_cancel_token_cancelled(arg);
}

START_TEST(test_take_holds_a_user_to_their_share_and_never_runs_a_droid_twice)
{
    dms_error err = {0};
    buildq *q = NULL;
    ck_assert_int_eq(buildq_open(&q, st, 3, 2, &err), 0);
    int64_t a1 = queue_build("a1", "alice");
    queue_build("a1", "alice"); /* a second build of a1, queued behind the first */
    int64_t a2 = queue_build("a2", "alice");
    queue_build("a3", "alice");
    int64_t b1 = queue_build("b1", "bob");
    buildq_job j1, j2, j3;
    ck_assert_int_eq(buildq_take(q, &j1), 1);
    ck_assert_int_eq(j1.b.id, a1); /* nobody runs anything: who waited longest */
    ck_assert_int_eq(buildq_take(q, &j2), 1);
    ck_assert_int_eq(j2.b.id, b1); /* bob has none running, alice one */
    ck_assert_int_eq(buildq_take(q, &j3), 1);
    ck_assert_int_eq(j3.b.id, a2); /* not a1's second build: a1 is building */
    ck_assert_int_eq(buildq_running(q, "a1"), a1);
    ck_assert_int_eq(buildq_running(q, "b1"), b1);
    ck_assert_int_eq(buildq_running(q, "a3"), 0);
    buildq_job *jobs[] = {&j1, &j2, &j3};
    for (size_t i = 0; i < 3; i++) {
        ck_assert(!dms_cancel_token_cancelled(jobs[i]->token));
        store_build_clear(&jobs[i]->b);
        buildq_done(q, jobs[i]);
    }
    ck_assert_int_eq(buildq_running(q, "a1"), 0);
    buildq_close(q);
}
END_TEST

START_TEST(test_a_build_past_its_time_limit_is_cancelled_with_the_reason)
{
    dms_error err = {0};
    buildq *q = NULL;
    ck_assert_int_eq(buildq_open(&q, st, 2, 1, &err), 0);
    queue_build("a1", "alice");
    queue_build("b1", "bob");
    buildq_job slow, fine;
    ck_assert_int_eq(buildq_take(q, &slow), 1);
    ck_assert_int_eq(buildq_take(q, &fine), 1);
    buildq_arm(q, &slow, 1);
    buildq_arm(q, &fine, 3600);
    ck_assert(poll_until(token_cancelled, slow.token));
    char why[BUILDQ_REASON_MAX];
    ck_assert_int_eq(buildq_why(q, &slow, why, sizeof(why)), BUILDQ_TIMED_OUT);
    ck_assert_str_eq(why, "build timed out after 1 s");
    ck_assert(!dms_cancel_token_cancelled(fine.token)); /* the other build's limit is its own */
    ck_assert_int_eq(buildq_why(q, &fine, why, sizeof(why)), BUILDQ_NOT_CANCELLED);
    ck_assert_str_eq(why, "");
    store_build_clear(&slow.b);
    store_build_clear(&fine.b);
    buildq_done(q, &slow);
    buildq_done(q, &fine);
    buildq_close(q);
}
END_TEST

START_TEST(test_the_first_cause_of_a_cancel_wins)
{
    dms_error err = {0};
    buildq *q = NULL;
    ck_assert_int_eq(buildq_open(&q, st, 1, 1, &err), 0);
    int64_t a1 = queue_build("a1", "alice");
    buildq_job j;
    ck_assert_int_eq(buildq_take(q, &j), 1);
    ck_assert(!buildq_supersede(q, "a1", a1 + 1)); /* another build of a1: not this one */
    ck_assert(!buildq_cancel(q, "b9", "cancelled"));
    ck_assert(buildq_cancel(q, "a1", "cancelled: the droid was stopped"));
    ck_assert(!buildq_supersede(q, "a1", a1)); /* already cancelled */
    buildq_stop(q);
    char why[BUILDQ_REASON_MAX];
    ck_assert_int_eq(buildq_why(q, &j, why, sizeof(why)), BUILDQ_CANCELLED);
    ck_assert_str_eq(why, "cancelled: the droid was stopped");
    store_build_clear(&j.b);
    buildq_done(q, &j);
    buildq_close(q);
}
END_TEST

static void *take_in_thread(void *arg)
{
    buildq_job j;
    int *got = malloc(sizeof(int));
    *got = buildq_take(arg, &j);
    return got;
}

START_TEST(test_stop_interrupts_running_builds_and_releases_waiting_workers)
{
    dms_error err = {0};
    buildq *q = NULL;
    ck_assert_int_eq(buildq_open(&q, st, 2, 1, &err), 0);
    queue_build("a1", "alice");
    queue_build("a2", "alice");
    buildq_job j;
    ck_assert_int_eq(buildq_take(q, &j), 1);
    /* alice's second build waits for her first: a second worker blocks */
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, take_in_thread, q), 0);
    buildq_stop(q);
    void *ret = NULL;
    pthread_join(t, &ret);
    ck_assert_int_eq(*(int *)ret, 0);
    free(ret);
    char why[BUILDQ_REASON_MAX];
    ck_assert(dms_cancel_token_cancelled(j.token));
    ck_assert_int_eq(buildq_why(q, &j, why, sizeof(why)), BUILDQ_STOPPING);
    store_build_clear(&j.b);
    buildq_done(q, &j);
    buildq_close(q);
}
END_TEST

START_TEST(test_open_refuses_a_share_beyond_the_workers)
{
    dms_error err = {0};
    buildq *q = NULL;
    ck_assert_int_eq(buildq_open(&q, st, 2, 3, &err), -DMS_E_INVALID);
    ck_assert_int_eq(buildq_open(&q, st, BUILD_WORKERS_MAX + 1, 1, &err), -DMS_E_INVALID);
    ck_assert_int_eq(buildq_open(&q, st, 0, 0, &err), -DMS_E_INVALID);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dmsd_buildqueue");
    TCase *tp = tcase_create("pick");
    tcase_add_loop_test(tp, test_fair_pick_follows_the_table, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    suite_add_tcase(s, tp);
    TCase *tq = tcase_create("queue");
    tcase_add_checked_fixture(tq, store_setup, store_teardown);
    tcase_set_timeout(tq, 30);
    tcase_add_test(tq, test_take_holds_a_user_to_their_share_and_never_runs_a_droid_twice);
    tcase_add_test(tq, test_a_build_past_its_time_limit_is_cancelled_with_the_reason);
    tcase_add_test(tq, test_the_first_cause_of_a_cancel_wins);
    tcase_add_test(tq, test_stop_interrupts_running_builds_and_releases_waiting_workers);
    tcase_add_test(tq, test_open_refuses_a_share_beyond_the_workers);
    suite_add_tcase(s, tq);
    return s;
}

int main(void)
{
    return tu_run(suite());
}
