/* common.c - clocks, statistics, settings, the executor under test, child processes, /proc sampling and the
 * results file. */
#include "common.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "raw.h"

#define CHILD_POLL_MS    20
#define CHILD_READ_BYTES (64 * 1024)
#define PROC_LINE_MAX    256

/* ---- clocks ---- */

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t bench_mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t bench_real_ns(void)
{
    return clock_ns(CLOCK_REALTIME);
}

int64_t bench_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

pid_t bench_gettid(void)
{
    return (pid_t)syscall(SYS_gettid);
}

double bench_finite(double x)
{
    return isfinite(x) ? x : 0;
}

/* ---- settings ---- */

long bench_env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 0) {
        fprintf(stderr, "bench: %s=%s is not a non-negative number; using %ld\n", name, v, def);
        return def;
    }
    return n;
}

const char *bench_env_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

size_t bench_parse_list(const char *s, long *out, size_t max)
{
    size_t n = 0;
    while (s && *s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0)
            break;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',')
            break;
    }
    return n;
}

/* ---- samples ---- */

void bench_samples_add(bench_samples *s, double v)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        double *nv = realloc(s->v, cap * sizeof(*nv));
        if (!nv)
            return; /* a lost sample under OOM; n stays honest */
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = v;
}

void bench_samples_free(bench_samples *s)
{
    free(s->v);
    memset(s, 0, sizeof(*s));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least p% of the samples at or below it. */
static double rank(const double *sorted, size_t n, double p)
{
    size_t r = (size_t)ceil(p / 100.0 * (double)n);
    if (r < 1)
        r = 1;
    return sorted[r - 1];
}

bench_stats bench_stats_of(const bench_samples *s)
{
    bench_stats st = {0};
    if (!s->n)
        return st;
    double *v = malloc(s->n * sizeof(*v));
    if (!v)
        return st;
    memcpy(v, s->v, s->n * sizeof(*v));
    qsort(v, s->n, sizeof(*v), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < s->n; i++)
        sum += v[i];
    st.n = s->n;
    st.min = v[0];
    st.p50 = rank(v, s->n, 50);
    st.p90 = rank(v, s->n, 90);
    st.max = v[s->n - 1];
    st.mean = sum / (double)s->n;
    free(v);
    return st;
}

double bench_median(const bench_samples *s)
{
    return bench_stats_of(s).p50;
}

json_t *bench_stats_json(const bench_samples *s, const char *unit, bool raw)
{
    bench_stats st = bench_stats_of(s);
    json_t *o = json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:s}", "n", (json_int_t)st.n, "min", st.min, "p50",
                          st.p50, "p90", st.p90, "max", st.max, "mean", st.mean, "unit", unit);
    if (o && raw) {
        json_t *a = json_array();
        for (size_t i = 0; i < s->n; i++)
            json_array_append_new(a, json_real(s->v[i]));
        json_object_set_new(o, "samples", a);
    }
    return o;
}

/* ---- output ---- */

static bool ratio_met(double ratio, const char *op, double target)
{
    if (!isfinite(ratio))
        return false;
    return strcmp(op, "<=") == 0 ? ratio <= target : ratio >= target;
}

bool bench_ratio_line(const char *name, double ratio, const char *op, double target)
{
    bool met = ratio_met(ratio, op, target);
    printf("  %-44s %7.3fx  (target %s %.2fx): %s\n", name, ratio, op, target, met ? "met" : "MISSED");
    return met;
}

json_t *bench_ratio_json(double ratio, const char *op, double target)
{
    return json_pack("{s:f,s:s,s:f,s:b}", "ratio", isfinite(ratio) ? ratio : 0.0, "op", op, "target", target,
                     "met", ratio_met(ratio, op, target));
}

