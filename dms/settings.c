/* settings.c - dmsd's settings (see settings.h): the command line and the environment, each variable's
 * default and range, the checks across them, and the usage text.
 *
 *   dmsd [--listen ADDR] [--data-dir DIR] [--backend NAME] [--port-file FILE]
 *
 * Environment: DMS_JWT_SECRET (required), DMS_LISTEN (127.0.0.1:8080), DMS_DATA_DIR (./var), DMS_BACKEND
 * (docker), DMS_HTTP_THREADS (2), DMS_KEEP_RELEASES (3), DMS_EXECUTOR_ID (dmsd), DMS_LOG_LEVEL (warn),
 * DMS_PLUGIN_DIR, DMS_JOB_CONCURRENCY (2), DMS_JOB_TIMEOUT_S (1800), DMS_JOB_USER_MAX (concurrency - 1),
 * DMS_USER_MAX_JOBS (20), DMS_JOB_ARTIFACT_MAX_MB (256), DMS_FOLLOW_INTERVAL_S (60),
 * DMS_PROXY_LISTEN (127.0.0.1:8000; off), DMS_CADDY_BIN (caddy), DMS_CADDY_ADMIN, DMS_PAGE_LIMIT (100),
 * DMS_RETAIN_EVENTS (1000), DMS_RETAIN_BUILDS (100), DMS_RETAIN_RUNS (100), DMS_RETAIN_JOBS (500),
 * DMS_RETAIN_JOBS_DAYS (30), DMS_RETAIN_INTERVAL_S (600), DMS_LOCAL_REPO_ROOTS (none),
 * DMS_GIT_ALLOW_NETS (none), DMS_GIT_TIMEOUT_S (60), DMS_JWT_REQUIRE_EXP (1), DMS_JWT_AUDIENCE,
 * DMS_JWT_ISSUER, DMS_HTTP_PER_IP_LIMIT (64), DMS_HTTP_REQUEST_TIMEOUT_S (10),
 * DMS_BUILD_WORKERS (3), DMS_BUILD_USER_MAX (workers-1), DMS_BUILD_TIMEOUT_S (1800), DMS_BUILD_TIMEOUT_MAX_S
 * (3600), DMS_BUILD_LOG_MAX_MB (8), DMS_BUILD_MEMORY_MB (2048), DMS_BUILD_CPU_MILLIS (1000),
 * DMS_BUILD_ALLOWED_IMAGES (""); the containers' limits and the users' quotas: DMS_DROID_*,
 * DMS_JOB_MEMORY_MB, DMS_JOB_CPU_MILLIS, DMS_JOB_PIDS, DMS_USER_MAX_DROIDS, DMS_USER_MAX_DISK_MB
 * (parse_confine). */
#include "settings.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/page.h"
#include "build/buildopts.h"
#include "build/dfpolicy.h"
#include "build/git.h"
#include "build/queue.h"
#include "common.h"
#include "follow/follow.h"
#include "jobs/jobs.h"
#include "retain.h"
#include "router/router.h"

