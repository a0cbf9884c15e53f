/* lifecycle.c - N trivial jobs (`true`) four ways, interleaved so that drift hits every path alike:
 *   executor:    dms_executor_run() through the C API; its container is removed off the critical path, so
 *                its lifecycle ends at the engine's `destroy` event (seen by our own events watcher), and its
 *                time-to-result at the return of run;
 *   bare:        create, start, wait, delete on one kept-alive connection (the floor); time-to-result after
 *                the wait;
 *   bare+attach: the same with an attach before start read to its end, as the executor captures output;
 *   CLI:         `docker run --rm` (what a user would type), which returns once the container is removed.
 * Every round runs the four in a rotated order (A B C D, B C D A, ...). */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "raw.h"

#define LC_DEFAULT_N           40
#define LC_DEFAULT_WARMUP      2
#define LC_DEFAULT_MAX_SECONDS 300
#define LC_MAX_FAILURES        3
#define LC_CLI_TIMEOUT_MS      60000

enum { PATH_EXEC, PATH_RAW, PATH_ATTACH, PATH_CLI, PATH_COUNT };

/* Where one job's time goes, from the engine's events and our clock: call -> create event -> start event ->
 * die event -> result (run returns / wait returns / the CLI exits) -> destroy event. */
enum { SEG_PREP, SEG_CREATE_ATTACH, SEG_TO_START, SEG_RUN, SEG_DIE_RESULT, SEG_RESULT_GONE, SEG_COUNT };
static const char *const seg_names[SEG_COUNT] = {
    "call -> create", "create -> attach", "(attach|create) -> start",
    "start -> die",   "die -> result",    "result -> removed"};
static const char *const path_names[PATH_COUNT] = {"executor", "bare", "bare+attach", "cli"};

typedef struct lc_state {
    bench_env *env;
    raw_events *ev;
    raw_conn conn;
    char *raw_body;
    pid_t pid;
    bench_samples exec_ttr, exec_life, raw_ttr, raw_life, att_ttr, att_life, cli;
    bench_samples pair_life, pair_ttr_cli; /* per-round ratios executor/bare lifecycle, executor ttr / CLI */
    bench_samples seg[PATH_COUNT][SEG_COUNT];
    bench_samples cpu[PATH_COUNT];
    int failures;
} lc_state;

typedef struct lc_job {
    double ttr, life; /* ms */
    double cpu;       /* ms of this process's CPU (executor or bare client; the CLI runs elsewhere) */
    double seg[SEG_COUNT];
} lc_job;

/* The breakdown of one job from its timeline; real0: the call, real_result: its result (real clock). */
static int timeline(lc_state *st, const char *name, int64_t real0, int64_t real_result, lc_job *job)
{
    raw_timeline t;
    if (raw_events_wait(st->ev, name, RAW_DESTROY, BENCH_DESTROY_WAIT_MS, &t) < 0) {
        fprintf(stderr, "bench: lifecycle: %s was not removed within %d ms\n", name, BENCH_DESTROY_WAIT_MS);
        return -1;
    }
    const int64_t *ts = t.ts_ns;
    job->seg[SEG_PREP] = bench_ms(ts[RAW_CREATE] - real0);
    /* Paths that attach have their attach in between; the others have no sample there (NAN). */
    job->seg[SEG_CREATE_ATTACH] = ts[RAW_ATTACH] ? bench_ms(ts[RAW_ATTACH] - ts[RAW_CREATE]) : NAN;
    job->seg[SEG_TO_START] = bench_ms(ts[RAW_START] - (ts[RAW_ATTACH] ? ts[RAW_ATTACH] : ts[RAW_CREATE]));
    job->seg[SEG_RUN] = bench_ms(ts[RAW_DIE] - ts[RAW_START]);
    job->seg[SEG_DIE_RESULT] = bench_ms(real_result - ts[RAW_DIE]);
    job->seg[SEG_RESULT_GONE] = bench_ms(ts[RAW_DESTROY] - real_result);
    if (!ts[RAW_CREATE] || !ts[RAW_START] || !ts[RAW_DIE]) {
        fprintf(stderr, "bench: lifecycle: %s: events missing from its timeline\n", name);
        return -1;
    }
    job->life = bench_ms(ts[RAW_DESTROY] - real0);
    return 0;
}