json_t *bench_machine_json(void)
{
    double load[3] = {0, 0, 0};
    if (getloadavg(load, 3) < 0)
        load[0] = load[1] = load[2] = -1;
    raw_conn c;
    int foreign = -1;
    if (raw_conn_init(&c) == 0) {
        foreign = raw_count_foreign_running(&c);
        raw_conn_free(&c);
    }
    return json_pack("{s:I,s:[f,f,f],s:i,s:i}", "time_ns", (json_int_t)bench_real_ns(), "loadavg", load[0],
                     load[1], load[2], "foreign_running_containers", foreign, "cpus",
                     (int)sysconf(_SC_NPROCESSORS_ONLN));
}

int bench_results_put(const char *path, const char *key, json_t *value)
{
    if (!path) {
        json_decref(value);
        return 0;
    }
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!json_is_object(root)) {
        json_decref(root);
        root = json_object();
    }
    json_object_set_new(root, key, value);
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    int r = json_dump_file(root, tmp, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (r == 0 && rename(tmp, path) == 0)
        return 0;
    fprintf(stderr, "bench: cannot write %s: %s\n", path, strerror(errno));
    unlink(tmp);
    return -1;
}

/* ---- the executor under test ---- */

static void bench_log(void *ctx, dms_log_level level, const char *msg)
{
    bench_env *env = ctx;
    if (level <= DMS_LOG_WARN)
        atomic_fetch_add(&env->log_warnings, 1);
    dms_log_stderr(NULL, level, msg);
}

static int report_leftovers(const char *when)
{
    raw_conn c;
    int containers = -1, networks = -1, volumes = -1;
    if (raw_conn_init(&c) < 0)
        return -1;
    int r = raw_count_labelled(&c, &containers, &networks, &volumes);
    raw_conn_free(&c);
    if (r < 0)
        return -1;
    if (containers || networks || volumes) {
        fprintf(stderr,
                "bench: %s: %d containers, %d networks, %d volumes labelled io.dms.executor=%s remain\n",
                when, containers, networks, volumes, BENCH_EXECUTOR_ID);
        return -1;
    }
    return 0;
}

