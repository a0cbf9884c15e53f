/* dmsd.c - the HTTP API of dmsd, the host daemon, measured from outside: a fresh dmsd (own data dir, own
 * executor id) answering keep-alive requests, one connection, then several at once. What it shows is the cost
 * of a request through dmsd (libmicrohttpd, JWT verification, routing, the droid cache): the floor any API
 * call pays on top of the work it asks for. Rows: a request refused for want of a token (401: no JWT work),
 * the same request with a token (200), a droid that does not exist (404 after the JWT and the cache lookup).
 * Then a droid's life through the API (examples/hello-droid from a local git repository): create to running
 * (clone, build, start), restart to running again, an unchanged rebuild (PATCH the same branch: clone, a
 * build from the engine's cache, a zero-downtime swap) to running again, delete (it answers once everything
 * is gone). While the first droid runs: wrk, 64 connections for 10 s, against its status and against the
 * list, dmsd's RSS sampled during the load. Targets (issue 7): >= 20k req/s on status with p99 < 10 ms.
 * Skipped (and said so) when dmsd or dmsctl is not built next to dms-bench; the load rows when wrk is
 * missing. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "raw.h"

#define DD_EXECUTOR_ID        "bench-dmsd"
#define DD_DEFAULT_N          2000
#define DD_DEFAULT_CLIENTS    8
#define DD_START_WAIT_MS      10000
#define DD_STOP_WAIT_MS       10000
#define DD_POLL_MS            20
#define DD_REQUEST_TIMEOUT_MS 10000
#define DD_SECRET_BYTES       24
#define DD_TOKEN_MAX          1024
#define DD_MAX_CLIENTS        64
#define DD_PER_IP_LIMIT       (4 * DD_MAX_CLIENTS)
#define DD_DEFAULT_DROIDS     2
#define DD_DROID_WAIT_MS      120000 /* create or restart to running, bounded */
#define DD_DROID_POLL_MS      20
#define DD_BODY_MAX_BYTES     (1024 * 1024)
#define DD_WRK_CONNECTIONS    64
#define DD_WRK_THREADS        2
#define DD_WRK_SECONDS        10
#define DD_WRK_RSS_SAMPLE_MS  100
#define DD_TARGET_STATUS_RPS  20000.0
#define DD_TARGET_STATUS_P99  10.0 /* ms */

typedef struct dd_server {
    pid_t pid;
    char dir[PATH_MAX];
    char base_url[64];
    char token[DD_TOKEN_MAX];
} dd_server;

/* ---- the daemon ---- */

static int bin_dir(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len <= 0)
        return -1;
    exe[len] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    snprintf(out, n, "%s", exe);
    return 0;
}

