/* main.c - dmsd: configuration, startup in order, shutdown in reverse on SIGINT/SIGTERM.
 *
 *   dmsd [--listen ADDR] [--data-dir DIR] [--backend NAME] [--port-file FILE]
 *
 * Environment: DMS_JWT_SECRET (required), DMS_LISTEN (127.0.0.1:8080), DMS_DATA_DIR (./var), DMS_BACKEND
 * (docker), DMS_HTTP_THREADS (2), DMS_KEEP_RELEASES (3), DMS_EXECUTOR_ID (dmsd), DMS_LOG_LEVEL (warn),
 * DMS_PLUGIN_DIR, DMS_JOB_CONCURRENCY (2), DMS_JOB_TIMEOUT_S (1800), DMS_FOLLOW_INTERVAL_S (60),
 * DMS_PROXY_LISTEN (127.0.0.1:8000; off), DMS_CADDY_BIN (caddy), DMS_CADDY_ADMIN; the containers' limits and
 * the users' quotas: DMS_DROID_*, DMS_JOB_MEMORY_MB, DMS_JOB_CPU_MILLIS, DMS_JOB_PIDS, DMS_USER_MAX_DROIDS,
 * DMS_USER_MAX_DISK_MB (parse_confine). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <git2.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <dms/backend.h>

#include "app.h"
#include "build/builder.h"
#include "common.h"
#include "follow/follow.h"
#include "jobs/jobs.h"
#include "router/router.h"
#include "run/runner.h"
#include "snooze/snooze.h"
#include "snooze/tz.h"
#include "view.h"

#define SECRET_MIN_RECOMMENDED 32
#define EXECUTOR_RETRY_S       2 /* without an executor at startup, look for the engine this often */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: dmsd [--listen ADDR] [--data-dir DIR] [--backend NAME] [--port-file FILE]\n"
        "\n"
        "The DMS host daemon: an HTTP/JSON API (JWT bearer auth) that builds droids from git and runs them\n"
        "through an executor backend.\n"
        "\n"
        "  --listen ADDR      host:port to listen on (DMS_LISTEN; default " DMSD_DEFAULT_LISTEN
        "; port 0: any)\n"
        "  --data-dir DIR     state: dms.db, droids/<id>/ (DMS_DATA_DIR; default " DMSD_DEFAULT_DATA_DIR ")\n"
        "  --backend NAME     executor backend (DMS_BACKEND; default " DMSD_DEFAULT_BACKEND ")\n"
        "  --port-file FILE   write the bound port to FILE once listening\n"
        "  --help, --version\n"
        "\n"
        "Environment: DMS_JWT_SECRET (required: HS256 secret for bearer tokens), DMS_HTTP_THREADS (2),\n"
        "DMS_KEEP_RELEASES (3 images kept per droid), DMS_EXECUTOR_ID (dmsd; one per dmsd sharing an "
        "engine),\n"
        "DMS_LOG_LEVEL (error|warn|info|debug), DMS_PLUGIN_DIR, DMS_JOB_CONCURRENCY (2 build jobs at once),\n"
        "DMS_JOB_TIMEOUT_S (1800 per job step), DMS_FOLLOW_INTERVAL_S (60: followed branches are looked "
        "at).\n"
        "Routing: DMS_PROXY_LISTEN (" ROUTER_DEFAULT_LISTEN
        "; port 0: any free one; off: no routing, no snooze),\n"
        "DMS_CADDY_BIN (caddy), DMS_CADDY_ADMIN (Caddy's admin address; default: a unix socket in the data "
        "dir).\n"
        "Containers (a droid may ask for its own limits up to the ceilings): DMS_DROID_MEMORY_MB (%d),\n"
        "DMS_DROID_CPU_MILLIS (%d), DMS_DROID_PIDS (%d), DMS_DROID_MEMORY_MAX_MB (%d), "
        "DMS_DROID_CPU_MAX_MILLIS "
        "(%d),\n"
        "DMS_DROID_PIDS_MAX (%d); every job step: DMS_JOB_MEMORY_MB (%d), DMS_JOB_CPU_MILLIS (%d), "
        "DMS_JOB_PIDS "
        "(%d).\n"
        "Quotas per user: DMS_USER_MAX_DROIDS (%d droids), DMS_USER_MAX_DISK_MB (%d MB of images and "
        "data).\n",
        CONFINE_DROID_MEMORY_MB, CONFINE_DROID_CPU_MILLIS, CONFINE_DROID_PIDS, CONFINE_DROID_MEMORY_MAX_MB,
        CONFINE_DROID_CPU_MAX_MILLIS, CONFINE_DROID_PIDS_MAX, CONFINE_JOB_MEMORY_MB, CONFINE_JOB_CPU_MILLIS,
        CONFINE_JOB_PIDS, CONFINE_USER_MAX_DROIDS, CONFINE_USER_MAX_DISK_MB);
}