int bench_env_open(bench_env *env, const char *results_dir)
{
    memset(env, 0, sizeof(*env));
    atomic_init(&env->log_warnings, 0);
    env->image = bench_env_str("BENCH_IMAGE", BENCH_DEFAULT_IMAGE);
    snprintf(env->state_dir, sizeof(env->state_dir), "%s/state", results_dir);
    if (mkdir(results_dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "bench: mkdir %s: %s\n", results_dir, strerror(errno));
        return -1;
    }
    /* Every dms-bench uses the executor id "bench" and this state dir, and cleans both up when it opens and
     * closes: a second run at once would remove the first one's containers under it. */
    char lock[sizeof(env->state_dir)];
    snprintf(lock, sizeof(lock), "%s/.bench.lock", results_dir);
    env->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (env->lock_fd < 0 || flock(env->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(stderr, "bench: %s: %s\n", lock,
                errno == EWOULDBLOCK ? "another dms-bench is running here (runs at once would remove each "
                                       "other's containers): wait for it"
                                     : strerror(errno));
        if (env->lock_fd >= 0)
            close(env->lock_fd);
        env->lock_fd = -1;
        return -1;
    }
    dms_error err = {0};
    if (dms_registry_open(&env->reg, NULL, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.message);
        bench_env_close(env);
        return -1;
    }
    dms_executor_config cfg = {.state_dir = env->state_dir, .log = bench_log, .log_ctx = env};
    if (dms_executor_open(&env->ex, env->reg, "docker", BENCH_EXECUTOR_ID, &cfg, &err) < 0 ||
        !dms_executor_is_installed(env->ex, &err)) {
        fprintf(stderr, "bench: docker executor: %s\n", err.message);
        bench_env_close(env);
        return -1;
    }
    dms_cleanup_report rep = {0};
    if (dms_executor_cleanup(env->ex, &rep, &err) < 0)
        fprintf(stderr, "bench: cleanup before the run: %s\n", err.message);
    if (rep.containers || rep.networks || rep.volumes)
        fprintf(stderr,
                "bench: removed leftovers of an earlier run: %d containers, %d networks, %d volumes\n",
                rep.containers, rep.networks, rep.volumes);
    /* The image must be local: the machine has no registry, and a pull inside a timed loop would be a lie. */
    raw_conn c;
    long status = 0;
    dmsu_buf body = {.max = RAW_BODY_MAX_BYTES};
    char path[512];
    snprintf(path, sizeof(path), "/images/%s/json", env->image);
    int r = raw_conn_init(&c);
    if (r == 0)
        r = raw_call(&c, "GET", path, NULL, RAW_CALL_TIMEOUT_MS, &status, &body);
    raw_conn_free(&c);
    dmsu_buf_free(&body);
    if (r < 0 || status != 200) {
        fprintf(stderr, "bench: image %s is not present (status %ld); run scripts/test-images\n", env->image,
                status);
        bench_env_close(env);
        return -1;
    }
    return 0;
}

int bench_env_close(bench_env *env)
{
    int r = 0;
    if (env->ex) {
        dms_error err = {0};
        dms_cleanup_report rep = {0};
        if (dms_executor_cleanup(env->ex, &rep, &err) < 0) {
            fprintf(stderr, "bench: cleanup: %s\n", err.message);
            r = -1;
        }
        dms_executor_close(env->ex);
        env->ex = NULL;
        if (report_leftovers("after cleanup") < 0)
            r = -1;
        else
            printf("cleanup: zero containers, networks and volumes labelled io.dms.executor=%s left\n",
                   BENCH_EXECUTOR_ID);
        /* Cleanup removed the executions; the directories above them (<state>/docker/bench) are ours. */
        char dir[sizeof(env->state_dir) + 32];
        snprintf(dir, sizeof(dir), "%s/docker/%s", env->state_dir, BENCH_EXECUTOR_ID);
        rmdir(dir);
        snprintf(dir, sizeof(dir), "%s/docker", env->state_dir);
        rmdir(dir);
        rmdir(env->state_dir);
    }
    dms_registry_close(env->reg);
    env->reg = NULL;
    if (env->lock_fd >= 0)
        close(env->lock_fd);
    env->lock_fd = -1;
    return r;
}

void bench_req_init(bench_req *r, const bench_env *env, const char *exec_id, const char *script)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->exec_id, sizeof(r->exec_id), "%s", exec_id);
    if (script) {
        r->cmd[0] = "sh";
        r->cmd[1] = "-c";
        r->cmd[2] = (char *)script;
    } else {
        r->cmd[0] = "true";
    }
    r->req.job_id = r->exec_id;
    r->req.execution_id = r->exec_id;
    r->req.engine.image = env->image;
    r->req.engine.cmd = r->cmd;
    r->req.timeout_ms = BENCH_JOB_TIMEOUT_MS;
}

/* ---- child processes ---- */