/* One executor run. Its lifecycle ends at the destroy event: the removal happens after the result. */
static int run_exec(lc_state *st, int i, lc_job *job)
{
    char id[DMS_ID_MAX + 1], name[160];
    snprintf(id, sizeof(id), "lc-%d-%d", (int)st->pid, i);
    snprintf(name, sizeof(name), "dms-%s-%s", BENCH_EXECUTOR_ID, id);
    bench_req r;
    bench_req_init(&r, st->env, id, NULL);
    dms_exec_result res = {0};
    dms_error err = {0};
    int64_t real0 = bench_real_ns(), t0 = bench_mono_ns();
    int rc = dms_executor_run(st->env->ex, &r.req, &res, &err);
    int64_t t1 = bench_mono_ns(), real1 = bench_real_ns();
    bool ok = rc == 0 && res.outcome == DMS_OUTCOME_EXITED && res.exit_code == 0;
    if (!ok)
        fprintf(stderr, "bench: lifecycle: executor run %s: %s (outcome %s, exit %d)\n", id,
                rc < 0 ? err.message : res.error, dms_outcome_name(res.outcome), res.exit_code);
    dms_exec_result_clear(&res);
    if (timeline(st, name, real0, real1, job) < 0)
        return -1;
    job->ttr = bench_ms(t1 - t0);
    return ok ? 0 : -1;
}

/* The bare loop; with_attach: attach before start and read the output to its end, as the executor does, so
 * that the engine's share of capturing output is told apart from the executor's own. */
static int run_raw(lc_state *st, int i, bool with_attach, lc_job *job)
{
    char name[160], id[80];
    snprintf(name, sizeof(name), "dms-%s-raw%s-%d-%d", BENCH_EXECUTOR_ID, with_attach ? "att" : "",
             (int)st->pid, i);
    int code = -1;
    int64_t real0 = bench_real_ns(), t0 = bench_mono_ns();
    if (raw_create(&st->conn, name, st->raw_body, id) < 0)
        return -1;
    raw_attach a;
    int r = with_attach ? raw_attach_begin(&a, id, RAW_CALL_TIMEOUT_MS) : 0;
    if (r == 0)
        r = raw_start(&st->conn, id);
    if (r == 0 && with_attach)
        r = raw_attach_end(&a);
    if (with_attach)
        raw_attach_free(&a);
    if (r == 0)
        r = raw_wait(&st->conn, id, &code);
    int64_t t1 = bench_mono_ns(), real1 = bench_real_ns();
    int d = raw_delete(&st->conn, id);
    int64_t t2 = bench_mono_ns();
    if (r < 0 || d < 0 || code != 0) {
        fprintf(stderr, "bench: lifecycle: bare %s: exit %d\n", name, code);
        if (d < 0)
            raw_delete(&st->conn, id);
        return -1;
    }
    if (timeline(st, name, real0, real1, job) < 0)
        return -1;
    job->ttr = bench_ms(t1 - t0);
    job->life = bench_ms(t2 - t0); /* the delete's answer, by our clock */
    return 0;
}