#define SECRET_MIN_RECOMMENDED 32
#define HTTP_TIMEOUT_MAX_S     3600 /* DMS_HTTP_REQUEST_TIMEOUT_S at most */
#define HTTP_PER_IP_MAX        1024 /* DMS_HTTP_PER_IP_LIMIT at most: the server's own connection limit */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: dmsd [--listen ADDR] [--data-dir DIR] [--backend NAME] [--port-file FILE] | --routes\n"
        "\n"
        "The DMS host daemon: an HTTP/JSON API (JWT bearer auth) that builds droids from git and runs them\n"
        "through an executor backend.\n"
        "\n"
        "  --listen ADDR      host:port to listen on (DMS_LISTEN; default " DMSD_DEFAULT_LISTEN
        "; port 0: any)\n"
        "  --data-dir DIR     state: dms.db, droids/<id>/ (DMS_DATA_DIR; default " DMSD_DEFAULT_DATA_DIR ")\n"
        "  --backend NAME     executor backend (DMS_BACKEND; default " DMSD_DEFAULT_BACKEND ")\n"
        "  --port-file FILE   write the bound port to FILE once listening\n"
        "  --routes           print the API's route table as JSON (method, pattern, what :id names) and "
        "exit\n"
        "  --help, --version\n"
        "\n"
        "Environment: DMS_JWT_SECRET (required: HS256 secret for bearer tokens), DMS_HTTP_THREADS (2),\n"
        "DMS_KEEP_RELEASES (3 images kept per droid), DMS_EXECUTOR_ID (dmsd; one per dmsd sharing an "
        "engine),\n"
        "DMS_LOG_LEVEL (error|warn|info|debug), DMS_PLUGIN_DIR, DMS_JOB_CONCURRENCY (2 build jobs at once),\n"
        "DMS_JOB_TIMEOUT_S (1800 per job step), DMS_FOLLOW_INTERVAL_S (60: followed branches are looked "
        "at).\n"
        "Jobs: DMS_JOB_USER_MAX (a user's running jobs; default DMS_JOB_CONCURRENCY - 1, at least 1),\n"
        "DMS_USER_MAX_JOBS (20 queued or running per user), DMS_JOB_ARTIFACT_MAX_MB (256).\n"
        "Routing: DMS_PROXY_LISTEN (" ROUTER_DEFAULT_LISTEN
        "; port 0: any free one; off: no routing, no snooze),\n"
        "DMS_CADDY_BIN (caddy), DMS_CADDY_ADMIN (Caddy's admin address; default: a unix socket in the data "
        "dir).\n"
        "Lists: DMS_PAGE_LIMIT (100 rows per page when a request gives no limit; at most 1000).\n"
        "Retention (0: keep all): DMS_RETAIN_EVENTS (1000 per droid), DMS_RETAIN_BUILDS (100 per droid, and\n"
        "releases whose image is gone), DMS_RETAIN_RUNS (100 per droid), DMS_RETAIN_JOBS (500 finished jobs\n"
        "per user), DMS_RETAIN_JOBS_DAYS (30), DMS_RETAIN_INTERVAL_S (600: how often old rows are "
        "pruned).\n"
        "Repositories: DMS_LOCAL_REPO_ROOTS (none: no local path or file:// repository; dir1:dir2:\n"
        "only repositories beneath them), DMS_GIT_ALLOW_NETS (none: git connects to public addresses\n"
        "only; CIDRs such as 127.0.0.0/8,::1/128 are permitted too), DMS_GIT_TIMEOUT_S (60: a git\n"
        "connection without progress for that long fails).\n"
        "Tokens: DMS_JWT_REQUIRE_EXP (1; 0 accepts tokens without exp), DMS_JWT_AUDIENCE (tokens must\n"
        "carry it in aud), DMS_JWT_ISSUER (tokens must carry it as iss).\n"
        "Builds: DMS_BUILD_WORKERS (3 at once, 1-16), DMS_BUILD_USER_MAX (workers-1, at least 1: one user's\n"
        "share), DMS_BUILD_TIMEOUT_S (1800 per build), DMS_BUILD_TIMEOUT_MAX_S (3600: the most a droid's\n"
        "build_timeout_s may ask), DMS_BUILD_LOG_MAX_MB (8 per build.out/build.err), DMS_BUILD_MEMORY_MB\n"
        "(2048 per build step; 0: no limit), DMS_BUILD_CPU_MILLIS (1000 = a core per step; 0: no limit).\n"
        "Images: DMS_BUILD_ALLOWED_IMAGES (empty: a Dockerfile may start FROM dms-stack/* and the user's "
        "own\n"
        "droids' images only; a comma-separated list of references or prefixes ending in *, e.g. "
        "dms-test/*,\n"
        "allows more; an image id or digest only when listed exactly).\n");
    fprintf(f,
            "Containers (a droid may ask for its own limits up to the ceilings): DMS_DROID_MEMORY_MB (%d),\n"
            "DMS_DROID_CPU_MILLIS (%d), DMS_DROID_PIDS (%d), DMS_DROID_MEMORY_MAX_MB (%d), "
            "DMS_DROID_CPU_MAX_MILLIS "
            "(%d),\n"
            "DMS_DROID_PIDS_MAX (%d); every job step: DMS_JOB_MEMORY_MB (%d), DMS_JOB_CPU_MILLIS (%d), "
            "DMS_JOB_PIDS "
            "(%d).\n"
            "Quotas per user: DMS_USER_MAX_DROIDS (%d droids), DMS_USER_MAX_DISK_MB (%d MB of images and "
            "data).\n",
            CONFINE_DROID_MEMORY_MB, CONFINE_DROID_CPU_MILLIS, CONFINE_DROID_PIDS,
            CONFINE_DROID_MEMORY_MAX_MB, CONFINE_DROID_CPU_MAX_MILLIS, CONFINE_DROID_PIDS_MAX,
            CONFINE_JOB_MEMORY_MB, CONFINE_JOB_CPU_MILLIS, CONFINE_JOB_PIDS, CONFINE_USER_MAX_DROIDS,
            CONFINE_USER_MAX_DISK_MB);
    fprintf(f,
            "Connections: DMS_HTTP_PER_IP_LIMIT (%d at once per client address), DMS_HTTP_REQUEST_TIMEOUT_S\n"
            "(%d: idle limit of a connection until its request shows a token).\n",
            HTTP_DEFAULT_PER_IP_LIMIT, HTTP_DEFAULT_REQUEST_TIMEOUT_S);
}

