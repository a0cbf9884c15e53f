/* concurrency.c - K executions started and waited at once through ONE executor object, vs the bare loop with
 * K threads. Both paths get K ready threads released by one barrier; the executor's K threads each call
 * dms_executor_run(), the bare ones each do create/start/wait/delete on their own connection.
 *
 * What is compared: jobs/s = K / wall, where the wall ends when the last container is gone (the bare loop
 * deletes inline; the executor removes after the result, so its wall ends at the last `destroy` event), and
 * also the wall to the last result. Threads: a sampler lists /proc/self/task every few ms; tasks the
 * benchmark did not make (main, sampler, events watcher, the K callers) are the executor's. Memory: VmHWM of
 * the whole process, reset (clear_refs 5) before each run, so it includes the K callers' stacks: an upper
 * bound for the executor. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "raw.h"

#define CC_DEFAULT_KS         "1,8,32,128"
#define CC_DEFAULT_ROUNDS     2
#define CC_MAX_K              512
#define CC_SAMPLE_MS          10
#define CC_REMOVE_WAIT_MS     120000
#define CC_THREAD_STACK_BYTES (256 * 1024) /* the callers need little; keeps 512 of them cheap */

typedef struct cc_run cc_run;

typedef struct cc_worker {
    cc_run *run;
    int index;
    pthread_t thread;
    double job_ms;  /* its own job: call to result (executor) or create to deleted (bare) */
    int64_t end_ns; /* mono */
    bool ok;
} cc_worker;

struct cc_run {
    bench_env *env;
    bench_sampler *sampler;
    pthread_barrier_t ready; /* every caller has registered its tid */
    pthread_barrier_t go;    /* released at t0 */
    bool executor;           /* else bare */
    long k;
    int round;
    char *raw_body;
    int64_t t0; /* mono, set before the barrier opens */
    cc_worker w[CC_MAX_K];
};

static void exec_job(cc_worker *w)
{
    cc_run *run = w->run;
    char id[DMS_ID_MAX + 1];
    snprintf(id, sizeof(id), "cc-%d-%ld-%d-%d", (int)getpid(), run->k, run->round, w->index);
    bench_req r;
    bench_req_init(&r, run->env, id, NULL);
    dms_exec_result res = {0};
    dms_error err = {0};
    int rc = dms_executor_run(run->env->ex, &r.req, &res, &err);
    w->ok = rc == 0 && res.outcome == DMS_OUTCOME_EXITED && res.exit_code == 0;
    if (!w->ok)
        fprintf(stderr, "bench: concurrency: executor run %s: %s (outcome %s)\n", id,
                rc < 0 ? err.message : res.error, dms_outcome_name(res.outcome));
    dms_exec_result_clear(&res);
}

static void raw_job(cc_worker *w, raw_conn *c)
{
    cc_run *run = w->run;
    char name[160], id[80];
    snprintf(name, sizeof(name), "dms-%s-ccraw-%d-%ld-%d-%d", BENCH_EXECUTOR_ID, (int)getpid(), run->k,
             run->round, w->index);
    int code = -1;
    if (raw_create(c, name, run->raw_body, id) < 0)
        return;
    int r = raw_start(c, id);
    if (r == 0)
        r = raw_wait(c, id, &code);
    int d = raw_delete(c, id);
    w->ok = r == 0 && d == 0 && code == 0;
}

static void *worker_main(void *arg)
{
    cc_worker *w = arg;
    cc_run *run = w->run;
    bench_sampler_own(run->sampler, bench_gettid());
    raw_conn c = {0};
    bool have_conn = !run->executor && raw_conn_init(&c) == 0;
    pthread_barrier_wait(&run->ready);
    pthread_barrier_wait(&run->go);
    int64_t t0 = bench_mono_ns();
    if (run->executor)
        exec_job(w);
    else if (have_conn)
        raw_job(w, &c);
    w->end_ns = bench_mono_ns();
    w->job_ms = bench_ms(w->end_ns - t0);
    if (have_conn)
        raw_conn_free(&c);
    return NULL;
}

