/* routes.c - the route table of the dmsd API, in one place: every method and path, the query keys it
 * accepts and what its :id names. The handlers live beside it (handlers.h): droidroutes.c (create, reads,
 * PATCH), liferoutes.c (start, stop, restart, delete, snooze), releaseroutes.c (builds, releases,
 * rollback), hookroute.c (push hooks), logs.c, gitroute.c, jobroutes.c. */
#include "../app.h"
#include "handlers.h"

/* ---- the table ----
 * Each route with an :id says what it names: the dispatcher has route_check_owner (owner.c) confirm the
 * caller owns it before the handler runs, and http_start refuses a route with an :id that does not say. */

static const char *const q_none[] = {NULL};
static const char *const q_name[] = {"name", NULL};
static const char *const q_page[] = {"after", "limit", NULL}; /* every list: api/page.h */
static const char *const q_force[] = {"force", NULL};
static const char *const q_delete[] = {"keep_volumes", NULL};
static const char *const q_logs[] = {"tail", "follow", "from",       "limit",   "build.out", "build.err",
                                     "run",  "format", "timestamps", "service", NULL};
static const char *const q_git[] = {"repo", "branch", NULL};
static const char *const q_follow[] = {"follow", NULL};

const api_route dmsd_routes[] = {
    {"POST", "/droids", route_droid_create, q_none, API_ID_NONE},
    {"GET", "/droids", route_droids_list, q_page, API_ID_NONE},
    {"GET", "/droids/available", route_droid_available, q_name, API_ID_NONE},
    {"GET", "/git/check", route_git_check, q_git, API_ID_NONE},
    {"GET", "/droids/:id", route_droid_get, q_none, API_ID_DROID},
    {"PATCH", "/droids/:id", route_droid_patch, q_none, API_ID_DROID},
    {"DELETE", "/droids/:id", route_droid_delete, q_delete, API_ID_DROID},
    {"POST", "/droids/:id/start", route_droid_start, q_none, API_ID_DROID},
    {"POST", "/droids/:id/stop", route_droid_stop, q_none, API_ID_DROID},
    {"POST", "/droids/:id/restart", route_droid_restart, q_force, API_ID_DROID},
    {"GET", "/droids/:id/status", route_droid_status, q_none, API_ID_DROID},
    {"GET", "/droids/:id/events", route_droid_events, q_page, API_ID_DROID},
    {"GET", "/droids/:id/logs", route_logs, q_logs, API_ID_DROID},
    {"GET", "/droids/:id/releases", route_droid_releases, q_page, API_ID_DROID},
    {"GET", "/droids/:id/builds", route_droid_builds, q_page, API_ID_DROID},
    {"POST", "/droids/:id/rollback", route_droid_rollback, q_none, API_ID_DROID},
    {"POST", "/droids/:id/build/cancel", route_build_cancel, q_none, API_ID_DROID},
    {"GET", "/droids/:id/snooze", route_snooze_get, q_none, API_ID_DROID},
    {"PUT", "/droids/:id/snooze", route_snooze_put, q_none, API_ID_DROID},
    {"DELETE", "/droids/:id/snooze", route_snooze_delete, q_none, API_ID_DROID},
    /* build jobs (api/jobroutes.c) */
    {"POST", "/job/create", route_job_create, q_none, API_ID_NONE},
    {"GET", "/jobs", route_jobs_list, q_page, API_ID_NONE},
    {"GET", "/job/:id", route_job_get, q_none, API_ID_JOB},
    {"GET", "/job/:id/status", route_job_status, q_none, API_ID_JOB},
    {"GET", "/job/:id/log", route_job_log, q_follow, API_ID_JOB},
    {"PATCH", "/job/:id/cancel", route_job_cancel, q_none, API_ID_JOB},
    {"GET", "/job/:id/artifact", route_job_artifact, q_none, API_ID_JOB},
    {"DELETE", "/projects/:id/cache", route_project_cache_delete, q_none, API_ID_PROJECT},
    {NULL, NULL, NULL, NULL, API_ID_NONE},
};

/* Served without a bearer token: each handler authenticates what it serves. */
const api_route dmsd_open_routes[] = {
    {"POST", "/droids/:id/hooks/push", route_hook_push, q_none, API_ID_HOOK},
    {NULL, NULL, NULL, NULL, API_ID_NONE},
};
