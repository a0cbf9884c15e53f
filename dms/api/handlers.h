/* api/handlers.h - the route handlers, each in the file of its part of the API; routes.c holds the route
 * table that names them. Each takes the app, the request and the :id of its path (already checked to be the
 * caller's by the dispatcher, for a route whose :id names something: route_check_owner). */
#ifndef DMSD_API_HANDLERS_H
#define DMSD_API_HANDLERS_H

#include "http.h"

struct app;
struct droid;

/* droidroutes.c: the helpers the droid routes share. */
/* Replies with the droid's public JSON (core_droid_json); 500 on OOM. */
void route_reply_droid(struct app *a, api_req *r, unsigned status, const struct droid *d);
/* True when there is a runner; otherwise replies 503 "no executor: ..." and returns false. */
bool route_need_runner(struct app *a, api_req *r);
/* droidroutes.c: POST /droids, the reads, PATCH /droids/:id */
void route_droid_create(void *app, api_req *r, const char *id);
void route_droids_list(void *app, api_req *r, const char *id);
void route_droid_available(void *app, api_req *r, const char *id);
void route_droid_get(void *app, api_req *r, const char *id);
void route_droid_status(void *app, api_req *r, const char *id);
void route_droid_events(void *app, api_req *r, const char *id);
void route_droid_patch(void *app, api_req *r, const char *id);
/* liferoutes.c: the lifecycle and the snooze schedule */
void route_droid_start(void *app, api_req *r, const char *id);
void route_droid_stop(void *app, api_req *r, const char *id);
void route_droid_restart(void *app, api_req *r, const char *id);
void route_droid_delete(void *app, api_req *r, const char *id);
void route_snooze_get(void *app, api_req *r, const char *id);
void route_snooze_put(void *app, api_req *r, const char *id);
void route_snooze_delete(void *app, api_req *r, const char *id);
/* releaseroutes.c: builds and releases */
void route_droid_releases(void *app, api_req *r, const char *id);
void route_droid_builds(void *app, api_req *r, const char *id);
void route_build_cancel(void *app, api_req *r, const char *id);
void route_droid_rollback(void *app, api_req *r, const char *id);
/* hookroute.c: a git host's push hook (an open route: no bearer token) */
void route_hook_push(void *app, api_req *r, const char *id);

/* owner.c: the api_id_check of dmsd's routes (http_config.check_id). */
int route_check_owner(void *app, api_id_kind kind, const char *user, const char *id, dms_error *err);
/* logs.c */
void route_logs(void *app, api_req *r, const char *id);
/* gitroute.c */
void route_git_check(void *app, api_req *r, const char *id);
/* Waits until no git check runs (at most max_ms): before libgit2 is shut down. Returns how many still run. */
int gitroute_drain(int max_ms);
/* jobroutes.c: the koalaCI-style build jobs */
void route_job_create(void *app, api_req *r, const char *id);
void route_job_get(void *app, api_req *r, const char *id);
void route_job_status(void *app, api_req *r, const char *id);
void route_job_log(void *app, api_req *r, const char *id);
void route_job_cancel(void *app, api_req *r, const char *id);
void route_job_artifact(void *app, api_req *r, const char *id);
void route_jobs_list(void *app, api_req *r, const char *id);
void route_project_cache_delete(void *app, api_req *r, const char *id);

#endif