static int env_int(const char *name, int def, int min, int max)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    int64_t v = dms_parse_i64(s);
    if (v < min || v > max) {
        fprintf(stderr, "dmsd: %s=%s must be an integer from %d to %d\n", name, s, min, max);
        exit(2);
    }
    return (int)v;
}

static char *env_or(const char *name, const char *def)
{
    const char *s = getenv(name);
    return strdup(s && *s ? s : def);
}

/* The containers' limits and the users' quotas (confine/); a default above its ceiling is refused. */
static void parse_confine(confine_config *c)
{
    confine_config_defaults(c);
    c->droid.memory_mb =
        env_int("DMS_DROID_MEMORY_MB", c->droid.memory_mb, CONFINE_MEMORY_MIN_MB, CONFINE_MEMORY_MAX_MB);
    c->droid.cpu_millis =
        env_int("DMS_DROID_CPU_MILLIS", c->droid.cpu_millis, CONFINE_CPU_MIN_MILLIS, CONFINE_CPU_MAX_MILLIS);
    c->droid.pids = env_int("DMS_DROID_PIDS", c->droid.pids, CONFINE_PIDS_MIN, CONFINE_PIDS_MAX);
    c->droid_max.memory_mb = env_int("DMS_DROID_MEMORY_MAX_MB", c->droid_max.memory_mb, CONFINE_MEMORY_MIN_MB,
                                     CONFINE_MEMORY_MAX_MB);
    c->droid_max.cpu_millis = env_int("DMS_DROID_CPU_MAX_MILLIS", c->droid_max.cpu_millis,
                                      CONFINE_CPU_MIN_MILLIS, CONFINE_CPU_MAX_MILLIS);
    c->droid_max.pids = env_int("DMS_DROID_PIDS_MAX", c->droid_max.pids, CONFINE_PIDS_MIN, CONFINE_PIDS_MAX);
    c->job.memory_mb =
        env_int("DMS_JOB_MEMORY_MB", c->job.memory_mb, CONFINE_MEMORY_MIN_MB, CONFINE_MEMORY_MAX_MB);
    c->job.cpu_millis =
        env_int("DMS_JOB_CPU_MILLIS", c->job.cpu_millis, CONFINE_CPU_MIN_MILLIS, CONFINE_CPU_MAX_MILLIS);
    c->job.pids = env_int("DMS_JOB_PIDS", c->job.pids, CONFINE_PIDS_MIN, CONFINE_PIDS_MAX);
    c->user_max_droids = env_int("DMS_USER_MAX_DROIDS", c->user_max_droids, 1, INT32_MAX);
    c->user_max_disk_mb = env_int("DMS_USER_MAX_DISK_MB", c->user_max_disk_mb, 1, INT32_MAX);
    dms_error err = {0};
    if (confine_config_check(c, &err) < 0) {
        fprintf(stderr, "dmsd: %s\n", err.message);
        exit(2);
    }
}

