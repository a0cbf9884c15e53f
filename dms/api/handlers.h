/* api/handlers.h - the route handlers that live outside routes.c (which holds the route table): logs.c,
 * gitroute.c, jobroutes.c. Each takes the app, the request and the :id of its path. */
#ifndef DMSD_API_HANDLERS_H
#define DMSD_API_HANDLERS_H

#include "http.h"

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