static int run_cli(lc_state *st, int i, lc_job *job)
{
    char name[160];
    snprintf(name, sizeof(name), "dms-%s-cli-%d-%d", BENCH_EXECUTOR_ID, (int)st->pid, i);
    /* The executor's labels, log driver and stop timeout, so that the engine does the same work. */
    static char executor_label[] = "io.dms.executor=" BENCH_EXECUTOR_ID;
    char *argv[] = {"docker",
                    "run",
                    "--rm",
                    "--name",
                    name,
                    "--label",
                    "io.dms.managed=true",
                    "--label",
                    executor_label,
                    "--label",
                    "io.dms.backend=docker",
                    "--label",
                    "io.dms.role=job",
                    "--log-driver",
                    "local",
                    "--log-opt",
                    "max-size=16m",
                    "--log-opt",
                    "max-file=2",
                    "--stop-timeout",
                    "10",
                    (char *)st->env->image,
                    "true",
                    NULL};
    bench_child_result cr;
    int64_t real0 = bench_real_ns();
    if (bench_run_child(argv, LC_CLI_TIMEOUT_MS, false, &cr) < 0 || cr.status != 0) {
        fprintf(stderr, "bench: lifecycle: docker run %s: status %d%s\n", name, cr.status,
                cr.timed_out ? " (timed out)" : "");
        return -1;
    }
    if (timeline(st, name, real0, real0 + cr.wall_ns, job) < 0)
        return -1;
    job->ttr = job->life = bench_ms(cr.wall_ns); /* --rm: it returns once the container is gone */
    return 0;
}

static void print_row(const char *name, const bench_samples *s)
{
    bench_stats t = bench_stats_of(s);
    printf("  %-34s %4zu %9.1f %9.1f %9.1f %9.1f\n", name, t.n, t.p50, t.p90, t.max, t.mean);
}

static double ratio(const bench_samples *a, const bench_samples *b)
{
    double db = bench_median(b);
    return db > 0 ? bench_median(a) / db : NAN;
}

static void free_state(lc_state *st)
{
    bench_samples *all[] = {&st->exec_ttr, &st->exec_life, &st->raw_ttr,   &st->raw_life,    &st->att_ttr,
                            &st->att_life, &st->cli,       &st->pair_life, &st->pair_ttr_cli};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        bench_samples_free(all[i]);
    for (int p = 0; p < PATH_COUNT; p++)
        for (int g = 0; g < SEG_COUNT; g++)
            bench_samples_free(&st->seg[p][g]);
    for (int p = 0; p < PATH_COUNT; p++)
        bench_samples_free(&st->cpu[p]);
    raw_conn_free(&st->conn);
    free(st->raw_body);
}

