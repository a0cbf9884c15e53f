/* gitroute.c - GET /git/check?repo=&branch=: can the repo be reached, does the branch exist, default branch,
 * branch list. A remote may take seconds to answer, so the listing runs on a short-lived thread of its own
 * (at most GIT_CHECKS_MAX at once) and the request is answered from there; the HTTP threads never wait on a
 * remote. The thread may outlive the HTTP server that took the request (an engine-retry restart, a shutdown):
 * its deferred reply holds nothing of the server (deferred.c), and dmsd waits for the checks still running
 * (gitroute_drain) before it shuts libgit2 down under them. */
#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../build/git.h"
#include "../common.h"
#include "../droids/droid.h"
#include "auth.h"
#include "http.h"
#include "handlers.h"

/* A remote that never answers holds its check (libgit2 1.5 has no timeout): one user cannot hold them all. */
#define GIT_CHECKS_MAX      4
#define GIT_CHECKS_PER_USER 2

static pthread_mutex_t checks_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t checks_gone = PTHREAD_COND_INITIALIZER;
static int checks_running;
static char checks_user[GIT_CHECKS_MAX][AUTH_USER_MAX + 1]; /* who runs each slot ("" when free) */

/* Takes a slot for user: false when GIT_CHECKS_MAX run, or GIT_CHECKS_PER_USER of them are the user's. */
static bool check_enter(const char *user)
{
    pthread_mutex_lock(&checks_lock);
    int mine = 0, free_slot = -1;
    for (int i = 0; i < GIT_CHECKS_MAX; i++) {
        if (!checks_user[i][0])
            free_slot = free_slot < 0 ? i : free_slot;
        else if (strcmp(checks_user[i], user) == 0)
            mine++;
    }
    bool ok = free_slot >= 0 && mine < GIT_CHECKS_PER_USER;
    if (ok) {
        snprintf(checks_user[free_slot], sizeof(checks_user[free_slot]), "%s", user);
        checks_running++;
    }
    pthread_mutex_unlock(&checks_lock);
    return ok;
}

static void check_leave(const char *user)
{
    pthread_mutex_lock(&checks_lock);
    for (int i = 0; i < GIT_CHECKS_MAX; i++)
        if (strcmp(checks_user[i], user) == 0) {
            checks_user[i][0] = '\0';
            break;
        }
    if (--checks_running == 0)
        pthread_cond_broadcast(&checks_gone);
    pthread_mutex_unlock(&checks_lock);
}

int gitroute_drain(int max_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += max_ms / 1000;
    until.tv_nsec += (long)(max_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&checks_lock);
    while (checks_running > 0 && pthread_cond_timedwait(&checks_gone, &checks_lock, &until) == 0)
        ;
    int left = checks_running;
    pthread_mutex_unlock(&checks_lock);
    return left;
}

typedef struct check_job {
    api_pending *p;
    char user[AUTH_USER_MAX + 1];
    char *repo;
    char *branch;
} check_job;

static void *check_main(void *arg)
{
    check_job *j = arg;
    json_t *res = gitx_check_json(j->repo, j->branch);
    api_pending_complete(j->p, MHD_HTTP_OK, res);
    check_leave(j->user);
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
    const char *user = api_user(r);
    if (!check_enter(user)) {
        api_reply_errorf(r, MHD_HTTP_TOO_MANY_REQUESTS, NULL,
                         "too many git checks at once (%d in all, %d per user); try again", GIT_CHECKS_MAX,
                         GIT_CHECKS_PER_USER);
        return;
    }
    check_job *j = calloc(1, sizeof(*j));
    if (!j || !(j->repo = strdup(repo)) || (branch && !(j->branch = strdup(branch)))) {
        if (j)
            free(j->repo);
        free(j);
        check_leave(user);
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    snprintf(j->user, sizeof(j->user), "%s", user);
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
        check_leave(user);
    }
    pthread_attr_destroy(&attr);
}