static void random_secret(char *out, size_t n)
{
    unsigned char raw[DD_SECRET_BYTES];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw))
        for (size_t i = 0; i < sizeof(raw); i++)
            raw[i] = (unsigned char)(bench_mono_ns() >> (i % 8));
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < sizeof(raw) && 2 * i + 2 < n; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* The end of dmsd's log on stderr, so that a failure says why before the data dir goes. */
static void show_log(const dd_server *s)
{
    char log[PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/dmsd.log", s->dir);
    char *argv[] = {"tail", "-n", "15", log, NULL};
    fprintf(stderr, "bench: dmsd: the end of %s:\n", log);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(2, 1);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

static void server_stop(dd_server *s, bool failed)
{
    if (failed && s->dir[0])
        show_log(s);
    if (s->pid > 0) {
        kill(s->pid, SIGTERM); /* our own child, by pid */
        int64_t deadline = bench_mono_ns() + (int64_t)DD_STOP_WAIT_MS * 1000000;
        int st;
        while (waitpid(s->pid, &st, WNOHANG) == 0) {
            if (bench_mono_ns() > deadline) {
                fprintf(stderr, "bench: dmsd: did not stop within %d ms; killing it\n", DD_STOP_WAIT_MS);
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &st, 0);
                break;
            }
            struct timespec ts = {0, DD_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        s->pid = 0;
    }
    if (s->dir[0])
        nftw(s->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int read_small_file(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t got = fread(out, 1, n - 1, f);
    (void)fclose(f);
    out[got] = '\0';
    while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == '\r'))
        out[--got] = '\0';
    return got > 0 ? 0 : -1;
}

/* The first line of `dmsctl token bench` into out (size bytes); -1 if it printed none. Run without a shell,
 * so no character of the path can matter. */
static int mint_token(const char *dmsctl, char *out, size_t size)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (dup2(fds[1], STDOUT_FILENO) >= 0)
            execl(dmsctl, dmsctl, "token", "bench", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *p = pid > 0 ? fdopen(fds[0], "re") : NULL;
    bool ok = p && fgets(out, (int)size, p);
    if (p)
        (void)fclose(p);
    else
        close(fds[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    return ok ? 0 : -1;
}

static int server_start(dd_server *s, const char *bins, const char *results_dir)
{
    memset(s, 0, sizeof(*s));
    char secret[2 * DD_SECRET_BYTES + 1] = "";
    random_secret(secret, sizeof(secret));
    snprintf(s->dir, sizeof(s->dir), "%s/dmsd-%d", results_dir, (int)getpid());
    char data[PATH_MAX + 8], port_file[PATH_MAX + 8], log[PATH_MAX + 8], plugins[PATH_MAX + 16];
    char dmsd[PATH_MAX + 8], dmsctl[PATH_MAX + 8];
    snprintf(data, sizeof(data), "%s/var", s->dir);
    snprintf(port_file, sizeof(port_file), "%s/port", s->dir);
    snprintf(log, sizeof(log), "%s/dmsd.log", s->dir);
    snprintf(plugins, sizeof(plugins), "%s/../plugins", bins);
    snprintf(dmsd, sizeof(dmsd), "%s/dmsd", bins);
    snprintf(dmsctl, sizeof(dmsctl), "%s/dmsctl", bins);
    if (mkdir(s->dir, 0700) < 0) {
        fprintf(stderr, "bench: dmsd: mkdir %s: %s\n", s->dir, strerror(errno));
        s->dir[0] = '\0';
        return -1;
    }
    /* The token: minted by dmsctl from the same secret, as a user of dmsd would get one. */
    setenv("DMS_JWT_SECRET", secret, 1);
    if (mint_token(dmsctl, s->token, sizeof(s->token)) < 0) {
        fprintf(stderr, "bench: dmsd: %s token failed\n", dmsctl);
        unsetenv("DMS_JWT_SECRET");
        return -1;
    }
    s->token[strcspn(s->token, "\r\n")] = '\0';

    s->pid = fork();
    if (s->pid < 0) {
        unsetenv("DMS_JWT_SECRET");
        return -1;
    }
    if (s->pid == 0) {
        setenv("DMS_DATA_DIR", data, 1);
        setenv("DMS_EXECUTOR_ID", DD_EXECUTOR_ID, 1);
        setenv("DMS_PLUGIN_DIR", plugins, 1);
        setenv("DMS_LOG_LEVEL", "warn", 1);
        /* The repository (make_repo) is beneath s->dir; the data dir is too, and dmsd never reads from it. */
        char root[PATH_MAX];
        if (realpath(s->dir, root))
            setenv("DMS_LOCAL_REPO_ROOTS", root, 1);
        /* Every client of the bench comes from 127.0.0.1: room for wrk's connections and the clients at once
         * (dmsd's default per-address limit is for real clients). */
        char per_ip[16];
        snprintf(per_ip, sizeof(per_ip), "%d", DD_PER_IP_LIMIT);
        setenv("DMS_HTTP_PER_IP_LIMIT", per_ip, 1);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(dmsd, dmsd, "--listen", "127.0.0.1:0", "--port-file", port_file, (char *)NULL);
        _exit(127);
    }
    unsetenv("DMS_JWT_SECRET");
    char port[32];
    int64_t deadline = bench_mono_ns() + (int64_t)DD_START_WAIT_MS * 1000000;
    while (read_small_file(port_file, port, sizeof(port)) < 0) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid || bench_mono_ns() > deadline) {
            fprintf(stderr, "bench: dmsd: did not come up (see %s)\n", log);
            if (waitpid(s->pid, &st, WNOHANG) == s->pid)
                s->pid = 0;
            return -1;
        }
        struct timespec ts = {0, DD_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%s", port);
    return 0;
}

/* ---- requests ---- */

typedef struct dd_client {
    CURL *h;
    struct curl_slist *auth;
} dd_client;

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
    return size * n;
}

/* Options every request of a client has; after curl_easy_reset (which keeps the kept-alive connection). */
static void client_setup(dd_client *c)
{
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)DD_REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, discard);
    if (c->auth)
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->auth);
}

static int client_init(dd_client *c, const dd_server *s, bool with_token)
{
    c->h = curl_easy_init();
    c->auth = NULL;
    if (!c->h)
        return -1;
    if (with_token) {
        char hdr[DD_TOKEN_MAX + 32];
        snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", s->token);
        c->auth = curl_slist_append(NULL, hdr);
    }
    client_setup(c);
    return 0;
}

static void client_free(dd_client *c)
{
    if (c->h)
        curl_easy_cleanup(c->h);
    curl_slist_free_all(c->auth);
}

/* One GET on the kept-alive connection; ms into *ms. 0 when the status is the expected one. */
static int get(dd_client *c, const char *url, long want, double *ms)
{
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    int64_t t0 = bench_mono_ns();
    CURLcode rc = curl_easy_perform(c->h);
    *ms = bench_ms(bench_mono_ns() - t0);
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != want) {
        fprintf(stderr, "bench: dmsd: GET %s: %s, status %ld (expected %ld)\n", url, curl_easy_strerror(rc),
                status, want);
        return -1;
    }
    return 0;
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    dmsu_buf *b = ud;
    dmsu_buf_append(b, data, size * n); /* capped */
    return size * n;
}

