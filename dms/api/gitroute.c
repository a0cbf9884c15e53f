/* gitroute.c - GET /git/check?repo=&branch=: can the repo be reached, does the branch exist, default branch,
 * branch list. A remote may take seconds to answer, so the listing runs on a short-lived thread of its own
 * (at most GIT_CHECKS_MAX at once) and the request is answered from there; the HTTP threads never wait on a
 * remote. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "../build/git.h"
#include "../common.h"
#include "../droids/droid.h"
#include "http.h"
#include "handlers.h"

#define GIT_CHECKS_MAX 4

static atomic_int checks_running;

typedef struct check_job {
    api_pending *p;
    char *repo;
    char *branch;
} check_job;

static void *check_main(void *arg)
{
    check_job *j = arg;
    json_t *res = gitx_check_json(j->repo, j->branch);
    api_pending_complete(j->p, MHD_HTTP_OK, res);
    atomic_fetch_sub(&checks_running, 1);
    free(j->repo);
    free(j->branch);
    free(j);
    return NULL;
}

void route_git_check(void *app, api_req *r, const char *id)
{
    dms_error err = {0};
    (void)app;
    (void)id;
    const char *repo = api_query(r, "repo"), *branch = api_query(r, "branch");
    if (droid_validate_repo(repo, &err) < 0 || (branch && droid_validate_branch(branch, &err) < 0) ||
        gitx_check_access(repo, "repo", &err) < 0) {
        api_reply_error(r, &err);
        return;
    }
    if (atomic_fetch_add(&checks_running, 1) >= GIT_CHECKS_MAX) {
        atomic_fetch_sub(&checks_running, 1);
        api_reply_errorf(r, MHD_HTTP_TOO_MANY_REQUESTS, NULL, "too many git checks at once; try again");
        return;
    }
    check_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->repo = strdup(repo)) || (branch && !(j->branch = strdup(branch)))) {
        if (j)
            free(j->repo);
        free(j);
        atomic_fetch_sub(&checks_running, 1);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    j->p = api_defer(r);
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (!j->p || pthread_create(&t, &attr, check_main, j) != 0) {
        api_pending_complete(j->p, MHD_HTTP_SERVICE_UNAVAILABLE,
                             json_pack("{s:s, s:n}", "error", "cannot start a git check", "field"));
        free(j->repo);
        free(j->branch);
        free(j);
        atomic_fetch_sub(&checks_running, 1);
    }
    pthread_attr_destroy(&attr);
}