typedef struct cc_result {
    bool ok;
    double wall_result_ms;  /* to the last result (executor) / last delete (bare) */
    double wall_removed_ms; /* to the last container gone */
    double jobs_per_s;      /* K / wall_removed */
    bench_samples jobs;     /* per job ms */
    double cpu_ms;          /* this process's CPU over the run: the executor's threads, or the bare clients */
    int exec_threads;       /* max tasks not made by the benchmark */
    int process_threads;
    long hwm_kb, base_rss_kb;
} cc_result;

static int run_once(bench_env *env, raw_events *ev, pid_t ev_tid, long k, int round, bool executor,
                    char *raw_body, cc_result *out)
{
    memset(out, 0, sizeof(*out));
    cc_run *run = calloc(1, sizeof(*run));
    bench_sampler sampler;
    if (!run)
        return -1;
    bench_sampler_init(&sampler);
    bench_sampler_own(&sampler, bench_gettid());
    bench_sampler_own(&sampler, ev_tid);
    run->env = env;
    run->sampler = &sampler;
    run->executor = executor;
    run->k = k;
    run->round = round;
    run->raw_body = raw_body;
    pthread_barrier_init(&run->ready, NULL, (unsigned)k + 1);
    pthread_barrier_init(&run->go, NULL, (unsigned)k + 1);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, CC_THREAD_STACK_BYTES);
    long started = 0;
    for (; started < k; started++) {
        run->w[started].run = run;
        run->w[started].index = (int)started;
        if (pthread_create(&run->w[started].thread, &attr, worker_main, &run->w[started]) != 0)
            break;
    }
    pthread_attr_destroy(&attr);
    if (started < k) {
        /* Cannot happen on a sane machine; the barrier would never open, so say so and stop here. */
        fprintf(stderr, "bench: concurrency: could only start %ld of %ld threads\n", started, k);
        exit(1);
    }
    /* Every caller registers its tid before `ready`: the sampler never mistakes one for the executor's. */
    pthread_barrier_wait(&run->ready);
    bench_sampler_start(&sampler, CC_SAMPLE_MS);
    uint64_t destroyed0 = raw_events_destroyed(ev);
    int64_t real0 = bench_real_ns(), cpu0 = bench_cpu_ns();
    run->t0 = bench_mono_ns();
    pthread_barrier_wait(&run->go);
    int64_t last_end = run->t0;
    bool ok = true;
    for (long i = 0; i < k; i++) {
        pthread_join(run->w[i].thread, NULL);
        ok = ok && run->w[i].ok;
        if (run->w[i].end_ns > last_end)
            last_end = run->w[i].end_ns;
        bench_samples_add(&out->jobs, run->w[i].job_ms);
    }
    out->wall_result_ms = bench_ms(last_end - run->t0);
    int64_t last_destroy = 0;
    if (raw_events_wait_destroyed(ev, destroyed0 + (uint64_t)k, CC_REMOVE_WAIT_MS, &last_destroy) < 0) {
        fprintf(stderr, "bench: concurrency: not every container was removed within %d ms\n",
                CC_REMOVE_WAIT_MS);
        ok = false;
    }
    /* The bare loop's delete returns after the removal; the executor's lands later: its destroy event. */
    out->wall_removed_ms = executor ? bench_ms(last_destroy - real0) : out->wall_result_ms;
    bench_sampler_stop(&sampler);
    out->cpu_ms = bench_ms(bench_cpu_ns() - cpu0);
    out->jobs_per_s = out->wall_removed_ms > 0 ? (double)k / (out->wall_removed_ms / 1000.0) : 0;
    out->exec_threads = sampler.max_foreign_threads;
    out->process_threads = sampler.max_threads;
    out->hwm_kb = sampler.hwm_kb;
    out->base_rss_kb = sampler.base_rss_kb;
    out->ok = ok;
    bench_sampler_destroy(&sampler);
    pthread_barrier_destroy(&run->ready);
    pthread_barrier_destroy(&run->go);
    free(run);
    return ok ? 0 : -1;
}

