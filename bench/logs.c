/* logs.c - a container writing a known volume of text lines (BENCH_LOG_MIB, half to stdout, half to stderr,
 * at once), captured and read back: live:    the executor's run (from the call to the end of its capture: run
 * returns once every byte is in its files) vs a bare client that attaches before start, demultiplexes and
 * counts until EOF; history: the executor's get_log_stream without follow on the finished job (served from
 * its own files) vs a bare GET /logs demux loop vs `docker logs` with both streams counted (like `| wc -c`).
 * The engine-side history runs on the bare client's container, whose log driver keeps the whole volume (the
 * executor bounds the engine's copy of its own containers to 2 x 16m, so `docker logs` on those returns only
 * the newest part: measured and reported, not compared). Every byte count is checked exactly. */
#include "common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raw.h"

#define LG_DEFAULT_MIB            64
#define LG_DEFAULT_ROUNDS         8
#define LG_DEFAULT_HISTORY_ROUNDS 2
#define LG_LINE_BYTES             64    /* every line, newline included */
#define LG_BASE_TIMEOUT_MS        60000 /* plus LG_TIMEOUT_MS_PER_MIB for each MiB */
#define LG_TIMEOUT_MS_PER_MIB     1000
#define LG_REMOVE_RETRY_MS        2000
#define LG_REMOVE_RETRY_STEP_MS   10
#define LG_CAPTURE_FACTOR         4 /* capture file cap (and the engine's log bound) = volume x this */
#define MIB                       (1024.0 * 1024.0)

typedef struct lg_conf {
    long mib;
    uint64_t per_stream; /* bytes per stream */
    char script[512];
    char script_one[512]; /* the same volume, all of it to stderr */
    long timeout_ms;
    char engine_max_size[32]; /* "256m": the bare container's engine log file bound (2 files) */
} lg_conf;

typedef struct lg_samples {
    bench_samples exec_live, raw_live;           /* MiB/s */
    bench_samples exec_hist, raw_hist, cli_hist; /* ms */
    bench_samples cli_exec_container_bytes; /* what `docker logs` returns for the executor's own container */
    bench_samples cli_exec_container_ms;    /* and how long it took */
    bench_samples exec_live_cpu, raw_live_cpu; /* ms of this process's CPU during the live phase */
    bench_samples exec_hist_cpu, raw_hist_cpu;
    bench_samples exec_die_result, raw_die_eof;
    bench_samples pair_live;
    /* per round: executor / bare live throughput */ /* ms from the engine's die event to the result / the
                                                        EOF */
    int failures;
} lg_samples;

static void make_line(char *out, char tag)
{
    /* 63 visible characters and a newline: "<tag>" then a repeating alphabet. */
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    out[0] = tag;
    for (int i = 1; i < LG_LINE_BYTES - 1; i++)
        out[i] = alphabet[(i - 1) % (int)(sizeof(alphabet) - 1)];
    out[LG_LINE_BYTES - 1] = '\0';
}

static void conf_init(lg_conf *c)
{
    c->mib = bench_env_long("BENCH_LOG_MIB", LG_DEFAULT_MIB);
    if (c->mib < 1)
        c->mib = 1;
    c->per_stream = (uint64_t)c->mib * 1024 * 1024 / 2; /* a multiple of LG_LINE_BYTES: whole lines only */
    char out[LG_LINE_BYTES], err[LG_LINE_BYTES];
    make_line(out, 'O');
    make_line(err, 'E');
    /* `yes` repeats the line; `head -c` cuts the exact volume; both streams are written at the same time. */
    snprintf(c->script, sizeof(c->script), "yes %s | head -c %llu & yes %s | head -c %llu >&2; wait", out,
             (unsigned long long)c->per_stream, err, (unsigned long long)c->per_stream);
    snprintf(c->script_one, sizeof(c->script_one), "yes %s | head -c %llu >&2", err,
             2 * (unsigned long long)c->per_stream);
    c->timeout_ms = LG_BASE_TIMEOUT_MS + c->mib * LG_TIMEOUT_MS_PER_MIB;
    snprintf(c->engine_max_size, sizeof(c->engine_max_size), "%ldm", c->mib * LG_CAPTURE_FACTOR);
}