static int parse_args(int argc, char **argv, dmsd_config *cfg)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"data-dir", required_argument, NULL, 'd'},
        {"backend", required_argument, NULL, 'b'},
        {"port-file", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    cfg->listen = env_or("DMS_LISTEN", DMSD_DEFAULT_LISTEN);
    cfg->data_dir = env_or("DMS_DATA_DIR", DMSD_DEFAULT_DATA_DIR);
    cfg->backend = env_or("DMS_BACKEND", DMSD_DEFAULT_BACKEND);
    cfg->executor_id = env_or("DMS_EXECUTOR_ID", DMSD_EXECUTOR_ID);
    cfg->http_threads = env_int("DMS_HTTP_THREADS", DMSD_DEFAULT_HTTP_THREADS, 1, 64);
    cfg->keep_releases = env_int("DMS_KEEP_RELEASES", DMSD_DEFAULT_KEEP_RELEASES, 1, 100);
    cfg->job_concurrency = env_int("DMS_JOB_CONCURRENCY", JOBS_DEFAULT_CONCURRENCY, 1, JOBS_MAX_CONCURRENCY);
    cfg->job_step_timeout_s = env_int("DMS_JOB_TIMEOUT_S", JOBS_DEFAULT_STEP_TIMEOUT_S, 1, 7 * 24 * 3600);
    cfg->follow_interval_s = env_int("DMS_FOLLOW_INTERVAL_S", FOLLOW_DEFAULT_INTERVAL_S,
                                     FOLLOW_MIN_INTERVAL_S, FOLLOW_MAX_INTERVAL_S);
    cfg->proxy_listen = env_or("DMS_PROXY_LISTEN", ROUTER_DEFAULT_LISTEN);
    cfg->caddy_bin = env_or("DMS_CADDY_BIN", "caddy");
    cfg->caddy_admin = env_or("DMS_CADDY_ADMIN", "");
    parse_confine(&cfg->confine);
    int c;
    while ((c = getopt_long(argc, argv, "l:d:b:p:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'l':
            dmsd_set_str(&cfg->listen, optarg);
            break;
        case 'd':
            dmsd_set_str(&cfg->data_dir, optarg);
            break;
        case 'b':
            dmsd_set_str(&cfg->backend, optarg);
            break;
        case 'p':
            dmsd_set_str(&cfg->port_file, optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("dmsd %s\n", DMS_VERSION);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dmsd: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return -1;
    }
    const char *secret = getenv("DMS_JWT_SECRET");
    if (!secret || !*secret) {
        fprintf(stderr, "dmsd: DMS_JWT_SECRET is not set: every route needs a bearer token signed with it "
                        "(e.g. export DMS_JWT_SECRET=$(head -c 32 /dev/urandom | base64))\n");
        return -1;
    }
    if (strlen(secret) < SECRET_MIN_RECOMMENDED)
        log_warn(
            "component=dmsd note=\"DMS_JWT_SECRET is shorter than %d bytes; use a longer random secret\"",
            SECRET_MIN_RECOMMENDED);
    cfg->jwt_secret = strdup(secret);
    return 0;
}

/* One dmsd per data dir: a second one would run every droid twice. */
static int lock_data_dir(const char *dir, int *fd, dms_error *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/dmsd.lock", dir);
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open %s", p);
    if (flock(*fd, LOCK_EX | LOCK_NB) < 0)
        return dms_error_set(err, DMS_E_CONFLICT, NULL, "another dmsd uses %s (%s is locked)", dir, p);
    return 0;
}

static void executor_log(void *ctx, dms_log_level level, const char *msg)
{
    (void)ctx;
    dms_log_stderr(NULL, level, msg);
}

static void hook_build(void *ud)
{
    app *a = ud;
    builder_kick(a->builder);
}

static void hook_droid(void *ud, const char *id)
{
    app *a = ud;
    runner_kick(a->runner, id);
}

static int open_executor(app *a, dms_error *err)
{
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/exec", a->cfg.data_dir);
    dms_executor_config cfg = {.state_dir = state, .log = executor_log};
    int r = dms_registry_open(&a->reg, NULL, err);
    if (r < 0)
        return r;
    if ((r = dms_executor_open(&a->ex, a->reg, a->cfg.backend, a->cfg.executor_id, &cfg, err)) == 0 &&
        !dms_executor_is_installed(a->ex, err)) {
        dms_executor_close(a->ex);
        a->ex = NULL;
        r = -(err->code ? err->code : DMS_E_UNAVAILABLE);
    }
    if (r < 0) {
        dms_registry_close(a->reg);
        a->reg = NULL;
    }
    return r;
}

/* The wake listener first (the router's wake routes point at it), then the router with Caddy. */
static int start_routing(app *a, dms_error *err)
{
    int r = snooze_open(&a->snooze, a, err);
    if (r < 0)
        return r;
    char state[PATH_MAX];
    snprintf(state, sizeof(state), "%s/caddy", a->cfg.data_dir);
    const char *asked = getenv("DMS_PROXY_LISTEN");
    router_config rc = {.caddy_bin = a->cfg.caddy_bin,
                        .listen = a->cfg.proxy_listen,
                        .listen_default = !asked || !*asked,
                        .admin = a->cfg.caddy_admin,
                        .state_dir = state,
                        .wake_addr = snooze_wake_addr(a->snooze)};
    return router_start(&a->router, a->core, &rc, err);
}

/* Everything that needs the executor: routing and snooze, the runner, builder, jobs and follower, then the
 * view that shows their parts of a droid. Runs before the HTTP server serves, so handlers see them all or
 * none. */
static int start_components(app *a, dms_error *err)
{
    if (strcmp(a->cfg.proxy_listen, "off") != 0 && start_routing(a, err) < 0)
        return -1;
    if (runner_start(&a->runner, a, err) < 0 || builder_start(&a->builder, a, err) < 0 ||
        jobs_start(&a->jobs, a, a->cfg.job_concurrency, (int64_t)a->cfg.job_step_timeout_s * 1000, err) < 0 ||
        follower_start(&a->follower, a, a->cfg.follow_interval_s, err) < 0)
        return -1;
    core_view view = dmsd_view(a);
    core_set_view(a->core, &view);
    if (a->snooze && snooze_start(a->snooze, err) < 0)
        return -1;
    return 0;
}

/* The engine was not there at startup: try again. Once it answers, the API server stops (its listening socket
 * stays open: clients wait in its backlog, nobody is refused), everything that needs the executor starts, and
 * a new server takes the same socket. Returns 1 when it came up, 0 when not yet, < 0 on a failure to start.
 */
static int retry_executor(app *a, http_config *hc, dms_error *err)
{
    dms_error e = {0};
    if (open_executor(a, &e) < 0) {
        /* a->ex_error stays what the handlers read; the log says when the reason changes. */
        static char last[DMS_ERROR_MSG_MAX];
        if (strcmp(e.message, last) != 0 && !strstr(a->ex_error, e.message)) {
            snprintf(last, sizeof(last), "%s", e.message);
            log_warn("component=dmsd op=executor backend=%s error=\"%s\" note=\"retrying every %ds\"",
                     a->cfg.backend, e.message, EXECUTOR_RETRY_S);
        }
        return 0;
    }
    int fd = http_stop_keep_listener(a->http);
    a->http = NULL;
    if (fd < 0)
        return dms_error_set(err, DMS_E_IO, NULL, "cannot take the API's listening socket over");
    int r = start_components(a, err);
    hc->has_listen_fd = true;
    hc->listen_fd = fd;
    if (r == 0 && (r = http_start(&a->http, hc, err)) == 0)
        log_info("component=dmsd op=executor backend=%s note=\"the engine answers: builds and runs start\"",
                 a->cfg.backend);
    if (r < 0)
        close(fd);
    return r < 0 ? r : 1;
}

int main(int argc, char **argv)
{
    app a = {0};
    dms_error err = {0};
    int lock_fd = -1, rc = 1;
    if (parse_args(argc, argv, &a.cfg) < 0)
        return 2;
    /* Signals go to sigwait() below; every thread started from here on inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (dms_global_init(&err) < 0 || dms_mkdir_p(a.cfg.data_dir, false, &err) < 0)
        goto fail;
    char abs[PATH_MAX];
    if (!realpath(a.cfg.data_dir, abs)) {
        dms_error_set_errno(&err, DMS_E_IO, errno, "resolve %s", a.cfg.data_dir);
        goto fail;
    }
    dmsd_set_str(&a.cfg.data_dir, abs);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/droids", a.cfg.data_dir);
    if (dms_mkdir_p(p, false, &err) < 0 || lock_data_dir(a.cfg.data_dir, &lock_fd, &err) < 0)
        goto fail;
    git_libgit2_init();
    snprintf(p, sizeof(p), "%s/dms.db", a.cfg.data_dir);
    if (store_open(&a.st, p, &err) < 0 || core_open(&a.core, a.st, &err) < 0)
        goto fail;
    core_set_user_max_droids(a.core, a.cfg.confine.user_max_droids);
    if (open_executor(&a, &err) < 0) {
        snprintf(a.ex_error, sizeof(a.ex_error), "%s backend: %s", a.cfg.backend, err.message);
        log_error(
            "component=dmsd op=executor backend=%s error=\"%s\" note=\"serving the API without builds or "
            "runs; retrying every %ds\"",
            a.cfg.backend, err.message, EXECUTOR_RETRY_S);
        dms_error_clear(&err);
    }
    if (a.ex && start_components(&a, &err) < 0)
        goto fail;
    core_set_hooks(a.core, &(core_hooks){.build_queued = hook_build, .droid_changed = hook_droid, .ud = &a});
    http_config hc = {.listen = a.cfg.listen,
                      .threads = a.cfg.http_threads,
                      .jwt_secret = a.cfg.jwt_secret,
                      .routes = dmsd_routes,
                      .open_routes = dmsd_open_routes,
                      .app = &a};
    if (http_start(&a.http, &hc, &err) < 0)
        goto fail;
    int port = http_port(a.http);
    if (a.cfg.port_file) {
        char num[16];
        snprintf(num, sizeof(num), "%d\n", port);
        if (dms_write_file_atomic(a.cfg.port_file, num, strlen(num), &err) < 0)
            goto fail;
    }
    char proxy[64] = "off";
    if (a.router)
        snprintf(proxy, sizeof(proxy), "http://<name>.localhost:%d/", router_port(a.router));
    fprintf(stderr, "dmsd %s: listening on %s (port %d), data %s, executor %s, %zu droids, droids at %s\n",
            DMS_VERSION, a.cfg.listen, port, a.cfg.data_dir, a.ex ? a.cfg.backend : "none",
            core_count(a.core), proxy);
    int sig = 0;
    for (;;) {
        /* Without an executor, look for the engine again every few seconds. */
        struct timespec every = {.tv_sec = EXECUTOR_RETRY_S};
        if (a.ex) {
            if (sigwait(&sigs, &sig) == 0)
                break;
        } else if ((sig = sigtimedwait(&sigs, NULL, &every)) > 0) {
            break;
        }
        if (!a.ex && retry_executor(&a, &hc, &err) < 0)
            goto fail;
    }
    log_info("component=dmsd op=stop signal=%d", sig);
    rc = 0;
    goto out;
fail:
    fprintf(stderr, "dmsd: %s\n", err.message[0] ? err.message : "startup failed");
out:
    http_stop(a.http);
    core_set_hooks(a.core ? a.core : NULL, &(core_hooks){0});
    follower_stop(a.follower);
    jobs_stop(a.jobs);
    builder_stop(a.builder);
    runner_stop(a.runner);
    snooze_close(a.snooze);
    router_stop(a.router);
    core_set_view(a.core ? a.core : NULL, NULL);
    dms_executor_close(a.ex);
    dms_registry_close(a.reg);
    core_close(a.core);
    store_close(a.st);
    git_libgit2_shutdown();
    if (lock_fd >= 0)
        close(lock_fd);
    free(a.cfg.listen);
    free(a.cfg.data_dir);
    free(a.cfg.backend);
    free(a.cfg.jwt_secret);
    free(a.cfg.port_file);
    free(a.cfg.executor_id);
    free(a.cfg.proxy_listen);
    free(a.cfg.caddy_bin);
    free(a.cfg.caddy_admin);
    tz_cache_clear();
    return rc;
}