/* A request with a JSON body or none; the answer's status and body (caller frees with dmsu_buf_free). */
static int call(dd_client *c, const dd_server *s, const char *method, const char *path, const char *json,
                long *status, dmsu_buf *body)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", s->base_url, path);
    /* From a clean handle each time: a body size left from a POST would turn the next GET into one that
     * announces a body and never sends it. */
    curl_easy_reset(c->h);
    client_setup(c);
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    if (json) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, body);
    CURLcode rc = curl_easy_perform(c->h);
    *status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, status);
    if (rc != CURLE_OK) {
        fprintf(stderr, "bench: dmsd: %s %s: %s\n", method, path, curl_easy_strerror(rc));
        return -1;
    }
    return 0;
}

/* GET path as JSON (new reference) when the status is 200. */
static json_t *get_json(dd_client *c, const dd_server *s, const char *path)
{
    long status = 0;
    dmsu_buf b = {.max = DD_BODY_MAX_BYTES};
    json_t *j = NULL;
    if (call(c, s, "GET", path, NULL, &status, &b) == 0 && status == 200)
        j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    dmsu_buf_free(&b);
    return j;
}

/* How many times the droid has reached `running` (from its events); -1 on error. */
static int runs_of(dd_client *c, const dd_server *s, const char *id)
{
    char path[160];
    snprintf(path, sizeof(path), "/droids/%s/events", id);
    json_t *j = get_json(c, s, path);
    if (!json_is_array(j)) {
        json_decref(j);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        const char *to = json_string_value(json_object_get(json_array_get(j, i), "to"));
        n += to && strcmp(to, "running") == 0;
    }
    json_decref(j);
    return n;
}