int bench_run_child(char *const argv[], int64_t timeout_ms, bool count_output, bench_child_result *out)
{
    memset(out, 0, sizeof(*out));
    out->status = -1;
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    if (count_output && (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0)) {
        fprintf(stderr, "bench: pipe: %s\n", strerror(errno));
        return -1;
    }
    int64_t t0 = bench_mono_ns();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(count_output ? po[1] : devnull, 1);
        dup2(count_output ? pe[1] : devnull, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (count_output) {
        close(po[1]);
        close(pe[1]);
    }
    int64_t deadline = t0 + timeout_ms * 1000000LL;
    int wstatus = 0;
    bool reaped = false;
    static char buf[CHILD_READ_BYTES];
    struct pollfd fds[2] = {{.fd = po[0], .events = POLLIN}, {.fd = pe[0], .events = POLLIN}};
    int open_fds = count_output ? 2 : 0;
    while (!reaped || open_fds > 0) {
        if (!out->timed_out && bench_mono_ns() > deadline) {
            kill(pid, SIGKILL); /* our own child, by pid */
            out->timed_out = true;
        }
        if (open_fds > 0) {
            if (poll(fds, 2, CHILD_POLL_MS) < 0 && errno != EINTR)
                break;
            for (int i = 0; i < 2; i++) {
                if (fds[i].fd < 0 || !fds[i].revents)
                    continue;
                ssize_t n = read(fds[i].fd, buf, sizeof(buf));
                if (n > 0) {
                    if (i == 0)
                        out->out_bytes += (uint64_t)n;
                    else
                        out->err_bytes += (uint64_t)n;
                } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                    close(fds[i].fd);
                    fds[i].fd = -1;
                    open_fds--;
                }
            }
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &wstatus, open_fds > 0 ? WNOHANG : 0);
            if (w == pid)
                reaped = true;
            else if (w < 0 && errno != EINTR)
                break;
            if (!reaped && open_fds == 0) {
                /* Nothing to read: wait in small steps so that the deadline still holds. */
                struct timespec ts = {0, CHILD_POLL_MS * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
    }
    out->wall_ns = bench_mono_ns() - t0;
    for (int i = 0; i < 2; i++)
        if (fds[i].fd >= 0 && count_output)
            close(fds[i].fd);
    if (reaped)
        out->status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    return reaped ? 0 : -1;
}

/* ---- /proc/self sampling ---- */

void bench_sampler_init(bench_sampler *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->stop, false);
}

void bench_sampler_own(bench_sampler *s, pid_t tid)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_own < BENCH_TIDS_MAX)
        s->own[s->n_own++] = tid;
    pthread_mutex_unlock(&s->lock);
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    char line[PROC_LINE_MAX];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    (void)fclose(f);
    return v;
}

static bool is_own(bench_sampler *s, pid_t tid)
{
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_own && !found; i++)
        found = s->own[i] == tid;
    pthread_mutex_unlock(&s->lock);
    return found;
}

static void sample_once(bench_sampler *s)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    int all = 0, foreign = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t pid = dmsu_parse_i64(e->d_name); /* /proc's numbered entries are the processes */
        if (pid <= 0 || pid > INT_MAX)
            continue;
        all++;
        if (!is_own(s, (pid_t)pid))
            foreign++;
    }
    closedir(d);
    long rss = status_kb("VmRSS");
    if (all > s->max_threads)
        s->max_threads = all;
    if (foreign > s->max_foreign_threads)
        s->max_foreign_threads = foreign;
    if (rss > s->max_rss_kb)
        s->max_rss_kb = rss;
    s->samples++;
}

static void *sampler_main(void *arg)
{
    bench_sampler *s = arg;
    bench_sampler_own(s, bench_gettid());
    while (!atomic_load(&s->stop)) {
        sample_once(s);
        struct timespec ts = {0, (long)s->interval_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int bench_sampler_start(bench_sampler *s, int interval_ms)
{
    /* "5" resets the peak RSS (VmHWM) to the current RSS (proc(5)), so each run reports its own peak. */
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "5", 1) != 1)
        fprintf(stderr, "bench: cannot reset VmHWM (%s); the peak covers the whole process\n",
                strerror(errno));
    if (fd >= 0)
        close(fd);
    s->interval_ms = interval_ms;
    s->max_threads = s->max_foreign_threads = 0;
    s->max_rss_kb = 0;
    s->samples = 0;
    s->base_rss_kb = status_kb("VmRSS");
    atomic_store(&s->stop, false);
    if (pthread_create(&s->thread, NULL, sampler_main, s) != 0)
        return -1;
    s->running = true;
    return 0;
}

void bench_sampler_stop(bench_sampler *s)
{
    if (!s->running)
        return;
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    s->running = false;
    sample_once(s); /* the last state counts too */
    s->hwm_kb = status_kb("VmHWM");
}

void bench_sampler_destroy(bench_sampler *s)
{
    bench_sampler_stop(s);
    pthread_mutex_destroy(&s->lock);
}