int bench_lifecycle(bench_env *env, const char *json_path)
{
    long n = bench_env_long("BENCH_N", LC_DEFAULT_N);
    long warmup = bench_env_long("BENCH_WARMUP", LC_DEFAULT_WARMUP);
    long max_s = bench_env_long("BENCH_MAX_SECONDS", LC_DEFAULT_MAX_SECONDS);
    printf("\n== lifecycle: %ld trivial jobs (true) per path, %ld warm-up rounds dropped, interleaved; image "
           "%s\n",
           n, warmup, env->image);
    json_t *machine_before = bench_machine_json();

    raw_events ev;
    lc_state st = {.env = env, .ev = &ev, .pid = getpid()};
    if (raw_events_start(&ev, NULL) < 0 || raw_conn_init(&st.conn) < 0 ||
        !(st.raw_body = raw_create_body(env->image, NULL, "16m", "2"))) {
        raw_events_stop(&ev);
        free_state(&st);
        json_decref(machine_before);
        return -1;
    }
    int64_t deadline = bench_mono_ns() + max_s * 1000000000LL;
    long rounds = 0;
    bool truncated = false;
    for (long i = 0; i < warmup + n; i++) {
        if (bench_mono_ns() > deadline) {
            truncated = true;
            fprintf(stderr, "bench: lifecycle: time bound of %ld s reached after %ld rounds\n", max_s,
                    rounds);
            break;
        }
        lc_job job[PATH_COUNT];
        memset(job, 0, sizeof(job));
        int bad = 0;
        for (int k = 0; k < PATH_COUNT; k++) {
            int p = (int)((i + k) % PATH_COUNT);
            int64_t cpu0 = bench_cpu_ns();
            int r = p == PATH_EXEC     ? run_exec(&st, (int)i, &job[p])
                    : p == PATH_RAW    ? run_raw(&st, (int)i, false, &job[p])
                    : p == PATH_ATTACH ? run_raw(&st, (int)i, true, &job[p])
                                       : run_cli(&st, (int)i, &job[p]);
            bad += r < 0;
            job[p].cpu = bench_ms(bench_cpu_ns() - cpu0);
        }
        if (bad) {
            if (++st.failures >= LC_MAX_FAILURES)
                break;
            continue;
        }
        if (i < warmup)
            continue;
        rounds++;
        bench_samples_add(&st.exec_ttr, job[PATH_EXEC].ttr);
        bench_samples_add(&st.exec_life, job[PATH_EXEC].life);
        bench_samples_add(&st.raw_ttr, job[PATH_RAW].ttr);
        bench_samples_add(&st.raw_life, job[PATH_RAW].life);
        bench_samples_add(&st.att_ttr, job[PATH_ATTACH].ttr);
        bench_samples_add(&st.att_life, job[PATH_ATTACH].life);
        bench_samples_add(&st.cli, job[PATH_CLI].life);
        bench_samples_add(&st.pair_life, job[PATH_EXEC].life / job[PATH_RAW].life);
        bench_samples_add(&st.pair_ttr_cli, job[PATH_EXEC].ttr / job[PATH_CLI].life);
        for (int p = 0; p < PATH_COUNT; p++)
            for (int g = 0; g < SEG_COUNT; g++)
                if (!isnan(job[p].seg[g]))
                    bench_samples_add(&st.seg[p][g], job[p].seg[g]);
        for (int p = 0; p < PATH_COUNT; p++)
            bench_samples_add(&st.cpu[p], job[p].cpu);
    }
    raw_events_stop(&ev);

    printf("  %-34s %4s %9s %9s %9s %9s\n", "lifecycle (start to removed)", "n", "p50 ms", "p90 ms", "max ms",
           "mean ms");
    print_row("executor run (to destroy event)", &st.exec_life);
    print_row("bare create/start/wait/delete", &st.raw_life);
    print_row("bare, attached before start", &st.att_life);
    print_row("docker run --rm", &st.cli);
    printf("  %-34s\n", "time to result");
    print_row("executor run returns", &st.exec_ttr);
    print_row("bare create+start+wait", &st.raw_ttr);
    print_row("bare+attach, to wait returns", &st.att_ttr);
    print_row("docker run --rm", &st.cli);
    printf("  %-34s %9s %9s %11s %9s\n", "where the time goes (p50 ms)", path_names[PATH_EXEC],
           path_names[PATH_RAW], path_names[PATH_ATTACH], path_names[PATH_CLI]);
    json_t *breakdown = json_object();
    for (int g = 0; g < SEG_COUNT; g++) {
        printf("  %-34s", seg_names[g]);
        for (int p = 0; p < PATH_COUNT; p++) {
            int w = p == PATH_ATTACH ? 12 : 10;
            if (st.seg[p][g].n)
                printf("%*.1f", w, bench_median(&st.seg[p][g]));
            else
                printf("%*s", w, "-");
        }
        printf("\n");
        json_t *row = json_object();
        for (int p = 0; p < PATH_COUNT; p++)
            json_object_set_new(row, path_names[p], bench_stats_json(&st.seg[p][g], "ms", false));
        json_object_set_new(breakdown, seg_names[g], row);
    }
    printf("  %-34s %9.1f %9.1f %11.1f %9.1f\n", "CPU of this process per job",
           bench_median(&st.cpu[PATH_EXEC]), bench_median(&st.cpu[PATH_RAW]),
           bench_median(&st.cpu[PATH_ATTACH]), bench_median(&st.cpu[PATH_CLI]));
    printf("  (events: the engine's create/attach/start/die/destroy; result: run or wait returns, the CLI "
           "exits)\n");
    json_t *cpu = json_object();
    for (int p = 0; p < PATH_COUNT; p++)
        json_object_set_new(cpu, path_names[p], bench_stats_json(&st.cpu[p], "ms", false));
    printf("  ratios of the p50s:\n");
    double life_raw = ratio(&st.exec_life, &st.raw_life), life_cli = ratio(&st.exec_life, &st.cli);
    double ttr_raw = ratio(&st.exec_ttr, &st.raw_ttr), ttr_cli = ratio(&st.exec_ttr, &st.cli);
    double life_att = ratio(&st.exec_life, &st.att_life);
    bool m1 = bench_ratio_line("lifecycle executor/bare", life_raw, "<=", 1.03);
    printf("  %-44s %7.3fx\n", "lifecycle executor/bare+attach", life_att);
    printf("  %-44s %7.3fx\n", "lifecycle executor/CLI", life_cli);
    printf("  %-44s %7.3fx\n", "time-to-result executor/bare", ttr_raw);
    bool m2 = bench_ratio_line("time-to-result executor/CLI", ttr_cli, "<=", 0.85);
    double pair_life = bench_median(&st.pair_life), pair_ttr = bench_median(&st.pair_ttr_cli);
    printf(
        "  (median of per-round ratios: lifecycle executor/bare %.3fx, time-to-result executor/CLI %.3fx)\n",
        pair_life, pair_ttr);
    printf("SUMMARY lifecycle: executor/bare %.3fx (<= 1.03 %s), executor/CLI %.3fx; time-to-result "
           "executor/CLI "
           "%.3fx (<= 0.85 %s), executor/bare %.3fx; n=%ld%s\n",
           life_raw, m1 ? "met" : "MISSED", life_cli, ttr_cli, m2 ? "met" : "MISSED", ttr_raw, rounds,
           truncated ? " (time bound hit)" : "");

    json_t *o =
        json_pack("{s:I,s:I,s:b,s:i,s:s,s:o,s:o}", "n", (json_int_t)rounds, "warmup", (json_int_t)warmup,
                  "truncated", truncated, "failures", st.failures, "image", env->image, "machine_before",
                  machine_before, "machine_after", bench_machine_json());
    json_object_set_new(
        o, "lifecycle_ms",
        json_pack("{s:o,s:o,s:o,s:o}", "executor", bench_stats_json(&st.exec_life, "ms", true), "bare",
                  bench_stats_json(&st.raw_life, "ms", true), "bare_attach",
                  bench_stats_json(&st.att_life, "ms", true), "cli", bench_stats_json(&st.cli, "ms", true)));
    json_object_set_new(o, "time_to_result_ms",
                        json_pack("{s:o,s:o,s:o,s:o}", "executor", bench_stats_json(&st.exec_ttr, "ms", true),
                                  "bare", bench_stats_json(&st.raw_ttr, "ms", true), "bare_attach",
                                  bench_stats_json(&st.att_ttr, "ms", true), "cli",
                                  bench_stats_json(&st.cli, "ms", false)));
    json_object_set_new(o, "ratios",
                        json_pack("{s:o,s:f,s:f,s:f,s:o,s:f,s:f}", "lifecycle_executor_over_bare",
                                  bench_ratio_json(life_raw, "<=", 1.03),
                                  "lifecycle_executor_over_bare_attach", bench_finite(life_att),
                                  "lifecycle_executor_over_cli", bench_finite(life_cli),
                                  "time_to_result_executor_over_bare", bench_finite(ttr_raw),
                                  "time_to_result_executor_over_cli", bench_ratio_json(ttr_cli, "<=", 0.85),
                                  "paired_lifecycle_executor_over_bare", pair_life,
                                  "paired_ttr_executor_over_cli", pair_ttr));
    json_object_set_new(o, "breakdown_ms", breakdown);
    json_object_set_new(o, "process_cpu_ms_per_job", cpu);
    bench_results_put(json_path, "lifecycle", o);
    int rc = st.failures ? -1 : 0;
    free_state(&st);
    return rc;
}
