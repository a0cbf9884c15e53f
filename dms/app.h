/* dms/app.h - the dmsd application object: configuration and the parts it wires together.
 *
 *   api/ (routes) --> core/ (droid cache + store) <-- build/ (builder)  run/ (runner) --> executor
 *
 * main.c fills it, starts the parts in order, and stops them in reverse. Routes reach the builder and the
 * runner only through the functions in their headers; either may be NULL (a dmsd started without an executor
 * serves the API read-only for lifecycle operations, and says so).
 */
#ifndef DMSD_APP_H
#define DMSD_APP_H

#include <stdbool.h>

#include <dms/executor.h>

#include "api/http.h"
#include "build/buildopts.h"
#include "confine/confine.h"
#include "confine/quota.h"
#include "core/core.h"
#include "retain.h"
#include "store/store.h"

#define DMSD_DEFAULT_LISTEN        "127.0.0.1:8080"
#define DMSD_DEFAULT_DATA_DIR      "./var"
#define DMSD_DEFAULT_BACKEND       "docker"
#define DMSD_EXECUTOR_ID           "dmsd"
#define DMSD_DEFAULT_HTTP_THREADS  2
#define DMSD_DEFAULT_KEEP_RELEASES 3

typedef struct dmsd_config {
    char *listen;               /* DMS_LISTEN / --listen */
    char *data_dir;             /* DMS_DATA_DIR / --data-dir, made absolute */
    char *jwt_secret;           /* DMS_JWT_SECRET */
    bool jwt_require_exp;       /* DMS_JWT_REQUIRE_EXP (1): a token without exp is refused */
    char *jwt_audience;         /* DMS_JWT_AUDIENCE ("": none): tokens must carry it in aud */
    char *jwt_issuer;           /* DMS_JWT_ISSUER ("": none): tokens must carry it as iss */
    int http_per_ip_limit;      /* DMS_HTTP_PER_IP_LIMIT: connections at once from one address */
    int http_request_timeout_s; /* DMS_HTTP_REQUEST_TIMEOUT_S: idle limit of a connection before a token */
    char *backend;              /* DMS_BACKEND / --backend: executor backend name */
    int http_threads;           /* DMS_HTTP_THREADS */
    char *port_file;            /* --port-file: write the bound port here once listening (tests, scripts) */
    char *executor_id;   /* DMS_EXECUTOR_ID (default "dmsd"): the io.dms.executor label of everything it runs;
                          * two dmsd on one engine need different ids, or each would adopt the other's work */
    int job_concurrency; /* DMS_JOB_CONCURRENCY: build jobs run at once (jobs/) */
    int job_step_timeout_s;  /* DMS_JOB_TIMEOUT_S: one job step's run timeout */
    int job_user_max;        /* DMS_JOB_USER_MAX: a user's running jobs at most */
    int user_max_jobs;       /* DMS_USER_MAX_JOBS: a user's queued + running jobs at most */
    int job_artifact_max_mb; /* DMS_JOB_ARTIFACT_MAX_MB: a job's artifact at most */
    int follow_interval_s;   /* DMS_FOLLOW_INTERVAL_S: how often followed branches are looked at (follow/) */
    char *proxy_listen;      /* DMS_PROXY_LISTEN (127.0.0.1:8000; port 0: any free one; "off": no routing) */
    char *caddy_bin;         /* DMS_CADDY_BIN (default caddy) */
    char *caddy_admin;       /* DMS_CADDY_ADMIN (default: the unix socket $DMS_DATA_DIR/caddy/admin.sock) */
    int page_limit;          /* DMS_PAGE_LIMIT: rows of a list route's page when the client gives no limit */
    retain_config retain;    /* DMS_RETAIN_*: what the retention sweeper keeps (retain.h) */
    char *local_repo_roots;  /* DMS_LOCAL_REPO_ROOTS: where local repositories may come from ("": none) */
    char *git_allow_nets;    /* DMS_GIT_ALLOW_NETS: non-public networks git may connect to ("": none) */
    int git_timeout_s;       /* DMS_GIT_TIMEOUT_S: a git connection without progress for this long fails */
    build_config build;      /* DMS_BUILD_*, DMS_KEEP_RELEASES: build/buildopts.h */
    confine_config confine;  /* DMS_DROID_*, DMS_JOB_MEMORY_MB/CPU_MILLIS/PIDS, DMS_USER_MAX_*: confine/ */
} dmsd_config;

struct builder;
struct runner;
struct jobs;
struct follower;
struct router;
struct snooze;
struct retain;

typedef struct app {
    dmsd_config cfg;
    store *st;
    core *core;
    dms_registry *reg;
    dms_executor *ex; /* NULL when the backend could not be opened */
    char ex_error[DMS_ERROR_MSG_MAX];
    struct builder *builder;
    struct runner *runner;
    struct jobs *jobs;         /* NULL without an executor */
    struct follower *follower; /* NULL without an executor */
    struct router *router;     /* NULL when routing is off (DMS_PROXY_LISTEN=off) */
    struct snooze *snooze;     /* NULL without a router */
    struct retain *retain;     /* the retention sweeper (needs the store only) */
    http_server *http;
} app;

/* The route table of the API (api/routes.c), and the routes served without a token (push hooks). */
extern const api_route dmsd_routes[];
extern const api_route dmsd_open_routes[];

/* $DMS_DATA_DIR/droids/<id> into buf. */
int app_droid_dir(const app *a, const char *id, char *buf, size_t size);
/* What the disk quota reads (confine/quota.h), from the app's parts and settings (for the routes). */
quota_deps app_quota_deps(const app *a);

#endif
