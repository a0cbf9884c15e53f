/* deferred.c - deferred replies: a handler parks its request (api_defer) and any thread answers it later
 * (api_pending_complete), possibly after the server that owned the connection was stopped and freed (a git
 * check outliving an engine-retry restart or a shutdown).
 *
 * So a pending never reaches back into the server: it carries its own lock and two references (the request's,
 * dropped when MHD says the request is over, and the completer's, dropped by api_pending_complete), and it
 * touches its connection only while the request is alive, which it learns under its own lock. The server
 * keeps the pendings of live requests in a list only to answer them with 503 when it stops (MHD must not be
 * stopped with suspended connections); a completion that comes after that finds the pending answered and
 * detached, and only frees it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http_priv.h"

struct api_pending {
    pthread_mutex_t lock;
    int refs;                    /* the request's and the completer's */
    struct MHD_Connection *conn; /* NULL once the request is over: never touched again */
    bool done;                   /* the reply is here (or 503 at stop) */
    bool taken;                  /* and was queued on the connection */
    unsigned status;
    char *body;
    size_t len;
    api_pending *next; /* in the server's list (its lock) while the request lives */
};

static void pending_release(api_pending *p)
{
    pthread_mutex_lock(&p->lock);
    bool last = --p->refs == 0;
    pthread_mutex_unlock(&p->lock);
    if (!last)
        return;
    free(p->body);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

/* Under p->lock. The connection is resumed while the lock is held, so that the request cannot end (and MHD
 * free the connection) between the check and the call. */
static void finish_locked(api_pending *p, unsigned status, char *body, size_t len)
{
    p->done = true;
    p->status = status;
    p->body = body;
    p->len = len;
    if (p->conn)
        MHD_resume_connection(p->conn);
}

api_pending *api_defer(api_req *r)
{
    api_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->lock, NULL);
    p->refs = 2;
    p->conn = r->conn;
    r->pending = p;
    http_server *s = r->srv;
    pthread_mutex_lock(&s->lock);
    bool stopping = s->stopping;
    if (!stopping) {
        p->next = s->pendings;
        s->pendings = p;
    }
    pthread_mutex_unlock(&s->lock);
    if (stopping) {
        /* Not suspended: the connection is processed again at once and finds this answer. */
        p->done = true;
        p->status = MHD_HTTP_SERVICE_UNAVAILABLE;
        p->body = http_error_body("dmsd is shutting down", NULL, &p->len);
        return p;
    }
    /* A completion may already have resumed it: MHD then ignores this suspend (the connection stays active).
     */
    MHD_suspend_connection(r->conn);
    return p;
}

void api_pending_complete(api_pending *p, unsigned status, json_t *body)
{
    if (!p) {
        json_decref(body);
        return;
    }
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    size_t len = s ? strlen(s) : 0;
    pthread_mutex_lock(&p->lock);
    if (!p->done) {
        if (!s && status < 300) {
            status = MHD_HTTP_INTERNAL_SERVER_ERROR;
            s = http_error_body("out of memory", NULL, &len);
        }
        finish_locked(p, status, s, len);
        s = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    free(s); /* answered already (503 at stop): this reply has nowhere to go */
    pending_release(p);
}

bool deferred_answer(api_req *r)
{
    api_pending *p = r->pending;
    pthread_mutex_lock(&p->lock);
    bool done = p->done, take = done && !p->taken;
    char *body = take ? p->body : NULL;
    size_t len = p->len;
    unsigned status = p->status;
    if (take) {
        p->taken = true;
        p->body = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    if (take)
        http_queue(r, status, "application/json", body, len, NULL, NULL);
    return done;
}

void deferred_request_done(http_server *s, api_req *r)
{
    api_pending *p = r->pending;
    pthread_mutex_lock(&s->lock);
    for (api_pending **pp = &s->pendings; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    if (!s->pendings)
        pthread_cond_broadcast(&s->pendings_gone);
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_lock(&p->lock);
    p->conn = NULL;
    pthread_mutex_unlock(&p->lock);
    r->pending = NULL;
    pending_release(p);
}

void deferred_stop_locked(http_server *s)
{
    for (api_pending *p = s->pendings; p; p = p->next) {
        pthread_mutex_lock(&p->lock);
        if (!p->done) {
            size_t len = 0;
            char *body = http_error_body("dmsd is shutting down", NULL, &len);
            finish_locked(p, MHD_HTTP_SERVICE_UNAVAILABLE, body, len);
        }
        pthread_mutex_unlock(&p->lock);
    }
}

void deferred_drain_locked(http_server *s, int max_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += max_ms / 1000;
    until.tv_nsec += (long)(max_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (s->pendings && pthread_cond_timedwait(&s->pendings_gone, &s->lock, &until) == 0)
        ;
}