/* Polls until the droid has reached running `want` times; 0, or -1 (failed, or not within the bound). */
static int wait_running(dd_client *c, const dd_server *s, const char *id, int want)
{
    int64_t deadline = bench_mono_ns() + (int64_t)DD_DROID_WAIT_MS * 1000000;
    char path[160];
    snprintf(path, sizeof(path), "/droids/%s/status", id);
    while (bench_mono_ns() < deadline) {
        if (runs_of(c, s, id) >= want)
            return 0;
        json_t *st = get_json(c, s, path);
        const char *status = json_string_value(json_object_get(st, "status"));
        if (status && strcmp(status, "failed") == 0) {
            const char *why = json_string_value(json_object_get(st, "reason"));
            fprintf(stderr, "bench: dmsd: droid %s failed: %s\n", id, why ? why : "(no reason)");
            json_decref(st);
            return -1;
        }
        json_decref(st);
        struct timespec ts = {0, DD_DROID_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench: dmsd: droid %s did not reach running within %d ms\n", id, DD_DROID_WAIT_MS);
    return -1;
}

/* Polls until the droid runs release `want` (its reason says "running release N ..."); 0, or -1. */
static int wait_release(dd_client *c, const dd_server *s, const char *id, int want)
{
    int64_t deadline = bench_mono_ns() + (int64_t)DD_DROID_WAIT_MS * 1000000;
    char path[160], running[64];
    snprintf(path, sizeof(path), "/droids/%s/status", id);
    snprintf(running, sizeof(running), "running release %d ", want);
    while (bench_mono_ns() < deadline) {
        json_t *st = get_json(c, s, path);
        const char *status = json_string_value(json_object_get(st, "status"));
        const char *why = json_string_value(json_object_get(st, "reason"));
        bool done =
            status && strcmp(status, "running") == 0 && why && strncmp(why, running, strlen(running)) == 0;
        bool failed = status && strcmp(status, "failed") == 0;
        if (failed)
            fprintf(stderr, "bench: dmsd: droid %s failed: %s\n", id, why ? why : "(no reason)");
        json_decref(st);
        if (done || failed)
            return done ? 0 : -1;
        struct timespec ts = {0, DD_DROID_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "bench: dmsd: droid %s did not run release %d within %d ms\n", id, want,
            DD_DROID_WAIT_MS);
    return -1;
}

/* A bare git repository of examples/hello-droid (one commit on main) at <dir>/hello.git. */
static int make_repo(const dd_server *s, const char *bins, char *repo, size_t n)
{
    char script[4 * PATH_MAX], dir[PATH_MAX];
    /* dmsd wants an absolute path (or a URL) for a repository. */
    if (!realpath(s->dir, dir))
        return -1;
    snprintf(repo, n, "%s/hello.git", dir);
    snprintf(script, sizeof(script),
             "set -e; cp -r '%s/../../examples/hello-droid' '%s/src'; cd '%s/src'; git init -q -b main .; "
             "git add .; git -c user.email=bench@dms -c user.name=bench commit -qm init; "
             "git clone -q --bare . '%s'",
             bins, s->dir, s->dir, repo);
    char *argv[] = {"sh", "-c", script, NULL};
    bench_child_result cr;
    if (bench_run_child(argv, DD_START_WAIT_MS, false, &cr) < 0 || cr.status != 0) {
        fprintf(stderr, "bench: dmsd: cannot make a git repository of examples/hello-droid (status %d)\n",
                cr.status);
        return -1;
    }
    return 0;
}

static void proc_status(pid_t pid, int *threads, long *rss_kb, long *hwm_kb)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    *threads = -1;
    *rss_kb = *hwm_kb = -1;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (!strncmp(line, "Threads:", 8))
            *threads = (int)dmsu_parse_i64_prefix(line + 8, NULL);
        else if (!strncmp(line, "VmRSS:", 6))
            *rss_kb = (long)dmsu_parse_i64_prefix(line + 6, NULL);
        else if (!strncmp(line, "VmHWM:", 6))
            *hwm_kb = (long)dmsu_parse_i64_prefix(line + 6, NULL);
    }
    (void)fclose(f);
}

/* One wrk run: 64 connections against one route for 10 s. */
typedef struct dd_load {
    const char *name;
    double per_s, p50_ms, p99_ms;
    long requests, errors; /* socket errors and non-2xx answers */
    long rss_max_kb;       /* dmsd's RSS, highest sample during the load */
    bool ran;
} dd_load;

typedef struct dd_droids {
    bench_samples deploy, restart, rebuild, remove; /* ms */
    dd_load load[2];                                /* status, list */
    int failures;
} dd_droids;

/* "1.23ms", "456.00us", "2.01s" -> ms; -1 if it is none of those. */
static double wrk_ms(const char *v)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v)
        return -1;
    if (!strncmp(end, "us", 2))
        return x / 1000;
    if (!strncmp(end, "ms", 2))
        return x;
    if (*end == 's')
        return x * 1000;
    return -1;
}

static long proc_rss_kb(pid_t pid)
{
    int t;
    long rss, hwm;
    proc_status(pid, &t, &rss, &hwm);
    return rss;
}

/* The rest of line after its leading blanks and prefix, or NULL if it does not start so. */
static const char *after(const char *line, const char *prefix)
{
    line += strspn(line, " \t");
    size_t n = strlen(prefix);
    return strncmp(line, prefix, n) == 0 ? line + n : NULL;
}

/* wrk's " connect N, read N, write N, timeout N" (after "Socket errors:"), summed; -1 if it is not that. */
static long socket_errors(const char *v)
{
    static const char *const kinds[] = {"connect", ", read", ", write", ", timeout"};
    long sum = 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (!(v = after(v, kinds[i])))
            return -1;
        int64_t n = dmsu_parse_i64_prefix(v, &v);
        if (n < 0)
            return -1;
        sum += (long)n;
    }
    return sum;
}

/* One line of wrk's report into l: rate, latency percentiles, request count and errors. */
static void wrk_line(const char *line, dd_load *l)
{
    const char *v;
    int64_t n;
    if ((v = after(line, "Requests/sec:"))) {
        char *end;
        double x = strtod(v, &end);
        if (end != v) {
            l->per_s = x;
            l->ran = true;
        }
    } else if ((v = after(line, "50%")))
        l->p50_ms = wrk_ms(v);
    else if ((v = after(line, "99%")))
        l->p99_ms = wrk_ms(v);
    else if ((n = dmsu_parse_i64_prefix(line, &v)) >= 0 && after(v, "requests in"))
        l->requests = (long)n;
    else if (((v = after(line, "Socket errors:")) && (n = socket_errors(v)) >= 0) ||
             ((v = after(line, "Non-2xx or 3xx responses:")) && (n = dmsu_parse_i64_prefix(v, NULL)) >= 0))
        l->errors += (long)n;
}

