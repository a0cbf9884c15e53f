/* main.c - dmsd: startup in order, shutdown in reverse on SIGINT/SIGTERM (the settings: settings.c). */
#include <errno.h>
#include <fcntl.h>
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

#include "api/handlers.h"
#include "app.h"
#include "build/builder.h"
#include "build/git.h"
#include "common.h"
#include "datadir.h"
#include "fdlimit.h"
#include "follow/follow.h"
#include "jobs/jobs.h"
#include "retain.h"
#include "router/router.h"
#include "run/runner.h"
#include "settings.h"
#include "snooze/snooze.h"
#include "snooze/tz.h"
#include "view.h"

#define GIT_CHECK_DRAIN_MS 5000 /* at exit, how long running git checks have to end */
#define EXECUTOR_RETRY_S   2    /* without an executor at startup, look for the engine this often */

/* The policy of every repository dmsd reads, and the guarded socket stream; says what is allowed. */
static int start_git(const dmsd_config *cfg, dms_error *err)
{
    gitx_config gc = {.local_roots = cfg->local_repo_roots,
                      .allow_nets = cfg->git_allow_nets,
                      .timeout_s = cfg->git_timeout_s,
                      .data_dir = cfg->data_dir};
    if (gitx_init(&gc, err) < 0)
        return -1;
    log_info("component=git local_repo_roots=\"%s\" allow_nets=\"%s\" timeout_s=%d note=\"%s\"",
             cfg->local_repo_roots, cfg->git_allow_nets, cfg->git_timeout_s,
             *cfg->local_repo_roots ? "local repositories beneath these roots only"
                                    : "no local repositories (DMS_LOCAL_REPO_ROOTS allows some)");
    return 0;
}

/* Descriptors are what a droid costs dmsd most of (fdlimit.h): take all the hard limit allows, and say how
 * many droids that is, so that an operator knows before the 503s begin. */
static void raise_fd_limit(void)
{
    long soft = 0;
    bool raised = false;
    dms_error err = {0};
    if (fdlimit_raise(&soft, &raised, &err) < 0) {
        log_warn("component=dmsd op=fdlimit error=\"%s\"", err.message);
        return;
    }
    log_info("component=dmsd op=fdlimit open_files_limit=%ld raised=%s droids_allowed=%ld per_droid=%d "
             "reserve=%d note=\"RLIMIT_NOFILE; raise the hard limit (LimitNOFILE=, ulimit -Hn) for more\"",
             soft, raised ? "yes" : "no", fdlimit_droids_allowed(soft), FDLIMIT_PER_DROID,
             FDLIMIT_BASE + FDLIMIT_RESERVE);
}

/* One dmsd per data dir: a second one would run every droid twice. */
static int lock_data_dir(const char *dir, int *fd, dms_error *err)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/dmsd.lock", dir);
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, DMS_PRIVATE_FILE_MODE);
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
    int r = snooze_open(&a->snooze, a->core, err);
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

/* What the builder uses: the parts (the runner is started before it) and its settings. */
static builder_deps builder_deps_of(const app *a)
{
    const dmsd_config *c = &a->cfg;
    return (builder_deps){.st = a->st,
                          .core = a->core,
                          .ex = a->ex,
                          .runner = a->runner,
                          .data_dir = c->data_dir,
                          .user_max_disk_mb = c->confine.user_max_disk_mb,
                          .cfg = c->build};
}

/* Everything that needs the executor: routing and snooze, the runner, builder, jobs and follower, then the
 * view that shows their parts of a droid. Runs before the HTTP server serves, so handlers see them all or
 * none. */
