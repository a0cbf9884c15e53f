/* bench/common.h - what every benchmark shares: clocks, sample statistics, settings from the environment, the
 * executor under test, child processes (the docker CLI), /proc sampling and the JSON results file.
 * Private to bench/; nothing outside bench/ includes it. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include <dms/executor.h>

#define BENCH_EXECUTOR_ID     "bench" /* every container we create carries io.dms.executor=bench */
#define BENCH_DEFAULT_IMAGE   "dms-test/busybox:latest"
#define BENCH_JOB_TIMEOUT_MS  120000 /* run timeout of every job: no loop can hang on a stuck container */
#define BENCH_DESTROY_WAIT_MS 20000  /* how long we wait for an executor's async removal to land */
#define BENCH_TIDS_MAX        1024

/* ---- clocks ---- */
int64_t bench_mono_ns(void);
int64_t bench_real_ns(void);
/* CPU time (user + system) of the whole process so far: the executor's threads and ours. */
int64_t bench_cpu_ns(void);
static inline double bench_ms(int64_t ns)
{
    return (double)ns / 1e6;
}

/* x, or 0 when it is not finite (JSON has no NaN). */
double bench_finite(double x);

/* ---- settings: BENCH_<NAME> from the environment, else the default ---- */
long bench_env_long(const char *name, long def);
const char *bench_env_str(const char *name, const char *def);
/* A comma-separated list of positive integers ("1,8,32,128") into out (at most max); returns the count. */
size_t bench_parse_list(const char *s, long *out, size_t max);

/* ---- samples ---- */
typedef struct bench_samples {
    double *v; /* milliseconds (or any unit) */
    size_t n, cap;
} bench_samples;

void bench_samples_add(bench_samples *s, double v);
void bench_samples_free(bench_samples *s);

typedef struct bench_stats {
    size_t n;
    double min, p50, p90, max, mean;
} bench_stats;

/* Nearest-rank percentiles of the samples (sorted copy; s is left as it is). All zero for no samples. */
bench_stats bench_stats_of(const bench_samples *s);
double bench_median(const bench_samples *s);
/* {"n", "min", "p50", "p90", "max", "mean", "unit"}; with the raw samples when raw is true. */
json_t *bench_stats_json(const bench_samples *s, const char *unit, bool raw);

/* ---- output ---- */
/* A ratio line for the summary: "name = 1.02x (target <= 1.03): met". Returns whether it is met. */
bool bench_ratio_line(const char *name, double ratio, const char *op, double target);
json_t *bench_ratio_json(double ratio, const char *op, double target);
/* The machine as it was: load averages, running containers that are not ours (other people's tests), time. */
json_t *bench_machine_json(void);

/* Merges {key: value} into the JSON file at path (created if absent), atomically. path NULL: does nothing.
 * Steals value. */
int bench_results_put(const char *path, const char *key, json_t *value);

/* ---- the executor under test ---- */
typedef struct bench_env {
    dms_registry *reg;
    dms_executor *ex;
    char state_dir[4096];
    const char *image;
    atomic_int log_warnings; /* warnings and errors the executor logged during the run */
    int lock_fd;             /* flock on <results>/.bench.lock: one dms-bench at a time (they share the id) */
} bench_env;

/* Opens the docker executor "bench" with its own state dir under results_dir, removing leftovers of an
 * earlier run first (reported). Prints why and returns negative when the engine or the image is missing. */
int bench_env_open(bench_env *env, const char *results_dir);
/* Cleans up everything carrying io.dms.executor=bench and checks through the engine that nothing is left.
 * Returns 0 when zero containers, networks and volumes remain, negative otherwise (printed). */
int bench_env_close(bench_env *env);

/* A request for `sh -c script` (or `true` when script is NULL) with the bench's run timeout. The request
 * points into *r and at script (borrowed): both must outlive its use. */
typedef struct bench_req {
    dms_exec_request req;
    char exec_id[DMS_ID_MAX + 1];
    char *cmd[4];
} bench_req;
void bench_req_init(bench_req *r, const bench_env *env, const char *exec_id, const char *script);

/* ---- child processes (the docker CLI) ---- */
typedef struct bench_child_result {
    int status;     /* exit status, or 128 + signal, or -1 if it could not be run */
    bool timed_out; /* killed (SIGKILL, by pid) after timeout_ms */
    int64_t wall_ns;
    uint64_t out_bytes; /* bytes it wrote to stdout / stderr, when counted */
    uint64_t err_bytes;
} bench_child_result;

/* Runs argv (PATH lookup), bounded by timeout_ms. count_output: its stdout and stderr are read and counted,
 * one count per stream (like `| wc -c`); otherwise they go to /dev/null. */
int bench_run_child(char *const argv[], int64_t timeout_ms, bool count_output, bench_child_result *out);

/* ---- /proc/self sampling: threads and resident memory while something runs ---- */
typedef struct bench_sampler {
    pthread_t thread;
    bool running;
    atomic_bool stop;
    int interval_ms;
    pthread_mutex_t lock;
    pid_t
        own[BENCH_TIDS_MAX]; /* threads the benchmark made; every other task is the executor's (or curl's) */
    size_t n_own;
    /* results (read after bench_sampler_stop) */
    int max_threads;         /* the whole process */
    int max_foreign_threads; /* tasks that are not ours: the executor's threads */
    long max_rss_kb;         /* sampled VmRSS */
    long hwm_kb;             /* VmHWM at stop (reset at start) */
    long base_rss_kb;        /* VmRSS at start */
    int samples;
} bench_sampler;

void bench_sampler_init(bench_sampler *s);
void bench_sampler_own(bench_sampler *s, pid_t tid); /* thread-safe */
/* Resets the process's peak RSS (clear_refs 5) and starts sampling every interval_ms. */
int bench_sampler_start(bench_sampler *s, int interval_ms);
void bench_sampler_stop(bench_sampler *s);
void bench_sampler_destroy(bench_sampler *s);
pid_t bench_gettid(void);

/* ---- the benchmarks ----
 * Each prints its table and summary line, and puts its figures under its name in json_path (may be NULL).
 * 0 when it ran and every byte count checked out; timing never fails a benchmark. */
int bench_lifecycle(bench_env *env, const char *json_path);
int bench_logs(bench_env *env, const char *json_path);
int bench_concurrency(bench_env *env, const char *json_path);
int bench_dmsd(bench_env *env, const char *json_path);

#endif