/* --routes: the route table as JSON, for tests and audits that must cover every route (the feature suite
 * walks it as another user). */
static int print_routes(void)
{
    json_t *arr = json_array();
    const api_route *tables[] = {dmsd_routes, dmsd_open_routes};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const api_route *rt = tables[t]; rt->method; rt++)
            json_array_append_new(arr,
                                  json_pack("{s:s, s:s, s:s, s:b}", "method", rt->method, "pattern",
                                            rt->pattern, "id", api_id_kind_name(rt->id), "token", t == 0));
    int r = json_dumpf(arr, stdout, JSON_INDENT(1)) == 0 && puts("") >= 0 ? 0 : -1;
    json_decref(arr);
    return r;
}

static int env_int(const char *name, int def, int min, int max)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    int64_t v = dmsu_parse_i64(s);
    if (v < min || v > max) {
        fprintf(stderr, "dmsd: %s=%s must be an integer from %d to %d\n", name, s, min, max);
        exit(2);
    }
    return (int)v;
}

/* Builds (build/queue.h, build/buildopts.h). One user's share defaults to every worker but one, so that one
 * user's queue never holds them all. */
static int parse_build_settings(dmsd_config *cfg)
{
    cfg->build.workers = env_int("DMS_BUILD_WORKERS", BUILD_WORKERS_DEFAULT, 1, BUILD_WORKERS_MAX);
    int share = cfg->build.workers > 1 ? cfg->build.workers - 1 : 1;
    cfg->build.user_max = env_int("DMS_BUILD_USER_MAX", share, 1, cfg->build.workers);
    cfg->build.timeout_s =
        env_int("DMS_BUILD_TIMEOUT_S", BUILD_TIMEOUT_DEFAULT_S, 1, BUILD_TIMEOUT_CEILING_S);
    int max_default = cfg->build.timeout_s > BUILD_TIMEOUT_MAX_DEFAULT_S ? cfg->build.timeout_s
                                                                         : BUILD_TIMEOUT_MAX_DEFAULT_S;
    cfg->build.timeout_max_s = env_int("DMS_BUILD_TIMEOUT_MAX_S", max_default, 1, BUILD_TIMEOUT_CEILING_S);
    cfg->build.log_max_mb =
        env_int("DMS_BUILD_LOG_MAX_MB", BUILD_LOG_MAX_MB_DEFAULT, 1, BUILD_LOG_MAX_MB_CEILING);
    cfg->build.memory_mb =
        env_int("DMS_BUILD_MEMORY_MB", BUILD_MEMORY_MB_DEFAULT, 0, BUILD_MEMORY_MB_CEILING);
    cfg->build.cpu_millis =
        env_int("DMS_BUILD_CPU_MILLIS", BUILD_CPU_MILLIS_DEFAULT, 0, BUILD_CPU_MILLIS_CEILING);
    if (cfg->build.timeout_s > cfg->build.timeout_max_s) {
        const char *given = getenv("DMS_BUILD_TIMEOUT_S");
        if (!given || !*given) {
            /* Only the maximum was lowered: so is the default. */
            cfg->build.timeout_s = cfg->build.timeout_max_s;
        } else {
            fprintf(stderr, "dmsd: DMS_BUILD_TIMEOUT_S=%d is above DMS_BUILD_TIMEOUT_MAX_S=%d\n",
                    cfg->build.timeout_s, cfg->build.timeout_max_s);
            return -1;
        }
    }
    if (cfg->build.memory_mb > 0 && cfg->build.memory_mb < BUILD_MEMORY_MB_MIN) {
        fprintf(stderr, "dmsd: DMS_BUILD_MEMORY_MB=%d: give 0 (no limit) or at least %d\n",
                cfg->build.memory_mb, BUILD_MEMORY_MB_MIN);
        return -1;
    }
    if (cfg->build.cpu_millis > 0 && cfg->build.cpu_millis < BUILD_CPU_MILLIS_MIN) {
        fprintf(stderr, "dmsd: DMS_BUILD_CPU_MILLIS=%d: give 0 (no limit) or at least %d\n",
                cfg->build.cpu_millis, BUILD_CPU_MILLIS_MIN);
        return -1;
    }
    return 0;
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

/* Every DMS_* variable but DMS_JWT_SECRET, with its default; an out-of-range one exits 2. */
static int parse_env(dmsd_config *cfg)
{
    cfg->listen = env_or("DMS_LISTEN", DMSD_DEFAULT_LISTEN);
    cfg->data_dir = env_or("DMS_DATA_DIR", DMSD_DEFAULT_DATA_DIR);
    cfg->backend = env_or("DMS_BACKEND", DMSD_DEFAULT_BACKEND);
    cfg->executor_id = env_or("DMS_EXECUTOR_ID", DMSD_EXECUTOR_ID);
    cfg->http_threads = env_int("DMS_HTTP_THREADS", DMSD_DEFAULT_HTTP_THREADS, 1, 64);
    cfg->build.keep_releases = env_int("DMS_KEEP_RELEASES", DMSD_DEFAULT_KEEP_RELEASES, 1, 100);
    cfg->job_concurrency = env_int("DMS_JOB_CONCURRENCY", JOBS_DEFAULT_CONCURRENCY, 1, JOBS_MAX_CONCURRENCY);
    cfg->job_step_timeout_s = env_int("DMS_JOB_TIMEOUT_S", JOBS_DEFAULT_STEP_TIMEOUT_S, 1, 7 * 24 * 3600);
    cfg->job_user_max =
        env_int("DMS_JOB_USER_MAX", jobs_default_user_max(cfg->job_concurrency), 1, JOBS_MAX_CONCURRENCY);
    cfg->user_max_jobs = env_int("DMS_USER_MAX_JOBS", JOBS_DEFAULT_USER_MAX_JOBS, 1, JOBS_MAX_USER_MAX_JOBS);
    cfg->job_artifact_max_mb =
        env_int("DMS_JOB_ARTIFACT_MAX_MB", JOBS_DEFAULT_ARTIFACT_MAX_MB, 1, JOBS_MAX_ARTIFACT_MAX_MB);
    cfg->follow_interval_s = env_int("DMS_FOLLOW_INTERVAL_S", FOLLOW_DEFAULT_INTERVAL_S,
                                     FOLLOW_MIN_INTERVAL_S, FOLLOW_MAX_INTERVAL_S);
    cfg->proxy_listen = env_or("DMS_PROXY_LISTEN", ROUTER_DEFAULT_LISTEN);
    cfg->caddy_bin = env_or("DMS_CADDY_BIN", "caddy");
    cfg->caddy_admin = env_or("DMS_CADDY_ADMIN", "");
    cfg->page_limit = env_int("DMS_PAGE_LIMIT", API_PAGE_DEFAULT, 1, API_PAGE_MAX);
    cfg->retain = (retain_config){
        .events = env_int("DMS_RETAIN_EVENTS", RETAIN_DEFAULT_EVENTS, 0, RETAIN_MAX_COUNT),
        .builds = env_int("DMS_RETAIN_BUILDS", RETAIN_DEFAULT_BUILDS, 0, RETAIN_MAX_COUNT),
        .runs = env_int("DMS_RETAIN_RUNS", RETAIN_DEFAULT_RUNS, 0, RETAIN_MAX_COUNT),
        .jobs = env_int("DMS_RETAIN_JOBS", RETAIN_DEFAULT_JOBS, 0, RETAIN_MAX_COUNT),
        .jobs_days = env_int("DMS_RETAIN_JOBS_DAYS", RETAIN_DEFAULT_JOBS_DAYS, 0, RETAIN_MAX_DAYS),
        .interval_s = env_int("DMS_RETAIN_INTERVAL_S", RETAIN_DEFAULT_INTERVAL_S, 1, RETAIN_MAX_INTERVAL_S),
    };
    cfg->local_repo_roots = env_or("DMS_LOCAL_REPO_ROOTS", "");
    cfg->git_allow_nets = env_or("DMS_GIT_ALLOW_NETS", "");
    cfg->git_timeout_s = env_int("DMS_GIT_TIMEOUT_S", GITX_DEFAULT_TIMEOUT_S, 1, GITX_MAX_TIMEOUT_S);
    cfg->jwt_require_exp = env_int("DMS_JWT_REQUIRE_EXP", 1, 0, 1) == 1;
    cfg->jwt_audience = env_or("DMS_JWT_AUDIENCE", "");
    cfg->jwt_issuer = env_or("DMS_JWT_ISSUER", "");
    cfg->http_per_ip_limit = env_int("DMS_HTTP_PER_IP_LIMIT", HTTP_DEFAULT_PER_IP_LIMIT, 1, HTTP_PER_IP_MAX);
    cfg->http_request_timeout_s =
        env_int("DMS_HTTP_REQUEST_TIMEOUT_S", HTTP_DEFAULT_REQUEST_TIMEOUT_S, 1, HTTP_TIMEOUT_MAX_S);
    if (parse_build_settings(cfg) < 0)
        return -1;
    cfg->build.allowed_images = env_or("DMS_BUILD_ALLOWED_IMAGES", "");
    dms_error err = {0};
    if (dfp_allowlist_validate(cfg->build.allowed_images, &err) < 0) {
        fprintf(stderr, "dmsd: %s\n", err.message);
        exit(2);
    }
    parse_confine(&cfg->confine);
    return 0;
}

int settings_parse(int argc, char **argv, dmsd_config *cfg)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},  {"data-dir", required_argument, NULL, 'd'},
        {"backend", required_argument, NULL, 'b'}, {"port-file", required_argument, NULL, 'p'},
        {"routes", no_argument, NULL, 'r'},        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
    };
    if (parse_env(cfg) < 0)
        return -1;
    int c;
    while ((c = getopt_long(argc, argv, "l:d:b:p:rhV", longopts, NULL)) != -1) {
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
        case 'r':
            exit(print_routes() < 0 ? 1 : 0);
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
    if (!cfg->jwt_require_exp)
        log_warn("component=dmsd note=\"DMS_JWT_REQUIRE_EXP=0: tokens without exp are accepted and never "
                 "expire\"");
    return 0;
}

void settings_free(dmsd_config *cfg)
{
    free(cfg->listen);
    free(cfg->data_dir);
    free(cfg->backend);
    free(cfg->jwt_secret);
    free(cfg->jwt_audience);
    free(cfg->jwt_issuer);
    free(cfg->port_file);
    free(cfg->executor_id);
    free(cfg->proxy_listen);
    free(cfg->caddy_bin);
    free(cfg->caddy_admin);
    free(cfg->local_repo_roots);
    free(cfg->git_allow_nets);
    free(cfg->build.allowed_images);
}