static int start_components(app *a, dms_error *err)
{
    jobs_config jc = {.concurrency = a->cfg.job_concurrency,
                      .step_timeout_ms = (int64_t)a->cfg.job_step_timeout_s * 1000,
                      .user_max_running = a->cfg.job_user_max,
                      .user_max_jobs = a->cfg.user_max_jobs,
                      .artifact_max_mb = a->cfg.job_artifact_max_mb,
                      .data_dir = a->cfg.data_dir,
                      .executor_id = a->cfg.executor_id,
                      .step_limits = a->cfg.confine.job};
    if (strcmp(a->cfg.proxy_listen, "off") != 0 && start_routing(a, err) < 0)
        return -1;
    runner_deps rd = {.st = a->st,
                      .core = a->core,
                      .ex = a->ex,
                      .router = a->router,
                      .snooze = a->snooze,
                      .data_dir = a->cfg.data_dir,
                      .confine = &a->cfg.confine};
    if (runner_start(&a->runner, &rd, err) < 0)
        return -1;
    builder_deps bd = builder_deps_of(a);
    if (builder_start(&a->builder, &bd, err) < 0 || jobs_start(&a->jobs, a->st, a->ex, &jc, err) < 0 ||
        follower_start(&a->follower, a->st, a->core, a->cfg.follow_interval_s, err) < 0)
        return -1;
    core_view view = dmsd_view(a);
    core_set_view(a->core, &view);
    if (a->snooze && snooze_start(a->snooze, a->router, err) < 0)
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
    hc->handover = false; /* this one runs until dmsd stops: epoll */
    hc->listen_fd = fd;
    if (r == 0 && (r = http_start(&a->http, hc, err)) == 0)
        log_info("component=dmsd op=executor backend=%s note=\"the engine answers: builds and runs start\"",
                 a->cfg.backend);
    if (r < 0)
        close(fd);
    return r < 0 ? r : 1;
}

/* Everything in reverse of its start (each stop accepts what never started): the API first, so that no
 * handler reaches a part that is gone; libgit2 last. */
static void stop_all(app *a, int lock_fd)
{
    http_stop(a->http);
    if (a->core) /* a startup that failed before the store was open has none */
        core_set_hooks(a->core, &(core_hooks){0});
    follower_stop(a->follower);
    jobs_stop(a->jobs);
    builder_stop(a->builder);
    runner_stop(a->runner);
    snooze_close(a->snooze);
    router_stop(a->router);
    if (a->core)
        core_set_view(a->core, NULL);
    retain_stop(a->retain);
    dms_executor_close(a->ex);
    dms_registry_close(a->reg);
    core_close(a->core);
    store_close(a->st);
    /* A git check thread may still be listing a remote: libgit2 must not be shut down under it. */
    if (gitroute_drain(GIT_CHECK_DRAIN_MS) > 0)
        log_warn("component=dmsd note=\"a git check still runs after %d ms; exiting without shutting libgit2 "
                 "down\"",
                 GIT_CHECK_DRAIN_MS);
    else {
        gitx_shutdown();
        git_libgit2_shutdown();
    }
    if (lock_fd >= 0)
        close(lock_fd);
    settings_free(&a->cfg);
    tz_cache_clear();
}

int main(int argc, char **argv)
{
    app a = {0};
    dms_error err = {0};
    int lock_fd = -1, rc = 1;
    if (settings_parse(argc, argv, &a.cfg) < 0)
        return 2;
    /* Signals go to sigwait() below; every thread started from here on inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    char abs[PATH_MAX];
    if (dms_global_init(&err) < 0 || datadir_prepare(a.cfg.data_dir, abs, sizeof(abs), &err) < 0)
        goto fail;
    dmsd_set_str(&a.cfg.data_dir, abs);
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/droids", a.cfg.data_dir);
    if (dms_mkdir_p(p, false, &err) < 0 || lock_data_dir(a.cfg.data_dir, &lock_fd, &err) < 0)
        goto fail;
    git_libgit2_init();
    if (start_git(&a.cfg, &err) < 0)
        goto fail;
    snprintf(p, sizeof(p), "%s/dms.db", a.cfg.data_dir);
    if (store_open(&a.st, p, &err) < 0 || core_open(&a.core, a.st, &err) < 0 ||
        retain_start(&a.retain, a.st, a.cfg.data_dir, &a.cfg.retain, &err) < 0)
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
                      .auth = {.secret = a.cfg.jwt_secret,
                               .require_exp = a.cfg.jwt_require_exp,
                               .audience = a.cfg.jwt_audience,
                               .issuer = a.cfg.jwt_issuer},
                      .routes = dmsd_routes,
                      .open_routes = dmsd_open_routes,
                      .check_id = route_check_owner,
                      .per_ip_limit = (unsigned)a.cfg.http_per_ip_limit,
                      .request_timeout_s = (unsigned)a.cfg.http_request_timeout_s,
                      .app = &a,
                      .handover = !a.ex}; /* without an executor, retry_executor hands the socket over */
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
    stop_all(&a, lock_fd);
    return rc;
}