static json_t *result_json(const cc_result *r)
{
    return json_pack("{s:b,s:f,s:f,s:f,s:f,s:o,s:i,s:i,s:I,s:I}", "ok", r->ok, "wall_result_ms",
                     r->wall_result_ms, "wall_removed_ms", r->wall_removed_ms, "jobs_per_s", r->jobs_per_s,
                     "process_cpu_ms", r->cpu_ms, "job_ms", bench_stats_json(&r->jobs, "ms", false),
                     "executor_threads", r->exec_threads, "process_threads", r->process_threads, "vm_hwm_kb",
                     (json_int_t)r->hwm_kb, "rss_before_kb", (json_int_t)r->base_rss_kb);
}

static void print_result(long k, const char *path, const cc_result *r)
{
    bench_stats j = bench_stats_of(&r->jobs);
    printf("  %4ld %-9s %9.0f %9.0f %8.2f %8.0f %8.0f %8.0f %7.0f %5d %7d %8.1f%s\n", k, path,
           r->wall_result_ms, r->wall_removed_ms, r->jobs_per_s, j.p50, j.p90, j.max, r->cpu_ms,
           r->exec_threads, r->process_threads, (double)r->hwm_kb / 1024.0, r->ok ? "" : "  FAILED");
}

int bench_concurrency(bench_env *env, const char *json_path)
{
    long ks[16];
    size_t nk = bench_parse_list(bench_env_str("BENCH_CONC_K", CC_DEFAULT_KS), ks, 16);
    long rounds = bench_env_long("BENCH_CONC_ROUNDS", CC_DEFAULT_ROUNDS);
    for (size_t i = 0; i < nk; i++)
        if (ks[i] > CC_MAX_K)
            ks[i] = CC_MAX_K;
    printf("\n== concurrency: K executions at once through one executor vs the bare loop with K threads; %ld "
           "rounds "
           "per K, alternating order\n",
           rounds);
    printf("  (result: last result or delete; gone: last container removed; jobs/s = K / gone; CPU: this "
           "process;\n"
           "   exthr: threads that are not the benchmark's (the executor's); threads, HWM: the whole "
           "process)\n");
    json_t *machine_before = bench_machine_json();
    raw_events ev;
    pid_t ev_tid = 0;
    char *raw_body = raw_create_body(env->image, NULL, "16m", "2");
    if (!raw_body || raw_events_start(&ev, &ev_tid) < 0) {
        free(raw_body);
        json_decref(machine_before);
        return -1;
    }
    printf("  %4s %-9s %9s %9s %8s %8s %8s %8s %7s %5s %7s %8s\n", "K", "path", "result ms", "gone ms",
           "jobs/s", "job p50", "job p90", "job max", "CPU ms", "exthr", "threads", "HWM MiB");
    json_t *per_k = json_object();
    int failures = 0;
    double ratio32 = NAN;
    int threads128 = -1;
    double hwm128 = NAN;
    for (size_t i = 0; i < nk; i++) {
        long k = ks[i];
        bench_samples ex_rate = {0}, raw_rate = {0};
        int max_threads = 0;
        long max_hwm = 0;
        json_t *runs = json_array();
        for (long r = 0; r < rounds; r++) {
            for (int p = 0; p < 2; p++) {
                bool executor = (p == 0) == (r % 2 == 0);
                cc_result res;
                if (run_once(env, &ev, ev_tid, k, (int)r, executor, raw_body, &res) < 0)
                    failures++;
                print_result(k, executor ? "executor" : "bare", &res);
                json_t *j = result_json(&res);
                json_object_set_new(j, "path", json_string(executor ? "executor" : "bare"));
                json_array_append_new(runs, j);
                if (executor) {
                    bench_samples_add(&ex_rate, res.jobs_per_s);
                    if (res.exec_threads > max_threads)
                        max_threads = res.exec_threads;
                    if (res.hwm_kb > max_hwm)
                        max_hwm = res.hwm_kb;
                } else {
                    bench_samples_add(&raw_rate, res.jobs_per_s);
                }
                bench_samples_free(&res.jobs);
            }
        }
        double ratio = bench_median(&raw_rate) > 0 ? bench_median(&ex_rate) / bench_median(&raw_rate) : NAN;
        printf("  %4ld jobs/s executor/bare (medians) %.3fx; executor threads max %d; peak RSS %.1f MiB\n", k,
               ratio, max_threads, (double)max_hwm / 1024.0);
        char key[16];
        snprintf(key, sizeof(key), "%ld", k);
        json_object_set_new(per_k, key,
                            json_pack("{s:o,s:f,s:f,s:f,s:i,s:I}", "runs", runs, "executor_jobs_per_s_p50",
                                      bench_median(&ex_rate), "bare_jobs_per_s_p50", bench_median(&raw_rate),
                                      "jobs_per_s_executor_over_bare", bench_finite(ratio),
                                      "executor_threads_max", max_threads, "vm_hwm_kb_max",
                                      (json_int_t)max_hwm));
        if (k == 32)
            ratio32 = ratio;
        if (k == 128) {
            threads128 = max_threads;
            hwm128 = (double)max_hwm / 1024.0;
        }
        bench_samples_free(&ex_rate);
        bench_samples_free(&raw_rate);
    }
    raw_events_stop(&ev);
    free(raw_body);

    /* A target whose K was not in BENCH_CONC_K is "not run", not missed. */
    bool ran32 = isfinite(ratio32), ran128 = threads128 >= 0;
    printf("  targets:\n");
    bool m1 = ran32 && bench_ratio_line("jobs/s executor/bare at K=32", ratio32, ">=", 0.95);
    bool m2 = ran128 && threads128 <= 4;
    bool m3 = ran128 && isfinite(hwm128) && hwm128 <= 64.0;
    if (!ran32)
        printf("  %-44s not run (K=32 is not in BENCH_CONC_K)\n", "jobs/s executor/bare at K=32");
    if (ran128) {
        printf("  %-44s %7d   (target <= 4): %s\n", "executor threads at K=128", threads128,
               m2 ? "met" : "MISSED");
        printf("  %-44s %7.1f   (target <= 64 MiB): %s\n", "peak RSS at K=128 (whole process, MiB)", hwm128,
               m3 ? "met" : "MISSED");
    } else {
        printf("  %-44s not run (K=128 is not in BENCH_CONC_K)\n", "threads and RSS at K=128");
    }
    printf("SUMMARY concurrency: jobs/s executor/bare at K=32 %.3fx (>= 0.95 %s); K=128: %d executor threads "
           "(<= 4 "
           "%s), peak RSS %.1f MiB (<= 64 %s); %d failed runs\n",
           ratio32,
           !ran32 ? "not run"
           : m1   ? "met"
                  : "MISSED",
           threads128,
           !ran128 ? "not run"
           : m2    ? "met"
                   : "MISSED",
           hwm128,
           !ran128 ? "not run"
           : m3    ? "met"
                   : "MISSED",
           failures);
    json_t *o = json_pack("{s:o,s:I,s:i,s:o,s:o}", "per_k", per_k, "rounds", (json_int_t)rounds, "failures",
                          failures, "machine_before", machine_before, "machine_after", bench_machine_json());
    json_object_set_new(o, "targets",
                        json_pack("{s:o,s:{s:i,s:b},s:{s:f,s:b}}", "k32_jobs_per_s_executor_over_bare",
                                  bench_ratio_json(ratio32, ">=", 0.95), "k128_executor_threads", "value",
                                  threads128, "met", m2, "k128_peak_rss_mib", "value", bench_finite(hwm128),
                                  "met", m3));
    bench_results_put(json_path, "concurrency", o);
    return failures ? -1 : 0;
}