static bool check_bytes(const char *what, uint64_t out, uint64_t err, uint64_t want)
{
    if (out == want && err == want)
        return true;
    fprintf(stderr, "bench: logs: %s: stdout %llu / stderr %llu bytes, expected %llu each\n", what,
            (unsigned long long)out, (unsigned long long)err, (unsigned long long)want);
    return false;
}

/* ---- the executor ---- */

/* Times a remove right after the result was refused as "still running" (the executor publishes the result
 * before it marks the execution finished); counted and reported, and retried within a bound. */
static atomic_int remove_conflicts;

static void remove_execution(bench_env *env, const char *id)
{
    dms_error err = {0};
    int64_t deadline = bench_mono_ns() + (int64_t)LG_REMOVE_RETRY_MS * 1000000;
    int r;
    while ((r = dms_executor_remove(env->ex, id, &err)) == -DMS_E_CONFLICT && bench_mono_ns() < deadline) {
        atomic_fetch_add(&remove_conflicts, 1);
        struct timespec ts = {0, LG_REMOVE_RETRY_STEP_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (r < 0)
        fprintf(stderr, "bench: logs: remove %s: %s\n", id, err.message);
}

/* ms from the die event of `name` to real_ns (negative: before it); NAN when the event was not seen. */
static double since_die(raw_events *ev, const char *name, int64_t real_ns)
{
    raw_timeline t;
    if (raw_events_wait(ev, name, RAW_DIE, BENCH_DESTROY_WAIT_MS, &t) < 0)
        return NAN;
    return bench_ms(real_ns - t.ts_ns[RAW_DIE]);
}

/* One executor run and its history from the executor's files; engine_history: keep the container and time
 * `docker logs` on it too. */
static int exec_round(bench_env *env, raw_events *ev, const lg_conf *c, int round, bool engine_history,
                      lg_samples *s)
{
    char id[DMS_ID_MAX + 1], name[160];
    snprintf(id, sizeof(id), "lg-%d-%d", (int)getpid(), round);
    snprintf(name, sizeof(name), "dms-%s-%s", BENCH_EXECUTOR_ID, id);
    bench_req r;
    bench_req_init(&r, env, id, c->script);
    r.req.keep_container = engine_history; /* for `docker logs` on it below */
    r.req.limits.log_file_bytes = (int64_t)c->mib * LG_CAPTURE_FACTOR * 1024 * 1024;
    r.req.timeout_ms = c->timeout_ms;
    dms_exec_result res = {0};
    dms_error err = {0};
    int64_t t0 = bench_mono_ns(), cpu0 = bench_cpu_ns();
    int rc = dms_executor_run(env->ex, &r.req, &res, &err);
    int64_t t1 = bench_mono_ns(), cpu1 = bench_cpu_ns(), real1 = bench_real_ns();
    bool ok = rc == 0 && res.outcome == DMS_OUTCOME_EXITED && res.exit_code == 0;
    if (!ok)
        fprintf(stderr, "bench: logs: executor run %s: %s (outcome %s, exit %d)\n", id,
                rc < 0 ? err.message : res.error, dms_outcome_name(res.outcome), res.exit_code);
    dms_exec_result_clear(&res);

    /* History from the executor's own files; this also proves the live capture got every byte. */
    uint64_t bytes[3] = {0, 0, 0};
    dms_log_stream *ls = NULL;
    dms_log_options opts = DMS_LOG_OPTIONS_INIT;
    int64_t h0 = bench_mono_ns();
    if (ok && dms_executor_log_stream(env->ex, id, &opts, &ls, &err) == 0) {
        dms_log_frame f;
        int n;
        while ((n = dms_log_stream_next(ls, c->timeout_ms, &f, &err)) == 1)
            bytes[f.stream == DMS_STREAM_STDERR ? 2 : 1] += f.len;
        if (n < 0) {
            fprintf(stderr, "bench: logs: executor history %s: %s\n", id, err.message);
            ok = false;
        }
    } else if (ok) {
        fprintf(stderr, "bench: logs: executor history %s: %s\n", id, err.message);
        ok = false;
    }
    int64_t h1 = bench_mono_ns(), cpu2 = bench_cpu_ns();
    dms_log_stream_free(ls);
    ok = ok && check_bytes("executor capture", bytes[1], bytes[2], c->per_stream);

    /* `docker logs` on the executor's own container: what the engine kept of it (bounded by the executor). */
    char *argv[] = {"docker", "logs", name, NULL};
    bench_child_result cr;
    if (ok && engine_history && bench_run_child(argv, c->timeout_ms, true, &cr) == 0 && cr.status == 0) {
        bench_samples_add(&s->cli_exec_container_bytes, (double)(cr.out_bytes + cr.err_bytes));
        bench_samples_add(&s->cli_exec_container_ms, bench_ms(cr.wall_ns));
    }
    remove_execution(env, id);
    if (!ok)
        return -1;
    double total = (double)(2 * c->per_stream);
    bench_samples_add(&s->exec_live, total / MIB / ((double)(t1 - t0) / 1e9));
    bench_samples_add(&s->exec_hist, bench_ms(h1 - h0));
    bench_samples_add(&s->exec_live_cpu, bench_ms(cpu1 - cpu0));
    bench_samples_add(&s->exec_die_result, since_die(ev, name, real1));
    bench_samples_add(&s->exec_hist_cpu, bench_ms(cpu2 - cpu1));
    return 0;
}

/* The same volume all on stderr, through the executor: how long from the end (die) to the result when one
 * stream is silent. One run; *die_result ms, *rate MiB/s. */
static int exec_one_stream(bench_env *env, raw_events *ev, const lg_conf *c, double *die_result, double *rate)
{
    char id[DMS_ID_MAX + 1], name[160];
    snprintf(id, sizeof(id), "lg1-%d", (int)getpid());
    snprintf(name, sizeof(name), "dms-%s-%s", BENCH_EXECUTOR_ID, id);
    bench_req r;
    bench_req_init(&r, env, id, c->script_one);
    r.req.limits.log_file_bytes = (int64_t)c->mib * LG_CAPTURE_FACTOR * 1024 * 1024;
    r.req.timeout_ms = c->timeout_ms;
    dms_exec_result res = {0};
    dms_error err = {0};
    int64_t t0 = bench_mono_ns();
    int rc = dms_executor_run(env->ex, &r.req, &res, &err);
    int64_t t1 = bench_mono_ns(), real1 = bench_real_ns();
    bool ok = rc == 0 && res.outcome == DMS_OUTCOME_EXITED && res.exit_code == 0 && res.stdout_len == 0 &&
              res.stderr_truncated;
    if (!ok)
        fprintf(stderr, "bench: logs: executor run %s: %s (outcome %s, exit %d, stdout %zu bytes)\n", id,
                rc < 0 ? err.message : res.error, dms_outcome_name(res.outcome), res.exit_code,
                res.stdout_len);
    dms_exec_result_clear(&res);
    *die_result = since_die(ev, name, real1);
    *rate = (double)(2 * c->per_stream) / MIB / ((double)(t1 - t0) / 1e9);
    remove_execution(env, id);
    return ok ? 0 : -1;
}

/* ---- the bare client ---- */

/* One bare attach run; engine_history: then GET /logs and `docker logs` on its container. */
static int raw_round(bench_env *env, raw_events *ev, const lg_conf *c, int round, bool engine_history,
                     lg_samples *s)
{
    char name[160], id[80];
    snprintf(name, sizeof(name), "dms-%s-lgraw-%d-%d", BENCH_EXECUTOR_ID, (int)getpid(), round);
    char *body = raw_create_body(env->image, c->script, c->engine_max_size, "2");
    raw_conn conn;
    if (!body || raw_conn_init(&conn) < 0) {
        free(body);
        return -1;
    }
    raw_attach a;
    bool ok = false, created = false, attached = false;
    int code = -1;
    int64_t t0 = bench_mono_ns(), cpu0 = bench_cpu_ns();
    if (raw_create(&conn, name, body, id) < 0)
        goto done;
    created = true;
    /* Attach before start, so that the first byte is ours; start once the engine has answered the attach. */
    attached = true;
    if (raw_attach_begin(&a, id, c->timeout_ms) < 0 || raw_start(&conn, id) < 0)
        goto done;
    if (raw_attach_end(&a) < 0 || raw_wait(&conn, id, &code) < 0 || code != 0 ||
        !check_bytes("bare attach", a.demux.bytes[1], a.demux.bytes[2], c->per_stream))
        goto done;
    bench_samples_add(&s->raw_live, (double)(2 * c->per_stream) / MIB / ((double)(a.end_ns - t0) / 1e9));
    bench_samples_add(&s->raw_live_cpu, bench_ms(bench_cpu_ns() - cpu0));
    bench_samples_add(&s->raw_die_eof, since_die(ev, name, bench_real_ns() - (bench_mono_ns() - a.end_ns)));

    if (!engine_history) {
        ok = true;
        goto done;
    }
    /* History through the engine: GET /logs, then the CLI, on the same finished container. */
    raw_demux d = {0};
    char path[200];
    long status = 0;
    snprintf(path, sizeof(path), "/containers/%s/logs?stdout=1&stderr=1", id);
    int64_t h0 = bench_mono_ns(), hc0 = bench_cpu_ns();
    int r = raw_stream(&conn, "GET", path, c->timeout_ms, NULL, raw_demux_sink, &d, &status);
    int64_t h1 = bench_mono_ns(), hc1 = bench_cpu_ns();
    if (r < 0 || status != 200 || !check_bytes("bare GET /logs", d.bytes[1], d.bytes[2], c->per_stream))
        goto done;
    char *argv[] = {"docker", "logs", id, NULL};
    bench_child_result cr;
    if (bench_run_child(argv, c->timeout_ms, true, &cr) < 0 || cr.status != 0 ||
        !check_bytes("docker logs", cr.out_bytes, cr.err_bytes, c->per_stream))
        goto done;
    bench_samples_add(&s->raw_hist, bench_ms(h1 - h0));
    bench_samples_add(&s->raw_hist_cpu, bench_ms(hc1 - hc0));
    bench_samples_add(&s->cli_hist, bench_ms(cr.wall_ns));
    ok = true;
done:
    if (attached)
        raw_attach_free(&a);
    if (created && raw_delete(&conn, id) < 0)
        ok = false;
    raw_conn_free(&conn);
    free(body);
    return ok ? 0 : -1;
}

static void row_rate(const char *name, const bench_samples *s, const bench_samples *cpu)
{
    bench_stats t = bench_stats_of(s);
    printf("  %-40s %3zu %10.1f %10.1f %10.1f %10.0f\n", name, t.n, t.p50, t.min, t.max, bench_median(cpu));
}

static void row_hist(const char *name, const bench_samples *s, double mib, const bench_samples *cpu)
{
    bench_stats t = bench_stats_of(s);
    printf("  %-40s %3zu %10.1f %10.1f %10.1f %10.1f", name, t.n, t.p50, t.min, t.max,
           t.p50 > 0 ? mib / (t.p50 / 1000.0) : 0);
    if (cpu)
        printf(" %10.0f", bench_median(cpu));
    printf("\n");
}

int bench_logs(bench_env *env, const char *json_path)
{
    lg_conf c;
    conf_init(&c);
    long rounds = bench_env_long("BENCH_LOG_ROUNDS", LG_DEFAULT_ROUNDS);
    long hist_rounds = bench_env_long("BENCH_LOG_HISTORY_ROUNDS", LG_DEFAULT_HISTORY_ROUNDS);
    printf("\n== logs: %ld MiB of %d-byte lines (%llu bytes to stdout and to stderr at once); %ld live "
           "rounds in "
           "alternating order, the engine's history in the first %ld\n",
           c.mib, LG_LINE_BYTES, (unsigned long long)c.per_stream, rounds, hist_rounds);
    json_t *machine_before = bench_machine_json();
    lg_samples s = {0};
    raw_events ev;
    if (raw_events_start(&ev, NULL) < 0) {
        json_decref(machine_before);
        return -1;
    }
    /* BENCH_LOG_ONLY=executor|bare runs one side alone (to profile it); the ratios mean nothing then. */
    const char *only = bench_env_str("BENCH_LOG_ONLY", "");
    for (long i = 0; i < rounds; i++) {
        bool exec_first = i % 2 == 0;
        size_t ne = s.exec_live.n, nr = s.raw_live.n;
        for (int k = 0; k < 2; k++) {
            bool exec = (k == 0) == exec_first;
            if (*only && strcmp(only, exec ? "executor" : "bare") != 0)
                continue;
            bool hist = i < hist_rounds;
            int r =
                exec ? exec_round(env, &ev, &c, (int)i, hist, &s) : raw_round(env, &ev, &c, (int)i, hist, &s);
            if (r < 0)
                s.failures++;
        }
        /* Both sides of this round ran back to back: their ratio is the least disturbed by drift. */
        if (s.exec_live.n == ne + 1 && s.raw_live.n == nr + 1)
            bench_samples_add(&s.pair_live, s.exec_live.v[ne] / s.raw_live.v[nr]);
    }
    double one_die = NAN, one_rate = NAN;
    if (!*only && exec_one_stream(env, &ev, &c, &one_die, &one_rate) < 0)
        s.failures++;
    raw_events_stop(&ev);
    double mib = (double)c.mib;
    printf("  %-40s %3s %10s %10s %10s %10s\n", "live capture (call to end of capture)", "n", "p50 MiB/s",
           "min", "max", "CPU ms");
    row_rate("executor run", &s.exec_live, &s.exec_live_cpu);
    row_rate("bare attach-before-start + demux", &s.raw_live, &s.raw_live_cpu);
    printf("  %-40s %3s %10s %10s %10s %10s %10s\n", "history (finished job, all of it)", "n", "p50 ms",
           "min", "max", "MiB/s@p50", "CPU ms");
    row_hist("executor get_log_stream (no follow)", &s.exec_hist, mib, &s.exec_hist_cpu);
    row_hist("bare GET /logs + demux", &s.raw_hist, mib, &s.raw_hist_cpu);
    row_hist("docker logs (both streams counted)", &s.cli_hist, mib, NULL);
    double kept = bench_median(&s.cli_exec_container_bytes);
    row_hist("docker logs, executor's container (*)", &s.cli_exec_container_ms, kept / MIB, NULL);
    printf("  (CPU ms: this process, the executor's threads or the bare client's, median)\n");
    printf(
        "  the engine's die event to: the executor's result %.1f ms, the bare attach's EOF %.1f ms (p50)\n",
        bench_median(&s.exec_die_result), bench_median(&s.raw_die_eof));
    printf("  the same volume all on stderr, executor (one run): %.1f MiB/s, die event to result %.1f ms\n",
           one_rate, one_die);
    if (atomic_load(&remove_conflicts))
        printf("  note: dms_executor_remove() right after the result said \"still running\" %d times "
               "(retried)\n",
               atomic_load(&remove_conflicts));
    printf("  (*) returns %.1f of %.1f MiB: the executor bounds the engine's copy (16m x 2); the others read "
           "it all\n",
           kept / MIB, mib);
    double live =
        bench_median(&s.raw_live) > 0 ? bench_median(&s.exec_live) / bench_median(&s.raw_live) : NAN;
    double hist_cli =
        bench_median(&s.exec_hist) > 0 ? bench_median(&s.cli_hist) / bench_median(&s.exec_hist) : NAN;
    double hist_raw =
        bench_median(&s.exec_hist) > 0 ? bench_median(&s.raw_hist) / bench_median(&s.exec_hist) : NAN;
    printf("  ratios of the p50s:\n");
    bool m1 = bench_ratio_line("live executor/bare attach (throughput)", live, ">=", 0.95);
    double pair = bench_median(&s.pair_live);
    printf("  %-44s %7.3fx\n", "  (median of the per-round ratios)", pair);
    bool m2 = bench_ratio_line("history speed-up executor vs docker logs", hist_cli, ">=", 10.0);
    printf("  %-44s %7.3fx\n", "history speed-up executor vs bare GET /logs", hist_raw);
    printf("SUMMARY logs: live executor/bare %.3fx (>= 0.95 %s); history %.1fx faster than docker logs (>= "
           "10 %s), "
           "%.1fx faster than bare GET /logs; %ld MiB, %zu rounds, byte counts %s\n",
           live, m1 ? "met" : "MISSED", hist_cli, m2 ? "met" : "MISSED", hist_raw, c.mib, s.exec_live.n,
           s.failures ? "FAILED" : "exact");

    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:i,s:s,s:o,s:o}", "mib", (json_int_t)c.mib, "bytes_per_stream",
                          (json_int_t)c.per_stream, "rounds", (json_int_t)rounds, "history_rounds",
                          (json_int_t)hist_rounds, "failures", s.failures, "script", c.script,
                          "machine_before", machine_before, "machine_after", bench_machine_json());
    json_object_set_new(o, "live_mib_per_s",
                        json_pack("{s:o,s:o}", "executor", bench_stats_json(&s.exec_live, "MiB/s", true),
                                  "bare_attach", bench_stats_json(&s.raw_live, "MiB/s", true)));
    json_object_set_new(o, "history_ms",
                        json_pack("{s:o,s:o,s:o}", "executor", bench_stats_json(&s.exec_hist, "ms", true),
                                  "bare_logs", bench_stats_json(&s.raw_hist, "ms", true), "docker_logs",
                                  bench_stats_json(&s.cli_hist, "ms", true)));
    json_object_set_new(o, "docker_logs_on_executor_container",
                        json_pack("{s:f,s:o}", "bytes", bench_finite(kept), "ms",
                                  bench_stats_json(&s.cli_exec_container_ms, "ms", true)));
    json_object_set_new(o, "die_to_end_ms",
                        json_pack("{s:o,s:o}", "executor_result",
                                  bench_stats_json(&s.exec_die_result, "ms", true), "bare_attach_eof",
                                  bench_stats_json(&s.raw_die_eof, "ms", true)));
    json_object_set_new(o, "remove_conflicts_after_result", json_integer(atomic_load(&remove_conflicts)));
    json_object_set_new(o, "executor_stderr_only",
                        json_pack("{s:f,s:f}", "mib_per_s", bench_finite(one_rate), "die_to_result_ms",
                                  bench_finite(one_die)));
    json_object_set_new(o, "process_cpu_ms",
                        json_pack("{s:o,s:o,s:o,s:o}", "executor_live",
                                  bench_stats_json(&s.exec_live_cpu, "ms", false), "bare_live",
                                  bench_stats_json(&s.raw_live_cpu, "ms", false), "executor_history",
                                  bench_stats_json(&s.exec_hist_cpu, "ms", false), "bare_history",
                                  bench_stats_json(&s.raw_hist_cpu, "ms", false)));
    json_object_set_new(o, "ratios",
                        json_pack("{s:o,s:f,s:o,s:f}", "live_executor_over_bare",
                                  bench_ratio_json(live, ">=", 0.95), "live_executor_over_bare_paired_median",
                                  bench_finite(pair), "history_docker_logs_over_executor",
                                  bench_ratio_json(hist_cli, ">=", 10.0), "history_bare_over_executor",
                                  bench_finite(hist_raw)));
    bench_results_put(json_path, "logs", o);
    bench_samples *all[] = {&s.exec_live,
                            &s.raw_live,
                            &s.exec_hist,
                            &s.raw_hist,
                            &s.cli_hist,
                            &s.cli_exec_container_bytes,
                            &s.exec_live_cpu,
                            &s.raw_live_cpu,
                            &s.exec_hist_cpu,
                            &s.raw_hist_cpu,
                            &s.exec_die_result,
                            &s.raw_die_eof,
                            &s.cli_exec_container_ms,
                            &s.pair_live};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        bench_samples_free(all[i]);
    return s.failures ? -1 : 0;
}