/* wrk against path with the bench's token; dmsd's RSS sampled while it runs. */
static void run_load(const dd_server *s, const char *path, dd_load *l)
{
    char url[256], hdr[DD_TOKEN_MAX + 32], out[PATH_MAX + 32], secs[16], conns[16], threads[16];
    snprintf(url, sizeof(url), "%s%s", s->base_url, path);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", s->token);
    snprintf(out, sizeof(out), "%s/wrk.out", s->dir);
    snprintf(secs, sizeof(secs), "%ds", DD_WRK_SECONDS);
    snprintf(conns, sizeof(conns), "%d", DD_WRK_CONNECTIONS);
    snprintf(threads, sizeof(threads), "%d", DD_WRK_THREADS);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
            _exit(127);
        execlp("wrk", "wrk", "-t", threads, "-c", conns, "-d", secs, "--latency", "-H", hdr, url,
               (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return;
    l->rss_max_kb = -1;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        long rss = proc_rss_kb(s->pid);
        if (rss > l->rss_max_kb)
            l->rss_max_kb = rss;
        usleep(DD_WRK_RSS_SAMPLE_MS * 1000);
    }
    FILE *f = fopen(out, "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f))
        wrk_line(line, l);
    (void)fclose(f);
    if (!l->ran || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr,
                "bench: dmsd: wrk %s did not run (exit %d; is wrk installed? scripts/install-deps --all)\n",
                url, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        l->ran = false;
    }
}

/* One droid: create -> running, restart -> running again, delete. */
static void one_droid(dd_client *c, const dd_server *s, const char *repo, long i, dd_droids *out)
{
    char body[PATH_MAX + 128], id[128] = "", path[200];
    snprintf(body, sizeof(body), "{\"name\":\"bench-hello-%ld\",\"repo\":\"%s\"}", i, repo);
    long status = 0;
    dmsu_buf b = {.max = DD_BODY_MAX_BYTES};
    int64_t t0 = bench_mono_ns();
    if (call(c, s, "POST", "/droids", body, &status, &b) == 0 && status == 201) {
        json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
        const char *v = json_string_value(json_object_get(j, "id"));
        snprintf(id, sizeof(id), "%s", v ? v : "");
        json_decref(j);
    }
    if (!id[0]) {
        fprintf(stderr, "bench: dmsd: create: status %ld: %.*s\n", status, (int)b.len, b.data ? b.data : "");
        dmsu_buf_free(&b);
        out->failures++;
        return;
    }
    dmsu_buf_reset(&b);
    if (wait_running(c, s, id, 1) < 0) {
        out->failures++;
    } else {
        bench_samples_add(&out->deploy, bench_ms(bench_mono_ns() - t0));
        snprintf(path, sizeof(path), "/droids/%s/restart", id);
        int64_t t1 = bench_mono_ns();
        if (call(c, s, "POST", path, "", &status, &b) < 0 || status != 202 || wait_running(c, s, id, 2) < 0) {
            fprintf(stderr, "bench: dmsd: restart %s: status %ld\n", id, status);
            out->failures++;
        } else {
            bench_samples_add(&out->restart, bench_ms(bench_mono_ns() - t1));
        }
        dmsu_buf_reset(&b);
        if (i == 0) {
            /* Under load while it runs: its status (the droid cache) and the list. */
            snprintf(path, sizeof(path), "/droids/%s/status", id);
            out->load[0].name = "GET /droids/:id/status";
            run_load(s, path, &out->load[0]);
            out->load[1].name = "GET /droids";
            run_load(s, "/droids", &out->load[1]);
        }
        /* An unchanged rebuild: naming the same branch asks for its head again. */
        snprintf(path, sizeof(path), "/droids/%s", id);
        int64_t t3 = bench_mono_ns();
        if (call(c, s, "PATCH", path, "{\"branch\":\"main\"}", &status, &b) < 0 || status != 200 ||
            wait_release(c, s, id, 2) < 0) {
            fprintf(stderr, "bench: dmsd: rebuild %s: status %ld\n", id, status);
            out->failures++;
        } else {
            bench_samples_add(&out->rebuild, bench_ms(bench_mono_ns() - t3));
        }
        dmsu_buf_reset(&b);
    }
    /* Deleted even after a failure: it must not outlive the benchmark. */
    snprintf(path, sizeof(path), "/droids/%s", id);
    int64_t t2 = bench_mono_ns();
    if (call(c, s, "DELETE", path, NULL, &status, &b) < 0 || status < 200 || status >= 300) {
        fprintf(stderr, "bench: dmsd: delete %s: status %ld\n", id, status);
        out->failures++;
    } else {
        bench_samples_add(&out->remove, bench_ms(bench_mono_ns() - t2));
    }
    dmsu_buf_free(&b);
}

/* `count` droids one after the other. */
static void run_droids(const dd_server *s, const char *bins, long count, dd_droids *out)
{
    char repo[PATH_MAX + 16];
    dd_client c;
    if (make_repo(s, bins, repo, sizeof(repo)) < 0 || client_init(&c, s, true) < 0) {
        out->failures++;
        return;
    }
    for (long i = 0; i < count && out->failures == 0; i++)
        one_droid(&c, s, repo, i, out);
    client_free(&c);
}

typedef struct dd_row {
    const char *name;
    const char *path;
    bool token;
    long status;
    bench_samples ms;
    double per_s;
    int failures;
} dd_row;

/* n requests in a row on one connection. */
static void run_row(const dd_server *s, dd_row *row, long n)
{
    dd_client c;
    if (client_init(&c, s, row->token) < 0) {
        row->failures++;
        return;
    }
    char url[512];
    snprintf(url, sizeof(url), "%s%s", s->base_url, row->path);
    int64_t t0 = bench_mono_ns();
    for (long i = 0; i < n && row->failures < 3; i++) {
        double ms;
        if (get(&c, url, row->status, &ms) < 0)
            row->failures++;
        else
            bench_samples_add(&row->ms, ms);
    }
    double wall = (double)(bench_mono_ns() - t0) / 1e9;
    row->per_s = wall > 0 ? (double)row->ms.n / wall : 0;
    client_free(&c);
}

typedef struct dd_par {
    const dd_server *s;
    dd_row *row;
    long n;
    bench_samples ms;
    int failures;
    pthread_barrier_t *go;
} dd_par;

static void *par_main(void *arg)
{
    dd_par *p = arg;
    dd_client c;
    int r = client_init(&c, p->s, p->row->token);
    char url[512];
    snprintf(url, sizeof(url), "%s%s", p->s->base_url, p->row->path);
    pthread_barrier_wait(p->go);
    for (long i = 0; r == 0 && i < p->n && p->failures < 3; i++) {
        double ms;
        if (get(&c, url, p->row->status, &ms) < 0)
            p->failures++;
        else
            bench_samples_add(&p->ms, ms);
    }
    if (r == 0)
        client_free(&c);
    else
        p->failures++;
    return NULL;
}

/* k clients at once, n requests in all. */
static void run_parallel(const dd_server *s, dd_row *row, long n, long k)
{
    pthread_t th[DD_MAX_CLIENTS];
    dd_par par[DD_MAX_CLIENTS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)k + 1);
    long started = 0;
    for (; started < k; started++) {
        par[started] = (dd_par){.s = s, .row = row, .n = n / k, .go = &go};
        if (pthread_create(&th[started], NULL, par_main, &par[started]) != 0) {
            fprintf(stderr, "bench: dmsd: could only start %ld of %ld clients\n", started, k);
            exit(1); /* the barrier would never open */
        }
    }
    pthread_barrier_wait(&go);
    int64_t t0 = bench_mono_ns();
    for (long i = 0; i < k; i++) {
        pthread_join(th[i], NULL);
        for (size_t j = 0; j < par[i].ms.n; j++)
            bench_samples_add(&row->ms, par[i].ms.v[j]);
        row->failures += par[i].failures;
        bench_samples_free(&par[i].ms);
    }
    double wall = (double)(bench_mono_ns() - t0) / 1e9;
    row->per_s = wall > 0 ? (double)row->ms.n / wall : 0;
    pthread_barrier_destroy(&go);
}

/* Threads and resident memory of a process, from /proc/<pid>/status. */

int bench_dmsd(bench_env *env, const char *json_path)
{
    char bins[PATH_MAX], dmsd[PATH_MAX + 8], dmsctl[PATH_MAX + 8];
    if (bin_dir(bins, sizeof(bins)) < 0)
        return -1;
    snprintf(dmsd, sizeof(dmsd), "%s/dmsd", bins);
    snprintf(dmsctl, sizeof(dmsctl), "%s/dmsctl", bins);
    if (access(dmsd, X_OK) != 0 || access(dmsctl, X_OK) != 0) {
        printf("\n== dmsd: skipped: %s or %s is not built (make dmsd dmsctl)\n", dmsd, dmsctl);
        printf("SUMMARY dmsd: skipped (not built)\n");
        bench_results_put(json_path, "dmsd", json_pack("{s:b}", "skipped", 1));
        return 0;
    }
    long n = bench_env_long("BENCH_DMSD_N", DD_DEFAULT_N);
    long k = bench_env_long("BENCH_DMSD_CLIENTS", DD_DEFAULT_CLIENTS);
    if (k < 1)
        k = 1;
    if (k > DD_MAX_CLIENTS)
        k = DD_MAX_CLIENTS;
    printf("\n== dmsd: its HTTP API, a fresh dmsd with no droids; %ld keep-alive requests per row\n", n);
    char results_dir[PATH_MAX];
    snprintf(results_dir, sizeof(results_dir), "%s", env->state_dir);
    char *slash = strrchr(results_dir, '/'); /* state_dir is <results>/state */
    if (slash)
        *slash = '\0';
    json_t *machine_before = bench_machine_json();
    dd_server s;
    if (server_start(&s, bins, results_dir) < 0) {
        server_stop(&s, true);
        json_decref(machine_before);
        return -1;
    }
    int threads0;
    long rss0, hwm0;
    proc_status(s.pid, &threads0, &rss0, &hwm0);
    dd_row rows[] = {
        {.name = "GET /droids, no token (401)", .path = "/droids", .token = false, .status = 401},
        {.name = "GET /droids (JWT; empty list)", .path = "/droids", .token = true, .status = 200},
        {.name = "GET /droids/nope/status (JWT; 404)",
         .path = "/droids/nope/status",
         .token = true,
         .status = 404},
        {.name = "GET /droids (JWT), clients at once", .path = "/droids", .token = true, .status = 200},
    };
    const size_t n_rows = sizeof(rows) / sizeof(rows[0]);
    for (size_t i = 0; i + 1 < n_rows; i++)
        run_row(&s, &rows[i], n);
    run_parallel(&s, &rows[n_rows - 1], n, k);
    int threads1;
    long rss1, hwm1;
    proc_status(s.pid, &threads1, &rss1, &hwm1);
    long n_droids = bench_env_long("BENCH_DMSD_DROIDS", DD_DEFAULT_DROIDS);
    dd_droids droids = {0};
    if (n_droids > 0)
        run_droids(&s, bins, n_droids, &droids);

    printf("  %-40s %5s %8s %8s %8s %9s\n", "request", "n", "p50 ms", "p90 ms", "max ms", "req/s");
    json_t *jrows = json_object();
    int failures = 0;
    for (size_t i = 0; i < n_rows; i++) {
        bench_stats t = bench_stats_of(&rows[i].ms);
        char label[64];
        if (i + 1 == n_rows)
            snprintf(label, sizeof(label), "GET /droids (JWT), %ld clients at once", k);
        else
            snprintf(label, sizeof(label), "%s", rows[i].name);
        printf("  %-40s %5zu %8.3f %8.3f %8.3f %9.0f\n", label, t.n, t.p50, t.p90, t.max, rows[i].per_s);
        json_t *j = bench_stats_json(&rows[i].ms, "ms", false);
        json_object_set_new(j, "per_s", json_real(rows[i].per_s));
        json_object_set_new(j, "failures", json_integer(rows[i].failures));
        json_object_set_new(jrows, label, j);
        failures += rows[i].failures;
    }
    printf("  dmsd: %d threads, RSS %.1f MiB before and %d threads, RSS %.1f MiB (peak %.1f) after\n",
           threads0, (double)rss0 / 1024, threads1, (double)rss1 / 1024, (double)hwm1 / 1024);
    if (n_droids > 0) {
        printf("  %-40s %5s %8s %8s %8s\n", "a droid (examples/hello-droid)", "n", "p50 ms", "min ms",
               "max ms");
        const struct {
            const char *name;
            bench_samples *s;
        } drows[] = {{"create -> running (clone, build, start)", &droids.deploy},
                     {"restart -> running again", &droids.restart},
                     {"unchanged rebuild -> running again", &droids.rebuild},
                     {"delete (answers once it is gone)", &droids.remove}};
        for (size_t i = 0; i < sizeof(drows) / sizeof(drows[0]); i++) {
            bench_stats t = bench_stats_of(drows[i].s);
            printf("  %-40s %5zu %8.0f %8.0f %8.0f\n", drows[i].name, t.n, t.p50, t.min, t.max);
        }
        failures += droids.failures;
    }
    json_t *jload = json_object();
    if (n_droids > 0) {
        printf("  %-40s %9s %8s %8s %9s %7s %10s\n", "under load (wrk, 64 connections, 10 s)", "req/s",
               "p50 ms", "p99 ms", "requests", "errors", "RSS max");
        for (size_t i = 0; i < 2; i++) {
            const dd_load *l = &droids.load[i];
            if (!l->ran)
                continue;
            printf("  %-40s %9.0f %8.3f %8.3f %9ld %7ld %6.1f MiB\n", l->name, l->per_s, l->p50_ms, l->p99_ms,
                   l->requests, l->errors, (double)l->rss_max_kb / 1024);
            json_object_set_new(jload, l->name,
                                json_pack("{s:f,s:f,s:f,s:I,s:I,s:I}", "per_s", bench_finite(l->per_s),
                                          "p50_ms", bench_finite(l->p50_ms), "p99_ms",
                                          bench_finite(l->p99_ms), "requests", (json_int_t)l->requests,
                                          "errors", (json_int_t)l->errors, "rss_max_kb",
                                          (json_int_t)l->rss_max_kb));
            failures += l->errors > 0;
        }
    }
    double auth_cost = bench_median(&rows[1].ms) - bench_median(&rows[0].ms);
    printf(
        "SUMMARY dmsd: GET /droids with a JWT p50 %.3f ms, %.0f req/s on one connection, %.0f req/s with %ld "
        "clients; the JWT and route add %.3f ms over a 401; %d failed requests\n",
        bench_median(&rows[1].ms), rows[1].per_s, rows[n_rows - 1].per_s, k, auth_cost, failures);
    if (n_droids > 0)
        printf(
            "SUMMARY dmsd droid: create to running p50 %.0f ms, restart %.0f ms, unchanged rebuild %.0f ms, "
            "delete %.0f ms (n=%zu)\n",
            bench_median(&droids.deploy), bench_median(&droids.restart), bench_median(&droids.rebuild),
            bench_median(&droids.remove), droids.deploy.n);
    const dd_load *st = &droids.load[0];
    if (st->ran)
        printf(
            "SUMMARY dmsd load: status %.0f req/s (>= %.0f %s), p99 %.2f ms (< %.0f %s), list %.0f req/s; "
            "%d MiB RSS at most under load; idle RSS %.1f MiB (<= 8 %s)\n",
            st->per_s, DD_TARGET_STATUS_RPS, st->per_s >= DD_TARGET_STATUS_RPS ? "met" : "MISSED", st->p99_ms,
            DD_TARGET_STATUS_P99, st->p99_ms < DD_TARGET_STATUS_P99 ? "met" : "MISSED", droids.load[1].per_s,
            (int)((st->rss_max_kb > droids.load[1].rss_max_kb ? st->rss_max_kb : droids.load[1].rss_max_kb) /
                  1024),
            (double)rss0 / 1024, rss0 <= 8 * 1024 ? "met" : "MISSED");
    server_stop(&s, failures > 0);

    /* Whatever dmsd left with its label (a droid whose delete failed) is removed here, and counted first. */
    int containers = -1, networks = -1, volumes = -1;
    raw_conn c;
    if (raw_conn_init(&c) == 0) {
        raw_count_labelled_id(&c, DD_EXECUTOR_ID, &containers, &networks, &volumes);
        if (containers || networks || volumes)
            raw_remove_labelled_id(&c, DD_EXECUTOR_ID);
        raw_conn_free(&c);
    }
    /* dmsd's droid network outlives dmsd by design (droids of a restarted dmsd join it again): removed here,
     * not counted. */
    if (networks > 0)
        networks = 0;
    if (containers || networks || volumes) {
        fprintf(stderr,
                "bench: dmsd: %d containers, %d networks, %d volumes labelled io.dms.executor=%s remain\n",
                containers, networks, volumes, DD_EXECUTOR_ID);
        failures++;
    }
    json_t *o = json_pack("{s:I,s:I,s:o,s:{s:i,s:I,s:i,s:I,s:I},s:f,s:i,s:o,s:o}", "n", (json_int_t)n,
                          "clients", (json_int_t)k, "rows", jrows, "dmsd", "threads_before", threads0,
                          "rss_before_kb", (json_int_t)rss0, "threads_after", threads1, "rss_after_kb",
                          (json_int_t)rss1, "hwm_after_kb", (json_int_t)hwm1, "jwt_and_route_over_401_ms",
                          bench_finite(auth_cost), "failures", failures, "machine_before", machine_before,
                          "machine_after", bench_machine_json());
    json_object_set_new(
        o, "droid_ms",
        json_pack("{s:o,s:o,s:o,s:o}", "create_to_running", bench_stats_json(&droids.deploy, "ms", true),
                  "restart_to_running", bench_stats_json(&droids.restart, "ms", true),
                  "unchanged_rebuild_to_running", bench_stats_json(&droids.rebuild, "ms", true), "delete",
                  bench_stats_json(&droids.remove, "ms", true)));
    json_object_set_new(o, "load", jload);
    bench_results_put(json_path, "dmsd", o);
    bench_samples_free(&droids.deploy);
    bench_samples_free(&droids.restart);
    bench_samples_free(&droids.rebuild);
    bench_samples_free(&droids.remove);
    for (size_t i = 0; i < n_rows; i++)
        bench_samples_free(&rows[i].ms);
    return failures ? -1 : 0;
}
